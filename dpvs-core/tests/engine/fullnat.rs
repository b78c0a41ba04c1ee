//! FullNAT end to end: the round trip of a TCP connection (addresses, ports, MACs, TTL,
//! checksums, states and gauges), bursts against packet-by-packet processing, neighbour changes,
//! IP options.

use dpvs_core::drop::DropReason;
use dpvs_core::engine::tcp_state::TcpState;
use dpvs_core::engine::worker::{self};
use dpvs_core::packet::tcp::{ACK, FIN, PSH, SYN};
use dpvs_core::packet::{Frame, MacAddr};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

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
    assert_eq!(conns[0].state, TcpState::Established, "state ESTABLISHED");
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
    assert_eq!(state, TcpState::CloseWait, "client FIN → CLOSE_WAIT");
    let t = rig.stats.slot_totals(slot);
    assert_eq!((t.active, t.inactive), (0, 1), "no longer active: {t:?}");
    rig.send(1, &rs_tcp(rs, lport, FIN | ACK, 5001, 1002, b""));
    rig.send(0, &client_tcp(40100, ACK, 1002, 5002, b""));
    let state = rig.worker.conns().iter().next().unwrap().state;
    assert_eq!(state, TcpState::Close, "last ACK → CLOSE");
}
