//! The command line (`dpvs-ctl [--ipc PATH] [-o table|json] OBJECT VERB ...`) and its
//! translation into control requests.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, Subcommand, ValueEnum};
use dpvs_api::{
    Forward, MacAddr, Persistence, Request, RouteSpec, RsSpec, Sched, SchedFlags, ServiceKey,
    ServiceSpec, host_bits_set, parse_netmask, parse_prefix,
};

/// The socket the daemon listens on unless told otherwise.
pub(crate) const DEFAULT_IPC: &str = "/run/dpvs/dpvs.sock";

/// Control the dpvs load balancer.
#[derive(Debug, Parser)]
#[command(name = "dpvs-ctl", version, propagate_version = true)]
pub(crate) struct Cli {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", env = "DPVS_IPC", default_value = DEFAULT_IPC, global = true)]
    pub ipc: PathBuf,
    /// Output format of lists.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub object: Object,
}

/// How lists are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Aligned text; `service list` in `ipvsadm -ln` layout.
    Table,
    /// Pretty JSON of the daemon's data, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Object {
    /// Virtual services (PROTO:VIP:PORT).
    Service {
        #[command(subcommand)]
        verb: ServiceVerb,
    },
    /// Real servers of a service.
    Rs {
        #[command(subcommand)]
        verb: RsVerb,
    },
    /// FullNAT local addresses of a service.
    Laddr {
        #[command(subcommand)]
        verb: LaddrVerb,
    },
    /// The daemon's own addresses.
    Addr {
        #[command(subcommand)]
        verb: AddrVerb,
    },
    /// Routes.
    Route {
        #[command(subcommand)]
        verb: RouteVerb,
    },
    /// Neighbour (ARP) entries.
    Neigh {
        #[command(subcommand)]
        verb: NeighVerb,
    },
    /// Connections.
    Conn {
        #[command(subcommand)]
        verb: ConnVerb,
    },
    /// Per-worker packet, connection and drop counters.
    Stats,
    /// DPDK ports.
    Link {
        #[command(subcommand)]
        verb: LinkVerb,
    },
    /// The kernel bridge: the ports' kernel twins (<port>.kni), their addresses and routes.
    Kni {
        #[command(subcommand)]
        verb: KniVerb,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceVerb {
    /// Create a service.
    Add {
        /// The service, PROTO:VIP:PORT (e.g. tcp:10.0.0.100:80).
        service: ServiceKey,
        /// Scheduler: rr, wrr, wlc, lc, sh, mh, conhash or fo.
        #[arg(long, default_value_t = Sched::Wlc)]
        sched: Sched,
        /// Default forwarding mode: fnat, dr, tun or nat.
        #[arg(long, default_value_t = Forward::Fnat)]
        forward: Forward,
        #[command(flatten)]
        opts: SchedOpts,
    },
    /// Change a service's scheduler, its options or forwarding mode (what is not given stays;
    /// a new scheduler starts without flags).
    Edit {
        /// The service, PROTO:VIP:PORT (e.g. tcp:10.0.0.100:80).
        service: ServiceKey,
        /// New scheduler: rr, wrr, wlc, lc, sh, mh, conhash or fo.
        #[arg(long)]
        sched: Option<Sched>,
        /// New default forwarding mode: fnat, dr, tun or nat.
        #[arg(long)]
        forward: Option<Forward>,
        #[command(flatten)]
        opts: SchedOpts,
    },
    /// Delete a service with its real servers.
    #[command(visible_alias = "delete")]
    Del {
        /// The service, PROTO:VIP:PORT (e.g. tcp:10.0.0.100:80).
        service: ServiceKey,
    },
    /// List services and real servers (`ipvsadm -ln` layout).
    #[command(visible_alias = "ls")]
    List {
        /// Show traffic counters (`ipvsadm -ln --stats` layout).
        #[arg(long, conflicts_with = "rate")]
        stats: bool,
        /// Show rates: connections, packets and bytes per second (`ipvsadm -ln --rate`).
        #[arg(long)]
        rate: bool,
        /// Print counters in full instead of scaling them (K, M, G).
        #[arg(long)]
        exact: bool,
    },
}

/// A real server's connection limits (ipvsadm's `-x`, `-y`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::Args)]
pub(crate) struct Limits {
    /// Upper connection threshold: at N connections (active + inactive) the real server takes
    /// no new ones (0: no limit).
    #[arg(long, value_name = "N")]
    pub upper: Option<u32>,
    /// Lower connection threshold: below N it takes new ones again (default 3/4 of upper).
    #[arg(long, value_name = "N")]
    pub lower: Option<u32>,
}

/// A service's scheduler options, as `service add` and `service edit` take them.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub(crate) struct SchedOpts {
    /// Scheduler flags, comma-separated: sh-fallback, sh-port (sh); mh-fallback, mh-port (mh);
    /// conhash-5tuple (conhash).
    #[arg(long, value_name = "FLAGS")]
    pub sched_flags: Option<String>,
    /// Make the service persistent: a client keeps its real server for SECS after its last
    /// connection (0 on edit: not persistent any more).
    #[arg(long, value_name = "SECS")]
    pub persistent: Option<u32>,
    /// Persistence granularity: clients in one netmask share a real server (255.255.255.0 or
    /// 24; default 32).
    #[arg(long, value_name = "MASK", value_parser = parse_netmask)]
    pub netmask: Option<u8>,
    /// Maglev lookup table size (mh; a prime, default 65537).
    #[arg(long, value_name = "N")]
    pub mh_table_size: Option<u32>,
}

impl SchedOpts {
    /// `current` (the service as it is, or a new one's defaults) with these options applied;
    /// `sched_changed` drops flags and a Maglev size that belonged to the old scheduler.
    pub(crate) fn apply(
        &self,
        mut spec: ServiceSpec,
        sched_changed: bool,
    ) -> Result<ServiceSpec, String> {
        if sched_changed {
            spec.sched_flags = SchedFlags::default();
            spec.mh_table_size = None;
        }
        if let Some(f) = &self.sched_flags {
            spec.sched_flags = SchedFlags::parse(spec.sched, f)?;
        }
        if let Some(m) = self.mh_table_size {
            spec.mh_table_size = Some(m);
        }
        spec.persistence = match (self.persistent, self.netmask, spec.persistence) {
            (Some(0), None, _) => None,
            (Some(0), Some(_), _) => {
                return Err("--netmask needs a persistent service (--persistent SECS > 0)".into());
            }
            (Some(t), mask, old) => {
                let mask = mask.or(old.map(|p| p.netmask)).unwrap_or(32);
                Some(Persistence::new(t, mask)?)
            }
            (None, Some(mask), Some(old)) => Some(Persistence::new(old.timeout, mask)?),
            (None, Some(_), None) => {
                return Err("--netmask needs a persistent service (--persistent SECS)".into());
            }
            (None, None, old) => old,
        };
        Ok(spec)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum RsVerb {
    /// Add a real server.
    Add {
        /// The service, PROTO:VIP:PORT (e.g. tcp:10.0.0.100:80).
        service: ServiceKey,
        /// ADDR:PORT of the real server.
        rs: SocketAddr,
        /// Relative share of new connections, 0..=65535 (0 drains).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=65535))]
        weight: u32,
        /// Override the service's forwarding mode.
        #[arg(long)]
        forward: Option<Forward>,
        #[command(flatten)]
        limits: Limits,
    },
    /// Change a real server's weight (0 drains it), forwarding mode or connection limits
    /// (what is not given stays).
    Edit {
        /// The service, PROTO:VIP:PORT (e.g. tcp:10.0.0.100:80).
        service: ServiceKey,
        /// ADDR:PORT of the real server.
        rs: SocketAddr,
        /// New weight, 0..=65535 (0 drains: existing connections stay, no new ones).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=65535))]
        weight: Option<u32>,
        /// New forwarding mode (default: unchanged).
        #[arg(long)]
        forward: Option<Forward>,
        #[command(flatten)]
        limits: Limits,
    },
    /// Remove a real server.
    #[command(visible_alias = "delete")]
    Del {
        /// The service, PROTO:VIP:PORT (e.g. tcp:10.0.0.100:80).
        service: ServiceKey,
        /// ADDR:PORT of the real server.
        rs: SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LaddrVerb {
    /// Add a local address to a FullNAT service.
    Add {
        /// The service, PROTO:VIP:PORT (e.g. tcp:10.0.0.100:80).
        service: ServiceKey,
        addr: IpAddr,
        /// DPDK port the address is used on (default: by route lookup).
        #[arg(long)]
        port: Option<String>,
    },
    /// Remove a local address.
    #[command(visible_alias = "delete")]
    Del {
        /// The service, PROTO:VIP:PORT (e.g. tcp:10.0.0.100:80).
        service: ServiceKey,
        addr: IpAddr,
    },
    /// List local addresses (of one service).
    #[command(visible_alias = "ls")]
    List {
        /// Only this service (PROTO:VIP:PORT).
        service: Option<ServiceKey>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AddrVerb {
    /// Add an address (ADDR/LEN) on a DPDK port.
    Add {
        #[arg(value_name = "ADDR/LEN")]
        addr: Prefix,
        /// DPDK port name (e.g. dpdk0).
        #[arg(long)]
        port: String,
    },
    /// Remove an address.
    #[command(visible_alias = "delete")]
    Del { addr: IpAddr },
    /// List addresses.
    #[command(visible_alias = "ls")]
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RouteVerb {
    /// Add a route to PREFIX/LEN.
    Add {
        #[arg(value_name = "PREFIX/LEN")]
        prefix: NetPrefix,
        /// DPDK port the route leaves by.
        #[arg(long)]
        port: String,
        /// Gateway (default: the destination is on link).
        #[arg(long)]
        via: Option<IpAddr>,
        /// Source address for packets the daemon originates on this route.
        #[arg(long)]
        src: Option<IpAddr>,
    },
    /// Remove the route to PREFIX/LEN.
    #[command(visible_alias = "delete")]
    Del {
        #[arg(value_name = "PREFIX/LEN")]
        prefix: NetPrefix,
    },
    /// List routes.
    #[command(visible_alias = "ls")]
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum NeighVerb {
    /// Add a static neighbour entry.
    Add {
        addr: IpAddr,
        /// xx:xx:xx:xx:xx:xx
        mac: MacAddr,
        /// DPDK port the neighbour is on.
        #[arg(long)]
        port: String,
    },
    /// Remove a neighbour entry.
    #[command(visible_alias = "delete")]
    Del { addr: IpAddr },
    /// List neighbour entries (static and learnt).
    #[command(visible_alias = "ls")]
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConnVerb {
    /// List connections.
    #[command(visible_alias = "ls")]
    List {
        /// Only connections of this service.
        #[arg(long)]
        service: Option<ServiceKey>,
        /// At most this many connections.
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KniVerb {
    /// Addresses of a port's kernel twin.
    Addr {
        #[command(subcommand)]
        verb: KniAddrVerb,
    },
    /// Routes through a port's kernel twin.
    Route {
        #[command(subcommand)]
        verb: KniRouteVerb,
    },
    /// The twins: backend, link, desired and actual addresses and routes, traffic, guard.
    #[command(visible_alias = "ls")]
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KniAddrVerb {
    /// Add an address (ADDR/LEN) to the twin of a port; the guard keeps it there.
    Add {
        #[arg(value_name = "ADDR/LEN")]
        addr: Prefix,
        /// DPDK port name (e.g. dpdk0): the twin is <port>.kni.
        #[arg(long)]
        port: String,
    },
    /// Remove an address from the twin of a port.
    #[command(visible_alias = "delete")]
    Del {
        #[arg(value_name = "ADDR/LEN")]
        addr: Prefix,
        #[arg(long)]
        port: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KniRouteVerb {
    /// Add a route to PREFIX/LEN through the twin of a port; the guard keeps it there.
    Add {
        #[arg(value_name = "PREFIX/LEN")]
        prefix: NetPrefix,
        #[arg(long)]
        port: String,
        /// Gateway (default: the destination is on link).
        #[arg(long)]
        via: Option<IpAddr>,
    },
    /// Remove a route through the twin of a port.
    #[command(visible_alias = "delete")]
    Del {
        #[arg(value_name = "PREFIX/LEN")]
        prefix: NetPrefix,
        #[arg(long)]
        port: String,
        #[arg(long)]
        via: Option<IpAddr>,
    },
}

impl KniVerb {
    fn request(&self) -> Request {
        match self {
            KniVerb::Addr {
                verb: KniAddrVerb::Add { addr, port },
            } => Request::KniAddrAdd {
                port: port.clone(),
                addr: addr.addr,
                prefix_len: addr.len,
            },
            KniVerb::Addr {
                verb: KniAddrVerb::Del { addr, port },
            } => Request::KniAddrDel {
                port: port.clone(),
                addr: addr.addr,
                prefix_len: addr.len,
            },
            KniVerb::Route {
                verb: KniRouteVerb::Add { prefix, port, via },
            } => Request::KniRouteAdd {
                port: port.clone(),
                prefix: prefix.0.addr,
                prefix_len: prefix.0.len,
                via: *via,
            },
            KniVerb::Route {
                verb: KniRouteVerb::Del { prefix, port, via },
            } => Request::KniRouteDel {
                port: port.clone(),
                prefix: prefix.0.addr,
                prefix_len: prefix.0.len,
                via: *via,
            },
            KniVerb::List => Request::KniList,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum LinkVerb {
    /// List DPDK ports with their queues, steering and counters.
    #[command(visible_alias = "ls")]
    List,
}

/// `ADDR/LEN` where host bits are allowed (an interface address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = parse_prefix(s)?;
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// `PREFIX/LEN` naming a network: host bits must be clear, so a typo such as `10.0.0.1/24`
/// is caught here rather than silently meaning `10.0.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NetPrefix(pub Prefix);

impl FromStr for NetPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let p: Prefix = s.parse()?;
        if host_bits_set(p.addr, p.len) {
            return Err(format!(
                "host bits set in {p} (a route prefix names a network)"
            ));
        }
        Ok(NetPrefix(p))
    }
}

/// What the command needs from the daemon.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// One request, whose response is printed.
    Call(Request),
    /// `service edit`: read the service first, then write it back with the given fields
    /// changed, since the protocol's edit carries the whole definition.
    EditService {
        /// The service, PROTO:VIP:PORT (e.g. tcp:10.0.0.100:80).
        service: ServiceKey,
        sched: Option<Sched>,
        forward: Option<Forward>,
        opts: SchedOpts,
    },
    /// `rs edit` without `--weight`: read the real server's weight first.
    EditRs { service: ServiceKey, rs: RsSpec },
}

impl Object {
    /// Translates the parsed command into what to ask the daemon; an error is a usage error
    /// clap could not see (a flag another scheduler takes, say).
    pub(crate) fn action(&self) -> Result<Action, String> {
        Ok(match self {
            Object::Service { verb } => verb.action()?,
            Object::Rs { verb } => verb.action(),
            Object::Laddr { verb } => Action::Call(verb.request()),
            Object::Addr { verb } => Action::Call(verb.request()),
            Object::Route { verb } => Action::Call(verb.request()),
            Object::Neigh { verb } => Action::Call(verb.request()),
            Object::Conn {
                verb: ConnVerb::List { service, limit },
            } => Action::Call(Request::ConnList {
                service: *service,
                limit: *limit,
            }),
            Object::Stats => Action::Call(Request::Stats),
            Object::Link {
                verb: LinkVerb::List,
            } => Action::Call(Request::LinkList),
            Object::Kni { verb } => Action::Call(verb.request()),
        })
    }
}

impl ServiceVerb {
    fn action(&self) -> Result<Action, String> {
        let call = |r| Ok(Action::Call(r));
        match self {
            ServiceVerb::Add {
                service,
                sched,
                forward,
                opts,
            } => {
                let spec = ServiceSpec::new(*service, *sched, *forward);
                call(Request::ServiceAdd(opts.apply(spec, false)?))
            }
            ServiceVerb::Edit {
                service,
                sched,
                forward,
                opts,
            } => Ok(Action::EditService {
                service: *service,
                sched: *sched,
                forward: *forward,
                opts: opts.clone(),
            }),
            ServiceVerb::Del { service } => call(Request::ServiceDel { service: *service }),
            ServiceVerb::List { stats, rate, .. } => call(Request::ServiceList {
                stats: *stats || *rate,
            }),
        }
    }
}

impl RsVerb {
    fn action(&self) -> Action {
        match *self {
            RsVerb::Add {
                service,
                rs,
                weight,
                forward,
                limits,
            } => Action::Call(Request::RsAdd {
                service,
                rs: limits.spec(RsSpec {
                    forward,
                    ..RsSpec::new(rs, weight)
                }),
            }),
            RsVerb::Edit {
                service,
                rs,
                weight,
                forward,
                limits,
            } => {
                let spec = limits.spec(RsSpec {
                    forward,
                    ..RsSpec::new(rs, weight.unwrap_or(0))
                });
                match weight {
                    Some(_) => Action::Call(Request::RsEdit { service, rs: spec }),
                    None => Action::EditRs { service, rs: spec },
                }
            }
            RsVerb::Del { service, rs } => Action::Call(Request::RsDel { service, addr: rs }),
        }
    }
}

impl Limits {
    /// `spec` with these limits.
    fn spec(self, spec: RsSpec) -> RsSpec {
        RsSpec {
            upper: self.upper,
            lower: self.lower,
            ..spec
        }
    }
}

impl LaddrVerb {
    fn request(&self) -> Request {
        match self {
            LaddrVerb::Add {
                service,
                addr,
                port,
            } => Request::LaddrAdd {
                service: *service,
                addr: *addr,
                port: port.clone(),
            },
            LaddrVerb::Del { service, addr } => Request::LaddrDel {
                service: *service,
                addr: *addr,
            },
            LaddrVerb::List { service } => Request::LaddrList { service: *service },
        }
    }
}

impl AddrVerb {
    fn request(&self) -> Request {
        match self {
            AddrVerb::Add { addr, port } => Request::AddrAdd {
                addr: addr.addr,
                prefix_len: addr.len,
                port: port.clone(),
            },
            AddrVerb::Del { addr } => Request::AddrDel { addr: *addr },
            AddrVerb::List => Request::AddrList,
        }
    }
}

impl RouteVerb {
    fn request(&self) -> Request {
        match self {
            RouteVerb::Add {
                prefix: NetPrefix(p),
                port,
                via,
                src,
            } => Request::RouteAdd(RouteSpec {
                prefix: p.addr,
                prefix_len: p.len,
                port: port.clone(),
                via: *via,
                src: *src,
            }),
            RouteVerb::Del {
                prefix: NetPrefix(p),
            } => Request::RouteDel {
                prefix: p.addr,
                prefix_len: p.len,
            },
            RouteVerb::List => Request::RouteList,
        }
    }
}

impl NeighVerb {
    fn request(&self) -> Request {
        match self {
            NeighVerb::Add { addr, mac, port } => Request::NeighAdd {
                addr: *addr,
                mac: *mac,
                port: port.clone(),
            },
            NeighVerb::Del { addr } => Request::NeighDel { addr: *addr },
            NeighVerb::List => Request::NeighList,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("dpvs-ctl").chain(args.iter().copied()))
    }

    fn request(args: &[&str]) -> Request {
        match parse(args).unwrap().object.action() {
            Ok(Action::Call(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn action_error(args: &[&str]) -> String {
        parse(args).unwrap().object.action().unwrap_err()
    }

    fn svc() -> ServiceKey {
        "tcp:10.0.0.100:80".parse().unwrap()
    }

    #[test]
    fn service_commands() {
        assert_eq!(
            request(&[
                "service",
                "add",
                "tcp:10.0.0.100:80",
                "--sched",
                "rr",
                "--forward",
                "dr"
            ]),
            Request::ServiceAdd(ServiceSpec::new(svc(), Sched::Rr, Forward::Dr))
        );
        assert_eq!(
            request(&["service", "add", "tcp:10.0.0.100:80"]),
            Request::ServiceAdd(ServiceSpec::new(svc(), Sched::Wlc, Forward::Fnat)),
            "wlc is the default, as in ipvsadm"
        );
        assert_eq!(
            request(&["service", "del", "tcp:10.0.0.100:80"]),
            Request::ServiceDel { service: svc() }
        );
        assert_eq!(
            request(&["service", "list", "--stats"]),
            Request::ServiceList { stats: true }
        );
        assert_eq!(
            request(&["service", "ls"]),
            Request::ServiceList { stats: false }
        );
        assert_eq!(
            request(&["service", "list", "--rate"]),
            Request::ServiceList { stats: true }
        );
        assert!(parse(&["service", "list", "--rate", "--stats"]).is_err());
        assert_eq!(
            parse(&["service", "edit", "tcp:10.0.0.100:80", "--sched", "rr"])
                .unwrap()
                .object
                .action(),
            Ok(Action::EditService {
                service: svc(),
                sched: Some(Sched::Rr),
                forward: None,
                opts: SchedOpts::default(),
            })
        );
    }

    #[test]
    fn scheduler_options() {
        let add = |extra: &[&str]| {
            let mut args = vec!["service", "add", "tcp:10.0.0.100:80"];
            args.extend_from_slice(extra);
            request(&args)
        };
        let Request::ServiceAdd(s) = add(&[
            "--sched",
            "sh",
            "--sched-flags",
            "sh-port,sh-fallback",
            "--persistent",
            "300",
            "--netmask",
            "255.255.255.0",
        ]) else {
            panic!()
        };
        assert_eq!(
            s.sched_flags,
            SchedFlags {
                fallback: true,
                port: true
            }
        );
        assert_eq!(s.persistence, Some(Persistence::new(300, 24).unwrap()));
        let Request::ServiceAdd(m) = add(&["--sched", "mh", "--mh-table-size", "251"]) else {
            panic!()
        };
        assert_eq!(m.mh_table_size, Some(251));
        assert_eq!(
            action_error(&[
                "service",
                "add",
                "tcp:10.0.0.100:80",
                "--sched-flags",
                "sh-port"
            ]),
            "scheduler wlc takes no flags (got \"sh-port\")"
        );
        assert!(
            action_error(&["service", "add", "tcp:10.0.0.100:80", "--netmask", "24"])
                .contains("--netmask needs a persistent service")
        );
        assert!(parse(&["service", "add", "tcp:10.0.0.100:80", "--netmask", "33"]).is_err());
        assert!(parse(&["service", "add", "tcp:10.0.0.100:80", "--sched", "lblc"]).is_err());

        // Edits merge into the service as it is.
        let current = ServiceSpec {
            sched_flags: SchedFlags {
                fallback: true,
                port: false,
            },
            persistence: Some(Persistence::new(60, 32).unwrap()),
            ..ServiceSpec::new(svc(), Sched::Sh, Forward::Fnat)
        };
        let opts = |p: Option<u32>, m: Option<u8>| SchedOpts {
            persistent: p,
            netmask: m,
            ..SchedOpts::default()
        };
        let same = opts(None, Some(24)).apply(current.clone(), false).unwrap();
        assert_eq!(same.persistence, Some(Persistence::new(60, 24).unwrap()));
        assert!(same.sched_flags.fallback, "flags stay with the scheduler");
        let off = opts(Some(0), None).apply(current.clone(), false).unwrap();
        assert_eq!(off.persistence, None);
        let other = SchedOpts::default()
            .apply(
                ServiceSpec {
                    sched: Sched::Rr,
                    ..current
                },
                true,
            )
            .unwrap();
        assert!(
            other.sched_flags.is_empty(),
            "a new scheduler starts without flags"
        );
    }

    #[test]
    fn rs_commands() {
        let rs: SocketAddr = "192.168.10.11:8080".parse().unwrap();
        assert_eq!(
            request(&[
                "rs",
                "add",
                "tcp:10.0.0.100:80",
                "192.168.10.11:8080",
                "--weight",
                "3"
            ]),
            Request::RsAdd {
                service: svc(),
                rs: RsSpec::new(rs, 3)
            }
        );
        assert_eq!(
            request(&[
                "rs",
                "add",
                "tcp:10.0.0.100:80",
                "192.168.10.11:8080",
                "--upper",
                "100",
                "--lower",
                "80"
            ]),
            Request::RsAdd {
                service: svc(),
                rs: RsSpec {
                    upper: Some(100),
                    lower: Some(80),
                    ..RsSpec::new(rs, 1)
                }
            }
        );
        assert_eq!(
            request(&[
                "rs",
                "edit",
                "tcp:10.0.0.100:80",
                "192.168.10.11:8080",
                "--weight",
                "0",
                "--forward",
                "tun"
            ]),
            Request::RsEdit {
                service: svc(),
                rs: RsSpec {
                    forward: Some(Forward::Tun),
                    ..RsSpec::new(rs, 0)
                }
            }
        );
        assert_eq!(
            request(&["rs", "del", "tcp:10.0.0.100:80", "192.168.10.11:8080"]),
            Request::RsDel {
                service: svc(),
                addr: rs
            }
        );
        assert!(
            parse(&[
                "rs",
                "add",
                "tcp:10.0.0.100:80",
                "192.168.10.11:8080",
                "--weight",
                "65536"
            ])
            .is_err()
        );
        // Without --weight, the weight is read from the daemon first.
        assert_eq!(
            parse(&[
                "rs",
                "edit",
                "tcp:10.0.0.100:80",
                "192.168.10.11:8080",
                "--upper",
                "10"
            ])
            .unwrap()
            .object
            .action(),
            Ok(Action::EditRs {
                service: svc(),
                rs: RsSpec {
                    upper: Some(10),
                    ..RsSpec::new(rs, 0)
                }
            })
        );
    }

    #[test]
    fn address_route_neigh_commands() {
        let ip: IpAddr = "10.0.0.100".parse().unwrap();
        assert_eq!(
            request(&["addr", "add", "10.0.0.100/32", "--port", "dpdk0"]),
            Request::AddrAdd {
                addr: ip,
                prefix_len: 32,
                port: "dpdk0".into()
            }
        );
        assert_eq!(
            request(&["addr", "del", "10.0.0.100"]),
            Request::AddrDel { addr: ip }
        );
        assert_eq!(request(&["addr", "list"]), Request::AddrList);
        assert_eq!(
            request(&[
                "route",
                "add",
                "192.168.10.0/24",
                "--port",
                "dpdk1",
                "--via",
                "10.0.0.254",
                "--src",
                "10.0.0.1"
            ]),
            Request::RouteAdd(RouteSpec {
                prefix: "192.168.10.0".parse().unwrap(),
                prefix_len: 24,
                port: "dpdk1".into(),
                via: Some("10.0.0.254".parse().unwrap()),
                src: Some("10.0.0.1".parse().unwrap()),
            })
        );
        assert_eq!(
            request(&["route", "del", "0.0.0.0/0"]),
            Request::RouteDel {
                prefix: "0.0.0.0".parse().unwrap(),
                prefix_len: 0
            }
        );
        let e = parse(&["route", "add", "10.0.0.1/24", "--port", "dpdk0"]).unwrap_err();
        assert!(
            e.to_string().contains("host bits set in 10.0.0.1/24"),
            "{e}"
        );
        assert_eq!(
            request(&[
                "neigh",
                "add",
                "192.168.10.11",
                "02:00:00:00:00:11",
                "--port",
                "dpdk1"
            ]),
            Request::NeighAdd {
                addr: "192.168.10.11".parse().unwrap(),
                mac: "02:00:00:00:00:11".parse().unwrap(),
                port: "dpdk1".into()
            }
        );
        assert!(
            parse(&[
                "neigh",
                "add",
                "192.168.10.11",
                "02:00:00",
                "--port",
                "dpdk1"
            ])
            .is_err()
        );
    }

    #[test]
    fn laddr_conn_stats_link_commands() {
        let ip: IpAddr = "192.168.10.200".parse().unwrap();
        assert_eq!(
            request(&[
                "laddr",
                "add",
                "tcp:10.0.0.100:80",
                "192.168.10.200",
                "--port",
                "dpdk1"
            ]),
            Request::LaddrAdd {
                service: svc(),
                addr: ip,
                port: Some("dpdk1".into())
            }
        );
        assert_eq!(
            request(&["laddr", "del", "tcp:10.0.0.100:80", "192.168.10.200"]),
            Request::LaddrDel {
                service: svc(),
                addr: ip
            }
        );
        assert_eq!(
            request(&["laddr", "list"]),
            Request::LaddrList { service: None }
        );
        assert_eq!(
            request(&["laddr", "list", "tcp:10.0.0.100:80"]),
            Request::LaddrList {
                service: Some(svc())
            }
        );
        assert_eq!(
            request(&[
                "conn",
                "list",
                "--service",
                "tcp:10.0.0.100:80",
                "--limit",
                "5"
            ]),
            Request::ConnList {
                service: Some(svc()),
                limit: Some(5)
            }
        );
        assert_eq!(request(&["stats"]), Request::Stats);
        assert_eq!(request(&["link", "list"]), Request::LinkList);
        assert_eq!(request(&["kni", "list"]), Request::KniList);
        assert_eq!(
            request(&["kni", "addr", "add", "10.0.0.5/24", "--port", "dpdk0"]),
            Request::KniAddrAdd {
                port: "dpdk0".into(),
                addr: "10.0.0.5".parse().unwrap(),
                prefix_len: 24,
            }
        );
        assert_eq!(
            request(&[
                "kni",
                "route",
                "del",
                "10.9.0.0/16",
                "--port",
                "dpdk0",
                "--via",
                "10.0.0.254"
            ]),
            Request::KniRouteDel {
                port: "dpdk0".into(),
                prefix: "10.9.0.0".parse().unwrap(),
                prefix_len: 16,
                via: Some("10.0.0.254".parse().unwrap()),
            }
        );
    }

    #[test]
    fn global_options() {
        let cli = parse(&["-o", "json", "--ipc", "/tmp/x.sock", "stats"]).unwrap();
        assert_eq!(cli.output, Output::Json);
        assert_eq!(cli.ipc, PathBuf::from("/tmp/x.sock"));
        let cli = parse(&["service", "list", "-o", "json"]).unwrap();
        assert_eq!(cli.output, Output::Json);
        assert!(parse(&["-o", "yaml", "stats"]).is_err());
        assert!(parse(&["service", "add", "tcp:10.0.0.100"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
