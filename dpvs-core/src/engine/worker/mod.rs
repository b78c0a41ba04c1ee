//! What a worker does to each packet it owns. Generic over [`Frame`], so the same code runs on
//! DPDK mbufs in the daemon and on [`crate::packet::VecFrame`] in tests, fuzzing and benches.
//! Nothing here allocates, locks, logs or makes a syscall per packet, and nothing reads a
//! clock or draws randomness: the caller gives the time ([`Ctx::now_ms`]) and the seed.
//!
//! A packet's way through the worker, by module:
//! - this module: the entry points ([`Worker::process_burst`], [`Worker::process`],
//!   [`Worker::housekeeping`]) and the general path's dispatch after the full parse;
//! - [`fast_path`]: the straight-line classification of a burst, and the forwarding of a
//!   packet of an established connection from the connection alone;
//! - [`local`]: ARP and ICMP echo for the balancer's own addresses;
//! - [`icmp`]: ICMP errors about connections, translated for the connection's other end;
//! - [`conns`]: connection life: lookup, new connections (scheduler, local address and port),
//!   the TCP state and rewrite of each packet, the RST answers, and the ways a connection
//!   ends (see there);
//! - [`direct`]: the modes whose replies bypass the balancer (DR, TUN);
//! - [`xmit`]: next hop and transmit: the route and neighbour lookups behind the per-worker
//!   next-hop cache, packets parked until ARP resolves their next hop;
//! - [`commands`]: the control plane's requests about this worker's connections.
//!
//! Which worker a packet goes to in the first place is [`crate::engine::steer`]'s decision.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use hashbrown::HashMap;

use crate::drop::DropReason;
use crate::engine::conn::{Bucket, ConnTable};
use crate::engine::hop::HopCache;
use crate::engine::laddr::{DEFAULT_RANGE, PortPool};
use crate::engine::neigh::{NeighTable, PendingQueue};
use crate::engine::snapshot::{PortConf, Snapshot};
use crate::engine::stats::{SlotCounters, Stats, WorkerCounters};
use crate::packet::Frame;
use crate::packet::ether::{self, MacAddr};
use crate::packet::parse::{self, L3, Packet};

mod choose;
mod commands;
mod conns;
mod direct;
mod ending;
mod fast_path;
mod icmp;
mod load;
mod local;
mod open;
mod xmit;

pub use crate::engine::steer::{client_owner, owner, steer};
pub use commands::{Command, ConnView};
pub use conns::MAX_TIMEOUT_S;
pub use dpvs_dpdk::BURST;

/// Where a worker's output goes: the TX buffers of its ports, the kernel bridge, and the
/// mempool for packets it generates (ARP requests, RSTs, ICMP errors).
pub trait Output<F> {
    /// Queues `f` for transmission on `port`.
    fn tx(&mut self, port: u16, f: F);
    /// A fresh empty frame, or `None` when the pool is empty.
    fn alloc(&mut self) -> Option<F>;
    /// Hands `f`, received on `port`, to the kernel twin of the port; gives it back when it
    /// cannot be taken (the bridge's ring is full, or there is no bridge).
    fn to_kernel(&mut self, port: u16, f: F) -> Result<(), F> {
        let _ = port;
        Err(f)
    }
}

/// What a worker tells the control plane, taken with [`Worker::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An ARP packet showed `ip` at `mac` behind `port`.
    NeighLearned {
        ip: Ipv4Addr,
        mac: MacAddr,
        port: u16,
    },
}

/// Events a worker holds until they are taken; more are dropped (a lost learning is repeated
/// by the neighbour's next ARP packet).
const EVENT_QUEUE: usize = 64;

/// The read-only context of one burst.
pub struct Ctx<'a> {
    pub snap: &'a Snapshot,
    pub neigh: &'a NeighTable,
    /// Engine time in milliseconds since the worker started (never wraps in practice).
    pub now_ms: u64,
}

/// Sizes of a worker's tables, all taken at construction.
#[derive(Clone, Copy, Debug)]
pub struct WorkerLimits {
    pub conns: usize,
    pub pending_per_hop: usize,
    pub pending_hops: usize,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        WorkerLimits {
            conns: 1 << 20,
            pending_per_hop: 32,
            pending_hops: 256,
        }
    }
}

/// A worker's private state.
pub struct Worker<F> {
    id: u16,
    workers: u16,
    conns: ConnTable,
    /// This worker's share of each local address's ports, by address.
    pools: HashMap<u32, PortPool>,
    /// Per service slot: scheduler cursor and local-address cursor.
    cursors: Box<[(u32, u32)]>,
    /// The real servers' load, for the services whose picks need it.
    loads: load::LoadViews,
    pending: PendingQueue<F>,
    hops: HopCache,
    /// Scratch of [`Self::process_burst`]: the classification of each packet of a burst.
    classes: Vec<Option<(parse::Common, Bucket)>>,
    /// Next hops due for an ARP retry, collected while polling the pending queue.
    arp_due: Vec<(u16, Ipv4Addr)>,
    stats: Arc<Stats>,
    /// This worker's service and real-server counters (its part of `stats`), by slot.
    slot_cells: Arc<[CachePadded<SlotCounters>]>,
    events: VecDeque<Event>,
    /// The snapshot generation the port pools were last brought up to date with.
    seen_generation: u64,
    /// Where the port pools of this run start (see [`PortPool::new`]).
    port_start: usize,
}

impl<F: Frame> Worker<F> {
    /// Worker `id` of `workers`. `seed` makes the run's randomness (the connection hash, where
    /// the local-port pools start); the engine draws none of its own, so a test with a fixed
    /// seed is deterministic, while the daemon passes a random one.
    pub fn new(id: u16, workers: u16, limits: WorkerLimits, seed: u64, stats: Arc<Stats>) -> Self {
        let hash_seed = 0x5EED_0000_0000_0000 ^ u64::from(id).wrapping_mul(0x2545_F491_4F6C_DD1D);
        Worker {
            id,
            workers,
            conns: ConnTable::new(limits.conns, hash_seed ^ seed),
            pools: HashMap::new(),
            cursors: vec![(u32::MAX, 0); stats.slots()].into_boxed_slice(),
            loads: load::LoadViews::default(),
            pending: PendingQueue::new(limits.pending_per_hop, limits.pending_hops),
            hops: HopCache::default(),
            classes: Vec::with_capacity(BURST),
            arp_due: Vec::with_capacity(limits.pending_hops),
            slot_cells: stats.worker_slots(usize::from(id)),
            stats,
            events: VecDeque::with_capacity(EVENT_QUEUE),
            seen_generation: u64::MAX,
            port_start: seed as usize,
        }
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    /// The connections this worker holds.
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// The oldest event not yet taken.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn counters(&self) -> &WorkerCounters {
        self.stats.worker(usize::from(self.id))
    }

    #[cold]
    #[inline(never)]
    fn drop_pkt(&self, f: F, r: DropReason) {
        self.counters().drop(r);
        drop(f);
    }

    /// A frame received on `port` that the data plane does not handle: to the port's kernel
    /// twin when it has one and the frame is addressed to the port's MAC (or is broadcast or
    /// multicast), else dropped for `reason`. (Ports are promiscuous: frames between other
    /// hosts on the link would only make the kernel drop them.)
    #[cold]
    #[inline(never)]
    fn not_for_us(
        &self,
        ctx: &Ctx<'_>,
        port: u16,
        f: F,
        reason: DropReason,
        out: &mut impl Output<F>,
    ) {
        let for_twin = |p: &PortConf| {
            let dst = ether::dst_mac(f.data());
            p.kni && dst.is_some_and(|d| d == p.mac || d.is_multicast())
        };
        if !ctx.snap.port(port).is_some_and(for_twin) {
            return self.drop_pkt(f, reason);
        }
        match out.to_kernel(port, f) {
            Ok(()) => self.counters().to_kernel.add(1),
            Err(f) => self.drop_pkt(f, DropReason::KernelFull),
        }
    }

    /// Work between bursts: notices a new snapshot, releases packets whose next hop got
    /// resolved, retries ARP, and expires idle connections (at most `sweep_budget` entries).
    pub fn housekeeping(&mut self, ctx: &Ctx<'_>, sweep_budget: usize, out: &mut impl Output<F>) {
        self.sync(ctx);
        self.release_pending(ctx, out);
        self.expire(ctx, sweep_budget);
        self.loads.refresh(ctx.now_ms, &self.stats);
    }

    /// Brings the worker's own tables up to the configuration and neighbours in `ctx`. Every
    /// entry point calls it before it looks at a packet, so that the first packet after a
    /// publication (the very first packet included) already finds the new local addresses'
    /// port pools, and `send_ip` never finds a stale next hop.
    #[inline]
    fn sync(&mut self, ctx: &Ctx<'_>) {
        if ctx.snap.generation != self.seen_generation {
            self.sync_pools(ctx.snap);
        }
        self.hops
            .sync((ctx.snap.generation, ctx.neigh.generation()));
    }

    /// Creates the port pools of local addresses that appeared (pools of removed addresses are
    /// kept: their ports may still be held by live connections) and brings the load views up
    /// to the services.
    #[cold]
    #[inline(never)]
    fn sync_pools(&mut self, snap: &Snapshot) {
        self.loads.sync(snap, &self.stats);
        for (ip, l) in &snap.local {
            if l.is_laddr && !self.pools.contains_key(ip) {
                let pool = PortPool::new(self.id, self.workers, DEFAULT_RANGE, self.port_start);
                self.pools.insert(*ip, pool);
            }
        }
        self.seen_generation = snap.generation;
    }

    /// Processes one packet this worker owns (or that any worker may process).
    #[inline]
    pub fn process(&mut self, ctx: &Ctx<'_>, in_port: u16, f: F, out: &mut impl Output<F>) {
        self.sync(ctx);
        let common = self.classify(&f);
        self.process_classified(ctx, in_port, f, common.as_ref(), out);
    }

    /// Processes the packets of `frames`, all received on `in_port` and owned by this worker
    /// (or by any), and leaves `frames` empty. Equivalent to [`Self::process`] on each, but
    /// the connection lookups of a whole burst overlap: every packet's bucket is hashed and
    /// prefetched first, then every bucket's first entry, and only then is any packet
    /// forwarded. With millions of connections each lookup is two cache misses; in a burst
    /// they are paid concurrently rather than one after the other.
    pub fn process_burst(
        &mut self,
        ctx: &Ctx<'_>,
        in_port: u16,
        frames: &mut Vec<F>,
        out: &mut impl Output<F>,
    ) {
        self.sync(ctx);
        let mut classes = std::mem::take(&mut self.classes);
        while !frames.is_empty() {
            // `classes` has room for BURST from construction, so this never allocates.
            let n = frames.len().min(BURST);
            classes.clear();
            classes.extend(frames[..n].iter().map(|f| self.classify(f)));
            for (_, b) in classes.iter().flatten() {
                self.conns.prefetch_entry(*b);
            }
            for (f, c) in frames.drain(..n).zip(classes.iter()) {
                self.process_classified(ctx, in_port, f, c.as_ref(), out);
            }
        }
        self.classes = classes;
    }

    /// The general path: the whole parse, then whatever the packet needs.
    #[inline(never)]
    fn process_general(&mut self, ctx: &Ctx<'_>, in_port: u16, f: F, out: &mut impl Output<F>) {
        match parse::parse(f.data()) {
            Ok(pkt) => self.process_parsed(ctx, in_port, &pkt, f, out),
            // IPv6, LLDP, ...: well-formed, but the kernel's business.
            Err(r @ DropReason::UnknownEthertype) => self.not_for_us(ctx, in_port, f, r, out),
            Err(r) => self.drop_pkt(f, r),
        }
    }

    /// The general path of a packet parsed as `pkt`: ARP to [`local`], IPv4 to [`conns`]
    /// (TCP, UDP) or [`local`] (anything else).
    fn process_parsed(
        &mut self,
        ctx: &Ctx<'_>,
        in_port: u16,
        pkt: &Packet,
        f: F,
        out: &mut impl Output<F>,
    ) {
        match pkt.l3 {
            L3::Arp(_) => self.on_arp(ctx, in_port, pkt, f, out),
            L3::Ipv4(ip) => self.on_ipv4(ctx, (in_port, pkt, &ip), f, out),
        }
    }
}
