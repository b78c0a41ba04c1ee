//! Frame builders, on etherparse: an implementation independent of the engine's, so a frame
//! built here checks the engine's parse and rewrite rather than agreeing with it by
//! construction; and an etherparse checksum oracle for what the engine emits.
//!
//! Only std types and bytes in and out, so the engine's own unit tests can use them too (they
//! link this crate against a separate build of `dpvs-core`, whose types would not match).

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Icmpv4Type, IpHeaders, NetHeaders,
    PacketBuilder, PacketBuilderStep, PacketHeaders, TcpHeader, TcpOptionElement, TransportHeader,
    VlanId,
};

/// TCP flag bits, as on the wire (plain `u8`s: the same whichever build of the engine).
pub use dpvs_core::packet::tcp::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};

/// ARP operations.
pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;

/// The peer's MAC in frames built from a default [`Spec`] (the Ethernet source).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Our MAC in frames built from a default [`Spec`] (the Ethernet destination).
pub const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Ethernet's minimum frame length without FCS.
pub const ETH_ZLEN: usize = 60;

/// What an IPv4 frame carries.
#[derive(Clone, Debug)]
pub struct Spec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub ttl: u8,
    pub payload: Vec<u8>,
    /// Extra IPv4 option bytes (a multiple of 4).
    pub ip_options: Vec<u8>,
    /// Add an MSS option to TCP headers.
    pub tcp_mss: bool,
    /// The TCP window.
    pub window: u16,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            src_mac: PEER_MAC,
            dst_mac: OUR_MAC,
            vlan: None,
            src: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 40000),
            dst: SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 80),
            ttl: 64,
            payload: b"hello".to_vec(),
            ip_options: Vec::new(),
            tcp_mss: false,
            window: 65535,
        }
    }
}

impl Spec {
    /// A spec from `src` to `dst` between the MACs `(src, dst)`, without payload. Allocates
    /// nothing (benches build millions of frames with [`write_tcp`]).
    pub fn between(macs: ([u8; 6], [u8; 6]), src: SocketAddrV4, dst: SocketAddrV4) -> Spec {
        Spec {
            src_mac: macs.0,
            dst_mac: macs.1,
            vlan: None,
            src,
            dst,
            ttl: 64,
            payload: Vec::new(),
            ip_options: Vec::new(),
            tcp_mss: false,
            window: 65535,
        }
    }

    /// The same spec with `payload`.
    pub fn with_payload(self, payload: &[u8]) -> Spec {
        Spec {
            payload: payload.to_vec(),
            ..self
        }
    }
}

fn ip_step(s: &Spec) -> PacketBuilderStep<IpHeaders> {
    let mut h = etherparse::Ipv4Header::new(
        0,
        s.ttl,
        etherparse::IpNumber::TCP,
        s.src.ip().octets(),
        s.dst.ip().octets(),
    )
    .expect("a valid IPv4 header");
    h.options = s
        .ip_options
        .as_slice()
        .try_into()
        .expect("IPv4 options of a multiple of 4 bytes, at most 40");
    let ip = IpHeaders::Ipv4(h, Default::default());
    let e = PacketBuilder::ethernet2(s.src_mac, s.dst_mac);
    match s.vlan {
        Some(v) => e.single_vlan(VlanId::try_new(v).expect("a VLAN id")).ip(ip),
        None => e.ip(ip),
    }
}

/// A TCP frame with `flags`, sequence and acknowledgment numbers, and valid checksums.
pub fn tcp_frame(s: &Spec, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let t = tcp_header(s, flags, seq, ack);
    let b = ip_step(s).tcp_header(t);
    let mut v = Vec::with_capacity(b.size(s.payload.len()));
    b.write(&mut v, &s.payload).expect("build a TCP frame");
    v
}

/// [`tcp_frame`] written into `buf`, without allocating (benches fill tables with millions of
/// these); `s.payload` is ignored for `payload`. Returns the frame's length.
pub fn write_tcp(
    buf: &mut [u8],
    s: &Spec,
    (flags, seq, ack): (u8, u32, u32),
    payload: &[u8],
) -> usize {
    let b = ip_step(s).tcp_header(tcp_header(s, flags, seq, ack));
    let len = b.size(payload.len());
    b.write(&mut &mut buf[..], payload)
        .expect("room for the TCP frame");
    len
}

/// [`udp_frame`] written into `buf`, without allocating; `s.payload` is ignored for
/// `payload`. Returns the frame's length.
pub fn write_udp(buf: &mut [u8], s: &Spec, payload: &[u8]) -> usize {
    let b = ip_step(s).udp(s.src.port(), s.dst.port());
    let len = b.size(payload.len());
    b.write(&mut &mut buf[..], payload)
        .expect("room for the UDP frame");
    len
}

fn tcp_header(s: &Spec, flags: u8, seq: u32, ack: u32) -> TcpHeader {
    let mut t = TcpHeader::new(s.src.port(), s.dst.port(), seq, s.window);
    t.acknowledgment_number = ack;
    t.fin = flags & FIN != 0;
    t.syn = flags & SYN != 0;
    t.rst = flags & RST != 0;
    t.psh = flags & PSH != 0;
    t.ack = flags & ACK != 0;
    t.urg = flags & URG != 0;
    t.ece = flags & ECE != 0;
    t.cwr = flags & CWR != 0;
    if s.tcp_mss {
        t.set_options(&[TcpOptionElement::MaximumSegmentSize(1460)])
            .expect("an MSS option fits");
    }
    t
}

/// A UDP frame with its checksum.
pub fn udp_frame(s: &Spec) -> Vec<u8> {
    let b = ip_step(s).udp(s.src.port(), s.dst.port());
    let mut v = Vec::with_capacity(b.size(s.payload.len()));
    b.write(&mut v, &s.payload).expect("build a UDP frame");
    v
}

/// A UDP frame sent without a checksum (field 0).
pub fn udp_frame_no_csum(s: &Spec) -> Vec<u8> {
    let mut v = udp_frame(s);
    let l4 = l3_off(s) + 20 + s.ip_options.len();
    v[l4 + 6] = 0;
    v[l4 + 7] = 0;
    v
}

/// An ICMP echo request frame (from `s.src`'s address to `s.dst`'s).
pub fn icmp_echo_frame(s: &Spec, id: u16, seq: u16) -> Vec<u8> {
    let b = ip_step(s).icmpv4_echo_request(id, seq);
    let mut v = Vec::with_capacity(b.size(s.payload.len()));
    b.write(&mut v, &s.payload).expect("build an ICMP frame");
    v
}

/// The first 8 bytes of an ICMP error but its checksum: type, code, and the 4 bytes after the
/// checksum (unused but for the next-hop MTU of "fragmentation needed", in the last two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    pub icmp_type: u8,
    pub code: u8,
    pub rest: [u8; 4],
}

impl IcmpError {
    /// Destination unreachable (type 3) with `code`.
    pub fn unreachable(code: u8) -> IcmpError {
        IcmpError {
            icmp_type: 3,
            code,
            rest: [0; 4],
        }
    }

    /// Destination unreachable, fragmentation needed and DF set (type 3, code 4), announcing
    /// the next-hop `mtu`.
    pub fn frag_needed(mtu: u16) -> IcmpError {
        let [m0, m1] = mtu.to_be_bytes();
        IcmpError {
            rest: [0, 0, m0, m1],
            ..IcmpError::unreachable(4)
        }
    }

    /// Time exceeded, TTL exceeded in transit (type 11, code 0).
    pub fn ttl_exceeded() -> IcmpError {
        IcmpError {
            icmp_type: 11,
            code: 0,
            rest: [0; 4],
        }
    }
}

/// An ICMP error frame `e` from `s.src`'s address to `s.dst`'s (ports ignored) quoting `quoted`
/// (the offending packet's IPv4 header and first bytes), its checksums valid, written into
/// `buf` without allocating. Returns the frame's length.
pub fn write_icmp_error(buf: &mut [u8], s: &Spec, e: IcmpError, quoted: &[u8]) -> usize {
    let b = ip_step(s).icmpv4(Icmpv4Type::Unknown {
        type_u8: e.icmp_type,
        code_u8: e.code,
        bytes5to8: e.rest,
    });
    let len = b.size(quoted.len());
    b.write(&mut &mut buf[..], quoted)
        .expect("room for the ICMP error frame");
    len
}

/// [`write_icmp_error`] into a new frame.
pub fn icmp_error_frame(s: &Spec, e: IcmpError, quoted: &[u8]) -> Vec<u8> {
    let mut v = vec![0; l3_off(s) + 60 + 8 + quoted.len()];
    let len = write_icmp_error(&mut v, s, e, quoted);
    v.truncate(len);
    v
}

/// What an ARP frame (Ethernet/IPv4) carries.
#[derive(Clone, Copy, Debug)]
pub struct Arp {
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    pub vlan: Option<u16>,
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: Ipv4Addr,
    pub tha: [u8; 6],
    pub tpa: Ipv4Addr,
}

/// An ARP frame, zero padded to Ethernet's minimum when `pad`.
pub fn arp(a: &Arp, pad: bool) -> Vec<u8> {
    let p = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation(a.op),
        &a.sha,
        &a.spa.octets(),
        &a.tha,
        &a.tpa.octets(),
    )
    .expect("an Ethernet/IPv4 ARP packet");
    let e = PacketBuilder::ethernet2(a.eth_src, a.eth_dst);
    let mut v = Vec::with_capacity(ETH_ZLEN);
    match a.vlan {
        Some(id) => e
            .single_vlan(VlanId::try_new(id).expect("a VLAN id"))
            .arp(p)
            .write(&mut v),
        None => e.arp(p).write(&mut v),
    }
    .expect("build an ARP frame");
    if pad && v.len() < ETH_ZLEN {
        v.resize(ETH_ZLEN, 0);
    }
    v
}

/// An ARP frame from [`PEER_MAC`] to broadcast, unpadded.
pub fn arp_frame(
    vlan: Option<u16>,
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let a = Arp {
        eth_src: PEER_MAC,
        eth_dst: [0xff; 6],
        vlan,
        op,
        sha,
        spa,
        tha: [0; 6],
        tpa,
    };
    arp(&a, false)
}

/// The L3 offset of a frame built from `s`.
pub fn l3_off(s: &Spec) -> usize {
    if s.vlan.is_some() { 18 } else { 14 }
}

/// Recomputes the IPv4 header checksum after a test edited the header at `l3_off` (whatever
/// the edit made of it: the header length is taken from its IHL, at least 20 bytes).
pub fn fix_ip_csum(frame: &mut [u8], l3_off: usize) {
    let hlen = (usize::from(frame[l3_off] & 0x0f) * 4).max(20);
    let end = (l3_off + hlen).min(frame.len());
    let hdr = &mut frame[l3_off..end];
    hdr[10..12].copy_from_slice(&[0, 0]);
    let mut sum: u32 = hdr
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    hdr[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// Checks every checksum of an IPv4 frame with etherparse's own computation.
pub fn oracle_checksums(frame: &[u8]) -> Result<(), String> {
    let h = PacketHeaders::from_ethernet_slice(frame).map_err(|e| format!("etherparse: {e:?}"))?;
    let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
        return Err("not ipv4".into());
    };
    if ip.header_checksum != ip.calc_header_checksum() {
        return Err(format!(
            "ip checksum {:#x} != {:#x}",
            ip.header_checksum,
            ip.calc_header_checksum()
        ));
    }
    let payload = h.payload.slice();
    let checksums = match &h.transport {
        Some(TransportHeader::Tcp(t)) => t.calc_checksum_ipv4(ip, payload).map(|c| (t.checksum, c)),
        Some(TransportHeader::Udp(u)) if u.checksum != 0 => {
            u.calc_checksum_ipv4(ip, payload).map(|c| (u.checksum, c))
        }
        Some(TransportHeader::Icmpv4(i)) => Ok((i.checksum, i.icmp_type.calc_checksum(payload))),
        _ => return Ok(()),
    };
    let (got, want) = checksums.map_err(|e| format!("etherparse: {e:?}"))?;
    if got != want {
        return Err(format!("l4 checksum {got:#x} != {want:#x}"));
    }
    Ok(())
}
