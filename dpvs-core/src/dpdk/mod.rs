//! The safe wrapper over DPDK: the only module of `dpvs-core` allowed `unsafe`.
//!
//! [`hw`] holds the two machine primitives the engine itself needs (cache prefetch, huge-page
//! advice); it needs no EAL and is built without the `dpdk` feature. Everything else here is
//! the DPDK binding and needs the feature.
//!
//! Ownership model, in brief:
//! - [`Eal`] is the process-wide EAL, created once on the thread that becomes the main lcore;
//!   every other constructor takes `&Eal`, so "EAL is initialised" is a fact of the types, and
//!   since `Eal` is neither `Send` nor `Sync` that set-up happens on the main lcore.
//! - [`Mempool`]s live until the end of the process (`&'static`), so [`Mbuf`] needs no lifetime.
//! - An [`Mbuf`] is owned: `Send` (it moves between lcores through rings), not `Sync`, freed on
//!   drop. Ports are configured without scatter, so a packet is one contiguous segment.
//! - Each RX/TX queue of a [`Port`] is handed out once, as an [`RxQueue`]/[`TxQueue`] that is
//!   `Send` but not `Sync`: exactly one lcore polls it.
//! - Workers run on EAL lcores through [`launch`]; a panic there becomes an error of
//!   [`Launched::wait`] instead of an abort.
//!
//! Burst functions do not allocate, lock, log or make system calls: they fill or drain the
//! caller's pre-reserved `Vec<Mbuf>` in place.
#![allow(unsafe_code)]

#[cfg(feature = "dpdk")]
mod eal;
#[cfg(feature = "dpdk")]
mod error;
pub mod hw;
#[cfg(feature = "dpdk")]
mod lcore;
#[cfg(feature = "dpdk")]
mod mbuf;
#[cfg(feature = "dpdk")]
mod mempool;
#[cfg(feature = "dpdk")]
mod port;
#[cfg(feature = "dpdk")]
mod ring;
#[cfg(feature = "dpdk")]
pub mod testing;

#[cfg(feature = "dpdk")]
pub use eal::Eal;
#[cfg(feature = "dpdk")]
pub use error::DpdkError;
#[cfg(feature = "dpdk")]
pub use lcore::{Launched, launch, lcore_id, rdtsc};
#[cfg(feature = "dpdk")]
pub use mbuf::Mbuf;
#[cfg(feature = "dpdk")]
pub use mempool::Mempool;
#[cfg(feature = "dpdk")]
pub use port::{Port, PortConfig, PortInfo, PortStats, RxQueue, TxQueue};
#[cfg(feature = "dpdk")]
pub use ring::{Ring, RingConsumer, RingProducer};

/// The burst size the data plane works in: reserve this many slots in the `Vec<Mbuf>` handed
/// to [`RxQueue::rx_burst`] and [`RingConsumer::dequeue_burst`].
#[cfg(feature = "dpdk")]
pub const BURST: usize = 32;
