//! The counters the daemon reports: a service's or real server's traffic, each worker's
//! packets, connections and drops, and their totals.
//!
//! A set of counters is declared once, with `counter_set!`: its struct (the field names are
//! the JSON keys), its [`Field`] list (`FIELDS`: key, table column and value of each counter,
//! in order, from which `dpvs-ctl` draws its columns) and its sum (`+`, `+=`, `Sum`, wrapping)
//! all come from that one list, so a counter added there is summed, sent and shown.

use std::collections::BTreeMap;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Deref};

use serde::{Deserialize, Serialize};

/// One counter of a set: its JSON key, its column heading in `dpvs-ctl`'s tables, and how to
/// read it.
pub struct Field<T> {
    pub key: &'static str,
    pub column: &'static str,
    pub get: fn(&T) -> u64,
}

/// Declares a counter set: `pub struct Name { field => "COLUMN", ... }` becomes a struct of
/// `u64` fields, `Name::FIELDS` in declaration order, and a wrapping `Add`, `AddAssign` and
/// `Sum`.
macro_rules! counter_set {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $( $(#[$field_attr:meta])* $field:ident => $column:literal, )+
        }
    ) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
        pub struct $name {
            $( $(#[$field_attr])* pub $field: u64, )+
        }

        impl $name {
            /// Every counter in order: its JSON key, its table column, its value.
            pub const FIELDS: &'static [Field<$name>] = &[
                $( Field { key: stringify!($field), column: $column, get: |c| c.$field }, )+
            ];
        }

        impl Add for $name {
            type Output = $name;
            /// Wrapping, because counters are free-running and summing must never panic.
            fn add(self, o: $name) -> $name {
                $name { $( $field: self.$field.wrapping_add(o.$field), )+ }
            }
        }

        impl AddAssign for $name {
            fn add_assign(&mut self, o: $name) {
                *self = *self + o;
            }
        }

        impl Sum for $name {
            fn sum<I: Iterator<Item = $name>>(iter: I) -> $name {
                iter.fold($name::default(), Add::add)
            }
        }
    };
}

counter_set! {
    /// Traffic counters of a service or real server, summed over workers; the columns are
    /// those of `ipvsadm -ln --stats`.
    pub struct Counters {
        conns => "Conns",
        in_pkts => "InPkts",
        out_pkts => "OutPkts",
        in_bytes => "InBytes",
        out_bytes => "OutBytes",
    }
}

counter_set! {
    /// Rates of a service or real server, per second, smoothed as IPVS's estimator does
    /// (sampled every 2 s); the columns are those of `ipvsadm -ln --rate`.
    pub struct Rates {
        cps => "CPS",
        in_pps => "InPPS",
        out_pps => "OutPPS",
        in_bps => "InBPS",
        out_bps => "OutBPS",
    }
}

counter_set! {
    /// Packet and connection counters of one worker lcore, or (summed) of all of them; the
    /// columns are those of `dpvs-ctl stats`.
    pub struct WorkerCounters {
        rx_pkts => "RX_PKTS",
        tx_pkts => "TX_PKTS",
        /// Connections in the worker's table.
        conns_active => "CONNS",
        /// Connections the worker created since it started.
        conns_created => "CREATED",
        /// Packets handed to the kernel twin.
        kernel_pkts => "KERNEL",
        /// Packets received from other workers' steering rings.
        ring_in => "RING_IN",
        /// Packets handed to other workers because they own them.
        ring_out => "RING_OUT",
    }
}

/// Counters of one worker lcore.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkerStats {
    pub id: u16,
    pub lcore: u32,
    /// On the wire, each counter is a key of the worker's object.
    #[serde(flatten)]
    pub counters: WorkerCounters,
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

impl WorkerStats {
    /// This worker's share of [`StatsTotals`]: its counters, and its drops of every reason
    /// together.
    pub fn totals(&self) -> StatsTotals {
        StatsTotals {
            counters: self.counters,
            drops: self.drops.values().fold(0, |sum, n| sum.wrapping_add(*n)),
        }
    }
}

/// Sums over all workers: their counters, and their drops of every reason together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatsTotals {
    /// On the wire, each counter is a key of the totals' object.
    #[serde(flatten)]
    pub counters: WorkerCounters,
    pub drops: u64,
}

/// The totals read as the counters they sum (`total.rx_pkts`), as when those were fields of
/// their own.
impl Deref for StatsTotals {
    type Target = WorkerCounters;
    fn deref(&self) -> &WorkerCounters {
        &self.counters
    }
}

impl Add for StatsTotals {
    type Output = StatsTotals;
    /// Wrapping, as [`WorkerCounters`]' sum.
    fn add(self, o: StatsTotals) -> StatsTotals {
        StatsTotals {
            counters: self.counters + o.counters,
            drops: self.drops.wrapping_add(o.drops),
        }
    }
}

impl Sum for StatsTotals {
    fn sum<I: Iterator<Item = StatsTotals>>(iter: I) -> StatsTotals {
        iter.fold(StatsTotals::default(), Add::add)
    }
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
    /// The kernel twins' counters (as `kni list` gives them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kni: Vec<super::TwinInfo>,
    /// Persistence templates, once a service is persistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<TemplateStats>,
}

/// The persistence template table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TemplateStats {
    pub capacity: u64,
    /// Templates holding a client now.
    pub live: u64,
    /// New connections that found no free entry (scheduled without persistence).
    pub full: u64,
}

impl StatsInfo {
    /// Builds the answer from per-worker counters, computing the totals so that the daemon
    /// and every client agree on them.
    pub fn from_workers(workers: Vec<WorkerStats>) -> Self {
        let mut drops_total: BTreeMap<String, u64> = BTreeMap::new();
        for (reason, n) in workers.iter().flat_map(|w| &w.drops) {
            let sum = drops_total.entry(reason.clone()).or_default();
            *sum = sum.wrapping_add(*n);
        }
        StatsInfo {
            total: workers.iter().map(WorkerStats::totals).sum(),
            workers,
            drops_total,
            mbuf_in_use: 0,
            mbuf_capacity: 0,
            kni: Vec::new(),
            templates: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Response, ResponseEnvelope, encode_response};

    #[test]
    fn stats_line_is_pinned() {
        let mut s = crate::samples::numbered_stats();
        (s.mbuf_in_use, s.mbuf_capacity) = (12, 13);
        assert_eq!(
            encode_response(&ResponseEnvelope::new(Ok(Response::Stats(s)))),
            concat!(
                r#"{"version":1,"ok":{"type":"stats","data":{"workers":["#,
                r#"{"id":0,"lcore":1,"rx_pkts":1,"tx_pkts":2,"conns_active":3,"conns_created":4,"kernel_pkts":5,"ring_in":6,"ring_out":7,"busy_cycles":810,"busy_pkts":9,"drops":{"bad_csum":10,"no_route":11}},"#,
                r#"{"id":1,"lcore":2,"rx_pkts":101,"tx_pkts":102,"conns_active":103,"conns_created":104,"kernel_pkts":105,"ring_in":106,"ring_out":107,"busy_cycles":9810,"busy_pkts":109,"drops":{"bad_csum":110,"no_route":111}}],"#,
                r#""total":{"rx_pkts":102,"tx_pkts":104,"conns_active":106,"conns_created":108,"kernel_pkts":110,"ring_in":112,"ring_out":114,"drops":242},"#,
                r#""drops_total":{"bad_csum":120,"no_route":122},"mbuf_in_use":12,"mbuf_capacity":13}}}"#,
            )
        );
    }

    /// A worker with these counters and drops.
    fn worker(counters: WorkerCounters, drops: &[(&str, u64)]) -> WorkerStats {
        WorkerStats {
            counters,
            drops: drops.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn stats_totals_are_sums() {
        let a = worker(
            WorkerCounters {
                rx_pkts: 5,
                tx_pkts: 1,
                ..Default::default()
            },
            &[("bad_csum", 1), ("no_route", 2)],
        );
        let b = worker(
            WorkerCounters {
                rx_pkts: 7,
                conns_active: 3,
                ..Default::default()
            },
            &[("no_route", 4)],
        );
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

    /// `FIELDS` is the serialized struct: the same keys in the same order, each reading the
    /// value under its key.
    fn fields_are_the_json<T>(fields: &[Field<T>])
    where
        T: Serialize + for<'de> Deserialize<'de> + Default,
    {
        let keys: Vec<String> = fields.iter().map(|f| format!("\"{}\":0", f.key)).collect();
        let zero = serde_json::to_string(&T::default()).unwrap();
        assert_eq!(zero, format!("{{{}}}", keys.join(",")));
        let numbered: serde_json::Map<String, serde_json::Value> = (1..)
            .zip(fields)
            .map(|(n, f)| (f.key.to_string(), n.into()))
            .collect();
        let value: T = serde_json::from_value(numbered.into()).unwrap();
        for (n, f) in (1..).zip(fields) {
            assert_eq!((f.get)(&value), n, "{}", f.key);
        }
    }

    #[test]
    fn field_lists_are_the_wire_keys() {
        fields_are_the_json(Counters::FIELDS);
        fields_are_the_json(WorkerCounters::FIELDS);
    }

    #[test]
    fn worker_totals_sum_with_add() {
        let rx = |rx_pkts| WorkerCounters {
            rx_pkts,
            ..Default::default()
        };
        let a = worker(rx(u64::MAX), &[("no_route", 2), ("bad_csum", 1)]);
        let b = worker(rx(3), &[("no_route", 4)]);
        assert_eq!(a.totals().drops, 3);
        let sum = a.totals() + b.totals();
        assert_eq!((sum.rx_pkts, sum.drops), (2, 7), "wrapping");
        assert_eq!(StatsInfo::from_workers(vec![a, b]).total, sum);
        let mut c = WorkerCounters::default();
        c += WorkerCounters {
            ring_in: 5,
            ..Default::default()
        };
        assert_eq!([c, c].into_iter().sum::<WorkerCounters>().ring_in, 10);
    }
}
