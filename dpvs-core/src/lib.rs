//! DPVS-RS: the load-balancing engine and its DPDK binding.
//!
//! Everything outside `dpdk/` is safe Rust and testable without EAL: packets are seen through the
//! [`packet::Frame`] trait, which the DPDK mbuf implements zero-copy and [`packet::VecFrame`]
//! implements for tests, fuzzing and benches.
#![deny(unsafe_code)]

pub mod config;
pub mod control;
#[cfg(feature = "dpdk")]
pub mod daemon;
pub mod dpdk;
pub mod drop;
pub mod engine;
pub mod packet;
