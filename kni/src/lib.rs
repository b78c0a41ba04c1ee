//! The control side of the DPVS-RS kernel bridge (DESIGN §4): each DPDK port with `kni = true`
//! has a kernel twin, a TAP netdev `<port>.kni` that the DPDK side creates. This crate owns that
//! netdev's kernel-side configuration:
//!
//! - it applies the desired addresses and routes in one fixed sequence (link down, flush the
//!   addresses, add the addresses, link up, add the routes), every time a twin is (re)configured;
//! - a guard keeps them there: rtnetlink notifications and a periodic reconcile detect changes
//!   made by anyone else, which are re-asserted within a second, with exponential backoff when
//!   something keeps undoing them (a "fight", counted and logged);
//! - [`NmGuard`] marks the twins unmanaged for NetworkManager (a `conf.d` keyfile and a udev
//!   rule) before they exist.
//!
//! The API is synchronous; the work happens on a thread of its own running a current-thread
//! tokio runtime. No `unsafe`.
#![forbid(unsafe_code)]

mod backoff;
mod bridge;
mod desired;
mod error;
mod guard;
#[cfg(feature = "lab")]
pub mod lab;
mod netlink;
mod nm;
mod status;

pub use bridge::{BridgeOptions, KernelBridge, remove_stale_twin};
pub use desired::{KniAddr, KniRoute, TwinSpec};
pub use error::KniError;
pub use nm::{NmGuard, NmOptions};
pub use status::TwinStatus;
