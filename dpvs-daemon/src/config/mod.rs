//! The daemon configuration file (TOML) and its validation.
//!
//! [`load`] / [`Config::from_toml_str`] return a fully checked [`Config`]: addresses parsed,
//! every reference to a port or address resolved, defaults filled in. A refusal is one line
//! naming the key path and the problem (`service[0].rs[1].addr: invalid socket address "x:y"`),
//! since the daemon exits with it. Sections, as in `conf/*.toml`:
//!
//! | section | meaning |
//! |---|---|
//! | `[eal] args` | extra EAL arguments |
//! | `[workers] count` or `cpus` | worker lcores (exactly one of them; default `count = 1`) |
//! | `[[port]] name, device, rx_desc, tx_desc, kni` | DPDK ports (vdev string or PCI address) |
//! | `[[address]] addr = "A/LEN", port` | the daemon's own addresses (answered by ARP) |
//! | `[[route]] prefix, port, via, src` | routes |
//! | `[[neigh]] addr, mac, port` | static neighbours |
//! | `[timeouts]` | per-state connection timeouts in seconds (LVS defaults) |
//! | `[conn] max_per_worker` | connection table capacity per worker |
//! | `[conn] templates` | persistence templates (shared by the workers) |
//! | `[[service]] proto, vip, port, sched, forward, laddrs` + `[[service.rs]] addr, weight, forward` | virtual services |
//! | `[control] ipc, instance` | control socket and instance name |
//! | `[kni] exclusive` | the kernel bridge: remove kernel-side addresses it did not add |
//! | `[[kni_address]] port, addr = "A/LEN"` | addresses of a port's kernel twin |
//! | `[[kni_route]] port, prefix, via` | routes through a port's kernel twin |
//!
//! IPv4 only for now: an IPv6 address anywhere is refused with "IPv6 not supported yet".

mod error;
mod kni;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use dpvs_api::{
    Forward, MacAddr, Persistence, RouteSpec, RsSpec, Sched, SchedFlags, ServiceKey, ServiceSpec,
};

pub use error::ConfigError;

/// Most worker lcores a daemon runs (bounds per-worker port-pool slicing and steering masks).
pub const MAX_WORKERS: usize = 64;
/// Default RX/TX descriptor ring size per queue.
pub const DEFAULT_DESC: u16 = 1024;
/// Default connection table capacity per worker.
pub const DEFAULT_MAX_CONNS_PER_WORKER: u32 = 1 << 20;
/// Persistence templates when `[conn] templates` is not given (16 MiB, made with the first
/// persistent service).
pub const DEFAULT_TEMPLATES: usize = 1 << 20;
/// Default control socket.
pub const DEFAULT_IPC: &str = "/run/dpvs/dpvs.sock";
/// Default instance name (single-instance lock, kernel-side names).
pub const DEFAULT_INSTANCE: &str = "dpvs";

/// A validated daemon configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Extra EAL arguments, passed through as given.
    pub eal_args: Vec<String>,
    pub workers: Workers,
    pub ports: Vec<PortConfig>,
    pub addresses: Vec<AddressConfig>,
    pub routes: Vec<RouteSpec>,
    pub neighs: Vec<NeighConfig>,
    pub timeouts: Timeouts,
    /// Connection table capacity per worker.
    pub max_conns_per_worker: u32,
    /// Persistence templates, shared by the workers (allocated with the first persistent
    /// service).
    pub templates: usize,
    pub services: Vec<ServiceConfig>,
    pub control: ControlConfig,
    pub kni: KniConfig,
}

/// The kernel side of the kernel bridge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KniConfig {
    /// Remove kernel-side addresses that someone else adds to a twin (else they are left
    /// alone and logged).
    pub exclusive: bool,
    pub addresses: Vec<AddressConfig>,
    pub routes: Vec<KniRouteConfig>,
}

/// A route through a port's kernel twin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KniRouteConfig {
    pub prefix: IpAddr,
    pub prefix_len: u8,
    pub port: String,
    pub via: Option<IpAddr>,
}

/// Which worker lcores to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workers {
    /// This many workers on lcores the daemon picks.
    Count(u16),
    /// One worker on each of these CPUs (distinct).
    Cpus(Vec<u32>),
}

impl Workers {
    /// Number of workers (1..=[`MAX_WORKERS`]).
    pub fn count(&self) -> usize {
        match self {
            Workers::Count(n) => usize::from(*n),
            Workers::Cpus(c) => c.len(),
        }
    }
}

/// A DPDK port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// The name used everywhere else (`dpdk0`); the kernel twin is `<name>.kni`.
    pub name: String,
    /// EAL device: a vdev string (`net_af_packet0,iface=veth-lb0`) or a PCI address.
    pub device: String,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Whether the port gets a kernel twin (default true).
    pub kni: bool,
}

/// One of the daemon's own addresses on a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressConfig {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub port: String,
}

/// A static neighbour entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighConfig {
    pub addr: IpAddr,
    pub mac: MacAddr,
    pub port: String,
}

/// Connection timeouts per protocol state, in seconds (LVS defaults): the engine's type,
/// filled from `[timeouts]` keys named `tcp_<state>` and `udp`.
pub use dpvs_core::engine::tcp_state::Timeouts;

/// A virtual service with its real servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    pub key: ServiceKey,
    pub sched: Sched,
    pub sched_flags: SchedFlags,
    pub persistence: Option<Persistence>,
    pub mh_table_size: Option<u32>,
    /// Default forwarding mode of its real servers.
    pub forward: Forward,
    /// FullNAT local addresses (each one of the `[[address]]` addresses).
    pub laddrs: Vec<IpAddr>,
    pub rs: Vec<RsSpec>,
}

impl ServiceConfig {
    /// The service definition as the control protocol carries it.
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

/// The control plane's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlConfig {
    /// Unix socket `dpvs-ctl` talks to.
    pub ipc: PathBuf,
    /// Instance name: one daemon per name (lock file and kernel-side names).
    pub instance: String,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            ipc: PathBuf::from(DEFAULT_IPC),
            instance: DEFAULT_INSTANCE.into(),
        }
    }
}

impl Config {
    /// Parses and validates a configuration held in memory.
    pub fn from_toml_str(src: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(src).map_err(|e| ConfigError::from_toml(src, &e))?;
        validate::config(raw)
    }

    /// The port named `name`.
    pub fn port(&self, name: &str) -> Option<&PortConfig> {
        self.ports.iter().find(|p| p.name == name)
    }
}

/// Reads, parses and validates the file at `path`; errors carry the file name.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Config::from_toml_str(&src).map_err(|e| ConfigError::InFile {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}
