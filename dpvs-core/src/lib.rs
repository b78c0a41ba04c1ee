//! DPVS-RS's engine: everything a worker does to a packet, sans I/O.
//!
//! Packet views ([`packet`]), connection tables, schedulers, routes, neighbours, the snapshot a
//! worker reads and the worker itself ([`engine`]), drop reasons ([`drop`]). No DPDK, no
//! `unsafe`, no clock or randomness of its own (the caller passes time and seed): packets are
//! seen through the [`packet::Frame`] trait, which the DPDK mbuf implements zero-copy and
//! [`packet::VecFrame`] implements for tests, fuzzing and benches.

pub mod drop;
pub mod engine;
pub mod packet;
