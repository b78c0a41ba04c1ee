//! In-place address/port rewrites for the NAT forwarding modes: FullNAT both ways, and NAT,
//! which is the same rewrite with the client endpoint kept on one side (its source towards the
//! real server, its destination on the way back).
//!
//! Checksums are patched incrementally (RFC 1624): the address and port changes are summed
//! once into a [`Delta`] and applied to the IP header checksum and the TCP/UDP checksum, so the
//! cost does not depend on the payload length. A received bad L4 checksum stays bad (the
//! receiver still drops it), exactly as if the packet had been recomputed from its own bytes.

use core::net::SocketAddrV4;

use super::checksum::Delta;
use super::ether::ETH_HLEN;
use super::ipv4::{
    IPPROTO_TCP, IPPROTO_UDP, IPV4_CSUM_OFF, IPV4_DST_OFF, IPV4_HLEN, IPV4_SRC_OFF, IPV4_TTL_OFF,
};
use super::parse::{Ipv4Info, L4, TCP_HLEN, UDP_HLEN};
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

/// [`rewrite_ipv4`] for a frame [`common`](super::parse::common) accepted (IPv4 without
/// options right after an untagged Ethernet header, TCP or UDP), with the TTL decremented:
/// the fast path's rewrite, at fixed offsets.
#[inline]
pub fn rewrite_common(
    data: &mut [u8],
    (src, sport): (u32, u16),
    (dst, dport): (u32, u16),
) -> Result<(), DropReason> {
    let (head, l4) = data
        .split_at_mut_checked(ETH_HLEN + IPV4_HLEN)
        .ok_or(DropReason::Truncated)?;
    let ip = head
        .last_chunk_mut::<IPV4_HLEN>()
        .ok_or(DropReason::Truncated)?;
    rewrite(ip, l4, (src, dst), Some((sport, dport)), true)
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
    let (ttl, proto) = (ip[IPV4_TTL_OFF], ip[IPV4_TTL_OFF + 1]);
    if dec_ttl && ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let addrs = Delta::new()
        .add32(read32(ip, IPV4_SRC_OFF), src)
        .add32(read32(ip, IPV4_DST_OFF), dst);
    // Patch the L4 header first: it is the only step that can still fail.
    match (ports, proto) {
        (Some((sport, dport)), IPPROTO_TCP) => {
            let h = l4
                .first_chunk_mut::<TCP_HLEN>()
                .ok_or(DropReason::Truncated)?;
            let d = rewrite_ports(h, addrs, sport, dport);
            write16(h, TCP_CSUM_OFF, d.apply(read16(h, TCP_CSUM_OFF)));
        }
        (Some((sport, dport)), IPPROTO_UDP) => {
            let h = l4
                .first_chunk_mut::<UDP_HLEN>()
                .ok_or(DropReason::Truncated)?;
            let d = rewrite_ports(h, addrs, sport, dport);
            write16(h, UDP_CSUM_OFF, d.apply_udp(read16(h, UDP_CSUM_OFF)));
        }
        _ => {}
    }
    let mut iph = addrs;
    if dec_ttl {
        iph = iph.add16(
            u16::from_be_bytes([ttl, proto]),
            u16::from_be_bytes([ttl - 1, proto]),
        );
        ip[IPV4_TTL_OFF] = ttl - 1;
    }
    write32(ip, IPV4_SRC_OFF, src);
    write32(ip, IPV4_DST_OFF, dst);
    write16(ip, IPV4_CSUM_OFF, iph.apply(read16(ip, IPV4_CSUM_OFF)));
    Ok(())
}

/// Writes the two ports at the start of an L4 header and returns `addrs` plus their change,
/// the delta of the L4 checksum (which covers the addresses through the pseudo-header).
#[inline]
fn rewrite_ports<const N: usize>(h: &mut [u8; N], addrs: Delta, sport: u16, dport: u16) -> Delta {
    let d = addrs.add16(read16(h, 0), sport).add16(read16(h, 2), dport);
    write16(h, 0, sport);
    write16(h, 2, dport);
    d
}

/// Big-endian u16 at `off` of a header whose length the caller checked (`off + 2 <= N`).
#[inline]
fn read16<const N: usize>(h: &[u8; N], off: usize) -> u16 {
    h.get(off..off + 2)
        .and_then(|b| b.first_chunk::<2>())
        .map_or(0, |b| u16::from_be_bytes(*b))
}

/// Big-endian u32 at `off` (`off + 4 <= N`).
#[inline]
fn read32<const N: usize>(h: &[u8; N], off: usize) -> u32 {
    h.get(off..off + 4)
        .and_then(|b| b.first_chunk::<4>())
        .map_or(0, |b| u32::from_be_bytes(*b))
}

/// Stores a big-endian u16 at `off` (`off + 2 <= N`).
#[inline]
fn write16<const N: usize>(h: &mut [u8; N], off: usize, v: u16) {
    if let Some(b) = h.get_mut(off..off + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Stores a big-endian u32 at `off` (`off + 4 <= N`).
#[inline]
fn write32<const N: usize>(h: &mut [u8; N], off: usize, v: u32) {
    if let Some(b) = h.get_mut(off..off + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}
