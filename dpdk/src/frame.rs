//! The one abstraction the engine sees a packet through.

/// A single contiguous packet buffer the engine may read, rewrite in place, grow at the front
/// (into headroom) and shrink. The DPDK mbuf implements it zero-copy (`dpdk::Mbuf`); [`VecFrame`]
/// implements it for tests, fuzzing and benches.
pub trait Frame {
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front (taken from headroom) and returns the whole
    /// packet; `None` (packet unchanged) when the headroom is smaller than `n`.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front; `false` (packet unchanged) when shorter than `n`.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end; `false` (packet unchanged) when shorter than `n`.
    fn trim(&mut self, n: usize) -> bool;
    /// Sets the packet length to `len`, growing into tailroom if needed (new bytes are
    /// unspecified); `false` (unchanged) when the buffer cannot hold `len` bytes.
    fn set_len(&mut self, len: usize) -> bool;
    /// The receive hash the NIC computed (RSS), when it delivered one.
    fn rss_hash(&self) -> Option<u32> {
        None
    }
}

/// A heap frame with fixed headroom and capacity, the test and bench twin of an mbuf.
#[derive(Clone, Debug)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecFrame {
    /// Headroom of a new frame, as DPDK's `RTE_PKTMBUF_HEADROOM`.
    pub const HEADROOM: usize = 128;
    /// Data room after the headroom, as an mbuf of `RTE_MBUF_DEFAULT_DATAROOM`.
    pub const DATAROOM: usize = 2048;

    /// An empty frame.
    pub fn new() -> Self {
        VecFrame {
            buf: vec![0; Self::HEADROOM + Self::DATAROOM],
            start: Self::HEADROOM,
            end: Self::HEADROOM,
        }
    }

    /// Empties the frame and restores its full headroom, as an mbuf gets when it goes back
    /// to its pool.
    pub fn reset(&mut self) {
        self.start = Self::HEADROOM;
        self.end = Self::HEADROOM;
    }

    /// A frame holding a copy of `bytes` (truncated to the data room).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut f = Self::new();
        let n = bytes.len().min(Self::DATAROOM);
        f.buf[f.start..f.start + n].copy_from_slice(&bytes[..n]);
        f.end = f.start + n;
        f
    }
}

impl Default for VecFrame {
    fn default() -> Self {
        Self::new()
    }
}

impl Frame for VecFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(&mut self.buf[self.start..self.end])
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        if self.start + len > self.buf.len() {
            return false;
        }
        self.end = self.start + len;
        true
    }
}

/// A boxed frame is a frame: a pointer-sized handle like the DPDK mbuf, so benches that move
/// frames through the engine move 8 bytes per packet, as the daemon does.
impl<F: Frame + ?Sized> Frame for Box<F> {
    #[inline]
    fn data(&self) -> &[u8] {
        (**self).data()
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        (**self).data_mut()
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        (**self).prepend(n)
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        (**self).adj(n)
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        (**self).trim(n)
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        (**self).set_len(len)
    }
    fn rss_hash(&self) -> Option<u32> {
        (**self).rss_hash()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_trim_respect_bounds() {
        let mut f = VecFrame::from_bytes(&[1, 2, 3, 4]);
        assert!(f.prepend(VecFrame::HEADROOM + 1).is_none());
        assert_eq!(f.data(), &[1, 2, 3, 4]);
        f.prepend(2).unwrap()[..2].copy_from_slice(&[9, 9]);
        assert_eq!(f.data(), &[9, 9, 1, 2, 3, 4]);
        assert!(f.adj(2));
        assert!(f.trim(1));
        assert_eq!(f.data(), &[1, 2, 3]);
        assert!(!f.trim(4));
        assert!(f.set_len(10));
        assert_eq!(f.data().len(), 10);
        assert!(!f.set_len(VecFrame::DATAROOM + 1));
    }
}
