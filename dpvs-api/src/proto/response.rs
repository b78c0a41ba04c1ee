//! What the daemon answers: one [`Response`] kind per list, and the records in it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{Counters, Rates, RouteSpec, ServiceSpec, StatsInfo};
use crate::{Forward, MacAddr, Persistence, Proto, Sched, SchedFlags, ServiceKey};

/// The daemon's answer to a successful request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Response {
    /// The change was applied.
    Done,
    Services(Vec<ServiceInfo>),
    Laddrs(Vec<LaddrInfo>),
    Addrs(Vec<AddrInfo>),
    Routes(Vec<RouteSpec>),
    Neighs(Vec<NeighInfo>),
    Conns(Vec<ConnInfo>),
    Stats(StatsInfo),
    Links(Vec<LinkInfo>),
    Twins(Vec<TwinInfo>),
}

/// A port's kernel twin as listed by `kni list`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinInfo {
    /// The port, and the twin's netdev (`dpdk0.kni`).
    pub port: String,
    pub ifname: String,
    /// `tap` or `virtio_user`.
    pub backend: String,
    pub link_up: bool,
    /// Addresses (`A/LEN`) and routes (`P/LEN [via G]`) the daemon keeps on the twin, and
    /// those the kernel has.
    pub desired_addrs: Vec<String>,
    pub actual_addrs: Vec<String>,
    pub desired_routes: Vec<String>,
    pub actual_routes: Vec<String>,
    /// Addresses someone else added (kept unless `[kni] exclusive`).
    #[serde(default)]
    pub foreign_addrs: Vec<String>,
    /// Frames (and bytes) handed to the kernel, and sent by it out of the port.
    pub to_kernel_pkts: u64,
    pub to_kernel_bytes: u64,
    pub from_kernel_pkts: u64,
    pub from_kernel_bytes: u64,
    /// Frames dropped on the way, by reason.
    pub drops: BTreeMap<String, u64>,
    /// How often the guard put the configuration back, and how long ago it last did.
    pub restores: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restore_ms_ago: Option<u64>,
    /// How often the guard found itself fighting another manager (and backed off).
    pub fights: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A service as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub key: ServiceKey,
    pub sched: Sched,
    pub forward: Forward,
    #[serde(default, skip_serializing_if = "SchedFlags::is_empty")]
    pub sched_flags: SchedFlags,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_table_size: Option<u32>,
    #[serde(default)]
    pub laddrs: Vec<IpAddr>,
    #[serde(default)]
    pub rs: Vec<RsInfo>,
    /// Present when the list was asked with `stats: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Counters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<Rates>,
}

impl ServiceInfo {
    /// The definition that would create the service as it is (its real servers aside).
    pub fn spec(&self) -> ServiceSpec {
        ServiceSpec {
            key: self.key,
            sched: self.sched,
            forward: self.forward,
            sched_flags: self.sched_flags,
            persistence: self.persistence,
            mh_table_size: self.mh_table_size,
        }
    }
}

/// A real server as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsInfo {
    pub addr: SocketAddr,
    pub weight: u32,
    /// The effective forwarding mode (the override or the service's).
    pub forward: Forward,
    /// Connections in ESTABLISHED state (ipvsadm's ActiveConn).
    pub active_conns: u64,
    /// Connections in any other state (ipvsadm's InActConn).
    pub inactive_conns: u64,
    /// Connection limits (0: none), as `RsSpec`'s.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub upper: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lower: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Counters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates: Option<Rates>,
}

/// A FullNAT local address of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaddrInfo {
    pub service: ServiceKey,
    pub addr: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

/// One of the daemon's own addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrInfo {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub port: String,
}

/// How a neighbour entry came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NeighKind {
    /// Configured (config file or `neigh add`); never expires.
    Static,
    /// Learnt from ARP/ND traffic.
    Learnt,
}

impl NeighKind {
    pub fn name(self) -> &'static str {
        match self {
            NeighKind::Static => "static",
            NeighKind::Learnt => "learnt",
        }
    }
}

/// A neighbour (ARP/ND) entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighInfo {
    pub addr: IpAddr,
    pub mac: MacAddr,
    pub port: String,
    pub kind: NeighKind,
}

/// One connection, as seen by the worker that owns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    pub proto: Proto,
    pub client: SocketAddr,
    pub vip: SocketAddr,
    /// The FullNAT local endpoint; `None` in DR/TUN/NAT modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laddr: Option<SocketAddr>,
    pub rs: SocketAddr,
    /// Protocol state in LVS spelling, e.g. `ESTABLISHED`, `SYN_RECV`, `UDP`.
    pub state: String,
    pub expires_in_s: u32,
    pub worker: u16,
}

/// A DPDK port.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinkInfo {
    /// The configured name, e.g. `dpdk0`.
    pub name: String,
    /// The EAL device string (vdev arguments or PCI address).
    pub device: String,
    pub port_id: u16,
    pub mac: MacAddr,
    pub driver: String,
    pub link_up: bool,
    /// 0 when the driver does not say.
    #[serde(default)]
    pub speed_mbps: u32,
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// How packets reach their owning worker, e.g. `rss` or `software (spsc rings)`.
    pub steering: String,
    /// The kernel twin (TAP) device, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kni: Option<String>,
    pub rx_pkts: u64,
    pub tx_pkts: u64,
    #[serde(default)]
    pub rx_bytes: u64,
    #[serde(default)]
    pub tx_bytes: u64,
    pub rx_missed: u64,
    #[serde(default)]
    pub rx_errors: u64,
    #[serde(default)]
    pub tx_errors: u64,
    pub rx_nombuf: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
