//! The scheduler family through the worker: wlc/lc by connection counts, real servers' upper
//! and lower limits, sh/mh/conhash affinity (also across a restart), fo, and persistence
//! shared by two workers.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use dpvs_api::{Forward, Persistence, RsSpec, Sched, SchedFlags, ServiceSpec};
use dpvs_core::drop::DropReason;
use dpvs_core::engine::persist::TemplateKey;
use dpvs_core::engine::worker::{Ctx, Worker};
use dpvs_core::packet::VecFrame;
use dpvs_core::packet::tcp::{ACK, RST, SYN};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::MakeFrame;
use dpvs_testkit::rig::*;

/// The lab with the TCP service's scheduler set as `spec` says.
fn rig_with(spec: ServiceSpec) -> Rig<VecFrame> {
    let mut rig = Rig::lab();
    rig.state.service_edit(&spec).unwrap();
    rig.republish();
    rig
}

fn tcp(sched: Sched) -> ServiceSpec {
    ServiceSpec::new(tcp_svc(), sched, Forward::Fnat)
}

/// A SYN from `client:cport` to the TCP VIP.
fn syn_from(client: Ipv4Addr, cport: u16) -> Vec<u8> {
    tcp_frame(
        (CLIENT_MAC, MAC0),
        SocketAddrV4::new(client, cport),
        SocketAddrV4::new(VIP, VPORT_TCP),
        SYN,
        (1000, 0),
        b"",
    )
}

/// The real server a SYN from `client:cport` went to (`None`: refused).
fn pick(rig: &mut Rig<VecFrame>, client: Ipv4Addr, cport: u16) -> Option<Ipv4Addr> {
    let out = rig.send(0, &syn_from(client, cport));
    (!out.is_empty()).then(|| only_ip4(&out, "SYN").dst)
}

/// Lets the worker's load view re-read every server's counts.
fn settle(rig: &mut Rig<VecFrame>) {
    rig.advance(20);
    rig.housekeeping();
}

#[test]
fn wlc_and_lc_send_new_connections_away_from_established_ones() {
    for sched in [Sched::Wlc, Sched::Lc] {
        let mut rig = rig_with(tcp(sched));
        let (first, _) = handshake(&mut rig, 41_000);
        assert_eq!(first, RS1, "{sched}: a tie goes to the first listed");
        settle(&mut rig);
        // RS1 holds an established connection (256 inactive ones' worth): the next ones go
        // to RS2, immediately counted by this worker though no refresh happened.
        let picks: Vec<_> = (0..50)
            .map(|k| pick(&mut rig, CLIENT, 41_001 + k).unwrap())
            .collect();
        assert!(picks.iter().all(|&p| p == RS2), "{sched}: {picks:?}");
    }
}

#[test]
fn wlc_weighs_by_weight_and_lc_does_not() {
    for (sched, want_rs2) in [(Sched::Wlc, 24), (Sched::Lc, 15)] {
        let mut rig = rig_with(tcp(sched));
        let rs2 = sa(RS2, RPORT_TCP);
        rig.state.rs_edit(&tcp_svc(), &RsSpec::new(rs2, 4)).unwrap();
        rig.republish();
        let picks: Vec<_> = (0..30)
            .map(|k| pick(&mut rig, CLIENT, 41_100 + k).unwrap())
            .collect();
        let n = picks.iter().filter(|&&p| p == RS2).count();
        assert_eq!(
            n, want_rs2,
            "{sched}: weights 1 and 4 over 30 new connections"
        );
    }
}

#[test]
fn a_real_server_at_its_upper_limit_rests_until_below_its_lower_limit() {
    let mut rig = Rig::lab();
    let rs1 = sa(RS1, RPORT_TCP);
    let limited = RsSpec {
        upper: Some(2),
        lower: Some(1),
        ..RsSpec::new(rs1, 1)
    };
    rig.state.rs_edit(&tcp_svc(), &limited).unwrap();
    rig.republish();
    let picks: Vec<_> = (0..8)
        .map(|k| pick(&mut rig, CLIENT, 41_200 + k).unwrap())
        .collect();
    assert_eq!(picks.iter().filter(|&&p| p == RS1).count(), 2, "{picks:?}");
    // The client resets the connections; once they leave the table (the close timeout), RS1
    // is below its lower limit and takes connections again.
    for k in 0..8 {
        rig.send(0, &rst_from(CLIENT, 41_200 + k));
    }
    rig.advance(u64::from(rig.snap.timeouts.close) * 1000 + 1_000);
    rig.housekeeping();
    settle(&mut rig);
    assert_eq!(rig.worker.conns().len(), 0);
    let again: Vec<_> = (0..4)
        .map(|k| pick(&mut rig, CLIENT, 41_300 + k).unwrap())
        .collect();
    assert!(again.contains(&RS1), "{again:?}");
}

#[test]
fn source_hashing_keeps_a_client_and_refuses_or_falls_back_when_its_server_drains() {
    let mut rig = rig_with(tcp(Sched::Sh));
    let home = pick(&mut rig, CLIENT, 42_000).unwrap();
    for k in 1..20 {
        assert_eq!(
            pick(&mut rig, CLIENT, 42_000 + k),
            Some(home),
            "same client, any port"
        );
    }
    let clients: Vec<_> = (1..=40).map(|h| Ipv4Addr::new(10, 0, 1, h)).collect();
    let spread: Vec<_> = clients.iter().map(|&c| pick(&mut rig, c, 42_100)).collect();
    assert!(spread.contains(&Some(RS1)) && spread.contains(&Some(RS2)));

    // Draining the client's server: refused without sh-fallback ...
    let drained = if home == RS1 { RS2 } else { RS1 };
    rig.state
        .rs_edit(&tcp_svc(), &RsSpec::new(sa(home, RPORT_TCP), 0))
        .unwrap();
    rig.republish();
    let before = rig.drops(DropReason::NoRealServer);
    assert_eq!(pick(&mut rig, CLIENT, 42_200), None);
    assert_eq!(rig.drops(DropReason::NoRealServer), before + 1);
    // ... and passed on with it.
    let fallback = ServiceSpec {
        sched_flags: SchedFlags {
            fallback: true,
            port: false,
        },
        ..tcp(Sched::Sh)
    };
    rig.state.service_edit(&fallback).unwrap();
    rig.republish();
    assert_eq!(pick(&mut rig, CLIENT, 42_201), Some(drained));
}

#[test]
fn hashing_schedulers_map_a_client_the_same_way_after_a_restart() {
    for (sched, port) in [
        (Sched::Sh, true),
        (Sched::Mh, false),
        (Sched::Mh, true),
        (Sched::Conhash, false),
        (Sched::Conhash, true),
    ] {
        let spec = ServiceSpec {
            sched_flags: SchedFlags {
                fallback: false,
                port,
            },
            mh_table_size: (sched == Sched::Mh).then_some(251),
            ..tcp(sched)
        };
        let mut before = rig_with(spec.clone());
        let mut after = rig_with(spec);
        let mut seen = Vec::new();
        for k in 0..40u16 {
            let client = Ipv4Addr::new(10, 0, 2, (k % 7) as u8 + 1);
            let a = pick(&mut before, client, 43_000 + k);
            assert_eq!(
                a,
                pick(&mut after, client, 43_000 + k),
                "{sched} port={port}"
            );
            seen.push(a.unwrap());
        }
        assert!(
            seen.contains(&RS1) && seen.contains(&RS2),
            "{sched}: {seen:?}"
        );
    }
}

#[test]
fn failover_sends_everything_to_the_heaviest_available() {
    let mut rig = rig_with(tcp(Sched::Fo));
    rig.state
        .rs_edit(&tcp_svc(), &RsSpec::new(sa(RS2, RPORT_TCP), 5))
        .unwrap();
    rig.republish();
    assert!((0..10).all(|k| pick(&mut rig, CLIENT, 44_000 + k) == Some(RS2)));
    rig.state
        .rs_edit(&tcp_svc(), &RsSpec::new(sa(RS2, RPORT_TCP), 0))
        .unwrap();
    rig.republish();
    assert!((0..10).all(|k| pick(&mut rig, CLIENT, 44_100 + k) == Some(RS1)));
}

/// Worker 0 beside the rig's worker 1, on the same counters and snapshots.
fn second_worker(rig: &Rig<VecFrame>) -> Worker<VecFrame> {
    Worker::new(0, WORKERS, limits(64), 7, Arc::clone(&rig.stats))
}

fn pick_on(
    w: &mut Worker<VecFrame>,
    rig: &mut Rig<VecFrame>,
    client: Ipv4Addr,
    cport: u16,
) -> Ipv4Addr {
    let ctx = Ctx {
        snap: &rig.snap,
        neigh: &rig.neigh,
        now_ms: rig.now,
    };
    let f = VecFrame::make(&rig.live, &syn_from(client, cport));
    w.process(&ctx, 0, f, &mut rig.out);
    let out = std::mem::take(&mut rig.out.sent);
    only_ip4(&out, "SYN on worker 0").dst
}

#[test]
fn a_persistent_client_keeps_its_server_across_workers_until_the_timeout() {
    let spec = ServiceSpec {
        persistence: Some(Persistence::new(30, 24).unwrap()),
        ..tcp(Sched::Rr)
    };
    let mut rig = rig_with(spec);
    let mut w0 = second_worker(&rig);
    let home = pick(&mut rig, CLIENT, 45_000).unwrap();
    // rr alone would alternate; the template holds the client (and its /24) on one server,
    // on either worker.
    for k in 1..10 {
        assert_eq!(pick(&mut rig, CLIENT, 45_000 + k), Some(home));
        assert_eq!(pick_on(&mut w0, &mut rig, CLIENT, 45_100 + k), home);
    }
    let neighbour = Ipv4Addr::new(10, 0, 0, 9);
    assert_eq!(pick(&mut rig, neighbour, 45_200), Some(home), "same /24");
    let elsewhere = Ipv4Addr::new(10, 0, 7, 9);
    let first_elsewhere = pick(&mut rig, elsewhere, 45_201).unwrap();
    assert_eq!(
        pick_on(&mut w0, &mut rig, elsewhere, 45_202),
        first_elsewhere
    );

    // The /24's connections on this worker end (RST, then the close timeout); 30 s after the
    // last one the template lets go, while the other /24's, whose connection lives, holds.
    let key = TemplateKey {
        svc_slot: svc_slot(&rig.state, &tcp_svc()) as u16,
        client: 0x0A00_0000,
    };
    let ends = (0..10)
        .map(|k| (CLIENT, 45_000 + k))
        .chain([(neighbour, 45_200)]);
    for (client, cport) in ends {
        rig.send(0, &rst_from(client, cport));
    }
    rig.advance(u64::from(rig.snap.timeouts.close) * 1000 + 1_000);
    rig.housekeeping();
    assert!(holds(&rig, key), "still within 30 s of the last connection");
    rig.advance(31_000);
    rig.housekeeping();
    assert!(!holds(&rig, key), "30 s after the last connection");
    let other = TemplateKey {
        client: 0x0A00_0700,
        ..key
    };
    assert!(holds(&rig, other), "renewed by its live connection");
    let later: Vec<_> = (0..4)
        .map(|k| pick(&mut rig, Ipv4Addr::new(10, 0, 0, 3), 45_300 + k).unwrap())
        .collect();
    assert!(
        later.iter().all(|&p| p == later[0]),
        "a new template: {later:?}"
    );
    assert!(holds(&rig, key));
}

fn holds(rig: &Rig<VecFrame>, key: TemplateKey) -> bool {
    rig.snap.templates.get(key, rig.now).is_some()
}

fn rst_from(client: Ipv4Addr, cport: u16) -> Vec<u8> {
    tcp_frame(
        (CLIENT_MAC, MAC0),
        SocketAddrV4::new(client, cport),
        SocketAddrV4::new(VIP, VPORT_TCP),
        RST | ACK,
        (1001, 0),
        b"",
    )
}

#[test]
/// A second worker's view reads the first worker's established connection within a round, and
/// sends every new connection it schedules to the other server.
fn wlc_on_another_worker_counts_the_first_workers_connection() {
    let mut rig = rig_with(tcp(Sched::Wlc));
    let mut w0 = second_worker(&rig);
    let (first, _) = handshake(&mut rig, 41_000);
    assert_eq!(first, RS1);
    rig.advance(20);
    let ctx = Ctx {
        snap: &rig.snap,
        neigh: &rig.neigh,
        now_ms: rig.now,
    };
    w0.housekeeping(&ctx, usize::MAX, &mut rig.out);
    let picks: Vec<_> = (0..10)
        .map(|k| pick_on(&mut w0, &mut rig, CLIENT, 41_500 + k))
        .collect();
    assert!(picks.iter().all(|&p| p == RS2), "{picks:?}");
}
