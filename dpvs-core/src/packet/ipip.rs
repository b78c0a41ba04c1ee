//! IP-in-IP (RFC 2003) for the TUN forwarding mode: the client's packet, unchanged, inside an
//! outer IPv4 header from the balancer to the real server; and the ICMP "fragmentation needed"
//! a client gets when its packet would no longer fit the egress MTU.

use std::net::Ipv4Addr;

use super::Frame;
use super::checksum::{fill_ipv4_header_checksum20, plain_checksum};
use super::ether::ETH_HLEN;
use super::icmp::ICMP_DEST_UNREACH;
use super::ipv4::{
    DEFAULT_TTL, IP_DF, IPV4_FRAG_OFF, IPV4_HLEN, IPV4_TOTLEN_OFF, IpProto, write_header,
};
use crate::drop::DropReason;

/// Bytes the outer header adds to a packet.
pub const OVERHEAD: usize = IPV4_HLEN;

/// ICMP code of "fragmentation needed and DF set" (type 3).
pub const ICMP_FRAG_NEEDED: u8 = 4;

/// What an encapsulation refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncapError {
    /// The frame does not hold the IPv4 header at the offset given, or the length it claims.
    Truncated,
    /// No headroom for the outer header.
    NoHeadroom,
    /// Inner packet plus outer header above the MTU; `df`: the inner packet forbids
    /// fragmentation (its sender wants an ICMP "fragmentation needed").
    TooBig { df: bool },
}

impl EncapError {
    /// The drop counter of a packet that could not be encapsulated.
    pub fn reason(self) -> DropReason {
        match self {
            EncapError::Truncated => DropReason::Truncated,
            EncapError::NoHeadroom => DropReason::NoBuffer,
            EncapError::TooBig { .. } => DropReason::TooBig,
        }
    }
}

/// Puts the IPv4 packet at `l3_off` of `f` inside an outer header `src` → `dst` (protocol 4,
/// TTL 64, TOS, identification and DF copied from the inner header), keeping the link-layer
/// header in front. Ethernet padding after the inner packet is trimmed first. The frame is
/// unchanged on error.
pub fn encapsulate<F: Frame>(
    f: &mut F,
    l3_off: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    mtu: u16,
) -> Result<(), EncapError> {
    let data = f.data();
    let inner = data
        .get(l3_off..)
        .and_then(|d| d.first_chunk::<IPV4_HLEN>())
        .ok_or(EncapError::Truncated)?;
    let (tos, id) = (inner[1], [inner[4], inner[5]]);
    let total = usize::from(u16::from_be_bytes([
        inner[IPV4_TOTLEN_OFF],
        inner[IPV4_TOTLEN_OFF + 1],
    ]));
    let frag = u16::from_be_bytes([inner[IPV4_FRAG_OFF], inner[IPV4_FRAG_OFF + 1]]);
    let padding = data
        .len()
        .checked_sub(l3_off + total)
        .filter(|_| total >= IPV4_HLEN)
        .ok_or(EncapError::Truncated)?;
    if total + OVERHEAD > usize::from(mtu) {
        return Err(EncapError::TooBig {
            df: frag & IP_DF != 0,
        });
    }
    // `total + OVERHEAD` fits in the MTU, so in a u16.
    let [t0, t1] = ((total + OVERHEAD) as u16).to_be_bytes();
    let [f0, f1] = (frag & IP_DF).to_be_bytes();
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    let mut outer = [
        0x45,
        tos,
        t0,
        t1,
        id[0],
        id[1],
        f0,
        f1,
        DEFAULT_TTL,
        IpProto::IPIP.0,
        0,
        0,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ];
    fill_ipv4_header_checksum20(&mut outer);
    // An mbuf's headroom is far larger than one header; the check is for odd frames.
    let data = f.prepend(OVERHEAD).ok_or(EncapError::NoHeadroom)?;
    move_link_header(data, l3_off);
    data[l3_off..l3_off + IPV4_HLEN].copy_from_slice(&outer);
    if padding > 0 {
        f.trim(padding);
    }
    Ok(())
}

/// Moves the `l3_off`-byte link-layer header, which starts [`OVERHEAD`] bytes into `data`,
/// to the front. The untagged Ethernet header (nearly every packet) is a fixed-size copy that
/// compiles to a few moves; anything else takes a `memmove`.
#[inline(always)]
fn move_link_header(data: &mut [u8], l3_off: usize) {
    if l3_off == ETH_HLEN
        && let Some((dst, rest)) = data.split_first_chunk_mut::<ETH_HLEN>()
        && let Some(src) = rest
            .get(OVERHEAD - ETH_HLEN..)
            .and_then(|r| r.first_chunk::<ETH_HLEN>())
    {
        *dst = *src;
    } else {
        data.copy_within(OVERHEAD..OVERHEAD + l3_off, 0);
    }
}

/// Length of the ICMP "fragmentation needed" [`write_frag_needed`] builds for a packet whose
/// header and first bytes are `quoted` long, Ethernet header included.
pub fn frag_needed_len(l2_len: usize, quoted: usize) -> usize {
    l2_len + IPV4_HLEN + 8 + quoted
}

/// Writes, after the first `l2_len` bytes of `buf` (a link-layer header the caller fills), an
/// ICMP "fragmentation needed and DF set" from `from` to `to` that announces `mtu` and quotes
/// `quoted` (the offending packet's IP header and the first 8 bytes after it, RFC 792).
/// Returns the frame length, or `None` when `buf` is too short.
pub fn write_frag_needed(
    buf: &mut [u8],
    l2_len: usize,
    from: Ipv4Addr,
    to: Ipv4Addr,
    mtu: u16,
    quoted: &[u8],
) -> Option<usize> {
    let len = frag_needed_len(l2_len, quoted.len());
    let ip = buf.get_mut(l2_len..len)?;
    write_header(ip, from, to, IpProto::ICMP, DEFAULT_TTL, 8 + quoted.len())?;
    let icmp = &mut ip[IPV4_HLEN..];
    icmp[..8].copy_from_slice(&[ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 0, 0, 0, 0, 0, 0]);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    icmp[8..].copy_from_slice(quoted);
    let c = plain_checksum(icmp, 2);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Some(len)
}

/// What an ICMP error quotes of the IPv4 packet at the start of `ip`: its header (options
/// included) and up to 8 bytes after it (RFC 792).
pub fn quote(ip: &[u8]) -> &[u8] {
    let ihl = ip.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
    &ip[..ip.len().min(ihl + 8)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::VecFrame;
    use crate::packet::checksum::{ipv4_header_valid, plain_valid};
    use crate::packet::parse::{L3, L4, parse};
    use crate::packet::tcp::ACK;
    use dpvs_testkit::frames;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const RS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 20);

    /// A client's TCP segment with DF set, `payload` bytes long, followed by `padding` bytes
    /// of Ethernet padding.
    fn client_frame(payload: usize, padding: usize) -> Vec<u8> {
        let spec = frames::Spec {
            src: "10.1.0.7:40000".parse().unwrap(),
            dst: "10.0.0.100:80".parse().unwrap(),
            payload: vec![0x5a; payload],
            ..Default::default()
        };
        let mut b = frames::tcp_frame(&spec, ACK, 1, 1);
        b[14 + IPV4_FRAG_OFF] |= 0x40;
        frames::fix_ip_csum(&mut b, 14);
        b.extend(std::iter::repeat_n(0xee, padding));
        b
    }

    #[test]
    fn the_inner_packet_is_carried_unchanged() {
        let sent = client_frame(100, 0);
        let mut f = VecFrame::from_bytes(&sent);
        encapsulate(&mut f, 14, SRC, RS, 1500).unwrap();
        let b = f.data();
        assert_eq!(b.len(), sent.len() + 20);
        assert_eq!(&b[..14], &sent[..14], "link-layer header kept in front");
        assert_eq!(&b[34..], &sent[14..], "inner packet untouched");
        let outer = &b[14..34];
        assert!(ipv4_header_valid(outer));
        let (h, _) = etherparse::Ipv4Header::from_slice(outer).unwrap();
        assert_eq!((h.protocol.0, h.time_to_live), (4, 64));
        assert_eq!((h.source, h.destination), (SRC.octets(), RS.octets()));
        assert_eq!(usize::from(h.total_len), sent.len() - 14 + 20);
        assert!(h.dont_fragment, "DF copied from the inner header");
        let Ok(p) = parse(b) else {
            panic!("outer packet parses")
        };
        let L3::Ipv4(ip) = p.l3 else { panic!() };
        assert_eq!(ip.l4, L4::Other);
    }

    #[test]
    fn padding_is_trimmed_and_too_big_packets_refused_unchanged() {
        let sent = client_frame(0, 6);
        let mut f = VecFrame::from_bytes(&sent);
        encapsulate(&mut f, 14, SRC, RS, 1500).unwrap();
        assert_eq!(f.data().len(), sent.len() - 6 + 20);

        let sent = client_frame(1460, 0);
        let mut f = VecFrame::from_bytes(&sent);
        assert_eq!(
            encapsulate(&mut f, 14, SRC, RS, 1500),
            Err(EncapError::TooBig { df: true })
        );
        assert_eq!(f.data(), &sent[..]);
        assert_eq!(encapsulate(&mut f, 14, SRC, RS, 1520), Ok(()));

        let mut f = VecFrame::from_bytes(&sent[..40]);
        assert_eq!(
            encapsulate(&mut f, 14, SRC, RS, 1500),
            Err(EncapError::Truncated)
        );
        assert_eq!(
            encapsulate(&mut f, 30, SRC, RS, 1500),
            Err(EncapError::Truncated)
        );
    }

    #[test]
    fn frag_needed_quotes_the_packet_and_announces_the_mtu() {
        let sent = client_frame(1460, 0);
        let q = quote(&sent[14..]);
        assert_eq!(q, &sent[14..14 + 28]);
        let mut buf = [0u8; 128];
        let vip = Ipv4Addr::new(10, 0, 0, 100);
        let client = Ipv4Addr::new(10, 1, 0, 7);
        let n = write_frag_needed(&mut buf, 14, vip, client, 1480, q).unwrap();
        assert_eq!(n, frag_needed_len(14, 28));
        buf[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &buf[14..n];
        assert!(ipv4_header_valid(ip));
        assert!(plain_valid(&ip[20..]));
        assert_eq!(&ip[20..22], &[3, 4]);
        assert_eq!(u16::from_be_bytes([ip[26], ip[27]]), 1480);
        assert_eq!(&ip[28..], q);
        let Ok(p) = parse(&buf[..n]) else {
            panic!("parses")
        };
        assert_eq!(p.ipv4().map(|i| (i.src, i.dst)), Some((vip, client)));
        assert_eq!(
            write_frag_needed(&mut buf[..40], 14, vip, client, 1480, q),
            None
        );
        assert_eq!(quote(&[]), &[] as &[u8]);
    }
}
