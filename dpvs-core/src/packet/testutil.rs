//! Test helpers: frames built with etherparse (an independent implementation) and an
//! etherparse-based checksum oracle.

use core::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, IpHeaders, NetHeaders, PacketBuilder,
    PacketBuilderStep, PacketHeaders, TcpHeader, TcpOptionElement, TransportHeader, VlanId,
};

use super::checksum::fill_ipv4_header_checksum;
use super::tcp::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};

/// The peer's MAC in built frames (the Ethernet source).
pub(super) const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Our MAC in built frames (the Ethernet destination).
pub(super) const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// What an IPv4 test frame carries.
#[derive(Clone, Debug)]
pub(super) struct Spec {
    pub vlan: Option<u16>,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub ttl: u8,
    pub payload: Vec<u8>,
    /// Extra IPv4 option bytes (a multiple of 4).
    pub ip_options: Vec<u8>,
    /// Add an MSS option to TCP headers.
    pub tcp_mss: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            vlan: None,
            src: "192.0.2.10:40000".parse().unwrap(),
            dst: "198.51.100.1:80".parse().unwrap(),
            ttl: 64,
            payload: b"hello".to_vec(),
            ip_options: Vec::new(),
            tcp_mss: false,
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
    .unwrap();
    h.options = s.ip_options.as_slice().try_into().unwrap();
    let ip = IpHeaders::Ipv4(h, Default::default());
    let e = PacketBuilder::ethernet2(PEER_MAC, OUR_MAC);
    match s.vlan {
        Some(v) => e.single_vlan(VlanId::try_new(v).unwrap()).ip(ip),
        None => e.ip(ip),
    }
}

/// A TCP frame.
pub(super) fn tcp_frame(s: &Spec, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let mut t = TcpHeader::new(s.src.port(), s.dst.port(), seq, 65535);
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
            .unwrap();
    }
    let b = ip_step(s).tcp_header(t);
    let mut v = Vec::with_capacity(b.size(s.payload.len()));
    b.write(&mut v, &s.payload).unwrap();
    v
}

/// A UDP frame with its checksum.
pub(super) fn udp_frame(s: &Spec) -> Vec<u8> {
    let b = ip_step(s).udp(s.src.port(), s.dst.port());
    let mut v = Vec::with_capacity(b.size(s.payload.len()));
    b.write(&mut v, &s.payload).unwrap();
    v
}

/// A UDP frame sent without a checksum (field 0).
pub(super) fn udp_frame_no_csum(s: &Spec) -> Vec<u8> {
    let mut v = udp_frame(s);
    let l4 = l3_off(s) + 20 + s.ip_options.len();
    v[l4 + 6] = 0;
    v[l4 + 7] = 0;
    v
}

/// An ICMP echo request frame.
pub(super) fn icmp_echo_frame(s: &Spec, id: u16, seq: u16) -> Vec<u8> {
    let b = ip_step(s).icmpv4_echo_request(id, seq);
    let mut v = Vec::with_capacity(b.size(s.payload.len()));
    b.write(&mut v, &s.payload).unwrap();
    v
}

/// An Ethernet/IPv4 ARP frame from PEER_MAC to broadcast.
pub(super) fn arp_frame(
    vlan: Option<u16>,
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tpa: Ipv4Addr,
) -> Vec<u8> {
    let arp = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation(op),
        &sha,
        &spa.octets(),
        &[0; 6],
        &tpa.octets(),
    )
    .unwrap();
    let e = PacketBuilder::ethernet2(PEER_MAC, [0xff; 6]);
    let mut v = Vec::new();
    match vlan {
        Some(id) => e
            .single_vlan(VlanId::try_new(id).unwrap())
            .arp(arp)
            .write(&mut v)
            .unwrap(),
        None => e.arp(arp).write(&mut v).unwrap(),
    }
    v
}

/// The L3 offset of a frame built from `s`.
pub(super) fn l3_off(s: &Spec) -> usize {
    if s.vlan.is_some() { 18 } else { 14 }
}

/// Recomputes the IPv4 header checksum after a test edited the header.
pub(super) fn fix_ip_csum(frame: &mut [u8], l3_off: usize) {
    let hlen = usize::from(frame[l3_off] & 0x0f) * 4;
    assert!(fill_ipv4_header_checksum(&mut frame[l3_off..l3_off + hlen]));
}

/// Checks every checksum of an IPv4 frame with etherparse's own computation.
pub(super) fn oracle_checksums(frame: &[u8]) -> Result<(), String> {
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
    let (got, want) = match &h.transport {
        Some(TransportHeader::Tcp(t)) => (t.checksum, t.calc_checksum_ipv4(ip, payload).unwrap()),
        Some(TransportHeader::Udp(u)) if u.checksum != 0 => {
            (u.checksum, u.calc_checksum_ipv4(ip, payload).unwrap())
        }
        Some(TransportHeader::Icmpv4(i)) => (i.checksum, i.icmp_type.calc_checksum(payload)),
        _ => return Ok(()),
    };
    if got != want {
        return Err(format!("l4 checksum {got:#x} != {want:#x}"));
    }
    Ok(())
}
