//! Traffic for the balancer itself: ARP for its addresses, ICMP echo.

use std::net::Ipv4Addr;

use dpvs_core::drop::DropReason;
use dpvs_core::engine::worker::Event;
use dpvs_core::packet::{Frame, MacAddr};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;
use etherparse::Icmpv4Type;

#[test]
fn arp_requests_for_our_addresses_are_answered_and_senders_learnt() {
    let mut rig = Rig::lab();

    let out = rig.send(
        0,
        &arp_frame(MacAddr::BROADCAST, ARP_REQUEST, CLIENT_MAC, CLIENT, VIP),
    );
    assert_eq!(out.len(), 1, "one ARP reply");
    assert_eq!(out[0].0, 0, "answered on the port it came in");
    let (dst, src, a) = arp_out(out[0].1.data());
    assert_eq!((dst, src), (CLIENT_MAC, MAC0));
    assert_eq!(a.op, ARP_REPLY);
    assert_eq!((a.sha, a.spa), (MAC0, VIP), "VIP is at dpdk0's MAC");
    assert_eq!((a.tha, a.tpa), (CLIENT_MAC, CLIENT));
    assert!(
        rig.events().is_empty(),
        "an already known neighbour is not reported"
    );

    // An unknown neighbour asking for our connected address is learnt.
    let m3 = MacAddr([2, 0, 0, 0, 1, 3]);
    let n3 = Ipv4Addr::new(10, 0, 0, 3);
    let out = rig.send(
        0,
        &arp_frame(MacAddr::BROADCAST, ARP_REQUEST, m3, n3, ADDR0),
    );
    let (_, _, a) = arp_out(out[0].1.data());
    assert_eq!((a.sha, a.spa, a.tpa), (MAC0, ADDR0, n3));
    assert_eq!(
        rig.events(),
        vec![Event::NeighLearned {
            ip: n3,
            mac: m3,
            port: 0
        }]
    );

    // A reply to us (answering one of our requests) is learnt and consumed.
    let m13 = MacAddr([2, 0, 0, 0, 2, 0x13]);
    let n13 = Ipv4Addr::new(192, 168, 10, 13);
    let out = rig.send(1, &arp_frame(MAC1, ARP_REPLY, m13, n13, ADDR1));
    assert!(out.is_empty(), "an ARP reply is not answered");
    assert_eq!(
        rig.events(),
        vec![Event::NeighLearned {
            ip: n13,
            mac: m13,
            port: 1
        }]
    );

    // A known neighbour with a new MAC is reported again.
    let moved = MacAddr([2, 0, 0, 0, 0x0e, 0x02]);
    rig.send(
        0,
        &arp_frame(MacAddr::BROADCAST, ARP_REQUEST, moved, CLIENT, VIP),
    );
    assert_eq!(
        rig.events(),
        vec![Event::NeighLearned {
            ip: CLIENT,
            mac: moved,
            port: 0
        }]
    );

    // Not for one of our addresses: ignored, nothing learnt.
    let out = rig.send(
        0,
        &arp_frame(
            MacAddr::BROADCAST,
            ARP_REQUEST,
            m3,
            n3,
            Ipv4Addr::new(10, 0, 0, 77),
        ),
    );
    assert!(out.is_empty());
    assert_eq!(rig.drops(DropReason::ArpIgnored), 1);
    assert!(rig.events().is_empty());
}

/// `LocalAddr::port` is documented as "the port it lives on (ARP is answered there)".
#[test]
fn arp_is_answered_only_on_the_addresss_port() {
    let mut rig = Rig::lab();
    let m = MacAddr([2, 0, 0, 0, 2, 0x13]);
    let out = rig.send(
        1,
        &arp_frame(
            MacAddr::BROADCAST,
            ARP_REQUEST,
            m,
            Ipv4Addr::new(192, 168, 10, 13),
            VIP,
        ),
    );
    assert!(
        out.is_empty(),
        "the VIP lives on dpdk0 but was announced on dpdk1 at {:?}",
        out.first().map(|o| arp_out(o.1.data()).2.sha)
    );
}

#[test]
fn icmp_echo_to_our_address_is_answered() {
    let mut rig = Rig::lab();
    let out = rig.send(0, &icmp_echo(CLIENT, ADDR0, 7, 1, b"ping payload"));
    let p = only_ip4(&out, "echo reply");
    assert_eq!(p.port, 0);
    assert_eq!((p.eth_dst, p.eth_src), (CLIENT_MAC, MAC0));
    assert_eq!((p.src, p.dst), (ADDR0, CLIENT));
    let icmp = p.icmp.unwrap();
    match icmp.icmp_type {
        Icmpv4Type::EchoReply(e) => assert_eq!((e.id, e.seq), (7, 1)),
        other => panic!("expected an echo reply, got {other:?}"),
    }
    assert_eq!(p.payload, b"ping payload");

    // The VIP answers too.
    let out = rig.send(0, &icmp_echo(CLIENT, VIP, 8, 2, b"x"));
    assert_eq!(only_ip4(&out, "echo to VIP").src, VIP);

    // Not ours: dropped.
    assert!(
        rig.send(
            0,
            &icmp_echo(CLIENT, Ipv4Addr::new(10, 0, 0, 77), 9, 3, b"x")
        )
        .is_empty()
    );
    assert_eq!(rig.drops(DropReason::NotOurs), 1);

    // A bad ICMP checksum is not answered.
    let mut f = icmp_echo(CLIENT, ADDR0, 10, 4, b"x");
    f[14 + 20 + 2] ^= 0xff;
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::IcmpIgnored), 1);
}
