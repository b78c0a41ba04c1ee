//! One-pass, bounds-checked parse of a received frame: Ethernet, an optional 802.1Q tag, then
//! ARP or IPv4 with TCP/UDP/ICMP. The result is a small `Copy` summary holding the fields the
//! engine decides on and the offsets its rewrites need, so nothing is parsed twice.
//!
//! Every check that fails maps to one [`DropReason`]; no input panics or allocates.
//! What is *not* checked here, on purpose: TCP/UDP/ICMP checksums (full-payload sums the NIC
//! verifies, or that the rewrite path carries through incrementally), TCP flag combinations
//! (see [`tcp_flags_valid`](super::tcp::flags_valid); the connection code decides), and addresses (routing decides).

use core::net::Ipv4Addr;

use super::checksum::{ipv4_header_valid, ipv4_header_valid20};
use super::ether::{ETH_HLEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_VLAN, MacAddr, VLAN_HLEN};
use super::ipv4::{IP_MF, IP_OFFMASK, IPV4_HLEN, IpProto};
use crate::drop::DropReason;

pub use super::tcp::flags_valid as tcp_flags_valid;

/// Length of a TCP header without options.
pub const TCP_HLEN: usize = 20;
/// Length of a UDP header.
pub const UDP_HLEN: usize = 8;
/// Length of the fixed ICMP header (type, code, checksum, 4 bytes of rest-of-header).
pub const ICMP_HLEN: usize = 8;
/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = 28;

/// ARP request opcode.
pub const ARP_OP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const ARP_OP_REPLY: u16 = 2;

/// A parsed frame. Offsets are from the start of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Offset of the L3 header (14, or 18 behind a VLAN tag).
    pub l3_off: usize,
    /// The 802.1Q VLAN id (12 bits) when the frame carried one tag; `Some(0)` for a
    /// priority-only tag, kept so replies carry the same tag back.
    pub vlan: Option<u16>,
    /// The L3 payload.
    pub l3: L3,
}

/// The L3 protocols the data plane handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    /// Ethernet/IPv4 ARP.
    Arp(ArpInfo),
    /// IPv4.
    Ipv4(Ipv4Info),
}

/// An Ethernet/IPv4 ARP packet (htype 1, ptype 0x0800, hlen 6, plen 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpInfo {
    /// Operation ([`ARP_OP_REQUEST`], [`ARP_OP_REPLY`], or anything else as received).
    pub op: u16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

/// A valid, unfragmented IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Info {
    /// Offset of the IPv4 header from the start of the frame (as [`Packet::l3_off`]), so the
    /// rewrite functions need only this struct.
    pub l3_off: usize,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol number.
    pub proto: IpProto,
    /// Time to live as received.
    pub ttl: u8,
    /// Offset of the L4 header from the start of the frame (after any IP options).
    pub l4_off: usize,
    /// IP total length (header + payload); bytes after it in the frame are Ethernet padding.
    pub total_len: u16,
    /// The L4 summary.
    pub l4: L4,
}

/// The L4 summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP.
    Tcp(TcpInfo),
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP.
    Icmp {
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
    /// Any other protocol; only the IP header was checked.
    Other,
}

/// A TCP segment's header fields the engine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Flags byte (CWR ECE URG ACK PSH RST SYN FIN; the NS bit is not included).
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful only with ACK).
    pub ack: u32,
    /// Bytes of payload after the TCP header (options excluded).
    pub payload_len: u16,
}

impl Packet {
    /// The IPv4 summary, if this is IPv4.
    pub fn ipv4(&self) -> Option<&Ipv4Info> {
        match &self.l3 {
            L3::Ipv4(ip) => Some(ip),
            L3::Arp(_) => None,
        }
    }

    /// The ARP summary, if this is ARP.
    pub fn arp(&self) -> Option<&ArpInfo> {
        match &self.l3 {
            L3::Arp(a) => Some(a),
            L3::Ipv4(_) => None,
        }
    }

    /// Length of the IPv4 header (20 + options); 0 for ARP.
    pub fn ipv4_header_len(&self) -> usize {
        self.ipv4().map_or(0, Ipv4Info::header_len)
    }

    /// Whether the IPv4 header carries options (forwarded unchanged by the rewrites).
    pub fn has_ip_options(&self) -> bool {
        self.ipv4_header_len() > IPV4_HLEN
    }

    /// End offset of the IPv4 datagram in the frame (Ethernet padding starts there); for ARP,
    /// the end of the ARP packet.
    pub fn l3_end(&self) -> usize {
        match &self.l3 {
            L3::Ipv4(ip) => ip.end(),
            L3::Arp(_) => self.l3_off + ARP_LEN,
        }
    }
}

impl Ipv4Info {
    /// Length of the IPv4 header, options included.
    pub fn header_len(&self) -> usize {
        self.l4_off.saturating_sub(self.l3_off)
    }

    /// End offset of the datagram in the frame: Ethernet padding, if any, starts there.
    pub fn end(&self) -> usize {
        self.l3_off + usize::from(self.total_len)
    }

    /// Source and destination ports for TCP and UDP.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match self.l4 {
            L4::Tcp(t) => Some((t.sport, t.dport)),
            L4::Udp { sport, dport } => Some((sport, dport)),
            L4::Icmp { .. } | L4::Other => None,
        }
    }

    /// The TCP summary, if this is TCP.
    pub fn tcp(&self) -> Option<&TcpInfo> {
        match &self.l4 {
            L4::Tcp(t) => Some(t),
            _ => None,
        }
    }
}

/// Parses a received frame. See the module doc for what is checked.
#[inline]
pub fn parse(data: &[u8]) -> Result<Packet, DropReason> {
    match parse_common(data) {
        Some(p) => Ok(p),
        None => parse_general(data),
    }
}

/// What the data plane decides on for a frame of the common layout (see [`common`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Common {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    /// [`IpProto::TCP`] or [`IpProto::UDP`].
    pub proto: IpProto,
    pub ttl: u8,
    /// TCP flags; 0 for UDP.
    pub tcp_flags: u8,
    /// IP total length.
    pub total_len: u16,
}

/// Offset of the IPv4 header in a common frame.
const COMMON_L3: usize = ETH_HLEN;
/// Offset of the TCP or UDP header in a common frame.
pub const COMMON_L4: usize = ETH_HLEN + IPV4_HLEN;
/// The head of a common frame, all [`common`] reads and the fast path rewrites: Ethernet, IPv4
/// without options, and 20 bytes of TCP or UDP (the TCP header, or the UDP header and payload).
pub const COMMON_HEAD: usize = COMMON_L4 + TCP_HLEN;

/// Recognises the common frame in straight-line code: untagged Ethernet, IPv4 without options,
/// not a fragment, TCP or UDP with a header that fits. A frame it accepts parses (with
/// [`parse`]) to exactly these values, so the fast path may act on them alone; anything else
/// gives `None` and takes the general parse, drop reasons included.
#[inline]
pub fn common(data: &[u8]) -> Option<Common> {
    // Frames shorter than a TCP header would need (only minimal UDP ones, below Ethernet's
    // 60-byte minimum) take the general path.
    let h = data.first_chunk::<COMMON_HEAD>()?;
    let ip = h[COMMON_L3..].first_chunk::<IPV4_HLEN>()?;
    let (ethertype, ver_ihl, frag) = (be(h[12], h[13]), ip[0], be(ip[6], ip[7]));
    if ethertype != ETHERTYPE_IPV4 || ver_ihl != 0x45 || frag & (IP_MF | IP_OFFMASK) != 0 {
        return None;
    }
    let total_len = be(ip[2], ip[3]);
    let total = usize::from(total_len);
    if total < IPV4_HLEN || total > data.len() - COMMON_L3 || !ipv4_header_valid20(ip) {
        return None;
    }
    let l4 = &h[COMMON_L4..];
    let payload = total - IPV4_HLEN;
    let proto = IpProto(ip[9]);
    let tcp_flags = match proto {
        IpProto::TCP => {
            let doff = usize::from(l4[12] >> 4) * 4;
            if doff < TCP_HLEN || doff > payload {
                return None;
            }
            l4[13]
        }
        IpProto::UDP => {
            let ulen = usize::from(be(l4[4], l4[5]));
            if ulen < UDP_HLEN || ulen > payload {
                return None;
            }
            0
        }
        _ => return None,
    };
    Some(Common {
        src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        sport: be(l4[0], l4[1]),
        dport: be(l4[2], l4[3]),
        proto,
        ttl: ip[8],
        tcp_flags,
        total_len,
    })
}

/// [`parse`] of a frame [`common`] accepts, without the general code.
#[inline]
pub(super) fn parse_common(data: &[u8]) -> Option<Packet> {
    let c = common(data)?;
    let l4 = data.get(COMMON_L4..)?.first_chunk::<TCP_HLEN>()?;
    let l4 = if c.proto == IpProto::TCP {
        let doff = u16::from(l4[12] >> 4) * 4;
        L4::Tcp(TcpInfo {
            sport: c.sport,
            dport: c.dport,
            flags: c.tcp_flags,
            seq: u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]),
            ack: u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]),
            payload_len: c.total_len - IPV4_HLEN as u16 - doff,
        })
    } else {
        L4::Udp {
            sport: c.sport,
            dport: c.dport,
        }
    };
    Some(Packet {
        l3_off: COMMON_L3,
        vlan: None,
        l3: L3::Ipv4(Ipv4Info {
            l3_off: COMMON_L3,
            src: c.src,
            dst: c.dst,
            proto: c.proto,
            ttl: c.ttl,
            l4_off: COMMON_L4,
            total_len: c.total_len,
            l4,
        }),
    })
}

/// Parses any frame; see the module doc.
pub(super) fn parse_general(data: &[u8]) -> Result<Packet, DropReason> {
    let (ethertype, l3_off, vlan) = parse_ether(data)?;
    let l3 = match ethertype {
        ETHERTYPE_IPV4 => L3::Ipv4(parse_ipv4(data, l3_off)?),
        ETHERTYPE_ARP => L3::Arp(parse_arp(data.get(l3_off..).unwrap_or_default())?),
        _ => return Err(DropReason::UnknownEthertype),
    };
    Ok(Packet { l3_off, vlan, l3 })
}

/// The big-endian u16 of two bytes.
#[inline]
fn be(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// Reads a big-endian u16 at `off`, `None` past the end.
#[inline]
fn be16(b: &[u8], off: usize) -> Option<u16> {
    b.get(off..)?
        .first_chunk::<2>()
        .map(|w| u16::from_be_bytes(*w))
}

/// Returns (inner ethertype, L3 offset, VLAN id). A second tag (QinQ) or an 802.1ad outer
/// tag is not handled, so it surfaces as an unknown ethertype.
fn parse_ether(data: &[u8]) -> Result<(u16, usize, Option<u16>), DropReason> {
    let ethertype = be16(data, ETH_HLEN - 2).ok_or(DropReason::Truncated)?;
    if ethertype != ETHERTYPE_VLAN {
        return Ok((ethertype, ETH_HLEN, None));
    }
    let tci = be16(data, ETH_HLEN).ok_or(DropReason::Truncated)?;
    let inner = be16(data, ETH_HLEN + 2).ok_or(DropReason::Truncated)?;
    Ok((inner, ETH_HLEN + VLAN_HLEN, Some(tci & 0x0fff)))
}

/// Parses an Ethernet/IPv4 ARP packet.
fn parse_arp(b: &[u8]) -> Result<ArpInfo, DropReason> {
    let (hdr, rest) = b.split_first_chunk::<8>().ok_or(DropReason::Truncated)?;
    let [h0, h1, p0, p1, hlen, plen, o0, o1] = *hdr;
    if [h0, h1, p0, p1, hlen, plen] != [0, 1, 0x08, 0x00, 6, 4] {
        return Err(DropReason::ArpIgnored);
    }
    let (sha, body) = rest.split_first_chunk::<6>().ok_or(DropReason::Truncated)?;
    let (spa, body) = body.split_first_chunk::<4>().ok_or(DropReason::Truncated)?;
    let (tha, body) = body.split_first_chunk::<6>().ok_or(DropReason::Truncated)?;
    let tpa = body.first_chunk::<4>().ok_or(DropReason::Truncated)?;
    Ok(ArpInfo {
        op: u16::from_be_bytes([o0, o1]),
        sha: MacAddr(*sha),
        spa: Ipv4Addr::from(*spa),
        tha: MacAddr(*tha),
        tpa: Ipv4Addr::from(*tpa),
    })
}

/// Parses and validates the IPv4 header at `l3_off`, then its L4 header.
fn parse_ipv4(data: &[u8], l3_off: usize) -> Result<Ipv4Info, DropReason> {
    let ip = data.get(l3_off..).unwrap_or_default();
    let h = ip.first_chunk::<IPV4_HLEN>().ok_or(DropReason::Truncated)?;
    if h[0] >> 4 != 4 {
        return Err(DropReason::BadIpHeader);
    }
    let hlen = usize::from(h[0] & 0x0f) * 4;
    if hlen < IPV4_HLEN {
        return Err(DropReason::BadIpHeader);
    }
    let hdr = ip.get(..hlen).ok_or(DropReason::Truncated)?;
    let total_len = u16::from_be_bytes([h[2], h[3]]);
    let total = usize::from(total_len);
    if total < hlen || total > ip.len() {
        return Err(DropReason::BadIpHeader);
    }
    if !ipv4_header_valid(hdr) {
        return Err(DropReason::BadIpChecksum);
    }
    if u16::from_be_bytes([h[6], h[7]]) & (IP_MF | IP_OFFMASK) != 0 {
        return Err(DropReason::IpFragment);
    }
    let proto = IpProto(h[9]);
    let l4 = ip.get(hlen..total).unwrap_or_default();
    Ok(Ipv4Info {
        l3_off,
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        proto,
        ttl: h[8],
        l4_off: l3_off + hlen,
        total_len,
        l4: parse_l4(proto, l4)?,
    })
}

/// Parses the L4 header in `l4`, the IP payload (padding excluded).
fn parse_l4(proto: IpProto, l4: &[u8]) -> Result<L4, DropReason> {
    match proto {
        IpProto::TCP => parse_tcp(l4).map(L4::Tcp),
        IpProto::UDP => parse_udp(l4),
        IpProto::ICMP => {
            let h = l4.first_chunk::<ICMP_HLEN>().ok_or(DropReason::Truncated)?;
            Ok(L4::Icmp {
                icmp_type: h[0],
                code: h[1],
            })
        }
        _ => Ok(L4::Other),
    }
}

/// TCP: the fixed header must fit, and the data offset must cover it and fit the IP payload.
fn parse_tcp(l4: &[u8]) -> Result<TcpInfo, DropReason> {
    let h = l4.first_chunk::<TCP_HLEN>().ok_or(DropReason::Truncated)?;
    let doff = usize::from(h[12] >> 4) * 4;
    if doff < TCP_HLEN || doff > l4.len() {
        return Err(DropReason::BadL4Header);
    }
    Ok(TcpInfo {
        sport: u16::from_be_bytes([h[0], h[1]]),
        dport: u16::from_be_bytes([h[2], h[3]]),
        flags: h[13],
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        // l4 is bounded by the 16-bit IP total length.
        payload_len: u16::try_from(l4.len() - doff).unwrap_or(u16::MAX),
    })
}

/// UDP: the header must fit, and its length must cover it and fit the IP payload (a shorter
/// UDP length than the IP payload is legal: the rest is ignored).
fn parse_udp(l4: &[u8]) -> Result<L4, DropReason> {
    let h = l4.first_chunk::<UDP_HLEN>().ok_or(DropReason::Truncated)?;
    let ulen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if ulen < UDP_HLEN || ulen > l4.len() {
        return Err(DropReason::BadL4Header);
    }
    Ok(L4::Udp {
        sport: u16::from_be_bytes([h[0], h[1]]),
        dport: u16::from_be_bytes([h[2], h[3]]),
    })
}
