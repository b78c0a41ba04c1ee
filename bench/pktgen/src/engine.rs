//! The generator's logic, free of DPDK: which packet to send next, what to make of each
//! returned frame, and the counters. The DPDK loop (`driver`) only moves buffers; tests drive this
//! with `VecFrame`s through a real or a deliberately broken balancer.
//!
//! The generator plays every client and every real server at once. Traffic kinds:
//! - established TCP: each flow is opened once (SYN, then an ACK with data, so the balancer
//!   holds it ESTABLISHED), then data segments flow client→VIP;
//! - established UDP: each flow's first datagram creates the balancer's entry, then datagrams;
//! - new connections: SYN; the real server answers SYN+ACK; the client ACKs with data; the
//!   real server resets; each step is the reply to the previous one arriving, built in the
//!   arriving buffer. Where the mode sends real-server answers straight to the client (DR, TUN,
//!   testpmd's reflection) the generator hands them over internally.

use std::net::SocketAddrV4;

use dpvs_core::packet::Frame;
use dpvs_core::packet::MacAddr;
use dpvs_core::packet::arp;
use dpvs_core::packet::ipv4::IpProto;
use dpvs_core::packet::parse::{self, L3};

use crate::check::{Bad, Net, Seen, Side};
use crate::flows::{FlowCursor, Order};
use crate::hist::Histogram;
use crate::probe::{F_MEASURED, Probe};
use crate::template::{Headers, Template, kind, min_frame_len, tcpf, write_frame};

/// The kind of traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Traffic {
    EstTcp,
    EstUdp,
    NewConn,
}

/// What to generate and what to expect back.
#[derive(Clone, Debug)]
pub struct Plan {
    pub traffic: Traffic,
    pub net: Net,
    pub order: Order,
    /// Frame length without FCS (raised to the minimum for the protocol).
    pub frame_len: usize,
    /// Established modes: the real server answers every data packet (both directions
    /// through the balancer).
    pub rs_reply: bool,
    pub seed: u64,
}

/// Everything counted (cumulative; the driver takes differences).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Client packets built.
    pub built: u64,
    /// Reply packets built in received buffers.
    pub replies: u64,
    /// Frames received.
    pub rx: u64,
    /// Frames that passed the check.
    pub ok: u64,
    /// Passed frames whose probe says "built in the measured interval".
    pub ok_measured: u64,
    /// Refused frames, by [`Bad`] index.
    pub bad: [u64; Bad::ALL.len()],
    /// TCP resets the device sent on its own (no probe): it had no state for the flow.
    pub dut_resets: u64,
    /// ARP requests answered (the device asked for a client or real server).
    pub arp_replies: u64,
    /// Other frames (not IPv4, not an ARP request).
    pub other: u64,
    /// Flows seen at a real server for the first time.
    pub flows_seen: u64,
    /// New connections started (SYN built), completed, and those of both that started in the
    /// measured interval.
    pub conns_started: u64,
    pub conns_done: u64,
    pub conns_started_measured: u64,
    pub conns_done_measured: u64,
    /// New connections given up: their flow was reused before they completed, or nothing
    /// completed for a while with the window full (see [`Engine::budget`]).
    pub conns_abandoned: u64,
}

impl Counters {
    /// All refused frames.
    pub fn bad_total(&self) -> u64 {
        self.bad.iter().sum()
    }
}

/// Priming: every flow gets its opening packets once, in order, before the run.
#[derive(Clone, Debug)]
struct Prime {
    /// The flows to open (all, or those not seen after a previous pass).
    list: Option<Vec<u32>>,
    n: u32,
    /// Next step: flow `next / steps`, packet `next % steps`.
    next: u64,
    steps: u64,
}

/// See the module doc.
pub struct Engine {
    plan: Plan,
    tmpl: Template,
    cursor: FlowCursor,
    /// Per flow: the packed path first seen at the real server (0: not seen yet).
    paths: Vec<u32>,
    /// New connections: per flow, the TSC at which its current connection started (0: none).
    starts: Vec<u64>,
    prime: Option<Prime>,
    measuring: bool,
    window: (u64, u64),
    /// TSC of the last completed connection (new-connection window, see [`Engine::budget`]).
    last_done: u64,
    pub c: Counters,
    /// One-way latency of measured packets, TSC cycles.
    pub lat: Histogram,
    /// New connections: SYN built to final packet received, TSC cycles.
    pub conn_lat: Histogram,
}

impl Engine {
    /// An engine for `plan`; allocates its per-flow tables here, never later.
    pub fn new(plan: Plan) -> Engine {
        let net = &plan.net;
        let proto = match plan.traffic {
            Traffic::EstUdp => IpProto::UDP,
            _ => IpProto::TCP,
        };
        assert_eq!(net.proto, proto, "plan.net.proto must match the traffic");
        let (ip, port) = net.clients.endpoint(0);
        let base = Headers {
            src_mac: net.our_mac,
            dst_mac: net.dut_mac,
            src: SocketAddrV4::new(ip, port),
            dst: net.vip,
            proto,
            ttl: net.ttl,
            flags: tcpf::ACK | tcpf::PSH,
            seq: 1,
            ack: 1,
        };
        let n = net.clients.n as usize;
        let established = plan.traffic != Traffic::NewConn;
        Engine {
            tmpl: Template::new(base, plan.frame_len),
            // New connections take the flows in turn, so that a tuple is reused only after
            // all the others (as a client's port allocator does).
            cursor: FlowCursor::new(
                if established {
                    plan.order
                } else {
                    Order::Sequential
                },
                net.clients.n,
                plan.seed,
            ),
            paths: if established { vec![0; n] } else { Vec::new() },
            starts: if established { Vec::new() } else { vec![0; n] },
            prime: None,
            measuring: false,
            window: (u64::MAX, u64::MAX),
            last_done: 0,
            c: Counters::default(),
            lat: Histogram::new(),
            conn_lat: Histogram::new(),
            plan,
        }
    }

    /// Length of the client frames ([`Engine::fill`] wants buffers of exactly this size).
    pub fn frame_len(&self) -> usize {
        self.tmpl.len()
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Starts a priming pass over every flow (`all`) or over the flows not seen at a real
    /// server yet. Returns the number of flows to open; no-op (0) for new connections.
    pub fn start_prime(&mut self, all: bool) -> u32 {
        if self.plan.traffic == Traffic::NewConn {
            return 0;
        }
        let steps = if self.plan.traffic == Traffic::EstTcp {
            2
        } else {
            1
        };
        let list = if all {
            None
        } else {
            Some(
                (0..self.plan.net.clients.n)
                    .filter(|&i| self.paths[i as usize] == 0)
                    .collect::<Vec<u32>>(),
            )
        };
        let n = list
            .as_ref()
            .map_or(self.plan.net.clients.n, |l| l.len() as u32);
        self.prime = Some(Prime {
            list,
            n,
            next: 0,
            steps,
        });
        n
    }

    /// Whether a priming pass still has packets to send.
    pub fn priming(&self) -> bool {
        self.prime
            .as_ref()
            .is_some_and(|p| p.next < u64::from(p.n) * p.steps)
    }

    /// Ends priming (the remaining prime packets are not sent).
    pub fn stop_prime(&mut self) {
        self.prime = None;
    }

    /// Marks the packets built from now on as measured (`true`, at TSC `now`) or not.
    pub fn set_measuring(&mut self, on: bool, now: u64) {
        if on {
            self.window = (now, u64::MAX);
        } else if self.measuring {
            self.window.1 = now;
        }
        self.measuring = on;
    }

    fn probe(&self, kind: u8, flow: u32, now: u64) -> Probe {
        Probe {
            flags: if self.measuring { F_MEASURED } else { 0 },
            kind,
            flow,
            tsc: now,
        }
    }

    /// The next client packet, written into `buf` (exactly [`Engine::frame_len`] bytes);
    /// `false` when there is nothing to send (a priming pass is finished).
    #[inline]
    pub fn fill(&mut self, buf: &mut [u8], now: u64) -> bool {
        let (flow, flags, k) = match self.prime.as_mut() {
            Some(p) => {
                if p.next >= u64::from(p.n) * p.steps {
                    return false;
                }
                let step = p.next % p.steps;
                let idx = (p.next / p.steps) as usize;
                p.next += 1;
                let flow = p.list.as_ref().map_or(idx as u32, |l| l[idx]);
                if p.steps == 2 && step == 0 {
                    (flow, tcpf::SYN, kind::SYN)
                } else {
                    (flow, tcpf::ACK | tcpf::PSH, kind::DATA)
                }
            }
            None => self.next_run_packet(now),
        };
        let (ip, port) = self.plan.net.clients.endpoint(flow);
        let probe = self.probe(k, flow, now);
        self.c.built += 1;
        self.tmpl
            .fill(buf, SocketAddrV4::new(ip, port), flags, &probe)
    }

    /// How many new connections may start now when at most `window` may be open: a closed
    /// loop, so that at "max rate" new SYNs never crowd out the handshakes in progress (their
    /// answers would wait behind a ring full of SYNs, and time out). When the window is full and
    /// nothing completed for `stall` TSC cycles, the open connections are taken as lost.
    /// Unlimited for established flows.
    pub fn budget(&mut self, now: u64, window: u64, stall: u64) -> usize {
        if self.plan.traffic != Traffic::NewConn {
            return usize::MAX;
        }
        let c = &mut self.c;
        let open = c.conns_started - c.conns_done - c.conns_abandoned;
        if open < window {
            return (window - open) as usize;
        }
        if now.saturating_sub(self.last_done) > stall {
            c.conns_abandoned += open;
            self.last_done = now;
            return window as usize;
        }
        0
    }

    /// Connections started and neither completed nor abandoned.
    pub fn conns_open(&self) -> u64 {
        self.c.conns_started - self.c.conns_done - self.c.conns_abandoned
    }

    /// The flow, TCP flags and kind of the next packet outside priming.
    fn next_run_packet(&mut self, now: u64) -> (u32, u8, u8) {
        let flow = self.cursor.next_flow();
        if self.plan.traffic != Traffic::NewConn {
            return (flow, tcpf::ACK | tcpf::PSH, kind::DATA);
        }
        if self.starts[flow as usize] != 0 {
            self.c.conns_abandoned += 1;
        }
        self.starts[flow as usize] = now;
        self.c.conns_started += 1;
        if self.measuring {
            self.c.conns_started_measured += 1;
        }
        (flow, tcpf::SYN, kind::SYN)
    }

    /// Handles one returned frame. `true`: `f` now holds the reply to send; `false`: the
    /// caller drops it.
    #[inline]
    pub fn on_rx<F: Frame>(&mut self, f: &mut F, now: u64) -> bool {
        self.c.rx += 1;
        match self.plan.net.check(f.data()) {
            Ok(s) => self.on_seen(f, &s, now),
            Err(Bad::Malformed) => self.on_other(f),
            Err(b) => {
                self.c.bad[b.index()] += 1;
                false
            }
        }
    }

    /// A frame the check could not read as one of ours: an ARP request to answer, a reset the
    /// device generated, or something else.
    #[cold]
    fn on_other<F: Frame>(&mut self, f: &mut F) -> bool {
        let Ok(p) = parse::parse(f.data()) else {
            self.c.bad[Bad::Malformed.index()] += 1;
            return false;
        };
        match p.l3 {
            L3::Arp(a) if a.is_request() && a.sha != self.plan.net.our_mac => {
                self.c.arp_replies += 1;
                arp::reply_in_place(f.data_mut(), &p, self.plan.net.our_mac)
            }
            L3::Arp(_) => {
                self.c.other += 1;
                false
            }
            L3::Ipv4(ip) => {
                let rst = ip.tcp().is_some_and(|t| t.flags & tcpf::RST != 0);
                if rst && ip.src == *self.plan.net.vip.ip() {
                    self.c.dut_resets += 1;
                } else {
                    self.c.bad[Bad::Malformed.index()] += 1;
                }
                false
            }
        }
    }

    fn on_seen<F: Frame>(&mut self, f: &mut F, s: &Seen, now: u64) -> bool {
        let flow = s.probe.flow as usize;
        if s.side == Side::Rs
            && self.plan.traffic != Traffic::NewConn
            && let Some(p) = self.paths.get_mut(flow)
        {
            if *p == 0 {
                *p = s.path;
                self.c.flows_seen += 1;
            } else if *p != s.path {
                self.c.bad[Bad::PathChanged.index()] += 1;
                return false;
            }
        }
        self.c.ok += 1;
        if s.probe.measured() {
            self.c.ok_measured += 1;
            self.lat.record(now.saturating_sub(s.probe.tsc));
        }
        match self.plan.traffic {
            Traffic::NewConn => self.newconn_step(f, s, now),
            _ if self.plan.rs_reply
                && self.plan.net.expect.reverse_via_dut()
                && s.side == Side::Rs
                && s.flags & tcpf::SYN == 0 =>
            {
                self.reply_from_rs(f, s, tcpf::ACK, kind::ACK, now)
            }
            _ => false,
        }
    }

    /// The next step of a new connection, given the packet that just arrived.
    fn newconn_step<F: Frame>(&mut self, f: &mut F, s: &Seen, now: u64) -> bool {
        let via_dut = self.plan.net.expect.reverse_via_dut();
        let (syn, rst, ack) = (
            s.flags & tcpf::SYN != 0,
            s.flags & tcpf::RST != 0,
            s.flags & tcpf::ACK != 0,
        );
        match s.side {
            // Client's SYN at the real server: answer SYN+ACK (or, when the answer would not
            // cross the device, play the client's ACK with data right away).
            Side::Rs if syn && !ack => {
                if via_dut {
                    self.reply_from_rs(f, s, tcpf::SYN | tcpf::ACK, kind::SYNACK, now)
                } else {
                    self.client_packet(f, s.probe.flow, tcpf::ACK | tcpf::PSH, now)
                }
            }
            // Client's data at the real server: the server resets (or, when that would not
            // cross the device, the connection is done).
            Side::Rs if ack && !rst && !syn => {
                if via_dut {
                    self.reply_from_rs(f, s, tcpf::RST | tcpf::ACK, kind::RST, now)
                } else {
                    self.conn_done(s.probe.flow, now);
                    false
                }
            }
            Side::Client if syn && ack => {
                self.client_packet(f, s.probe.flow, tcpf::ACK | tcpf::PSH, now)
            }
            Side::Client if rst => {
                self.conn_done(s.probe.flow, now);
                false
            }
            _ => false,
        }
    }

    fn conn_done(&mut self, flow: u32, now: u64) {
        let Some(start) = self.starts.get_mut(flow as usize) else {
            return;
        };
        if *start == 0 {
            return;
        }
        let t0 = std::mem::replace(start, 0);
        self.c.conns_done += 1;
        self.last_done = now;
        if t0 >= self.window.0 && t0 < self.window.1 {
            self.c.conns_done_measured += 1;
            self.conn_lat.record(now.saturating_sub(t0));
        }
    }

    /// Rewrites `f` into a client packet of `flow` (the template's size).
    fn client_packet<F: Frame>(&mut self, f: &mut F, flow: u32, flags: u8, now: u64) -> bool {
        if !f.set_len(self.tmpl.len()) {
            return false;
        }
        let (ip, port) = self.plan.net.clients.endpoint(flow);
        let probe = self.probe(kind::DATA, flow, now);
        self.c.replies += 1;
        self.tmpl
            .fill(f.data_mut(), SocketAddrV4::new(ip, port), flags, &probe)
    }

    /// Rewrites `f` (a packet that arrived at a real server) into that server's small answer:
    /// addresses and ports swapped, TCP `flags` (a datagram for UDP), a fresh probe.
    fn reply_from_rs<F: Frame>(&mut self, f: &mut F, s: &Seen, flags: u8, k: u8, now: u64) -> bool {
        let d = f.data();
        let Some(ip) = d.get(s.l3_off..s.l3_off + 24) else {
            return false;
        };
        let addr = |o: usize| std::net::Ipv4Addr::new(ip[o], ip[o + 1], ip[o + 2], ip[o + 3]);
        let port = |o: usize| u16::from_be_bytes([ip[o], ip[o + 1]]);
        let (src, dst) = (
            SocketAddrV4::new(addr(16), port(22)),
            SocketAddrV4::new(addr(12), port(20)),
        );
        let net = &self.plan.net;
        let h = Headers {
            src_mac: net.our_mac,
            dst_mac: net.dut_mac,
            src,
            dst,
            proto: net.proto,
            ttl: net.ttl,
            flags,
            seq: 1,
            ack: 2,
        };
        let len = min_frame_len(net.proto);
        let probe = self.probe(k, s.probe.flow, now);
        if !f.set_len(len) {
            return false;
        }
        self.c.replies += 1;
        write_frame(f.data_mut(), &h, &probe, len).is_some()
    }

    /// The generator's MAC, for the driver's sanity checks.
    pub fn our_mac(&self) -> MacAddr {
        self.plan.net.our_mac
    }
}

#[cfg(test)]
mod tests;
