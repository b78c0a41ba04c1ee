//! The counters the daemon reports: a service's or real server's traffic, each worker's
//! packets, connections and drops, and their totals.

use std::collections::BTreeMap;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

/// Traffic counters of a service or real server, summed over workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Add for Counters {
    type Output = Counters;
    /// Wrapping, because counters are free-running and summing must never panic.
    fn add(self, o: Counters) -> Counters {
        Counters {
            conns: self.conns.wrapping_add(o.conns),
            in_pkts: self.in_pkts.wrapping_add(o.in_pkts),
            out_pkts: self.out_pkts.wrapping_add(o.out_pkts),
            in_bytes: self.in_bytes.wrapping_add(o.in_bytes),
            out_bytes: self.out_bytes.wrapping_add(o.out_bytes),
        }
    }
}

impl AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        *self = *self + o;
    }
}
/// Counters of one worker lcore.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerStats {
    pub id: u16,
    pub lcore: u32,
    pub rx_pkts: u64,
    pub tx_pkts: u64,
    pub conns_active: u64,
    pub conns_created: u64,
    /// Packets handed to the kernel twin.
    pub kernel_pkts: u64,
    /// Packets received from other workers' steering rings.
    pub ring_in: u64,
    /// Packets handed to other workers because they own them.
    pub ring_out: u64,
    /// TSC cycles of loop iterations that carried packets, and the packets they carried
    /// (`busy_cycles / busy_pkts` is the worker's cost per packet, as testpmd's
    /// `--record-core-cycles`).
    #[serde(default)]
    pub busy_cycles: u64,
    #[serde(default)]
    pub busy_pkts: u64,
    /// Dropped packets by reason (the engine's drop reason names).
    #[serde(default)]
    pub drops: BTreeMap<String, u64>,
}

/// Sums over all workers.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatsTotals {
    pub rx_pkts: u64,
    pub tx_pkts: u64,
    pub conns_active: u64,
    pub conns_created: u64,
    pub kernel_pkts: u64,
    pub ring_in: u64,
    pub ring_out: u64,
    pub drops: u64,
}

/// The answer to [`Request::Stats`](super::Request::Stats).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatsInfo {
    pub workers: Vec<WorkerStats>,
    pub total: StatsTotals,
    /// Drops by reason, summed over workers.
    pub drops_total: BTreeMap<String, u64>,
    /// Mbufs of the packet pool currently allocated (in queues, rings, buffers, in flight).
    #[serde(default)]
    pub mbuf_in_use: u64,
    /// Size of the packet pool.
    #[serde(default)]
    pub mbuf_capacity: u64,
}

impl StatsInfo {
    /// Builds the answer from per-worker counters, computing the totals so that the daemon
    /// and every client agree on them.
    pub fn from_workers(workers: Vec<WorkerStats>) -> Self {
        let mut total = StatsTotals::default();
        let mut drops_total = BTreeMap::new();
        for w in &workers {
            total.rx_pkts = total.rx_pkts.wrapping_add(w.rx_pkts);
            total.tx_pkts = total.tx_pkts.wrapping_add(w.tx_pkts);
            total.conns_active = total.conns_active.wrapping_add(w.conns_active);
            total.conns_created = total.conns_created.wrapping_add(w.conns_created);
            total.kernel_pkts = total.kernel_pkts.wrapping_add(w.kernel_pkts);
            total.ring_in = total.ring_in.wrapping_add(w.ring_in);
            total.ring_out = total.ring_out.wrapping_add(w.ring_out);
            for (reason, n) in &w.drops {
                let sum: &mut u64 = drops_total.entry(reason.clone()).or_default();
                *sum = sum.wrapping_add(*n);
                total.drops = total.drops.wrapping_add(*n);
            }
        }
        StatsInfo {
            workers,
            total,
            drops_total,
            mbuf_in_use: 0,
            mbuf_capacity: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Response, ResponseEnvelope, encode_response};

    #[test]
    fn stats_line_is_pinned() {
        let worker = |id: u16, base: u64| {
            let mut w = WorkerStats {
                id,
                lcore: u32::from(id) + 1,
                rx_pkts: base + 1,
                tx_pkts: base + 2,
                conns_active: base + 3,
                conns_created: base + 4,
                kernel_pkts: base + 5,
                ring_in: base + 6,
                ring_out: base + 7,
                busy_cycles: base + 8,
                busy_pkts: base + 9,
                drops: BTreeMap::new(),
            };
            w.drops.insert("bad_csum".into(), base + 10);
            w.drops.insert("no_route".into(), base + 11);
            w
        };
        let mut s = StatsInfo::from_workers(vec![worker(0, 0), worker(1, 100)]);
        (s.mbuf_in_use, s.mbuf_capacity) = (12, 13);
        assert_eq!(
            encode_response(&ResponseEnvelope::new(Ok(Response::Stats(s)))),
            concat!(
                r#"{"version":1,"ok":{"type":"stats","data":{"workers":["#,
                r#"{"id":0,"lcore":1,"rx_pkts":1,"tx_pkts":2,"conns_active":3,"conns_created":4,"kernel_pkts":5,"ring_in":6,"ring_out":7,"busy_cycles":8,"busy_pkts":9,"drops":{"bad_csum":10,"no_route":11}},"#,
                r#"{"id":1,"lcore":2,"rx_pkts":101,"tx_pkts":102,"conns_active":103,"conns_created":104,"kernel_pkts":105,"ring_in":106,"ring_out":107,"busy_cycles":108,"busy_pkts":109,"drops":{"bad_csum":110,"no_route":111}}],"#,
                r#""total":{"rx_pkts":102,"tx_pkts":104,"conns_active":106,"conns_created":108,"kernel_pkts":110,"ring_in":112,"ring_out":114,"drops":242},"#,
                r#""drops_total":{"bad_csum":120,"no_route":122},"mbuf_in_use":12,"mbuf_capacity":13}}}"#,
            )
        );
    }

    #[test]
    fn stats_totals_are_sums() {
        let mut a = WorkerStats {
            id: 0,
            rx_pkts: 5,
            tx_pkts: 1,
            ..Default::default()
        };
        a.drops.insert("bad_csum".into(), 1);
        a.drops.insert("no_route".into(), 2);
        let mut b = WorkerStats {
            id: 1,
            rx_pkts: 7,
            conns_active: 3,
            ..Default::default()
        };
        b.drops.insert("no_route".into(), 4);
        let s = StatsInfo::from_workers(vec![a, b]);
        assert_eq!(s.total.rx_pkts, 12);
        assert_eq!(s.total.conns_active, 3);
        assert_eq!(s.total.drops, 7);
        assert_eq!(s.drops_total["no_route"], 6);
        assert_eq!(s.drops_total["bad_csum"], 1);
    }

    #[test]
    fn counters_add() {
        let a = Counters {
            conns: 1,
            in_pkts: 2,
            out_pkts: 3,
            in_bytes: 4,
            out_bytes: u64::MAX,
        };
        let mut b = a;
        b += a;
        assert_eq!(b.conns, 2);
        assert_eq!(b.out_bytes, u64::MAX - 1);
    }
}
