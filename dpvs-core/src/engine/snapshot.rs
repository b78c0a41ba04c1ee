//! The immutable configuration a worker reads: built by the control plane, published through
//! `arc-swap`, loaded once per burst. Everything a worker looks up per packet is precomputed
//! here (schedules, address kinds), so the fast path only reads.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use dpvs_api::{Forward, ServiceKey};
use hashbrown::HashMap;

use crate::engine::persist::Templates;
use crate::engine::route::RouteTable;
use crate::engine::sched::Schedule;
use crate::engine::tcp_state::Timeouts;
use crate::packet::ether::MacAddr;
use crate::packet::ipv4::IpProto;

/// A DPDK port as the engine sees it.
#[derive(Clone, Debug)]
pub struct PortConf {
    /// Source MAC of everything the worker sends on the port.
    pub mac: MacAddr,
    /// The largest IP packet the port sends: what an IP-in-IP packet must fit.
    pub mtu: u16,
    /// Our lowest address on the port that is not a FullNAT local address: the source of what
    /// we originate there when no route names one.
    pub addr: Option<Ipv4Addr>,
    /// The port has a kernel twin: what the data plane does not handle goes to the kernel.
    pub kni: bool,
}

/// What one of our own IPv4 addresses is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalAddr {
    /// The port it lives on (ARP is answered there).
    pub port: u16,
    /// A FullNAT local address: replies from real servers arrive here.
    pub is_laddr: bool,
    /// The VIP of some service: clients' packets arrive here.
    pub is_vip: bool,
}

/// A real server of a service.
#[derive(Clone, Debug)]
pub struct RealServer {
    pub addr: SocketAddrV4,
    pub weight: u32,
    pub forward: Forward,
    /// Counter slot (`stats::Stats`), stable for the real server's life.
    pub slot: u32,
    /// Connection limits (0: none): at `upper` connections the server takes no new ones until
    /// it is below `lower`.
    pub upper: u32,
    pub lower: u32,
}

/// A virtual service.
#[derive(Clone, Debug)]
pub struct Service {
    pub key: ServiceKey,
    /// Counter slot, also the index of the worker's scheduler cursors for this service.
    pub slot: u32,
    pub forward: Forward,
    /// Shared with the snapshots before it while the scheduler and real servers stay the same
    /// (a Maglev table is built once, not at every publication).
    pub schedule: Arc<Schedule>,
    pub rs: Vec<RealServer>,
    /// Real server counter slot → index in `rs` (what a persistence template names).
    pub rs_by_slot: HashMap<u32, u16>,
    /// FullNAT local addresses, used round-robin.
    pub laddrs: Vec<Ipv4Addr>,
    pub persistence: Option<Persistence>,
    /// Picks need the worker's view of the real servers' connections: the scheduler balances
    /// by them, or some real server has a connection limit.
    pub needs_load: bool,
}

/// A persistent service's templates: keyed by the client address under `mask`, holding for
/// `timeout_ms` after the last use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    pub timeout_ms: u64,
    pub mask: u32,
}

/// Service lookup key: (IP protocol, VIP, port).
pub type ServiceIndexKey = (IpProto, u32, u16);

/// One published configuration.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Increases with every publication; workers compare it to notice changes.
    pub generation: u64,
    /// Indexed by DPDK port id.
    pub ports: Vec<Option<PortConf>>,
    pub local: HashMap<u32, LocalAddr>,
    pub services: Vec<Service>,
    pub service_index: HashMap<ServiceIndexKey, u32>,
    /// Service counter slot → index in `services`.
    pub slot_index: HashMap<u32, u32>,
    /// The persistence templates, shared by every snapshot and every worker.
    pub templates: Arc<Templates>,
    pub routes: RouteTable,
    pub timeouts: Timeouts,
}

impl Snapshot {
    #[inline]
    pub fn port(&self, id: u16) -> Option<&PortConf> {
        self.ports.get(usize::from(id)).and_then(Option::as_ref)
    }

    #[inline]
    pub fn local(&self, ip: Ipv4Addr) -> Option<LocalAddr> {
        self.local.get(&ip.to_bits()).copied()
    }

    #[inline]
    pub fn service(&self, proto: IpProto, vip: Ipv4Addr, port: u16) -> Option<&Service> {
        let i = *self.service_index.get(&(proto, vip.to_bits(), port))?;
        self.services.get(i as usize)
    }

    /// The service whose counter slot is `slot`.
    pub fn service_by_slot(&self, slot: u32) -> Option<&Service> {
        let i = *self.slot_index.get(&slot)?;
        self.services.get(i as usize)
    }

    /// An address of ours on `port` to use as the source of ARP requests for `target`:
    /// one in the same subnet by the connected route, else any on that port.
    pub fn arp_source(&self, port: u16, target: Ipv4Addr) -> Option<Ipv4Addr> {
        self.routes
            .lookup(target)
            .and_then(|r| r.src)
            .or_else(|| self.port(port)?.addr)
    }
}
