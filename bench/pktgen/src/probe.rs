//! The 16-byte probe every generated packet carries right after its TCP/UDP header.
//!
//! It names the flow (so a rewritten packet can be traced back to the flow that sent it even
//! when the balancer replaced every address), the TSC at which the packet was built (one-way
//! latency: the generator sends and receives on the same core), and whether it belongs to the
//! measured interval (so loss is counted on exactly the packets sent in it).
//!
//! Layout (big-endian): magic `u16` | flags `u8` | kind `u8` | flow `u32` | tsc `u64`. Every
//! field starts at an even offset, so incremental checksum updates stay word-aligned.

/// Length of the probe.
pub const PROBE_LEN: usize = 16;
/// Marks a probe ("DP").
pub const MAGIC: u16 = 0x4450;
/// Flags bit: built during the measured interval.
pub const F_MEASURED: u8 = 0x01;

/// Offsets inside the probe.
pub const OFF_MAGIC: usize = 0;
pub const OFF_FLAGS: usize = 2;
pub const OFF_KIND: usize = 3;
pub const OFF_FLOW: usize = 4;
pub const OFF_TSC: usize = 8;

/// What a probe says about its packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub flags: u8,
    pub kind: u8,
    pub flow: u32,
    pub tsc: u64,
}

impl Probe {
    /// Whether the packet was built in the measured interval.
    pub fn measured(&self) -> bool {
        self.flags & F_MEASURED != 0
    }

    /// Writes the probe at the start of `buf`; `false` when `buf` is too short.
    pub fn write(&self, buf: &mut [u8]) -> bool {
        let Some(b) = buf.first_chunk_mut::<PROBE_LEN>() else {
            return false;
        };
        b[OFF_MAGIC..OFF_MAGIC + 2].copy_from_slice(&MAGIC.to_be_bytes());
        b[OFF_FLAGS] = self.flags;
        b[OFF_KIND] = self.kind;
        b[OFF_FLOW..OFF_FLOW + 4].copy_from_slice(&self.flow.to_be_bytes());
        b[OFF_TSC..OFF_TSC + 8].copy_from_slice(&self.tsc.to_be_bytes());
        true
    }

    /// Reads a probe from the start of `buf`; `None` when too short or the magic is wrong.
    pub fn read(buf: &[u8]) -> Option<Probe> {
        let b = buf.first_chunk::<PROBE_LEN>()?;
        if u16::from_be_bytes([b[0], b[1]]) != MAGIC {
            return None;
        }
        let mut flow = [0u8; 4];
        flow.copy_from_slice(&b[OFF_FLOW..OFF_FLOW + 4]);
        let mut tsc = [0u8; 8];
        tsc.copy_from_slice(&b[OFF_TSC..OFF_TSC + 8]);
        Some(Probe {
            flags: b[OFF_FLAGS],
            kind: b[OFF_KIND],
            flow: u32::from_be_bytes(flow),
            tsc: u64::from_be_bytes(tsc),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Probe {
            flags: F_MEASURED,
            kind: 3,
            flow: 0xdead_beef,
            tsc: 0x0123_4567_89ab_cdef,
        };
        let mut b = [0u8; 20];
        assert!(p.write(&mut b));
        assert_eq!(Probe::read(&b), Some(p));
        assert!(p.measured());
        b[0] ^= 1;
        assert_eq!(Probe::read(&b), None);
        assert!(!p.write(&mut b[..15]));
        assert_eq!(Probe::read(&b[..15]), None);
    }
}
