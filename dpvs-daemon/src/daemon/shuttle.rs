//! The kernel bridge's packet shuttle: moves frames between the workers and the ports' kernel
//! twins, on the main lcore, off the fast path.
//!
//! Workers never touch a twin: a frame for the kernel goes on the worker's bounded ring to the
//! shuttle (its mbuf's port saying which port it came in on), and the kernel's frames come back
//! to a worker on another ring (the mbuf's port saying where they go out), since only workers
//! own TX queues of the ports. A full ring or queue is a counted drop on either side: the
//! kernel can never slow a worker down, and a worker never waits for the kernel.
//!
//! The loop sleeps when there is nothing to move, from 20 µs up to 1 ms as the quiet lasts. A
//! worker that queues a frame for the kernel wakes it at once ([`ToShuttle`]: an atomic swap,
//! and a futex wake only while the shuttle sleeps), so the sleep bounds only how long the
//! kernel's own frames wait after a quiet spell; an idle bridge costs a wake-up a millisecond
//! (a few microseconds of CPU each) on the main lcore's CPU, which the bench shares with a
//! worker (`bench/kni.sh` and `bench/run.sh`'s `-kni` runs measure both sides of that trade).

use std::thread::Thread;
use std::time::{Duration, Instant};

use dpvs_core::engine::worker::BURST;
use dpvs_dpdk::{Mbuf, RingConsumer, RingProducer};

use super::twin::Twin;
use crate::control::twins::TwinDrop;

/// Ethernet header, and the most a VLAN tag adds to the frame beyond the MTU.
const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
/// How often the ports' link states are read again.
const LINK_CHECK: Duration = Duration::from_millis(100);
const IDLE_MIN: Duration = Duration::from_micros(20);
const IDLE_MAX: Duration = Duration::from_millis(1);

/// A worker's way to the kernel: its ring to the shuttle, and the shuttle's thread to wake.
pub(super) struct ToShuttle {
    ring: RingProducer,
    shuttle: Thread,
}

impl ToShuttle {
    /// `ring` to the shuttle, which runs on the calling thread (the main lcore).
    pub(super) fn new(ring: RingProducer) -> ToShuttle {
        ToShuttle {
            ring,
            shuttle: std::thread::current(),
        }
    }

    /// Queues the frames of `frames` the ring takes (those it refuses stay) and wakes the
    /// shuttle: only frames for the kernel come here, never the data plane's.
    pub(super) fn send(&mut self, frames: &mut Vec<Mbuf>) {
        if self.ring.enqueue_burst(frames) > 0 {
            self.shuttle.unpark();
        }
    }
}

/// The shuttle and everything it moves frames through.
pub(super) struct Shuttle {
    twins: Vec<Twin>,
    /// Per twin: the largest frame its port sends, and whether the port's link is up.
    max_frame: Vec<usize>,
    link_up: Vec<bool>,
    links_read: Instant,
    /// Per worker: its frames for the kernel, and the kernel's frames for it to send.
    from_workers: Vec<RingConsumer>,
    to_workers: Vec<RingProducer>,
    buf: Vec<Mbuf>,
    /// Frames for each twin, gathered from all workers before one TX burst each.
    for_twin: Vec<Vec<Mbuf>>,
    /// The worker the next burst of the kernel's frames goes to (they take turns).
    next_worker: usize,
    idle: Duration,
}

impl Shuttle {
    /// A shuttle for `twins` (each with its port's MTU), joined to the workers by
    /// `from_workers` and `to_workers` (one ring each way per worker).
    pub(super) fn new(
        twins: Vec<(Twin, u16)>,
        from_workers: Vec<RingConsumer>,
        to_workers: Vec<RingProducer>,
    ) -> Shuttle {
        let max_frame = twins
            .iter()
            .map(|(_, mtu)| usize::from(*mtu) + ETH_HLEN + VLAN_HLEN)
            .collect();
        let twins: Vec<Twin> = twins.into_iter().map(|(t, _)| t).collect();
        let n = twins.len();
        Shuttle {
            link_up: twins.iter().map(|t| t.link.is_up()).collect(),
            twins,
            max_frame,
            links_read: Instant::now(),
            from_workers,
            to_workers,
            buf: Vec::with_capacity(BURST),
            for_twin: (0..n).map(|_| Vec::with_capacity(BURST)).collect(),
            next_worker: 0,
            idle: IDLE_MIN,
        }
    }

    /// Moves what there is to move both ways, then sleeps if that was nothing.
    pub(super) fn run_once(&mut self) {
        let moved = self.toward_kernel() + self.out_of_kernel();
        if moved > 0 {
            self.idle = IDLE_MIN;
            return;
        }
        // A worker's frame for the kernel unparks it early (`ToShuttle::send`).
        std::thread::park_timeout(self.idle);
        self.idle = (self.idle * 2).min(IDLE_MAX);
    }

    /// Workers' frames for the kernel: each goes to the twin of the port it came in on.
    fn toward_kernel(&mut self) -> usize {
        let mut moved = 0;
        for ring in &mut self.from_workers {
            while ring.dequeue_burst(&mut self.buf, BURST) > 0 {
                moved += self.buf.len();
                for m in self.buf.drain(..) {
                    // A frame for a port without a twin cannot be queued by a worker; were it
                    // ever, it is freed here.
                    if let Some(i) = self.twins.iter().position(|t| t.phys == m.port()) {
                        self.for_twin[i].push(m);
                    }
                }
                for (t, frames) in self.twins.iter_mut().zip(&mut self.for_twin) {
                    send_to_kernel(t, frames);
                }
            }
        }
        moved
    }

    /// The kernel's frames: checked, then handed to a worker to go out of the twin's port.
    fn out_of_kernel(&mut self) -> usize {
        if self.links_read.elapsed() >= LINK_CHECK {
            self.link_up = self.twins.iter().map(|t| t.link.is_up()).collect();
            self.links_read = Instant::now();
        }
        let mut moved = 0;
        for (i, t) in self.twins.iter_mut().enumerate() {
            let n = t.rx.rx_burst(&mut self.buf);
            if n == 0 {
                continue;
            }
            moved += n;
            let c = &t.counters;
            self.buf.retain_mut(|m| {
                let why = if m.is_chained() || m.len() < ETH_HLEN || m.len() > self.max_frame[i] {
                    TwinDrop::Malformed
                } else if !self.link_up[i] {
                    TwinDrop::PortDown
                } else {
                    c.from_kernel_pkts.add(1);
                    c.from_kernel_bytes.add(m.len() as u64);
                    m.set_port(t.phys);
                    return true;
                };
                c.count_drop(why, 1);
                false
            });
            if self.buf.is_empty() {
                continue;
            }
            let w = self.next_worker % self.to_workers.len().max(1);
            self.next_worker = w + 1;
            if let Some(ring) = self.to_workers.get_mut(w) {
                ring.enqueue_burst(&mut self.buf);
            }
            let refused = self.buf.len() as u64;
            c.from_kernel_pkts.sub(refused);
            c.count_drop(TwinDrop::RingFull, refused);
            self.buf.clear();
        }
        moved
    }
}

/// Sends `frames` to the kernel through `t`; what its queue refuses is counted and freed.
fn send_to_kernel(t: &mut Twin, frames: &mut Vec<Mbuf>) {
    if frames.is_empty() {
        return;
    }
    let bytes: usize = frames.iter().map(Mbuf::len).sum();
    let n = frames.len();
    let c = &t.counters;
    let sent = t.tx.tx_burst(frames);
    c.to_kernel_pkts.add(sent as u64);
    if sent == n {
        c.to_kernel_bytes.add(bytes as u64);
    } else {
        let unsent: usize = frames.iter().map(Mbuf::len).sum();
        c.to_kernel_bytes.add((bytes - unsent) as u64);
        c.count_drop(TwinDrop::KernelBusy, frames.len() as u64);
        frames.clear();
    }
}
