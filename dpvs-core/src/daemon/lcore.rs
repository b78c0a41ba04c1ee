//! The worker lcore loop: RX burst, steer, process, TX flush, housekeeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::control::publish::Readers;
use crate::dpdk::{Mbuf, Mempool, RingConsumer, RingProducer, RxQueue, TxQueue, rdtsc};
use crate::drop::DropReason;
use crate::engine::stats::Stats;
use crate::engine::worker::{Ctx, Output, Worker, steer};
use crate::packet::Frame;

/// Packets per RX burst and per TX flush.
pub const BURST: usize = 32;
/// Connection-table entries a worker examines for expiry per loop iteration.
const SWEEP_BUDGET: usize = 64;

/// The RX queue a worker polls on one port.
pub struct RxPort {
    pub port: u16,
    pub queue: RxQueue,
}

/// Per-port TX buffers of one worker; also its mbuf allocator.
pub struct TxPorts {
    /// Indexed by DPDK port id; `None` for ports this worker does not send on.
    queues: Vec<Option<(TxQueue, Vec<Mbuf>)>>,
    pool: &'static Mempool,
    stats: Arc<Stats>,
    worker: usize,
}

impl TxPorts {
    pub fn new(
        queues: Vec<(u16, TxQueue)>,
        pool: &'static Mempool,
        stats: Arc<Stats>,
        worker: usize,
    ) -> Self {
        let n = queues
            .iter()
            .map(|(p, _)| usize::from(*p) + 1)
            .max()
            .unwrap_or(0);
        let mut v: Vec<Option<(TxQueue, Vec<Mbuf>)>> = (0..n).map(|_| None).collect();
        for (p, q) in queues {
            v[usize::from(p)] = Some((q, Vec::with_capacity(BURST)));
        }
        TxPorts {
            queues: v,
            pool,
            stats,
            worker,
        }
    }

    fn flush_port(&mut self, port: usize) {
        let Some(Some((q, buf))) = self.queues.get_mut(port) else {
            return;
        };
        if buf.is_empty() {
            return;
        }
        let sent = q.tx_burst(buf);
        let c = self.stats.worker(self.worker);
        c.tx_pkts.add(sent as u64);
        if !buf.is_empty() {
            c.drops[DropReason::TxFull.index()].add(buf.len() as u64);
            buf.clear();
        }
    }

    /// Sends everything buffered.
    pub fn flush(&mut self) {
        for p in 0..self.queues.len() {
            self.flush_port(p);
        }
    }
}

impl Output<Mbuf> for TxPorts {
    // Every forwarded packet calls it: always inlined (the flush is out of line).
    #[inline(always)]
    fn tx(&mut self, port: u16, f: Mbuf) {
        let p = usize::from(port);
        match self.queues.get_mut(p) {
            Some(Some((_, buf))) => {
                buf.push(f);
                if buf.len() == BURST {
                    self.flush_port(p);
                }
            }
            _ => self.stats.worker(self.worker).drop(DropReason::NoRoute),
        }
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }
}

/// Everything a worker lcore owns.
pub struct Lcore {
    pub worker: Worker<Mbuf>,
    pub workers: u16,
    pub rx: Vec<RxPort>,
    pub tx: TxPorts,
    /// Rings to the other workers, indexed by worker id (`None` at our own index).
    pub to: Vec<Option<RingProducer>>,
    pub from: Vec<RingConsumer>,
    pub readers: Readers,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
    /// TSC cycles per millisecond, for the engine clock.
    pub cycles_per_ms: u64,
}

impl Lcore {
    /// Runs until `stop` is set.
    pub fn run(mut self) -> i32 {
        let me = self.worker.id();
        let w = usize::from(me);
        let mut rx_buf: Vec<Mbuf> = Vec::with_capacity(BURST);
        let mut mine: Vec<Mbuf> = Vec::with_capacity(BURST);
        let mut staged: Vec<Vec<Mbuf>> = (0..self.workers)
            .map(|_| Vec::with_capacity(BURST))
            .collect();
        let start = rdtsc();
        while !self.stop.load(Ordering::Relaxed) {
            let t0 = rdtsc();
            let now_ms = (t0 - start) / self.cycles_per_ms.max(1);
            let Readers { snapshot, neigh } = &mut self.readers;
            let ctx = Ctx {
                snap: snapshot.load(),
                neigh: neigh.load(),
                now_ms,
            };
            let counters = self.stats.worker(w);
            let mut pkts = 0usize;
            for rx in &mut self.rx {
                let n = rx.queue.rx_burst(&mut rx_buf);
                if n == 0 {
                    continue;
                }
                pkts += n;
                counters.rx_pkts.add(n as u64);
                for m in rx_buf.drain(..) {
                    if m.is_chained() {
                        counters.drop(DropReason::Truncated);
                        continue;
                    }
                    match steer(ctx.snap, self.workers, m.data()) {
                        Some(o) if o != me => staged[usize::from(o)].push(m),
                        _ => mine.push(m),
                    }
                }
                self.worker
                    .process_burst(&ctx, rx.port, &mut mine, &mut self.tx);
            }
            for (o, batch) in staged.iter_mut().enumerate() {
                if batch.is_empty() {
                    continue;
                }
                let n = batch.len();
                if let Some(Some(ring)) = self.to.get_mut(o) {
                    ring.enqueue_burst(batch);
                }
                counters.ring_out.add((n - batch.len()) as u64);
                counters.drops[DropReason::RingFull.index()].add(batch.len() as u64);
                batch.clear();
            }
            for ring in &mut self.from {
                let n = ring.dequeue_burst(&mut rx_buf, BURST);
                if n == 0 {
                    continue;
                }
                pkts += n;
                counters.ring_in.add(n as u64);
                // Bursts of consecutive packets from one port, so their lookups overlap too.
                for m in rx_buf.drain(..) {
                    if mine.last().is_some_and(|l| l.port() != m.port()) {
                        let port = mine[0].port();
                        self.worker
                            .process_burst(&ctx, port, &mut mine, &mut self.tx);
                    }
                    mine.push(m);
                }
                if let Some(port) = mine.first().map(Mbuf::port) {
                    self.worker
                        .process_burst(&ctx, port, &mut mine, &mut self.tx);
                }
            }
            self.tx.flush();
            self.worker.housekeeping(&ctx, SWEEP_BUDGET, &mut self.tx);
            if pkts > 0 {
                counters.busy_cycles.add(rdtsc() - t0);
                counters.busy_pkts.add(pkts as u64);
            }
        }
        self.tx.flush();
        0
    }
}
