//! The one safe wrapper over DPDK: with `dpdk-sys`, the only crate of the workspace allowed
//! `unsafe` (each block says why it is sound).
//!
//! Two parts need no EAL and build without the `eal` feature, so the engine (`dpvs-core`)
//! depends on them without pulling in DPDK: [`frame`], the one abstraction the engine sees a
//! packet through ([`Frame`], implemented zero-copy by [`Mbuf`] and by the test twin
//! [`VecFrame`]), and [`hw`], the two machine primitives the engine needs (cache prefetch,
//! huge-page advice). Everything else is the DPDK binding and needs the feature.
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

#[cfg(feature = "eal")]
mod eal;
#[cfg(feature = "eal")]
mod error;
pub mod frame;
pub mod hw;
#[cfg(feature = "eal")]
mod lcore;
#[cfg(feature = "eal")]
mod mbuf;
#[cfg(feature = "eal")]
mod mempool;
#[cfg(feature = "eal")]
mod port;
#[cfg(feature = "eal")]
mod ring;
#[cfg(feature = "eal")]
pub mod testing;

pub use frame::{Frame, VecFrame};

#[cfg(feature = "eal")]
pub use eal::Eal;
#[cfg(feature = "eal")]
pub use error::DpdkError;
#[cfg(feature = "eal")]
pub use lcore::{Launched, launch, lcore_id, rdtsc};
#[cfg(feature = "eal")]
pub use mbuf::Mbuf;
#[cfg(feature = "eal")]
pub use mempool::Mempool;
#[cfg(feature = "eal")]
pub use port::{LinkWatch, Port, PortConfig, PortInfo, PortStats, RxQueue, TxQueue};
#[cfg(feature = "eal")]
pub use ring::{Ring, RingConsumer, RingProducer};

/// The burst size of the whole data plane: packets received, classified and prefetched, and
/// transmitted at once. Reserve this many slots in the `Vec<Mbuf>` handed to
/// `RxQueue::rx_burst` and `RingConsumer::dequeue_burst`; the engine takes longer bursts in
/// pieces of this size.
pub const BURST: usize = 32;
