//! Serves control requests: each change goes through [`ControlState`], then a new snapshot is
//! published; requests about worker-local state travel to the workers as [`Command`]s.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use dpvs_api::{
    AddrInfo, ConnInfo, Counters, LaddrInfo, LinkInfo, MacAddr as ApiMac, NeighInfo, NeighKind,
    Proto, Request, Response, RouteSpec, RsInfo, Sched, ServiceInfo, StatsInfo, TemplateStats,
    WorkerCounters, WorkerStats,
};

use crate::control::publish::Publisher;
use crate::control::rates::RateEstimator;
use crate::control::state::{ControlState, Cut};
use crate::control::twins::KernelSide;
use dpvs_core::drop::DropReason;
use dpvs_core::engine::stats::{SlotTotals, Stats};
use dpvs_core::engine::worker::{Command, ConnView, Event};
use dpvs_core::packet::ipv4::IpProto;

/// How long the control plane waits for a worker to answer a command.
const WORKER_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections listed when the request names no limit.
const DEFAULT_CONN_LIMIT: usize = 1000;

/// What the control plane asks of the running data plane (ports and mempool); the daemon
/// implements it over DPDK, tests without.
pub trait Dataplane: Send {
    fn links(&self) -> Vec<LinkInfo>;
    /// Mbufs in use and the pool's size.
    fn mbufs(&self) -> (u64, u64);
    /// The EAL lcore of a worker.
    fn worker_lcore(&self, worker: u16) -> u32;
    /// The workers' engine time (milliseconds), which persistence templates' deadlines count.
    fn engine_ms(&self) -> u64;
}

/// The control plane.
pub struct Control {
    pub state: ControlState,
    pub publisher: Publisher,
    pub stats: Arc<Stats>,
    pub commands: Vec<Sender<Command>>,
    pub dataplane: Box<dyn Dataplane>,
    /// The kernel bridge: the twins and the guard of their kernel-side configuration.
    pub kernel: KernelSide,
    /// Rates of the services and real servers (`service list --rate`).
    pub rates: RateEstimator,
}

impl Control {
    /// Serves one request.
    pub fn handle(&mut self, req: Request) -> Result<Response, String> {
        match req {
            Request::ServiceList { stats } => Ok(Response::Services(self.services(stats))),
            Request::LaddrList { service } => Ok(Response::Laddrs(self.laddrs(service.as_ref()))),
            Request::AddrList => Ok(Response::Addrs(self.addrs())),
            Request::RouteList => Ok(Response::Routes(self.routes())),
            Request::NeighList => Ok(Response::Neighs(self.neighs())),
            Request::ConnList { service, limit } => self.conns(service, limit).map(Response::Conns),
            Request::Stats => Ok(Response::Stats(self.stats_info())),
            Request::LinkList => Ok(Response::Links(self.links())),
            Request::KniList => Ok(Response::Twins(self.twins())),
            kni @ (Request::KniAddrAdd { .. }
            | Request::KniAddrDel { .. }
            | Request::KniRouteAdd { .. }
            | Request::KniRouteDel { .. }) => {
                self.kernel_change(kni).map_err(|e| e.to_string())?;
                Ok(Response::Done)
            }
            Request::ServiceDel { service } => {
                let cut = self
                    .state
                    .service_del(&service)
                    .map_err(|e| e.to_string())?;
                if let Cut::Service(slot) = cut {
                    self.state.service_hide(slot);
                }
                self.apply_deletion(cut)
            }
            Request::RsDel { service, addr } => {
                let cut = self
                    .state
                    .rs_del(&service, addr)
                    .map_err(|e| e.to_string())?;
                self.apply_deletion(cut)
            }
            change => {
                self.change(change)?;
                self.publish();
                Ok(Response::Done)
            }
        }
    }

    /// A change to the state; its refusal becomes the protocol's one-line error.
    fn change(&mut self, req: Request) -> Result<(), String> {
        let s = &mut self.state;
        let result = match req {
            Request::ServiceAdd(spec) => s.service_add(&spec),
            Request::ServiceEdit(spec) => s.service_edit(&spec),
            Request::RsAdd { service, rs } => s.rs_add(&service, &rs),
            Request::RsEdit { service, rs } => s.rs_edit(&service, &rs),
            Request::LaddrAdd {
                service,
                addr,
                port: _,
            } => s.laddr_add(&service, addr),
            Request::LaddrDel { service, addr } => s.laddr_del(&service, addr),
            Request::AddrAdd {
                addr,
                prefix_len,
                port,
            } => s.addr_add(addr, prefix_len, &port),
            Request::AddrDel { addr } => s.addr_del(addr),
            Request::RouteAdd(r) => s.route_add(r.prefix, r.prefix_len, &r.port, r.via, r.src),
            Request::RouteDel { prefix, prefix_len } => s.route_del(prefix, prefix_len),
            Request::NeighAdd { addr, mac, port } => {
                let r = s.neigh_add(addr, &mac.to_string(), &port);
                self.publish_neigh();
                r
            }
            Request::NeighDel { addr } => {
                let r = s.neigh_del(addr);
                self.publish_neigh();
                r
            }
            other => return Err(format!("unsupported request {other:?}")),
        };
        result.map_err(|e| e.to_string())
    }

    /// A deletion in three steps: publish a snapshot without the deleted object (no new
    /// connections to it), have every worker drop the connections to it, then free its
    /// counter slots. Dropped connections are answered with a RST by the workers when their
    /// next segment arrives.
    fn apply_deletion(&mut self, cut: Cut) -> Result<Response, String> {
        self.publish();
        let result = self.cut_workers(cut);
        for slot in self.state.release(cut) {
            self.stats.reset_slot(slot);
        }
        self.publish();
        result.map(|_| Response::Done)
    }

    fn cut_workers(&self, cut: Cut) -> Result<usize, String> {
        let replies: Vec<_> = self
            .commands
            .iter()
            .filter_map(|tx| {
                let (reply, rx) = bounded(1);
                let cmd = match cut {
                    Cut::None => return None,
                    Cut::Rs(rs_slot) => Command::CutRs { rs_slot, reply },
                    Cut::Service(svc_slot) => Command::CutService { svc_slot, reply },
                };
                tx.send_timeout(cmd, WORKER_REPLY_TIMEOUT).ok().map(|_| rx)
            })
            .collect();
        let mut total = 0;
        for (w, rx) in replies.iter().enumerate() {
            total += rx
                .recv_timeout(WORKER_REPLY_TIMEOUT)
                .map_err(|_| format!("worker {w} did not answer the cut in time"))?;
        }
        Ok(total)
    }

    /// Builds and publishes a snapshot of the current state.
    pub fn publish(&mut self) {
        let snap = self.state.snapshot();
        self.publisher.snapshot.publish(snap);
    }

    pub fn publish_neigh(&mut self) {
        let t = self.state.neigh_table();
        self.publisher.neigh.publish(t);
    }

    /// Takes what a worker reported.
    pub fn on_event(&mut self, e: Event) {
        match e {
            Event::NeighLearned { ip, mac, port } => {
                if self.state.neigh_learn(ip, mac, port) {
                    self.publish_neigh();
                }
            }
        }
    }

    fn services(&self, with_stats: bool) -> Vec<ServiceInfo> {
        self.state
            .services
            .iter()
            .map(|s| ServiceInfo {
                key: s.key,
                sched: s.sched,
                sched_flags: s.sched_flags,
                persistence: s.persistence,
                mh_table_size: (s.sched == Sched::Mh).then_some(s.mh_table_size),
                forward: s.forward,
                laddrs: s.laddrs.iter().map(|a| IpAddr::V4(*a)).collect(),
                rs: s
                    .rs
                    .iter()
                    .map(|r| {
                        let t = self.stats.slot_totals(r.slot);
                        RsInfo {
                            addr: SocketAddr::V4(r.addr),
                            weight: r.weight,
                            forward: r.forward.unwrap_or(s.forward),
                            active_conns: t.active,
                            inactive_conns: t.inactive,
                            upper: r.upper,
                            lower: r.effective_lower(),
                            stats: with_stats.then(|| counters(&t)),
                            rates: with_stats.then(|| self.rates.get(r.slot)),
                        }
                    })
                    .collect(),
                stats: with_stats.then(|| counters(&self.stats.slot_totals(s.slot))),
                rates: with_stats.then(|| self.rates.get(s.slot)),
            })
            .collect()
    }

    fn laddrs(&self, service: Option<&dpvs_api::ServiceKey>) -> Vec<LaddrInfo> {
        let mut out = Vec::new();
        for s in self
            .state
            .services
            .iter()
            .filter(|s| service.is_none_or(|k| *k == s.key))
        {
            for a in &s.laddrs {
                let port = self
                    .state
                    .addrs
                    .iter()
                    .find(|x| x.addr == *a)
                    .map(|x| self.state.port_name(x.port));
                out.push(LaddrInfo {
                    service: s.key,
                    addr: IpAddr::V4(*a),
                    port,
                });
            }
        }
        out
    }

    fn addrs(&self) -> Vec<AddrInfo> {
        self.state
            .addrs
            .iter()
            .map(|a| AddrInfo {
                addr: IpAddr::V4(a.addr),
                prefix_len: a.prefix_len,
                port: self.state.port_name(a.port),
            })
            .collect()
    }

    fn routes(&self) -> Vec<RouteSpec> {
        self.publisher
            .snapshot
            .load()
            .routes
            .iter()
            .map(|r| RouteSpec {
                prefix: IpAddr::V4(r.prefix),
                prefix_len: r.len,
                port: self.state.port_name(r.port),
                via: r.via.map(IpAddr::V4),
                src: r.src.map(IpAddr::V4),
            })
            .collect()
    }

    fn neighs(&self) -> Vec<NeighInfo> {
        let mut v: Vec<_> = self
            .state
            .neighs
            .iter()
            .map(|(ip, n)| NeighInfo {
                addr: IpAddr::V4(*ip),
                mac: ApiMac(n.mac.0),
                port: self.state.port_name(n.port),
                kind: if n.is_static {
                    NeighKind::Static
                } else {
                    NeighKind::Learnt
                },
            })
            .collect();
        v.sort_by_key(|n| n.addr);
        v
    }

    fn conns(
        &self,
        service: Option<dpvs_api::ServiceKey>,
        limit: Option<u32>,
    ) -> Result<Vec<ConnInfo>, String> {
        let svc_slot = match service {
            Some(k) => Some(self.state.service(&k).map_err(|e| e.to_string())?.slot),
            None => None,
        };
        let limit = limit.map_or(DEFAULT_CONN_LIMIT, |l| l as usize);
        let mut out = Vec::new();
        for (w, tx) in self.commands.iter().enumerate() {
            let (reply, rx) = bounded(1);
            tx.send_timeout(
                Command::ListConns {
                    svc_slot,
                    limit: limit - out.len().min(limit),
                    reply,
                },
                WORKER_REPLY_TIMEOUT,
            )
            .map_err(|_| format!("worker {w} is not taking commands"))?;
            let list = rx
                .recv_timeout(WORKER_REPLY_TIMEOUT)
                .map_err(|_| format!("worker {w} did not answer in time"))?;
            out.extend(list.into_iter().map(|c| conn_info(&c, w as u16)));
        }
        Ok(out)
    }

    fn stats_info(&self) -> StatsInfo {
        let workers = (0..self.stats.workers())
            .map(|w| {
                let c = self.stats.worker(w);
                WorkerStats {
                    id: w as u16,
                    lcore: self.dataplane.worker_lcore(w as u16),
                    counters: WorkerCounters {
                        rx_pkts: c.rx_pkts.get(),
                        tx_pkts: c.tx_pkts.get(),
                        conns_active: c.conns_active.get(),
                        conns_created: c.conns_created.get(),
                        kernel_pkts: c.to_kernel.get(),
                        ring_in: c.ring_in.get(),
                        ring_out: c.ring_out.get(),
                    },
                    busy_cycles: c.busy_cycles.get(),
                    busy_pkts: c.busy_pkts.get(),
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| (r.name().to_string(), c.drops[r.index()].get()))
                        .collect(),
                }
            })
            .collect();
        let mut info = StatsInfo::from_workers(workers);
        (info.mbuf_in_use, info.mbuf_capacity) = self.dataplane.mbufs();
        info.kni = self.twins();
        info.templates = self.template_stats();
        info
    }

    /// The persistence templates' use, once there is a table.
    fn template_stats(&self) -> Option<TemplateStats> {
        let t = self.state.templates();
        if t.capacity() < 2 {
            return None;
        }
        let full = (0..self.stats.workers())
            .map(|w| self.stats.worker(w).templates_full.get())
            .sum();
        Some(TemplateStats {
            capacity: t.capacity() as u64,
            live: t.live(self.dataplane.engine_ms()).count() as u64,
            full,
        })
    }

    /// Samples the counters for the rate estimates when an interval has passed (the event
    /// thread calls this a few times a second).
    pub fn tick_rates(&mut self, now: std::time::Instant) {
        let slots = self
            .state
            .services
            .iter()
            .flat_map(|s| s.rs.iter().map(|r| r.slot).chain([s.slot]));
        self.rates.tick(now, slots, &self.stats);
    }
}

fn counters(t: &SlotTotals) -> Counters {
    Counters {
        conns: t.conns,
        in_pkts: t.in_pkts,
        out_pkts: t.out_pkts,
        in_bytes: t.in_bytes,
        out_bytes: t.out_bytes,
    }
}

fn conn_info(c: &ConnView, worker: u16) -> ConnInfo {
    ConnInfo {
        proto: if c.proto == IpProto::UDP {
            Proto::Udp
        } else {
            Proto::Tcp
        },
        client: SocketAddr::V4(c.client),
        vip: SocketAddr::V4(c.vip),
        laddr: c.laddr.map(SocketAddr::V4),
        rs: SocketAddr::V4(c.rs),
        state: c.state.to_string(),
        expires_in_s: c.expires_in_ms.div_ceil(1000),
        worker,
    }
}

/// The data plane after shutdown (or in tests): no ports, no pool.
pub struct Detached;

impl Dataplane for Detached {
    fn links(&self) -> Vec<LinkInfo> {
        Vec::new()
    }
    fn mbufs(&self) -> (u64, u64) {
        (0, 0)
    }
    fn worker_lcore(&self, worker: u16) -> u32 {
        u32::from(worker) + 1
    }
    fn engine_ms(&self) -> u64 {
        0
    }
}
