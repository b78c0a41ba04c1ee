//! The packet parser on arbitrary bytes: `parse` and the straight-line `common` never panic,
//! agree with each other, and what they accept the in-place rewrites turn into valid frames;
//! the quote of an ICMP error reads inside the frame, and its translation for the other end of
//! a NAT connection leaves a valid error quoting the new endpoints.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use dpvs_core::drop::DropReason;
use dpvs_core::packet::arp::reply_in_place;
use dpvs_core::packet::checksum::{ipv4_header_valid, ipv4_l4_valid, plain_valid};
use dpvs_core::packet::icmp::echo_reply_in_place;
use dpvs_core::packet::icmp_error::{self, Quoted};
use dpvs_core::packet::ipv4::IpProto;
use dpvs_core::packet::nat::{rewrite_common, rewrite_ipv4};
use dpvs_core::packet::parse::{COMMON_HEAD, Common, common};
use dpvs_core::packet::tcp::{RST, rst_reply_in_place};
use dpvs_core::packet::{L3, L4, MacAddr, Packet, parse};
use libfuzzer_sys::fuzz_target;

const OUR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
/// The VLAN id the tagged twin of a frame carries.
const VLAN: u16 = 7;

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data);
    if let Ok(p) = &parsed {
        offsets_lie_within_the_frame(data, p);
        in_place_rewrites_keep_frames_valid(data, p);
        icmp_errors_translate(data, p);
    }
    straight_line_agrees_with_the_general_parse(data);
    a_vlan_tag_changes_only_offsets(data, parsed);
});

/// Every offset of a parse points inside the frame, in order: the rewrites index by them.
fn offsets_lie_within_the_frame(data: &[u8], p: &Packet) {
    assert!(p.l3_off == 14 || p.l3_off == 18, "L3 offset {}", p.l3_off);
    match p.l3 {
        L3::Arp(_) => assert!(p.l3_end() <= data.len(), "ARP beyond the frame"),
        L3::Ipv4(ip) => {
            assert!(
                ip.l3_off + 20 <= ip.l4_off && ip.l4_off <= ip.end() && ip.end() <= data.len(),
                "IPv4 offsets out of order or beyond the frame: {ip:?}"
            );
            match ip.l4 {
                L4::Tcp(t) => assert!(
                    ip.l4_off + 20 + usize::from(t.payload_len) <= ip.end(),
                    "TCP payload beyond the datagram"
                ),
                L4::Udp { .. } | L4::Icmp { .. } => {
                    assert!(ip.l4_off + 8 <= ip.end(), "L4 header beyond the datagram")
                }
                L4::Other => {}
            }
        }
    }
}

/// `data` with an 802.1Q tag after the MAC addresses (only for frames that have them).
fn with_vlan_tag(data: &[u8]) -> Option<Vec<u8>> {
    let macs = data.get(..12)?;
    let mut v = Vec::with_capacity(data.len() + 4);
    v.extend_from_slice(macs);
    v.extend_from_slice(&[0x81, 0x00]);
    v.extend_from_slice(&VLAN.to_be_bytes());
    v.extend_from_slice(&data[12..]);
    Some(v)
}

/// A frame `common` accepts parses to the same values through the general parse. The general
/// parse is reached through the frame's tagged twin: `common` declines any tagged frame, and
/// the tag moves nothing but offsets (checked for every frame below).
fn straight_line_agrees_with_the_general_parse(data: &[u8]) {
    let Some(fast) = common(data) else { return };
    let tagged = with_vlan_tag(data).expect("common accepts only frames with a header");
    assert_eq!(common(&tagged), None, "common accepted a tagged frame");
    let p = parse(&tagged).unwrap_or_else(|e| {
        panic!("common accepted {fast:?}, the general parse refuses it: {e:?}")
    });
    let ip = p
        .ipv4()
        .expect("common accepted a frame the general parse calls ARP");
    assert_eq!(
        (ip.l3_off, ip.l4_off),
        (18, 38),
        "common frames have no IP options"
    );
    let (sport, dport) = ip.ports().expect("common accepted a frame without ports");
    let general = Common {
        src: ip.src,
        dst: ip.dst,
        sport,
        dport,
        proto: ip.proto,
        ttl: ip.ttl,
        tcp_flags: ip.tcp().map_or(0, |t| t.flags),
        total_len: ip.total_len,
    };
    assert_eq!(fast, general, "common and the general parse disagree");
}

/// A frame and its tagged twin parse alike, but for the offsets and the tag (or fail alike).
fn a_vlan_tag_changes_only_offsets(data: &[u8], parsed: Result<Packet, DropReason>) {
    // A frame tagged already would become double-tagged (QinQ), which is not handled.
    if data.get(12..14) == Some(&[0x81, 0x00]) {
        return;
    }
    let Some(tagged) = with_vlan_tag(data) else {
        return;
    };
    let untagged = parse(&tagged).map(|p| {
        assert_eq!(p.vlan, Some(VLAN), "the tag's VLAN id");
        let l3 = match p.l3 {
            L3::Ipv4(mut ip) => {
                ip.l3_off -= 4;
                ip.l4_off -= 4;
                L3::Ipv4(ip)
            }
            arp => arp,
        };
        Packet {
            l3_off: p.l3_off - 4,
            vlan: None,
            l3,
        }
    });
    assert_eq!(untagged, parsed, "a VLAN tag changed the parse");
}

/// The in-place builders, on a copy of a frame the parser accepted: ARP and echo replies and
/// RSTs parse, with valid checksums; the NAT rewrite keeps the IP header checksum valid, and a
/// valid TCP/UDP checksum valid; the fast path's rewrite of a common frame is byte for byte the
/// general rewrite's.
fn in_place_rewrites_keep_frames_valid(data: &[u8], p: &Packet) {
    let mut g = data.to_vec();
    if reply_in_place(&mut g, p, OUR_MAC) {
        let r = parse(&g).expect("an ARP reply that does not parse");
        assert!(r.arp().is_some_and(|a| a.is_reply()), "not an ARP reply");
    }
    let mut g = data.to_vec();
    if echo_reply_in_place(&mut g, p, OUR_MAC) {
        let r = parse(&g).expect("an echo reply that does not parse");
        let ip = r.ipv4().expect("an echo reply that is not IPv4");
        assert!(
            plain_valid(&g[ip.l4_off..ip.end()]),
            "an echo reply with a bad ICMP checksum"
        );
    }
    let mut g = data.to_vec();
    if let Some(n) = rst_reply_in_place(&mut g, p, OUR_MAC) {
        assert!(n <= g.len(), "a RST longer than its buffer");
        let r = parse(&g[..n]).expect("a RST that does not parse");
        let ip = r.ipv4().expect("a RST that is not IPv4");
        assert!(
            ip.tcp().is_some_and(|t| t.flags & RST != 0),
            "a RST without RST"
        );
        assert!(
            ipv4_l4_valid(ip.src, ip.dst, IpProto::TCP, &g[ip.l4_off..ip.end()]),
            "a RST with a bad TCP checksum"
        );
    }
    let Some(ip) = p.ipv4() else { return };
    let src = SocketAddrV4::new(Ipv4Addr::new(192, 168, 10, 200), 1025);
    let dst = SocketAddrV4::new(Ipv4Addr::new(192, 168, 10, 11), 8080);
    let l4_valid = |b: &[u8]| ipv4_l4_valid(ip.src, ip.dst, ip.proto, &b[ip.l4_off..ip.end()]);
    let was_valid = ip.ports().is_some() && l4_valid(data);
    let mut g = data.to_vec();
    match rewrite_ipv4(&mut g, ip, src, dst, true) {
        Ok(()) => {
            assert!(
                ipv4_header_valid(&g[ip.l3_off..ip.l4_off]),
                "the NAT rewrite broke the IP header checksum"
            );
            if was_valid {
                let r = parse(&g).expect("a rewritten frame that does not parse");
                let rip = r.ipv4().expect("IPv4");
                assert!(
                    ipv4_l4_valid(rip.src, rip.dst, rip.proto, &g[rip.l4_off..rip.end()]),
                    "the NAT rewrite broke a valid TCP/UDP checksum"
                );
            }
        }
        Err(_) => assert_eq!(g, data, "a refused rewrite changed the frame"),
    }
    if let Some(c) = common(data)
        && c.ttl > 1
    {
        let mut h = data.to_vec();
        let head = h
            .first_chunk_mut::<COMMON_HEAD>()
            .expect("common frames hold the head");
        let ends = |a: SocketAddrV4| (a.ip().to_bits(), a.port());
        rewrite_common(head, c.proto, ends(src), ends(dst));
        assert_eq!(h, g, "the fast path's rewrite differs from the general one");
    }
}

/// An ICMP error's quote ([`icmp_error::quoted`]) lies inside the error; rewritten for new
/// endpoints ([`icmp_error::rewrite_quoted`], as a relay does), it reads back as those
/// endpoints and nothing else, with a valid ICMP checksum and quoted IPv4 header checksum, and,
/// when the whole quoted packet is there with a valid TCP/UDP checksum, that one stays valid
/// too; no byte outside the ICMP message changes.
fn icmp_errors_translate(data: &[u8], p: &Packet) {
    let Some(ip) = p.ipv4() else { return };
    if !icmp_error::is_error(ip) {
        return;
    }
    let Ok(q) = icmp_error::quoted(data, ip) else {
        return;
    };
    assert!(
        ip.l4_off + 8 == q.l3_off
            && q.l3_off + 20 <= q.l4_off
            && q.l4_off + 8 <= q.end
            && q.end <= ip.end(),
        "a quote out of its error: {q:?} in {ip:?}"
    );
    let total = usize::from(u16::from_be_bytes([data[q.l3_off + 2], data[q.l3_off + 3]]));
    let whole = q.end == q.l3_off + total;
    let l4_valid = |b: &[u8], src: SocketAddrV4, dst: SocketAddrV4| {
        ipv4_l4_valid(*src.ip(), *dst.ip(), q.proto, &b[q.l4_off..q.end])
    };
    let was_valid = whole && l4_valid(data, q.src, q.dst);
    let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40001);
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 100), 80);
    let mut g = data.to_vec();
    icmp_error::rewrite_quoted(&mut g, ip, &q, src, dst)
        .unwrap_or_else(|e| panic!("a quote that reads but cannot be rewritten: {e:?}"));
    let back = icmp_error::quoted(&g, ip).expect("a rewritten quote that does not read");
    assert_eq!(back, Quoted { src, dst, ..q }, "the rewritten quote");
    assert!(
        icmp_error::checksum_valid(&g, ip),
        "a rewritten error with a bad ICMP checksum"
    );
    assert!(
        ipv4_header_valid(&g[q.l3_off..q.l4_off]),
        "a rewritten quote with a bad IPv4 header checksum"
    );
    if was_valid {
        assert!(
            l4_valid(&g, src, dst),
            "the rewrite broke the whole quoted packet's valid TCP/UDP checksum"
        );
    }
    assert!(
        g[..ip.l4_off] == data[..ip.l4_off] && g[ip.end()..] == data[ip.end()..],
        "the rewrite changed bytes outside the ICMP message"
    );
}
