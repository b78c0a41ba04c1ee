//! What a worker does to each packet it owns: ARP and ICMP for our addresses, connection
//! lookup, scheduling of new connections, the forwarding of each mode (the FullNAT and NAT
//! rewrite, direct routing, IP-in-IP), next-hop resolution.
//!
//! Generic over [`Frame`], so the same code runs on DPDK mbufs in the daemon and on
//! [`crate::packet::VecFrame`] in tests and benches. Nothing here allocates, locks, logs or
//! makes a syscall per packet.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use crossbeam_utils::CachePadded;
use dpvs_api::Forward;
use hashbrown::HashMap;

use crate::drop::DropReason;
use crate::engine::conn::{Bucket, Conn, ConnId, ConnTable, Dir, InsertError, Tuple};
use crate::engine::hop::{HopCache, NextHop, Path};
use crate::engine::laddr::{DEFAULT_RANGE, PortPool, port_owner};
use crate::engine::neigh::{NeighTable, PendingQueue};
use crate::engine::snapshot::{LocalAddr, Service, Snapshot};
use crate::engine::stats::{SlotCounters, Stats, WorkerCounters};
use crate::engine::tcp_state::{self, TcpState};
use crate::packet::ether::{ETH_HLEN, ETH_ZLEN, ETHERTYPE_IPV4, MacAddr, set_macs};
use crate::packet::ipip::{self, EncapError};
use crate::packet::parse::{self, Ipv4Info, L3, L4, Packet};
use crate::packet::{Frame, arp, ether, icmp, nat, tcp};

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const ICMP_ECHO_REQUEST: u8 = 8;

/// Where a worker's output goes: the TX buffers of its ports, and the mempool for packets it
/// generates (ARP requests).
pub trait Output<F> {
    /// Queues `f` for transmission on `port`.
    fn tx(&mut self, port: u16, f: F);
    /// A fresh empty frame, or `None` when the pool is empty.
    fn alloc(&mut self) -> Option<F>;
}

/// What a worker tells the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An ARP packet showed `ip` at `mac` behind `port`.
    NeighLearned {
        ip: Ipv4Addr,
        mac: MacAddr,
        port: u16,
    },
}

/// A connection as reported to the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnView {
    pub proto: u8,
    pub client: SocketAddrV4,
    pub vip: SocketAddrV4,
    /// The source the real server sees: a local address (FullNAT), the client (NAT); `None`
    /// in DR and TUN, where the real server sees the client's packet as sent.
    pub laddr: Option<SocketAddrV4>,
    pub rs: SocketAddrV4,
    pub state: &'static str,
    pub expires_in_ms: u32,
    pub svc_slot: u32,
}

/// Requests the control plane sends a worker; each carries its reply channel.
#[derive(Debug)]
pub enum Command {
    /// Up to `limit` connections, of one service slot if given.
    ListConns {
        svc_slot: Option<u32>,
        limit: usize,
        reply: Sender<Vec<ConnView>>,
    },
    /// Removes the connections to a deleted real server; replies with how many.
    FlushRs { rs_slot: u32, reply: Sender<usize> },
    /// Removes the connections of a deleted service; replies with how many.
    FlushService { svc_slot: u32, reply: Sender<usize> },
}

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
    pools: HashMap<u32, PortPool>,
    /// Per service slot: scheduler cursor and local-address cursor.
    cursors: Box<[(u32, u32)]>,
    pending: PendingQueue<F>,
    hops: HopCache,
    /// Scratch of [`Self::process_burst`]: the classification of each packet of a burst.
    classes: Vec<Option<(parse::Common, Bucket)>>,
    /// Next hops due for an ARP retry, collected while polling the pending queue.
    arp_due: Vec<(u16, Ipv4Addr)>,
    stats: Arc<Stats>,
    /// This worker's service and real-server counters (its part of `stats`), by slot.
    slot_cells: Arc<[CachePadded<SlotCounters>]>,
    events: Sender<Event>,
    commands: Receiver<Command>,
    /// The snapshot generation the port pools were last brought up to date with.
    seen_generation: u64,
    /// Where the port pools of this run start (see [`PortPool::new`]).
    port_start: usize,
}

/// The worker that must process a parsed packet: the owner of its (possible) connection. `None`
/// when any worker may: one worker, or a packet that is not TCP or UDP (ARP, ICMP).
pub fn owner(snap: &Snapshot, workers: u16, pkt: &Packet) -> Option<u16> {
    let L3::Ipv4(ip) = &pkt.l3 else { return None };
    let (sport, dport) = ip.ports()?;
    l4_owner(
        snap,
        workers,
        &tuple_of(ip.proto, ip.src, sport, ip.dst, dport),
    )
}

/// [`owner`] of the frame in `data`, parsed only as far as needed: the common layout in
/// straight-line code, anything else with the general parse.
#[inline]
pub fn steer(snap: &Snapshot, workers: u16, data: &[u8]) -> Option<u16> {
    if workers <= 1 {
        return None;
    }
    match parse::common(data) {
        Some(h) => l4_owner(snap, workers, &common_tuple(&h)),
        None => owner(snap, workers, &parse::parse(data).ok()?),
    }
}

/// The owner of a TCP or UDP packet with tuple `t`:
/// - a client packet, to a service of a VIP: the owner of its source endpoint;
/// - a packet to any other address of ours, which may be a FullNAT reply to a local address
///   (or to one that was a local address until an `laddr del`: its connections go on): the
///   worker whose share of local ports holds its destination port;
/// - anything else, which can only be a NAT-mode reply (the real server sends it to the
///   client through us): the owner of its destination endpoint.
fn l4_owner(snap: &Snapshot, workers: u16, t: &Tuple) -> Option<u16> {
    if workers <= 1 {
        return None;
    }
    let to_client_side = |l: LocalAddr| {
        // A VIP that is also a local address: its service ports are the client side.
        l.is_vip && (!l.is_laddr || snap.service(t.proto, t.dst, t.dport).is_some())
    };
    Some(match snap.local(t.dst) {
        Some(l) if to_client_side(l) => client_owner(t.src, t.sport, workers),
        Some(_) => port_owner(t.dport, workers),
        None => client_owner(t.dst, t.dport, workers),
    })
}

fn tuple_of(proto: u8, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Tuple {
    Tuple {
        proto,
        src,
        sport,
        dst,
        dport,
    }
}

/// Packets a worker classifies and prefetches for at once in [`Worker::process_burst`]; a
/// longer burst is taken in pieces of this size.
pub const BURST: usize = 32;

/// The connection tuple of a common-layout packet.
#[inline]
fn common_tuple(h: &parse::Common) -> Tuple {
    tuple_of(h.proto, h.src, h.sport, h.dst, h.dport)
}

/// The owner of a client's connection: a hash of the client endpoint (address and port),
/// modulo the workers. Client packets carry the endpoint as their source, NAT-mode replies as
/// their destination, so both directions of a NAT connection reach the same worker.
pub fn client_owner(client: Ipv4Addr, port: u16, workers: u16) -> u16 {
    let k = (u64::from(client.to_bits()) << 16) | u64::from(port);
    let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) % u64::from(workers.max(1))) as u16
}

impl<F: Frame> Worker<F> {
    /// Worker `id` of `workers`. `seed` makes the run's randomness (the connection hash, where
    /// the local-port pools start); the engine draws none of its own, so a test with a fixed
    /// seed is deterministic, while the daemon passes a random one.
    pub fn new(
        id: u16,
        workers: u16,
        limits: WorkerLimits,
        seed: u64,
        stats: Arc<Stats>,
        events: Sender<Event>,
        commands: Receiver<Command>,
    ) -> Self {
        let hash_seed = 0x5EED_0000_0000_0000 ^ u64::from(id).wrapping_mul(0x2545_F491_4F6C_DD1D);
        Worker {
            id,
            workers,
            conns: ConnTable::new(limits.conns, hash_seed ^ seed),
            pools: HashMap::new(),
            cursors: vec![(u32::MAX, 0); stats.slots()].into_boxed_slice(),
            pending: PendingQueue::new(limits.pending_per_hop, limits.pending_hops),
            hops: HopCache::default(),
            classes: Vec::with_capacity(BURST),
            arp_due: Vec::with_capacity(limits.pending_hops),
            slot_cells: stats.worker_slots(usize::from(id)),
            stats,
            events,
            commands,
            seen_generation: u64::MAX,
            port_start: seed as usize,
        }
    }

    pub fn id(&self) -> u16 {
        self.id
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

    /// Work between bursts: notices a new snapshot, releases packets whose next hop got
    /// resolved, retries ARP, expires idle connections (at most `sweep_budget` entries), and
    /// serves control commands.
    pub fn housekeeping(&mut self, ctx: &Ctx<'_>, sweep_budget: usize, out: &mut impl Output<F>) {
        self.sync(ctx);
        self.release_pending(ctx, out);
        self.expire(conn_time(ctx.now_ms), sweep_budget);
        while let Ok(cmd) = self.commands.try_recv() {
            self.serve(ctx, cmd);
        }
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

    /// Creates the port pools of local addresses that appeared. Pools of removed addresses are
    /// kept: their ports may still be held by live connections.
    #[cold]
    #[inline(never)]
    fn sync_pools(&mut self, snap: &Snapshot) {
        for (ip, l) in &snap.local {
            if l.is_laddr && !self.pools.contains_key(ip) {
                let pool = PortPool::new(self.id, self.workers, DEFAULT_RANGE, self.port_start);
                self.pools.insert(*ip, pool);
            }
        }
        self.seen_generation = snap.generation;
    }

    fn release_pending(&mut self, ctx: &Ctx<'_>, out: &mut impl Output<F>) {
        if self.pending.is_empty() {
            return;
        }
        let neigh = ctx.neigh;
        let snap = ctx.snap;
        let counters = self.stats.worker(usize::from(self.id));
        self.pending.take_resolved(
            |ip| neigh.get(ip).is_some(),
            &mut |port, ip, mut f: F| match (neigh.get(ip), snap.port(port)) {
                (Some(e), Some(p)) => {
                    set_macs(f.data_mut(), MacAddr(e.mac), p.mac);
                    out.tx(port, f);
                }
                _ => counters.drop(DropReason::NeighUnresolved),
            },
        );
        // Room for every pending hop was reserved at construction: no allocation here.
        let mut due = std::mem::take(&mut self.arp_due);
        due.clear();
        self.pending.poll(
            ctx.now_ms,
            &mut |port, ip| due.push((port, ip)),
            &mut |f: F| {
                counters.drop(DropReason::NeighUnresolved);
                drop(f);
            },
        );
        for &(port, ip) in &due {
            self.send_arp_request(ctx, port, ip, out);
        }
        self.arp_due = due;
    }

    fn expire(&mut self, now_ms: u32, budget: usize) {
        let stats = &self.stats;
        let id = usize::from(self.id);
        let pools = &mut self.pools;
        self.conns
            .sweep(now_ms, budget, |c| forget_conn(stats, id, pools, c));
    }

    fn serve(&mut self, ctx: &Ctx<'_>, cmd: Command) {
        match cmd {
            Command::ListConns {
                svc_slot,
                limit,
                reply,
            } => {
                let list = self
                    .conns
                    .iter()
                    .filter(|c| svc_slot.is_none_or(|s| u32::from(c.svc_slot) == s))
                    .take(limit)
                    .map(|c| view(c, conn_time(ctx.now_ms)))
                    .collect();
                let _ = reply.send(list);
            }
            Command::FlushRs { rs_slot, reply } => {
                let n = self.kill(ctx, |c| c.rs_slot == rs_slot);
                let _ = reply.send(n);
            }
            Command::FlushService { svc_slot, reply } => {
                let n = self.kill(ctx, |c| u32::from(c.svc_slot) == svc_slot);
                let _ = reply.send(n);
            }
        }
    }

    /// Ends the connections matching `pred` after their real server or service was deleted.
    /// Their counter slots are let go at once (the control plane reuses them). UDP entries go
    /// now; TCP entries stay, marked dead, until the next segment from either end resets both
    /// ends (or the close timeout passes), so an idle client learns its connection was cut.
    fn kill(&mut self, ctx: &Ctx<'_>, mut pred: impl FnMut(&Conn) -> bool) -> usize {
        let (stats, w, pools) = (&self.stats, usize::from(self.id), &mut self.pools);
        let grace = deadline(ctx.now_ms, ctx.snap.timeouts.close);
        let mut killed = 0;
        self.conns.retain_mut(
            |c| {
                if c.is_dead() || !pred(c) {
                    return true;
                }
                killed += 1;
                release_slots(stats, w, c);
                (c.rs_slot, c.svc_slot) = (NO_SLOT, NO_SLOT as u16);
                c.flags |= Conn::DEAD;
                c.expires = grace;
                // A DR or TUN connection cannot reset the real server (its replies bypass us):
                // it goes now, and the client's next segment is answered with a RST.
                c.proto == PROTO_TCP && !c.is_direct()
            },
            |c| free_conn(stats, w, pools, c),
        );
        killed
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

    /// The common-layout header of `f` and its connection bucket (whose head it starts to
    /// load), or `None` for a packet the general path must look at.
    #[inline(always)]
    fn classify(&self, f: &F) -> Option<(parse::Common, Bucket)> {
        let h = parse::common(f.data())?;
        let b = self.conns.bucket(&common_tuple(&h));
        self.conns.prefetch_bucket(b);
        Some((h, b))
    }

    /// The fast path when it applies, else the general path. Inlined into the burst loop, so
    /// that a fast-path packet costs no call; the general path is a call of its own.
    #[inline(always)]
    fn process_classified(
        &mut self,
        ctx: &Ctx<'_>,
        in_port: u16,
        f: F,
        common: Option<&(parse::Common, Bucket)>,
        out: &mut impl Output<F>,
    ) {
        let f = match common {
            Some((h, b)) => match self.forward_established(ctx, h, *b, f, out) {
                Some(f) => f,
                None => return,
            },
            None => f,
        };
        self.process_general(ctx, in_port, f, out);
    }

    /// The general path: the whole parse, then whatever the packet needs.
    #[inline(never)]
    fn process_general(&mut self, ctx: &Ctx<'_>, in_port: u16, f: F, out: &mut impl Output<F>) {
        match parse::parse(f.data()) {
            Ok(pkt) => self.process_parsed(ctx, in_port, &pkt, f, out),
            Err(r) => self.drop_pkt(f, r),
        }
    }

    /// The fast path: a TCP segment without SYN, FIN or RST of an ESTABLISHED connection, or a
    /// datagram of a UDP connection, in the common frame layout ([`parse::common`]) whose
    /// connection bucket is `b`, in any forwarding mode. That is nearly every packet of a busy
    /// balancer, and it needs the connection and nothing else: no state change, no gauge
    /// moves, no service. Any other packet is handed back (`Some`) for the general path,
    /// which decides on it afresh.
    #[inline(always)]
    fn forward_established(
        &mut self,
        ctx: &Ctx<'_>,
        h: &parse::Common,
        b: Bucket,
        mut f: F,
        out: &mut impl Output<F>,
    ) -> Option<F> {
        let plain = h.proto == PROTO_UDP
            || h.tcp_flags & (tcp::SYN | tcp::FIN | tcp::RST | tcp::ACK) == tcp::ACK;
        if !plain || h.ttl <= 1 {
            return Some(f);
        }
        let Some((id, dir)) = self.conns.lookup_in(b, &common_tuple(h)) else {
            return Some(f);
        };
        let c = self.conns.get_mut(id);
        let timeout_s = match c.proto {
            _ if c.is_dead() => return Some(f),
            PROTO_TCP if c.state != TcpState::Established as u8 => return Some(f),
            PROTO_TCP => ctx.snap.timeouts.established,
            _ => ctx.snap.timeouts.udp,
        };
        c.expires = deadline(ctx.now_ms, timeout_s);
        let (src, dst) = endpoints(c, dir);
        let (slots, conn_flags) = ((c.svc_slot, c.rs_slot), c.flags);
        self.count_forwarded(slots, dir, h.total_len);
        if conn_flags & Conn::DIRECT != 0 {
            let rs = Ipv4Addr::from_bits(dst.0);
            self.send_direct(ctx, conn_flags, rs, ETH_HLEN, f, out);
            return None;
        }
        // One borrow of the frame's head serves the rewrite and the next hop's MACs.
        let to = Ipv4Addr::from_bits(dst.0);
        let hop = self.hops.get(to);
        let Some(head) = f.data_mut().first_chunk_mut::<{ parse::COMMON_HEAD }>() else {
            self.drop_pkt(f, DropReason::Truncated);
            return None;
        };
        nat::rewrite_common(head, h.proto, src, dst);
        match hop {
            Some(hop) => {
                hop.address(head);
                out.tx(hop.port, f);
            }
            None => self.send_resolving(ctx, to, f, out),
        }
        None
    }

    /// Adds a forwarded packet of `bytes` to the service's and the real server's counters.
    #[inline]
    fn count_forwarded(&self, (svc_slot, rs_slot): (u16, u32), dir: Dir, bytes: u16) {
        let bytes = u64::from(bytes);
        for s in [usize::from(svc_slot), rs_slot as usize] {
            if let Some(k) = self.slot_cells.get(s) {
                match dir {
                    Dir::Inbound => {
                        k.in_pkts.add(1);
                        k.in_bytes.add(bytes);
                    }
                    Dir::Outbound => {
                        k.out_pkts.add(1);
                        k.out_bytes.add(bytes);
                    }
                }
            }
        }
    }

    /// The general path of a packet parsed as `pkt`.
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
            L3::Ipv4(ip) => self.on_ipv4(ctx, pkt, &ip, f, out),
        }
    }

    fn on_arp(
        &mut self,
        ctx: &Ctx<'_>,
        in_port: u16,
        pkt: &Packet,
        mut f: F,
        out: &mut impl Output<F>,
    ) {
        let L3::Arp(a) = pkt.l3 else { return };
        // Answer only on the port the address lives on, as DPVS does (not Linux's arp_ignore=0).
        let ours = ctx.snap.local(a.tpa).is_some_and(|l| l.port == in_port);
        let (true, Some(port)) = (ours, ctx.snap.port(in_port)) else {
            return self.drop_pkt(f, DropReason::ArpIgnored);
        };
        self.learn(ctx, a.spa, a.sha, in_port);
        if a.op == arp::OP_REQUEST && arp::reply_in_place(f.data_mut(), pkt, port.mac) {
            out.tx(in_port, f);
        }
        // A reply to one of our requests is consumed by learning it.
    }

    fn learn(&self, ctx: &Ctx<'_>, ip: Ipv4Addr, mac: MacAddr, port: u16) {
        // Someone claiming one of our addresses is a conflict, not a neighbour.
        if ip.is_unspecified() || mac.is_multicast() || ctx.snap.local(ip).is_some() {
            return;
        }
        let known = ctx
            .neigh
            .get(ip)
            .is_some_and(|e| e.mac == mac.0 && e.port == port);
        if !known {
            // The control plane may be busy; a lost event is repeated by the next ARP packet.
            let _ = self.events.try_send(Event::NeighLearned { ip, mac, port });
        }
    }

    fn on_ipv4(
        &mut self,
        ctx: &Ctx<'_>,
        pkt: &Packet,
        ip: &Ipv4Info,
        f: F,
        out: &mut impl Output<F>,
    ) {
        let ports = match ip.l4 {
            L4::Tcp(t) if tcp::flags_valid(t.flags) => (t.sport, t.dport, t.flags),
            L4::Tcp(_) => return self.drop_pkt(f, DropReason::BadTcpFlags),
            L4::Udp { sport, dport } => (sport, dport, 0),
            _ => return self.on_other_ipv4(ctx, pkt, ip, f, out),
        };
        self.on_l4(ctx, pkt, ip, ports, f, out)
    }

    /// IPv4 that is neither TCP nor UDP: only ICMP echo to our addresses is answered.
    fn on_other_ipv4(
        &mut self,
        ctx: &Ctx<'_>,
        pkt: &Packet,
        ip: &Ipv4Info,
        f: F,
        out: &mut impl Output<F>,
    ) {
        if ctx.snap.local(ip.dst).is_none() {
            return self.drop_pkt(f, DropReason::NotOurs);
        }
        match ip.l4 {
            L4::Icmp {
                icmp_type: ICMP_ECHO_REQUEST,
                ..
            } if ip.proto == PROTO_ICMP => self.echo_reply(ctx, pkt, ip, f, out),
            L4::Icmp { .. } => self.drop_pkt(f, DropReason::IcmpIgnored),
            _ => self.drop_pkt(f, DropReason::UnknownL4Proto),
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the packet, its parse and its context travel together down the general path"
    )]
    fn on_l4(
        &mut self,
        ctx: &Ctx<'_>,
        pkt: &Packet,
        ip: &Ipv4Info,
        (sport, dport, flags): (u16, u16, u8),
        f: F,
        out: &mut impl Output<F>,
    ) {
        // The connection first: a hit (the common case) needs nothing else, and only our own
        // addresses ever get connections.
        let tuple = Tuple {
            proto: ip.proto,
            src: ip.src,
            sport,
            dst: ip.dst,
            dport,
        };
        if let Some((id, dir)) = self.conns.lookup(&tuple) {
            let c = self.conns.get(id);
            let new_syn = is_client_syn(c, dir, flags);
            let gives_way = new_syn && (c.is_dead() || is_over(c));
            if !gives_way && c.is_dead() {
                return self.reset_both(ctx, pkt, id, dir, f, out);
            }
            if !gives_way {
                return self.forward(ctx, ip, id, dir, flags, f, out);
            }
            // LVS's connection reuse (its default `conn_reuse_mode`): a client's SYN on a
            // tuple whose connection is over, or was cut when its real server or service
            // went, is a new connection, scheduled afresh, not the old one re-opened towards
            // the real server it had (which may be gone).
            let old = self.conns.remove(id);
            let w = usize::from(self.id);
            if old.is_dead() {
                // Its gauges went when it was cut.
                free_conn(&self.stats, w, &mut self.pools, &old);
            } else {
                forget_conn(&self.stats, w, &mut self.pools, &old);
            }
        }
        let Some(local) = ctx.snap.local(ip.dst) else {
            return self.drop_pkt(f, DropReason::NotOurs);
        };
        let svc = if local.is_vip {
            ctx.snap.service(ip.proto, ip.dst, dport)
        } else {
            None
        };
        let Some(svc) = svc else {
            return self.no_connection(ctx, pkt, local, f, out);
        };
        if ip.proto == PROTO_TCP && flags & (tcp::SYN | tcp::ACK) != tcp::SYN {
            return self.no_connection(ctx, pkt, local, f, out);
        }
        // Checked before a connection (and a local port) is spent on a packet that cannot go.
        if ip.ttl <= 1 {
            return self.drop_pkt(f, DropReason::TtlExceeded);
        }
        match self.new_conn(ctx, svc, &tuple) {
            Ok(id) => self.forward(ctx, ip, id, Dir::Inbound, flags, f, out),
            Err(r) => self.drop_pkt(f, r),
        }
    }

    /// A packet for a connection that does not exist. TCP is answered with a RST, as the real
    /// server's stack would: that is how a client learns its connection was cut when its real
    /// server is removed. Everything else is dropped.
    fn no_connection(
        &mut self,
        ctx: &Ctx<'_>,
        pkt: &Packet,
        local: LocalAddr,
        mut f: F,
        out: &mut impl Output<F>,
    ) {
        let L3::Ipv4(ip) = pkt.l3 else { return };
        let reason = if local.is_laddr || ip.proto == PROTO_TCP {
            DropReason::NoConnection
        } else {
            DropReason::NoService
        };
        self.counters().drop(reason);
        if ip.proto != PROTO_TCP {
            return;
        }
        let mac = ctx.snap.port(local.port).map_or(MacAddr::ZERO, |p| p.mac);
        match tcp::rst_reply_in_place(f.data_mut(), pkt, mac) {
            Some(len) if f.set_len(len) => self.send_ip(ctx, ip.src, f, out),
            _ => drop(f),
        }
    }

    fn new_conn(&mut self, ctx: &Ctx<'_>, svc: &Service, t: &Tuple) -> Result<ConnId, DropReason> {
        let slot = svc.slot as usize;
        let Some(cursors) = self.cursors.get_mut(slot) else {
            return Err(DropReason::NoRealServer);
        };
        if cursors.0 == u32::MAX {
            cursors.0 = svc.schedule.start_cursor(self.id, self.workers);
        }
        let rs = svc
            .schedule
            .pick(&mut cursors.0)
            .and_then(|i| svc.rs.get(usize::from(i)))
            .ok_or(DropReason::NoRealServer)?;
        // NAT keeps the client as the source: the "local" side of its connection is the
        // client endpoint itself, so replies are looked up and rewritten like FullNAT's. DR
        // and TUN replies bypass us: they have no local side.
        let (lip, lport, flags) = match rs.forward {
            Forward::Fnat => {
                let (lip, lport) = self.alloc_local_port(svc, slot)?;
                (lip, lport, 0)
            }
            Forward::Nat => (t.src, t.sport, Conn::NAT),
            Forward::Dr => (Ipv4Addr::UNSPECIFIED, 0, Conn::DR),
            Forward::Tun => (Ipv4Addr::UNSPECIFIED, 0, Conn::TUN),
        };
        let state = if t.proto == PROTO_TCP {
            TcpState::None as u8
        } else {
            0
        };
        let conn = Conn {
            cip: t.src.to_bits(),
            vip: t.dst.to_bits(),
            lip: lip.to_bits(),
            rip: rs.addr.ip().to_bits(),
            cport: t.sport,
            vport: t.dport,
            lport,
            rport: rs.addr.port(),
            rs_slot: rs.slot,
            expires: deadline(ctx.now_ms, 1),
            svc_slot: svc.slot as u16,
            proto: t.proto,
            state,
            flags,
        };
        let id = self.conns.insert(conn).map_err(|e| {
            let pooled = conn.holds_local_port();
            if pooled && let Some(p) = self.pools.get_mut(&lip.to_bits()) {
                p.free(lport);
            }
            match e {
                InsertError::Full => DropReason::ConnTableFull,
                InsertError::Exists if pooled => DropReason::LaddrExhausted,
                InsertError::Exists => DropReason::TupleInUse,
            }
        })?;
        let w = usize::from(self.id);
        let c = self.stats.worker(w);
        c.conns_created.add(1);
        c.conns_active.add(1);
        for s in [svc.slot, rs.slot] {
            if let Some(k) = self.stats.slot(w, s) {
                k.conns.add(1);
                k.inactive.add(1);
            }
        }
        Ok(id)
    }

    /// A local address and port for a new FullNAT connection: the service's local addresses in
    /// turn, the first whose pool has a free port on this worker.
    fn alloc_local_port(
        &mut self,
        svc: &Service,
        slot: usize,
    ) -> Result<(Ipv4Addr, u16), DropReason> {
        let n = svc.laddrs.len();
        let start = self.cursors[slot].1 as usize;
        for k in 0..n {
            let lip = svc.laddrs[(start + k) % n];
            if let Some(port) = self.pools.get_mut(&lip.to_bits()).and_then(PortPool::alloc) {
                self.cursors[slot].1 = ((start + k + 1) % n) as u32;
                return Ok((lip, port));
            }
        }
        Err(DropReason::LaddrExhausted)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "the packet, its parse and its context travel together down the general path"
    )]
    fn forward(
        &mut self,
        ctx: &Ctx<'_>,
        ip: &Ipv4Info,
        id: ConnId,
        dir: Dir,
        flags: u8,
        mut f: F,
        out: &mut impl Output<F>,
    ) {
        let w = usize::from(self.id);
        let c = self.conns.get_mut(id);
        let timeout_s = if c.proto == PROTO_TCP {
            let old = TcpState::from_u8(c.state);
            // Most segments are plain ACKs (with data) of an established connection.
            let plain = flags & (tcp::SYN | tcp::FIN | tcp::RST) == 0;
            let new = if old == TcpState::Established && plain {
                old
            } else if c.is_direct() {
                tcp_state::next_state_inbound_only(old, flags)
            } else {
                tcp_state::next_state(old, tcp_dir(dir), flags)
            };
            if new != old {
                c.state = new as u8;
                track_activity(&self.stats, w, c, old, new);
            }
            ctx.snap.timeouts.for_state(new)
        } else {
            ctx.snap.timeouts.udp
        };
        c.expires = deadline(ctx.now_ms, timeout_s);
        let ((sip, sport), (dip, dport)) = endpoints(c, dir);
        let (src, dst) = (sock(sip, sport), sock(dip, dport));
        let (slots, conn_flags) = ((c.svc_slot, c.rs_slot), c.flags);
        self.count_forwarded(slots, dir, ip.total_len);
        if conn_flags & Conn::DIRECT != 0 {
            return self.send_direct(ctx, conn_flags, *dst.ip(), ip.l3_off, f, out);
        }
        match nat::rewrite_ipv4(f.data_mut(), ip, src, dst, true) {
            Ok(()) => self.send_ip(ctx, *dst.ip(), f, out),
            Err(r) => self.drop_pkt(f, r),
        }
    }

    /// A segment of a dead connection: the sender gets the RST its peer's stack would send, the
    /// other end gets a RST carrying the sequence number it expects (this segment's, since
    /// FullNAT leaves sequence numbers alone), and the entry goes.
    fn reset_both(
        &mut self,
        ctx: &Ctx<'_>,
        pkt: &Packet,
        id: ConnId,
        dir: Dir,
        f: F,
        out: &mut impl Output<F>,
    ) {
        let c = self.conns.remove(id);
        free_conn(&self.stats, usize::from(self.id), &mut self.pools, &c);
        let Some(t) = pkt.ipv4().and_then(|ip| ip.tcp()).copied() else {
            return self.drop_pkt(f, DropReason::NoConnection);
        };
        let ((sip, sport), (dip, dport)) = endpoints(&c, dir);
        let (src, dst) = (sock(sip, sport), sock(dip, dport));
        if t.flags & tcp::RST == 0 {
            if let Some(mut other) = out.alloc() {
                let built = other.set_len(ETH_ZLEN)
                    && tcp::write_rst(other.data_mut(), src, dst, t.seq).is_some();
                if built {
                    self.send_ip(ctx, *dst.ip(), other, out);
                }
            } else {
                self.counters().drop(DropReason::NoBuffer);
            }
        }
        let local = LocalAddr {
            port: 0,
            is_laddr: dir == Dir::Outbound,
            is_vip: dir == Dir::Inbound,
        };
        self.no_connection(ctx, pkt, local, f, out);
    }

    fn echo_reply(
        &mut self,
        ctx: &Ctx<'_>,
        pkt: &Packet,
        ip: &Ipv4Info,
        mut f: F,
        out: &mut impl Output<F>,
    ) {
        let mac = ctx
            .snap
            .local(ip.dst)
            .and_then(|l| ctx.snap.port(l.port))
            .map_or(MacAddr::ZERO, |p| p.mac);
        if icmp::echo_reply_in_place(f.data_mut(), pkt, mac) {
            self.send_ip(ctx, ip.src, f, out);
        } else {
            self.drop_pkt(f, DropReason::IcmpIgnored);
        }
    }

    /// Sends an IPv4 packet towards `dst`: the cached next hop, else [`Self::send_resolving`].
    /// Inlined into every caller: a hit is a handful of instructions.
    #[inline(always)]
    fn send_ip(&mut self, ctx: &Ctx<'_>, dst: Ipv4Addr, f: F, out: &mut impl Output<F>) {
        match self.hops.get(dst) {
            Some(hop) => transmit(hop, f, out),
            None => self.send_resolving(ctx, dst, f, out),
        }
    }

    /// [`Self::send_ip`] on a cache miss: route, then the next hop's MAC, or park the packet
    /// until ARP resolves it.
    #[inline(never)]
    fn send_resolving(&mut self, ctx: &Ctx<'_>, dst: Ipv4Addr, f: F, out: &mut impl Output<F>) {
        match self.resolve(ctx, dst) {
            Ok((hop, _)) => transmit(hop, f, out),
            Err(why) => self.park(ctx, f, why, out),
        }
    }

    /// The next hop of `dst` from the route and neighbour tables, cached when complete; else
    /// what stopped it: no route, or the gateway (port, address) whose MAC is unknown.
    fn resolve(&mut self, ctx: &Ctx<'_>, dst: Ipv4Addr) -> Result<(NextHop, Path), Unresolved> {
        let eg = egress(ctx.snap, dst).ok_or(Unresolved::NoRoute)?;
        self.resolve_via(ctx, dst, &eg)
    }

    /// [`Self::resolve`] of `dst` once its egress `eg` is known.
    fn resolve_via(
        &mut self,
        ctx: &Ctx<'_>,
        dst: Ipv4Addr,
        eg: &Egress,
    ) -> Result<(NextHop, Path), Unresolved> {
        let Some(e) = ctx.neigh.get(eg.gw) else {
            return Err(Unresolved::Neigh(eg.port, eg.gw));
        };
        let hop = NextHop::new(eg.port, MacAddr(e.mac), eg.mac);
        let path = Path {
            on_link: eg.gw == dst,
            mtu: eg.mtu,
            src_ip: eg.src,
        };
        self.hops.put(dst, hop, path);
        Ok((hop, path))
    }

    /// Sends a packet of a DR or TUN connection (`conn_flags`) to real server `rs`, the IPv4
    /// packet at `l3_off` as the client sent it. Kept out of line, so that it does not weigh
    /// on the NAT modes' fast path it is called from.
    #[inline(never)]
    fn send_direct(
        &mut self,
        ctx: &Ctx<'_>,
        conn_flags: u8,
        rs: Ipv4Addr,
        l3_off: usize,
        f: F,
        out: &mut impl Output<F>,
    ) {
        if conn_flags & Conn::TUN != 0 {
            return self.send_tunnelled(ctx, rs, l3_off, f, out);
        }
        match self.hops.get_path(rs) {
            Some((hop, path)) if path.on_link => transmit(hop, f, out),
            Some(_) => self.drop_pkt(f, DropReason::RsNotOnLink),
            None => self.send_routed_resolving(ctx, rs, f, out),
        }
    }

    /// Direct routing on a next-hop cache miss: the real server must be the next hop itself.
    #[inline(never)]
    fn send_routed_resolving(
        &mut self,
        ctx: &Ctx<'_>,
        rs: Ipv4Addr,
        f: F,
        out: &mut impl Output<F>,
    ) {
        match self.resolve(ctx, rs) {
            Ok((hop, path)) if path.on_link => transmit(hop, f, out),
            Err(why @ Unresolved::Neigh(_, gw)) if gw == rs => self.park(ctx, f, why, out),
            Err(Unresolved::NoRoute) => self.drop_pkt(f, DropReason::NoRoute),
            Ok(_) | Err(Unresolved::Neigh(..)) => self.drop_pkt(f, DropReason::RsNotOnLink),
        }
    }

    /// IP-in-IP to real server `rs`, from our address on the way there. A packet the outer
    /// header makes too big for the egress MTU is dropped; if it forbids fragmentation, its
    /// sender is told the MTU that fits (path MTU discovery then shrinks its packets).
    fn send_tunnelled(
        &mut self,
        ctx: &Ctx<'_>,
        rs: Ipv4Addr,
        l3_off: usize,
        f: F,
        out: &mut impl Output<F>,
    ) {
        let Some((hop, path)) = self.hops.get_path(rs) else {
            return self.send_tunnelled_resolving(ctx, rs, l3_off, f, out);
        };
        if let Some(f) = self.encapsulate(ctx, (path.src_ip, rs), path.mtu, l3_off, f, out) {
            transmit(hop, f, out);
        }
    }

    /// [`Self::send_tunnelled`] on a next-hop cache miss: the egress found for the outer
    /// header serves the resolution too.
    #[inline(never)]
    fn send_tunnelled_resolving(
        &mut self,
        ctx: &Ctx<'_>,
        rs: Ipv4Addr,
        l3_off: usize,
        f: F,
        out: &mut impl Output<F>,
    ) {
        let Some(eg) = egress(ctx.snap, rs) else {
            return self.drop_pkt(f, DropReason::NoRoute);
        };
        let Some(f) = self.encapsulate(ctx, (eg.src, rs), eg.mtu, l3_off, f, out) else {
            return;
        };
        match self.resolve_via(ctx, rs, &eg) {
            Ok((hop, _)) => transmit(hop, f, out),
            Err(why) => self.park(ctx, f, why, out),
        }
    }

    /// Puts the IPv4 packet at `l3_off` of `f` in an outer header `src` → `dst` for a link of
    /// `mtu`; `None` when it could not (the packet dropped and counted, and its sender told
    /// of the MTU when it forbids fragmentation).
    #[inline(always)]
    fn encapsulate(
        &mut self,
        ctx: &Ctx<'_>,
        (src, dst): (Ipv4Addr, Ipv4Addr),
        mtu: u16,
        l3_off: usize,
        mut f: F,
        out: &mut impl Output<F>,
    ) -> Option<F> {
        // No address of ours on the way: nothing to source the tunnel from.
        if src.is_unspecified() {
            self.drop_pkt(f, DropReason::NoRoute);
            return None;
        }
        match ipip::encapsulate(&mut f, l3_off, src, dst, mtu) {
            Ok(()) => return Some(f),
            Err(EncapError::TooBig { df: true }) => {
                self.send_frag_needed(ctx, f.data().get(l3_off..).unwrap_or(&[]), mtu, out);
                self.drop_pkt(f, DropReason::TooBig)
            }
            Err(e) => self.drop_pkt(f, e.reason()),
        }
        None
    }

    /// Tells the sender of the IPv4 packet `ip` that it must fit in `mtu` bytes with the
    /// tunnel header, from the address it sent to (the VIP).
    fn send_frag_needed(&mut self, ctx: &Ctx<'_>, ip: &[u8], mtu: u16, out: &mut impl Output<F>) {
        let mut quoted = [0u8; 68];
        let q = ipip::quote(ip);
        let Some(((client, vip), quoted)) = ip_pair(ip).zip(quoted.get_mut(..q.len())) else {
            return;
        };
        quoted.copy_from_slice(q);
        let Some(mut e) = out.alloc() else {
            return self.counters().drop(DropReason::NoBuffer);
        };
        let len = ipip::frag_needed_len(ETH_HLEN, quoted.len());
        let inner_mtu = mtu.saturating_sub(ipip::OVERHEAD as u16);
        let built = e.set_len(len.max(ETH_ZLEN))
            && ether::write_header(
                e.data_mut(),
                MacAddr::ZERO,
                MacAddr::ZERO,
                ETHERTYPE_IPV4,
                None,
            )
            .is_some()
            && ipip::write_frag_needed(e.data_mut(), ETH_HLEN, vip, client, inner_mtu, quoted)
                .is_some();
        if built {
            self.send_ip(ctx, client, e, out);
        } else {
            self.drop_pkt(e, DropReason::NoBuffer);
        }
    }

    /// A packet whose next hop is not resolved: dropped without a route, else queued for ARP.
    fn park(&mut self, ctx: &Ctx<'_>, f: F, why: Unresolved, out: &mut impl Output<F>) {
        let Unresolved::Neigh(port, hop) = why else {
            return self.drop_pkt(f, DropReason::NoRoute);
        };
        match self.pending.push(hop, port, f, ctx.now_ms) {
            Ok(true) => self.send_arp_request(ctx, port, hop, out),
            Ok(false) => {}
            Err(f) => self.drop_pkt(f, DropReason::NeighPendingFull),
        }
    }

    fn send_arp_request(
        &mut self,
        ctx: &Ctx<'_>,
        port: u16,
        target: Ipv4Addr,
        out: &mut impl Output<F>,
    ) {
        let (Some(pc), Some(src_ip)) = (ctx.snap.port(port), ctx.snap.arp_source(port, target))
        else {
            return;
        };
        let Some(mut f) = out.alloc() else {
            return self.counters().drop(DropReason::NoBuffer);
        };
        if !f.set_len(arp::REQUEST_LEN) {
            return self.drop_pkt(f, DropReason::NoBuffer);
        }
        let len = arp::write_request(f.data_mut(), pc.mac, src_ip, target, None);
        if f.set_len(len) {
            out.tx(port, f);
        }
    }

    /// The connections this worker holds.
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }
}

/// Addresses `f` to its next hop and queues it on the hop's port.
#[inline(always)]
fn transmit<F: Frame>(hop: NextHop, mut f: F, out: &mut impl Output<F>) {
    hop.address(f.data_mut());
    out.tx(hop.port, f)
}

/// How a packet for some destination leaves, by the route and port tables alone.
struct Egress {
    port: u16,
    /// The neighbour to hand it to: the route's gateway, else the destination itself.
    gw: Ipv4Addr,
    mac: MacAddr,
    mtu: u16,
    /// Our address on the way (see [`Path::src_ip`]).
    src: Ipv4Addr,
}

fn egress(snap: &Snapshot, dst: Ipv4Addr) -> Option<Egress> {
    let (port, gw, src) = snap.routes.next_hop(dst)?;
    let pc = snap.port(port)?;
    Some(Egress {
        port,
        gw,
        mac: pc.mac,
        mtu: pc.mtu,
        src: src.or(pc.addr).unwrap_or(Ipv4Addr::UNSPECIFIED),
    })
}

/// The source and destination addresses of the IPv4 header at the start of `ip`.
fn ip_pair(ip: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    Some((Ipv4Addr::from(src), Ipv4Addr::from(dst)))
}

/// Why a destination has no next hop yet.
enum Unresolved {
    NoRoute,
    /// The MAC of this gateway (or directly connected host) on this port is unknown.
    Neigh(u16, Ipv4Addr),
}

fn tcp_dir(d: Dir) -> tcp_state::Dir {
    match d {
        Dir::Inbound => tcp_state::Dir::Inbound,
        Dir::Outbound => tcp_state::Dir::Outbound,
    }
}

/// The longest timeout a connection deadline can hold: connections compare 32-bit wrapping
/// millisecond deadlines, which stay ordered for 2^31 ms (24.8 days).
pub const MAX_TIMEOUT_S: u32 = 2_000_000;

/// The engine clock as connections store it (wrapping milliseconds).
fn conn_time(now_ms: u64) -> u32 {
    now_ms as u32
}

/// A connection deadline `timeout_s` seconds after `now_ms`.
fn deadline(now_ms: u64, timeout_s: u32) -> u32 {
    conn_time(now_ms).wrapping_add(timeout_s.min(MAX_TIMEOUT_S) * 1000)
}

/// The (source, destination) address and port a packet of `c` travelling in `dir` leaves
/// with: FullNAT swaps the client side for the local address side and back. (DR and TUN
/// leave the packet as it is; only the destination's address, the real server's, is used.)
#[inline]
fn endpoints(c: &Conn, dir: Dir) -> ((u32, u16), (u32, u16)) {
    match dir {
        Dir::Inbound => ((c.lip, c.lport), (c.rip, c.rport)),
        Dir::Outbound => ((c.vip, c.vport), (c.cip, c.cport)),
    }
}

fn sock(ip: u32, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from_bits(ip), port)
}

/// Moves a connection between ipvsadm's ActiveConn and InActConn gauges.
fn track_activity(stats: &Stats, w: usize, c: &Conn, old: TcpState, new: TcpState) {
    let (was, is) = (tcp_state::is_active(old), tcp_state::is_active(new));
    if was == is {
        return;
    }
    for s in [u32::from(c.svc_slot), c.rs_slot] {
        if let Some(k) = stats.slot(w, s) {
            if is {
                k.active.add(1);
                k.inactive.sub(1);
            } else {
                k.active.sub(1);
                k.inactive.add(1);
            }
        }
    }
}

/// Whether a segment with TCP `flags` travelling in `dir` is a client's SYN (opening a
/// connection) on connection `c`'s tuple.
fn is_client_syn(c: &Conn, dir: Dir, flags: u8) -> bool {
    c.proto == PROTO_TCP
        && dir == Dir::Inbound
        && flags & (tcp::SYN | tcp::ACK | tcp::FIN | tcp::RST) == tcp::SYN
}

/// Whether TCP connection `c` is over (TIME_WAIT or CLOSE): a client's new SYN on its tuple
/// is a new connection, as LVS takes it.
fn is_over(c: &Conn) -> bool {
    [TcpState::TimeWait as u8, TcpState::Close as u8].contains(&c.state)
}

/// A counter slot no service or real server has (counts into nothing).
const NO_SLOT: u32 = u32::MAX;

/// Bookkeeping when a connection leaves the table: its local port goes back to the pool and
/// the gauges go down.
fn forget_conn(stats: &Stats, w: usize, pools: &mut HashMap<u32, PortPool>, c: &Conn) {
    release_slots(stats, w, c);
    free_conn(stats, w, pools, c);
}

/// Takes a connection out of its service's and real server's ActiveConn/InActConn gauges.
fn release_slots(stats: &Stats, w: usize, c: &Conn) {
    let active = c.proto == PROTO_TCP && tcp_state::is_active(TcpState::from_u8(c.state));
    for s in [u32::from(c.svc_slot), c.rs_slot] {
        if let Some(k) = stats.slot(w, s) {
            if active {
                k.active.sub(1)
            } else {
                k.inactive.sub(1)
            }
        }
    }
}

/// Returns a removed FullNAT connection's local port and lowers the worker's connection gauge.
fn free_conn(stats: &Stats, w: usize, pools: &mut HashMap<u32, PortPool>, c: &Conn) {
    if c.holds_local_port()
        && let Some(p) = pools.get_mut(&c.lip)
    {
        p.free(c.lport);
    }
    stats.worker(w).conns_active.sub(1);
}

fn view(c: &Conn, now_ms: u32) -> ConnView {
    let state = match c.proto {
        PROTO_TCP => tcp_state::name(TcpState::from_u8(c.state)),
        PROTO_UDP => "UDP",
        _ => "-",
    };
    ConnView {
        proto: c.proto,
        client: sock(c.cip, c.cport),
        vip: sock(c.vip, c.vport),
        laddr: (!c.is_direct()).then(|| sock(c.lip, c.lport)),
        rs: sock(c.rip, c.rport),
        state,
        expires_in_ms: if c.is_expired(now_ms) {
            0
        } else {
            c.expires.wrapping_sub(now_ms)
        },
        svc_slot: u32::from(c.svc_slot),
    }
}
