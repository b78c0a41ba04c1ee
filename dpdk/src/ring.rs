//! Single-producer/single-consumer rings of mbufs, to hand packets between lcores.

use std::ffi::{CString, c_void};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use super::eal::{Eal, HandleGuard};
use super::error::DpdkError;
use super::mbuf::Mbuf;

/// The `rte_ring`, shared by its two ends and freed (with any mbufs left in it) when both are
/// gone.
struct RingInner {
    raw: NonNull<dpdk_sys::rte_ring>,
    _handle: HandleGuard,
}

// SAFETY: the ring is created SP/SC; the single producer and single consumer are enforced by
// the two unique, !Sync end handles, and the ring itself is designed for one producer thread
// and one consumer thread running concurrently. Freeing happens once, in Drop, when no end is
// left.
unsafe impl Send for RingInner {}
// SAFETY: see Send; shared access only happens through the two distinct end handles.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        let mut left = [std::ptr::null_mut::<c_void>(); 32];
        loop {
            // SAFETY: no end handle is left, so this is the only consumer; `left` has 32 slots.
            let n = unsafe {
                dpdk_sys::rte_ring_dequeue_burst(
                    self.raw.as_ptr(),
                    left.as_mut_ptr(),
                    32,
                    std::ptr::null_mut(),
                )
            };
            if n == 0 {
                break;
            }
            // SAFETY: the ring only ever holds owned mbufs enqueued by RingProducer; they are
            // ours now and freed once.
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(left.as_mut_ptr().cast(), n) };
        }
        // SAFETY: the ring is empty and nothing references it any more.
        unsafe { dpdk_sys::rte_ring_free(self.raw.as_ptr()) };
    }
}

/// Constructor of SPSC mbuf rings; see [`Ring::create`].
#[derive(Debug)]
pub struct Ring;

impl Ring {
    /// Creates a ring holding up to `size` mbufs (any size; DPDK rounds its storage up to a
    /// power of two) named `name` (unique in the process, at most 28 bytes), and returns its
    /// two ends. Each end is `Send`, so it can be moved to the lcore that uses it.
    pub fn create(
        _eal: &Eal,
        name: &str,
        size: u32,
    ) -> Result<(RingProducer, RingConsumer), DpdkError> {
        let op = || format!("rte_ring_create({name})");
        let cname =
            CString::new(name).map_err(|_| DpdkError::invalid(op(), "name contains a NUL byte"))?;
        if size == 0 {
            return Err(DpdkError::invalid(op(), "size 0"));
        }
        let flags = dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ | dpdk_sys::RING_F_EXACT_SZ;
        // SAFETY: EAL is initialised and we are on the main lcore (`_eal` is !Send); the name is
        // a valid C string that DPDK copies.
        let raw = unsafe {
            dpdk_sys::rte_ring_create(cname.as_ptr(), size, dpdk_sys::SOCKET_ID_ANY, flags)
        };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_rte_errno(op()))?;
        let inner = Arc::new(RingInner {
            raw,
            _handle: HandleGuard::new(),
        });
        Ok((
            RingProducer {
                inner: Arc::clone(&inner),
                _not_sync: PhantomData,
            },
            RingConsumer {
                inner,
                _not_sync: PhantomData,
            },
        ))
    }
}

/// The enqueue end of an SPSC ring (`Send`, not `Sync`: one producer lcore).
pub struct RingProducer {
    inner: Arc<RingInner>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl std::fmt::Debug for RingProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingProducer")
    }
}

impl RingProducer {
    /// Moves as many packets of `pkts` as fit into the ring, front first; returns how many.
    /// The enqueued ones leave the front of `pkts`; the rest stay in it, still owned by the
    /// caller. Never allocates.
    #[inline]
    pub fn enqueue_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len();
        if len == 0 {
            return 0;
        }
        let n = u32::try_from(len).unwrap_or(u32::MAX);
        // SAFETY: this is the ring's only producer (unique !Sync handle, ring created SP).
        // `pkts` holds `n` owned mbufs laid out as pointers (Mbuf is transparent); the ring
        // takes ownership of the first `done`.
        let done = unsafe {
            dpdk_sys::rte_ring_enqueue_burst(
                self.inner.raw.as_ptr(),
                pkts.as_ptr().cast::<*mut c_void>(),
                n,
                std::ptr::null_mut(),
            )
        } as usize;
        if done > 0 {
            // SAFETY: the first `done` entries now belong to the ring: move the rest over them
            // and shorten the Vec so that none is dropped or owned twice.
            unsafe {
                let p = pkts.as_mut_ptr();
                std::ptr::copy(p.add(done), p, len - done);
                pkts.set_len(len - done);
            }
        }
        done
    }
}

/// The dequeue end of an SPSC ring (`Send`, not `Sync`: one consumer lcore).
pub struct RingConsumer {
    inner: Arc<RingInner>,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl std::fmt::Debug for RingConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingConsumer")
    }
}

impl RingConsumer {
    /// Appends up to `max` packets (and no more than the spare capacity of `out`) taken from
    /// the ring; returns how many. Never allocates: reserve once, up front.
    #[inline]
    pub fn dequeue_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let len = out.len();
        let room = max.min(out.capacity() - len).min(u32::MAX as usize) as u32;
        if room == 0 {
            return 0;
        }
        // SAFETY: this is the ring's only consumer (unique !Sync handle, ring created SC). The
        // spare capacity holds `room` slots; the ring writes `n` owned mbuf pointers (non-null:
        // only mbufs are ever enqueued) into them.
        let n = unsafe {
            dpdk_sys::rte_ring_dequeue_burst(
                self.inner.raw.as_ptr(),
                out.as_mut_ptr().add(len).cast::<*mut c_void>(),
                room,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the first n spare slots were initialised with owned mbufs.
        unsafe { out.set_len(len + n) };
        n
    }

    /// Packets waiting in the ring (a snapshot).
    pub fn len(&self) -> usize {
        // SAFETY: reading the ring's head/tail counters is safe from any thread.
        unsafe { dpdk_sys::rte_ring_count(self.inner.raw.as_ptr()) as usize }
    }

    /// Whether the ring is empty (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
