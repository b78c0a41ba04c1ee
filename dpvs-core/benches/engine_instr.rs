//! Instruction counts of the engine's fast paths (gungraun + Callgrind): stable on noisy
//! machines. Each benchmark hands one batch of `BATCH` (1,024) frames to the worker; the
//! per-packet figure is `(bench - baseline) / BATCH`, where the baseline runs the same loop
//! (frame from the pool, restore from its template, back to the pool) without the worker.
//! `bench/engine.sh` runs this and does the arithmetic.
//!
//! Setup (building the configuration and opening up to 1M connections through the worker)
//! is not measured; nothing is dropped inside the measured function (the state is returned).

mod common;

use std::hint::black_box;

use common::{
    BATCH, Bench, IpProto, Kind, SchedSetup, Setup, TableFixture, Templates, lookup_all,
    lookup_baseline, sample, shuffled, table_fixture, templates,
};
use dpvs_api::{Forward, Sched};
use gungraun::prelude::*;

/// A worker and the batch it will be fed.
struct State {
    bench: Bench,
    t: Templates,
    /// Packets sent before the measured batch.
    sent_before: u64,
}

fn state(bench: Bench, t: Templates) -> State {
    let sent_before = bench.sink.tx;
    State {
        bench,
        t,
        sent_before,
    }
}

/// `flows` established connections of `proto`; the batch is `BATCH` random ones of them,
/// as templates of `kind` (the teardown checks every packet was forwarded).
///
/// With 1K flows the batch is the steady state of a link carrying those flows: it runs once
/// before the measured run, so each flow has been seen, as its next-hop cache entry and its
/// connection would be on a real link. With 1M flows it is not warmed up: each packet is the
/// first of its flow in a while, out of every cache, as at that scale on a real link.
fn hit(proto: IpProto, kind: Kind, flows: u32) -> State {
    let mut b = Bench::new(Setup::for_flows(flows as usize));
    b.open(proto, 0, flows);
    let steady = flows as usize == BATCH;
    let picked = if steady {
        shuffled(flows, 7)
    } else {
        sample(flows, BATCH, 7)
    };
    let t = templates(&b, kind, &picked);
    if steady {
        b.run(&t, 0, BATCH);
    }
    state(b, t)
}

/// `open` connections already established, and a batch of `BATCH` SYNs from new flows.
fn new_conn(open: u32) -> State {
    let mut b = Bench::new(Setup::for_flows(open as usize + 2 * BATCH));
    b.open(IpProto::TCP, 0, open);
    // One connection of warm-up: the worker picks its scheduler start on the first one.
    b.open(IpProto::TCP, open, 1);
    let flows: Vec<u32> = (open + 1..open + 1 + BATCH as u32).collect();
    let t = templates(&b, Kind::Syn, &flows);
    state(b, t)
}

/// [`new_conn`] on an empty table with the TCP service scheduled as `sched` says: a batch of
/// `BATCH` SYNs from new clients (each a new address: a persistent service claims a template
/// for every one).
fn new_conn_sched(sched: SchedSetup) -> State {
    let mut b = Bench::new(Setup {
        tcp_sched: sched,
        ..Setup::for_flows(2 * BATCH)
    });
    b.open(IpProto::TCP, 0, 1);
    let flows: Vec<u32> = (1..1 + BATCH as u32).collect();
    let t = templates(&b, Kind::Syn, &flows);
    state(b, t)
}

fn sched(sched: Sched, real_servers: u32) -> SchedSetup {
    SchedSetup::new(sched, real_servers)
}

/// Checks the measured batch went out whole.
fn check(s: State) {
    s.bench.assert_all_sent(s.sent_before + BATCH as u64);
}

fn check_lookup((f, found): (TableFixture, usize)) {
    assert_eq!(found, f.keys.len(), "every key must be found");
}

fn run(mut s: State) -> State {
    s.bench.run(&s.t, 0, BATCH);
    s
}

#[library_benchmark(teardown = check)]
#[bench::tcp_in_1k(args = (IpProto::TCP, Kind::TcpIn, BATCH as u32), setup = hit)]
#[bench::tcp_in_1m(args = (IpProto::TCP, Kind::TcpIn, 1 << 20), setup = hit)]
#[bench::tcp_out_1k(args = (IpProto::TCP, Kind::TcpOut, BATCH as u32), setup = hit)]
#[bench::tcp_out_1m(args = (IpProto::TCP, Kind::TcpOut, 1 << 20), setup = hit)]
#[bench::udp_in_1k(args = (IpProto::UDP, Kind::UdpIn, BATCH as u32), setup = hit)]
fn fullnat_hit(s: State) -> State {
    black_box(run(s))
}

/// 1K established TCP flows of a service in `forward` mode, warmed up like [`hit`]'s.
fn mode_state(forward: Forward) -> State {
    let mut b = Bench::new(Setup {
        tcp_forward: forward,
        ..Setup::for_flows(BATCH)
    });
    b.open(IpProto::TCP, 0, BATCH as u32);
    let t = templates(&b, Kind::TcpIn, &shuffled(BATCH as u32, 7));
    b.run(&t, 0, BATCH);
    state(b, t)
}

// The fast path of each forwarding mode: client data segments of 1K established flows.
#[library_benchmark(teardown = check)]
#[bench::nat_tcp_in_1k(args = (Forward::Nat), setup = mode_state)]
#[bench::dr_tcp_in_1k(args = (Forward::Dr), setup = mode_state)]
#[bench::tun_tcp_in_1k(args = (Forward::Tun), setup = mode_state)]
fn mode_hit(s: State) -> State {
    black_box(run(s))
}

// The same 1K-flow batch handed to `Worker::process` one packet at a time (no burst staging).
#[library_benchmark(teardown = check)]
#[bench::tcp_in_1k(args = (IpProto::TCP, Kind::TcpIn, BATCH as u32), setup = hit)]
fn fullnat_one_by_one(mut s: State) -> State {
    s.bench.run_one_by_one(&s.t, 0, BATCH);
    black_box(s)
}

#[library_benchmark(teardown = check)]
#[bench::empty_table(args = (0), setup = new_conn)]
#[bench::table_1m(args = (1 << 20), setup = new_conn)]
fn new_tcp_conn(s: State) -> State {
    black_box(run(s))
}

// A new connection's cost by scheduler, at 2 and at 1,000 real servers (weight 1 each).
#[library_benchmark(teardown = check)]
#[bench::rr_2(args = (sched(Sched::Rr, 2)), setup = new_conn_sched)]
#[bench::rr_1000(args = (sched(Sched::Rr, 1000)), setup = new_conn_sched)]
#[bench::wrr_2(args = (sched(Sched::Wrr, 2)), setup = new_conn_sched)]
#[bench::wrr_1000(args = (sched(Sched::Wrr, 1000)), setup = new_conn_sched)]
#[bench::wlc_2(args = (sched(Sched::Wlc, 2)), setup = new_conn_sched)]
#[bench::wlc_1000(args = (sched(Sched::Wlc, 1000)), setup = new_conn_sched)]
#[bench::lc_2(args = (sched(Sched::Lc, 2)), setup = new_conn_sched)]
#[bench::lc_1000(args = (sched(Sched::Lc, 1000)), setup = new_conn_sched)]
#[bench::sh_2(args = (sched(Sched::Sh, 2)), setup = new_conn_sched)]
#[bench::sh_1000(args = (sched(Sched::Sh, 1000)), setup = new_conn_sched)]
#[bench::mh_2(args = (sched(Sched::Mh, 2)), setup = new_conn_sched)]
#[bench::mh_1000(args = (sched(Sched::Mh, 1000)), setup = new_conn_sched)]
#[bench::conhash_2(args = (sched(Sched::Conhash, 2)), setup = new_conn_sched)]
#[bench::conhash_1000(args = (sched(Sched::Conhash, 1000)), setup = new_conn_sched)]
#[bench::fo_2(args = (sched(Sched::Fo, 2)), setup = new_conn_sched)]
#[bench::fo_1000(args = (sched(Sched::Fo, 1000)), setup = new_conn_sched)]
#[bench::rr_persistent_2(args = (sched(Sched::Rr, 2).persistent()), setup = new_conn_sched)]
#[bench::rr_persistent_1000(args = (sched(Sched::Rr, 1000).persistent()), setup = new_conn_sched)]
fn new_conn_by_sched(s: State) -> State {
    black_box(run(s))
}

// The harness alone, for data segments (60-byte frames) and SYNs (54-byte frames).
#[library_benchmark]
#[bench::data(args = (IpProto::TCP, Kind::TcpIn, BATCH as u32), setup = hit)]
#[bench::syn(args = (0), setup = new_conn)]
fn harness_baseline(mut s: State) -> State {
    s.bench.run_baseline(&s.t, 0, BATCH);
    black_box(s)
}

#[library_benchmark(teardown = check_lookup)]
#[bench::entries_1k(args = (1 << 10, BATCH), setup = table_fixture)]
#[bench::entries_1m(args = (1 << 20, BATCH), setup = table_fixture)]
#[bench::entries_10m(args = (10_000_000, BATCH), setup = table_fixture)]
fn conn_lookup(f: TableFixture) -> (TableFixture, usize) {
    let found = lookup_all(&f.table, &f.keys);
    black_box((f, found))
}

#[library_benchmark]
#[bench::loop_only(args = (1 << 10, BATCH), setup = table_fixture)]
fn conn_lookup_baseline(f: TableFixture) -> (TableFixture, usize) {
    let found = lookup_baseline(&f.keys);
    black_box((f, found))
}

library_benchmark_group!(
    name = engine,
    benchmarks = [
        harness_baseline,
        fullnat_hit,
        mode_hit,
        fullnat_one_by_one,
        new_tcp_conn,
        new_conn_by_sched,
        conn_lookup_baseline,
        conn_lookup
    ]
);

main!(library_benchmark_groups = engine);
