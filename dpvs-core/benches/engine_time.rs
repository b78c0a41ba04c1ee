//! Wall-clock time of the engine's fast paths (criterion). Each iteration hands a batch of
//! `BATCH` frames to the worker and the throughput is reported per packet; the `*_1m`
//! variants walk all 1M connections in random order, batch after batch, so the connection
//! table does not stay in cache (compare with the instruction counts of `engine_instr`,
//! which do not change).
//!
//! New connections are recycled between iterations, outside the timed part: their SYN_RECV
//! timeout is zero, so a sweep of the whole table (housekeeping, not timed) removes them and
//! returns their local ports.
//!
//! Quick run: `cargo bench -p dpvs-core --bench engine_time -- --quick`.

mod common;

use std::time::{Duration, Instant};

use common::{
    BATCH, Bench, IpProto, Kind, Setup, Templates, lookup_all, lookup_all_burst, lookup_baseline,
    shuffled, table_fixture, templates,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dpvs_api::Forward;
use dpvs_core::engine::conn::{ConnTable, Tuple};
use dpvs_core::engine::tcp_state::Timeouts;

/// A worker, the frames it will be fed (walked from `cursor`), and what it sent so far.
struct State {
    bench: Bench,
    t: Templates,
    cursor: usize,
}

/// `flows` established connections of `proto`, and templates of `kind` for all of them in
/// random order.
fn hit(proto: IpProto, kind: Kind, flows: u32) -> State {
    let mut b = Bench::new(Setup::for_flows(flows as usize));
    b.open(proto, 0, flows);
    let t = templates(&b, kind, &shuffled(flows, 7));
    State {
        bench: b,
        t,
        cursor: 0,
    }
}

/// How a batch reaches the worker: `Bench::run` (bursts) or `Bench::run_one_by_one`.
type Feed = fn(&mut Bench, &Templates, usize, usize);

fn bench_batches(s: &mut State, iters: u64, feed: Feed) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        feed(&mut s.bench, &s.t, s.cursor, BATCH);
        s.cursor = (s.cursor + BATCH) % s.t.count();
    }
    let d = start.elapsed();
    assert_eq!(s.bench.drops(), 0, "the worker dropped packets");
    d
}

fn fullnat_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("fullnat_hit");
    g.throughput(Throughput::Elements(BATCH as u64));
    let cases: [(&str, IpProto, Kind, u32); 5] = [
        ("tcp_in_1k", IpProto::TCP, Kind::TcpIn, BATCH as u32),
        ("tcp_in_1m", IpProto::TCP, Kind::TcpIn, 1 << 20),
        ("tcp_out_1k", IpProto::TCP, Kind::TcpOut, BATCH as u32),
        ("tcp_out_1m", IpProto::TCP, Kind::TcpOut, 1 << 20),
        ("udp_in_1k", IpProto::UDP, Kind::UdpIn, BATCH as u32),
    ];
    for (name, proto, kind, flows) in cases {
        let mut st: Option<State> = None;
        g.bench_function(name, |b| {
            let s = st.get_or_insert_with(|| hit(proto, kind, flows));
            b.iter_custom(|iters| bench_batches(s, iters, Bench::run));
        });
    }
    let mut st: Option<State> = None;
    g.bench_function("harness_baseline", |b| {
        let s = st.get_or_insert_with(|| hit(IpProto::TCP, Kind::TcpIn, BATCH as u32));
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                s.bench.run_baseline(&s.t, 0, BATCH);
            }
            start.elapsed()
        });
    });
    g.finish();
    // The fast path of the other forwarding modes, client data of 1K established flows.
    let mut g = c.benchmark_group("mode_hit");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, forward) in [
        ("nat_tcp_in_1k", Forward::Nat),
        ("dr_tcp_in_1k", Forward::Dr),
        ("tun_tcp_in_1k", Forward::Tun),
    ] {
        let mut st: Option<State> = None;
        g.bench_function(name, |b| {
            let s = st.get_or_insert_with(|| {
                let mut b = Bench::new(Setup {
                    tcp_forward: forward,
                    ..Setup::for_flows(BATCH)
                });
                b.open(IpProto::TCP, 0, BATCH as u32);
                let t = templates(&b, Kind::TcpIn, &shuffled(BATCH as u32, 7));
                State {
                    bench: b,
                    t,
                    cursor: 0,
                }
            });
            b.iter_custom(|iters| bench_batches(s, iters, Bench::run));
        });
    }
    g.finish();
    // The same batches one packet at a time: what the burst prefetch buys at scale.
    let mut g = c.benchmark_group("fullnat_one_by_one");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, flows) in [("tcp_in_1k", BATCH as u32), ("tcp_in_1m", 1 << 20)] {
        let mut st: Option<State> = None;
        g.bench_function(name, |b| {
            let s = st.get_or_insert_with(|| hit(IpProto::TCP, Kind::TcpIn, flows));
            b.iter_custom(|iters| bench_batches(s, iters, Bench::run_one_by_one));
        });
    }
    g.finish();
}

/// `open` established connections, and SYN templates of `BATCH` new flows whose connections
/// expire at once (SYN_RECV timeout 0) so that a sweep recycles them.
/// `capacity` is the table's (`None`: the daemon's default, 1M, or enough for `open`).
fn new_conn(open: u32, capacity: Option<usize>) -> State {
    let timeouts = Timeouts {
        syn_recv: 0,
        ..Timeouts::default()
    };
    let s = Setup::for_flows(open as usize + 2 * BATCH);
    let mut b = Bench::new(Setup {
        timeouts,
        conns: capacity.unwrap_or(s.conns),
        ..s
    });
    b.open(IpProto::TCP, 0, open);
    let flows: Vec<u32> = (open..open + BATCH as u32).collect();
    let t = templates(&b, Kind::Syn, &flows);
    State {
        bench: b,
        t,
        cursor: 0,
    }
}

fn new_tcp_conn(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_tcp_conn");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(3));
    // `small_table` (4K capacity, all in cache) shows the CPU-bound rate; the others use the
    // daemon's default capacity (1M) or more, where index accesses miss the cache.
    let cases: [(&str, u32, Option<usize>); 3] = [
        ("empty_table", 0, None),
        ("table_1m", 1 << 20, None),
        ("small_table", 0, Some(4 * BATCH)),
    ];
    for (name, open, capacity) in cases {
        let mut st: Option<State> = None;
        g.bench_function(name, |b| {
            let s = st.get_or_insert_with(|| new_conn(open, capacity));
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let len = s.bench.worker.conns().len();
                    let start = Instant::now();
                    s.bench.run(&s.t, 0, BATCH);
                    timed += start.elapsed();
                    assert_eq!(s.bench.worker.conns().len(), len + BATCH, "new conns");
                    let cap = s.bench.worker.conns().capacity();
                    s.bench.housekeeping(cap);
                    assert_eq!(s.bench.worker.conns().len(), len, "recycled");
                }
                assert_eq!(s.bench.drops(), 0, "the worker dropped packets");
                timed
            });
        });
    }
    g.finish();
}

fn conn_lookup(c: &mut Criterion) {
    // One key after the other (`conn_lookup`), and in bursts with prefetch as the worker
    // looks its packets up (`conn_lookup_burst`); the same tables and keys for both.
    let sizes = [
        ("entries_1k", 1u32 << 10),
        ("entries_1m", 1 << 20),
        ("entries_10m", 10_000_000),
    ];
    type Lookup = fn(&ConnTable, &[Tuple]) -> usize;
    let ways: [(&str, Lookup); 2] = [
        ("conn_lookup", lookup_all),
        ("conn_lookup_burst", lookup_all_burst),
    ];
    for (name, n) in sizes {
        // Random keys over the whole table, walked a batch at a time; built on first use, so
        // a filtered run does not build the 10M table.
        let mut fixture = None;
        for (group, lookup) in ways {
            let mut g = c.benchmark_group(group);
            g.throughput(Throughput::Elements(BATCH as u64));
            let mut cursor = 0usize;
            g.bench_function(name, |b| {
                let f = fixture.get_or_insert_with(|| table_fixture(n, (n as usize).min(1 << 20)));
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let end = (cursor + BATCH).min(f.keys.len());
                        let found = lookup(&f.table, &f.keys[cursor..end]);
                        assert_eq!(found, end - cursor);
                        cursor = if end == f.keys.len() { 0 } else { end };
                    }
                    start.elapsed()
                });
            });
            g.finish();
        }
    }
    let keys = table_fixture(1 << 10, BATCH).keys;
    let mut g = c.benchmark_group("conn_lookup");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("loop_only", |b| {
        b.iter(|| lookup_baseline(&keys));
    });
    g.finish();
}

criterion_group!(benches, fullnat_hit, new_tcp_conn, conn_lookup);
criterion_main!(benches);
