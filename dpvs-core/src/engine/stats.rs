//! Counters. Each worker writes only its own cache-padded cells (a relaxed load and store, no
//! locked instruction); readers on the control thread sum the cells of all workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

use crate::drop::DropReason;

/// A counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this (it is not an atomic read-modify-write).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    /// Subtracts `n` (gauges).
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(n), Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
    /// Resets to zero; only when no worker can write it (control plane, slot reuse).
    pub fn reset(&self) {
        self.0.store(0, Relaxed);
    }
}

/// What one worker counts.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub rx_pkts: Counter,
    pub tx_pkts: Counter,
    /// Frames handed to a port's kernel twin (not for the data plane, or ARP copies).
    pub to_kernel: Counter,
    /// Frames from a kernel twin this worker transmitted on the twin's port.
    pub from_kernel: Counter,
    /// Packets handed to the owning worker over a ring.
    pub ring_out: Counter,
    /// Packets received from other workers' rings.
    pub ring_in: Counter,
    pub conns_created: Counter,
    /// New connections of a persistent service that found no free template entry (scheduled
    /// without persistence).
    pub templates_full: Counter,
    /// Gauge: connections in this worker's table.
    pub conns_active: Counter,
    /// TSC cycles of loop iterations that carried packets, and the packets they carried.
    pub busy_cycles: Counter,
    pub busy_pkts: Counter,
    pub drops: [Counter; DropReason::COUNT],
}

impl WorkerCounters {
    #[inline]
    pub fn drop(&self, r: DropReason) {
        self.drops[r.index()].add(1);
    }
}

/// Counters of one service or one real server, per worker.
#[derive(Debug, Default)]
pub struct SlotCounters {
    pub conns: Counter,
    pub in_pkts: Counter,
    pub out_pkts: Counter,
    pub in_bytes: Counter,
    pub out_bytes: Counter,
    /// Gauges (ipvsadm's ActiveConn / InActConn).
    pub active: Counter,
    pub inactive: Counter,
}

/// Sums of [`SlotCounters`] over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotTotals {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub active: u64,
    pub inactive: u64,
}

/// All counters, allocated once at start-up: per-worker counters plus a fixed number of
/// slots that the control plane hands to services and real servers.
pub struct Stats {
    workers: Box<[CachePadded<WorkerCounters>]>,
    slots: usize,
    /// `[worker][slot]`: each worker's cells are contiguous, and a worker holds its own (see
    /// [`Stats::worker_slots`]), so that a per-packet count is one bounds check and an add.
    cells: Box<[Arc<[CachePadded<SlotCounters>]>]>,
}

impl Stats {
    pub fn new(workers: usize, slots: usize) -> Stats {
        Stats {
            workers: (0..workers)
                .map(|_| CachePadded::new(WorkerCounters::default()))
                .collect(),
            slots,
            cells: (0..workers)
                .map(|_| {
                    (0..slots)
                        .map(|_| CachePadded::new(SlotCounters::default()))
                        .collect()
                })
                .collect(),
        }
    }

    pub fn worker(&self, w: usize) -> &WorkerCounters {
        &self.workers[w]
    }

    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The cell of `slot` that worker `w` writes; `None` for a slot out of range.
    #[inline]
    pub fn slot(&self, w: usize, slot: u32) -> Option<&SlotCounters> {
        self.cells.get(w)?.get(slot as usize).map(|c| &**c)
    }

    /// The cells worker `w` writes, by slot (none for a worker out of range).
    pub fn worker_slots(&self, w: usize) -> Arc<[CachePadded<SlotCounters>]> {
        self.cells.get(w).cloned().unwrap_or_else(|| Arc::new([]))
    }

    /// Sum of a slot over all workers.
    pub fn slot_totals(&self, slot: u32) -> SlotTotals {
        let mut t = SlotTotals::default();
        for w in 0..self.workers.len() {
            if let Some(c) = self.slot(w, slot) {
                t.conns += c.conns.get();
                t.in_pkts += c.in_pkts.get();
                t.out_pkts += c.out_pkts.get();
                t.in_bytes += c.in_bytes.get();
                t.out_bytes += c.out_bytes.get();
                t.active = t.active.wrapping_add(c.active.get());
                t.inactive = t.inactive.wrapping_add(c.inactive.get());
            }
        }
        t
    }

    /// Zeroes a slot before it is handed to a new service or real server.
    pub fn reset_slot(&self, slot: u32) {
        for w in 0..self.workers.len() {
            if let Some(c) = self.slot(w, slot) {
                for k in [
                    &c.conns,
                    &c.in_pkts,
                    &c.out_pkts,
                    &c.in_bytes,
                    &c.out_bytes,
                    &c.active,
                    &c.inactive,
                ] {
                    k.reset();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_sum_over_workers_and_reset() {
        let s = Stats::new(2, 4);
        s.slot(0, 3).unwrap().in_pkts.add(5);
        s.slot(1, 3).unwrap().in_pkts.add(7);
        s.slot(1, 3).unwrap().active.add(1);
        assert_eq!(s.slot_totals(3).in_pkts, 12);
        assert_eq!(s.slot_totals(3).active, 1);
        assert!(s.slot(0, 4).is_none());
        s.reset_slot(3);
        assert_eq!(s.slot_totals(3), SlotTotals::default());
    }
}
