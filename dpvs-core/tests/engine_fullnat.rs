//! The worker end to end without DPDK, FullNAT and what every mode shares (ARP, ICMP, RST,
//! expiry, commands, bad input): frames built with etherparse go through `Worker::process` /
//! `Worker::housekeeping` (harness: `common::rig`) and what comes out is decoded and checked
//! (addresses, ports, MACs, TTL, full checksum recomputes, counters). NAT is in `engine_nat`,
//! DR and TUN in `engine_direct`.
//!
//! Lab (see `common`): worker 1 of 2; port 0 "dpdk0" (client side, 10.0.0.1/24 and the VIP
//! 10.0.0.100/32), port 1 "dpdk1" (real-server side, 192.168.10.1/24 and the local address
//! 192.168.10.200/32), rr services tcp:VIP:80 → RS1/RS2:8080 and udp:VIP:53 → RS1/RS2:5353.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::bounded;
use dpvs_core::drop::DropReason;
use dpvs_core::engine::snapshot::Snapshot;
use dpvs_core::engine::tcp_state::{TcpState, Timeouts};
use dpvs_core::engine::worker::{self, Command, ConnView, Event, WorkerLimits, client_owner};
use dpvs_core::packet::tcp::{ACK, FIN, PSH, RST, SYN};
use dpvs_core::packet::{Frame, L3, MacAddr, Packet, VecFrame, checksum, parse};
use dpvs_daemon::control::state::Flush;
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;
use etherparse::Icmpv4Type;
use proptest::prelude::*;

/// The worker caches next hops; a neighbour whose MAC changes must be sent to at its new MAC
/// from the next packet on, in both directions.
#[test]
fn a_changed_neighbour_mac_applies_to_the_next_packet() {
    let mut rig = Rig::lab();
    let (rs, lport) = handshake(&mut rig, 40000);
    let moved = MacAddr([0x02, 0xaa, 0, 0, 0, 0x77]);
    for (ip, port) in [(rs, "dpdk1"), (CLIENT, "dpdk0")] {
        rig.state
            .neigh_add(ip.into(), &moved.to_string(), port)
            .unwrap();
    }
    rig.neigh = rig.state.neigh_table();
    let out = rig.send(0, &client_tcp(40000, ACK, 1001, 5001, b"data"));
    assert_eq!(only_ip4(&out, "data after the change").eth_dst, moved);
    let out = rig.send(1, &rs_tcp(rs, lport, ACK, 5001, 1005, b""));
    assert_eq!(only_ip4(&out, "reply after the change").eth_dst, moved);
}

/// A burst is processed exactly as its packets one by one would be: same frames out, same
/// counters, whatever mix of new, established, other and broken packets it holds, and
/// whatever its length (longer than the prefetch window included).
#[test]
fn bursts_match_packet_by_packet_processing() {
    let mut one = Rig::lab();
    let mut burst = Rig::lab();
    let flows: Vec<u16> = (41000..41020).collect();
    let (mut rs, mut lports) = (Vec::new(), Vec::new());
    for &c in &flows {
        let (r, l) = handshake(&mut one, c);
        assert_eq!(handshake(&mut burst, c), (r, l));
        rs.push(r);
        lports.push(l);
    }
    let mut inbound = Vec::new();
    for (k, &c) in flows.iter().enumerate() {
        inbound.push(client_tcp(c, ACK | PSH, 1001, 5001, b"request"));
        inbound.push(client_tcp(c + 100, SYN, 7, 0, b""));
        if k % 5 == 0 {
            inbound.push(client_tcp(c, FIN | ACK, 1008, 5001, b""));
            inbound.push(vec![0x55; 70]);
            inbound.push(client_udp(c, b"dns"));
        }
    }
    let outbound: Vec<Vec<u8>> = (0..flows.len())
        .flat_map(|k| {
            [
                rs_tcp(rs[k], lports[k], ACK | PSH, 5001, 1008, b"response"),
                rs_udp(rs[k], lports[k], b"stray"),
            ]
        })
        .collect();
    for (port, frames) in [(0, &inbound), (1, &outbound)] {
        let expected: Vec<(u16, Vec<u8>)> = frames
            .iter()
            .flat_map(|f| one.send(port, f))
            .map(|(p, f)| (p, f.data().to_vec()))
            .collect();
        let got: Vec<(u16, Vec<u8>)> = burst
            .send_burst(port, frames)
            .into_iter()
            .map(|(p, f)| (p, f.data().to_vec()))
            .collect();
        assert!(frames.len() > worker::BURST);
        assert_eq!(got, expected);
    }
    for r in DropReason::ALL {
        assert_eq!(burst.drops(r), one.drops(r), "{r:?}");
    }
    assert_eq!(burst.worker.conns().len(), one.worker.conns().len());
}

// ---------------------------------------------------------------------------------------------
// 1. TCP FullNAT round trip
// ---------------------------------------------------------------------------------------------

#[test]
fn tcp_fullnat_round_trip() {
    let mut rig = Rig::lab();

    // Client SYN → real server, from the local address.
    let out = rig.send(0, &client_tcp(40000, SYN, 1000, 0, b""));
    let p = only_ip4(&out, "client SYN");
    assert_eq!(p.port, 1, "SYN must leave on dpdk1");
    let rs = p.dst;
    assert!(
        rs == RS1 || rs == RS2,
        "SYN sent to {rs}, not a real server"
    );
    assert_eq!(p.eth_dst, mac_of(rs).unwrap(), "destination MAC = the RS's");
    assert_eq!(p.eth_src, MAC1, "source MAC = dpdk1's");
    assert_eq!(p.src, LADDR, "source address = the local address");
    assert_eq!(p.dport, RPORT_TCP, "destination port = the RS's port");
    let lport = p.sport;
    assert!(lport >= 1024, "local port {lport} below the pool's range");
    assert_eq!(
        lport % WORKERS,
        ME,
        "local port {lport} not owned by worker {ME}"
    );
    assert_eq!(p.ttl, 63, "TTL decremented once");
    let t = p.tcp.as_ref().unwrap();
    assert!(t.syn && !t.ack && !t.rst, "flags kept: {t:?}");
    assert_eq!(t.sequence_number, 1000, "sequence number untouched");

    // Real server's SYN+ACK → client, from the VIP.
    let synack = rs_tcp(rs, lport, SYN | ACK, 5000, 1001, b"");
    assert_eq!(
        owner_of(&rig.snap, WORKERS, &synack),
        Some(ME),
        "the reply is steered to the worker that owns the local port"
    );
    let out = rig.send(1, &synack);
    let p = only_ip4(&out, "RS SYN+ACK");
    assert_eq!(p.port, 0, "SYN+ACK must leave on dpdk0");
    assert_eq!(p.eth_dst, CLIENT_MAC, "destination MAC = the client's");
    assert_eq!(p.eth_src, MAC0, "source MAC = dpdk0's");
    assert_eq!((p.src, p.sport), (VIP, VPORT_TCP), "source = VIP:80");
    assert_eq!(
        (p.dst, p.dport),
        (CLIENT, 40000),
        "destination = the client"
    );
    assert_eq!(p.ttl, 63);
    let t = p.tcp.as_ref().unwrap();
    assert!(t.syn && t.ack, "flags kept: {t:?}");
    assert_eq!((t.sequence_number, t.acknowledgment_number), (5000, 1001));

    // Client's ACK and data: same real server, same local port, payload intact.
    let out = rig.send(0, &client_tcp(40000, ACK, 1001, 5001, b""));
    let p = only_ip4(&out, "client ACK");
    assert_eq!(
        (p.port, p.src, p.sport, p.dst, p.dport),
        (1, LADDR, lport, rs, RPORT_TCP)
    );
    let body = b"GET / HTTP/1.0\r\n\r\n";
    let out = rig.send(0, &client_tcp(40000, ACK | PSH, 1001, 5001, body));
    let p = only_ip4(&out, "client data");
    assert_eq!(
        (p.port, p.src, p.sport, p.dst, p.dport),
        (1, LADDR, lport, rs, RPORT_TCP)
    );
    assert_eq!(p.payload, body, "payload intact");
    assert_eq!(p.eth_dst, mac_of(rs).unwrap());

    // Data back from the real server.
    let out = rig.send(
        1,
        &rs_tcp(rs, lport, ACK | PSH, 5001, 1019, b"HTTP/1.0 200 OK\r\n"),
    );
    let p = only_ip4(&out, "RS data");
    assert_eq!(
        (p.src, p.sport, p.dst, p.dport),
        (VIP, VPORT_TCP, CLIENT, 40000)
    );
    assert_eq!(p.payload, b"HTTP/1.0 200 OK\r\n");

    // One connection, established, counted.
    let conns: Vec<_> = rig.worker.conns().iter().copied().collect();
    assert_eq!(conns.len(), 1, "one connection in the table");
    assert_eq!(
        conns[0].state,
        TcpState::Established as u8,
        "state ESTABLISHED"
    );
    assert_eq!(conns[0].lport, lport);
    assert_eq!(rig.counters().conns_created.get(), 1);
    assert_eq!(rig.counters().conns_active.get(), 1);
    let svc = rig.stats.slot_totals(svc_slot(&rig.state, &tcp_svc()));
    assert_eq!(
        (
            svc.conns,
            svc.in_pkts,
            svc.out_pkts,
            svc.active,
            svc.inactive
        ),
        (1, 3, 2, 1, 0),
        "service counters {svc:?}"
    );
    let rs_t = rig
        .stats
        .slot_totals(rs_slot(&rig.state, &tcp_svc(), sa(rs, RPORT_TCP)));
    assert_eq!((rs_t.conns, rs_t.in_pkts, rs_t.out_pkts), (1, 3, 2));
    assert_eq!(rig.total_drops(), 0, "nothing dropped");
}

#[test]
fn tcp_close_sequence_moves_states_and_gauges() {
    let mut rig = Rig::lab();
    let (rs, lport) = handshake(&mut rig, 40100);
    let slot = svc_slot(&rig.state, &tcp_svc());
    assert_eq!(rig.stats.slot_totals(slot).active, 1);
    rig.send(0, &client_tcp(40100, FIN | ACK, 1001, 5001, b""));
    let state = rig.worker.conns().iter().next().unwrap().state;
    assert_eq!(state, TcpState::CloseWait as u8, "client FIN → CLOSE_WAIT");
    let t = rig.stats.slot_totals(slot);
    assert_eq!((t.active, t.inactive), (0, 1), "no longer active: {t:?}");
    rig.send(1, &rs_tcp(rs, lport, FIN | ACK, 5001, 1002, b""));
    rig.send(0, &client_tcp(40100, ACK, 1002, 5002, b""));
    let state = rig.worker.conns().iter().next().unwrap().state;
    assert_eq!(state, TcpState::Close as u8, "last ACK → CLOSE");
}

// ---------------------------------------------------------------------------------------------
// 2. Scheduling
// ---------------------------------------------------------------------------------------------

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
    assert_eq!(state, TcpState::Close as u8);
    let slot = svc_slot(&rig.state, &tcp_svc());
    let conns_before = rig.stats.slot_totals(slot).conns;

    let (rs2, lport2) = open(&mut rig, 40200);
    assert_ne!(rs2, rs, "scheduled afresh: rr picks the other real server");
    assert_eq!(rig.worker.conns().len(), 1, "the old entry went");
    let c = rig.worker.conns().iter().next().unwrap();
    assert_eq!((c.state, c.lport), (TcpState::SynRecv as u8, lport2));
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
    let flush = rig.state.rs_del(&tcp_svc(), rs1).unwrap();
    rig.republish();
    let (reply, rx) = bounded(1);
    let Flush::Rs(rs_slot) = flush else {
        panic!("rs_del flushes a real server: {flush:?}")
    };
    rig.commands
        .send(Command::FlushRs { rs_slot, reply })
        .unwrap();
    rig.housekeeping();
    assert_eq!(rx.try_recv(), Ok(2), "both connections to RS1 cut");
    rig.state.release(flush);
    rig.state.rs_add(&tcp_svc(), rs1, 1, None).unwrap();
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
        .rs_edit(&tcp_svc(), sa(RS1, RPORT_TCP), 0, None)
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
        .rs_edit(&tcp_svc(), sa(RS2, RPORT_TCP), 0, None)
        .unwrap();
    rig.republish();
    assert!(rig.send(0, &client_tcp(31000, SYN, 1, 0, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::NoRealServer), 1);
}

// ---------------------------------------------------------------------------------------------
// 3. UDP
// ---------------------------------------------------------------------------------------------

fn udp_rig(conns: usize) -> Rig<VecFrame> {
    let t = Timeouts {
        udp: 5,
        ..Timeouts::default()
    };
    Rig::new(lab_state(t, &[RS1, RS2]), limits(conns))
}

#[test]
fn udp_round_trip_expiry_and_new_flow() {
    let mut rig = udp_rig(64);
    let out = rig.send(0, &client_udp(5000, b"query"));
    let p = only_ip4(&out, "UDP request");
    assert_eq!(p.port, 1);
    let rs = p.dst;
    assert!(rs == RS1 || rs == RS2);
    assert_eq!((p.src, p.dport), (LADDR, RPORT_UDP));
    assert_eq!(p.eth_dst, mac_of(rs).unwrap());
    assert_eq!(p.ttl, 63);
    assert!(p.udp.as_ref().unwrap().checksum != 0, "checksum kept");
    assert_eq!(p.payload, b"query");
    let lport = p.sport;
    assert_eq!(lport % WORKERS, ME);

    let out = rig.send(1, &rs_udp(rs, lport, b"answer"));
    let p = only_ip4(&out, "UDP reply");
    assert_eq!(p.port, 0);
    assert_eq!(
        (p.src, p.sport, p.dst, p.dport),
        (VIP, VPORT_UDP, CLIENT, 5000)
    );
    assert_eq!(p.eth_dst, CLIENT_MAC);
    assert_eq!(p.payload, b"answer");

    // The reply refreshed the 5 s timeout.
    rig.advance(4_999);
    rig.housekeeping();
    assert_eq!(rig.worker.conns().len(), 1, "alive before the UDP timeout");
    rig.advance(1);
    rig.housekeeping();
    assert_eq!(rig.worker.conns().len(), 0, "expired after the UDP timeout");
    assert_eq!(
        rig.counters().conns_active.get(),
        0,
        "conns_active back to 0"
    );
    let t = rig.stats.slot_totals(svc_slot(&rig.state, &udp_svc()));
    assert_eq!(
        (t.active, t.inactive),
        (0, 0),
        "slot gauges back to 0: {t:?}"
    );

    // A late reply finds nothing.
    assert!(rig.send(1, &rs_udp(rs, lport, b"late")).is_empty());
    assert_eq!(rig.drops(DropReason::NoConnection), 1);

    // The same client flow again: a new connection.
    let out = rig.send(0, &client_udp(5000, b"again"));
    let p = only_ip4(&out, "UDP after expiry");
    assert_eq!((p.src, p.dport), (LADDR, RPORT_UDP));
    assert_eq!(rig.counters().conns_created.get(), 2, "a new connection");
    assert_eq!(rig.counters().conns_active.get(), 1);
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let mut rig = udp_rig(64);
    let mut f = client_udp(5001, b"nocsum");
    let l4 = 14 + 20;
    f[l4 + 6] = 0;
    f[l4 + 7] = 0;
    let out = rig.send(0, &f);
    let p = only_ip4(&out, "UDP without checksum");
    assert_eq!(
        p.udp.unwrap().checksum,
        0,
        "0 means no checksum and must stay 0"
    );
}

#[test]
fn udp_local_ports_return_to_the_pool() {
    // Worker 1 of 2 owns the odd ports of 1024..=65535.
    let owned = (1024..=65535u32).filter(|p| p % 2 == 1).count();
    let mut rig = udp_rig(owned + 16);
    // One template, the client port patched in place (UDP checksum 0: none).
    let mut f = client_udp(0, b"q");
    f[40..42].fill(0);
    let mut flow = |rig: &mut Rig<VecFrame>, cport: u16| {
        f[34..36].copy_from_slice(&cport.to_be_bytes());
        rig.send(0, &f).len()
    };
    for i in 0..owned {
        assert_eq!(flow(&mut rig, 1024 + i as u16), 1, "flow {i} forwarded");
    }
    assert_eq!(rig.counters().conns_active.get(), owned as u64);
    assert_eq!(flow(&mut rig, 60000), 0, "no local port left");
    assert_eq!(rig.drops(DropReason::LaddrExhausted), 1);

    rig.advance(5_000);
    rig.housekeeping();
    assert_eq!(rig.worker.conns().len(), 0);
    assert_eq!(rig.counters().conns_active.get(), 0, "gauge back to 0");
    // Every port came back: the pool serves its whole range again.
    for i in 0..owned {
        assert_eq!(
            flow(&mut rig, 1024 + i as u16),
            1,
            "flow {i} after expiry forwarded"
        );
    }
    assert_eq!(
        rig.drops(DropReason::LaddrExhausted),
        1,
        "no new exhaustion"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. TCP expiry
// ---------------------------------------------------------------------------------------------

#[test]
fn tcp_connections_expire_by_state_timeout() {
    let t = Timeouts {
        established: 10,
        syn_recv: 3,
        ..Timeouts::default()
    };
    let mut rig = Rig::new(lab_state(t, &[RS1, RS2]), limits(64));
    handshake(&mut rig, 40200);
    rig.advance(9_999);
    rig.housekeeping();
    assert_eq!(
        rig.worker.conns().len(),
        1,
        "alive before the established timeout"
    );
    rig.advance(1);
    rig.housekeeping();
    assert!(
        rig.worker.conns().is_empty(),
        "gone at the established timeout"
    );
    assert_eq!(rig.counters().conns_active.get(), 0);
    let s = rig.stats.slot_totals(svc_slot(&rig.state, &tcp_svc()));
    assert_eq!((s.active, s.inactive), (0, 0), "gauges {s:?}");

    // A half-open connection uses the shorter SYN_RECV timeout.
    open(&mut rig, 40201);
    rig.advance(2_999);
    rig.housekeeping();
    assert_eq!(rig.worker.conns().len(), 1);
    rig.advance(1);
    rig.housekeeping();
    assert!(
        rig.worker.conns().is_empty(),
        "half-open gone after syn_recv"
    );

    // The client's next segment is answered with a RST.
    let out = rig.send(0, &client_tcp(40200, ACK, 1001, 5001, b"late"));
    let p = only_ip4(&out, "segment after expiry");
    assert!(p.tcp.unwrap().rst, "expired connection answered with RST");
}

/// Connection deadlines are wrapping 32-bit milliseconds, ordered for 24.8 days: the config
/// refuses longer timeouts, and the longest it accepts does not expire early.
#[test]
fn longest_accepted_timeout_does_not_expire_at_once() {
    let toml = |t: u32| {
        format!(
            "[[port]]\nname = \"dpdk0\"\ndevice = \"net_null0\"\n\n[timeouts]\ntcp_established = {t}\n"
        )
    };
    let err = dpvs_daemon::config::Config::from_toml_str(&toml(31_536_000)).unwrap_err();
    assert!(
        err.to_string().contains("timeouts.tcp_established"),
        "{err}"
    );
    let max = dpvs_core::engine::worker::MAX_TIMEOUT_S;
    let cfg =
        dpvs_daemon::config::Config::from_toml_str(&toml(max)).expect("the maximum is accepted");
    let mut rig = Rig::new(lab_state(cfg.timeouts, &[RS1, RS2]), limits(64));
    handshake(&mut rig, 40300);
    rig.advance(1_000);
    rig.housekeeping();
    assert_eq!(
        rig.worker.conns().len(),
        1,
        "an established connection with the longest timeout vanished after 1 s"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. RST for segments without a connection
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// 6. Worker commands
// ---------------------------------------------------------------------------------------------

#[test]
fn flush_rs_and_service_commands() {
    let mut rig = Rig::lab();
    let mut opened = Vec::new();
    for cport in 42000..42004u16 {
        opened.push((cport, open(&mut rig, cport).0));
    }
    assert_eq!(opened.iter().filter(|o| o.1 == RS1).count(), 2);
    let rs1_slot = rs_slot(&rig.state, &tcp_svc(), sa(RS1, RPORT_TCP));

    // ListConns.
    let (reply, rx) = bounded(1);
    rig.commands
        .send(Command::ListConns {
            svc_slot: None,
            limit: 10,
            reply,
        })
        .unwrap();
    rig.housekeeping();
    let list: Vec<ConnView> = rx.try_recv().expect("ListConns answered by housekeeping");
    assert_eq!(list.len(), 4);
    for c in &list {
        assert_eq!(*c.vip.ip(), VIP);
        assert_eq!(c.laddr.map(|l| *l.ip()), Some(LADDR));
        assert_eq!(*c.client.ip(), CLIENT);
        assert_eq!(c.state, "SYN_RECV");
        assert!(c.expires_in_ms > 0);
    }

    // FlushRs: the TCP entries to RS1 stay, marked dead, their counter slots let go at once.
    let (reply, rx) = bounded(1);
    rig.commands
        .send(Command::FlushRs {
            rs_slot: rs1_slot,
            reply,
        })
        .unwrap();
    rig.housekeeping();
    assert_eq!(rx.try_recv(), Ok(2), "two connections to RS1 cut");
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

    // FlushService: the remaining (RS2) entries die too; a dead entry expires after the close
    // timeout if nobody speaks.
    let (reply, rx) = bounded(1);
    rig.commands
        .send(Command::FlushService {
            svc_slot: svc_slot(&rig.state, &tcp_svc()),
            reply,
        })
        .unwrap();
    rig.housekeeping();
    assert_eq!(rx.try_recv(), Ok(2));
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
fn flush_rs_removes_udp_entries_at_once() {
    let mut rig = udp_rig(64);
    let mut rs_of = Vec::new();
    for cport in 42100..42104u16 {
        let out = rig.send(0, &client_udp(cport, b"q"));
        rs_of.push(only_ip4(&out, "UDP").dst);
    }
    let (reply, rx) = bounded(1);
    rig.commands
        .send(Command::FlushRs {
            rs_slot: rs_slot(&rig.state, &udp_svc(), sa(RS1, RPORT_UDP)),
            reply,
        })
        .unwrap();
    rig.housekeeping();
    assert_eq!(rx.try_recv(), Ok(2));
    assert_eq!(rig.worker.conns().len(), 2, "UDP entries to RS1 removed");
    assert!(rig.worker.conns().iter().all(|c| c.rip == RS2.to_bits()));
    assert_eq!(rig.counters().conns_active.get(), 2);
}

// ---------------------------------------------------------------------------------------------
// 7. ARP
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// 8. Unresolved next hop
// ---------------------------------------------------------------------------------------------

/// The lab with no neighbour entry for the real servers.
fn unresolved_rig() -> Rig<VecFrame> {
    Rig::new(lab_state(Timeouts::default(), &[]), limits(64))
}

/// Checks an ARP request the worker sent for `target` on dpdk1; returns the sender address.
fn assert_arp_request(rig: &Rig<VecFrame>, out: &(u16, VecFrame), target: Ipv4Addr) {
    assert_eq!(out.0, 1, "ARP request leaves on the real servers' port");
    let (dst, src, a) = arp_out(out.1.data());
    assert_eq!(dst, MacAddr::BROADCAST, "ARP request is broadcast");
    assert_eq!(src, MAC1);
    assert_eq!(a.op, ARP_REQUEST);
    assert_eq!((a.sha, a.tha, a.tpa), (MAC1, MacAddr::ZERO, target));
    let local = rig.snap.local(a.spa);
    assert_eq!(
        local.map(|l| l.port),
        Some(1),
        "sender {} must be one of our addresses on dpdk1",
        a.spa
    );
    assert_eq!(
        a.spa, ADDR1,
        "sender is the connected address, not the laddr"
    );
}

#[test]
fn unresolved_rs_parks_the_syn_until_arp_resolves() {
    let mut rig = unresolved_rig();
    let out = rig.send(0, &client_tcp(43000, SYN, 1000, 0, b""));
    assert_eq!(out.len(), 1, "only an ARP request goes out");
    let (_, _, a) = arp_out(out[0].1.data());
    let target = a.tpa;
    assert!(target == RS1 || target == RS2, "ARP for {target}");
    assert_arp_request(&rig, &out[0], target);
    // A retransmitted SYN joins the queue without a second request.
    assert!(
        rig.send(0, &client_tcp(43000, SYN, 1000, 0, b""))
            .is_empty()
    );

    // Resolution published: housekeeping releases both SYNs to the real server.
    rig.state
        .neigh_add(target.into(), &mac_of(target).unwrap().to_string(), "dpdk1")
        .unwrap();
    rig.neigh = rig.state.neigh_table();
    let out = rig.housekeeping();
    assert_eq!(out.len(), 2, "both parked SYNs released");
    for (port, f) in &out {
        let p = ip4(*port, f.data());
        assert_eq!(p.port, 1);
        assert_eq!((p.eth_dst, p.eth_src), (mac_of(target).unwrap(), MAC1));
        assert_eq!((p.src, p.dst, p.dport), (LADDR, target, RPORT_TCP));
        assert!(is_syn(&p));
    }
    assert!(rig.housekeeping().is_empty(), "released once only");
    assert_eq!(rig.total_drops(), 0);
}

#[test]
fn unresolved_rs_arp_retries_then_drop() {
    let mut rig = unresolved_rig();
    let out = rig.send(0, &client_tcp(43100, SYN, 1000, 0, b""));
    let target = arp_out(out[0].1.data()).2.tpa;
    rig.advance(999);
    assert!(rig.housekeeping().is_empty(), "no retry before 1 s");
    rig.advance(1);
    let out = rig.housekeeping();
    assert_eq!(out.len(), 1, "second try after 1 s");
    assert_arp_request(&rig, &out[0], target);
    rig.advance(1_000);
    let out = rig.housekeeping();
    assert_eq!(out.len(), 1, "third try after 2 s");
    assert_arp_request(&rig, &out[0], target);
    rig.advance(1_000);
    assert!(rig.housekeeping().is_empty(), "no fourth try");
    assert_eq!(
        rig.drops(DropReason::NeighUnresolved),
        1,
        "parked SYN dropped"
    );
}

/// The engine clock is a wrapping u32 (`Ctx::now_ms`, the daemon truncates ms since start),
/// but the pending queue compares it as a u64 with a saturating subtraction.
#[test]
fn arp_retry_survives_the_engine_clock_wrapping() {
    let mut rig = unresolved_rig();
    // Connections keep 32-bit deadlines: cross that boundary of the engine clock.
    rig.now = u64::from(u32::MAX) - 500;
    rig.housekeeping();
    let out = rig.send(0, &client_tcp(43200, SYN, 1000, 0, b""));
    let target = arp_out(out[0].1.data()).2.tpa;
    rig.advance(1_000); // wraps to 499
    let out = rig.housekeeping();
    assert_eq!(
        out.len(),
        1,
        "the retry 1 s later must be sent across the wrap"
    );
    assert_arp_request(&rig, &out[0], target);
    // The loop polls continuously; step through the last try and the expiry a second apart.
    for _ in 0..3 {
        rig.advance(1_000);
        rig.housekeeping();
    }
    assert_eq!(
        rig.drops(DropReason::NeighUnresolved),
        1,
        "the parked SYN must be dropped after the retries, not held forever"
    );
}

#[test]
fn arp_retries_are_sent_for_every_unresolved_hop() {
    let mut state = lab_state(Timeouts::default(), &[]);
    for last in 21..=28u8 {
        state
            .rs_add(
                &tcp_svc(),
                sa(Ipv4Addr::new(192, 168, 10, last), RPORT_TCP),
                1,
                None,
            )
            .unwrap();
    }
    let mut rig: Rig<VecFrame> = Rig::new(state, limits(64));
    let mut targets = Vec::new();
    for cport in 44000..44010u16 {
        let out = rig.send(0, &client_tcp(cport, SYN, 1, 0, b""));
        assert_eq!(out.len(), 1, "one ARP request per new hop");
        targets.push(arp_out(out[0].1.data()).2.tpa);
    }
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 10, "ten distinct next hops");
    rig.advance(1_000);
    let out = rig.housekeeping();
    assert_eq!(out.len(), 10, "every hop due for a retry gets one");
}

// ---------------------------------------------------------------------------------------------
// 9. ICMP
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// 10. Bad input: counted, never a panic, nothing leaked
// ---------------------------------------------------------------------------------------------

/// Valid frames of every kind the worker handles, to mutate.
fn templates() -> Vec<(u16, Vec<u8>)> {
    let mut vlan_syn = client_tcp(45000, SYN, 1, 0, b"");
    vlan_syn.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    vec![
        (0, client_tcp(45001, SYN, 1, 0, b"")),
        (0, client_tcp(45001, ACK | PSH, 2, 1, b"data")),
        (0, client_tcp(45002, FIN | ACK, 2, 1, b"")),
        (1, rs_tcp(RS1, 1025, SYN | ACK, 1, 2, b"")),
        (1, rs_tcp(RS2, 1027, ACK, 1, 2, b"reply")),
        (0, client_udp(45003, b"query")),
        (1, rs_udp(RS1, 1025, b"answer")),
        (
            0,
            arp_frame(MacAddr::BROADCAST, ARP_REQUEST, CLIENT_MAC, CLIENT, VIP),
        ),
        (1, arp_frame(MAC1, ARP_REPLY, RS2_MAC, RS2, ADDR1)),
        (0, icmp_echo(CLIENT, ADDR0, 1, 1, b"ping")),
        (
            0,
            icmp_echo(CLIENT, Ipv4Addr::new(8, 8, 8, 8), 1, 1, b"ping"),
        ),
        (0, vlan_syn),
    ]
}

#[derive(Clone, Debug)]
enum Step {
    /// Random bytes on a port (2 is a port the snapshot does not know).
    Random(u16, Vec<u8>),
    /// A template with bytes xor-ed at positions, optionally truncated.
    Mutated {
        template: usize,
        flips: Vec<(usize, u8)>,
        truncate: Option<usize>,
    },
    /// A template as is, so connections get created.
    Valid(usize, u16),
    Housekeeping(u32),
    ResolveRs2,
    FlushRs1,
}

fn step() -> impl Strategy<Value = Step> {
    let n = templates().len();
    prop_oneof![
        2 => (0u16..3, prop::collection::vec(any::<u8>(), 0..160))
            .prop_map(|(p, b)| Step::Random(p, b)),
        6 => (0..n, prop::collection::vec((0usize..128, 1u8..=255), 1..6),
              prop::option::of(0usize..128))
            .prop_map(|(template, flips, truncate)| Step::Mutated { template, flips, truncate }),
        3 => (0..n, 0u16..64).prop_map(|(t, p)| Step::Valid(t, p)),
        2 => (0u32..4000).prop_map(Step::Housekeeping),
        1 => Just(Step::ResolveRs2),
        1 => Just(Step::FlushRs1),
    ]
}

/// Frames the worker consumes without forwarding or counting: ARP that is not a request,
/// for one of our addresses, on a known port (learnt, then dropped).
fn consumed_silently(snap: &Snapshot, port: u16, bytes: &[u8]) -> bool {
    matches!(
        parse(bytes),
        Ok(Packet { l3: L3::Arp(a), .. })
            if a.op != ARP_REQUEST && snap.local(a.tpa).is_some() && snap.port(port).is_some()
    )
}

fn check_emitted(out: &[(u16, Counted)]) -> Result<(), TestCaseError> {
    for (port, f) in out {
        prop_assert!(*port <= 1, "frame sent on unknown port {}", port);
        prop_assert!(
            parse(f.data()).is_ok(),
            "the worker emitted an unparsable frame: {:02x?}",
            f.data()
        );
    }
    Ok(())
}

/// The received frame (port, bytes) a step stands for; `None` for steps that are not frames.
fn step_frame(templates: &[(u16, Vec<u8>)], s: Step) -> Option<(u16, Vec<u8>)> {
    Some(match s {
        Step::Random(p, b) => (p, b),
        Step::Mutated {
            template,
            flips,
            truncate,
        } => {
            let (p, mut b) = templates[template].clone();
            for (at, x) in flips {
                let len = b.len();
                b[at % len] ^= x;
            }
            if let Some(t) = truncate {
                b.truncate(t);
            }
            (p, b)
        }
        Step::Valid(t, cport) => {
            let (p, mut b) = templates[t].clone();
            // Vary the client port of client TCP templates (offset 34 = sport), then
            // fix the TCP checksum so the frame stays valid.
            if p == 0 && b.len() >= 54 && b[12..14] == [8, 0] && b[23] == 6 {
                b[34..36].copy_from_slice(&(45100 + cport).to_be_bytes());
                b[50..52].fill(0);
                let end = b.len();
                checksum::fill_ipv4_l4_checksum(CLIENT, VIP, 6, &mut b[34..end]);
            }
            (p, b)
        }
        Step::Housekeeping(_) | Step::ResolveRs2 | Step::FlushRs1 => return None,
    })
}

/// Feeds the frame steps to one rig packet by packet and to another in bursts (cut where
/// `cuts` says and wherever the port changes); both must send the same frames, count the same
/// drops, hold the same connections, and leak nothing.
fn run_bursts(steps: Vec<Step>, cuts: Vec<bool>) -> Result<(), TestCaseError> {
    let templates = templates();
    let frames: Vec<(u16, Vec<u8>)> = steps
        .into_iter()
        .filter_map(|s| step_frame(&templates, s))
        .collect();
    let rig =
        || -> Rig<Counted> { Rig::new(lab_state(Timeouts::default(), &[RS1, RS2]), limits(64)) };
    let (mut one, mut burst) = (rig(), rig());
    let data = |out: Vec<(u16, Counted)>| -> Vec<(u16, Vec<u8>)> {
        out.into_iter()
            .map(|(p, f)| (p, f.data().to_vec()))
            .collect()
    };
    let (mut expected, mut got) = (Vec::new(), Vec::new());
    let mut pending: Vec<Vec<u8>> = Vec::new();
    for (k, (port, bytes)) in frames.iter().enumerate() {
        expected.extend(data(one.send(*port, bytes)));
        pending.push(bytes.clone());
        let last = k + 1 == frames.len();
        let cut = cuts.get(k).copied().unwrap_or(true);
        if last || cut || frames[k + 1].0 != *port {
            got.extend(data(burst.send_burst(*port, &pending)));
            pending.clear();
        }
    }
    prop_assert_eq!(got, expected);
    for r in DropReason::ALL {
        prop_assert_eq!(burst.drops(r), one.drops(r), "{:?}", r);
    }
    prop_assert_eq!(burst.worker.conns().len(), one.worker.conns().len());
    let live = [Arc::clone(&one.live), Arc::clone(&burst.live)];
    drop((one, burst));
    prop_assert_eq!(
        live.map(|l| l.load(Ordering::Relaxed)),
        [0, 0],
        "frames leaked"
    );
    Ok(())
}

fn run_steps(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let live = {
        let state = lab_state(Timeouts::default(), &[RS1]);
        let mut rig: Rig<Counted> = Rig::new(
            state,
            WorkerLimits {
                conns: 8,
                pending_per_hop: 2,
                pending_hops: 2,
            },
        );
        let live = Arc::clone(&rig.live);
        let templates = templates();
        let rs1_slot = rs_slot(&rig.state, &tcp_svc(), sa(RS1, RPORT_TCP));
        let mut kept: Vec<(u16, Counted)> = Vec::new();
        for s in steps {
            let (port, bytes) = match s {
                Step::Random(..) | Step::Mutated { .. } | Step::Valid(..) => {
                    step_frame(&templates, s).expect("a frame step")
                }
                Step::Housekeeping(ms) => {
                    rig.advance(u64::from(ms));
                    let out = rig.housekeeping();
                    check_emitted(&out)?;
                    kept.extend(out);
                    continue;
                }
                Step::ResolveRs2 => {
                    rig.neigh = lab_state(Timeouts::default(), &[RS1, RS2]).neigh_table();
                    continue;
                }
                Step::FlushRs1 => {
                    let (reply, rx) = bounded(1);
                    rig.commands
                        .send(Command::FlushRs {
                            rs_slot: rs1_slot,
                            reply,
                        })
                        .unwrap();
                    let out = rig.housekeeping();
                    kept.extend(out);
                    prop_assert!(rx.try_recv().is_ok(), "FlushRs answered");
                    continue;
                }
            };
            let parked_before = live.load(Ordering::Relaxed) - kept.len();
            let drops_before = rig.total_drops();
            let consumed = consumed_silently(&rig.snap, port, &bytes);
            let out = rig.send(port, &bytes);
            check_emitted(&out)?;
            let emitted = out.len();
            kept.extend(out);
            let parked_after = live.load(Ordering::Relaxed) - kept.len();
            prop_assert!(
                parked_after >= parked_before,
                "process released parked frames"
            );
            let parked = parked_after - parked_before;
            let counted = rig.total_drops() - drops_before;
            prop_assert!(
                emitted + parked + counted as usize + usize::from(consumed) >= 1,
                "frame vanished: not emitted, parked nor counted: port {} {:02x?}",
                port,
                bytes
            );
            prop_assert!(emitted + parked <= 2, "one frame in, at most two out");
            prop_assert!(
                counted <= 2,
                "one frame counted at most twice (no connection + no route)"
            );
            // Keep memory bounded.
            if kept.len() > 64 {
                kept.clear();
            }
        }
        drop(kept);
        live
    };
    prop_assert_eq!(
        live.load(Ordering::Relaxed),
        0,
        "frames leaked after dropping the outputs and the worker"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn bad_input_is_counted_never_panics_never_leaks(
        steps in prop::collection::vec(step(), 1..48)
    ) {
        run_steps(steps)?;
    }

    #[test]
    fn bursts_of_any_traffic_match_packet_by_packet(
        steps in prop::collection::vec(step(), 1..80),
        cuts in prop::collection::vec(prop::bool::weighted(0.1), 80)
    ) {
        run_bursts(steps, cuts)?;
    }
}

#[test]
fn garbage_and_truncations_of_a_valid_frame_are_counted() {
    let mut rig = Rig::lab();
    let syn = client_tcp(46000, SYN, 1, 0, b"");
    for len in 0..syn.len() {
        let before = rig.total_drops();
        assert!(
            rig.send(0, &syn[..len]).is_empty(),
            "truncated to {len} forwarded"
        );
        assert_eq!(
            rig.total_drops(),
            before + 1,
            "truncated to {len} not counted"
        );
    }
    // Bad IP header checksum.
    let mut f = syn.clone();
    f[14 + 10] ^= 1;
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::BadIpChecksum), 1);
    // A fragment.
    let mut f = syn.clone();
    f[14 + 6] |= 0x20;
    checksum::fill_ipv4_header_checksum(&mut f[14..34]);
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::IpFragment), 1);
    // TTL 1: would expire on forwarding.
    let mut f = syn.clone();
    f[14 + 8] = 1;
    checksum::fill_ipv4_header_checksum(&mut f[14..34]);
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::TtlExceeded), 1);
    // Unknown ethertype.
    let mut f = syn.clone();
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::UnknownEthertype), 1);
    // An unknown L4 protocol to the VIP.
    let mut f = syn.clone();
    f[14 + 9] = 47;
    checksum::fill_ipv4_header_checksum(&mut f[14..34]);
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::UnknownL4Proto), 1);
}

#[test]
fn ip_options_are_carried_through_the_rewrite() {
    let mut rig = Rig::lab();
    let mut f = client_tcp(46100, SYN, 1, 0, b"");
    // Insert 4 bytes of options (NOP NOP NOP EOL) after the 20-byte IP header.
    f.splice(34..34, [1, 1, 1, 0]);
    f[14] = 0x46;
    let total = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    checksum::fill_ipv4_header_checksum(&mut f[14..38]);
    assert!(parse(&f).expect("valid frame").has_ip_options());
    let out = rig.send(0, &f);
    let p = only_ip4(&out, "SYN with IP options");
    assert_eq!(
        (p.src, p.dport),
        (LADDR, RPORT_TCP),
        "rewritten past the options"
    );
    assert_eq!(&out[0].1.data()[34..38], &[1, 1, 1, 0], "options kept");
}

// ---------------------------------------------------------------------------------------------
// 11. Connection table full
// ---------------------------------------------------------------------------------------------

#[test]
fn full_connection_table_refuses_new_and_keeps_established() {
    let mut rig = Rig::new(lab_state(Timeouts::default(), &[RS1, RS2]), limits(4));
    let mut conns = Vec::new();
    for cport in 47000..47004u16 {
        conns.push((cport, open(&mut rig, cport)));
    }
    let out = rig.send(0, &client_tcp(47004, SYN, 1, 0, b""));
    assert!(out.is_empty(), "the fifth connection must be refused");
    assert_eq!(rig.drops(DropReason::ConnTableFull), 1);
    assert_eq!(rig.counters().conns_created.get(), 4);
    assert_eq!(rig.counters().conns_active.get(), 4);
    for (cport, (rs, lport)) in conns {
        let out = rig.send(0, &client_tcp(cport, ACK, 1001, 5001, b"still here"));
        let p = only_ip4(&out, "segment of an established connection");
        assert_eq!((p.dst, p.sport), (rs, lport), "client port {cport}");
    }
}

// ---------------------------------------------------------------------------------------------
// 12. Steering
// ---------------------------------------------------------------------------------------------

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
