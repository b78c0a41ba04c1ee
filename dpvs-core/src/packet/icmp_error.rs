//! ICMP errors about TCP and UDP packets (destination unreachable, any code, and time
//! exceeded; RFC 792): the packet such an error quotes, read without trusting a byte of it,
//! and its translation for the other end of a NAT connection.
//!
//! An error quotes the offending packet as its sender received it: the IPv4 header (options
//! included) and at least the first 8 bytes after it, where TCP and UDP keep their ports
//! (RFC 792; routers after RFC 1812 and Linux quote up to 576 bytes in all). For a packet the
//! balancer rewrote, that is the rewritten packet; the end that sent the original must find
//! its own packet quoted instead, or its stack matches the error to no socket.

use core::net::{Ipv4Addr, SocketAddrV4};

use super::checksum::{Delta, fill_ipv4_header_checksum, plain_checksum, plain_valid};
use super::icmp::{ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED};
use super::ipv4::{
    IP_OFFMASK, IPV4_DST_OFF, IPV4_FRAG_OFF, IPV4_HLEN, IPV4_PROTO_OFF, IPV4_SRC_OFF, IpProto,
};
use super::parse::{ICMP_HLEN, Ipv4Info, L4, TCP_HLEN, UDP_HLEN};
use crate::drop::DropReason;

/// Bytes of the quoted packet after its IPv4 header that an error must carry: what RFC 792
/// promises, and what holds the TCP and UDP ports.
pub const QUOTED_L4: usize = 8;

/// The shortest ICMP error this module reads: its own header, the quoted IPv4 header and
/// [`QUOTED_L4`] bytes.
pub const MIN_LEN: usize = ICMP_HLEN + IPV4_HLEN + QUOTED_L4;

/// Offset of the checksum in a TCP header.
const TCP_CSUM_OFF: usize = 16;
/// Offset of the checksum in a UDP header.
const UDP_CSUM_OFF: usize = 6;
/// Offset of the checksum in the ICMP header.
const ICMP_CSUM_OFF: usize = 2;

/// Whether `ip` is an ICMP error this module reads: destination unreachable (any code,
/// "fragmentation needed" included) or time exceeded.
pub fn is_error(ip: &Ipv4Info) -> bool {
    ip.proto == IpProto::ICMP
        && matches!(
            ip.l4,
            L4::Icmp {
                icmp_type: ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED,
                ..
            }
        )
}

/// Whether ICMP type `t` is an error (destination unreachable, source quench, redirect, time
/// exceeded, parameter problem): the kinds no error may be sent about (RFC 1122 §3.2.2).
fn is_error_type(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// The TCP or UDP packet an ICMP error quotes, as [`quoted`] read it. Offsets are from the
/// start of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    /// Offset of the quoted IPv4 header.
    pub l3_off: usize,
    /// Offset of its TCP or UDP header.
    pub l4_off: usize,
    /// End of the quoted bytes that are the packet's: the ICMP message's end, or the quoted
    /// packet's own end if that comes first (RFC 4884 pads the quote and appends extensions,
    /// which are not the packet's).
    pub end: usize,
    /// [`IpProto::TCP`] or [`IpProto::UDP`].
    pub proto: IpProto,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

/// Reads the packet quoted by the ICMP error `ip` (see [`is_error`]) of the frame `data`.
///
/// `Err(BadIcmpError)` when the quote cannot be read or contradicts itself: a message shorter
/// than [`MIN_LEN`], a quoted header whose version or header length is impossible or that
/// ends with fewer than [`QUOTED_L4`] bytes after it, a total length too short for its own
/// TCP or UDP header, or a quote of an ICMP error. `Err(IcmpNoConnection)` when it reads but
/// can be of no connection: another protocol than TCP or UDP (an echo reply, a tunnel's
/// outer header), or a later fragment (which holds no ports).
///
/// The ICMP checksum is not checked here (steering reads quotes too, and a full sum for
/// errors about no connection would be wasted): see [`checksum_valid`].
pub fn quoted(data: &[u8], ip: &Ipv4Info) -> Result<Quoted, DropReason> {
    let bad = DropReason::BadIcmpError;
    let inner = data
        .get(ip.l4_off..ip.end())
        .filter(|m| m.len() >= MIN_LEN)
        .and_then(|m| m.get(ICMP_HLEN..))
        .ok_or(bad)?;
    let h = inner.first_chunk::<IPV4_HLEN>().ok_or(bad)?;
    let hlen = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || hlen < IPV4_HLEN {
        return Err(bad);
    }
    let l4 = inner.get(hlen..hlen + QUOTED_L4).ok_or(bad)?;
    let (proto, min_l4) = connection_proto(h, l4)?;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total < hlen + min_l4 {
        return Err(bad);
    }
    let l3_off = ip.l4_off + ICMP_HLEN;
    Ok(Quoted {
        l3_off,
        l4_off: l3_off + hlen,
        end: ip.end().min(l3_off + total),
        proto,
        src: endpoint(h, IPV4_SRC_OFF, [l4[0], l4[1]]),
        dst: endpoint(h, IPV4_DST_OFF, [l4[2], l4[3]]),
    })
}

/// The protocol of the quoted packet with IPv4 header `h` and first bytes `l4` after it, and
/// the length of its shortest header, if the packet can be of a connection (see [`quoted`]).
fn connection_proto(h: &[u8; IPV4_HLEN], l4: &[u8]) -> Result<(IpProto, usize), DropReason> {
    let frag = u16::from_be_bytes([h[IPV4_FRAG_OFF], h[IPV4_FRAG_OFF + 1]]);
    match IpProto(h[IPV4_PROTO_OFF]) {
        _ if frag & IP_OFFMASK != 0 => Err(DropReason::IcmpNoConnection),
        IpProto::TCP => Ok((IpProto::TCP, TCP_HLEN)),
        IpProto::UDP => Ok((IpProto::UDP, UDP_HLEN)),
        // No host sends an error about an error: this one is forged or broken.
        IpProto::ICMP if l4.first().copied().is_some_and(is_error_type) => {
            Err(DropReason::BadIcmpError)
        }
        _ => Err(DropReason::IcmpNoConnection),
    }
}

/// The address at `off` of IPv4 header `h` with `port` (big-endian bytes).
fn endpoint(h: &[u8; IPV4_HLEN], off: usize, port: [u8; 2]) -> SocketAddrV4 {
    let a: [u8; 4] = h
        .get(off..off + 4)
        .and_then(|a| a.try_into().ok())
        .unwrap_or_default();
    SocketAddrV4::new(Ipv4Addr::from(a), u16::from_be_bytes(port))
}

/// Whether the ICMP message of `ip` in frame `data` carries a correct checksum. An error
/// with a wrong one is dropped rather than relayed (RFC 1122 §3.2.2, RFC 5508 §4): passed on
/// with a checksum recomputed over it, a corrupted "fragmentation needed" would announce a
/// made-up MTU as if it were true.
pub fn checksum_valid(data: &[u8], ip: &Ipv4Info) -> bool {
    data.get(ip.l4_off..ip.end()).is_some_and(plain_valid)
}

/// Rewrites the packet `q` that the ICMP error `ip` of frame `data` quotes to travel `src` →
/// `dst` (addresses and ports), and fixes the checksums this changes: the quoted IPv4
/// header's, the quoted TCP or UDP checksum when the quote holds it, and the ICMP checksum,
/// computed afresh (the caller checked the received one with [`checksum_valid`]). The outer
/// IPv4 header is left to the caller. `Err(BadIcmpError)`, the frame unchanged, when `q` does
/// not fit the message (it comes from [`quoted`] of these bytes, so it always does).
///
/// The quoted TCP or UDP checksum is patched incrementally, like the checksums of forwarded
/// packets, when the quote holds it (most do: Linux quotes up to 576 bytes); an 8-byte quote
/// of TCP ends before it, and there is nothing to patch. No receiver checks it: the quote is
/// usually a truncated segment that no checksum could match, and Linux matches the error to
/// its socket by addresses, ports (and for TCP the sequence number) alone. Patching it when
/// present makes the quote exactly the packet the end sent, as Linux's own NAT does; the
/// IPv4 header checksum, which covers only the header, is recomputed whole.
pub fn rewrite_quoted(
    data: &mut [u8],
    ip: &Ipv4Info,
    q: &Quoted,
    src: SocketAddrV4,
    dst: SocketAddrV4,
) -> Result<(), DropReason> {
    let bad = DropReason::BadIcmpError;
    let msg = data.get_mut(ip.l4_off..ip.end()).ok_or(bad)?;
    let hdr = q.l3_off.checked_sub(ip.l4_off).ok_or(bad)?;
    let l4 = q.l4_off.checked_sub(ip.l4_off).ok_or(bad)?;
    let end = q.end.checked_sub(ip.l4_off).ok_or(bad)?;
    let (head, rest) = msg.split_at_mut_checked(l4).ok_or(bad)?;
    let header = head.get_mut(hdr..).ok_or(bad)?;
    let segment = rest.get_mut(..end.saturating_sub(l4)).ok_or(bad)?;
    if header.len() < IPV4_HLEN || segment.len() < QUOTED_L4 {
        return Err(bad);
    }
    let addrs = rewrite_addrs(header, *src.ip(), *dst.ip());
    let ports = addrs
        .add16(be16(segment, 0), src.port())
        .add16(be16(segment, 2), dst.port());
    put(segment, 0, &src.port().to_be_bytes());
    put(segment, 2, &dst.port().to_be_bytes());
    patch_l4_checksum(segment, q.proto, ports);
    let c = plain_checksum(msg, ICMP_CSUM_OFF);
    put(msg, ICMP_CSUM_OFF, &c.to_be_bytes());
    Ok(())
}

/// Writes `src` and `dst` into the quoted IPv4 `header` (options included), recomputes its
/// checksum, and returns the change of the addresses: the quoted TCP or UDP checksum covers
/// them through its pseudo-header.
fn rewrite_addrs(header: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Delta {
    let change = Delta::new()
        .add32(be32(header, IPV4_SRC_OFF), src.to_bits())
        .add32(be32(header, IPV4_DST_OFF), dst.to_bits());
    put(header, IPV4_SRC_OFF, &src.octets());
    put(header, IPV4_DST_OFF, &dst.octets());
    fill_ipv4_header_checksum(header);
    change
}

/// Applies `change` to the TCP or UDP checksum of `proto` in the quoted `segment`, if the
/// quote holds it (a UDP checksum of 0, "none", stays 0).
fn patch_l4_checksum(segment: &mut [u8], proto: IpProto, change: Delta) {
    let off = if proto == IpProto::TCP {
        TCP_CSUM_OFF
    } else {
        UDP_CSUM_OFF
    };
    if segment.len() < off + 2 {
        return;
    }
    let old = be16(segment, off);
    let new = if proto == IpProto::TCP {
        change.apply(old)
    } else {
        change.apply_udp(old)
    };
    put(segment, off, &new.to_be_bytes());
}

/// The big-endian u16 at `off` of `b` (0 past its end; callers checked the length).
fn be16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .and_then(|w| w.first_chunk::<2>())
        .map_or(0, |w| u16::from_be_bytes(*w))
}

/// The big-endian u32 at `off` of `b` (0 past its end; callers checked the length).
fn be32(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|w| w.first_chunk::<4>())
        .map_or(0, |w| u32::from_be_bytes(*w))
}

/// Writes `v` at `off` of `b` (nothing past its end; callers checked the length).
fn put(b: &mut [u8], off: usize, v: &[u8]) {
    if let Some(dst) = b.get_mut(off..off + v.len()) {
        dst.copy_from_slice(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum::ipv4_header_valid;
    use crate::packet::parse::{L3, parse};
    use dpvs_testkit::frames::{IcmpError, Spec, icmp_error_frame};
    use proptest::prelude::*;

    /// A quoted IPv4 header (`ihl` words, options zero) of protocol `proto` and total length
    /// `total`, checksum valid, followed by `rest`.
    fn quote_bytes(ihl: u8, proto: u8, total: u16, frag: u16, rest: &[u8]) -> Vec<u8> {
        let mut q = vec![0u8; usize::from(ihl) * 4];
        q[0] = 0x40 | ihl;
        q[2..4].copy_from_slice(&total.to_be_bytes());
        q[6..8].copy_from_slice(&frag.to_be_bytes());
        q[8] = 63;
        q[9] = proto;
        q[12..16].copy_from_slice(&[192, 168, 10, 200]);
        q[16..20].copy_from_slice(&[192, 168, 10, 11]);
        fill_ipv4_header_checksum(&mut q);
        q.extend_from_slice(rest);
        q
    }

    fn error_about(quote: &[u8]) -> Vec<u8> {
        let s = Spec::between(
            ([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 2]),
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 10, 254), 0),
            SocketAddrV4::new(Ipv4Addr::new(192, 168, 10, 200), 0),
        );
        icmp_error_frame(&s, IcmpError::frag_needed(1400), quote)
    }

    fn ipv4(data: &[u8]) -> Ipv4Info {
        match parse(data) {
            Ok(p) => match p.l3 {
                L3::Ipv4(ip) => ip,
                L3::Arp(_) => panic!("not IPv4"),
            },
            Err(r) => panic!("does not parse: {r:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever a quote holds, it is read or refused without a panic; one that reads is
        /// rewritten to any endpoints and then reads back as those, with a valid quoted
        /// header checksum and a valid ICMP checksum, and nothing outside the quote moved.
        #[test]
        fn any_quote_is_refused_or_rewritten_consistently(
            ihl in 0u8..16,
            proto in prop_oneof![Just(6u8), Just(17u8), Just(1u8), any::<u8>()],
            total in any::<u16>(),
            frag in prop_oneof![Just(0u16), Just(0x4000u16), any::<u16>()],
            rest in proptest::collection::vec(any::<u8>(), 0..80),
            src in any::<(u32, u16)>(),
            dst in any::<(u32, u16)>(),
        ) {
            // The header length may lie (below 5, or beyond the quote).
            let mut quote = quote_bytes(ihl.max(5), proto, total, frag, &rest);
            quote[0] = 0x40 | ihl;
            let mut data = error_about(&quote);
            let ip = ipv4(&data);
            let Ok(q) = quoted(&data, &ip) else { return Ok(()) };
            prop_assert!(matches!(q.proto, IpProto::TCP | IpProto::UDP));
            prop_assert!(q.l3_off < q.l4_off && q.l4_off + QUOTED_L4 <= q.end && q.end <= ip.end());
            let (src, dst) = (
                SocketAddrV4::new(Ipv4Addr::from_bits(src.0), src.1),
                SocketAddrV4::new(Ipv4Addr::from_bits(dst.0), dst.1),
            );
            let before = data.clone();
            prop_assert_eq!(rewrite_quoted(&mut data, &ip, &q, src, dst), Ok(()));
            prop_assert!(checksum_valid(&data, &ip), "ICMP checksum");
            prop_assert!(ipv4_header_valid(&data[q.l3_off..q.l4_off]), "quoted header checksum");
            let again = quoted(&data, &ip).expect("reads back");
            prop_assert_eq!((again.src, again.dst), (src, dst));
            prop_assert_eq!((again.l3_off, again.l4_off, again.end), (q.l3_off, q.l4_off, q.end));
            prop_assert_eq!(&data[..ip.l4_off], &before[..ip.l4_off], "the outer headers moved");
            prop_assert_eq!(&data[q.end..], &before[q.end..], "bytes past the quote moved");
        }

        /// Any bytes after an ICMP error header: read or refused, never a panic.
        #[test]
        fn any_bytes_are_read_or_refused(rest in proptest::collection::vec(any::<u8>(), 0..200)) {
            let data = error_about(&rest);
            let ip = ipv4(&data);
            let _ = quoted(&data, &ip);
            prop_assert!(checksum_valid(&data, &ip));
        }
    }
}
