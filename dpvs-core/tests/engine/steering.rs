//! Steering: which worker owns a packet.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use dpvs_core::drop::DropReason;
use dpvs_core::engine::worker::client_owner;
use dpvs_core::packet::MacAddr;
use dpvs_core::packet::tcp::{ACK, SYN};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

#[test]
fn steering_by_local_port_and_by_flow() {
    let mut rig = Rig::lab();
    let snap = rig.snap.clone();
    for lport in [1024u16, 1025, 3000, 3001, 65535] {
        let f = rs_tcp(RS1, lport, ACK, 1, 2, b"");
        assert_eq!(
            owner_of(&snap, 2, &f),
            Some(lport % 2),
            "reply to local port {lport}"
        );
        let f = rs_udp(RS2, lport, b"x");
        assert_eq!(owner_of(&snap, 2, &f), Some(lport % 2));
        assert_eq!(
            owner_of(&snap, 1, &f),
            None,
            "with one worker, any worker may process it"
        );
    }
    let mut seen = [0usize; 2];
    for cport in 1000..1100u16 {
        let f = client_tcp(cport, SYN, 1, 0, b"");
        let o = owner_of(&snap, 2, &f);
        assert_eq!(o, Some(client_owner(CLIENT, cport, 2)));
        assert_eq!(o, owner_of(&snap, 2, &f), "stable");
        seen[usize::from(o.unwrap())] += 1;
        let f = client_udp(cport, b"q");
        assert_eq!(owner_of(&snap, 2, &f), Some(client_owner(CLIENT, cport, 2)));
    }
    assert!(
        seen[0] > 20 && seen[1] > 20,
        "flows spread over both workers: {seen:?}"
    );
    // Any worker may process these.
    let arp = arp_frame(MacAddr::BROADCAST, ARP_REQUEST, CLIENT_MAC, CLIENT, VIP);
    assert_eq!(owner_of(&snap, 2, &arp), None);
    assert_eq!(owner_of(&snap, 2, &icmp_echo(CLIENT, VIP, 1, 1, b"")), None);
    let far = tcp_frame(
        (CLIENT_MAC, MAC0),
        SocketAddrV4::new(CLIENT, 1),
        SocketAddrV4::new(Ipv4Addr::new(8, 8, 8, 8), 80),
        SYN,
        (1, 0),
        b"",
    );
    assert_eq!(
        owner_of(&snap, 2, &far),
        Some(client_owner(Ipv4Addr::new(8, 8, 8, 8), 80, 2)),
        "not to us: could be a NAT reply, so steered by its destination endpoint"
    );
    assert_eq!(owner_of(&snap, 2, &[1, 2, 3]), None, "garbage");

    // End to end: the reply of a connection this worker opened is steered back to it.
    let (rs, lport) = open(&mut rig, 48000);
    assert_eq!(
        owner_of(&snap, WORKERS, &rs_tcp(rs, lport, ACK, 1, 2, b"")),
        Some(ME)
    );
}

/// `laddr del` stops new connections from the local address, but the established ones it
/// carries go on (the address stays one of ours): their replies are still steered to the
/// worker that owns their local port.
#[test]
fn connections_of_a_removed_local_address_keep_their_owner() {
    let mut rig = Rig::lab();
    let (rs, lport) = handshake(&mut rig, 48100);
    for svc in [tcp_svc(), udp_svc()] {
        rig.state.laddr_del(&svc, IpAddr::V4(LADDR)).unwrap();
    }
    rig.republish();
    for port in [1024u16, 1025, 40001, 40002] {
        let f = rs_tcp(RS2, port, ACK, 1, 2, b"");
        assert_eq!(
            owner_of(&rig.snap, 2, &f),
            Some(port % 2),
            "reply to port {port}"
        );
    }
    let out = rig.send(1, &rs_tcp(rs, lport, ACK, 5001, 1001, b"late reply"));
    let p = only_ip4(&out, "reply through a removed local address");
    assert_eq!((p.src, p.dst, p.dport), (VIP, CLIENT, 48100));
    // New connections need a local address now.
    assert!(rig.send(0, &client_tcp(48101, SYN, 1, 0, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::LaddrExhausted), 1);
}
