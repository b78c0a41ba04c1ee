//! The owned packet buffer.

use std::ptr::NonNull;

use crate::frame::Frame;

/// One packet buffer, owned: freed back to its pool on drop.
///
/// `Send` so it can move between lcores (through rings), not `Sync`: its bytes are mutated
/// through `&mut`. `repr(transparent)` over the mbuf pointer so that a `Vec<Mbuf>` is, in
/// memory, the `struct rte_mbuf *` array the burst functions fill and drain in place.
///
/// The data plane uses single-segment buffers (ports run without scatter); the [`Frame`]
/// methods see the first segment, and a chained buffer ([`Mbuf::is_chained`]) should be
/// dropped by the worker.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<dpdk_sys::rte_mbuf>,
}

// SAFETY: an Mbuf is the only handle to its rte_mbuf (never cloned, refcount 1), and freeing
// to the pool is thread-safe, so ownership may move to another thread.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of `raw`.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else owns or references (for example fresh from
    /// `rte_pktmbuf_alloc` or an RX burst) whose pool outlives it.
    #[inline]
    pub(crate) unsafe fn from_raw(raw: NonNull<dpdk_sys::rte_mbuf>) -> Self {
        Mbuf { raw }
    }

    #[inline]
    fn m(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we own a valid mbuf and nothing else accesses it while we hold &self.
        unsafe { self.raw.as_ref() }
    }

    #[inline]
    fn m_mut(&mut self) -> &mut dpdk_sys::rte_mbuf {
        // SAFETY: we own a valid mbuf and hold &mut self, so the access is exclusive.
        unsafe { self.raw.as_mut() }
    }

    /// Length of the packet data in this (first) segment.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.m().data_len)
    }

    /// Whether the packet holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.m().data_len == 0
    }

    /// Whether the packet spans several segments (only possible from a device that scatters
    /// despite the configuration); the engine drops such packets.
    #[inline]
    pub fn is_chained(&self) -> bool {
        self.m().nb_segs > 1
    }

    /// Bytes free in front of the data, usable by [`Frame::prepend`].
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.m().data_off)
    }

    /// Bytes free after the data, usable by [`Frame::set_len`].
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.m();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    /// The port the packet was received on (meaningless for locally allocated buffers).
    #[inline]
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// Records `port` as the packet's port: the data plane uses it to carry, with a packet
    /// handed between threads, the port it came in on or must go out of.
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.m_mut().port = port;
    }

    /// The raw `rte_mbuf` offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.m().ol_flags
    }

    /// Whether this is a single segment whose length fields agree, so that length changes
    /// may be applied to `data_len` and `pkt_len` alike.
    #[inline]
    fn single(&self) -> bool {
        let m = self.m();
        m.nb_segs == 1 && m.pkt_len == u32::from(m.data_len)
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (and its segments); its pool outlives it (pools are never
        // freed and EAL cleanup is skipped while mbufs are out).
        unsafe { dpdk_sys::rte_pktmbuf_free(self.raw.as_ptr()) };
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.m();
        f.debug_struct("Mbuf")
            .field("data_off", &m.data_off)
            .field("data_len", &m.data_len)
            .field("pkt_len", &m.pkt_len)
            .field("nb_segs", &m.nb_segs)
            .field("port", &m.port)
            .finish()
    }
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's data buffer (DPDK
        // invariant data_off + data_len <= buf_len, kept by every method here); the buffer is
        // initialised memory of the pool, owned by us for as long as &self lives.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m_mut();
        // SAFETY: as in `data`, and &mut self makes the access exclusive (refcount is 1: mbufs
        // are never cloned).
        unsafe {
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let m = self.m_mut();
        let n16 = u16::try_from(n).ok()?;
        if n16 > m.data_off {
            return None;
        }
        // data_len + n <= data_off + data_len <= buf_len: no overflow.
        m.data_off -= n16;
        m.data_len += n16;
        m.pkt_len += u32::from(n16);
        Some(self.data_mut())
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        if n16 > m.data_len {
            return false;
        }
        m.data_off += n16;
        m.data_len -= n16;
        m.pkt_len -= u32::from(n16);
        true
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if !self.single() {
            return false;
        }
        let m = self.m_mut();
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        if n16 > m.data_len {
            return false;
        }
        m.data_len -= n16;
        m.pkt_len -= u32::from(n16);
        true
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        if !self.single() {
            return false;
        }
        let m = self.m_mut();
        if usize::from(m.data_off) + len > usize::from(m.buf_len) {
            return false;
        }
        // len <= buf_len <= u16::MAX after the check above.
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }

    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        let m = self.m();
        if m.ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_RSS_HASH) != 0 {
            // SAFETY: the union holds plain integers; with RX_RSS_HASH set the PMD wrote `rss`.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }
}
