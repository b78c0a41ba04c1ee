//! Packets of no connection get the RST a real server would send, and what happens to the
//! connections of a deleted real server or service (the workers' cut commands).

use std::net::SocketAddrV4;

use dpvs_core::drop::DropReason;
use dpvs_core::packet::Frame;
use dpvs_core::packet::tcp::{ACK, FIN, PSH, RST, SYN};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

use crate::udp::udp_rig;

#[test]
fn non_syn_without_connection_gets_rst() {
    let mut rig = Rig::lab();

    let out = rig.send(0, &client_tcp(41000, ACK | PSH, 777, 123_456, b"stale"));
    let p = only_ip4(&out, "RST to the client");
    assert_eq!(p.port, 0, "RST leaves towards the client");
    assert_eq!((p.eth_dst, p.eth_src), (CLIENT_MAC, MAC0));
    assert_eq!(
        (p.src, p.sport, p.dst, p.dport),
        (VIP, VPORT_TCP, CLIENT, 41000)
    );
    let t = p.tcp.unwrap();
    assert!(t.rst && !t.ack && !t.syn, "a bare RST: {t:?}");
    assert_eq!(t.sequence_number, 123_456, "RST seq = the segment's ack");
    assert!(p.payload.is_empty());
    assert_eq!(rig.drops(DropReason::NoConnection), 1);
    assert!(rig.worker.conns().is_empty(), "no connection created");

    // From a real server to the local address.
    let out = rig.send(1, &rs_tcp(RS1, 3001, ACK, 9, 4242, b""));
    let p = only_ip4(&out, "RST to the real server");
    assert_eq!(p.port, 1);
    assert_eq!((p.eth_dst, p.eth_src), (RS1_MAC, MAC1));
    assert_eq!(
        (p.src, p.sport, p.dst, p.dport),
        (LADDR, 3001, RS1, RPORT_TCP)
    );
    let t = p.tcp.unwrap();
    assert!(t.rst);
    assert_eq!(t.sequence_number, 4242);
    assert_eq!(rig.drops(DropReason::NoConnection), 2);

    // A SYN from a real server to the local address is refused the same way (RFC 793: no
    // ACK → RST|ACK acknowledging the SYN).
    let out = rig.send(1, &rs_tcp(RS2, 3003, SYN, 70, 0, b""));
    let t = only_ip4(&out, "RST to a RS SYN").tcp.unwrap();
    assert!(t.rst && t.ack && t.acknowledgment_number == 71, "{t:?}");

    // A RST is never answered, but counted.
    assert!(rig.send(0, &client_tcp(41001, RST, 5, 0, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::NoConnection), 4);

    // UDP to the local address without a connection: dropped, no answer.
    assert!(rig.send(1, &rs_udp(RS1, 3001, b"x")).is_empty());
    assert_eq!(rig.drops(DropReason::NoConnection), 5);
    // UDP to one of our addresses with no service.
    let f = udp_frame(
        (CLIENT_MAC, MAC0),
        SocketAddrV4::new(CLIENT, 5000),
        SocketAddrV4::new(ADDR0, 53),
        b"x",
    );
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::NoService), 1);
}

#[test]
fn invalid_tcp_flags_are_dropped_without_answer() {
    let mut rig = Rig::lab();
    for flags in [0, SYN | FIN, SYN | RST, FIN] {
        let out = rig.send(0, &client_tcp(41100, flags, 1, 0, b""));
        assert!(out.is_empty(), "flags {flags:#x} must not be answered");
    }
    assert_eq!(rig.drops(DropReason::BadTcpFlags), 4);
    assert!(rig.worker.conns().is_empty());
}

#[test]
fn cut_rs_and_service_commands() {
    let mut rig = Rig::lab();
    let mut opened = Vec::new();
    for cport in 42000..42004u16 {
        opened.push((cport, open(&mut rig, cport).0));
    }
    assert_eq!(opened.iter().filter(|o| o.1 == RS1).count(), 2);
    let rs1_slot = rs_slot(&rig.state, &tcp_svc(), sa(RS1, RPORT_TCP));

    // ListConns.
    let list = rig.list_conns_limited(10);
    assert_eq!(list.len(), 4);
    for c in &list {
        assert_eq!(*c.vip.ip(), VIP);
        assert_eq!(c.laddr.map(|l| *l.ip()), Some(LADDR));
        assert_eq!(*c.client.ip(), CLIENT);
        assert_eq!(c.state, "SYN_RECV");
        assert!(c.expires_in_ms > 0);
    }

    // CutRs: the TCP entries to RS1 stay, marked dead, their counter slots let go at once.
    assert_eq!(rig.cut_rs(rs1_slot), 2, "two connections to RS1 cut");
    let dead: Vec<_> = rig
        .worker
        .conns()
        .iter()
        .filter(|c| c.is_dead())
        .copied()
        .collect();
    assert_eq!(dead.len(), 2, "the TCP entries stay, marked dead");
    assert!(
        dead.iter().all(|c| c.rip == RS1.to_bits()),
        "only RS1's are dead"
    );
    let t = rig.stats.slot_totals(rs1_slot);
    assert_eq!(
        (t.active, t.inactive),
        (0, 0),
        "RS1 gauges released at once: {t:?}"
    );

    // The next client segment of a cut connection resets both ends and removes the entry.
    let &(cport, _) = opened.iter().find(|o| o.1 == RS1).unwrap();
    let lport = dead.iter().find(|c| c.cport == cport).unwrap().lport;
    let out = rig.send(0, &client_tcp(cport, ACK | PSH, 1001, 5001, b"after flush"));
    assert_eq!(out.len(), 2, "a RST to each end");
    let to_client = out.iter().find(|o| o.0 == 0).expect("a RST to the client");
    let p = ip4(to_client.0, to_client.1.data());
    assert_eq!(
        (p.src, p.sport, p.dst, p.dport),
        (VIP, VPORT_TCP, CLIENT, cport)
    );
    assert_eq!(p.eth_dst, CLIENT_MAC);
    let t = p.tcp.unwrap();
    assert!(
        t.rst && t.sequence_number == 5001,
        "client RST seq = its ack: {t:?}"
    );
    let to_rs = out
        .iter()
        .find(|o| o.0 == 1)
        .expect("a RST to the real server");
    let p = ip4(to_rs.0, to_rs.1.data());
    assert_eq!(
        (p.src, p.sport, p.dst, p.dport),
        (LADDR, lport, RS1, RPORT_TCP)
    );
    assert_eq!((p.eth_dst, p.eth_src), (RS1_MAC, MAC1));
    let t = p.tcp.unwrap();
    assert!(
        t.rst && t.sequence_number == 1001,
        "RS RST seq = the client's seq: {t:?}"
    );
    assert_eq!(rig.worker.conns().len(), 3, "the cut entry is gone");
    assert_eq!(rig.counters().conns_active.get(), 3);

    // The other cut connection: its real server speaks first.
    let other = dead.iter().find(|c| c.cport != cport).unwrap();
    let out = rig.send(1, &rs_tcp(RS1, other.lport, ACK, 5001, 1001, b"late"));
    assert_eq!(out.len(), 2, "a RST to each end");
    let to_client = out.iter().find(|o| o.0 == 0).expect("RST to the client");
    let p = ip4(0, to_client.1.data());
    assert_eq!((p.dst, p.dport), (CLIENT, other.cport));
    assert_eq!(
        p.tcp.unwrap().sequence_number,
        5001,
        "in the client's window"
    );
    assert_eq!(rig.worker.conns().len(), 2);

    // CutService: the remaining (RS2) entries die too; a dead entry expires after the close
    // timeout if nobody speaks.
    assert_eq!(rig.cut_service(svc_slot(&rig.state, &tcp_svc())), 2);
    assert!(rig.worker.conns().iter().all(|c| c.is_dead()));
    let close_ms = rig.snap.timeouts.close * 1000;
    rig.advance(u64::from(close_ms));
    rig.housekeeping();
    assert!(
        rig.worker.conns().is_empty(),
        "dead entries expire after the close timeout"
    );
    assert_eq!(rig.counters().conns_active.get(), 0);
    let s = rig.stats.slot_totals(svc_slot(&rig.state, &tcp_svc()));
    assert_eq!((s.active, s.inactive), (0, 0), "service gauges {s:?}");
}

#[test]
fn cut_rs_removes_udp_entries_at_once() {
    let mut rig = udp_rig(64);
    let mut rs_of = Vec::new();
    for cport in 42100..42104u16 {
        let out = rig.send(0, &client_udp(cport, b"q"));
        rs_of.push(only_ip4(&out, "UDP").dst);
    }
    assert_eq!(
        rig.cut_rs(rs_slot(&rig.state, &udp_svc(), sa(RS1, RPORT_UDP))),
        2
    );
    assert_eq!(rig.worker.conns().len(), 2, "UDP entries to RS1 removed");
    assert!(rig.worker.conns().iter().all(|c| c.rip == RS2.to_bits()));
    assert_eq!(rig.counters().conns_active.get(), 2);
}
