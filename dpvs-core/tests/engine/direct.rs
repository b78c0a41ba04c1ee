//! DR and TUN: replies bypass the balancer, so only the client's direction is seen.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use dpvs_api::{Forward, Proto, RsSpec, Sched, ServiceKey, ServiceSpec};
use dpvs_core::drop::DropReason;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::packet::tcp::{ACK, FIN, PSH, SYN};
use dpvs_core::packet::{Frame, VecFrame, checksum};
use dpvs_daemon::control::state::Cut;

use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

/// A service on VIP:`port` in `forward` mode over RS1 (on dpdk1's link) at the same port.
fn direct_rig(forward: Forward, port: u16) -> (Rig<VecFrame>, ServiceKey) {
    let key = ServiceKey {
        proto: Proto::Tcp,
        vip: IpAddr::V4(VIP),
        port,
    };
    let mut state = lab_state(Timeouts::default(), &[RS1, RS2]);
    state
        .service_add(&ServiceSpec::new(key, Sched::Rr, forward))
        .unwrap();
    state.rs_add(&key, &RsSpec::new(sa(RS1, port), 1)).unwrap();
    (Rig::new(state, limits(4096)), key)
}

/// The client's segment to VIP:`vport` (TTL 64, DF set like a Linux client's).
fn client_to(vport: u16, flags: u8, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = tcp_frame(
        (CLIENT_MAC, MAC0),
        SocketAddrV4::new(CLIENT, 40000),
        SocketAddrV4::new(VIP, vport),
        flags,
        (seq, 1),
        payload,
    );
    b[20] |= 0x40;
    checksum::fill_ipv4_header_checksum(&mut b[14..34]);
    b
}

/// DR: the client's packet goes out on the real server's link to its MAC, byte for byte as
/// sent but for the Ethernet header (not even the TTL changes: the real server holds the
/// VIP); the connection is tracked from the client's segments alone, and only under its
/// inbound tuple.
#[test]
fn dr_changes_only_the_destination_mac() {
    let (mut rig, _) = direct_rig(Forward::Dr, 8000);
    let segments = [
        (SYN, 1000, &b""[..]),
        (ACK, 1001, b""),
        (ACK | PSH, 1001, b"GET / HTTP/1.0\r\n\r\n"),
    ];
    let mut states = vec![];
    for (flags, seq, payload) in segments {
        let sent = client_to(8000, flags, seq, payload);
        let out = rig.send(0, &sent);
        assert_eq!(out.len(), 1);
        let (port, f) = &out[0];
        let got = f.data();
        assert_eq!(*port, 1, "out on the real server's link");
        assert_eq!(&got[..6], &RS1_MAC.0, "to the real server's MAC");
        assert_eq!(&got[6..12], &MAC1.0, "from our MAC on that port");
        assert_eq!(&got[12..], &sent[12..], "the IP packet is unchanged");
        states.push(rig.list_conns()[0].state);
    }
    assert_eq!(states, ["SYN_RECV", "ESTABLISHED", "ESTABLISHED"]);
    let view = &rig.list_conns()[0];
    assert_eq!((view.rs, view.laddr), (SocketAddrV4::new(RS1, 8000), None));
    // The fast path (plain ACK, established) forwarded the last one: one entry, no drops.
    assert_eq!(rig.worker.conns().len(), 1);
    assert_eq!(rig.total_drops(), 0);
    // The client's FIN: the server's answer is never seen, so the entry waits in FIN_WAIT.
    rig.send(0, &client_to(8000, FIN | ACK, 1020, b""));
    assert_eq!(rig.list_conns()[0].state, "FIN_WAIT");
}

/// DR to a real server that a later route change put behind a gateway: counted, not sent to
/// the gateway's MAC (the gateway would route the VIP-addressed packet back to us).
#[test]
fn dr_to_a_real_server_behind_a_gateway_is_counted() {
    let (mut rig, _) = direct_rig(Forward::Dr, 8000);
    rig.state
        .route_add(IpAddr::V4(RS1), 32, "dpdk1", Some(IpAddr::V4(RS2)), None)
        .unwrap();
    rig.republish();
    assert!(rig.send(0, &client_to(8000, SYN, 1, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::RsNotOnLink), 1);
}

/// DR and TUN connections of a deleted real server go at once (a real server's replies bypass
/// us, so there is no other end to reset); the client's next segment is answered with a RST.
#[test]
fn deleting_a_direct_real_server_resets_the_client() {
    for forward in [Forward::Dr, Forward::Tun] {
        let (mut rig, key) = direct_rig(forward, 8000);
        rig.send(0, &client_to(8000, SYN, 1000, b""));
        rig.send(0, &client_to(8000, ACK, 1001, b""));
        let cut = rig.state.rs_del(&key, sa(RS1, 8000)).unwrap();
        let Cut::Rs(slot) = cut else { panic!() };
        rig.republish();
        assert_eq!(rig.cut_rs(slot), 1, "{forward:?}");
        assert_eq!(rig.worker.conns().len(), 0, "{forward:?}: removed at once");
        let p = only_ip4(&rig.send(0, &client_to(8000, ACK, 1001, b"x")), "RST");
        assert!(p.tcp.as_ref().is_some_and(|t| t.rst), "{forward:?}");
        assert_eq!((p.dst, p.port), (CLIENT, 0));
    }
}

/// The outer header of a TUN frame and the inner packet, after checking the outer header's
/// fields and checksum.
fn outer_of(got: &[u8]) -> (Ipv4Addr, Ipv4Addr, &[u8]) {
    assert_eq!(&got[12..14], &[0x08, 0x00]);
    let outer = &got[14..34];
    assert!(checksum::ipv4_header_valid(outer), "outer header checksum");
    assert_eq!(
        (outer[0], outer[8], outer[9]),
        (0x45, 64, 4),
        "IPv4, TTL 64, IP-in-IP"
    );
    assert_eq!(
        usize::from(u16::from_be_bytes([outer[2], outer[3]])),
        got.len() - 14
    );
    let src = Ipv4Addr::new(outer[12], outer[13], outer[14], outer[15]);
    let dst = Ipv4Addr::new(outer[16], outer[17], outer[18], outer[19]);
    (src, dst, &got[34..])
}

/// TUN: the client's packet, unchanged, inside an outer header from our address on the real
/// server's link to the real server, through the general and the fast path alike.
#[test]
fn tun_carries_the_client_packet_in_an_outer_header() {
    let (mut rig, _) = direct_rig(Forward::Tun, 8000);
    for (flags, seq, payload) in [
        (SYN, 1000, &b""[..]),
        (ACK, 1001, b""),
        (ACK, 1001, b"data"),
    ] {
        let sent = client_to(8000, flags, seq, payload);
        let out = rig.send(0, &sent);
        assert_eq!(out.len(), 1);
        let (port, f) = &out[0];
        let got = f.data();
        assert_eq!((*port, &got[..6]), (1, &RS1_MAC.0[..]));
        let (src, dst, inner) = outer_of(got);
        assert_eq!((src, dst), (ADDR1, RS1), "from our address on that link");
        assert_eq!(inner, &sent[14..], "the client's packet unchanged");
        assert_eq!(
            got[14 + 6] & 0x40,
            0x40,
            "DF copied from the client's packet"
        );
    }
    assert_eq!(rig.list_conns()[0].state, "ESTABLISHED");
    assert_eq!(rig.total_drops(), 0);
}

/// TUN of a packet that no longer fits the egress MTU with the outer header: dropped and
/// counted; as it forbids fragmentation, the client is told the MTU that fits (from the
/// VIP, quoting its packet), which is how its TCP learns to send smaller segments.
#[test]
fn tun_answers_too_big_packets_with_fragmentation_needed() {
    let (mut rig, _) = direct_rig(Forward::Tun, 8000);
    rig.send(0, &client_to(8000, SYN, 1000, b""));
    let big = client_to(8000, ACK, 1001, &[7u8; 1460]);
    let p = only_ip4(&rig.send(0, &big), "fragmentation needed");
    assert_eq!(
        (p.port, p.src, p.dst, p.eth_dst),
        (0, VIP, CLIENT, CLIENT_MAC)
    );
    let icmp = p.icmp.expect("an ICMP message");
    assert_eq!(
        icmp.icmp_type,
        etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1480 }
        )
    );
    assert_eq!(
        &p.payload[..28],
        &big[14..42],
        "quotes the header and 8 bytes"
    );
    assert_eq!(rig.drops(DropReason::TooBig), 1);
    // A packet that fits (1480 bytes, 1500 with the outer header) goes.
    let fits = client_to(8000, ACK, 1001, &[7u8; 1440]);
    let out = rig.send(0, &fits);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.data().len(), 14 + 1500);
}
