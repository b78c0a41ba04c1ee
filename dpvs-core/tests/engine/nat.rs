//! NAT mode: the real server sees the client's own address, its replies come back through us.

use std::net::{IpAddr, SocketAddrV4};

use dpvs_api::{Forward, Proto, RsSpec, Sched, ServiceKey, ServiceSpec};
use dpvs_core::drop::DropReason;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::packet::VecFrame;
use dpvs_core::packet::tcp::{ACK, PSH, SYN};

use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

/// The NAT service of the NAT tests (and of the ICMP tests' NAT cases): VIP:81 → RS1:8080.
pub(crate) fn nat_svc() -> ServiceKey {
    ServiceKey {
        proto: Proto::Tcp,
        vip: IpAddr::V4(VIP),
        port: 81,
    }
}

pub(crate) fn nat_rig() -> Rig<VecFrame> {
    let mut state = lab_state(Timeouts::default(), &[RS1, RS2]);
    state
        .service_add(&ServiceSpec::new(nat_svc(), Sched::Rr, Forward::Nat))
        .unwrap();
    state
        .rs_add(&nat_svc(), &RsSpec::new(sa(RS1, RPORT_TCP), 1))
        .unwrap();
    Rig::new(state, limits(4096))
}

/// NAT mode: the real server sees the client's own address and port; its reply, routed back
/// through us, leaves from the VIP; established segments take the same path both ways; no
/// local port is taken; and both directions are steered to the same worker.
#[test]
fn nat_round_trip_keeps_the_client_address() {
    let mut rig = nat_rig();
    let (client, vip, rs) = (
        SocketAddrV4::new(CLIENT, 40000),
        SocketAddrV4::new(VIP, 81),
        SocketAddrV4::new(RS1, RPORT_TCP),
    );
    let from_client = |flags, seq, ack, payload: &[u8]| {
        tcp_frame((CLIENT_MAC, MAC0), client, vip, flags, (seq, ack), payload)
    };
    let from_rs = |flags, seq, ack, payload: &[u8]| {
        tcp_frame((RS1_MAC, MAC1), rs, client, flags, (seq, ack), payload)
    };
    let pools_before = rig.worker.conns().len();
    let p = only_ip4(&rig.send(0, &from_client(SYN, 1000, 0, b"")), "SYN");
    assert_eq!((p.port, p.src, p.sport), (1, CLIENT, 40000), "source kept");
    assert_eq!((p.dst, p.dport, p.eth_dst), (RS1, RPORT_TCP, RS1_MAC));
    assert_eq!(p.ttl, 63);
    let synack = from_rs(SYN | ACK, 5000, 1001, b"");
    assert_eq!(
        owner_of(&rig.snap, 4, &synack),
        owner_of(&rig.snap, 4, &from_client(SYN, 1000, 0, b"")),
        "a NAT reply goes to the worker of its client endpoint"
    );
    let p = only_ip4(&rig.send(1, &synack), "SYN+ACK");
    assert_eq!((p.port, p.src, p.sport), (0, VIP, 81), "reply from the VIP");
    assert_eq!((p.dst, p.dport, p.eth_dst), (CLIENT, 40000, CLIENT_MAC));
    for round in 0..3u32 {
        let p = only_ip4(
            &rig.send(0, &from_client(ACK | PSH, 1001 + round, 5001, b"q")),
            "client data",
        );
        assert_eq!(
            (p.src, p.dst, p.payload.as_slice()),
            (CLIENT, RS1, &b"q"[..])
        );
        let p = only_ip4(
            &rig.send(1, &from_rs(ACK, 5001, 1002 + round, b"r")),
            "rs data",
        );
        assert_eq!((p.src, p.sport, p.dst), (VIP, 81, CLIENT));
    }
    let views = rig.list_conns();
    assert_eq!(views.len(), pools_before + 1);
    assert_eq!(
        views[0].laddr,
        Some(client),
        "the client is its own local address"
    );
    assert_eq!(views[0].state, "ESTABLISHED");
    assert_eq!(rig.total_drops(), 0);
}

/// The same client endpoint through a second NAT service to the same real server would share
/// the reply tuple: refused and counted, the first connection untouched.
#[test]
fn nat_reply_tuple_clash_is_counted() {
    let mut rig = nat_rig();
    let other = ServiceKey {
        port: 82,
        ..nat_svc()
    };
    rig.state
        .service_add(&ServiceSpec::new(other, Sched::Rr, Forward::Nat))
        .unwrap();
    rig.state
        .rs_add(&other, &RsSpec::new(sa(RS1, RPORT_TCP), 1))
        .unwrap();
    rig.republish();
    let client = SocketAddrV4::new(CLIENT, 40000);
    let syn = |port| {
        tcp_frame(
            (CLIENT_MAC, MAC0),
            client,
            SocketAddrV4::new(VIP, port),
            SYN,
            (1, 0),
            b"",
        )
    };
    assert_eq!(rig.send(0, &syn(81)).len(), 1);
    assert!(rig.send(0, &syn(82)).is_empty());
    assert_eq!(rig.drops(DropReason::TupleInUse), 1);
    assert_eq!(rig.worker.conns().len(), 1);
}
