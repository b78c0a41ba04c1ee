//! The DPDK side: one port, one RX and one TX queue, one lcore (the main one) doing
//! everything: receive and check, send replies, build and send client packets at the target
//! rate. Nothing here allocates per packet: buffers come from the pool in bursts, client
//! frames are copies of a template, replies are built in the buffers they answer.

use dpvs_core::packet::ipv4::IpProto;
use std::time::{Duration, Instant};

use dpvs_core::packet::Frame;
use dpvs_dpdk::{BURST, Eal, Mbuf, Mempool, Port, PortStats, RxQueue, TxQueue, rdtsc};

use crate::engine::Engine;
use crate::probe::{F_MEASURED, OFF_FLAGS, Probe};
use crate::template::probe_off;

/// Mbufs in the generator's pool: RX ring, reply backlog, burst in hand, lcore cache.
const POOL_MBUFS: u32 = 16383;
/// Replies waiting for room in the TX queue, at most.
const REPLY_CAP: usize = 1024;
/// Descriptors per queue asked for.
const DESC: u16 = 1024;
/// After the TX queue refused packets, wait this many TSC cycles before trying again, doubling
/// up to `BACKOFF_MAX` while it keeps refusing: spinning on a full queue of a shared-memory
/// device (memif) bounces its ring's cache lines and slows the very device being measured.
const BACKOFF_MIN: u64 = 256;
const BACKOFF_MAX: u64 = 8192;

/// The port and queues the generator runs on.
pub struct Io {
    pub port: Port,
    rxq: RxQueue,
    txq: TxQueue,
    pool: &'static Mempool,
}

impl Io {
    /// Attaches, configures and starts the port `devargs`, then waits up to `link_timeout`
    /// for its link. A memif client whose server was not ready when it connected never comes
    /// up by itself, so the port is restarted every second until the link is up.
    pub fn open(eal: &Eal, devargs: &str, link_timeout: Duration) -> Result<Io, String> {
        let what = |e: &dyn std::fmt::Display| format!("port {devargs}: {e}");
        let pool = Mempool::create(eal, "pktgen_pool", POOL_MBUFS, 256, None)
            .map_err(|e| format!("mempool: {e}"))?;
        let mut port = Port::attach(eal, devargs).map_err(|e| what(&e))?;
        let t0 = Instant::now();
        loop {
            port.configure(1, 1, DESC, DESC, pool)
                .map_err(|e| what(&e))?;
            let rxq = port.rx_queue(0).map_err(|e| what(&e))?;
            let txq = port.tx_queue(0).map_err(|e| what(&e))?;
            // Some virtual devices cannot change promiscuity; frames to our MAC arrive anyway.
            let _ = port.promiscuous(true);
            // A memif client fails to start while its server is not listening: retry too.
            let started = port.start();
            let attempt = Instant::now();
            while started.is_ok() && !port.link_up() && attempt.elapsed() < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if started.is_ok() && port.link_up() {
                return Ok(Io {
                    port,
                    rxq,
                    txq,
                    pool,
                });
            }
            drop((rxq, txq));
            let _ = port.stop();
            if t0.elapsed() > link_timeout {
                let why = started
                    .err()
                    .map_or("link down".to_string(), |e| e.to_string());
                return Err(what(&format!(
                    "{why} after {link_timeout:?} (is the peer up?)"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The port's counters.
    pub fn stats(&self) -> PortStats {
        self.port.stats().unwrap_or_default()
    }
}

/// What the driver counted (cumulative).
#[derive(Clone, Copy, Debug, Default)]
pub struct TxCounters {
    /// Packets the TX queue accepted (offered to the device).
    pub sent: u64,
    /// Of those, built in the measured interval.
    pub sent_measured: u64,
    /// Packets the queue refused, summed over calls (each is retried: a measure of
    /// back-pressure, not of loss).
    pub refused: u64,
    /// Client packets the pool could not supply a buffer for.
    pub no_mbuf: u64,
    /// Loop iterations that skipped receiving because the reply backlog was full.
    pub rx_stalls: u64,
    /// TSC cycles of loop iterations that found nothing to do.
    pub idle_cycles: u64,
    /// TSC cycles spent in the loop.
    pub loop_cycles: u64,
}

/// How fast to build client packets.
#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// As fast as the TX queue takes them.
    Max,
    /// This many per second, from TSC `start` (a packet is due every `hz / pps` cycles).
    Rate { pps: f64, start: u64, built: u64 },
    /// None (draining).
    Off,
}

impl Pace {
    /// Packets due now (at most a burst).
    #[inline]
    fn due(&self, now: u64, hz: u64) -> usize {
        match *self {
            Pace::Max => BURST,
            Pace::Off => 0,
            Pace::Rate { pps, start, built } => {
                let should = (now.saturating_sub(start) as f64 / hz as f64 * pps) as u64;
                should.saturating_sub(built).min(BURST as u64) as usize
            }
        }
    }

    fn add(&mut self, n: usize) {
        if let Pace::Rate { built, .. } = self {
            *built += n as u64;
        }
    }
}

/// The loop's buffers and counters.
pub struct Driver {
    io: Io,
    hz: u64,
    rx: Vec<Mbuf>,
    /// Client packets built and not yet accepted by the queue (retried first).
    fresh: Vec<Mbuf>,
    fresh_measured: bool,
    replies: Vec<Mbuf>,
    probe_off: usize,
    /// No TX attempt before this TSC (see [`BACKOFF_MIN`]).
    tx_retry_at: u64,
    backoff: u64,
    /// New connections open at most at "max rate" ([`Engine::budget`]).
    conn_window: u64,
    pub tx: TxCounters,
}

impl Driver {
    /// A driver over `io`; `hz` is the TSC frequency; `conn_window` bounds the new
    /// connections open at once at "max rate".
    pub fn new(io: Io, hz: u64, proto: IpProto, conn_window: u64) -> Driver {
        Driver {
            io,
            hz,
            rx: Vec::with_capacity(BURST),
            fresh: Vec::with_capacity(BURST),
            fresh_measured: false,
            replies: Vec::with_capacity(REPLY_CAP),
            probe_off: probe_off(proto),
            tx_retry_at: 0,
            backoff: BACKOFF_MIN,
            conn_window,
            tx: TxCounters::default(),
        }
    }

    /// TSC ticks per second.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// The port's counters.
    pub fn port_stats(&self) -> PortStats {
        self.io.stats()
    }

    /// Runs the loop until TSC `until` or until `stop` says so (checked every 1024
    /// iterations), building client packets at `pace`.
    pub fn run(
        &mut self,
        eng: &mut Engine,
        pace: &mut Pace,
        until: u64,
        mut stop: impl FnMut(&Engine) -> bool,
    ) {
        let mut prev = rdtsc();
        let mut iter = 0u32;
        loop {
            let now = rdtsc();
            if now >= until {
                break;
            }
            iter = iter.wrapping_add(1);
            if iter.is_multiple_of(1024) && stop(eng) {
                break;
            }
            let busy = self.step(eng, pace, now);
            self.tx.loop_cycles += now - prev;
            if !busy {
                self.tx.idle_cycles += now - prev;
            }
            prev = now;
        }
    }

    /// One iteration; `false` when it found nothing to do.
    #[inline]
    fn step(&mut self, eng: &mut Engine, pace: &mut Pace, now: u64) -> bool {
        let mut busy = false;
        if self.replies.len() + BURST <= REPLY_CAP {
            let n = self.io.rxq.rx_burst(&mut self.rx);
            busy |= n > 0;
            for mut m in self.rx.drain(..) {
                if eng.on_rx(&mut m, now) {
                    self.replies.push(m);
                }
            }
        } else {
            self.tx.rx_stalls += 1;
        }
        if now < self.tx_retry_at {
            return busy;
        }
        let mut refused = false;
        if !self.replies.is_empty() {
            busy = true;
            refused |= self.send_replies();
        }
        // Replies first: a new client packet waits until every answer in hand is out.
        if self.fresh.is_empty() && self.replies.is_empty() {
            let mut due = pace.due(now, self.hz);
            if matches!(pace, Pace::Max) {
                due = due.min(eng.budget(now, self.conn_window, self.hz / 10));
            }
            if due > 0 {
                self.build(eng, due, now);
                pace.add(self.fresh.len());
            }
        }
        if !self.fresh.is_empty() && !refused {
            busy = true;
            refused |= self.send_fresh();
        }
        if refused {
            self.tx_retry_at = now + self.backoff;
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        } else {
            self.backoff = BACKOFF_MIN;
        }
        busy
    }

    fn build(&mut self, eng: &mut Engine, due: usize, now: u64) {
        if !self.io.pool.alloc_bulk(&mut self.fresh, due) {
            self.tx.no_mbuf += due as u64;
            return;
        }
        let len = eng.frame_len();
        let mut keep = 0;
        for i in 0..self.fresh.len() {
            let m = &mut self.fresh[i];
            if m.set_len(len) && eng.fill(m.data_mut(), now) {
                self.fresh.swap(keep, i);
                keep += 1;
            }
        }
        self.fresh.truncate(keep);
        self.fresh_measured = self.fresh.first().is_some_and(|m| self.measured(m));
    }

    fn measured(&self, m: &Mbuf) -> bool {
        let d = m.data();
        d.get(self.probe_off..)
            .and_then(Probe::read)
            .is_some_and(|p| p.measured())
    }

    /// Sends the client packets in hand; `true` when the queue refused some.
    fn send_fresh(&mut self) -> bool {
        let before = self.fresh.len();
        let k = self.io.txq.tx_burst(&mut self.fresh);
        self.tx.sent += k as u64;
        self.tx.refused += (before - k) as u64;
        if self.fresh_measured {
            self.tx.sent_measured += k as u64;
        }
        k < before
    }

    /// Sends the replies in hand; `true` when the queue refused some.
    fn send_replies(&mut self) -> bool {
        let before = self.replies.len();
        let measured_before = self.count_measured(&self.replies);
        let k = self.io.txq.tx_burst(&mut self.replies);
        self.tx.sent += k as u64;
        if k < before {
            self.tx.refused += (before - k) as u64;
            let left = self.count_measured(&self.replies);
            self.tx.sent_measured += (measured_before - left) as u64;
            true
        } else {
            self.tx.sent_measured += measured_before as u64;
            false
        }
    }

    fn count_measured(&self, v: &[Mbuf]) -> usize {
        let off = self.probe_off + OFF_FLAGS;
        v.iter()
            .filter(|m| {
                m.data()
                    .get(off)
                    .is_some_and(|f| f & F_MEASURED != 0 && self.measured(m))
            })
            .count()
    }

    /// Frees every buffer the driver holds (before the port goes).
    pub fn release(&mut self) {
        self.rx.clear();
        self.fresh.clear();
        self.replies.clear();
    }

    /// Gives the port back (for closing it before the EAL).
    pub fn into_io(mut self) -> Io {
        self.release();
        self.io
    }
}
