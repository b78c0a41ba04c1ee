//! Scheduling and connection reuse: rr and draining, a client's new SYN on a tuple whose
//! connection is over or was cut.

use std::net::Ipv4Addr;

use dpvs_api::RsSpec;
use dpvs_core::drop::DropReason;
use dpvs_core::engine::tcp_state::TcpState;
use dpvs_core::packet::tcp::{ACK, FIN, SYN};
use dpvs_daemon::control::state::Cut;
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

/// A client that reuses its port once the connection is over (CLOSE here, TIME_WAIT alike)
/// opens a new connection, scheduled afresh (rr moves it to the other real server), counted,
/// with the old entry and its local port gone: LVS's default connection reuse.
#[test]
fn a_new_syn_on_a_closed_tuple_is_a_new_connection() {
    let mut rig = Rig::lab();
    let (rs, lport) = handshake(&mut rig, 40200);
    rig.send(0, &client_tcp(40200, FIN | ACK, 1001, 5001, b""));
    rig.send(1, &rs_tcp(rs, lport, FIN | ACK, 5001, 1002, b""));
    rig.send(0, &client_tcp(40200, ACK, 1002, 5002, b""));
    let state = rig.worker.conns().iter().next().unwrap().state;
    assert_eq!(state, TcpState::Close);
    let slot = svc_slot(&rig.state, &tcp_svc());
    let conns_before = rig.stats.slot_totals(slot).conns;

    let (rs2, lport2) = open(&mut rig, 40200);
    assert_ne!(rs2, rs, "scheduled afresh: rr picks the other real server");
    assert_eq!(rig.worker.conns().len(), 1, "the old entry went");
    let c = rig.worker.conns().iter().next().unwrap();
    assert_eq!((c.state, c.lport), (TcpState::SynRecv, lport2));
    assert_eq!(rig.stats.slot_totals(slot).conns, conns_before + 1);
    assert_eq!(rig.counters().conns_active.get(), 1);
    let t = rig.stats.slot_totals(slot);
    assert_eq!((t.active, t.inactive), (0, 1), "gauges follow: {t:?}");

    // The old connection's reply tuple went with it: a late segment of the old real server
    // finds no connection and is answered with a RST.
    let late = rig.send(1, &rs_tcp(rs, lport, ACK, 5002, 1002, b""));
    let p = only_ip4(&late, "RST to the old real server");
    assert_eq!((p.port, p.dst), (1, rs));
    assert!(p.tcp.as_ref().is_some_and(|t| t.rst), "{:?}", p.tcp);
}

/// A real server deleted and added back: its cut connections, established or already in
/// TIME_WAIT, are dead entries until their close timeout. A client that reuses one of those
/// tuples for a new connection is scheduled afresh, not answered with a RST (issue 16, item 1:
/// under churn, returning clients were refused).
#[test]
fn a_new_syn_on_a_cut_connection_is_a_new_connection() {
    let mut rig = Rig::lab();
    // Two connections to RS1 (rr alternates): one established, one in TIME_WAIT.
    let opened: Vec<(u16, Ipv4Addr, u16)> = (40300..40304)
        .map(|cport| {
            let (rs, lport) = handshake(&mut rig, cport);
            (cport, rs, lport)
        })
        .collect();
    let to_rs1: Vec<(u16, u16)> = opened
        .iter()
        .filter(|o| o.1 == RS1)
        .map(|o| (o.0, o.2))
        .collect();
    let [(cport, lport), (cport2, lport2)] = to_rs1[..] else {
        panic!("rr gives RS1 two of four: {opened:?}")
    };
    rig.send(0, &client_tcp(cport2, FIN | ACK, 1001, 5001, b""));
    rig.send(1, &rs_tcp(RS1, lport2, FIN | ACK, 5001, 1002, b""));
    rig.send(0, &client_tcp(cport2, ACK, 1002, 5002, b""));
    let rs1 = sa(RS1, RPORT_TCP);
    let cut = rig.state.rs_del(&tcp_svc(), rs1).unwrap();
    rig.republish();
    let Cut::Rs(rs_slot) = cut else {
        panic!("rs_del cuts a real server's connections: {cut:?}")
    };
    assert_eq!(rig.cut_rs(rs_slot), 2, "both connections to RS1 cut");
    rig.state.release(cut);
    rig.state.rs_add(&tcp_svc(), &RsSpec::new(rs1, 1)).unwrap();
    rig.republish();
    let created = rig.counters().conns_created.get();

    for (cport, old_lport) in [(cport, lport), (cport2, lport2)] {
        let out = rig.send(0, &client_tcp(cport, SYN, 7000, 0, b""));
        let p = only_ip4(&out, "the SYN of a new connection on a cut tuple");
        assert!(
            is_syn(&p),
            "forwarded as a SYN, not answered with a RST: {:?}",
            p.tcp
        );
        assert_eq!(p.port, 1, "towards a real server");
        assert_ne!(p.sport, old_lport, "with a fresh local port");
    }
    assert_eq!(rig.counters().conns_created.get(), created + 2);
    assert_eq!(rig.drops(DropReason::NoConnection), 0);
    assert_eq!(rig.worker.conns().len(), 4, "the dead entries gave way");
    assert_eq!(rig.counters().conns_active.get(), 4);
    let t = rig.stats.slot_totals(svc_slot(&rig.state, &tcp_svc()));
    assert_eq!((t.active, t.inactive), (2, 2), "gauges: {t:?}");
}

#[test]
fn rr_alternates_and_weight_zero_drains() {
    let mut rig = Rig::lab();
    let mut picks = Vec::new();
    for cport in 20000..20100u16 {
        let (rs, lport) = open(&mut rig, cport);
        picks.push((cport, rs, lport));
    }
    for w in picks.windows(2) {
        assert_ne!(
            w[0].1, w[1].1,
            "rr must alternate: {:?} then {:?}",
            w[0], w[1]
        );
    }
    let to_rs1 = picks.iter().filter(|p| p.1 == RS1).count();
    assert_eq!(to_rs1, 50, "rr splits 100 connections 50/50");
    let mut lports: Vec<u16> = picks.iter().map(|p| p.2).collect();
    lports.sort_unstable();
    lports.dedup();
    assert_eq!(lports.len(), 100, "every connection has its own local port");

    // Drain RS1.
    rig.state
        .rs_edit(&tcp_svc(), &RsSpec::new(sa(RS1, RPORT_TCP), 0))
        .unwrap();
    assert!(rig.republish().is_empty());
    for cport in 30000..30020u16 {
        let (rs, _) = open(&mut rig, cport);
        assert_eq!(
            rs, RS2,
            "new connection from port {cport} went to the drained RS1"
        );
    }
    // An existing connection to RS1 keeps going there, both ways.
    let &(cport, _, lport) = picks.iter().find(|p| p.1 == RS1).unwrap();
    let out = rig.send(0, &client_tcp(cport, ACK, 1001, 5001, b"x"));
    let p = only_ip4(&out, "segment of a drained connection");
    assert_eq!((p.dst, p.sport), (RS1, lport), "kept on its real server");
    let out = rig.send(1, &rs_tcp(RS1, lport, ACK, 5001, 1002, b"y"));
    let p = only_ip4(&out, "reply on a drained connection");
    assert_eq!((p.dst, p.dport), (CLIENT, cport));

    // Every real server drained: a new SYN is refused.
    rig.state
        .rs_edit(&tcp_svc(), &RsSpec::new(sa(RS2, RPORT_TCP), 0))
        .unwrap();
    rig.republish();
    assert!(rig.send(0, &client_tcp(31000, SYN, 1, 0, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::NoRealServer), 1);
}
