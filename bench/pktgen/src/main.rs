//! dpvs-pktgen: see `cli::Args` for what it does and `bench/README.md` for how the benchmark
//! uses it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use clap::Parser;
use dpvs_core::packet::MacAddr;
use dpvs_dpdk::{Eal, PortStats, rdtsc};

use dpvs_pktgen::cli::{Args, Rate};
use dpvs_pktgen::driver::{Driver, Io, Pace, TxCounters};
use dpvs_pktgen::engine::{Counters, Engine, Traffic};
use dpvs_pktgen::report::{self, ConnReport, Latency, PrimeReport, Report};

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            if let Err(e) = output(&args, &r) {
                eprintln!("dpvs-pktgen: {e}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("dpvs-pktgen: {e}");
            std::process::exit(1);
        }
    }
}

fn output(args: &Args, r: &Report) -> Result<(), String> {
    let json = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    match args.json.as_deref() {
        Some(p) if p.as_os_str() == "-" => println!("{json}"),
        Some(p) => {
            std::fs::write(p, json + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
            print!("{}", r.table());
        }
        None => print!("{}", r.table()),
    }
    Ok(())
}

/// Prints a phase marker for scripts (see `--markers`).
fn marker(args: &Args, name: &str) {
    if args.markers {
        eprintln!("# phase {name}");
        let _ = std::io::stderr().flush();
    }
}

fn run(args: &Args) -> Result<Report, String> {
    let eal = Eal::init(&args.eal()).map_err(|e| format!("EAL: {e}"))?;
    let io = Io::open(&eal, &args.port, Duration::from_secs_f64(args.link_timeout))?;
    let our_mac = MacAddr(io.port.mac());
    let plan = args.plan(our_mac)?;
    let proto = plan.net.proto;
    let mut eng = Engine::new(plan);
    let mut drv = Driver::new(io, eal.tsc_hz(), proto, args.conn_window);
    let result = phases(args, &mut eng, &mut drv);
    drop(drv.into_io());
    if let Err(e) = eal.shutdown() {
        eprintln!("dpvs-pktgen: EAL cleanup: {e}");
    }
    result
}

/// Seconds to TSC cycles.
fn cycles(hz: u64, s: f64) -> u64 {
    (s.max(0.0) * hz as f64) as u64
}

/// Counters at the start and the end of the measured interval.
struct Window {
    t0: u64,
    t1: u64,
    port0: PortStats,
    tx0: TxCounters,
    tx1: TxCounters,
    c0: Counters,
    c1: Counters,
}

/// Prime (established flows), warm up, measure, drain; then the report.
fn phases(args: &Args, eng: &mut Engine, drv: &mut Driver) -> Result<Report, String> {
    let hz = drv.hz();
    let prime = if eng.plan().traffic == Traffic::NewConn {
        None
    } else {
        marker(args, "prime");
        Some(prime(args, eng, drv))
    };
    let mut pace = match args.rate {
        Rate::Max => Pace::Max,
        Rate::PerSecond(pps) => Pace::Rate {
            pps,
            start: rdtsc(),
            built: 0,
        },
    };
    marker(args, "warmup");
    drv.run(eng, &mut pace, rdtsc() + cycles(hz, args.warmup), |_| false);
    let (port0, tx0, c0) = (drv.port_stats(), drv.tx, eng.c.clone());
    let t0 = rdtsc();
    eng.set_measuring(true, t0);
    marker(args, "measure");
    drv.run(eng, &mut pace, t0 + cycles(hz, args.duration), |_| false);
    let t1 = rdtsc();
    eng.set_measuring(false, t1);
    marker(args, "drain");
    let (tx1, c1) = (drv.tx, eng.c.clone());
    drv.run(
        eng,
        &mut Pace::Off,
        rdtsc() + cycles(hz, args.drain),
        |_| false,
    );
    marker(args, "done");
    let w = Window {
        t0,
        t1,
        port0,
        tx0,
        tx1,
        c0,
        c1,
    };
    Ok(report(args, eng, drv, prime, &w))
}

/// The report of the measured interval `w` (loss counts the drain too: packets sent in the
/// interval may arrive after it).
fn report(
    args: &Args,
    eng: &Engine,
    drv: &Driver,
    prime: Option<PrimeReport>,
    w: &Window,
) -> Report {
    let hz = drv.hz();
    let (c0, tx0, tx1) = (&w.c0, &w.tx0, &w.tx1);
    let secs = (w.t1 - w.t0) as f64 / hz as f64;
    let sent = drv.tx.sent_measured - tx0.sent_measured;
    let received = eng.c.ok_measured - c0.ok_measured;
    let attempts = (tx1.sent - tx0.sent) + (tx1.refused - tx0.refused);
    let refused_ratio = ratio(tx1.refused - tx0.refused, attempts);
    let busy = 1.0
        - ratio(
            tx1.idle_cycles - tx0.idle_cycles,
            tx1.loop_cycles - tx0.loop_cycles,
        );
    // The pacing target counts client packets (or connections): compare it with those built.
    let built_pps = (w.c1.built - c0.built) as f64 / secs;
    let target = match args.rate {
        Rate::Max => None,
        Rate::PerSecond(r) => Some(r),
    };
    let plan = eng.plan();
    Report {
        tool: "dpvs-pktgen",
        traffic: plan.traffic,
        expect: plan.net.expect,
        flows: plan.net.clients.n,
        order: plan.order,
        frame_size: eng.frame_len() + 4,
        target_rate: target,
        warmup_s: args.warmup,
        duration_s: secs,
        prime,
        offered_pps: sent as f64 / secs,
        received_pps: received as f64 / secs,
        sent_measured: sent,
        received_measured: received,
        lost: sent as i64 - received as i64,
        loss_ratio: if sent == 0 {
            0.0
        } else {
            (sent as f64 - received as f64) / sent as f64
        },
        tx_refused: tx1.refused - tx0.refused,
        tx_refused_ratio: refused_ratio,
        generator_busy: busy,
        latency_ns: Latency::from_hist(&eng.lat, hz),
        conns: conns(eng, c0, secs, hz),
        checks: checks_delta(&eng.c, c0),
        check_failures: eng.c.bad_total() - c0.bad_total(),
        port: port_delta(&w.port0, &drv.port_stats()),
        bound: report::bound(
            target,
            built_pps,
            refused_ratio,
            busy,
            (plan.traffic == Traffic::NewConn).then_some(args.conn_window),
        ),
    }
}

/// New connections of the measured interval (`None` for established flows).
fn conns(eng: &Engine, c0: &Counters, secs: f64, hz: u64) -> Option<ConnReport> {
    if eng.plan().traffic != Traffic::NewConn {
        return None;
    }
    let started = eng.c.conns_started_measured - c0.conns_started_measured;
    let completed = eng.c.conns_done_measured - c0.conns_done_measured;
    Some(ConnReport {
        started,
        completed,
        started_per_s: started as f64 / secs,
        completed_per_s: completed as f64 / secs,
        abandoned: eng.c.conns_abandoned,
        latency_ns: Latency::from_hist(&eng.conn_lat, hz),
    })
}

/// The check counters since `c0` (`flows_seen` stays cumulative: it is a count of flows).
fn checks_delta(now: &Counters, c0: &Counters) -> BTreeMap<String, u64> {
    let before = report::checks(c0);
    let mut m = report::checks(now);
    for (k, v) in m.iter_mut() {
        if k != "flows_seen" {
            *v -= before.get(k).copied().unwrap_or(0);
        }
    }
    m
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn port_delta(a: &PortStats, b: &PortStats) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    m.insert("ipackets".into(), b.ipackets - a.ipackets);
    m.insert("opackets".into(), b.opackets - a.opackets);
    m.insert("imissed".into(), b.imissed - a.imissed);
    m.insert("ierrors".into(), b.ierrors - a.ierrors);
    m.insert("oerrors".into(), b.oerrors - a.oerrors);
    m.insert("rx_nombuf".into(), b.rx_nombuf - a.rx_nombuf);
    m
}

/// Opens every flow, then re-opens those the device did not pass on, at most three passes.
fn prime(args: &Args, eng: &mut Engine, drv: &mut Driver) -> PrimeReport {
    let hz = drv.hz();
    let started = Instant::now();
    let flows = eng.plan().net.clients.n;
    let mut passes = 0;
    while passes < 3 && eng.c.flows_seen < u64::from(flows) {
        passes += 1;
        eng.start_prime(passes == 1);
        drv.run(eng, &mut Pace::Max, u64::MAX, |e| !e.priming());
        eng.stop_prime();
        settle(args, eng, drv, hz, flows);
    }
    PrimeReport {
        flows,
        seen: eng.c.flows_seen,
        passes,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Receives until every flow was seen, or nothing new arrived for 200 ms, or the prime
/// timeout.
fn settle(args: &Args, eng: &mut Engine, drv: &mut Driver, hz: u64, flows: u32) {
    let deadline = rdtsc() + cycles(hz, args.prime_timeout);
    loop {
        let before = eng.c.rx;
        let until = (rdtsc() + cycles(hz, 0.2)).min(deadline);
        drv.run(eng, &mut Pace::Off, until, |e| {
            e.c.flows_seen >= u64::from(flows)
        });
        if eng.c.flows_seen >= u64::from(flows) || eng.c.rx == before || rdtsc() >= deadline {
            return;
        }
    }
}
