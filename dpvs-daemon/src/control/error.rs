//! Why the control state refused a change. Each variant carries the objects it names, for a
//! caller that wants to match; its text is the one line the control socket answers and the
//! daemon exits with. Operators and tests read those lines, so the wording is part of the
//! interface: change a message only on purpose.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use dpvs_api::{Forward, ServiceKey};
use dpvs_core::engine::route::RouteError;

/// A refused change; the state is left as it was.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// An IPv6 address where the engine handles IPv4 only; `what` names the field.
    #[error("{what} {ip}: IPv6 is not supported yet")]
    Ipv6 { what: &'static str, ip: IpAddr },
    /// The same for a real server, which is an address and a port.
    #[error("real server {0}: IPv6 is not supported yet")]
    Ipv6RealServer(SocketAddr),
    #[error("unknown port {0:?}")]
    UnknownPort(String),
    /// Every counter slot is held by a service or a real server.
    #[error("too many services and real servers (counter slots exhausted)")]
    SlotsExhausted,

    #[error("no service {0}")]
    NoService(ServiceKey),
    #[error("service {0} exists")]
    ServiceExists(ServiceKey),
    #[error("service {0}: port 0 is not allowed")]
    ServicePortZero(ServiceKey),
    /// Packets to the VIP would go to that real server, not to the balancer.
    #[error(
        "service {service}: its VIP {vip} is {rs}; the VIP must be one of the balancer's addresses"
    )]
    VipIsRealServer {
        service: ServiceKey,
        vip: Ipv4Addr,
        rs: RealServerOf,
    },

    #[error("no real server {rs} in {service}")]
    NoRealServer {
        rs: SocketAddrV4,
        service: ServiceKey,
    },
    #[error("real server {rs} exists in {service}")]
    RealServerExists {
        rs: SocketAddrV4,
        service: ServiceKey,
    },
    #[error("real server {0}: port 0 is not allowed")]
    RealServerPortZero(SocketAddrV4),
    #[error("real server {rs}: weight {weight} above 65535")]
    WeightTooHigh { rs: SocketAddrV4, weight: u32 },
    /// Limits that could never be left: the lower one above the upper one.
    #[error("real server {rs}: lower threshold {lower} is above upper threshold {upper}")]
    LimitsInverted {
        rs: SocketAddrV4,
        upper: u32,
        lower: u32,
    },
    /// Scheduler flags, persistence or Maglev size that do not fit the service's scheduler.
    #[error("service {service}: {problem}")]
    Scheduler {
        service: ServiceKey,
        problem: String,
    },
    /// Its share of connections would come back to the balancer.
    #[error("real server {rs}: {} is {ours}; a real server must be another host", .rs.ip())]
    RealServerIsOurs { rs: SocketAddrV4, ours: OwnAddress },
    /// DR and TUN leave the destination port as the client sent it.
    #[error(
        "real server {rs}: {forward} forwards the client's packet unchanged, so its port must be the service's ({port})"
    )]
    PortMustBeService {
        rs: SocketAddrV4,
        forward: Forward,
        port: u16,
    },
    #[error(
        "real server {rs}: dr needs it on a directly connected network, but it is routed via {gw}"
    )]
    DrRoutedVia { rs: SocketAddrV4, gw: Ipv4Addr },
    #[error(
        "real server {0}: dr needs it on a directly connected network (add an address in its subnet first)"
    )]
    DrNotConnected(SocketAddrV4),

    #[error("no local address {addr} in {service}")]
    NoLocalAddress { addr: Ipv4Addr, service: ServiceKey },
    #[error("local address {addr} exists in {service}")]
    LocalAddressExists { addr: Ipv4Addr, service: ServiceKey },
    #[error(
        "local address {0} is not one of the daemon's addresses (add it with `addr add` first)"
    )]
    LocalAddressNotOurs(Ipv4Addr),

    #[error("no address {0}")]
    NoAddress(Ipv4Addr),
    #[error("address {0} exists")]
    AddressExists(Ipv4Addr),
    #[error("address {addr}/{prefix_len}: prefix length above 32")]
    PrefixTooLong { addr: Ipv4Addr, prefix_len: u8 },
    #[error("address {addr}: it is {rs}; the balancer cannot hold a real server's address")]
    AddressIsRealServer { addr: Ipv4Addr, rs: RealServerOf },
    /// Its connections would lose their way back.
    #[error("address {addr} is a local address of {service}; remove it there first")]
    AddressInUse { addr: Ipv4Addr, service: ServiceKey },

    /// An address is either the kernel's (on a twin) or the balancer's: both would answer
    /// ARP for it.
    #[error(
        "address {addr}: it is the kernel-side address {addr}/{prefix_len} of {port}.kni; an address is either the kernel's or the balancer's"
    )]
    AddressIsKernels {
        addr: Ipv4Addr,
        prefix_len: u8,
        port: String,
    },
    #[error(
        "kernel-side address {addr}/{prefix_len}: {addr} is {ours}; an address is either the kernel's or the balancer's"
    )]
    KernelAddressIsOurs {
        addr: Ipv4Addr,
        prefix_len: u8,
        ours: OwnAddress,
    },
    #[error("port {0:?} has no kernel twin (its [[port]] says kni = false)")]
    NoTwin(String),
    #[error("kernel-side address {addr}/{prefix_len} exists on {port}.kni")]
    KernelAddressExists {
        addr: Ipv4Addr,
        prefix_len: u8,
        port: String,
    },
    #[error("no kernel-side address {addr}/{prefix_len} on {port}.kni")]
    NoKernelAddress {
        addr: Ipv4Addr,
        prefix_len: u8,
        port: String,
    },
    #[error("kernel-side route {route} exists on {port}.kni")]
    KernelRouteExists { route: String, port: String },
    #[error("no kernel-side route {route} on {port}.kni")]
    NoKernelRoute { route: String, port: String },
    /// The kernel bridge refused or failed (its own one-line reason).
    #[error("{0}")]
    KernelBridge(String),

    #[error("no route {prefix}/{len}")]
    NoRoute { prefix: Ipv4Addr, len: u8 },
    /// The route table's own rules (length, host bits, duplicates).
    #[error("route {prefix}/{len}: {source}")]
    Route {
        prefix: Ipv4Addr,
        len: u8,
        source: RouteError,
    },

    #[error("no neighbour {0}")]
    NoNeighbour(Ipv4Addr),
    #[error("invalid MAC address {0:?}")]
    BadMac(String),

    /// Any of the above while loading the configuration file's object at `key`
    /// (`service[0].rs[1]`).
    #[error("{key}: {source}")]
    InConfig {
        key: String,
        source: Box<ControlError>,
    },
}

impl ControlError {
    /// The error of loading the config file's object at `key`.
    pub fn at(self, key: String) -> Self {
        ControlError::InConfig {
            key,
            source: Box::new(self),
        }
    }
}

/// What an address is to the balancer when it is its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnAddress {
    /// A service's VIP (a VIP need not be an address yet).
    Vip(ServiceKey),
    LocalAddress(ServiceKey),
    /// An address on one of its ports (named).
    Address {
        addr: Ipv4Addr,
        prefix_len: u8,
        port: String,
    },
}

impl fmt::Display for OwnAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnAddress::Vip(key) => write!(f, "the VIP of {key}"),
            OwnAddress::LocalAddress(key) => write!(f, "a local address of {key}"),
            OwnAddress::Address {
                addr,
                prefix_len,
                port,
            } => write!(f, "the balancer's address {addr}/{prefix_len} on {port}"),
        }
    }
}

/// A real server and the service it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RealServerOf {
    pub rs: SocketAddrV4,
    pub service: ServiceKey,
}

impl fmt::Display for RealServerOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "real server {} of {}", self.rs, self.service)
    }
}
