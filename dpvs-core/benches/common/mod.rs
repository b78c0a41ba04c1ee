//! Shared fixture of the engine benches: a one-worker FullNAT set-up built through the control
//! plane, frame templates, and a harness that feeds the worker without allocating.
//!
//! Every bench binary includes this module; not all of them use every item.
#![allow(
    dead_code,
    reason = "each bench binary uses its own part of the shared set-up"
)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use dpvs_api::{Forward, Persistence, Proto, RsSpec, Sched, SchedFlags, ServiceKey, ServiceSpec};
use dpvs_core::drop::DropReason;
use dpvs_core::engine::conn::{Conn, ConnFlags, ConnTable, Dir, Tuple};
use dpvs_core::engine::neigh::NeighTable;
use dpvs_core::engine::snapshot::Snapshot;
use dpvs_core::engine::stats::Stats;
use dpvs_core::engine::tcp_state::{TcpState, Timeouts};
use dpvs_core::engine::worker::{self, Ctx, Output, Worker, WorkerLimits};
use dpvs_core::packet::{Frame, MacAddr, VecFrame};
use dpvs_daemon::control::state::{ControlState, PortState};
use dpvs_testkit::frames::{self, OUR_MAC, PEER_MAC, Spec};

/// The frame the benches feed the worker: a pointer-sized handle, as the daemon's mbuf is, so
/// moving a packet through the engine costs what it does there.
pub(crate) type BenchFrame = Box<VecFrame>;

pub(crate) use dpvs_core::packet::ipv4::IpProto;
pub(crate) use dpvs_testkit::frames::{ACK, SYN};

/// Frames handed to the worker per measured run (one batch).
pub(crate) const BATCH: usize = 1024;

/// The VIP and its services' ports.
pub(crate) const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
pub(crate) const TCP_VPORT: u16 = 80;
pub(crate) const UDP_VPORT: u16 = 53;
/// Real servers: 192.168.10.11..=18, TCP 8080 and UDP 5353.
pub(crate) const RS_COUNT: u8 = 8;
pub(crate) const RS_TCP_PORT: u16 = 8080;
pub(crate) const RS_UDP_PORT: u16 = 5353;
/// TCP payload of data segments (a 60-byte frame: 14 + 20 + 20 + 6).
pub(crate) const TCP_PAYLOAD: usize = 6;
/// UDP payload (a 60-byte frame: 14 + 20 + 8 + 18).
pub(crate) const UDP_PAYLOAD: usize = 18;
/// Counter slots: one per service and real server (up to 1,000 real servers a service).
pub(crate) const STAT_SLOTS: u32 = 2048;
/// Room for any template frame.
pub(crate) const FRAME_ROOM: usize = 64;

/// Local addresses of the services: 192.168.128.0 + k. Each gives one worker 64,512 ports.
pub(crate) fn laddr(k: u32) -> Ipv4Addr {
    Ipv4Addr::from_bits(0xC0A8_8000 + k)
}

/// Client of flow `i`: 172.16.0.0/12 (2^20 addresses), the source port moving on after each
/// 2^20 flows, so every `i` below 2^20 × 50,000 is a distinct tuple.
pub(crate) fn client(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from_bits(0xAC10_0000 + (i & 0xF_FFFF)),
        10_000 + (i >> 20) as u16,
    )
}

/// TCP real server `r`: the eight of the base set-up in 192.168.10.0/24, any more in
/// 192.168.32.0/19 (a connected subnet added only when there are more).
pub(crate) fn rs_addr(r: u32) -> Ipv4Addr {
    if r < u32::from(RS_COUNT) {
        Ipv4Addr::new(192, 168, 10, 11 + r as u8)
    } else {
        Ipv4Addr::from_bits(0xC0A8_2000 + r)
    }
}

/// The configuration: one port, the VIP, `laddrs` local addresses, real servers in connected
/// subnets with static neighbours, a default route via a static gateway; services
/// `tcp:10.0.0.100:80` (in mode `tcp_forward`, scheduled as `tcp_sched` says; the real
/// servers serve port 80 in DR and TUN, 8080 otherwise) and `udp:10.0.0.100:53` (FullNAT,
/// `rr` over the eight real servers of the base set-up).
pub(crate) fn control_state(s: &Setup) -> ControlState {
    let (laddrs, timeouts, tcp_forward) = (s.laddrs, s.timeouts, s.tcp_forward);
    let ports = vec![PortState {
        name: "dp0".into(),
        id: 0,
        mac: MacAddr(OUR_MAC),
        mtu: 1500,
        kni: false,
    }];
    let mut cs = ControlState::new(ports, timeouts, STAT_SLOTS);
    let ip = |a: Ipv4Addr| IpAddr::V4(a);
    cs.addr_add(ip(Ipv4Addr::new(10, 0, 0, 1)), 24, "dp0")
        .unwrap();
    cs.addr_add(ip(VIP), 32, "dp0").unwrap();
    cs.addr_add(ip(Ipv4Addr::new(192, 168, 10, 1)), 24, "dp0")
        .unwrap();
    for k in 0..laddrs {
        cs.addr_add(ip(laddr(k)), 17, "dp0").unwrap();
    }
    if s.tcp_sched.real_servers > u32::from(RS_COUNT) {
        cs.addr_add(ip(Ipv4Addr::new(192, 168, 32, 1)), 19, "dp0")
            .unwrap();
    }
    cs.route_add(
        ip(Ipv4Addr::UNSPECIFIED),
        0,
        "dp0",
        Some(ip(Ipv4Addr::new(10, 0, 0, 254))),
        None,
    )
    .unwrap();
    cs.neigh_add(ip(Ipv4Addr::new(10, 0, 0, 254)), "02:00:00:00:00:fe", "dp0")
        .unwrap();
    for proto in [Proto::Tcp, Proto::Udp] {
        let (vport, rport, forward) = match (proto, tcp_forward) {
            (Proto::Tcp, Forward::Dr | Forward::Tun) => (TCP_VPORT, TCP_VPORT, tcp_forward),
            (Proto::Tcp, _) => (TCP_VPORT, RS_TCP_PORT, tcp_forward),
            (Proto::Udp, _) => (UDP_VPORT, RS_UDP_PORT, Forward::Fnat),
        };
        let key = ServiceKey {
            proto,
            vip: ip(VIP),
            port: vport,
        };
        let (spec, servers) = match proto {
            Proto::Tcp => (s.tcp_sched.spec(key, forward), s.tcp_sched.real_servers),
            Proto::Udp => (
                ServiceSpec::new(key, Sched::Rr, forward),
                u32::from(RS_COUNT),
            ),
        };
        cs.service_add(&spec).unwrap();
        for r in 0..servers {
            let rs = std::net::SocketAddr::new(ip(rs_addr(r)), rport);
            cs.rs_add(&key, &RsSpec::new(rs, 1)).unwrap();
        }
        for k in 0..laddrs {
            cs.laddr_add(&key, ip(laddr(k))).unwrap();
        }
    }
    for r in 0..s.tcp_sched.real_servers.max(u32::from(RS_COUNT)) {
        let mac = if r < u32::from(RS_COUNT) {
            format!("02:00:00:00:01:{:02x}", 11 + r)
        } else {
            format!("02:00:00:01:{:02x}:{:02x}", r >> 8, r & 0xff)
        };
        cs.neigh_add(ip(rs_addr(r)), &mac, "dp0").unwrap();
    }
    cs
}

/// How the TCP service schedules: the base set-up is `rr` over eight real servers of weight 1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SchedSetup {
    pub sched: Sched,
    pub flags: SchedFlags,
    pub persistence: Option<Persistence>,
    pub real_servers: u32,
}

impl SchedSetup {
    /// `sched` over `real_servers`, no flags, not persistent.
    pub(crate) fn new(sched: Sched, real_servers: u32) -> SchedSetup {
        SchedSetup {
            sched,
            flags: SchedFlags::default(),
            persistence: None,
            real_servers,
        }
    }

    /// The same, persistent for five minutes per client address.
    pub(crate) fn persistent(self) -> SchedSetup {
        SchedSetup {
            persistence: Some(Persistence {
                timeout: 300,
                netmask: 32,
            }),
            ..self
        }
    }

    fn spec(&self, key: ServiceKey, forward: Forward) -> ServiceSpec {
        ServiceSpec {
            sched_flags: self.flags,
            persistence: self.persistence,
            ..ServiceSpec::new(key, self.sched, forward)
        }
    }
}

/// Where the worker's output goes: transmitted frames return to the pool they came from.
pub(crate) struct Sink {
    pub pool: Vec<BenchFrame>,
    pub tx: u64,
}

impl Sink {
    pub(crate) fn new(frames: usize) -> Sink {
        Sink {
            pool: (0..frames).map(|_| Box::new(VecFrame::new())).collect(),
            tx: 0,
        }
    }
}

impl Output<BenchFrame> for Sink {
    #[inline(always)]
    fn tx(&mut self, _port: u16, f: BenchFrame) {
        self.tx += 1;
        self.pool.push(f);
    }
    #[inline]
    fn alloc(&mut self) -> Option<BenchFrame> {
        self.pool.pop()
    }
}

/// Frame templates of one length, stored back to back (no per-frame allocation).
pub(crate) struct Templates {
    bytes: Vec<u8>,
    len: usize,
}

impl Templates {
    pub(crate) fn with_capacity(n: usize) -> Templates {
        Templates {
            bytes: Vec::with_capacity(n * FRAME_ROOM),
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, frame: &[u8]) {
        if self.bytes.is_empty() {
            self.len = frame.len();
        }
        assert_eq!(frame.len(), self.len, "templates share one length");
        self.bytes.extend_from_slice(frame);
    }

    pub(crate) fn count(&self) -> usize {
        self.bytes.len().checked_div(self.len).unwrap_or(0)
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> &[u8] {
        &self.bytes[i * self.len..(i + 1) * self.len]
    }
}

/// Writes a frame `src` → `dst` (Ethernet + IPv4 + TCP with `flags`, or UDP) with valid IPv4
/// and L4 checksums into `buf`, 60 bytes for data (54 for a bare SYN); returns its length.
pub(crate) fn write_frame(
    buf: &mut [u8; FRAME_ROOM],
    proto: IpProto,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
) -> usize {
    let payload_len = match proto {
        IpProto::TCP if flags & SYN != 0 => 0,
        IpProto::TCP => TCP_PAYLOAD,
        _ => UDP_PAYLOAD,
    };
    const PAYLOAD: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz012345";
    let payload = &PAYLOAD[..payload_len];
    // No allocation: the memory bench counts the allocations while it fills the table.
    let spec = Spec::between((PEER_MAC, OUR_MAC), src, dst);
    let ack = if flags & ACK != 0 { 0x2000_0000 } else { 0 };
    if proto == IpProto::TCP {
        frames::write_tcp(buf, &spec, (flags, 0x1000_0000, ack), payload)
    } else {
        frames::write_udp(buf, &spec, payload)
    }
}

/// The service address of `proto` (TCP or UDP).
pub(crate) fn vip(proto: IpProto) -> SocketAddrV4 {
    let port = if proto == IpProto::TCP {
        TCP_VPORT
    } else {
        UDP_VPORT
    };
    SocketAddrV4::new(VIP, port)
}

/// Takes frames from the pool, restores templates `start..start + n` (wrapping) into them, and
/// hands them to `process` in bursts of at most [`worker::BURST`].
#[inline(always)]
fn fill_bursts(
    sink: &mut Sink,
    burst: &mut Vec<BenchFrame>,
    t: &Templates,
    start: usize,
    n: usize,
    mut process: impl FnMut(&mut Sink, &mut Vec<BenchFrame>),
) {
    let count = t.count();
    let mut i = start;
    for k in 0..n {
        let Some(mut f) = sink.pool.pop() else {
            break;
        };
        restore(&mut f, t.get(i));
        burst.push(f);
        i += 1;
        if i == count {
            i = 0;
        }
        if burst.len() == worker::BURST || k + 1 == n {
            process(sink, burst);
        }
    }
    if !burst.is_empty() {
        process(sink, burst);
    }
}

/// One worker with its configuration, its neighbour table, its frame pool and its clock.
pub(crate) struct Bench {
    pub worker: Worker<BenchFrame>,
    pub snap: Snapshot,
    pub neigh: NeighTable,
    pub sink: Sink,
    pub stats: Arc<Stats>,
    pub now_ms: u64,
    /// The burst being filled (capacity [`worker::BURST`], kept across runs).
    burst: Vec<BenchFrame>,
}

/// What to build.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Setup {
    /// Capacity of the worker's connection table.
    pub conns: usize,
    /// Local addresses per service (64,512 ports each on one worker).
    pub laddrs: u32,
    pub timeouts: Timeouts,
    /// Forwarding mode of the TCP service.
    pub tcp_forward: Forward,
    /// Its scheduler and real servers.
    pub tcp_sched: SchedSetup,
}

impl Setup {
    /// A table and enough local ports for `flows` connections.
    pub(crate) fn for_flows(flows: usize) -> Setup {
        Setup {
            conns: flows.max(WorkerLimits::default().conns),
            laddrs: (flows / 60_000 + 1) as u32,
            timeouts: Timeouts::default(),
            tcp_forward: Forward::Fnat,
            tcp_sched: SchedSetup::new(Sched::Rr, u32::from(RS_COUNT)),
        }
    }
}

impl Bench {
    pub(crate) fn new(s: Setup) -> Bench {
        let mut cs = control_state(&s);
        let snap = cs.snapshot();
        let neigh = cs.neigh_table();
        let stats = Arc::new(Stats::new(1, STAT_SLOTS as usize));
        let limits = WorkerLimits {
            conns: s.conns,
            ..WorkerLimits::default()
        };
        let worker = Worker::new(0, 1, limits, 0, Arc::clone(&stats));
        let mut b = Bench {
            worker,
            snap,
            neigh,
            sink: Sink::new(BATCH + 64),
            stats,
            now_ms: 1,
            burst: Vec::with_capacity(worker::BURST),
        };
        // Brings the worker up to the snapshot, as any entry point does.
        b.housekeeping(0);
        b
    }

    pub(crate) fn housekeeping(&mut self, sweep_budget: usize) {
        let ctx = Ctx {
            snap: &self.snap,
            neigh: &self.neigh,
            now_ms: self.now_ms,
        };
        self.worker.housekeeping(&ctx, sweep_budget, &mut self.sink);
    }

    /// Hands one frame holding `bytes` to the worker (setup; not measured).
    pub(crate) fn inject(&mut self, bytes: &[u8]) {
        let mut f = self.sink.pool.pop().expect("frame pool empty");
        restore(&mut f, bytes);
        let ctx = Ctx {
            snap: &self.snap,
            neigh: &self.neigh,
            now_ms: self.now_ms,
        };
        self.worker.process(&ctx, 0, f, &mut self.sink);
    }

    /// Processes templates `start..start + n` (wrapping) once each, in bursts of
    /// [`worker::BURST`] as the daemon's worker loop hands them over: the measured loop.
    #[inline(never)]
    pub(crate) fn run(&mut self, t: &Templates, start: usize, n: usize) {
        self.feed(t, start, n, |w, ctx, burst, sink| {
            w.process_burst(ctx, 0, burst, sink)
        });
    }

    /// [`Bench::run`] with each packet handed to `Worker::process` on its own: no lookups
    /// overlap, so this shows what the burst prefetch of `process_burst` buys and costs.
    #[inline(never)]
    pub(crate) fn run_one_by_one(&mut self, t: &Templates, start: usize, n: usize) {
        self.feed(t, start, n, |w, ctx, burst, sink| {
            for f in burst.drain(..) {
                w.process(ctx, 0, f, sink);
            }
        });
    }

    /// Restores templates `start..start + n` into pool frames and hands each burst of them to
    /// `process` with the worker and its context.
    #[inline(always)]
    fn feed(
        &mut self,
        t: &Templates,
        start: usize,
        n: usize,
        mut process: impl FnMut(&mut Worker<BenchFrame>, &Ctx<'_>, &mut Vec<BenchFrame>, &mut Sink),
    ) {
        let ctx = Ctx {
            snap: &self.snap,
            neigh: &self.neigh,
            now_ms: self.now_ms,
        };
        let worker = &mut self.worker;
        let mut burst = std::mem::take(&mut self.burst);
        fill_bursts(&mut self.sink, &mut burst, t, start, n, |sink, burst| {
            process(worker, &ctx, black_box(burst), sink)
        });
        self.burst = burst;
    }

    /// The same loop without the worker: pool pop, frame restore, the burst handed straight to
    /// the pool. Subtracted from [`Bench::run`] to get the engine's own cost.
    #[inline(never)]
    pub(crate) fn run_baseline(&mut self, t: &Templates, start: usize, n: usize) {
        let mut burst = std::mem::take(&mut self.burst);
        fill_bursts(&mut self.sink, &mut burst, t, start, n, |sink, burst| {
            for f in black_box(burst).drain(..) {
                sink.tx(0, f);
            }
        });
        self.burst = burst;
    }

    /// Packets dropped so far, all reasons.
    pub(crate) fn drops(&self) -> u64 {
        let w = self.stats.worker(0);
        DropReason::ALL
            .iter()
            .map(|r| w.drops[r.index()].get())
            .sum()
    }

    /// Panics unless every packet so far was transmitted (none dropped, none parked).
    pub(crate) fn assert_all_sent(&self, sent: u64) {
        let w = self.stats.worker(0);
        let dropped: Vec<(DropReason, u64)> = DropReason::ALL
            .iter()
            .map(|&r| (r, w.drops[r.index()].get()))
            .filter(|&(_, n)| n > 0)
            .collect();
        assert!(
            dropped.is_empty(),
            "the worker dropped packets: {dropped:?}"
        );
        assert_eq!(
            self.sink.tx, sent,
            "the worker did not transmit every packet"
        );
    }

    /// Opens `n` connections of `proto`, flows `first..first + n`, and for TCP completes them to
    /// ESTABLISHED (client SYN, then client ACK).
    pub(crate) fn open(&mut self, proto: IpProto, first: u32, n: u32) {
        let mut buf = [0u8; FRAME_ROOM];
        for i in first..first + n {
            let flags = if proto == IpProto::TCP { SYN } else { 0 };
            let len = write_frame(&mut buf, proto, client(i), vip(proto), flags);
            self.inject(&buf[..len]);
            if proto == IpProto::TCP {
                let len = write_frame(&mut buf, proto, client(i), vip(proto), ACK);
                self.inject(&buf[..len]);
            }
        }
    }

    /// The connection of flow `i`.
    pub(crate) fn conn(&self, proto: IpProto, i: u32) -> Conn {
        let c = client(i);
        let v = vip(proto);
        let t = Tuple {
            proto,
            src: *c.ip(),
            sport: c.port(),
            dst: *v.ip(),
            dport: v.port(),
        };
        let (id, dir) = self
            .worker
            .conns()
            .lookup(&t)
            .expect("flow has a connection");
        assert_eq!(dir, Dir::Inbound);
        *self.worker.conns().get(id)
    }
}

/// Restores a frame from its template: headroom, length and bytes (the engine rewrites in
/// place, and a tunnel prepends its header).
#[inline]
pub(crate) fn restore(f: &mut VecFrame, bytes: &[u8]) {
    f.reset();
    f.set_len(bytes.len());
    f.data_mut().copy_from_slice(bytes);
}

/// Which packets of a flow a template carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Client → VIP data segment (ACK) of an established TCP connection.
    TcpIn,
    /// Real server → local address data segment (ACK): the reply direction.
    TcpOut,
    /// Client → VIP UDP datagram of a known flow.
    UdpIn,
    /// Client SYN to the VIP from a flow without connection.
    Syn,
}

/// Templates of `kind` for the flows in `flows`, in that order. `TcpOut` needs the
/// connections to exist (it takes the local address and port the worker chose).
pub(crate) fn templates(b: &Bench, kind: Kind, flows: &[u32]) -> Templates {
    let mut t = Templates::with_capacity(flows.len());
    let mut buf = [0u8; FRAME_ROOM];
    for &i in flows {
        let len = match kind {
            Kind::TcpIn => write_frame(&mut buf, IpProto::TCP, client(i), vip(IpProto::TCP), ACK),
            Kind::UdpIn => write_frame(&mut buf, IpProto::UDP, client(i), vip(IpProto::UDP), 0),
            Kind::Syn => write_frame(&mut buf, IpProto::TCP, client(i), vip(IpProto::TCP), SYN),
            Kind::TcpOut => {
                let c = b.conn(IpProto::TCP, i);
                let rs = SocketAddrV4::new(Ipv4Addr::from_bits(c.rip), c.rport);
                let l = SocketAddrV4::new(Ipv4Addr::from_bits(c.lip), c.lport);
                write_frame(&mut buf, IpProto::TCP, rs, l, ACK)
            }
        };
        t.push(&buf[..len]);
    }
    t
}

/// A deterministic shuffle of `0..n` (xorshift Fisher-Yates), so consecutive packets hit
/// scattered connections, as on a real link.
pub(crate) fn shuffled(n: u32, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// `n` distinct flows picked at random among `0..total`.
pub(crate) fn sample(total: u32, n: usize, seed: u64) -> Vec<u32> {
    let mut v = shuffled(total, seed);
    v.truncate(n);
    v
}

/// A connection-table fixture: `n` connections inserted directly (no worker), and the tuples to
/// look up.
pub(crate) struct TableFixture {
    pub table: ConnTable,
    pub keys: Vec<Tuple>,
}

/// The connection of flow `i` as the worker would build it (FullNAT, 32 local addresses).
pub(crate) fn table_conn(i: u32) -> Conn {
    let c = client(i);
    Conn {
        cip: c.ip().to_bits(),
        vip: VIP.to_bits(),
        lip: laddr(i % 256).to_bits(),
        rip: Ipv4Addr::new(192, 168, 10, 11 + (i % u32::from(RS_COUNT)) as u8).to_bits(),
        cport: c.port(),
        vport: TCP_VPORT,
        lport: 1024 + ((i / 256) % 64_512) as u16,
        rport: RS_TCP_PORT,
        rs_slot: 2,
        expires: 900_000,
        svc_slot: 0,
        proto: IpProto::TCP,
        state: TcpState::Established,
        flags: ConnFlags::empty(),
    }
}

/// A full table of `n` connections (capacity `n`), and `lookups` keys of random live
/// connections, half of them inbound and half outbound.
pub(crate) fn table_fixture(n: u32, lookups: usize) -> TableFixture {
    let mut table = ConnTable::new(n as usize, 0x5EED_1234_ABCD_0001);
    for i in 0..n {
        table.insert(table_conn(i)).expect("insert");
    }
    let keys = sample(n, lookups, 0x9E37_79B9)
        .into_iter()
        .enumerate()
        .map(|(k, i)| {
            let dir = if k % 2 == 0 {
                Dir::Inbound
            } else {
                Dir::Outbound
            };
            table_conn(i).tuple(dir)
        })
        .collect();
    TableFixture { table, keys }
}

/// Looks every key up once; returns how many were found.
#[inline(never)]
pub(crate) fn lookup_all(table: &ConnTable, keys: &[Tuple]) -> usize {
    let mut found = 0;
    for k in keys {
        found += usize::from(black_box(table.lookup(black_box(k))).is_some());
    }
    found
}

/// Looks every key up once the way the worker does with a burst: for each piece of
/// [`worker::BURST`] keys, every bucket is hashed and its head prefetched, then every first
/// entry is prefetched, then the keys are looked up. Returns how many were found.
#[inline(never)]
pub(crate) fn lookup_all_burst(table: &ConnTable, keys: &[Tuple]) -> usize {
    let mut found = 0;
    let mut buckets = [None; worker::BURST];
    for piece in keys.chunks(worker::BURST) {
        for (b, k) in buckets.iter_mut().zip(piece) {
            let bucket = table.bucket(black_box(k));
            table.prefetch_bucket(bucket);
            *b = Some(bucket);
        }
        for b in buckets.iter().take(piece.len()).flatten() {
            table.prefetch_entry(*b);
        }
        for (b, k) in buckets.iter().zip(piece) {
            let hit = b.and_then(|b| table.lookup_in(b, k));
            found += usize::from(black_box(hit).is_some());
        }
    }
    found
}

/// The loop of [`lookup_all`] without the lookup.
#[inline(never)]
pub(crate) fn lookup_baseline(keys: &[Tuple]) -> usize {
    let mut found = 0;
    for k in keys {
        found += usize::from(black_box(black_box(k).sport) != 0);
    }
    found
}
