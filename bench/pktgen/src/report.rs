//! The result of a run: JSON for scripts, a table for people, and the verdict on who limited
//! the rate (the device, or the generator itself).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::check::{Bad, Expect};
use crate::engine::{Counters, Traffic};
use crate::flows::Order;
use crate::hist::Histogram;

/// Share of refused TX attempts above which the device is taken to push back.
pub const BACKPRESSURE: f64 = 0.01;
/// Share of the target rate the generator must reach to count as having offered it.
pub const RATE_TOLERANCE: f64 = 0.98;

/// Latency percentiles in nanoseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// Percentiles of `h` (TSC cycles) in ns at `hz`.
    pub fn from_hist(h: &Histogram, hz: u64) -> Latency {
        let ns = |c: u64| (c as f64 * 1e9 / hz as f64 * 10.0).round() / 10.0;
        Latency {
            samples: h.count(),
            min: ns(h.min()),
            p50: ns(h.quantile(0.50)),
            p90: ns(h.quantile(0.90)),
            p99: ns(h.quantile(0.99)),
            p999: ns(h.quantile(0.999)),
            max: ns(h.max()),
        }
    }
}

/// Priming of established flows.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PrimeReport {
    pub flows: u32,
    /// Flows seen at a real server after priming.
    pub seen: u64,
    pub passes: u32,
    pub seconds: f64,
}

/// New-connection results.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ConnReport {
    pub started: u64,
    pub completed: u64,
    pub started_per_s: f64,
    pub completed_per_s: f64,
    /// Given up (flow reused before completion, or the window stalled), whole run.
    pub abandoned: u64,
    /// SYN sent to the last packet of the exchange received, ns.
    pub latency_ns: Latency,
}

/// Who limited the rate.
#[derive(Clone, Debug, Serialize)]
pub struct Bound {
    /// `dut` (the device pushed back or could not take the rate), `generator` (the generator
    /// could not offer more), or `none` (the target rate was offered and taken).
    pub by: &'static str,
    pub reason: String,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub traffic: Traffic,
    pub expect: Expect,
    pub flows: u32,
    pub order: Order,
    /// Frame length on the wire, FCS included (as testpmd counts it).
    pub frame_size: usize,
    /// Client packets (established) or connections (new-conn) per second asked; null = max.
    pub target_rate: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub prime: Option<PrimeReport>,
    /// Packets accepted by the port in the measured interval, per second.
    pub offered_pps: f64,
    /// Packets of the measured interval received back and correct, per second.
    pub received_pps: f64,
    pub sent_measured: u64,
    pub received_measured: u64,
    /// Measured packets never received back correct.
    pub lost: i64,
    pub loss_ratio: f64,
    pub tx_refused: u64,
    pub tx_refused_ratio: f64,
    /// Share of loop time the generator had work.
    pub generator_busy: f64,
    pub latency_ns: Latency,
    pub conns: Option<ConnReport>,
    pub checks: BTreeMap<String, u64>,
    /// Refused frames (sum of the `bad_*` checks): non-zero means a wrong rewrite.
    pub check_failures: u64,
    pub port: BTreeMap<String, u64>,
    pub bound: Bound,
}

/// The check counters by name.
pub fn checks(c: &Counters) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    m.insert("rx".into(), c.rx);
    m.insert("ok".into(), c.ok);
    for b in Bad::ALL {
        m.insert(b.name().into(), c.bad[b.index()]);
    }
    m.insert("dut_resets".into(), c.dut_resets);
    m.insert("arp_replies".into(), c.arp_replies);
    m.insert("other".into(), c.other);
    m.insert("flows_seen".into(), c.flows_seen);
    m
}

/// Decides who limited the rate (see [`Bound`]). `window`: new connections at max rate run
/// closed-loop with at most this many open.
pub fn bound(
    target: Option<f64>,
    offered_pps: f64,
    refused_ratio: f64,
    busy: f64,
    window: Option<u64>,
) -> Bound {
    let pushed_back = refused_ratio >= BACKPRESSURE;
    if let (None, Some(w)) = (target, window)
        && busy < 0.95
    {
        return Bound {
            by: "dut",
            reason: format!(
                "closed loop of {w} open connections: the device's round trip set the rate (generator {:.0} % busy)",
                busy * 100.0
            ),
        };
    }
    match target {
        None if pushed_back => Bound {
            by: "dut",
            reason: format!(
                "the device pushed back ({:.1} % of TX attempts refused): the rate is the device's",
                refused_ratio * 100.0
            ),
        },
        None => Bound {
            by: "generator",
            reason: format!(
                "generator-bound: the device took all the generator could build ({:.0} % busy); the rate is a lower bound for the device",
                busy * 100.0
            ),
        },
        Some(t) if offered_pps < t * RATE_TOLERANCE && pushed_back => Bound {
            by: "dut",
            reason: format!(
                "offered {:.3} of {:.3} Mpps: the device pushed back ({:.1} % refused)",
                offered_pps / 1e6,
                t / 1e6,
                refused_ratio * 100.0
            ),
        },
        Some(t) if offered_pps < t * RATE_TOLERANCE => Bound {
            by: "generator",
            reason: format!(
                "generator-bound: built only {:.3} of {:.3} Mpps asked ({:.0} % busy)",
                offered_pps / 1e6,
                t / 1e6,
                busy * 100.0
            ),
        },
        Some(_) => Bound {
            by: "none",
            reason: format!(
                "target rate offered and taken ({:.0} % generator busy)",
                busy * 100.0
            ),
        },
    }
}

impl Report {
    /// The human table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let rate = self
            .target_rate
            .map_or("max".to_string(), |r| format!("{:.3} M/s", r / 1e6));
        let _ = writeln!(
            s,
            "dpvs-pktgen: {:?} {} flows ({}), expect {:?}, {} B frames, rate {}, {:.1} s measured",
            self.traffic,
            self.flows,
            order_name(self.order),
            self.expect,
            self.frame_size,
            rate,
            self.duration_s
        );
        if let Some(p) = &self.prime {
            let _ = writeln!(
                s,
                "  prime        {} of {} flows seen in {} pass(es), {:.1} s",
                p.seen, p.flows, p.passes, p.seconds
            );
        }
        let row = |s: &mut String, k: &str, v: String| {
            let _ = writeln!(s, "  {k:<12} {v}");
        };
        row(
            &mut s,
            "offered",
            format!("{:.3} Mpps", self.offered_pps / 1e6),
        );
        row(
            &mut s,
            "received",
            format!("{:.3} Mpps", self.received_pps / 1e6),
        );
        row(
            &mut s,
            "loss",
            format!(
                "{} of {} ({:.4} %)",
                self.lost,
                self.sent_measured,
                self.loss_ratio * 100.0
            ),
        );
        row(
            &mut s,
            "tx refused",
            format!("{:.2} % of attempts", self.tx_refused_ratio * 100.0),
        );
        let l = &self.latency_ns;
        row(
            &mut s,
            "latency us",
            format!(
                "p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                l.p50 / 1e3,
                l.p90 / 1e3,
                l.p99 / 1e3,
                l.p999 / 1e3,
                l.max / 1e3
            ),
        );
        if let Some(c) = &self.conns {
            row(
                &mut s,
                "conns",
                format!(
                    "{:.0}/s started, {:.0}/s completed, p50 {:.1} us, p99 {:.1} us",
                    c.started_per_s,
                    c.completed_per_s,
                    c.latency_ns.p50 / 1e3,
                    c.latency_ns.p99 / 1e3
                ),
            );
        }
        let bad: Vec<String> = self
            .checks
            .iter()
            .filter(|(k, v)| **v > 0 && !matches!(k.as_str(), "rx" | "ok" | "flows_seen"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        row(
            &mut s,
            "checks",
            format!(
                "{} ok of {} received{}{}",
                self.checks.get("ok").copied().unwrap_or(0),
                self.checks.get("rx").copied().unwrap_or(0),
                if bad.is_empty() { "" } else { "; " },
                bad.join(" ")
            ),
        );
        row(
            &mut s,
            "bound",
            format!("{}: {}", self.bound.by, self.bound.reason),
        );
        s
    }
}

fn order_name(o: Order) -> &'static str {
    match o {
        Order::Sequential => "sequential",
        Order::Random => "random",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_verdicts() {
        assert_eq!(bound(None, 5e6, 0.5, 1.0, None).by, "dut");
        assert_eq!(bound(None, 5e6, 0.0, 1.0, None).by, "generator");
        assert_eq!(bound(Some(10e6), 5e6, 0.0, 1.0, None).by, "generator");
        assert_eq!(bound(Some(10e6), 5e6, 0.2, 1.0, None).by, "dut");
        assert_eq!(bound(Some(1e6), 0.999e6, 0.0, 0.3, None).by, "none");
        assert_eq!(bound(None, 1e6, 0.0, 0.3, Some(4096)).by, "dut");
        assert_eq!(bound(None, 1e6, 0.0, 1.0, Some(4096)).by, "generator");
    }
}
