//! The worker harness of the engine tests: a worker of the lab in `common`, fed frames built
//! with etherparse through `Worker::process`, `Worker::process_burst` and
//! `Worker::housekeeping`; what it transmits is decoded and checked (addresses, ports, MACs,
//! TTL, full checksum recomputes) and its frames are counted, so that a leak shows.

use crate::frames::{self, Spec};
use crate::lab::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use dpvs_core::drop::DropReason;
use dpvs_core::engine::neigh::NeighTable;
use dpvs_core::engine::snapshot::Snapshot;
use dpvs_core::engine::stats::{Stats, WorkerCounters};
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::engine::worker::{
    self, Command, ConnView, Ctx, Event, Output, Worker, WorkerLimits,
};
use dpvs_core::packet::ipv4::IpProto;
use dpvs_core::packet::tcp::{ACK, SYN};
use dpvs_core::packet::{ArpInfo, Frame, L3, MacAddr, Packet, VecFrame, checksum, parse};
use dpvs_daemon::control::state::ControlState;
use etherparse::{
    Icmpv4Header, LinkHeader, NetHeaders, PacketHeaders, TcpHeader, TransportHeader, UdpHeader,
};

pub const WORKERS: u16 = 2;
/// The worker under test; it allocates odd local ports.
pub const ME: u16 = 1;
pub use crate::frames::{ARP_REPLY, ARP_REQUEST};

// ---------------------------------------------------------------------------------------------
// Frames and the harness
// ---------------------------------------------------------------------------------------------

/// A frame type the harness can make; `live` counts instances for the leak check.
pub trait MakeFrame: Frame + Sized {
    fn make(live: &Arc<AtomicUsize>, bytes: &[u8]) -> Self;
}

impl MakeFrame for VecFrame {
    fn make(_: &Arc<AtomicUsize>, bytes: &[u8]) -> Self {
        VecFrame::from_bytes(bytes)
    }
}

/// A `VecFrame` that counts its live instances, to prove the worker neither leaks nor
/// duplicates frames.
pub struct Counted {
    pub f: VecFrame,
    pub live: Arc<AtomicUsize>,
}

impl MakeFrame for Counted {
    fn make(live: &Arc<AtomicUsize>, bytes: &[u8]) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Counted {
            f: VecFrame::from_bytes(bytes),
            live: Arc::clone(live),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Frame for Counted {
    fn data(&self) -> &[u8] {
        self.f.data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.f.data_mut()
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        self.f.prepend(n)
    }
    fn adj(&mut self, n: usize) -> bool {
        self.f.adj(n)
    }
    fn trim(&mut self, n: usize) -> bool {
        self.f.trim(n)
    }
    fn set_len(&mut self, len: usize) -> bool {
        self.f.set_len(len)
    }
}

/// The worker's TX buffers and mempool.
pub struct Out<F> {
    pub sent: Vec<(u16, F)>,
    /// Frames handed to a port's kernel twin (by port).
    pub kernel: Vec<(u16, F)>,
    /// Refuse frames for the kernel, as a full ring to the bridge does.
    pub kernel_full: bool,
    pub live: Arc<AtomicUsize>,
}

impl<F: MakeFrame> Output<F> for Out<F> {
    fn tx(&mut self, port: u16, f: F) {
        self.sent.push((port, f));
    }
    fn alloc(&mut self) -> Option<F> {
        Some(F::make(&self.live, &[]))
    }
    fn to_kernel(&mut self, port: u16, f: F) -> Result<(), F> {
        if self.kernel_full {
            return Err(f);
        }
        self.kernel.push((port, f));
        Ok(())
    }
}

/// A worker with the control state it was configured from, the published snapshot and
/// neighbour table, and the engine clock; its commands are served by [`Rig::housekeeping`],
/// as the daemon's lcore loop serves them between bursts.
pub struct Rig<F> {
    pub state: ControlState,
    pub snap: Snapshot,
    pub neigh: NeighTable,
    pub worker: Worker<F>,
    pub stats: Arc<Stats>,
    pub commands: Sender<Command>,
    commands_rx: Receiver<Command>,
    pub out: Out<F>,
    pub now: u64,
    pub live: Arc<AtomicUsize>,
}

pub fn limits(conns: usize) -> WorkerLimits {
    WorkerLimits {
        conns,
        pending_per_hop: 8,
        pending_hops: 16,
    }
}

impl<F: MakeFrame> Rig<F> {
    pub fn new(mut state: ControlState, limits: WorkerLimits) -> Self {
        let snap = state.snapshot();
        let neigh = state.neigh_table();
        let stats = Arc::new(Stats::new(usize::from(WORKERS), SLOTS as usize));
        let (commands, commands_rx) = unbounded();
        let worker = Worker::new(ME, WORKERS, limits, 0, Arc::clone(&stats));
        let live = Arc::new(AtomicUsize::new(0));
        let mut rig = Rig {
            state,
            snap,
            neigh,
            worker,
            stats,
            commands,
            commands_rx,
            out: Out {
                sent: Vec::new(),
                kernel: Vec::new(),
                kernel_full: false,
                live: Arc::clone(&live),
            },
            now: 1_000,
            live,
        };
        let first = rig.housekeeping();
        assert!(first.is_empty(), "the first housekeeping emits nothing");
        rig
    }

    /// Processes one received frame; returns what the worker transmitted.
    pub fn send(&mut self, port: u16, bytes: &[u8]) -> Vec<(u16, F)> {
        let f = F::make(&self.live, bytes);
        let ctx = Ctx {
            snap: &self.snap,
            neigh: &self.neigh,
            now_ms: self.now,
        };
        self.worker.process(&ctx, port, f, &mut self.out);
        std::mem::take(&mut self.out.sent)
    }

    /// Processes received frames as one burst; returns what the worker transmitted.
    pub fn send_burst(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<(u16, F)> {
        let mut burst: Vec<F> = frames.iter().map(|b| F::make(&self.live, b)).collect();
        let ctx = Ctx {
            snap: &self.snap,
            neigh: &self.neigh,
            now_ms: self.now,
        };
        self.worker
            .process_burst(&ctx, port, &mut burst, &mut self.out);
        assert!(burst.is_empty(), "process_burst leaves the burst empty");
        std::mem::take(&mut self.out.sent)
    }

    /// The worker's connections, as `dpvs-ctl conn list` gets them.
    pub fn list_conns(&mut self) -> Vec<ConnView> {
        self.list_conns_limited(usize::MAX)
    }

    /// At most `limit` of the worker's connections.
    pub fn list_conns_limited(&mut self, limit: usize) -> Vec<ConnView> {
        self.command(|reply| Command::ListConns {
            svc_slot: None,
            limit,
            reply,
        })
    }

    /// Cuts the connections of the real server in counter slot `rs_slot`, as the control
    /// plane does after `rs del`; returns how many the worker cut.
    pub fn cut_rs(&mut self, rs_slot: u32) -> usize {
        self.command(|reply| Command::CutRs { rs_slot, reply })
    }

    /// Cuts the connections of the service in counter slot `svc_slot` (`service del`).
    pub fn cut_service(&mut self, svc_slot: u32) -> usize {
        self.command(|reply| Command::CutService { svc_slot, reply })
    }

    /// Sends the command `make` builds around a reply channel, runs housekeeping (which serves
    /// it) and returns the worker's answer.
    fn command<T>(&mut self, make: impl FnOnce(Sender<T>) -> Command) -> T {
        let (reply, rx) = bounded(1);
        self.commands.send(make(reply)).unwrap();
        self.housekeeping();
        rx.try_recv().expect("the command answered by housekeeping")
    }

    /// Runs housekeeping with a budget that sweeps the whole table, then serves the commands
    /// sent on [`Rig::commands`].
    pub fn housekeeping(&mut self) -> Vec<(u16, F)> {
        let ctx = Ctx {
            snap: &self.snap,
            neigh: &self.neigh,
            now_ms: self.now,
        };
        self.worker.housekeeping(&ctx, usize::MAX, &mut self.out);
        while let Ok(cmd) = self.commands_rx.try_recv() {
            self.worker.serve(&ctx, cmd);
        }
        std::mem::take(&mut self.out.sent)
    }

    pub fn advance(&mut self, ms: u64) {
        self.now = self.now.wrapping_add(ms);
    }

    /// Publishes the control state again (snapshot and neighbours) and lets the worker see it.
    pub fn republish(&mut self) -> Vec<(u16, F)> {
        self.snap = self.state.snapshot();
        self.neigh = self.state.neigh_table();
        self.housekeeping()
    }

    pub fn counters(&self) -> &WorkerCounters {
        self.stats.worker(usize::from(ME))
    }

    pub fn drops(&self, r: DropReason) -> u64 {
        self.counters().drops[r.index()].get()
    }

    pub fn total_drops(&self) -> u64 {
        self.counters().drops.iter().map(|c| c.get()).sum()
    }

    /// The events the worker has not yet handed over.
    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.worker.poll_event()).collect()
    }
}

impl Rig<VecFrame> {
    /// The lab with both real servers resolved and default timeouts.
    pub fn lab() -> Self {
        Rig::new(lab_state(Timeouts::default(), &[RS1, RS2]), limits(4096))
    }
}

/// A TCP frame between the lab MACs `macs` (source, destination), checksums valid.
pub fn tcp_frame(
    macs: (MacAddr, MacAddr),
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
    (seq, ack): (u32, u32),
    payload: &[u8],
) -> Vec<u8> {
    let s = Spec {
        window: 64240,
        ..Spec::between((macs.0.0, macs.1.0), src, dst).with_payload(payload)
    };
    frames::tcp_frame(&s, flags, seq, ack)
}

/// A UDP frame between the lab MACs `macs` (source, destination), checksum valid.
pub fn udp_frame(
    macs: (MacAddr, MacAddr),
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    frames::udp_frame(&Spec::between((macs.0.0, macs.1.0), src, dst).with_payload(payload))
}

/// An ICMP echo request from the client's side.
pub fn icmp_echo(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let (src, dst) = (SocketAddrV4::new(src, 0), SocketAddrV4::new(dst, 0));
    let s = Spec::between((CLIENT_MAC.0, MAC0.0), src, dst).with_payload(payload);
    frames::icmp_echo_frame(&s, id, seq)
}

/// An Ethernet/IPv4 ARP frame to `eth_dst` (also the target hardware address of a reply),
/// zero padded to 60 bytes.
pub fn arp_frame(eth_dst: MacAddr, op: u16, sha: MacAddr, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let tha = if op == ARP_REQUEST {
        MacAddr::ZERO
    } else {
        eth_dst
    };
    let a = frames::Arp {
        eth_src: sha.0,
        eth_dst: eth_dst.0,
        vlan: None,
        op,
        sha: sha.0,
        spa,
        tha: tha.0,
        tpa,
    };
    frames::arp(&a, true)
}

pub fn client_tcp(cport: u16, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    tcp_frame(
        (CLIENT_MAC, MAC0),
        SocketAddrV4::new(CLIENT, cport),
        SocketAddrV4::new(VIP, VPORT_TCP),
        flags,
        (seq, ack),
        payload,
    )
}

pub fn rs_tcp(rs: Ipv4Addr, lport: u16, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    tcp_frame(
        (mac_of(rs).unwrap_or(MacAddr([2, 0, 0, 0, 9, 9])), MAC1),
        SocketAddrV4::new(rs, RPORT_TCP),
        SocketAddrV4::new(LADDR, lport),
        flags,
        (seq, ack),
        payload,
    )
}

pub fn client_udp(cport: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame(
        (CLIENT_MAC, MAC0),
        SocketAddrV4::new(CLIENT, cport),
        SocketAddrV4::new(VIP, VPORT_UDP),
        payload,
    )
}

pub fn rs_udp(rs: Ipv4Addr, lport: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame(
        (mac_of(rs).expect("lab rs"), MAC1),
        SocketAddrV4::new(rs, RPORT_UDP),
        SocketAddrV4::new(LADDR, lport),
        payload,
    )
}

/// An IPv4 frame the worker emitted, decoded, with every checksum verified by a full
/// recompute (etherparse's and the crate's own full-sum functions).
#[derive(Debug)]
pub struct Ip4 {
    pub port: u16,
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp: Option<TcpHeader>,
    pub udp: Option<UdpHeader>,
    pub icmp: Option<Icmpv4Header>,
    pub payload: Vec<u8>,
}

pub fn ip4(port: u16, data: &[u8]) -> Ip4 {
    let h = PacketHeaders::from_ethernet_slice(data)
        .unwrap_or_else(|e| panic!("emitted frame does not decode: {e:?}\n{data:02x?}"));
    let Some(LinkHeader::Ethernet2(eth)) = h.link else {
        panic!("emitted frame has no Ethernet II header")
    };
    let Some(NetHeaders::Ipv4(ip, _)) = &h.net else {
        panic!("emitted frame is not IPv4: {:?}", h.net)
    };
    assert_eq!(
        ip.header_checksum,
        ip.calc_header_checksum(),
        "IPv4 header checksum (etherparse recompute)"
    );
    // The crate's own full recompute over the exact bytes.
    let info = match parse(data) {
        Ok(Packet {
            l3: L3::Ipv4(info), ..
        }) => info,
        other => panic!("the crate's parser refuses an emitted frame: {other:?}"),
    };
    assert!(
        checksum::ipv4_header_valid(&data[info.l3_off..info.l4_off]),
        "IPv4 header checksum (full sum)"
    );
    let segment = &data[info.l4_off..info.end()];
    let payload = h.payload.slice().to_vec();
    let (mut tcp, mut udp, mut icmp) = (None, None, None);
    let (sport, dport) = match &h.transport {
        Some(TransportHeader::Tcp(t)) => {
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv4(ip, &payload).expect("tcp checksum"),
                "TCP checksum (etherparse recompute)"
            );
            assert!(
                checksum::ipv4_l4_valid(info.src, info.dst, IpProto::TCP, segment),
                "TCP checksum (full sum)"
            );
            tcp = Some(t.clone());
            (t.source_port, t.destination_port)
        }
        Some(TransportHeader::Udp(u)) => {
            if u.checksum != 0 {
                assert_eq!(
                    u.checksum,
                    u.calc_checksum_ipv4(ip, &payload).expect("udp checksum"),
                    "UDP checksum (etherparse recompute)"
                );
            }
            assert!(
                checksum::ipv4_l4_valid(info.src, info.dst, IpProto::UDP, segment),
                "UDP checksum (full sum)"
            );
            udp = Some(u.clone());
            (u.source_port, u.destination_port)
        }
        Some(TransportHeader::Icmpv4(i)) => {
            assert_eq!(
                i.checksum,
                i.icmp_type.calc_checksum(&payload),
                "ICMP checksum (etherparse recompute)"
            );
            assert!(checksum::plain_valid(segment), "ICMP checksum (full sum)");
            icmp = Some(i.clone());
            (0, 0)
        }
        other => panic!("unexpected transport {other:?}"),
    };
    Ip4 {
        port,
        eth_dst: MacAddr(eth.destination),
        eth_src: MacAddr(eth.source),
        src: Ipv4Addr::from(ip.source),
        dst: Ipv4Addr::from(ip.destination),
        ttl: ip.time_to_live,
        sport,
        dport,
        tcp,
        udp,
        icmp,
        payload,
    }
}

/// The steering decision for a raw frame, as the lcore loop takes it (parse, then `owner`).
pub fn owner_of(snap: &Snapshot, workers: u16, bytes: &[u8]) -> Option<u16> {
    parse(bytes)
        .ok()
        .and_then(|p| worker::owner(snap, workers, bytes, &p))
}

/// The one frame a step emitted, decoded as IPv4.
pub fn only_ip4<F: Frame>(out: &[(u16, F)], what: &str) -> Ip4 {
    assert_eq!(
        out.len(),
        1,
        "{what}: expected exactly one frame out, got {}",
        out.len()
    );
    ip4(out[0].0, out[0].1.data())
}

/// An ARP frame the worker emitted: (Ethernet dst, Ethernet src, ARP body).
pub fn arp_out(data: &[u8]) -> (MacAddr, MacAddr, ArpInfo) {
    assert_eq!(&data[12..14], &[0x08, 0x06], "ethertype ARP");
    match parse(data) {
        Ok(Packet { l3: L3::Arp(a), .. }) => (
            MacAddr::from_slice(data).unwrap(),
            MacAddr::from_slice(&data[6..]).unwrap(),
            a,
        ),
        other => panic!("not an ARP frame: {other:?}"),
    }
}

pub fn is_syn(p: &Ip4) -> bool {
    p.tcp.as_ref().is_some_and(|t| t.syn && !t.ack)
}

/// Opens a connection with a SYN from `cport`; returns (real server, local port).
pub fn open(rig: &mut Rig<VecFrame>, cport: u16) -> (Ipv4Addr, u16) {
    let out = rig.send(0, &client_tcp(cport, SYN, 1000, 0, b""));
    let p = only_ip4(&out, "SYN");
    assert_eq!(p.port, 1, "a SYN leaves on the real-server port");
    assert!(is_syn(&p), "the SYN stays a SYN: {:?}", p.tcp);
    (p.dst, p.sport)
}

/// A full handshake from `cport`; returns (real server, local port).
pub fn handshake(rig: &mut Rig<VecFrame>, cport: u16) -> (Ipv4Addr, u16) {
    let (rs, lport) = open(rig, cport);
    let out = rig.send(1, &rs_tcp(rs, lport, SYN | ACK, 5000, 1001, b""));
    assert_eq!(only_ip4(&out, "SYN+ACK").port, 0);
    let out = rig.send(0, &client_tcp(cport, ACK, 1001, 5001, b""));
    assert_eq!(only_ip4(&out, "handshake ACK").dst, rs);
    (rs, lport)
}
