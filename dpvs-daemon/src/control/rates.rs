//! Rate estimates of services and real servers, as IPVS's estimator makes them: every
//! [`INTERVAL`] the counters' growth over the interval, per second, is folded into a smoothed
//! average (`avg += (rate − avg) / 4`), so a rate follows a change within some intervals
//! without jumping at every burst. Runs on the control plane's event thread; the workers only
//! count.

use std::time::{Duration, Instant};

use dpvs_api::Rates;
use dpvs_core::engine::stats::{SlotTotals, Stats};
use hashbrown::HashMap;

/// How often the counters are sampled (IPVS: 2 s).
pub const INTERVAL: Duration = Duration::from_secs(2);

/// A slot's last sample and smoothed rates (per second, as `f64` so small rates smooth too).
#[derive(Clone, Copy, Debug, Default)]
struct Estimate {
    last: SlotTotals,
    avg: [f64; 5],
}

/// The estimates of every counter slot in use.
#[derive(Debug, Default)]
pub struct RateEstimator {
    sampled: Option<Instant>,
    slots: HashMap<u32, Estimate>,
}

impl RateEstimator {
    /// Samples `slots` if an interval has passed since the last sample; forgets slots not
    /// listed (deleted services and real servers).
    pub fn tick(&mut self, now: Instant, slots: impl Iterator<Item = u32>, stats: &Stats) {
        let secs = match self.sampled {
            Some(t) if now.duration_since(t) < INTERVAL => return,
            Some(t) => now.duration_since(t).as_secs_f64(),
            None => 0.0,
        };
        self.sampled = Some(now);
        let mut next = HashMap::with_capacity(self.slots.len());
        for slot in slots {
            let t = stats.slot_totals(slot);
            let e = match self.slots.get(&slot) {
                Some(old) if secs > 0.0 => old.fold(t, secs),
                _ => Estimate {
                    last: t,
                    avg: [0.0; 5],
                },
            };
            next.insert(slot, e);
        }
        self.slots = next;
    }

    /// The smoothed rates of `slot` (zero until two samples were taken).
    pub fn get(&self, slot: u32) -> Rates {
        let Some(e) = self.slots.get(&slot) else {
            return Rates::default();
        };
        let r = |i: usize| e.avg[i].round() as u64;
        Rates {
            cps: r(0),
            in_pps: r(1),
            out_pps: r(2),
            in_bps: r(3),
            out_bps: r(4),
        }
    }
}

impl Estimate {
    /// This estimate moved on by a sample `now` taken `secs` after the last.
    fn fold(&self, now: SlotTotals, secs: f64) -> Estimate {
        let d = |a: u64, b: u64| a.wrapping_sub(b) as f64 / secs;
        let l = self.last;
        let rates = [
            d(now.conns, l.conns),
            d(now.in_pkts, l.in_pkts),
            d(now.out_pkts, l.out_pkts),
            d(now.in_bytes, l.in_bytes),
            d(now.out_bytes, l.out_bytes),
        ];
        let mut avg = self.avg;
        for (a, r) in avg.iter_mut().zip(rates) {
            *a += (r - *a) / 4.0;
        }
        Estimate { last: now, avg }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_the_counters_smoothly() {
        let stats = Stats::new(2, 4);
        let mut est = RateEstimator::default();
        let t0 = Instant::now();
        est.tick(t0, [1].into_iter(), &stats);
        assert_eq!(est.get(1), Rates::default());
        // 200 connections and 2,000 packets in 2 s, split over the workers.
        let c = stats.slot(0, 1).unwrap();
        c.conns.add(150);
        c.in_pkts.add(2_000);
        stats.slot(1, 1).unwrap().conns.add(50);
        est.tick(t0 + Duration::from_secs(1), [1].into_iter(), &stats);
        assert_eq!(est.get(1), Rates::default(), "not an interval yet");
        est.tick(t0 + INTERVAL, [1].into_iter(), &stats);
        let r = est.get(1);
        assert_eq!(
            (r.cps, r.in_pps),
            (25, 250),
            "a quarter of 100/s and 1000/s"
        );
        for k in 2..40 {
            c.conns.add(200);
            est.tick(t0 + INTERVAL * k, [1].into_iter(), &stats);
        }
        assert_eq!(est.get(1).cps, 100, "converges to the steady rate");
        est.tick(t0 + INTERVAL * 41, [2].into_iter(), &stats);
        assert_eq!(est.get(1), Rates::default(), "forgotten with its slot");
    }
}
