//! Memory per tracked connection, measured (not computed from `size_of`), and proof that
//! filling a worker's table allocates nothing.
//!
//! Two measurements, each with `N` connections (default 10,000,000; pass another number as
//! an argument):
//! - `table`: `ConnTable::new(N)` then `N` inserts.
//! - `worker`: a whole worker sized for `N` connections, fed `N` client SYNs and ACKs, so
//!   `N` ESTABLISHED FullNAT connections go through the real fast path (parse, schedule,
//!   local port, insert, rewrite, route, TX).
//!
//! For each: heap bytes requested from the allocator (a counting global allocator), resident
//! memory growth (`VmRSS`), both per connection, and the number of allocations made while
//! the connections were created (must be 0). Prints one JSON object on stdout.
//!
//! Run: `cargo bench -p dpvs-core --bench conn_memory [-- N]`.

mod common;

use std::alloc::System;
use std::time::Instant;

use common::{Bench, IpProto, Setup, table_conn};
use dpvs_core::engine::conn::ConnTable;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Resident set size in bytes, from `/proc/self/status`.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

struct Measure {
    /// Heap bytes requested while the structure was built (net of frees).
    heap: i64,
    /// Allocations while the connections were created.
    allocs: usize,
    /// Resident growth from before building to after the last connection.
    rss: i64,
    conns: usize,
    secs: f64,
}

impl Measure {
    fn json(&self, name: &str) -> String {
        let n = self.conns as f64;
        format!(
            "\"{name}\":{{\"conns\":{},\"heap_bytes\":{},\"heap_bytes_per_conn\":{:.2},\
             \"rss_bytes\":{},\"rss_bytes_per_conn\":{:.2},\"allocs_while_filling\":{},\
             \"fill_secs\":{:.3},\"fill_per_sec\":{:.0}}}",
            self.conns,
            self.heap,
            self.heap as f64 / n,
            self.rss,
            self.rss as f64 / n,
            self.allocs,
            self.secs,
            n / self.secs
        )
    }
}

fn net_bytes(s: &stats_alloc::Stats) -> i64 {
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

fn table(n: usize) -> Measure {
    let rss0 = rss();
    let mut region = Region::new(GLOBAL);
    let mut t = ConnTable::new(n, 0x5EED);
    let built = region.change_and_reset();
    let start = Instant::now();
    for i in 0..n as u32 {
        t.insert(table_conn(i)).expect("insert");
    }
    let secs = start.elapsed().as_secs_f64();
    let filling = region.change();
    let m = Measure {
        heap: net_bytes(&built),
        allocs: filling.allocations + filling.reallocations,
        rss: rss() as i64 - rss0 as i64,
        conns: t.len(),
        secs,
    };
    assert_eq!(t.len(), n);
    drop(t);
    m
}

fn worker(n: usize) -> Measure {
    let rss0 = rss();
    let mut region = Region::new(GLOBAL);
    let mut b = Bench::new(Setup {
        conns: n,
        ..Setup::for_flows(n)
    });
    let built = region.change_and_reset();
    let start = Instant::now();
    b.open(IpProto::TCP, 0, n as u32);
    let secs = start.elapsed().as_secs_f64();
    let filling = region.change();
    b.assert_all_sent(2 * n as u64);
    let m = Measure {
        heap: net_bytes(&built) + net_bytes(&filling),
        allocs: filling.allocations + filling.reallocations,
        rss: rss() as i64 - rss0 as i64,
        conns: b.worker.conns().len(),
        secs,
    };
    assert_eq!(m.conns, n);
    m
}

fn main() {
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse::<usize>().ok())
        .unwrap_or(10_000_000);
    eprintln!("conn_memory: {n} connections: table alone…");
    let t = table(n);
    eprintln!("conn_memory: {n} connections through a worker…");
    let w = worker(n);
    println!(
        "{{\"conns\":{n},\"conn_size_of\":{},{},{}}}",
        std::mem::size_of::<dpvs_core::engine::conn::Conn>(),
        t.json("table"),
        w.json("worker")
    );
}
