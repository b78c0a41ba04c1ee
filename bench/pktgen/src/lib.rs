//! dpvs-pktgen as a library: the generator's parts, so that tests can drive the logic (frames
//! in, frames out) without DPDK, through a real or a deliberately broken balancer.
//!
//! - [`flows`]: flow index ↔ client endpoint, visiting order;
//! - [`probe`]: the 16 bytes every packet carries (flow, TSC, measured flag);
//! - [`template`]: building frames without allocating;
//! - [`check`]: what the device must return, checked per frame;
//! - [`engine`]: what to send next and what to make of each returned frame;
//! - [`hist`]: latency histogram; [`report`]: JSON and table;
//! - [`driver`]: the DPDK port and loop; [`cli`]: the command line.

pub mod check;
pub mod cli;
pub mod driver;
pub mod engine;
pub mod flows;
pub mod hist;
pub mod probe;
pub mod report;
pub mod template;
