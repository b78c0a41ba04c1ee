//! The safe wrapper over DPDK: the only module of `dpvs-core` allowed `unsafe`.
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

mod eal;
mod error;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;
pub mod testing;

pub use eal::Eal;
pub use error::DpdkError;
pub use lcore::{Launched, launch, lcore_id, rdtsc};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{Port, PortConfig, PortInfo, PortStats, RxQueue, TxQueue};
pub use ring::{Ring, RingConsumer, RingProducer};

/// The burst size the data plane works in: reserve this many slots in the `Vec<Mbuf>` handed
/// to [`RxQueue::rx_burst`] and [`RingConsumer::dequeue_burst`].
pub const BURST: usize = 32;
