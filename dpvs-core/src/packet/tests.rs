//! Cross-module tests: frames built by etherparse, parsed and rewritten here, and checked
//! against etherparse again.
//!
//! (Long, and one file: every test here runs the same build-parse-rewrite-check loop over the
//! whole packet layer, and splitting it would only split the shared strategies and checks.)

use core::net::{Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;

use super::arp::{REQUEST_LEN, reply_in_place, write_gratuitous, write_request};
use super::checksum::{ipv4_header_valid, ipv4_l4_valid};
use super::ether::{MacAddr, dst_mac, src_mac};
use super::icmp::echo_reply_in_place;
use super::ipv4::IpProto;
use super::nat::rewrite_ipv4;
use super::parse::*;
use super::tcp::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, rst_reply_in_place};
use crate::drop::DropReason;
use dpvs_testkit::frames::*;

const OUR: MacAddr = MacAddr(OUR_MAC);
const PEER: MacAddr = MacAddr(PEER_MAC);

fn ip(p: &Packet) -> Ipv4Info {
    *p.ipv4().expect("ipv4")
}

fn sa(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- parse: accepted frames

#[test]
fn parses_tcp_with_options() {
    let s = Spec {
        tcp_mss: true,
        payload: vec![7; 33],
        ..Spec::default()
    };
    let f = tcp_frame(&s, ACK | PSH, 1000, 2000);
    let p = parse(&f).unwrap();
    assert_eq!(p.l3_off, 14);
    assert_eq!(p.vlan, None);
    assert!(!p.has_ip_options());
    let i = ip(&p);
    assert_eq!(
        (i.src, i.dst, i.proto, i.ttl),
        (*s.src.ip(), *s.dst.ip(), IpProto::TCP, 64)
    );
    assert_eq!(i.l4_off, 34);
    assert_eq!(usize::from(i.total_len), 20 + 24 + 33);
    assert_eq!(i.end(), f.len());
    assert_eq!(
        i.l4,
        L4::Tcp(TcpInfo {
            sport: s.src.port(),
            dport: s.dst.port(),
            flags: ACK | PSH,
            seq: 1000,
            ack: 2000,
            payload_len: 33,
        })
    );
    assert_eq!(tuple(&i), Some((s.src, s.dst)));
}

#[test]
fn common_frames_take_the_straight_line_branch() {
    let s = Spec {
        payload: vec![1; 20],
        ..Spec::default()
    };
    for f in [
        tcp_frame(&s, ACK, 1, 2),
        tcp_frame(&Spec::default(), SYN, 1, 0),
        udp_frame(&s),
    ] {
        assert_eq!(parse_common(&f).map(Ok), Some(parse_general(&f)));
    }
    let tagged = Spec {
        vlan: Some(7),
        ..Spec::default()
    };
    let options = Spec {
        ip_options: vec![1; 4],
        ..Spec::default()
    };
    for f in [
        tcp_frame(&tagged, ACK, 1, 2),
        tcp_frame(&options, ACK, 1, 2),
    ] {
        assert!(parse_common(&f).is_none() && parse(&f).is_ok());
    }
}

#[test]
fn parses_vlan_udp_and_ip_options() {
    let s = Spec {
        vlan: Some(0x123),
        ip_options: vec![1, 1, 1, 0], // NOP NOP NOP EOL
        ..Spec::default()
    };
    let f = udp_frame(&s);
    let p = parse(&f).unwrap();
    assert_eq!((p.l3_off, p.vlan), (18, Some(0x123)));
    assert!(p.has_ip_options());
    assert_eq!(p.ipv4_header_len(), 24);
    let i = ip(&p);
    assert_eq!(i.l4_off, 18 + 24);
    assert_eq!(
        i.l4,
        L4::Udp {
            sport: s.src.port(),
            dport: s.dst.port()
        }
    );
}

#[test]
fn parses_icmp() {
    let f = icmp_echo_frame(&Spec::default(), 7, 9);
    let i = ip(&parse(&f).unwrap());
    assert_eq!(
        i.l4,
        L4::Icmp {
            icmp_type: 8,
            code: 0
        }
    );
    assert_eq!(i.ports(), None);
}

#[test]
fn parses_arp() {
    for vlan in [None, Some(5)] {
        let spa = Ipv4Addr::new(10, 0, 0, 1);
        let tpa = Ipv4Addr::new(10, 0, 0, 2);
        let f = arp_frame(vlan, 1, PEER_MAC, spa, tpa);
        let p = parse(&f).unwrap();
        assert_eq!(p.vlan, vlan);
        assert_eq!(
            p.arp(),
            Some(&ArpInfo {
                op: ARP_OP_REQUEST,
                sha: PEER,
                spa,
                tha: MacAddr::ZERO,
                tpa
            })
        );
        assert!(p.ipv4().is_none());
        assert_eq!(p.l3_end(), p.l3_off + 28);
    }
}

#[test]
fn ethernet_padding_after_total_len_is_allowed() {
    let s = Spec {
        payload: vec![],
        ..Spec::default()
    };
    let mut f = udp_frame(&s);
    assert_eq!(f.len(), 42);
    f.resize(60, 0xee);
    let p = parse(&f).unwrap();
    assert_eq!(ip(&p).total_len, 28);
    assert_eq!(p.l3_end(), 42);
}

#[test]
fn unknown_l4_is_other() {
    let mut f = udp_frame(&Spec::default());
    f[14 + 9] = 47; // GRE
    fix_ip_csum(&mut f, 14);
    assert_eq!(ip(&parse(&f).unwrap()).l4, L4::Other);
}

// ---------------------------------------------------------------- parse: every drop reason

fn set16(f: &mut [u8], off: usize, v: u16) {
    f[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn truncated_at_each_layer() {
    let tcp = tcp_frame(&Spec::default(), SYN, 1, 0);
    // Ethernet header.
    for n in 0..14 {
        assert_eq!(parse(&tcp[..n]), Err(DropReason::Truncated), "len {n}");
    }
    // IPv4 fixed header.
    for n in 14..34 {
        assert_eq!(parse(&tcp[..n]), Err(DropReason::Truncated), "len {n}");
    }
    // VLAN tag.
    let vl = udp_frame(&Spec {
        vlan: Some(1),
        ..Spec::default()
    });
    for n in 14..18 {
        assert_eq!(parse(&vl[..n]), Err(DropReason::Truncated), "vlan len {n}");
    }
    // IPv4 options: IHL 6 but only 20 header bytes present.
    let mut f = tcp[..34].to_vec();
    f[14] = 0x46;
    assert_eq!(parse(&f), Err(DropReason::Truncated));
    // ARP body.
    let arp = arp_frame(None, 1, PEER_MAC, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
    for n in 14..42 {
        assert_eq!(parse(&arp[..n]), Err(DropReason::Truncated), "arp len {n}");
    }
}

/// An L4 header that does not fit in the IP payload (total length consistent with the frame).
#[test]
fn truncated_l4_inside_the_datagram() {
    let s = Spec {
        payload: vec![],
        ..Spec::default()
    };
    let cases: [(Vec<u8>, usize); 3] = [
        (tcp_frame(&s, SYN, 0, 0), 20),
        (udp_frame(&s), 8),
        (icmp_echo_frame(&s, 1, 1), 8),
    ];
    for (frame, hlen) in cases {
        for short in 0..hlen {
            let mut f = frame[..34 + short].to_vec();
            set16(&mut f, 16, (20 + short) as u16);
            fix_ip_csum(&mut f, 14);
            assert_eq!(parse(&f), Err(DropReason::Truncated), "l4 len {short}");
        }
    }
}

/// A named edit of a frame (the `u16` is the original IP total length).
type Edit = (&'static str, fn(&mut Vec<u8>, u16));

#[test]
fn bad_ip_headers() {
    let good = udp_frame(&Spec::default());
    let total = u16::from_be_bytes([good[16], good[17]]);
    let edits: [Edit; 5] = [
        ("version 6", |f, _| f[14] = 0x65),
        ("ihl 4", |f, _| f[14] = 0x44),
        ("total < header", |f, _| set16(f, 16, 19)),
        ("total beyond frame", |f, t| set16(f, 16, t + 1)),
        ("total beyond short frame", |f, _| f.truncate(40)),
    ];
    for (what, edit) in edits {
        let mut f = good.clone();
        edit(&mut f, total);
        fix_ip_csum(&mut f, 14);
        assert_eq!(parse(&f), Err(DropReason::BadIpHeader), "{what}");
    }
}

#[test]
fn bad_ip_checksum() {
    let mut f = udp_frame(&Spec::default());
    f[14 + 10] ^= 0x01;
    assert_eq!(parse(&f), Err(DropReason::BadIpChecksum));
    let mut f = udp_frame(&Spec::default());
    f[14 + 8] -= 1; // TTL changed without a checksum update
    assert_eq!(parse(&f), Err(DropReason::BadIpChecksum));
}

#[test]
fn fragments() {
    for frag in [0x2000u16, 0x0001, 0x2001, 0x6000, 0x1fff] {
        let mut f = tcp_frame(&Spec::default(), ACK, 1, 1);
        set16(&mut f, 14 + 6, frag);
        fix_ip_csum(&mut f, 14);
        assert_eq!(parse(&f), Err(DropReason::IpFragment), "{frag:#x}");
    }
    // DF alone is not a fragment.
    let mut f = tcp_frame(&Spec::default(), ACK, 1, 1);
    set16(&mut f, 14 + 6, 0x4000);
    fix_ip_csum(&mut f, 14);
    assert!(parse(&f).is_ok());
}

#[test]
fn bad_l4_headers() {
    let s = Spec {
        payload: vec![0; 10],
        ..Spec::default()
    };
    // TCP data offset below 5, and beyond the datagram (30 bytes of TCP).
    for doff in [0u8, 4, 8, 15] {
        let mut f = tcp_frame(&s, ACK, 1, 1);
        f[34 + 12] = doff << 4;
        assert_eq!(parse(&f), Err(DropReason::BadL4Header), "doff {doff}");
    }
    // UDP length below 8 and beyond the IP payload (18 bytes).
    for ulen in [0u16, 7, 19, 0xffff] {
        let mut f = udp_frame(&s);
        set16(&mut f, 34 + 4, ulen);
        assert_eq!(parse(&f), Err(DropReason::BadL4Header), "ulen {ulen}");
    }
    // A UDP length shorter than the IP payload is legal.
    let mut f = udp_frame(&s);
    set16(&mut f, 34 + 4, 8);
    assert!(parse(&f).is_ok());
}

#[test]
fn unknown_ethertypes() {
    let base = udp_frame(&Spec::default());
    for et in [0x86ddu16, 0x88a8, 0x88cc, 0x0000] {
        let mut f = base.clone();
        set16(&mut f, 12, et);
        assert_eq!(parse(&f), Err(DropReason::UnknownEthertype), "{et:#x}");
    }
    // Double 802.1Q tag.
    let mut f = base[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x01, 0x81, 0x00, 0x00, 0x02]);
    f.extend_from_slice(&base[12..]);
    assert_eq!(parse(&f), Err(DropReason::UnknownEthertype));
}

#[test]
fn arp_ignored() {
    let base = arp_frame(None, 1, PEER_MAC, Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
    for (off, v) in [(14, 0x01u8), (15, 6), (16, 0x86), (18, 8), (19, 16)] {
        let mut f = base.clone();
        f[off] = v;
        assert_eq!(parse(&f), Err(DropReason::ArpIgnored), "byte {off} = {v}");
    }
}

#[test]
fn tcp_flag_rules() {
    let valid = [
        SYN,
        SYN | ECE | CWR,
        SYN | ACK,
        ACK,
        ACK | PSH,
        ACK | URG,
        FIN | ACK,
        FIN | ACK | PSH,
        RST,
        RST | ACK,
    ];
    let invalid = [
        0,
        PSH,
        URG,
        FIN,
        FIN | PSH | URG,
        SYN | FIN,
        SYN | RST,
        SYN | FIN | ACK,
        RST | FIN,
        RST | FIN | ACK,
        0xff,
    ];
    for f in valid {
        assert!(tcp_flags_valid(f), "{f:#x}");
    }
    for f in invalid {
        assert!(!tcp_flags_valid(f), "{f:#x}");
    }
}

// ---------------------------------------------------------------- NAT rewrites

/// The (source, destination) socket addresses of a TCP/UDP packet; `None` for other protocols.
fn tuple(p: &Ipv4Info) -> Option<(SocketAddrV4, SocketAddrV4)> {
    let (sport, dport) = p.ports()?;
    Some((
        SocketAddrV4::new(p.src, sport),
        SocketAddrV4::new(p.dst, dport),
    ))
}

fn reparse_tuple(f: &[u8]) -> (SocketAddrV4, SocketAddrV4) {
    tuple(&ip(&parse(f).expect("rewritten frame parses"))).unwrap()
}

#[test]
fn rewrite_tcp_with_ip_and_tcp_options() {
    let s = Spec {
        vlan: Some(7),
        ip_options: vec![1, 1, 1, 1],
        tcp_mss: true,
        ..Spec::default()
    };
    let mut f = tcp_frame(&s, SYN, 5, 0);
    let p = ip(&parse(&f).unwrap());
    let (lip, rip) = (sa("10.0.0.1:1025"), sa("10.1.1.1:8080"));
    rewrite_ipv4(&mut f, &p, lip, rip, true).unwrap();
    oracle_checksums(&f).unwrap();
    assert_eq!(reparse_tuple(&f), (lip, rip));
    assert_eq!(ip(&parse(&f).unwrap()).ttl, 63);
}

#[test]
fn rewrite_icmp_changes_addresses_only() {
    let mut f = icmp_echo_frame(&Spec::default(), 1, 2);
    let p = ip(&parse(&f).unwrap());
    let icmp_before = f[34..].to_vec();
    rewrite_ipv4(&mut f, &p, sa("1.1.1.1:9"), sa("2.2.2.2:9"), false).unwrap();
    oracle_checksums(&f).unwrap();
    assert_eq!(&f[34..], &icmp_before[..]);
    let q = ip(&parse(&f).unwrap());
    assert_eq!(
        (q.src, q.dst),
        (Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2))
    );
}

#[test]
fn rewrite_errors_leave_packet_unchanged() {
    let s = Spec {
        ttl: 1,
        ..Spec::default()
    };
    let mut f = tcp_frame(&s, ACK, 1, 1);
    let orig = f.clone();
    let p = ip(&parse(&f).unwrap());
    assert_eq!(
        rewrite_ipv4(&mut f, &p, sa("1.1.1.1:1"), sa("2.2.2.2:2"), true),
        Err(DropReason::TtlExceeded)
    );
    assert_eq!(f, orig);
    // A summary of a longer frame applied to a shorter one: refused, no panic.
    let mut short = f[..40].to_vec();
    assert_eq!(
        rewrite_ipv4(&mut short, &p, sa("1.1.1.1:1"), sa("2.2.2.2:2"), false),
        Err(DropReason::Truncated)
    );
    assert_eq!(&short[..], &orig[..40]);
}

#[test]
fn nat_mode_rewrites_one_side_only() {
    let s = Spec::default();
    let (client, vip, rs) = (s.src, s.dst, sa("10.9.9.9:53"));
    let mut f = udp_frame(&s);
    let p = ip(&parse(&f).unwrap());
    // Client to real server: only the destination changes.
    rewrite_ipv4(&mut f, &p, client, rs, false).unwrap();
    oracle_checksums(&f).unwrap();
    assert_eq!(reparse_tuple(&f), (client, rs));
    // The real server's reply goes back through us: only its source changes.
    let mut r = udp_frame(&Spec {
        src: rs,
        dst: client,
        ..Spec::default()
    });
    let p = ip(&parse(&r).unwrap());
    rewrite_ipv4(&mut r, &p, vip, client, true).unwrap();
    oracle_checksums(&r).unwrap();
    assert_eq!(reparse_tuple(&r), (vip, client));
}

fn arb_sock() -> impl Strategy<Value = SocketAddrV4> {
    (any::<u32>(), any::<u16>()).prop_map(|(a, p)| SocketAddrV4::new(Ipv4Addr::from(a), p))
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        proptest::option::of(0u16..4096),
        arb_sock(),
        arb_sock(),
        2u8..=255,
        proptest::collection::vec(any::<u8>(), 0..100),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(vlan, src, dst, ttl, payload, opts, tcp_mss)| Spec {
            vlan,
            src,
            dst,
            ttl,
            payload,
            ip_options: if opts { vec![1, 1, 1, 0] } else { vec![] },
            tcp_mss,
            ..Spec::default()
        })
}

/// Builds a frame of `kind` (0 TCP, 1 UDP, 2 UDP without checksum).
fn l4_frame(kind: u8, s: &Spec, flags: u8) -> Vec<u8> {
    match kind {
        0 => tcp_frame(s, flags, 0x1234_5678, 0x9abc_def0),
        1 => udp_frame(s),
        _ => udp_frame_no_csum(s),
    }
}

fn udp_csum(f: &[u8], p: &Ipv4Info) -> u16 {
    u16::from_be_bytes([f[p.l4_off + 6], f[p.l4_off + 7]])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Incremental checksums after any rewrite equal a full recompute (etherparse's).
    #[test]
    fn rewrite_checksums_match_full_recompute(
        s in arb_spec(), kind in 0u8..3, src in arb_sock(), dst in arb_sock(), dec in any::<bool>()
    ) {
        let mut f = l4_frame(kind, &s, ACK);
        let p = ip(&parse(&f).unwrap());
        rewrite_ipv4(&mut f, &p, src, dst, dec).unwrap();
        prop_assert_eq!(oracle_checksums(&f), Ok(()));
        let q = parse(&f).unwrap();
        let qi = ip(&q);
        prop_assert_eq!(tuple(&qi), Some((src, dst)));
        prop_assert_eq!(qi.ttl, if dec { s.ttl - 1 } else { s.ttl });
        prop_assert!(ipv4_header_valid(&f[qi.l3_off..qi.l4_off]));
        prop_assert!(ipv4_l4_valid(qi.src, qi.dst, qi.proto, &f[qi.l4_off..qi.end()]));
        if kind == 2 {
            prop_assert_eq!(udp_csum(&f, &qi), 0);
        } else if kind == 1 {
            prop_assert_ne!(udp_csum(&f, &qi), 0);
        }
    }

    /// FullNAT both ways: client→VIP becomes LIP→RIP; the server's reply RIP→LIP becomes
    /// VIP→client. Tuples land where expected, checksums stay right, and rewriting a packet
    /// back to its original addresses restores it byte for byte.
    #[test]
    fn fullnat_round_trip(
        s in arb_spec(), kind in 0u8..3, lip in arb_sock(), rip in arb_sock(),
        reply_payload in proptest::collection::vec(any::<u8>(), 0..64)
    ) {
        let (cip, vip) = (s.src, s.dst);
        let orig = l4_frame(kind, &s, SYN);
        let mut f = orig.clone();
        let p = ip(&parse(&f).unwrap());
        rewrite_ipv4(&mut f, &p, lip, rip, false).unwrap();
        prop_assert_eq!(oracle_checksums(&f), Ok(()));
        prop_assert_eq!(reparse_tuple(&f), (lip, rip));
        // Back again: identical to what the client sent.
        let mut back = f.clone();
        let q = ip(&parse(&back).unwrap());
        rewrite_ipv4(&mut back, &q, cip, vip, false).unwrap();
        prop_assert_eq!(&back, &orig);

        // The real server's reply.
        let rs = Spec { src: rip, dst: lip, payload: reply_payload, ..s.clone() };
        let mut r = l4_frame(kind, &rs, SYN | ACK);
        let rp = ip(&parse(&r).unwrap());
        rewrite_ipv4(&mut r, &rp, vip, cip, true).unwrap();
        prop_assert_eq!(oracle_checksums(&r), Ok(()));
        prop_assert_eq!(reparse_tuple(&r), (vip, cip));
    }
}

// ---------------------------------------------------------------- ARP

#[test]
fn arp_reply_in_place() {
    let spa = Ipv4Addr::new(10, 0, 0, 1);
    let vip = Ipv4Addr::new(10, 0, 0, 100);
    for vlan in [None, Some(42)] {
        let mut f = arp_frame(vlan, 1, PEER_MAC, spa, vip);
        let len = f.len();
        let p = parse(&f).unwrap();
        assert!(reply_in_place(&mut f, &p, OUR));
        assert_eq!(f.len(), len);
        assert_eq!((dst_mac(&f), src_mac(&f)), (Some(PEER), Some(OUR)));
        let r = parse(&f).unwrap();
        assert_eq!(r.vlan, vlan);
        assert_eq!(
            r.arp(),
            Some(&ArpInfo {
                op: ARP_OP_REPLY,
                sha: OUR,
                spa: vip,
                tha: PEER,
                tpa: spa
            })
        );
        // etherparse agrees.
        {
            let e = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
            let a = e.net.unwrap();
            let a = a.arp_ref().unwrap().to_packet().try_eth_ipv4().unwrap();
            assert_eq!(a.operation, etherparse::ArpOperation::REPLY);
            assert_eq!(a.sender_ipv4, vip.octets());
        }
        // A reply is not answered.
        assert!(!reply_in_place(&mut f, &r, OUR));
    }
}

#[test]
fn arp_request_and_gratuitous() {
    let me = Ipv4Addr::new(10, 0, 0, 1);
    let them = Ipv4Addr::new(10, 0, 0, 9);
    for vlan in [None, Some(3)] {
        let mut buf = [0xaau8; 64];
        let n = write_request(&mut buf, OUR, me, them, vlan);
        assert_eq!(n, 60);
        let l3 = if vlan.is_some() { 18 } else { 14 };
        assert!(buf[l3 + 28..60].iter().all(|&b| b == 0));
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(dst_mac(&buf), Some(MacAddr::BROADCAST));
        assert_eq!(p.vlan, vlan);
        let a = *p.arp().unwrap();
        assert_eq!(
            (a.op, a.sha, a.spa, a.tha, a.tpa),
            (1, OUR, me, MacAddr::ZERO, them)
        );
        assert!(!a.is_gratuitous());
        etherparse::SlicedPacket::from_ethernet(&buf[..n]).unwrap();

        let n = write_gratuitous(&mut buf, OUR, me, vlan);
        assert_eq!(n, REQUEST_LEN);
        let a = *parse(&buf[..n]).unwrap().arp().unwrap();
        assert!(a.is_gratuitous() && a.is_request());
        assert_eq!(a.spa, me);
    }
    let mut short = [0xaau8; 59];
    assert_eq!(write_request(&mut short, OUR, me, them, None), 0);
    assert!(short.iter().all(|&b| b == 0xaa));
}

// ---------------------------------------------------------------- ICMP

#[test]
fn icmp_echo_reply() {
    for vlan in [None, Some(9)] {
        let s = Spec {
            vlan,
            ttl: 3,
            payload: (0..=56u8).collect(),
            ..Spec::default()
        };
        let mut f = icmp_echo_frame(&s, 0x1234, 7);
        f.extend_from_slice(&[0xee; 3]); // padding must not count
        let len = f.len();
        let p = parse(&f).unwrap();
        assert!(echo_reply_in_place(&mut f, &p, OUR));
        assert_eq!(f.len(), len);
        oracle_checksums(&f).unwrap();
        let r = parse(&f).unwrap();
        let ri = ip(&r);
        assert_eq!((ri.src, ri.dst, ri.ttl), (*s.dst.ip(), *s.src.ip(), 64));
        assert_eq!(
            ri.l4,
            L4::Icmp {
                icmp_type: 0,
                code: 0
            }
        );
        assert_eq!(
            (dst_mac(&f), src_mac(&f), r.vlan),
            (Some(PEER), Some(OUR), vlan)
        );
        let l4 = ri.l4_off;
        assert_eq!(&f[l4 + 4..l4 + 8], &[0x12, 0x34, 0, 7]);
        // The reply itself is not answered.
        assert!(!echo_reply_in_place(&mut f, &r, OUR));
    }
}

#[test]
fn icmp_echo_with_bad_checksum_is_not_answered() {
    let mut f = icmp_echo_frame(&Spec::default(), 1, 1);
    let last = f.len() - 1;
    f[last] ^= 0xff;
    let orig = f.clone();
    let p = parse(&f).unwrap();
    assert!(!echo_reply_in_place(&mut f, &p, OUR));
    assert_eq!(f, orig);
    let mut u = udp_frame(&Spec::default());
    let p = parse(&u).unwrap();
    assert!(!echo_reply_in_place(&mut u, &p, OUR));
}

// ---------------------------------------------------------------- TCP RST

fn check_rst(f: &mut Vec<u8>, s: &Spec) -> (u32, u32, u8) {
    let p = parse(f).unwrap();
    let n = rst_reply_in_place(f, &p, OUR).expect("answered");
    let l3 = l3_off(s);
    assert_eq!(n, (l3 + 40).max(60.min(f.len())));
    assert!(f[l3 + 40..n].iter().all(|&b| b == 0));
    f.truncate(n);
    oracle_checksums(f).unwrap();
    let r = parse(f).unwrap();
    assert_eq!(r.vlan, s.vlan);
    assert_eq!((dst_mac(f), src_mac(f)), (Some(PEER), Some(OUR)));
    let ri = ip(&r);
    assert_eq!((ri.total_len, ri.l4_off, ri.ttl), (40, l3 + 20, 64));
    assert_eq!(tuple(&ri), Some((s.dst, s.src)));
    let t = *ri.tcp().unwrap();
    assert_eq!(t.payload_len, 0);
    (t.seq, t.ack, t.flags)
}

#[test]
fn rst_for_syn_acks_it() {
    let s = Spec {
        payload: vec![],
        tcp_mss: true,
        ip_options: vec![1, 1, 1, 1],
        ..Spec::default()
    };
    let mut f = tcp_frame(&s, SYN, 1000, 0);
    assert_eq!(check_rst(&mut f, &s), (0, 1001, RST | ACK));
}

#[test]
fn rst_for_data_without_ack_counts_payload_and_fin() {
    let s = Spec {
        payload: vec![1; 10],
        vlan: Some(11),
        ..Spec::default()
    };
    let mut f = tcp_frame(&s, FIN | PSH, u32::MAX - 4, 0);
    assert_eq!(check_rst(&mut f, &s), (0, 6, RST | ACK));
}

#[test]
fn rst_for_ack_takes_its_sequence() {
    let s = Spec {
        payload: vec![1; 100],
        ..Spec::default()
    };
    let mut f = tcp_frame(&s, ACK | PSH, 77, 5555);
    assert_eq!(check_rst(&mut f, &s), (5555, 0, RST));
}

#[test]
fn rst_never_answers_rst_or_non_tcp() {
    for flags in [RST, RST | ACK] {
        let mut f = tcp_frame(&Spec::default(), flags, 1, 1);
        let orig = f.clone();
        let p = parse(&f).unwrap();
        assert_eq!(rst_reply_in_place(&mut f, &p, OUR), None);
        assert_eq!(f, orig);
    }
    let mut u = udp_frame(&Spec::default());
    let p = parse(&u).unwrap();
    assert_eq!(rst_reply_in_place(&mut u, &p, OUR), None);
}

proptest! {
    #[test]
    fn rst_is_always_valid(s in arb_spec(), flags in any::<u8>(), seq in any::<u32>(), ack in any::<u32>()) {
        let flags = flags & !RST;
        let mut f = tcp_frame(&s, flags, seq, ack);
        let (rseq, rack, rflags) = check_rst(&mut f, &s);
        if flags & ACK != 0 {
            prop_assert_eq!((rseq, rack, rflags), (ack, 0, RST));
        } else {
            let len = s.payload.len() as u32
                + u32::from(flags & SYN != 0)
                + u32::from(flags & FIN != 0);
            prop_assert_eq!((rseq, rack, rflags), (0, seq.wrapping_add(len), RST | ACK));
        }
    }
}

// ---------------------------------------------------------------- robustness

/// Invariants every accepted frame satisfies, and every in-place function run on it.
fn exercise(f: &[u8]) -> Result<(), TestCaseError> {
    // The straight-line branch may decline any frame, but what it accepts must be exactly what
    // the general parse makes of it.
    if let Some(fast) = parse_common(f) {
        prop_assert_eq!(parse_general(f), Ok(fast));
    }
    let Ok(p) = parse(f) else { return Ok(()) };
    prop_assert!(p.l3_off == 14 || p.l3_off == 18);
    match p.l3 {
        L3::Arp(_) => prop_assert!(p.l3_end() <= f.len()),
        L3::Ipv4(i) => {
            prop_assert!(i.l3_off + 20 <= i.l4_off && i.l4_off <= i.end() && i.end() <= f.len());
            match i.l4 {
                L4::Tcp(t) => prop_assert!(i.l4_off + 20 + usize::from(t.payload_len) <= i.end()),
                L4::Udp { .. } | L4::Icmp { .. } => prop_assert!(i.l4_off + 8 <= i.end()),
                L4::Other => {}
            }
            let mut g = f.to_vec();
            let _ = rewrite_ipv4(&mut g, &i, sa("1.2.3.4:5"), sa("6.7.8.9:10"), true);
            prop_assert!(ipv4_header_valid(&g[i.l3_off..i.l4_off]));
        }
    }
    let mut g = f.to_vec();
    let _ = reply_in_place(&mut g, &p, OUR);
    let mut g = f.to_vec();
    let _ = echo_reply_in_place(&mut g, &p, OUR);
    let mut g = f.to_vec();
    if let Some(n) = rst_reply_in_place(&mut g, &p, OUR) {
        prop_assert!(n <= g.len());
        prop_assert!(parse(&g[..n]).is_ok());
    }
    Ok(())
}

fn arb_valid_frame() -> impl Strategy<Value = Vec<u8>> {
    (arb_spec(), 0u8..5, any::<u8>()).prop_map(|(s, kind, flags)| match kind {
        0..=2 => l4_frame(kind, &s, flags),
        3 => icmp_echo_frame(&s, 1, 2),
        _ => arp_frame(
            s.vlan,
            u16::from(flags & 3),
            PEER_MAC,
            *s.src.ip(),
            *s.dst.ip(),
        ),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn parse_never_panics_on_random_bytes(f in proptest::collection::vec(any::<u8>(), 0..128)) {
        exercise(&f)?;
    }

    /// Random bytes behind a plausible Ethernet + IPv4 start (checksum fixed) reach the L4
    /// parsers far more often than fully random bytes.
    #[test]
    fn parse_never_panics_on_random_ipv4(
        mut f in proptest::collection::vec(any::<u8>(), 34..128),
        vlan in any::<bool>(), ihl in 5u8..7, proto in prop_oneof![Just(1u8), Just(6), Just(17), any::<u8>()]
    ) {
        let l3 = if vlan { 18 } else { 14 };
        f[12..14].copy_from_slice(if vlan { &[0x81, 0] } else { &[0x08, 0] });
        if vlan {
            f[16..18].copy_from_slice(&[0x08, 0]);
        }
        if f.len() >= l3 + usize::from(ihl) * 4 {
            f[l3] = 0x40 | ihl;
            let total = (f.len() - l3) as u16;
            f[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            f[l3 + 6] &= 0x40;
            f[l3 + 7] = 0;
            f[l3 + 9] = proto;
            fix_ip_csum(&mut f, l3);
        }
        exercise(&f)?;
    }

    #[test]
    fn parse_never_panics_on_mutated_frames(
        f in arb_valid_frame(),
        muts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(), do_cut in any::<bool>()
    ) {
        let mut f = f;
        exercise(&f)?;
        prop_assert!(parse(&f).is_ok());
        for (i, b) in muts {
            let i = i.index(f.len());
            f[i] = b;
        }
        if do_cut {
            f.truncate(cut.index(f.len() + 1));
        }
        exercise(&f)?;
    }
}
