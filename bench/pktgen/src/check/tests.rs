//! The checker against hand-built frames: each forwarding mode's correct output is accepted,
//! and each kind of wrong rewrite is refused with its own reason.

use std::net::{Ipv4Addr, SocketAddrV4};

use dpvs_core::packet::checksum::{fill_ipv4_header_checksum, fill_ipv4_l4_checksum};
use dpvs_core::packet::ether::set_macs;
use dpvs_core::packet::ipv4::IpProto;
use dpvs_core::packet::{MacAddr, nat, parse};

use super::*;
use crate::flows::FlowSpace;
use crate::template::{Headers, L3_OFF, L4_OFF, tcpf, write_frame};

const GEN: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const DUT: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x01]);
const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x21]);
const FLOW: u32 = 70_000;

fn net(expect: Expect, proto: IpProto) -> Net {
    Net {
        expect,
        our_mac: GEN,
        dut_mac: DUT,
        vip: "10.0.0.100:80".parse().unwrap(),
        clients: FlowSpace::new(Ipv4Addr::new(10, 1, 0, 0), 100_000),
        laddr_base: Ipv4Addr::new(10, 0, 1, 0),
        laddr_count: 16,
        rs: vec![
            "10.0.0.20:8080".parse().unwrap(),
            "10.0.0.21:8080".parse().unwrap(),
        ],
        rs_macs: Vec::new(),
        tun_src: Ipv4Addr::new(10, 0, 0, 1),
        proto,
        ttl: 64,
    }
}

fn client(n: &Net, flow: u32) -> SocketAddrV4 {
    let (ip, port) = n.clients.endpoint(flow);
    SocketAddrV4::new(ip, port)
}

/// The frame the generator sends for `flow`.
fn sent(n: &Net, flow: u32) -> Vec<u8> {
    let h = Headers {
        src_mac: GEN,
        dst_mac: DUT,
        src: client(n, flow),
        dst: n.vip,
        proto: n.proto,
        ttl: n.ttl,
        flags: tcpf::ACK | tcpf::PSH,
        seq: 1,
        ack: 1,
    };
    let probe = Probe {
        flags: 0,
        kind: 2,
        flow,
        tsc: 12345,
    };
    let mut b = vec![0u8; 80];
    let len = write_frame(&mut b, &h, &probe, 80).unwrap();
    b.truncate(len);
    b
}

/// What a correct balancer does: rewrite to `src`→`dst`, TTL-1, MACs DUT→generator.
fn rewrite(mut b: Vec<u8>, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let p = parse::parse(&b).unwrap();
    let ip = *p.ipv4().unwrap();
    nat::rewrite_ipv4(&mut b, &ip, src, dst, true).unwrap();
    set_macs(&mut b, GEN, DUT);
    b
}

fn fnat_ok(n: &Net, flow: u32) -> Vec<u8> {
    let laddr: SocketAddrV4 = "10.0.1.3:40000".parse().unwrap();
    rewrite(sent(n, flow), laddr, n.rs[1])
}

/// Recomputes both checksums (for corruptions that must not be caught as checksum errors).
fn fix_checksums(b: &mut [u8], proto: IpProto) {
    let total = usize::from(u16::from_be_bytes([b[L3_OFF + 2], b[L3_OFF + 3]]));
    b[L3_OFF + 10] = 0;
    b[L3_OFF + 11] = 0;
    fill_ipv4_header_checksum(&mut b[L3_OFF..L4_OFF]);
    let src = Ipv4Addr::new(b[26], b[27], b[28], b[29]);
    let dst = Ipv4Addr::new(b[30], b[31], b[32], b[33]);
    fill_ipv4_l4_checksum(src, dst, proto, &mut b[L4_OFF..L3_OFF + total]);
}

#[test]
fn fnat_correct_rewrite_is_accepted() {
    for proto in [IpProto::TCP, IpProto::UDP] {
        let n = net(Expect::Fnat, proto);
        let s = n.check(&fnat_ok(&n, FLOW)).unwrap();
        assert_eq!(s.side, Side::Rs);
        assert_eq!(s.probe.flow, FLOW);
        assert_eq!(s.path, (3 << 24) | (1 << 16) | 40000);
    }
}

#[test]
fn fnat_wrong_rewrites_are_refused() {
    let n = net(Expect::Fnat, IpProto::TCP);
    let rs = n.rs[0];
    // Wrong local address: not one of the balancer's.
    let wrong_laddr = rewrite(sent(&n, FLOW), "10.0.2.3:40000".parse().unwrap(), rs);
    assert_eq!(n.check(&wrong_laddr), Err(Bad::Src));
    // Source left unchanged (a DNAT instead of a FullNAT).
    let unchanged_src = rewrite(sent(&n, FLOW), client(&n, FLOW), rs);
    assert_eq!(n.check(&unchanged_src), Err(Bad::Src));
    // Wrong real server: unknown address, or right address with the wrong port.
    let laddr: SocketAddrV4 = "10.0.1.3:40000".parse().unwrap();
    let wrong_rs = rewrite(sent(&n, FLOW), laddr, "10.0.0.99:8080".parse().unwrap());
    assert_eq!(n.check(&wrong_rs), Err(Bad::Dst));
    let wrong_port = rewrite(sent(&n, FLOW), laddr, "10.0.0.20:80".parse().unwrap());
    assert_eq!(n.check(&wrong_port), Err(Bad::Dst));
    // Destination left at the VIP.
    let no_dnat = rewrite(sent(&n, FLOW), laddr, n.vip);
    assert_eq!(n.check(&no_dnat), Err(Bad::Dst));
}

#[test]
fn bad_checksums_ttl_and_macs_are_refused() {
    let n = net(Expect::Fnat, IpProto::TCP);
    let good = fnat_ok(&n, FLOW);
    // An address rewritten without fixing the L4 checksum.
    let mut b = good.clone();
    b[L3_OFF + 15] ^= 0x01; // source address low byte, then only the IP checksum fixed
    b[L3_OFF + 10] = 0;
    b[L3_OFF + 11] = 0;
    fill_ipv4_header_checksum(&mut b[L3_OFF..L4_OFF]);
    assert_eq!(n.check(&b), Err(Bad::L4Checksum));
    // IP header checksum wrong.
    let mut b = good.clone();
    b[L3_OFF + 10] ^= 0xff;
    assert_eq!(n.check(&b), Err(Bad::IpChecksum));
    // Payload byte flipped in flight.
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    assert_eq!(n.check(&b), Err(Bad::L4Checksum));
    // TTL not decremented (checksums consistent).
    let mut b = good.clone();
    b[L3_OFF + 8] = 64;
    fix_checksums(&mut b, IpProto::TCP);
    assert_eq!(n.check(&b), Err(Bad::Ttl));
    // MACs not rewritten.
    let mut b = good.clone();
    set_macs(&mut b, DUT, GEN);
    assert_eq!(n.check(&b), Err(Bad::Mac));
    // The probe names a flow that does not exist.
    let mut b = good;
    b[L4_OFF + 20 + 4..L4_OFF + 20 + 8].copy_from_slice(&200_000u32.to_be_bytes());
    fix_checksums(&mut b, IpProto::TCP);
    assert_eq!(n.check(&b), Err(Bad::Probe));
}

#[test]
fn fnat_reply_to_client() {
    let n = net(Expect::Fnat, IpProto::TCP);
    // What the real server sends, rewritten by the balancer to VIP → client.
    let ok = rewrite(sent(&n, FLOW), n.vip, client(&n, FLOW));
    let s = n.check(&ok).unwrap();
    assert_eq!((s.side, s.probe.flow), (Side::Client, FLOW));
    // Sent to another client than the flow's.
    let other = rewrite(sent(&n, FLOW), n.vip, client(&n, FLOW + 1));
    assert_eq!(n.check(&other), Err(Bad::FlowMismatch));
    // Source not the VIP (the local address leaked).
    let leak = rewrite(
        sent(&n, FLOW),
        "10.0.1.3:40000".parse().unwrap(),
        client(&n, FLOW),
    );
    assert_eq!(n.check(&leak), Err(Bad::Src));
}

#[test]
fn nat_rewrites_destination_only() {
    let n = net(Expect::Nat, IpProto::UDP);
    let ok = rewrite(sent(&n, FLOW), client(&n, FLOW), n.rs[0]);
    assert_eq!(n.check(&ok).unwrap().side, Side::Rs);
    let snat = rewrite(sent(&n, FLOW), "10.0.1.3:40000".parse().unwrap(), n.rs[0]);
    assert_eq!(n.check(&snat), Err(Bad::Src));
    let other_flow = rewrite(sent(&n, FLOW), client(&n, 5), n.rs[0]);
    assert_eq!(n.check(&other_flow), Err(Bad::FlowMismatch));
    let back = rewrite(sent(&n, FLOW), n.vip, client(&n, FLOW));
    assert_eq!(n.check(&back).unwrap().side, Side::Client);
}

#[test]
fn dr_changes_only_the_destination_mac() {
    let mut n = net(Expect::Dr, IpProto::TCP);
    n.rs_macs = vec![MacAddr([2, 0, 0, 0, 0, 0x20]), RS_MAC];
    let mut ok = sent(&n, FLOW);
    set_macs(&mut ok, RS_MAC, DUT);
    let s = n.check(&ok).unwrap();
    assert_eq!((s.side, s.path), (Side::Rs, 2 << 16));
    // A decremented TTL is accepted too (a router hop).
    let mut hop = ok.clone();
    let p = parse::parse(&hop).unwrap();
    dpvs_core::packet::ipv4::decrement_ttl(&mut hop, p.l3_off).unwrap();
    assert!(n.check(&hop).is_ok());
    // Left to the balancer's MAC, or the source MAC not the balancer's.
    let mut b = sent(&n, FLOW);
    set_macs(&mut b, DUT, DUT);
    assert_eq!(n.check(&b), Err(Bad::Mac));
    let mut b = ok.clone();
    set_macs(&mut b, RS_MAC, GEN);
    assert_eq!(n.check(&b), Err(Bad::Mac));
    // The IP destination rewritten (NAT, not DR).
    let b = rewrite(sent(&n, FLOW), client(&n, FLOW), n.rs[1]);
    let mut b = b;
    set_macs(&mut b, RS_MAC, DUT);
    assert_eq!(n.check(&b), Err(Bad::Dst));
}

/// Wraps the client's packet in an outer IPv4 header `src`→`dst`, protocol 4.
fn encapsulate(inner: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let ip = &inner[L3_OFF..];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let mut b = vec![0u8; 14 + 20 + total];
    set_macs(&mut b, GEN, DUT);
    b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    dpvs_core::packet::ipv4::write_header(&mut b[14..34], src, dst, IpProto::IPIP, 64, total)
        .unwrap();
    b[34..].copy_from_slice(&ip[..total]);
    b
}

#[test]
fn tun_outer_header_and_unchanged_inner() {
    let n = net(Expect::Tun, IpProto::TCP);
    let lb = n.tun_src;
    let rs = *n.rs[1].ip();
    let ok = encapsulate(&sent(&n, FLOW), lb, rs);
    let s = n.check(&ok).unwrap();
    assert_eq!((s.side, s.path, s.l3_off), (Side::Rs, 2 << 16, 34));
    assert_eq!(
        n.check(&encapsulate(
            &sent(&n, FLOW),
            Ipv4Addr::new(10, 0, 0, 9),
            rs
        )),
        Err(Bad::Outer)
    );
    assert_eq!(
        n.check(&encapsulate(
            &sent(&n, FLOW),
            lb,
            Ipv4Addr::new(10, 0, 0, 99)
        )),
        Err(Bad::Outer)
    );
    // The inner packet rewritten (its destination is no longer the VIP).
    let natted = rewrite(sent(&n, FLOW), client(&n, FLOW), n.rs[1]);
    assert_eq!(n.check(&encapsulate(&natted, lb, rs)), Err(Bad::Dst));
    // Outer protocol not IP-in-IP.
    let mut b = ok.clone();
    b[14 + 9] = 47;
    fill_ipv4_header_checksum(&mut b[14..34]);
    assert_eq!(n.check(&b), Err(Bad::Outer));
    // Outer checksum wrong.
    let mut b = ok;
    b[14 + 10] ^= 1;
    assert_eq!(n.check(&b), Err(Bad::IpChecksum));
    // Not encapsulated at all.
    assert_eq!(n.check(&fnat_ok(&n, FLOW)), Err(Bad::Outer));
}

#[test]
fn testpmd_reflections() {
    let n = net(Expect::Io, IpProto::UDP);
    let b = sent(&n, FLOW);
    assert_eq!(n.check(&b).unwrap().side, Side::Rs);
    let mut swapped = b.clone();
    set_macs(&mut swapped, GEN, DUT);
    assert_eq!(n.check(&swapped), Err(Bad::Mac));
    let m = net(Expect::Macswap, IpProto::UDP);
    assert!(m.check(&swapped).is_ok());
    assert_eq!(m.check(&b), Err(Bad::Mac));
    // io must not decrement the TTL.
    let mut t = b;
    t[L3_OFF + 8] = 63;
    fix_checksums(&mut t, IpProto::UDP);
    assert_eq!(n.check(&t), Err(Bad::Ttl));
}

#[test]
fn garbage_is_malformed() {
    let n = net(Expect::Fnat, IpProto::TCP);
    assert_eq!(n.check(&[]), Err(Bad::Malformed));
    assert_eq!(n.check(&[0u8; 60]), Err(Bad::Malformed));
    let good = fnat_ok(&n, FLOW);
    assert_eq!(n.check(&good[..40]), Err(Bad::Malformed));
    // UDP where TCP is expected.
    let u = net(Expect::Fnat, IpProto::UDP);
    assert_eq!(n.check(&fnat_ok(&u, FLOW)), Err(Bad::Malformed));
}
