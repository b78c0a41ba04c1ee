//! From the file as written ([`RawConfig`]) to a checked [`Config`]. Each section has its own
//! function; each error names the key path and the problem in one line.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

use dpvs_api::sched::MAX_PERSISTENT;
use dpvs_api::{
    Forward, MacAddr, Persistence, RouteSpec, RsSpec, Sched, SchedFlags, ServiceKey,
    check_mh_table_size, host_bits_set, parse_netmask, parse_prefix,
};

use super::raw::{
    RawAddress, RawConfig, RawControl, RawNeigh, RawNetmask, RawPort, RawRoute, RawRs, RawService,
    RawTimeouts, RawWorkers,
};
use super::{
    AddressConfig, Config, ConfigError, ControlConfig, DEFAULT_DESC, DEFAULT_INSTANCE, DEFAULT_IPC,
    DEFAULT_MAX_CONNS_PER_WORKER, DEFAULT_TEMPLATES, MAX_WORKERS, NeighConfig, PortConfig,
    ServiceConfig, Timeouts, Workers,
};

type Result<T> = std::result::Result<T, ConfigError>;

/// Longest port name: the kernel twin `<name>.kni` must fit in IFNAMSIZ - 1 = 15 characters.
const MAX_PORT_NAME: usize = 11;
/// Descriptor ring sizes accepted per queue.
const DESC_RANGE: RangeInclusive<i64> = 64..=32768;
/// Highest CPU id accepted in `workers.cpus` (DPDK's default RTE_MAX_LCORE is 128).
const MAX_CPU: i64 = 1023;
/// Longest accepted timeout, in seconds: what a connection deadline can hold (about 23 days).
const MAX_TIMEOUT: i64 = dpvs_core::engine::worker::MAX_TIMEOUT_S as i64;
/// Largest connection table per worker (2^28 entries is already many GiB).
const MAX_CONNS: i64 = 1 << 28;

pub(super) fn config(raw: RawConfig) -> Result<Config> {
    let ports = ports(&raw.port)?;
    let addresses = addresses(&raw.address, &ports)?;
    let kni = super::kni::kni(&raw, &ports, &addresses)?;
    Ok(Config {
        eal_args: raw.eal.args,
        workers: workers(&raw.workers)?,
        routes: routes(&raw.route, &ports, &addresses)?,
        neighs: neighs(&raw.neigh, &ports)?,
        timeouts: timeouts(&raw.timeouts)?,
        max_conns_per_worker: match raw.conn.max_per_worker {
            None => DEFAULT_MAX_CONNS_PER_WORKER,
            Some(n) => int_in("conn.max_per_worker", n, 1..=MAX_CONNS)?,
        },
        templates: match raw.conn.templates {
            None => DEFAULT_TEMPLATES,
            Some(n) => int_in("conn.templates", n, 16..=MAX_CONNS)?,
        },
        services: services(&raw.service, &addresses)?,
        control: control(&raw.control)?,
        kni,
        ports,
        addresses,
    })
}

fn workers(raw: &RawWorkers) -> Result<Workers> {
    let max = MAX_WORKERS as i64;
    match (raw.count, &raw.cpus) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            "workers",
            "give either count or cpus, not both",
        )),
        (None, None) => Ok(Workers::Count(1)),
        (Some(n), None) => Ok(Workers::Count(int_in("workers.count", n, 1..=max)?)),
        (None, Some(cpus)) => {
            if cpus.is_empty() {
                return Err(ConfigError::invalid(
                    "workers.cpus",
                    "must list at least one cpu",
                ));
            }
            if cpus.len() > MAX_WORKERS {
                let n = cpus.len();
                let problem = format!("{n} workers is more than the maximum of {MAX_WORKERS}");
                return Err(ConfigError::invalid("workers.cpus", problem));
            }
            let mut seen = Seen::default();
            let mut out = Vec::with_capacity(cpus.len());
            for (i, &cpu) in cpus.iter().enumerate() {
                let key = format!("workers.cpus[{i}]");
                let cpu: u32 = int_in(&key, cpu, 0..=MAX_CPU)?;
                seen.check(&key, cpu, "cpu", key.clone())?;
                out.push(cpu);
            }
            Ok(Workers::Cpus(out))
        }
    }
}

fn ports(raw: &[RawPort]) -> Result<Vec<PortConfig>> {
    if raw.is_empty() {
        return Err(ConfigError::invalid(
            "port",
            "at least one [[port]] is required",
        ));
    }
    let mut names = Seen::default();
    let mut devices = Seen::default();
    let mut out = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let port = port(i, p)?;
        let here = format!("port[{i}]");
        let name = format!("{:?}", port.name);
        names.check(&format!("{here}.name"), name, "port name", here.clone())?;
        let device = format!("{:?}", port.device);
        devices.check(&format!("{here}.device"), device, "device", here)?;
        out.push(port);
    }
    Ok(out)
}

fn port(i: usize, p: &RawPort) -> Result<PortConfig> {
    let k = |field: &str| format!("port[{i}].{field}");
    let name = required(&k("name"), &p.name)?;
    port_name(&k("name"), name)?;
    let device = required(&k("device"), &p.device)?;
    if device.trim().is_empty() {
        return Err(ConfigError::invalid(k("device"), "must not be empty"));
    }
    Ok(PortConfig {
        name: name.clone(),
        device: device.clone(),
        rx_desc: desc(&k("rx_desc"), p.rx_desc)?,
        tx_desc: desc(&k("tx_desc"), p.tx_desc)?,
        kni: p.kni.unwrap_or(true),
    })
}

/// A port name must be usable as `<name>.kni` for the kernel twin.
fn port_name(key: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.is_empty() || name.len() > MAX_PORT_NAME || !ok_chars {
        let problem = format!(
            "invalid port name {name:?} (1 to {MAX_PORT_NAME} letters, digits, '_' or '-', so that \"<name>.kni\" is a valid interface name)"
        );
        return Err(ConfigError::invalid(key, problem));
    }
    Ok(())
}

/// Descriptor ring size: a power of two, because most PMDs require it.
fn desc(key: &str, raw: Option<i64>) -> Result<u16> {
    let Some(n) = raw else {
        return Ok(DEFAULT_DESC);
    };
    let n: u16 = int_in(key, n, DESC_RANGE)?;
    if !n.is_power_of_two() {
        return Err(ConfigError::invalid(
            key,
            format!("{n} is not a power of two"),
        ));
    }
    Ok(n)
}

fn addresses(raw: &[RawAddress], ports: &[PortConfig]) -> Result<Vec<AddressConfig>> {
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(raw.len());
    for (i, a) in raw.iter().enumerate() {
        out.push(address_entry(
            &mut seen,
            ("address", i, "address"),
            (&a.addr, &a.port),
            ports,
        )?);
    }
    Ok(out)
}

/// An entry `<section>[i]` of an address list (`[[address]]`, `[[kni_address]]`, whose kind of
/// address is `what`): `addr` as `A/LEN`, not listed twice, on an existing `port`.
pub(super) fn address_entry(
    seen: &mut Seen<IpAddr>,
    (section, i, what): (&str, usize, &str),
    (addr, port): (&Option<String>, &Option<String>),
    ports: &[PortConfig],
) -> Result<AddressConfig> {
    let key = format!("{section}[{i}].addr");
    let (addr, prefix_len) = prefix_v4(&key, required(&key, addr)?)?;
    seen.check(&key, addr, what, format!("{section}[{i}]"))?;
    let port = port_ref(&format!("{section}[{i}].port"), port, ports)?;
    Ok(AddressConfig {
        addr,
        prefix_len,
        port,
    })
}

/// The prefix of route `<section>[i]` (`[[route]]`, `[[kni_route]]`, whose kind of route is
/// `what`): a network without host bits, not listed twice.
pub(super) fn route_prefix(
    seen: &mut Seen<String>,
    (section, i, what): (&str, usize, &str),
    prefix: &Option<String>,
) -> Result<(IpAddr, u8)> {
    let key = format!("{section}[{i}].prefix");
    let text = required(&key, prefix)?;
    let (prefix, prefix_len) = prefix_v4(&key, text)?;
    if host_bits_set(prefix, prefix_len) {
        return Err(ConfigError::invalid(
            key,
            format!("host bits set in {text}"),
        ));
    }
    let value = format!("{prefix}/{prefix_len}");
    seen.check(&key, value, what, format!("{section}[{i}]"))?;
    Ok((prefix, prefix_len))
}

/// An optional IPv4 address at `key`.
pub(super) fn optional_ipv4(key: &str, text: &Option<String>) -> Result<Option<IpAddr>> {
    text.as_deref().map(|t| ipv4(key, t)).transpose()
}

fn routes(
    raw: &[RawRoute],
    ports: &[PortConfig],
    addresses: &[AddressConfig],
) -> Result<Vec<RouteSpec>> {
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let (prefix, prefix_len) = route_prefix(&mut seen, ("route", i, "route"), &r.prefix)?;
        let port = port_ref(&format!("route[{i}].port"), &r.port, ports)?;
        let via = optional_ipv4(&format!("route[{i}].via"), &r.via)?;
        let src = optional_ipv4(&format!("route[{i}].src"), &r.src)?;
        if let Some(src) = src {
            own_address(&format!("route[{i}].src"), src, addresses)?;
        }
        out.push(RouteSpec {
            prefix,
            prefix_len,
            port,
            via,
            src,
        });
    }
    Ok(out)
}

fn neighs(raw: &[RawNeigh], ports: &[PortConfig]) -> Result<Vec<NeighConfig>> {
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(raw.len());
    for (i, n) in raw.iter().enumerate() {
        let key = format!("neigh[{i}].addr");
        let addr = ipv4(&key, required(&key, &n.addr)?)?;
        seen.check(&key, addr, "neighbour", format!("neigh[{i}]"))?;
        let mac_key = format!("neigh[{i}].mac");
        let mac: MacAddr = required(&mac_key, &n.mac)?
            .parse()
            .map_err(|e: String| ConfigError::invalid(&mac_key, e))?;
        let port = port_ref(&format!("neigh[{i}].port"), &n.port, ports)?;
        out.push(NeighConfig { addr, mac, port });
    }
    Ok(out)
}

fn timeouts(raw: &RawTimeouts) -> Result<Timeouts> {
    let d = Timeouts::default();
    let t = |name: &str, v: Option<i64>, default: u32| -> Result<u32> {
        v.map_or(Ok(default), |v| {
            int_in(&format!("timeouts.{name}"), v, 1..=MAX_TIMEOUT)
        })
    };
    Ok(Timeouts {
        established: t("tcp_established", raw.tcp_established, d.established)?,
        syn_sent: t("tcp_syn_sent", raw.tcp_syn_sent, d.syn_sent)?,
        syn_recv: t("tcp_syn_recv", raw.tcp_syn_recv, d.syn_recv)?,
        fin_wait: t("tcp_fin_wait", raw.tcp_fin_wait, d.fin_wait)?,
        time_wait: t("tcp_time_wait", raw.tcp_time_wait, d.time_wait)?,
        close: t("tcp_close", raw.tcp_close, d.close)?,
        close_wait: t("tcp_close_wait", raw.tcp_close_wait, d.close_wait)?,
        last_ack: t("tcp_last_ack", raw.tcp_last_ack, d.last_ack)?,
        listen: t("tcp_listen", raw.tcp_listen, d.listen)?,
        synack: t("tcp_synack", raw.tcp_synack, d.synack)?,
        udp: t("udp", raw.udp, d.udp)?,
    })
}

fn services(raw: &[RawService], addresses: &[AddressConfig]) -> Result<Vec<ServiceConfig>> {
    let mut seen: HashMap<ServiceKey, usize> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let svc = service(i, s, addresses)?;
        if let Some(first) = seen.insert(svc.key, i) {
            let problem = format!("duplicate of service[{first}] ({})", svc.key);
            return Err(ConfigError::invalid(format!("service[{i}]"), problem));
        }
        out.push(svc);
    }
    Ok(out)
}

fn service(i: usize, s: &RawService, addresses: &[AddressConfig]) -> Result<ServiceConfig> {
    let k = |field: &str| format!("service[{i}].{field}");
    let proto = parse_with(&k("proto"), required(&k("proto"), &s.proto)?)?;
    let vip = ipv4(&k("vip"), required(&k("vip"), &s.vip)?)?;
    let port = *required(&k("port"), &s.port)?;
    if port == 0 {
        return Err(ConfigError::invalid(k("port"), "must not be 0"));
    }
    let port: u16 = int_in(&k("port"), port, 1..=65535)?;
    let sched: Sched = s
        .sched
        .as_deref()
        .map(|v| parse_with(&k("sched"), v))
        .transpose()?
        .unwrap_or_default();
    let sched_flags = SchedFlags::parse(sched, &s.sched_flags.join(","))
        .map_err(|e| ConfigError::invalid(k("sched_flags"), e))?;
    let persistence = persistence(i, s)?;
    let mh_table_size = s
        .mh_table_size
        .map(|m| {
            if sched != Sched::Mh {
                let problem = format!("is for scheduler mh, not {sched}");
                return Err(ConfigError::invalid(k("mh_table_size"), problem));
            }
            let m = int_in(&k("mh_table_size"), m, 0..=i64::from(u32::MAX))?;
            check_mh_table_size(m).map_err(|e| ConfigError::invalid(k("mh_table_size"), e))
        })
        .transpose()?;
    let forward = s
        .forward
        .as_deref()
        .map(|v| parse_with(&k("forward"), v))
        .transpose()?;
    let forward: Forward = forward.unwrap_or_default();
    let laddrs = laddrs(i, &s.laddrs, addresses)?;
    let rs = real_servers(i, &s.rs)?;
    let needs_laddr =
        forward == Forward::Fnat || rs.iter().any(|r| r.forward == Some(Forward::Fnat));
    if needs_laddr && laddrs.is_empty() {
        let problem = "a fnat service needs at least one local address (FullNAT sources its packets to real servers from one)";
        return Err(ConfigError::invalid(k("laddrs"), problem));
    }
    Ok(ServiceConfig {
        key: ServiceKey { proto, vip, port },
        sched,
        sched_flags,
        persistence,
        mh_table_size,
        forward,
        laddrs,
        rs,
    })
}

/// `persistent = SECS` with an optional `netmask`.
fn persistence(i: usize, s: &RawService) -> Result<Option<Persistence>> {
    let k = |field: &str| format!("service[{i}].{field}");
    let netmask = s
        .netmask
        .as_ref()
        .map(|m| match m {
            RawNetmask::Text(t) => parse_netmask(t),
            RawNetmask::Len(n) => parse_netmask(&n.to_string()),
        })
        .transpose()
        .map_err(|e| ConfigError::invalid(k("netmask"), e))?;
    let Some(timeout) = s.persistent else {
        if netmask.is_some() {
            return Err(ConfigError::invalid(
                k("netmask"),
                "applies to a persistent service only (set persistent = SECS)",
            ));
        }
        return Ok(None);
    };
    let timeout = int_in(&k("persistent"), timeout, 1..=i64::from(MAX_PERSISTENT))?;
    Persistence::new(timeout, netmask.unwrap_or(32))
        .map(Some)
        .map_err(|e| ConfigError::invalid(k("persistent"), e))
}

/// Local addresses must be the daemon's own, or nobody answers ARP for the replies.
fn laddrs(i: usize, raw: &[String], addresses: &[AddressConfig]) -> Result<Vec<IpAddr>> {
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(raw.len());
    for (j, text) in raw.iter().enumerate() {
        let key = format!("service[{i}].laddrs[{j}]");
        let addr = ipv4(&key, text)?;
        own_address(&key, addr, addresses)?;
        seen.check(&key, addr, "local address", key.clone())?;
        out.push(addr);
    }
    Ok(out)
}

fn real_servers(i: usize, raw: &[RawRs]) -> Result<Vec<RsSpec>> {
    let mut seen = Seen::default();
    let mut out = Vec::with_capacity(raw.len());
    for (j, r) in raw.iter().enumerate() {
        let k = |field: &str| format!("service[{i}].rs[{j}].{field}");
        let addr = rs_addr(&k("addr"), required(&k("addr"), &r.addr)?)?;
        seen.check(
            &k("addr"),
            addr,
            "real server",
            format!("service[{i}].rs[{j}]"),
        )?;
        let weight = r
            .weight
            .map_or(Ok(1), |w| int_in(&k("weight"), w, 0..=65535))?;
        let forward = r
            .forward
            .as_deref()
            .map(|v| parse_with(&k("forward"), v))
            .transpose()?;
        let limit = |field: &str, v: Option<i64>| {
            v.map(|n| int_in(&k(field), n, 0..=i64::from(u32::MAX)))
                .transpose()
        };
        let (upper, lower) = (limit("upper", r.upper)?, limit("lower", r.lower)?);
        if let (Some(u), Some(l)) = (upper, lower)
            && u > 0
            && l > u
        {
            let problem = format!("lower threshold {l} is above upper threshold {u}");
            return Err(ConfigError::invalid(k("lower"), problem));
        }
        out.push(RsSpec {
            addr,
            weight,
            forward,
            upper,
            lower,
        });
    }
    Ok(out)
}

fn rs_addr(key: &str, text: &str) -> Result<SocketAddr> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!("invalid socket address {text:?} (expected ADDR:PORT)"),
        )
    })?;
    if addr.is_ipv6() {
        return Err(ipv6_error(key, text));
    }
    if addr.port() == 0 {
        return Err(ConfigError::invalid(
            key,
            format!("port must not be 0 in {text}"),
        ));
    }
    Ok(addr)
}

fn control(raw: &RawControl) -> Result<ControlConfig> {
    let ipc = raw.ipc.as_deref().unwrap_or(DEFAULT_IPC);
    if ipc.trim().is_empty() {
        return Err(ConfigError::invalid("control.ipc", "must not be empty"));
    }
    let instance = raw.instance.as_deref().unwrap_or(DEFAULT_INSTANCE);
    let ok = !instance.is_empty()
        && instance.len() <= 32
        && instance
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        let problem = format!(
            "invalid instance name {instance:?} (1 to 32 letters, digits, '_' or '-'; it names lock files)"
        );
        return Err(ConfigError::invalid("control.instance", problem));
    }
    Ok(ControlConfig {
        ipc: PathBuf::from(ipc),
        instance: instance.to_string(),
    })
}

/// Remembers the first index of each value so a duplicate names both places.
pub(super) struct Seen<K> {
    first: HashMap<K, String>,
}

impl<K> Default for Seen<K> {
    fn default() -> Self {
        Seen {
            first: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + std::fmt::Display> Seen<K> {
    /// Errors at `key` if `value` was seen before; `what` names the kind of value and `here`
    /// this occurrence (quoted by a later duplicate).
    pub(super) fn check(&mut self, key: &str, value: K, what: &str, here: String) -> Result<()> {
        if let Some(first) = self.first.get(&value) {
            let problem = format!("duplicate {what} {value} (also {first})");
            return Err(ConfigError::invalid(key, problem));
        }
        self.first.insert(value, here);
        Ok(())
    }
}

pub(super) fn required<'a, T>(key: &str, v: &'a Option<T>) -> Result<&'a T> {
    v.as_ref()
        .ok_or_else(|| ConfigError::invalid(key, "missing (required)"))
}

fn int_in<T: TryFrom<i64>>(key: &str, v: i64, range: RangeInclusive<i64>) -> Result<T> {
    let (lo, hi) = (*range.start(), *range.end());
    if !range.contains(&v) {
        return Err(ConfigError::invalid(
            key,
            format!("{v} is out of range ({lo}..={hi})"),
        ));
    }
    T::try_from(v).map_err(|_| ConfigError::invalid(key, format!("{v} is out of range")))
}

/// Parses with the type's own `FromStr` message (`unknown scheduler "lc" (supported: ...)`).
fn parse_with<T: std::str::FromStr<Err = String>>(key: &str, text: &str) -> Result<T> {
    text.parse()
        .map_err(|e: String| ConfigError::invalid(key, e))
}

pub(super) fn ipv4(key: &str, text: &str) -> Result<IpAddr> {
    let addr: IpAddr = text
        .parse()
        .map_err(|_| ConfigError::invalid(key, format!("invalid IP address {text:?}")))?;
    if addr.is_ipv6() {
        return Err(ipv6_error(key, text));
    }
    Ok(addr)
}

pub(super) fn prefix_v4(key: &str, text: &str) -> Result<(IpAddr, u8)> {
    if text
        .split('/')
        .next()
        .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
    {
        return Err(ipv6_error(key, text));
    }
    parse_prefix(text).map_err(|e| ConfigError::invalid(key, e))
}

fn ipv6_error(key: &str, text: &str) -> ConfigError {
    ConfigError::invalid(key, format!("IPv6 not supported yet ({text})"))
}

/// The name of an existing port.
pub(super) fn port_ref(key: &str, name: &Option<String>, ports: &[PortConfig]) -> Result<String> {
    let name = required(key, name)?;
    if ports.iter().any(|p| &p.name == name) {
        return Ok(name.clone());
    }
    let known: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    let problem = format!("unknown port {name:?} (configured: {})", known.join(", "));
    Err(ConfigError::invalid(key, problem))
}

/// `addr` must be one of the `[[address]]` entries.
fn own_address(key: &str, addr: IpAddr, addresses: &[AddressConfig]) -> Result<()> {
    if addresses.iter().any(|a| a.addr == addr) {
        return Ok(());
    }
    let problem = format!(
        "{addr} is not one of the [[address]] addresses (add it there so that ARP answers for it)"
    );
    Err(ConfigError::invalid(key, problem))
}
