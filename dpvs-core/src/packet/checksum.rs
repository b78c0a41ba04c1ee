//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Full sums are for generated packets, verification and tests; the forwarding path only ever
//! uses the incremental [`update16`] / [`update32`] (or [`Delta`] for several fields at once),
//! which cost a handful of adds whatever the packet length.

use core::net::Ipv4Addr;

use super::ipv4::{IPV4_CSUM_OFF, IpProto};

/// One's complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with
/// zero), added to `initial` and folded to 16 bits. Chain calls by passing the previous result
/// as `initial`, but only across even-length pieces (an odd piece shifts the word alignment).
pub fn sum(data: &[u8], initial: u32) -> u32 {
    // A u64 accumulator cannot overflow for any slice that fits in memory at 32 bits per add.
    let mut acc = u64::from(initial);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut rest = words.remainder().chunks_exact(2);
    for w in &mut rest {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold64(acc)
}

/// Folds a 64-bit one's complement accumulator to 16 bits (end-around carry).
#[inline]
fn fold64(acc: u64) -> u32 {
    u32::from(fold(fold64_32(acc)))
}

/// Folds a 64-bit one's complement accumulator to 32 bits. Adding the word to itself rotated by
/// half its width leaves in the high half the sum of both halves with the end-around carry
/// (the low half's carry lands right there), in three instructions and no loop.
#[inline]
fn fold64_32(acc: u64) -> u32 {
    (acc.wrapping_add(acc.rotate_right(32)) >> 32) as u32
}

/// Folds a 32-bit one's complement accumulator to 16 bits (not complemented), the same way as
/// [`fold64_32`].
#[inline]
pub fn fold(s: u32) -> u16 {
    (s.wrapping_add(s.rotate_right(16)) >> 16) as u16
}

/// The checksum field value for an accumulated sum: the complement of the folded sum.
pub fn finish(s: u32) -> u16 {
    !fold(s)
}

/// Sum of the IPv4 pseudo-header the TCP and UDP checksums cover.
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProto, l4_len: u16) -> u32 {
    let s = u32::from(src);
    let d = u32::from(dst);
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(proto.0) + u32::from(l4_len)
}

/// Checksum of an IPv4 header (options included), computed as if its checksum field were
/// zero so it can be called on a header that already carries one.
pub fn ipv4_header_checksum(hdr: &[u8]) -> u16 {
    let before = hdr.get(..IPV4_CSUM_OFF).unwrap_or(hdr);
    let after = hdr.get(IPV4_CSUM_OFF + 2..).unwrap_or(&[]);
    finish(sum(after, sum(before, 0)))
}

/// Whether an IPv4 header (options included) carries a correct checksum.
pub fn ipv4_header_valid(hdr: &[u8]) -> bool {
    fold(sum(hdr, 0)) == 0xffff
}

/// [`ipv4_header_valid`] for a header without options, in straight-line code.
#[inline]
pub fn ipv4_header_valid20(hdr: &[u8; 20]) -> bool {
    sum20_ne(hdr) == 0xffff
}

/// Computes and stores the checksum of an IPv4 header without options, whose checksum field
/// is zero, in straight-line code.
#[inline]
pub fn fill_ipv4_header_checksum20(hdr: &mut [u8; 20]) {
    let c = !sum20_ne(hdr);
    hdr[IPV4_CSUM_OFF..IPV4_CSUM_OFF + 2].copy_from_slice(&c.to_ne_bytes());
}

/// The folded one's complement sum of 20 bytes, in native byte order: the sum does not
/// depend on byte order, so five native 32-bit words are added, and the result's bytes are
/// in the order of the data's.
#[inline]
fn sum20_ne(hdr: &[u8; 20]) -> u16 {
    let w = |i: usize| {
        u64::from(u32::from_ne_bytes([
            hdr[i],
            hdr[i + 1],
            hdr[i + 2],
            hdr[i + 3],
        ]))
    };
    fold(fold64_32(w(0) + w(4) + w(8) + w(12) + w(16)))
}

/// Computes and stores the checksum of the IPv4 header at the start of `hdr` (`hdr` is exactly
/// the header, options included); `false` when shorter than the checksum field.
pub fn fill_ipv4_header_checksum(hdr: &mut [u8]) -> bool {
    let c = ipv4_header_checksum(hdr);
    match hdr.get_mut(IPV4_CSUM_OFF..IPV4_CSUM_OFF + 2) {
        Some(f) => {
            f.copy_from_slice(&c.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Offset of the checksum field inside the L4 header of `proto` (TCP 16, UDP 6, ICMP 2).
pub fn l4_csum_offset(proto: IpProto) -> Option<usize> {
    match proto {
        IpProto::TCP => Some(16),
        IpProto::UDP => Some(6),
        IpProto::ICMP => Some(2),
        _ => None,
    }
}

/// The TCP or UDP checksum of `segment` (L4 header + payload) over IPv4, computed as if the
/// checksum field were zero. For UDP a computed 0 is returned as 0xFFFF, because 0 on the wire
/// means "no checksum". `None` for other protocols or a segment too short for its checksum
/// field or longer than an IPv4 length can express.
pub fn ipv4_l4_checksum(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProto,
    segment: &[u8],
) -> Option<u16> {
    let off = l4_csum_offset(proto).filter(|_| proto != IpProto::ICMP)?;
    let len = u16::try_from(segment.len()).ok()?;
    let before = segment.get(..off)?;
    let after = segment.get(off + 2..)?;
    let c = finish(sum(
        after,
        sum(before, pseudo_header_sum(src, dst, proto, len)),
    ));
    Some(if proto == IpProto::UDP && c == 0 {
        0xffff
    } else {
        c
    })
}

/// Computes and stores the TCP or UDP checksum of `segment`; `false` (unchanged) when
/// [`ipv4_l4_checksum`] cannot compute one.
pub fn fill_ipv4_l4_checksum(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProto,
    segment: &mut [u8],
) -> bool {
    let Some(c) = ipv4_l4_checksum(src, dst, proto, segment) else {
        return false;
    };
    let Some(off) = l4_csum_offset(proto) else {
        return false;
    };
    match segment.get_mut(off..off + 2) {
        Some(f) => {
            f.copy_from_slice(&c.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Whether the TCP or UDP `segment` carries a correct checksum (a UDP checksum of 0, "none",
/// counts as correct). `false` for other protocols.
pub fn ipv4_l4_valid(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProto, segment: &[u8]) -> bool {
    if proto == IpProto::UDP && segment.get(6..8) == Some(&[0, 0]) {
        return true;
    }
    match (l4_csum_offset(proto), u16::try_from(segment.len())) {
        (Some(off), Ok(len)) if proto != IpProto::ICMP && segment.len() >= off + 2 => {
            fold(sum(segment, pseudo_header_sum(src, dst, proto, len))) == 0xffff
        }
        _ => false,
    }
}

/// Checksum of a message without pseudo-header (ICMP), computed as if the field at `csum_off`
/// were zero.
pub fn plain_checksum(msg: &[u8], csum_off: usize) -> u16 {
    let before = msg.get(..csum_off).unwrap_or(msg);
    let after = msg.get(csum_off + 2..).unwrap_or(&[]);
    finish(sum(after, sum(before, 0)))
}

/// Whether a message without pseudo-header (ICMP) carries a correct checksum.
pub fn plain_valid(msg: &[u8]) -> bool {
    fold(sum(msg, 0)) == 0xffff
}

/// Accumulates field changes for one incremental checksum update (RFC 1624, eqn. 3:
/// `HC' = ~(~HC + ~m + m')`), so several rewritten fields cost one fold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta(u64);

impl Delta {
    /// No change.
    pub const fn new() -> Self {
        Delta(0)
    }

    /// A 16-bit field changes from `old` to `new`.
    #[inline]
    pub const fn add16(self, old: u16, new: u16) -> Self {
        Delta(self.0 + (!old) as u64 + new as u64)
    }

    /// A 32-bit field (two aligned words) changes from `old` to `new`. The one's complement sum
    /// of two 16-bit words equals that of the 32-bit word once folded, so it is added whole.
    #[inline]
    pub const fn add32(self, old: u32, new: u32) -> Self {
        Delta(self.0 + (!old) as u64 + new as u64)
    }

    /// The updated checksum field for one that held `csum` before the changes.
    #[inline]
    pub fn apply(self, csum: u16) -> u16 {
        // A few dozen fields of at most 2^32: far below u64 overflow.
        !fold(fold64_32(u64::from(!csum) + self.0))
    }

    /// As [`Delta::apply`] for a UDP checksum field: 0 ("none") stays 0, and a computed 0 is
    /// sent as 0xFFFF.
    #[inline]
    pub fn apply_udp(self, csum: u16) -> u16 {
        if csum == 0 {
            return 0;
        }
        match self.apply(csum) {
            0 => 0xffff,
            c => c,
        }
    }
}

/// Incremental update of checksum `csum` after a 16-bit field changed from `old` to `new`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    Delta::new().add16(old, new).apply(csum)
}

/// Incremental update of checksum `csum` after a 32-bit field (e.g. an IPv4 address) changed
/// from `old` to `new`.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    Delta::new().add32(old, new).apply(csum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of RFC 1071 §3.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
        assert_eq!(sum(&[0xff], 0), 0xff00);
        assert_eq!(sum(&[], 7), 7);
    }

    /// A known-good header (the classic Wikipedia example, checksum 0xb861).
    #[test]
    fn ipv4_header_example() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header_checksum(&h), 0xb861);
        assert!(ipv4_header_valid(&h));
        h[10] = 0;
        h[11] = 0;
        assert!(!ipv4_header_valid(&h));
        assert!(fill_ipv4_header_checksum(&mut h));
        assert_eq!(&h[10..12], &[0xb8, 0x61]);
    }

    #[test]
    fn update_matches_recompute_on_header() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let old = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        let new = 0x0a00_0001u32;
        let c = update32(0xb861, old, new);
        h[12..16].copy_from_slice(&new.to_be_bytes());
        assert_eq!(c, ipv4_header_checksum(&h));
        let old_ttl = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let c2 = update16(c, old_ttl, u16::from_be_bytes([h[8], h[9]]));
        assert_eq!(c2, ipv4_header_checksum(&h));
    }

    #[test]
    fn udp_zero_checksum_rules() {
        let d = Delta::new().add16(1, 2);
        assert_eq!(d.apply_udp(0), 0);
        // A change that brings the sum to "negative zero" must not produce 0 for UDP.
        // csum c, sum S = !c; choose a change making the new sum 0xffff -> checksum 0.
        let c = 0x1234u16;
        let s = !c; // current folded sum
        let needed = 0xffff - s; // add this to the sum to reach 0xffff
        let d = Delta::new().add16(0, needed);
        assert_eq!(d.apply(c), 0);
        assert_eq!(d.apply_udp(c), 0xffff);
    }

    proptest::proptest! {
        #[test]
        fn fold_equals_looped_fold(s in proptest::prelude::any::<u32>()) {
            let mut r = u64::from(s);
            while r > 0xffff {
                r = (r & 0xffff) + (r >> 16);
            }
            proptest::prop_assert_eq!(u64::from(fold(s)), r);
            proptest::prop_assert_eq!(u64::from(fold64(u64::from(s))), r);
        }

        #[test]
        fn fold64_equals_looped_fold(s in proptest::prelude::any::<u64>()) {
            let mut r = s;
            while r > 0xffff {
                r = (r & 0xffff) + (r >> 16);
            }
            proptest::prop_assert_eq!(u64::from(fold64(s)), r);
        }

        #[test]
        fn incremental_equals_full(
            mut data in proptest::collection::vec(proptest::prelude::any::<u8>(), 12..64),
            pos in 0usize..3, new in proptest::prelude::any::<u32>()
        ) {
            // Checksum at bytes 0..2, a 32-bit field at an even offset after it.
            data[0] = 0;
            data[1] = 0;
            // Not all zero: the only data whose full and incremental sums differ (+0 vs -0).
            let last = data.len() - 1;
            data[last] |= 1;
            let c = plain_checksum(&data, 0);
            let off = 2 + 2 * pos;
            let old = u32::from_be_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]);
            data[off..off + 4].copy_from_slice(&new.to_be_bytes());
            let inc = update32(c, old, new);
            proptest::prop_assert_eq!(inc, plain_checksum(&data, 0));
            data[0..2].copy_from_slice(&inc.to_be_bytes());
            proptest::prop_assert!(plain_valid(&data));
        }
    }
}
