//! Test support shared by the tests, benches and fuzz targets of the engine and the daemon:
//! the lab (ports, addresses, services, real servers: [`lab`]), frame builders and the worker
//! harness that feeds a worker frames and checks what it sends ([`rig`]).
//!
//! Engine unit tests inside `dpvs-core` may use only what takes and returns plain bytes and
//! std types here: the crate links the non-test build of `dpvs-core`, whose types differ from
//! those of the crate under test.

pub mod frames;
pub mod lab;
pub mod rig;
