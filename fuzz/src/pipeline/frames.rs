//! Turns the input's [`Frame`]s into bytes on a port: raw bytes as given, templates built with
//! testkit's frame builders for the lab and the worker's current connections, then mutated.

use std::net::{Ipv4Addr, SocketAddrV4};

use dpvs_core::engine::conn::{Conn, ConnTable};
use dpvs_core::packet::checksum::{fill_ipv4_header_checksum, fill_ipv4_l4_checksum};
use dpvs_core::packet::ipv4::IpProto;
use dpvs_core::packet::tcp::{ACK, PSH, SYN};
use dpvs_core::packet::{L3, MacAddr, parse};
use dpvs_testkit::frames::{IcmpError, Spec, icmp_error_frame};
use dpvs_testkit::lab::{
    ADDR0, ADDR1, CLIENT, LADDR, MAC0, MAC1, RPORT_TCP, RPORT_UDP, RS1, VIP, mac_of,
};
use dpvs_testkit::rig::{ARP_REPLY, ARP_REQUEST, arp_frame, icmp_echo, tcp_frame, udp_frame};

use super::input::{Frame, IpBits, Mutation, Template};
use super::lab::{CLIENTS, GW, GW_MAC, RS_GW, RS3, RSS, tcp_services, udp_services};

/// Hosts that send ARP: the lab's neighbours, one of our own addresses (a conflict), the
/// unspecified address (a probe) and a host nobody knows.
const ARP_SENDERS: [Ipv4Addr; 8] = [
    CLIENT,
    RS1,
    RS3,
    RS_GW,
    GW,
    ADDR0,
    Ipv4Addr::UNSPECIFIED,
    Ipv4Addr::new(10, 0, 0, 3),
];
/// What ARP asks for and pings go to: our four addresses and two that are not ours.
const TARGETS: [Ipv4Addr; 6] = [ADDR0, VIP, ADDR1, LADDR, CLIENT, Ipv4Addr::new(8, 8, 8, 8)];

/// The MAC a lab host sends from.
fn mac(ip: Ipv4Addr) -> MacAddr {
    match ip {
        GW => GW_MAC,
        _ => mac_of(ip).unwrap_or(MacAddr([0x02, 0, 0, 0, 0x09, ip.octets()[3]])),
    }
}

fn pick<T: Copy>(list: &[T], i: impl Into<usize>) -> T {
    list[i.into() % list.len()]
}

/// A payload of `n * 6` bytes (up to 1530: enough for a tunnel header to overflow the MTU).
fn payload(n: u8) -> Vec<u8> {
    (0..usize::from(n) * 6).map(|i| i as u8).collect()
}

/// The port a frame arrives on and its bytes.
pub fn build(frame: &Frame, conns: &ConnTable) -> (u16, Vec<u8>) {
    match frame {
        Frame::Raw { port, bytes } => (u16::from(*port % 3), bytes.clone()),
        Frame::Template { t, m } => {
            let (port, mut bytes) = template(t, conns);
            mutate(&mut bytes, m);
            (port, bytes)
        }
    }
}

fn template(t: &Template, conns: &ConnTable) -> (u16, Vec<u8>) {
    let client_side = |client: u8, cport: u8| {
        let ip = pick(&CLIENTS, client);
        (
            mac(ip),
            SocketAddrV4::new(ip, 40000 + u16::from(cport % 32)),
        )
    };
    match *t {
        Template::ClientTcp {
            svc,
            client,
            cport,
            flags,
            ip,
            payload: n,
        } => {
            let (m, src) = client_side(client, cport);
            let k = pick(&tcp_services(), svc);
            let dst = SocketAddrV4::new(VIP, k.port);
            let mut b = tcp_frame((m, MAC0), src, dst, flags, (1000, 5000), &payload(n));
            ip_bits(&mut b, ip);
            (0, b)
        }
        Template::ClientUdp {
            svc,
            client,
            cport,
            ip,
            payload: n,
        } => {
            let (m, src) = client_side(client, cport);
            let k = pick(&udp_services(), svc);
            let mut b = udp_frame((m, MAC0), src, SocketAddrV4::new(VIP, k.port), &payload(n));
            ip_bits(&mut b, ip);
            (0, b)
        }
        Template::Conn {
            conn,
            reply,
            flags,
            payload: n,
        } => {
            let Some(c) = conns.iter().nth(usize::from(conn) % conns.len().max(1)) else {
                // No connection yet: open one.
                let first = Template::ClientTcp {
                    svc: 0,
                    client: 0,
                    cport: conn,
                    flags: SYN,
                    ip: IpBits::default(),
                    payload: 0,
                };
                return template(&first, conns);
            };
            conn_frame(c, reply, flags, &payload(n))
        }
        Template::RsStray {
            rs,
            lport,
            udp,
            flags,
        } => {
            let rs = pick(&RSS, rs);
            let dst = SocketAddrV4::new(LADDR, lport);
            let b = if udp {
                udp_frame((mac(rs), MAC1), SocketAddrV4::new(rs, RPORT_UDP), dst, b"x")
            } else {
                let src = SocketAddrV4::new(rs, RPORT_TCP);
                tcp_frame((mac(rs), MAC1), src, dst, flags, (7000, 1001), b"")
            };
            (1, b)
        }
        Template::Arp {
            port,
            op,
            sender,
            target,
        } => {
            let op = match op % 3 {
                0 => ARP_REQUEST,
                1 => ARP_REPLY,
                _ => u16::from(op),
            };
            let (port, ours) = (u16::from(port % 2), [MAC0, MAC1][usize::from(port % 2)]);
            let spa = pick(&ARP_SENDERS, sender);
            let eth_dst = if op == ARP_REQUEST {
                MacAddr::BROADCAST
            } else {
                ours
            };
            (
                port,
                arp_frame(eth_dst, op, mac(spa), spa, pick(&TARGETS, target)),
            )
        }
        Template::Echo {
            client,
            dst,
            payload: n,
        } => {
            let src = pick(&CLIENTS, client);
            let body: Vec<u8> = (0..n).collect();
            (0, icmp_echo(src, pick(&TARGETS, dst), 7, 1, &body))
        }
        Template::IcmpError {
            conn,
            client_side,
            router,
            kind,
            quote,
        } => match conns.iter().nth(usize::from(conn) % conns.len().max(1)) {
            Some(c) => icmp_error(c, client_side, router, kind, quote),
            // No connection: an error about the client's first packet to the lab's service.
            None => {
                let c = Conn {
                    cip: CLIENT.to_bits(),
                    vip: VIP.to_bits(),
                    cport: 40000,
                    vport: 80,
                    proto: IpProto::TCP,
                    ..Conn::default()
                };
                icmp_error(&c, true, router, kind, quote)
            }
        },
    }
}

/// An ICMP error about a packet of connection `c` as the balancer sent it (see
/// [`Template::IcmpError`]).
fn icmp_error(c: &Conn, client_side: bool, router: bool, kind: u8, quote: u8) -> (u16, Vec<u8>) {
    let sock = |ip: u32, port| SocketAddrV4::new(Ipv4Addr::from_bits(ip), port);
    // The offending packet, the error's sender, the port it arrives on and our MAC there.
    let (port, ours, reporter, src, dst) = if client_side {
        let client = Ipv4Addr::from_bits(c.cip);
        let reporter = if router { GW } else { client };
        (
            0,
            MAC0,
            reporter,
            sock(c.vip, c.vport),
            sock(c.cip, c.cport),
        )
    } else {
        let rs = Ipv4Addr::from_bits(c.rip);
        let reporter = if router { RS_GW } else { rs };
        (
            1,
            MAC1,
            reporter,
            sock(c.lip, c.lport),
            sock(c.rip, c.rport),
        )
    };
    let macs = (MacAddr::ZERO, MacAddr::ZERO);
    let offending = if c.proto == IpProto::UDP {
        udp_frame(macs, src, dst, &payload(8))
    } else {
        tcp_frame(macs, src, dst, ACK | PSH, (3000, 4000), &payload(8))
    };
    let quoted = &offending[14..(14 + 28 + usize::from(quote % 40)).min(offending.len())];
    let e = match kind % 3 {
        0 => IcmpError::unreachable(kind / 3 % 16),
        1 => IcmpError::frag_needed(576 + u16::from(kind) * 4),
        _ => IcmpError::ttl_exceeded(),
    };
    let spec = Spec::between(
        (mac(reporter).0, ours.0),
        SocketAddrV4::new(reporter, 0),
        SocketAddrV4::new(*src.ip(), 0),
    );
    (port, icmp_error_frame(&spec, e, quoted))
}

/// A packet of connection `c`: the client's (`reply: false`) to the VIP, or the real server's
/// to the address it sees (a local address, or the client in NAT mode).
fn conn_frame(c: &Conn, reply: bool, flags: u8, body: &[u8]) -> (u16, Vec<u8>) {
    let sock = |ip: u32, port| SocketAddrV4::new(Ipv4Addr::from_bits(ip), port);
    let (port, src, dst, macs) = if reply {
        let rs = Ipv4Addr::from_bits(c.rip);
        (
            1,
            sock(c.rip, c.rport),
            sock(c.lip, c.lport),
            (mac(rs), MAC1),
        )
    } else {
        let ip = Ipv4Addr::from_bits(c.cip);
        (
            0,
            sock(c.cip, c.cport),
            sock(c.vip, c.vport),
            (mac(ip), MAC0),
        )
    };
    let b = if c.proto == IpProto::UDP {
        udp_frame(macs, src, dst, body)
    } else {
        tcp_frame(macs, src, dst, flags, (3000, 4000), body)
    };
    (port, b)
}

/// Applies [`IpBits`] to a frame the builders made (untagged Ethernet, 20-byte IPv4 header).
fn ip_bits(b: &mut Vec<u8>, bits: IpBits) {
    const DF: u8 = 1;
    const TTL1: u8 = 2;
    const VLAN: u8 = 4;
    const OPTIONS: u8 = 8;
    if bits.0 & DF != 0 {
        b[20] |= 0x40;
    }
    if bits.0 & TTL1 != 0 {
        b[22] = 1;
    }
    if bits.0 & OPTIONS != 0 {
        // Four NOPs: the header grows to 24 bytes, the TCP/UDP checksum does not change.
        b.splice(34..34, [1, 1, 1, 1]);
        b[14] = 0x46;
        let total = u16::from_be_bytes([b[16], b[17]]) + 4;
        b[16..18].copy_from_slice(&total.to_be_bytes());
    }
    let hlen = usize::from(b[14] & 0x0f) * 4;
    fill_ipv4_header_checksum(&mut b[14..14 + hlen]);
    if bits.0 & VLAN != 0 {
        b.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
    }
}

/// Applies a [`Mutation`]: flips, truncation, then the checksums fixed if asked.
fn mutate(b: &mut Vec<u8>, m: &Mutation) {
    for &(at, x) in &m.flips {
        if !b.is_empty() {
            let i = usize::from(at) % b.len();
            b[i] ^= x;
        }
    }
    if let Some(cut) = m.truncate {
        b.truncate(b.len().saturating_sub(usize::from(cut)));
    }
    if m.fix {
        fix_checksums(b);
    }
}

/// Makes the IPv4 header checksum and, if the frame then parses as TCP or UDP, its L4
/// checksum right.
fn fix_checksums(b: &mut [u8]) {
    let l3 = if b.get(12..14) == Some(&[0x81, 0x00]) {
        18
    } else {
        14
    };
    if b.get(l3 - 2..l3) != Some(&[0x08, 0x00]) {
        return;
    }
    let hlen = b.get(l3).map_or(0, |v| usize::from(v & 0x0f) * 4);
    if let Some(h) = b.get_mut(l3..l3 + hlen) {
        fill_ipv4_header_checksum(h);
    }
    if let Ok(p) = parse(b)
        && let L3::Ipv4(ip) = p.l3
        && ip.ports().is_some()
    {
        fill_ipv4_l4_checksum(ip.src, ip.dst, ip.proto, &mut b[ip.l4_off..ip.end()]);
    }
}
