//! The engine end to end without DPDK: frames from the generator go through the daemon's own
//! worker (`dpvs_core::engine::worker`, configured from `bench/conf/fnat.toml`), and what it
//! transmits comes back to the generator, which answers as the real servers and clients do.
//! A deliberately broken balancer in the same loop must be caught by the checks.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dpvs_core::engine::neigh::NeighTable;
use dpvs_core::engine::snapshot::Snapshot;
use dpvs_core::engine::stats::Stats;
use dpvs_core::engine::worker::{Ctx, Output, Worker, WorkerLimits};
use dpvs_core::packet::{Frame, MacAddr, VecFrame};
use dpvs_daemon::config::Config;
use dpvs_daemon::control::state::{ControlState, PortState};

use super::*;
use crate::check::{Bad, Expect, Net};
use crate::flows::{FlowSpace, Order};

const GEN: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const DUT: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x01]);

/// The committed benchmark config, rendered as `bench/run.sh` does.
fn bench_config() -> Config {
    let text = include_str!("../../../conf/fnat.toml")
        .replace("@SOCK@", "/tmp/unused.sock")
        .replace("@PREFIX@", "unit")
        .replace("@LCORES@", "0@1,1@1")
        .replace("@MAX_CONNS@", "65536");
    Config::from_toml_str(&text).expect("bench/conf/fnat.toml is a valid config")
}

/// Collects what the worker transmits.
#[derive(Default)]
struct Out(Vec<VecFrame>);

impl Output<VecFrame> for Out {
    fn tx(&mut self, _port: u16, f: VecFrame) {
        self.0.push(f);
    }
    fn alloc(&mut self) -> Option<VecFrame> {
        Some(VecFrame::new())
    }
}

/// The daemon's worker, as the benchmark configures it.
struct Dut {
    snap: Snapshot,
    neigh: NeighTable,
    worker: Worker<VecFrame>,
    now_ms: u64,
}

impl Dut {
    fn new() -> Dut {
        let cfg = bench_config();
        let ports = vec![PortState {
            name: "dpdk0".into(),
            id: 0,
            mac: DUT,
            mtu: 1500,
            kni: false,
        }];
        let mut state = ControlState::new(ports, cfg.timeouts, 4096);
        state.apply_config(&cfg).expect("config applies");
        let stats = Arc::new(Stats::new(1, 4096));
        let limits = WorkerLimits {
            conns: 65536,
            pending_per_hop: 8,
            pending_hops: 16,
        };
        let mut dut = Dut {
            snap: state.snapshot(),
            neigh: state.neigh_table(),
            worker: Worker::new(0, 1, limits, 0, stats),
            now_ms: 1000,
        };
        dut.process_all(Vec::new());
        dut
    }

    /// Runs housekeeping, then every frame of `input` through the worker.
    fn process_all(&mut self, input: Vec<VecFrame>) -> Vec<VecFrame> {
        let ctx = Ctx {
            snap: &self.snap,
            neigh: &self.neigh,
            now_ms: self.now_ms,
        };
        let mut out = Out::default();
        self.worker.housekeeping(&ctx, usize::MAX, &mut out);
        for f in input {
            self.worker.process(&ctx, 0, f, &mut out);
        }
        out.0
    }
}

fn plan(traffic: Traffic, flows: u32) -> Plan {
    Plan {
        traffic,
        net: Net {
            expect: Expect::Fnat,
            our_mac: GEN,
            dut_mac: DUT,
            vip: "10.0.0.100:80".parse().unwrap(),
            clients: FlowSpace::new(Ipv4Addr::new(10, 1, 0, 0), flows),
            laddr_base: Ipv4Addr::new(10, 0, 1, 0),
            laddr_count: 256,
            rs: vec![
                "10.0.0.20:8080".parse().unwrap(),
                "10.0.0.21:8080".parse().unwrap(),
            ],
            rs_macs: Vec::new(),
            tun_src: Ipv4Addr::new(10, 0, 0, 1),
            proto: if traffic == Traffic::EstUdp {
                IpProto::UDP
            } else {
                IpProto::TCP
            },
            ttl: 64,
        },
        order: Order::Random,
        frame_len: 60,
        rs_reply: false,
        seed: 7,
    }
}

/// Up to `n` client packets from the engine.
fn build(eng: &mut Engine, n: usize, now: u64) -> Vec<VecFrame> {
    let mut v = Vec::new();
    for _ in 0..n {
        let mut f = VecFrame::new();
        assert!(f.set_len(eng.frame_len()));
        if !eng.fill(f.data_mut(), now) {
            break;
        }
        v.push(f);
    }
    v
}

/// Sends `frames` through the device (and `corrupt`), gives the output to the engine, and
/// repeats with the engine's replies until nothing is left.
fn pump(
    eng: &mut Engine,
    dut: &mut Dut,
    mut frames: Vec<VecFrame>,
    now: &mut u64,
    corrupt: &mut impl FnMut(&mut VecFrame),
) {
    while !frames.is_empty() {
        let out = dut.process_all(frames);
        frames = Vec::new();
        *now += 1000;
        for mut f in out {
            corrupt(&mut f);
            if eng.on_rx(&mut f, *now) {
                frames.push(f);
            }
        }
    }
}

fn run_established(traffic: Traffic, corrupt: &mut impl FnMut(&mut VecFrame)) -> Engine {
    let mut eng = Engine::new(plan(traffic, 500));
    let mut dut = Dut::new();
    let mut now = 1_000_000u64;
    assert_eq!(eng.start_prime(true), 500);
    while eng.priming() {
        let f = build(&mut eng, 64, now);
        pump(&mut eng, &mut dut, f, &mut now, corrupt);
    }
    eng.stop_prime();
    eng.set_measuring(true, now);
    for _ in 0..20 {
        let f = build(&mut eng, 100, now);
        pump(&mut eng, &mut dut, f, &mut now, corrupt);
    }
    eng.set_measuring(false, now);
    eng
}

#[test]
fn established_flows_through_the_real_fullnat_engine() {
    for traffic in [Traffic::EstTcp, Traffic::EstUdp] {
        let eng = run_established(traffic, &mut |_| {});
        let c = &eng.c;
        assert_eq!(c.bad_total(), 0, "{traffic:?}: {c:?}");
        assert_eq!(c.flows_seen, 500, "{traffic:?}");
        assert_eq!(c.ok_measured, 2000, "{traffic:?}");
        assert_eq!(eng.lat.count(), 2000);
        assert_eq!((c.dut_resets, c.other), (0, 0));
    }
}

#[test]
fn a_wrong_local_address_is_detected_and_counted() {
    // A balancer that picks a local address outside its configured set (checksums kept right,
    // so only the address check can catch it).
    let mut n = 0;
    let eng = run_established(Traffic::EstTcp, &mut |f: &mut VecFrame| {
        n += 1;
        if n % 10 == 0 {
            let d = f.data_mut();
            let old = u32::from_be_bytes([d[26], d[27], d[28], d[29]]);
            let new = Ipv4Addr::new(10, 9, 9, 9).to_bits();
            d[26..30].copy_from_slice(&new.to_be_bytes());
            let ip =
                dpvs_core::packet::checksum::update32(u16::from_be_bytes([d[24], d[25]]), old, new);
            d[24..26].copy_from_slice(&ip.to_be_bytes());
            let tcp =
                dpvs_core::packet::checksum::update32(u16::from_be_bytes([d[50], d[51]]), old, new);
            d[50..52].copy_from_slice(&tcp.to_be_bytes());
        }
    });
    let bad = eng.c.bad[Bad::Src.index()];
    assert!(bad >= 100, "{:?}", eng.c);
    assert_eq!(eng.c.bad_total(), bad);
    assert_eq!(eng.c.ok + bad, eng.c.rx);
}

#[test]
fn a_broken_checksum_and_a_changed_path_are_detected() {
    let mut n = 0;
    let eng = run_established(Traffic::EstUdp, &mut |f: &mut VecFrame| {
        n += 1;
        let d = f.data_mut();
        if n % 7 == 0 {
            d[35] ^= 0x01; // a source-port bit, checksum left as it was
        } else if n > 600 && n % 11 == 0 {
            // Another real server for an established flow, checksums fixed.
            let old = u32::from_be_bytes([d[30], d[31], d[32], d[33]]);
            let new = if old & 1 == 0 { old + 1 } else { old - 1 };
            d[30..34].copy_from_slice(&new.to_be_bytes());
            let ip =
                dpvs_core::packet::checksum::update32(u16::from_be_bytes([d[24], d[25]]), old, new);
            d[24..26].copy_from_slice(&ip.to_be_bytes());
            let udp =
                dpvs_core::packet::checksum::update32(u16::from_be_bytes([d[40], d[41]]), old, new);
            d[40..42].copy_from_slice(&udp.to_be_bytes());
        }
    });
    assert!(eng.c.bad[Bad::L4Checksum.index()] > 0, "{:?}", eng.c);
    assert!(eng.c.bad[Bad::PathChanged.index()] > 0, "{:?}", eng.c);
    assert!(eng.c.ok_measured < 2000);
}

#[test]
fn new_connections_complete_the_handshake_through_the_real_engine() {
    let mut eng = Engine::new(plan(Traffic::NewConn, 1000));
    let mut dut = Dut::new();
    let mut now = 1_000_000u64;
    eng.set_measuring(true, now);
    for _ in 0..10 {
        let f = build(&mut eng, 50, now);
        pump(&mut eng, &mut dut, f, &mut now, &mut |_| {});
    }
    let c = &eng.c;
    assert_eq!(c.bad_total(), 0, "{c:?}");
    assert_eq!((c.conns_started, c.conns_done), (500, 500), "{c:?}");
    assert_eq!(c.conns_done_measured, 500);
    // SYN, SYN+ACK, ACK with data, RST: four packets through the balancer per connection.
    assert_eq!(c.ok, 2000);
    assert_eq!(eng.conn_lat.count(), 500);
    assert_eq!(c.dut_resets, 0);
}

#[test]
fn bidirectional_established_flows() {
    let mut p = plan(Traffic::EstTcp, 100);
    p.rs_reply = true;
    let mut eng = Engine::new(p);
    let mut dut = Dut::new();
    let mut now = 1_000_000u64;
    eng.start_prime(true);
    while eng.priming() {
        let f = build(&mut eng, 64, now);
        pump(&mut eng, &mut dut, f, &mut now, &mut |_| {});
    }
    eng.stop_prime();
    let before = eng.c.ok;
    let f = build(&mut eng, 100, now);
    pump(&mut eng, &mut dut, f, &mut now, &mut |_| {});
    // Each data packet reaches its real server, whose answer reaches the client.
    assert_eq!(eng.c.ok - before, 200, "{:?}", eng.c);
    assert_eq!(eng.c.bad_total(), 0);
}

#[test]
fn device_resets_are_counted_not_failed() {
    // Data for flows the balancer never saw (no priming): it answers each with a RST.
    let mut eng = Engine::new(plan(Traffic::EstTcp, 10));
    let mut dut = Dut::new();
    let mut now = 1u64;
    let f = build(&mut eng, 10, now);
    pump(&mut eng, &mut dut, f, &mut now, &mut |_| {});
    assert_eq!(eng.c.dut_resets, 10, "{:?}", eng.c);
    assert_eq!(eng.c.bad_total(), 0);
}

#[test]
fn new_connection_window_closes_and_recovers() {
    let mut eng = Engine::new(plan(Traffic::NewConn, 100));
    assert_eq!(eng.budget(0, 4, 1000), 4);
    let _ = build(&mut eng, 4, 10);
    assert_eq!(eng.conns_open(), 4);
    // Full, and nothing completed: closed until the stall time passes.
    assert_eq!(eng.budget(500, 4, 1000), 0);
    assert_eq!(eng.budget(1500, 4, 1000), 4);
    assert_eq!((eng.conns_open(), eng.c.conns_abandoned), (0, 4));
    // Established flows are not limited.
    let mut est = Engine::new(plan(Traffic::EstTcp, 10));
    assert_eq!(est.budget(0, 4, 1000), usize::MAX);
}
