//! Packet-buffer pools.

use std::ffi::CString;
use std::ptr::NonNull;

use super::eal::{self, Eal};
use super::error::DpdkError;
use super::mbuf::Mbuf;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`), created at start-up and never freed:
/// DPDK applications keep their pools for the life of the process, and a `&'static` pool lets
/// [`Mbuf`] carry no lifetime.
///
/// Allocation and free are thread-safe (DPDK's default multi-producer/multi-consumer ring ops),
/// with a per-lcore cache on EAL lcores.
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    name: String,
}

// SAFETY: the rte_mempool is created with multi-producer/multi-consumer ops, so every operation
// exposed here (get/put/counters) may run from any thread concurrently; the pointer never
// changes and the pool is never freed.
unsafe impl Send for Mempool {}
// SAFETY: as above, all `&self` operations are thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool").field("name", &self.name).finish()
    }
}

impl Mempool {
    /// Creates a pool of `n_mbufs` buffers of the default size (`RTE_MBUF_DEFAULT_BUF_SIZE`:
    /// 128 bytes of headroom and 2048 of data room, enough for one 1500-byte frame without
    /// scatter) with a per-lcore cache of `cache_size` (at most 512), on NUMA `socket`
    /// (`None`: any). `name` must be unique in the process.
    pub fn create(
        eal: &Eal,
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        socket: Option<u32>,
    ) -> Result<&'static Mempool, DpdkError> {
        let op = || format!("rte_pktmbuf_pool_create({name})");
        let cname =
            CString::new(name).map_err(|_| DpdkError::invalid(op(), "name contains a NUL byte"))?;
        let socket = match socket {
            None => dpdk_sys::SOCKET_ID_ANY,
            Some(s) => {
                i32::try_from(s).map_err(|_| DpdkError::invalid(op(), format!("bad socket {s}")))?
            }
        };
        let buf_size = u16::try_from(dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE)
            .expect("RTE_MBUF_DEFAULT_BUF_SIZE fits u16");
        // SAFETY: EAL is initialised (`eal` exists) and this is its main lcore; the name is a
        // valid C string that DPDK copies.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                n_mbufs,
                cache_size,
                0,
                buf_size,
                socket,
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_rte_errno(op()))?;
        let pool: &'static Mempool = Box::leak(Box::new(Mempool {
            raw,
            name: name.to_string(),
        }));
        eal.register_pool(pool);
        Ok(pool)
    }

    /// Takes one buffer (empty, headroom reserved); `None` when the pool is exhausted or the
    /// EAL is gone.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        if !eal::is_live() {
            return None;
        }
        // SAFETY: the pool is valid while the EAL is live (checked above); rte_pktmbuf_alloc is
        // thread-safe and returns either NULL or a fresh mbuf that we now own.
        let m = unsafe { dpdk_sys::rte_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: a non-null result is a freshly allocated mbuf owned by nobody else.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Appends up to `n` fresh buffers to `out` (never beyond its spare capacity), all or
    /// nothing; returns whether they were allocated. For generators that build bursts.
    pub fn alloc_bulk(&self, out: &mut Vec<Mbuf>, n: usize) -> bool {
        let len = out.len();
        if !eal::is_live() || n > out.capacity() - len {
            return false;
        }
        let Ok(count) = u32::try_from(n) else {
            return false;
        };
        // SAFETY: the spare capacity holds at least n slots; Mbuf is a transparent NonNull
        // <rte_mbuf>, so the slots can receive `*mut rte_mbuf`. rte_pktmbuf_alloc_bulk fills all
        // n slots with owned mbufs on success (returns 0) and none on failure.
        let ret = unsafe {
            dpdk_sys::rte_pktmbuf_alloc_bulk(
                self.raw.as_ptr(),
                out.as_mut_ptr().add(len).cast::<*mut dpdk_sys::rte_mbuf>(),
                count,
            )
        };
        if ret != 0 {
            return false;
        }
        // SAFETY: the n slots after len were initialised with owned mbufs above.
        unsafe { out.set_len(len + n) };
        true
    }

    /// Buffers currently out of the pool: owned by the application, in device queues or in
    /// rings. Returns to its idle value when everything is freed.
    pub fn in_use(&self) -> u32 {
        if !eal::is_live() {
            return 0;
        }
        self.in_use_raw()
    }

    /// Buffers available for allocation (including the per-lcore caches).
    pub fn available(&self) -> u32 {
        if !eal::is_live() {
            return 0;
        }
        // SAFETY: the pool is valid while the EAL is live; the counter read is thread-safe.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// The name the pool was created with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `in_use` without the liveness check, for the EAL's own drop.
    pub(crate) fn in_use_raw(&self) -> u32 {
        // SAFETY: called while DPDK memory is still mapped (before rte_eal_cleanup); the counter
        // read is thread-safe.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// The raw pool, for queue set-up.
    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }
}
