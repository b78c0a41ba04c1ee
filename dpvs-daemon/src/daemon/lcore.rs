//! The worker lcore loop: RX burst, steer, process, TX flush, housekeeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};

use super::shuttle::ToShuttle;
use crate::control::publish::Readers;
use dpvs_core::drop::DropReason;
use dpvs_core::engine::stats::{Stats, WorkerCounters};
use dpvs_core::engine::worker::{BURST, Command, Ctx, Event, Output, Worker, steer};
use dpvs_core::packet::Frame;
use dpvs_dpdk::{Eal, Mbuf, Mempool, RingConsumer, RingProducer, RxQueue, TxQueue, rdtsc};

/// The most connection-table entries a worker examines for expiry in one loop iteration.
const SWEEP_BUDGET: usize = 64;
/// The pace of the expiry sweep: the whole table about once per this many milliseconds (or
/// slower, when that would take more than [`SWEEP_BUDGET`] entries an iteration).
const SWEEP_PERIOD_MS: u64 = 1000;

/// Paces the expiry sweep by time rather than by loop iterations. A busy worker runs about
/// 100 iterations a millisecond; 64 entries each would walk a 1M-entry table six times a
/// second, and that walk (cache lines streamed through for nothing, mostly) is paid by the
/// packets of the same iteration. Connections expire at most one period late.
struct SweepPacer {
    last_tsc: u64,
    /// Entries owed, times `period_cycles`: the remainder carries over, so that slow
    /// iterations and fast ones add up to the same pace.
    owed: u128,
}

impl SweepPacer {
    fn new(now_tsc: u64) -> Self {
        SweepPacer {
            last_tsc: now_tsc,
            owed: 0,
        }
    }

    /// The entries to examine now, for a table of `capacity`, `cycles_per_ms` being the TSC
    /// rate.
    fn budget(&mut self, now_tsc: u64, capacity: usize, cycles_per_ms: u64) -> usize {
        let period = u128::from(cycles_per_ms.max(1)) * u128::from(SWEEP_PERIOD_MS);
        let elapsed = now_tsc.saturating_sub(self.last_tsc);
        self.last_tsc = now_tsc;
        self.owed += capacity as u128 * u128::from(elapsed);
        let due = self.owed / period;
        self.owed -= due * period;
        // Beyond the budget the sweep falls behind the pace rather than stall the loop.
        due.min(SWEEP_BUDGET as u128) as usize
    }
}

/// The RX queue a worker polls on one port.
pub(super) struct RxPort {
    pub port: u16,
    pub queue: RxQueue,
}

/// Per-port TX buffers of one worker; also its mbuf allocator.
pub(super) struct TxPorts {
    /// The way of frames for the kernel bridge (none without twins).
    to_kernel: Option<ToShuttle>,
    /// Scratch of `to_kernel` (a frame goes on the ring at once: the kernel's traffic is
    /// light, and a frame the ring refuses must go back to the worker, which counts it).
    one: Vec<Mbuf>,
    /// Indexed by DPDK port id; `None` for ports this worker does not send on.
    queues: Vec<Option<(TxQueue, Vec<Mbuf>)>>,
    pool: &'static Mempool,
    stats: Arc<Stats>,
    worker: usize,
}

impl TxPorts {
    pub(super) fn new(
        queues: Vec<(u16, TxQueue)>,
        to_kernel: Option<ToShuttle>,
        pool: &'static Mempool,
        (stats, worker): (Arc<Stats>, usize),
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
            to_kernel,
            one: Vec::with_capacity(1),
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
    pub(super) fn flush(&mut self) {
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

    fn to_kernel(&mut self, port: u16, mut f: Mbuf) -> Result<(), Mbuf> {
        let Some(shuttle) = &mut self.to_kernel else {
            return Err(f);
        };
        f.set_port(port);
        self.one.push(f);
        shuttle.send(&mut self.one);
        self.one.pop().map_or(Ok(()), Err)
    }
}

/// The engine's clock: milliseconds since one TSC reading, the same for every worker and the
/// control plane, so that the deadlines of persistence templates, which the workers share,
/// mean the same to all of them.
#[derive(Clone, Copy, Debug)]
pub(super) struct EngineClock {
    origin: u64,
    pub(super) cycles_per_ms: u64,
}

impl EngineClock {
    /// Starts now.
    pub(super) fn start(eal: &Eal) -> EngineClock {
        EngineClock {
            origin: rdtsc(),
            cycles_per_ms: (eal.tsc_hz() / 1000).max(1),
        }
    }

    /// Engine time at TSC reading `tsc`.
    #[inline]
    pub(super) fn ms_at(&self, tsc: u64) -> u64 {
        tsc.saturating_sub(self.origin) / self.cycles_per_ms
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.ms_at(rdtsc())
    }
}

/// Everything a worker lcore owns.
pub(super) struct Lcore {
    pub worker: Worker<Mbuf>,
    /// The kernel's frames to send out (none without twins).
    pub from_kernel: Option<RingConsumer>,
    /// The control plane's requests to this worker, served between bursts.
    pub commands: Receiver<Command>,
    /// Where the worker's events (neighbour learnings) go to the control plane.
    pub events: Sender<Event>,
    pub workers: u16,
    pub rx: Vec<RxPort>,
    pub tx: TxPorts,
    /// Rings to the other workers, indexed by worker id (`None` at our own index).
    pub to: Vec<Option<RingProducer>>,
    pub from: Vec<RingConsumer>,
    pub readers: Readers,
    pub stats: Arc<Stats>,
    pub stop: Arc<AtomicBool>,
    /// Counts the workers that entered their loop (the control socket waits for all).
    pub running: Arc<AtomicUsize>,
    pub clock: EngineClock,
}

impl Lcore {
    /// Runs until `stop` is set.
    pub(super) fn run(mut self) -> i32 {
        let me = self.worker.id();
        let w = usize::from(me);
        let mut rx_buf: Vec<Mbuf> = Vec::with_capacity(BURST);
        let mut mine: Vec<Mbuf> = Vec::with_capacity(BURST);
        let mut staged: Vec<Vec<Mbuf>> = (0..self.workers)
            .map(|_| Vec::with_capacity(BURST))
            .collect();
        let mut sweep = SweepPacer::new(rdtsc());
        self.running.fetch_add(1, Ordering::SeqCst);
        while !self.stop.load(Ordering::Relaxed) {
            let t0 = rdtsc();
            let now_ms = self.clock.ms_at(t0);
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
            if let Some(ring) = &mut self.from_kernel {
                pkts += send_from_kernel(ring, &mut rx_buf, &mut self.tx, counters);
            }
            self.tx.flush();
            // The iteration's start time is close enough for the pace: no extra TSC read.
            let budget = sweep.budget(t0, self.worker.conns().capacity(), self.clock.cycles_per_ms);
            self.worker.housekeeping(&ctx, budget, &mut self.tx);
            while let Ok(cmd) = self.commands.try_recv() {
                self.worker.serve(&ctx, cmd);
            }
            while let Some(e) = self.worker.poll_event() {
                // The control plane may be busy; a lost learning is repeated by the next ARP.
                let _ = self.events.try_send(e);
            }
            if pkts > 0 {
                counters.busy_cycles.add(rdtsc() - t0);
                counters.busy_pkts.add(pkts as u64);
            }
        }
        self.tx.flush();
        0
    }
}

/// Sends the kernel's frames waiting on `ring` out of their ports (each mbuf's port says
/// which); returns how many.
fn send_from_kernel(
    ring: &mut RingConsumer,
    buf: &mut Vec<Mbuf>,
    tx: &mut TxPorts,
    counters: &WorkerCounters,
) -> usize {
    let n = ring.dequeue_burst(buf, BURST);
    if n > 0 {
        counters.from_kernel.add(n as u64);
        for m in buf.drain(..) {
            tx.tx(m.port(), m);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_covers_the_table_once_a_period_at_any_iteration_rate() {
        let (capacity, cycles_per_ms) = (1_000_000, 2_000_000);
        for step in [997u64, 20_000, 120_000] {
            let mut p = SweepPacer::new(0);
            let (mut t, mut swept) = (0, 0);
            while t < SWEEP_PERIOD_MS * cycles_per_ms {
                t += step;
                swept += p.budget(t, capacity, cycles_per_ms);
            }
            // Whole table, give or take the last iteration's overshoot of the period.
            let slack = (capacity as u64 * step).div_ceil(SWEEP_PERIOD_MS * cycles_per_ms);
            assert!(
                (swept as u64).abs_diff(capacity as u64) <= slack,
                "{swept} at a step of {step}"
            );
        }
    }

    #[test]
    fn a_long_pause_is_capped_at_the_iteration_budget() {
        let mut p = SweepPacer::new(0);
        assert_eq!(p.budget(u64::MAX, 10_000_000, 2_000_000), SWEEP_BUDGET);
        assert_eq!(p.budget(u64::MAX, 10_000_000, 2_000_000), 0);
        let mut p = SweepPacer::new(1000);
        let back = p.budget(0, 10_000_000, 2_000_000);
        assert_eq!(back, 0, "a clock going back owes nothing");
    }
}
