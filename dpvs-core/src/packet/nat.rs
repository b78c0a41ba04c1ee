//! In-place address/port rewrites for the NAT forwarding modes: FullNAT both ways, and NAT,
//! which is the same rewrite with the client endpoint kept on one side (its source towards the
//! real server, its destination on the way back).
//!
//! Checksums are patched incrementally (RFC 1624): the address and port changes are summed
//! once into a [`Delta`] and applied to the IP header checksum and the TCP/UDP checksum, so the
//! cost does not depend on the payload length. A received bad L4 checksum stays bad (the
//! receiver still drops it), exactly as if the packet had been recomputed from its own bytes.
//!
//! The arithmetic is on words read in the machine's byte order: the one's complement sum does
//! not depend on byte order (RFC 1071 §2.B), so a checksum patched with native-order words is
//! right once stored in native order too. Only the new addresses and ports are swapped, as
//! they must be to be written at all.

use core::net::SocketAddrV4;

use super::checksum::Delta;
use super::ipv4::{IPV4_CSUM_OFF, IPV4_DST_OFF, IPV4_HLEN, IPV4_SRC_OFF, IPV4_TTL_OFF, IpProto};
use super::parse::{COMMON_HEAD, COMMON_L4, Ipv4Info, L4, TCP_HLEN, UDP_HLEN};
use crate::drop::DropReason;

/// Offset of the TCP checksum in its header.
const TCP_CSUM_OFF: usize = 16;
/// Offset of the UDP checksum in its header.
const UDP_CSUM_OFF: usize = 6;

/// Rewrites the IPv4 source and destination to `src`/`dst` and, for TCP and UDP, the ports,
/// fixing both checksums incrementally; decrements the TTL too when `dec_ttl`. For ICMP and
/// other protocols only the addresses change (and the ports of `src`/`dst` are ignored).
///
/// `p` must come from [`parse`](super::parse::parse) of these same bytes. Errors leave the
/// packet unchanged: `TtlExceeded` when `dec_ttl` and the TTL is 0 or 1; `Truncated` when the
/// bytes do not hold the headers `p` describes (a broken caller contract, never a panic).
#[inline]
pub fn rewrite_ipv4(
    data: &mut [u8],
    p: &Ipv4Info,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    dec_ttl: bool,
) -> Result<(), DropReason> {
    let (head, l4) = data
        .split_at_mut_checked(p.l4_off)
        .ok_or(DropReason::Truncated)?;
    let ip = head
        .get_mut(p.l3_off..)
        .and_then(|h| h.first_chunk_mut::<IPV4_HLEN>())
        .ok_or(DropReason::Truncated)?;
    let ports = match p.l4 {
        L4::Tcp(_) | L4::Udp { .. } => Some((src.port(), dst.port())),
        L4::Icmp { .. } | L4::Other => None,
    };
    rewrite(
        ip,
        l4,
        (src.ip().to_bits(), dst.ip().to_bits()),
        ports,
        dec_ttl,
    )
}

/// [`rewrite_ipv4`] for the head of a frame [`common`](super::parse::common) accepted as
/// protocol `proto` with a TTL above 1 (the caller checked it), TTL decremented: the fast path's
/// rewrite, at fixed offsets and without a failure case.
#[inline(always)]
pub fn rewrite_common(
    head: &mut [u8; COMMON_HEAD],
    proto: IpProto,
    (src, sport): (u32, u16),
    (dst, dport): (u32, u16),
) {
    let (front, l4) = head.split_at_mut(COMMON_L4);
    let (Some(ip), Some(l4)) = (
        front.last_chunk_mut::<IPV4_HLEN>(),
        l4.first_chunk_mut::<TCP_HLEN>(),
    ) else {
        return;
    };
    debug_assert!(ip[IPV4_TTL_OFF] > 1);
    let addrs = addr_delta(ip, src, dst);
    let (l4, d) = rewrite_ports(l4, addrs, sport, dport);
    if proto == IpProto::TCP {
        put16(l4, TCP_CSUM_OFF, d.apply(ne16(l4, TCP_CSUM_OFF)));
    } else {
        put16(l4, UDP_CSUM_OFF, d.apply_udp(ne16(l4, UDP_CSUM_OFF)));
    }
    finish_ip(ip, (src, dst), addrs, true);
}

/// Rewrites the addresses of IPv4 header `ip` and, given `ports`, the ports of the TCP or UDP
/// header at the start of `l4` (the protocol byte says which), patching both checksums.
#[inline(always)]
fn rewrite(
    ip: &mut [u8; IPV4_HLEN],
    l4: &mut [u8],
    (src, dst): (u32, u32),
    ports: Option<(u16, u16)>,
    dec_ttl: bool,
) -> Result<(), DropReason> {
    if dec_ttl && ip[IPV4_TTL_OFF] <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let addrs = addr_delta(ip, src, dst);
    // Patch the L4 header first: it is the only step that can still fail.
    match (ports, IpProto(ip[IPV4_TTL_OFF + 1])) {
        (Some((sport, dport)), IpProto::TCP) => {
            let h = l4
                .first_chunk_mut::<TCP_HLEN>()
                .ok_or(DropReason::Truncated)?;
            let (h, d) = rewrite_ports(h, addrs, sport, dport);
            put16(h, TCP_CSUM_OFF, d.apply(ne16(h, TCP_CSUM_OFF)));
        }
        (Some((sport, dport)), IpProto::UDP) => {
            let h = l4
                .first_chunk_mut::<UDP_HLEN>()
                .ok_or(DropReason::Truncated)?;
            let (h, d) = rewrite_ports(h, addrs, sport, dport);
            put16(h, UDP_CSUM_OFF, d.apply_udp(ne16(h, UDP_CSUM_OFF)));
        }
        _ => {}
    }
    finish_ip(ip, (src, dst), addrs, dec_ttl);
    Ok(())
}

/// The checksum change of replacing the addresses of `ip` by `src` and `dst` (host order).
#[inline(always)]
fn addr_delta(ip: &[u8; IPV4_HLEN], src: u32, dst: u32) -> Delta {
    Delta::new()
        .add32(ne32(ip, IPV4_SRC_OFF), src.to_be())
        .add32(ne32(ip, IPV4_DST_OFF), dst.to_be())
}

/// Writes `src` and `dst` (host order) into `ip`, decrements its TTL when `dec_ttl` (the caller
/// made sure it is above 1), and patches the header checksum for those and `addrs`, the change
/// of the addresses.
#[inline(always)]
fn finish_ip(ip: &mut [u8; IPV4_HLEN], (src, dst): (u32, u32), addrs: Delta, dec_ttl: bool) {
    put32(ip, IPV4_SRC_OFF, src.to_be());
    put32(ip, IPV4_DST_OFF, dst.to_be());
    let mut d = addrs;
    if dec_ttl {
        // The TTL byte drops by one and cannot borrow (it is at least 2): its 16-bit word
        // drops by the value of bytes [1, 0] in this order, whatever the word's other byte.
        d = d.add16(u16::from_ne_bytes([1, 0]), 0);
        ip[IPV4_TTL_OFF] -= 1;
    }
    put16(ip, IPV4_CSUM_OFF, d.apply(ne16(ip, IPV4_CSUM_OFF)));
}

/// Writes the two ports (host order) at the start of an L4 header and returns the header and
/// `addrs` plus their change: the delta of the L4 checksum, which covers the addresses through
/// the pseudo-header.
#[inline(always)]
fn rewrite_ports<const N: usize>(
    h: &mut [u8; N],
    addrs: Delta,
    sport: u16,
    dport: u16,
) -> (&mut [u8; N], Delta) {
    let (sport, dport) = (sport.to_be(), dport.to_be());
    let d = addrs.add16(ne16(h, 0), sport).add16(ne16(h, 2), dport);
    put16(h, 0, sport);
    put16(h, 2, dport);
    (h, d)
}

/// The u16 at `off`, in native byte order, of a header whose length the caller checked
/// (`off + 2 <= N`).
#[inline(always)]
fn ne16<const N: usize>(h: &[u8; N], off: usize) -> u16 {
    h.get(off..off + 2)
        .and_then(|b| b.first_chunk::<2>())
        .map_or(0, |b| u16::from_ne_bytes(*b))
}

/// The u32 at `off`, in native byte order (`off + 4 <= N`).
#[inline(always)]
fn ne32<const N: usize>(h: &[u8; N], off: usize) -> u32 {
    h.get(off..off + 4)
        .and_then(|b| b.first_chunk::<4>())
        .map_or(0, |b| u32::from_ne_bytes(*b))
}

/// Stores `v` at `off` in native byte order (`off + 2 <= N`).
#[inline(always)]
fn put16<const N: usize>(h: &mut [u8; N], off: usize, v: u16) {
    if let Some(b) = h.get_mut(off..off + 2) {
        b.copy_from_slice(&v.to_ne_bytes());
    }
}

/// Stores `v` at `off` in native byte order (`off + 4 <= N`).
#[inline(always)]
fn put32<const N: usize>(h: &mut [u8; N], off: usize, v: u32) {
    if let Some(b) = h.get_mut(off..off + 4) {
        b.copy_from_slice(&v.to_ne_bytes());
    }
}
