//! What a client may ask the daemon, and the definitions it sends.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::{Forward, MacAddr, Persistence, Sched, SchedFlags, ServiceKey};

/// What the client asks the daemon to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", rename_all = "snake_case")]
pub enum Request {
    /// Create a service; fails if it exists.
    ServiceAdd(ServiceSpec),
    /// Change the scheduler / default forwarding mode of an existing service.
    ServiceEdit(ServiceSpec),
    /// Remove a service with its real servers and local addresses.
    ServiceDel {
        service: ServiceKey,
    },
    /// List services; `stats` asks for traffic counters too.
    ServiceList {
        stats: bool,
    },
    /// Add a real server; `rs.forward: None` means the service's mode.
    RsAdd {
        service: ServiceKey,
        rs: RsSpec,
    },
    /// Change a real server's weight (0 drains it); `rs.forward: None` leaves its mode as is.
    RsEdit {
        service: ServiceKey,
        rs: RsSpec,
    },
    /// Remove a real server; its existing connections expire naturally.
    RsDel {
        service: ServiceKey,
        addr: SocketAddr,
    },
    /// Add a FullNAT local address to a service; `port` is the DPDK port it leaves by
    /// (`None`: chosen by route lookup).
    LaddrAdd {
        service: ServiceKey,
        addr: IpAddr,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
    },
    LaddrDel {
        service: ServiceKey,
        addr: IpAddr,
    },
    /// List local addresses, of one service or of all.
    LaddrList {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<ServiceKey>,
    },
    /// Add one of the daemon's own addresses (answered by ARP) on a DPDK port.
    AddrAdd {
        addr: IpAddr,
        prefix_len: u8,
        port: String,
    },
    AddrDel {
        addr: IpAddr,
    },
    AddrList,
    RouteAdd(RouteSpec),
    RouteDel {
        prefix: IpAddr,
        prefix_len: u8,
    },
    RouteList,
    /// Add a static neighbour entry.
    NeighAdd {
        addr: IpAddr,
        mac: MacAddr,
        port: String,
    },
    NeighDel {
        addr: IpAddr,
    },
    NeighList,
    /// Dump connections (of one service, at most `limit` of them).
    ConnList {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<ServiceKey>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Per-worker counters.
    Stats,
    /// DPDK ports and how packets are steered on them.
    LinkList,
    /// Add an address to a port's kernel twin.
    KniAddrAdd {
        port: String,
        addr: IpAddr,
        prefix_len: u8,
    },
    KniAddrDel {
        port: String,
        addr: IpAddr,
        prefix_len: u8,
    },
    /// Add a route through a port's kernel twin (`via`: a gateway, else on link).
    KniRouteAdd {
        port: String,
        prefix: IpAddr,
        prefix_len: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<IpAddr>,
    },
    KniRouteDel {
        port: String,
        prefix: IpAddr,
        prefix_len: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<IpAddr>,
    },
    /// The kernel twins: backend, link, desired and actual configuration, counters.
    KniList,
}

/// A virtual service's definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub sched: Sched,
    /// Forwarding mode of real servers that do not override it.
    pub forward: Forward,
    /// Flags of the scheduler (`sh-port`, ...), checked against it.
    #[serde(default, skip_serializing_if = "SchedFlags::is_empty")]
    pub sched_flags: SchedFlags,
    /// Present when the service is persistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// The Maglev lookup table's size (`mh` only; a prime, default 65,537).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mh_table_size: Option<u32>,
}

impl ServiceSpec {
    /// A service with the given scheduler and mode, no flags, not persistent.
    pub fn new(key: ServiceKey, sched: Sched, forward: Forward) -> ServiceSpec {
        ServiceSpec {
            key,
            sched,
            forward,
            sched_flags: SchedFlags::default(),
            persistence: None,
            mh_table_size: None,
        }
    }
}

/// A real server's definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsSpec {
    pub addr: SocketAddr,
    /// 0..=65535; 0 drains (no new connections).
    pub weight: u32,
    /// Per-server override of the service's forwarding mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    /// Connection limits (ipvsadm's `-x`, `-y`): at `upper` connections (active + inactive)
    /// the real server takes no new ones until it is below `lower` (default 3/4 of upper).
    /// On add, absent means no limit; on edit, unchanged. `upper` 0 removes the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<u32>,
}

impl RsSpec {
    /// A real server with no override and no limit.
    pub fn new(addr: SocketAddr, weight: u32) -> RsSpec {
        RsSpec {
            addr,
            weight,
            forward: None,
            upper: None,
            lower: None,
        }
    }
}

/// A route: traffic to `prefix/prefix_len` leaves by `port`, to `via` if given (else the
/// destination is on link), with source address `src` when the daemon originates packets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub prefix: IpAddr,
    pub prefix_len: u8,
    pub port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
}
