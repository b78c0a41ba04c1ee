//! The `dpvs` daemon: its configuration ([`config`]), the control plane (authoritative state,
//! snapshot publication, request handling, the control socket: [`control`]) and, with the
//! `dpdk` feature, the daemon proper ([`daemon`]: EAL, ports, the worker lcore loop).

pub mod config;
pub mod control;
#[cfg(feature = "dpdk")]
pub mod daemon;
