//! The authoritative configuration, owned by the control plane. Every change goes through one
//! of these methods, which validate it and leave the state untouched on error; the caller then
//! publishes a new snapshot built by [`ControlState::snapshot`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use dpvs_api::{Forward, Sched, ServiceKey};
use hashbrown::HashMap;

use crate::config::Config;
use dpvs_core::engine::neigh::{NeighEntry, NeighTable};
use dpvs_core::engine::route::{Route, RouteTable};
use dpvs_core::engine::sched::Schedule;
use dpvs_core::engine::snapshot::{LocalAddr, PortConf, RealServer, Service, Snapshot};
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::packet::ether::MacAddr;
use dpvs_core::packet::ipv4::IpProto;

/// A port known to the control plane.
#[derive(Clone, Debug)]
pub struct PortState {
    pub name: String,
    pub id: u16,
    pub mac: MacAddr,
    /// The largest IP packet the port sends.
    pub mtu: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrState {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub port: u16,
}

#[derive(Clone, Debug)]
pub struct RsState {
    pub addr: SocketAddrV4,
    pub weight: u32,
    pub forward: Option<Forward>,
    pub slot: u32,
}

#[derive(Clone, Debug)]
pub struct ServiceState {
    pub key: ServiceKey,
    pub sched: Sched,
    pub forward: Forward,
    pub slot: u32,
    pub rs: Vec<RsState>,
    pub laddrs: Vec<Ipv4Addr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighState {
    pub mac: MacAddr,
    pub port: u16,
    pub is_static: bool,
}

/// Counter slots handed to services and real servers; a freed slot is reused only after the
/// connections that counted into it are gone (the caller flushes them first).
#[derive(Debug)]
struct SlotAlloc {
    free: Vec<u32>,
}

impl SlotAlloc {
    fn new(n: u32) -> Self {
        SlotAlloc {
            free: (0..n).rev().collect(),
        }
    }
    fn take(&mut self) -> Result<u32, String> {
        self.free.pop().ok_or_else(|| {
            "too many services and real servers (counter slots exhausted)".to_string()
        })
    }
    fn give_back(&mut self, s: u32) {
        self.free.push(s);
    }
}

/// The control plane's view of everything configured.
#[derive(Debug)]
pub struct ControlState {
    pub ports: Vec<PortState>,
    pub addrs: Vec<AddrState>,
    pub routes: Vec<Route>,
    pub neighs: HashMap<Ipv4Addr, NeighState>,
    pub services: Vec<ServiceState>,
    pub timeouts: Timeouts,
    slots: SlotAlloc,
    generation: u64,
    /// Of the last neighbour table built.
    neigh_generation: u64,
}

/// A change whose consequences reach into the workers' tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    None,
    /// Connections counted in this real-server slot must go (and then the slot is freed).
    Rs(u32),
    /// Connections of this service slot must go; the slots are freed afterwards.
    Service(u32),
}

fn v4(ip: IpAddr, what: &str) -> Result<Ipv4Addr, String> {
    match ip {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(format!("{what} {ip}: IPv6 is not supported yet")),
    }
}

fn v4_sock(a: SocketAddr, what: &str) -> Result<SocketAddrV4, String> {
    match a {
        SocketAddr::V4(s) => Ok(s),
        SocketAddr::V6(_) => Err(format!("{what} {a}: IPv6 is not supported yet")),
    }
}

impl ControlState {
    pub fn new(ports: Vec<PortState>, timeouts: Timeouts, slots: u32) -> Self {
        ControlState {
            ports,
            addrs: Vec::new(),
            routes: Vec::new(),
            neighs: HashMap::new(),
            services: Vec::new(),
            timeouts,
            slots: SlotAlloc::new(slots),
            generation: 0,
            neigh_generation: 0,
        }
    }

    pub fn port_id(&self, name: &str) -> Result<u16, String> {
        self.ports
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.id)
            .ok_or_else(|| format!("unknown port {name:?}"))
    }

    pub fn port_name(&self, id: u16) -> String {
        self.ports
            .iter()
            .find(|p| p.id == id)
            .map_or_else(|| format!("port{id}"), |p| p.name.clone())
    }

    fn service_pos(&self, key: &ServiceKey) -> Result<usize, String> {
        self.services
            .iter()
            .position(|s| s.key == *key)
            .ok_or_else(|| format!("no service {key}"))
    }

    pub fn service_add(
        &mut self,
        key: ServiceKey,
        sched: Sched,
        forward: Forward,
    ) -> Result<(), String> {
        v4(key.vip, "service")?;
        if key.port == 0 {
            return Err(format!("service {key}: port 0 is not allowed"));
        }
        if self.services.iter().any(|s| s.key == key) {
            return Err(format!("service {key} exists"));
        }
        if let IpAddr::V4(vip) = key.vip
            && let Some(rs) = self.real_server_at(vip)
        {
            return Err(format!(
                "service {key}: its VIP {vip} is {rs}; the VIP must be one of the balancer's addresses"
            ));
        }
        let slot = self.slots.take()?;
        self.services.push(ServiceState {
            key,
            sched,
            forward,
            slot,
            rs: Vec::new(),
            laddrs: Vec::new(),
        });
        Ok(())
    }

    pub fn service_edit(
        &mut self,
        key: ServiceKey,
        sched: Sched,
        forward: Forward,
    ) -> Result<(), String> {
        let i = self.service_pos(&key)?;
        let s = &self.services[i];
        // Real servers without a mode of their own take the new default.
        for r in s.rs.iter().filter(|r| r.forward.is_none()) {
            self.check_mode(&key, r.addr, forward)?;
        }
        let s = &mut self.services[i];
        s.sched = sched;
        s.forward = forward;
        Ok(())
    }

    /// Removes a service; the caller flushes its connections, then calls [`Self::release`].
    pub fn service_del(&mut self, key: &ServiceKey) -> Result<Flush, String> {
        let i = self.service_pos(key)?;
        Ok(Flush::Service(self.services[i].slot))
    }

    pub fn rs_add(
        &mut self,
        key: &ServiceKey,
        addr: SocketAddr,
        weight: u32,
        forward: Option<Forward>,
    ) -> Result<(), String> {
        let addr = v4_sock(addr, "real server")?;
        check_rs(addr, weight)?;
        let i = self.service_pos(key)?;
        if self.services[i].rs.iter().any(|r| r.addr == addr) {
            return Err(format!("real server {addr} exists in {key}"));
        }
        if let Some(ours) = self.ours(*addr.ip()) {
            return Err(format!(
                "real server {addr}: {} is {ours}; a real server must be another host",
                addr.ip()
            ));
        }
        self.check_mode(key, addr, forward.unwrap_or(self.services[i].forward))?;
        let slot = self.slots.take()?;
        self.services[i].rs.push(RsState {
            addr,
            weight,
            forward,
            slot,
        });
        Ok(())
    }

    pub fn rs_edit(
        &mut self,
        key: &ServiceKey,
        addr: SocketAddr,
        weight: u32,
        forward: Option<Forward>,
    ) -> Result<(), String> {
        let addr = v4_sock(addr, "real server")?;
        check_rs(addr, weight)?;
        let i = self.service_pos(key)?;
        let s = &self.services[i];
        let j =
            s.rs.iter()
                .position(|r| r.addr == addr)
                .ok_or_else(|| format!("no real server {addr} in {key}"))?;
        self.check_mode(key, addr, forward.or(s.rs[j].forward).unwrap_or(s.forward))?;
        let rs = &mut self.services[i].rs[j];
        rs.weight = weight;
        if forward.is_some() {
            rs.forward = forward;
        }
        Ok(())
    }

    /// Checks what forwarding mode `forward` requires of real server `addr` of service `key`.
    /// DR and TUN hand over the client's packet unchanged, so the real server serves the
    /// service's own port; DR reaches it by its MAC, so it must be on one of our links (a
    /// route removed later makes its packets count as `rs_not_on_link`).
    fn check_mode(
        &self,
        key: &ServiceKey,
        addr: SocketAddrV4,
        forward: Forward,
    ) -> Result<(), String> {
        if matches!(forward, Forward::Dr | Forward::Tun) && addr.port() != key.port {
            return Err(format!(
                "real server {addr}: {forward} forwards the client's packet unchanged, so its port must be the service's ({})",
                key.port
            ));
        }
        if forward == Forward::Dr {
            let rip = *addr.ip();
            match self.route_table().next_hop(rip) {
                Some((_, gw, _)) if gw == rip => {}
                Some((_, gw, _)) => {
                    return Err(format!(
                        "real server {addr}: dr needs it on a directly connected network, but it is routed via {gw}"
                    ));
                }
                None => {
                    return Err(format!(
                        "real server {addr}: dr needs it on a directly connected network (add an address in its subnet first)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// What `ip` is to the balancer, if it is its own: an address on a port, a service's VIP
    /// (a VIP need not be an address yet), a local address. Such an address can never be a
    /// real server: packets to it would come back to the balancer.
    fn ours(&self, ip: Ipv4Addr) -> Option<String> {
        if let Some(s) = self.services.iter().find(|s| s.key.vip == IpAddr::V4(ip)) {
            return Some(format!("the VIP of {}", s.key));
        }
        if let Some(s) = self.services.iter().find(|s| s.laddrs.contains(&ip)) {
            return Some(format!("a local address of {}", s.key));
        }
        let a = self.addrs.iter().find(|a| a.addr == ip)?;
        Some(format!(
            "the balancer's address {}/{} on {}",
            a.addr,
            a.prefix_len,
            self.port_name(a.port)
        ))
    }

    /// The real server (as "real server ADDR:PORT of SERVICE") whose address is `ip`.
    fn real_server_at(&self, ip: Ipv4Addr) -> Option<String> {
        self.services.iter().find_map(|s| {
            let r = s.rs.iter().find(|r| *r.addr.ip() == ip)?;
            Some(format!("real server {} of {}", r.addr, s.key))
        })
    }

    /// Removes a real server from the schedule; the caller flushes its connections, then calls
    /// [`Self::release`].
    pub fn rs_del(&mut self, key: &ServiceKey, addr: SocketAddr) -> Result<Flush, String> {
        let addr = v4_sock(addr, "real server")?;
        let i = self.service_pos(key)?;
        let j = self.services[i]
            .rs
            .iter()
            .position(|r| r.addr == addr)
            .ok_or_else(|| format!("no real server {addr} in {key}"))?;
        let rs = self.services[i].rs.remove(j);
        Ok(Flush::Rs(rs.slot))
    }

    /// Finishes a deletion once the workers let go of the connections: frees the counter
    /// slots (and, for a service, removes it) and returns the freed slots, which the caller
    /// zeroes before anything reuses them.
    pub fn release(&mut self, flush: Flush) -> Vec<u32> {
        let freed = match flush {
            Flush::None => Vec::new(),
            Flush::Rs(slot) => vec![slot],
            Flush::Service(slot) => match self.services.iter().position(|s| s.slot == slot) {
                Some(i) => {
                    let s = self.services.remove(i);
                    s.rs.iter().map(|r| r.slot).chain([s.slot]).collect()
                }
                None => Vec::new(),
            },
        };
        for s in &freed {
            self.slots.give_back(*s);
        }
        freed
    }

    /// Stops scheduling to a service before its connections are flushed.
    pub fn service_hide(&mut self, slot: u32) {
        if let Some(s) = self.services.iter_mut().find(|s| s.slot == slot) {
            for r in &mut s.rs {
                r.weight = 0;
            }
        }
    }

    pub fn laddr_add(&mut self, key: &ServiceKey, addr: IpAddr) -> Result<(), String> {
        let addr = v4(addr, "local address")?;
        if !self.addrs.iter().any(|a| a.addr == addr) {
            return Err(format!(
                "local address {addr} is not one of the daemon's addresses (add it with `addr add` first)"
            ));
        }
        let i = self.service_pos(key)?;
        if self.services[i].laddrs.contains(&addr) {
            return Err(format!("local address {addr} exists in {key}"));
        }
        self.services[i].laddrs.push(addr);
        Ok(())
    }

    pub fn laddr_del(&mut self, key: &ServiceKey, addr: IpAddr) -> Result<(), String> {
        let addr = v4(addr, "local address")?;
        let i = self.service_pos(key)?;
        let l = &mut self.services[i].laddrs;
        let j = l
            .iter()
            .position(|a| *a == addr)
            .ok_or_else(|| format!("no local address {addr} in {key}"))?;
        l.remove(j);
        Ok(())
    }

    pub fn addr_add(&mut self, addr: IpAddr, prefix_len: u8, port: &str) -> Result<(), String> {
        let addr = v4(addr, "address")?;
        if prefix_len > 32 {
            return Err(format!(
                "address {addr}/{prefix_len}: prefix length above 32"
            ));
        }
        let port = self.port_id(port)?;
        if self.addrs.iter().any(|a| a.addr == addr) {
            return Err(format!("address {addr} exists"));
        }
        if let Some(rs) = self.real_server_at(addr) {
            return Err(format!(
                "address {addr}: it is {rs}; the balancer cannot hold a real server's address"
            ));
        }
        self.addrs.push(AddrState {
            addr,
            prefix_len,
            port,
        });
        Ok(())
    }

    pub fn addr_del(&mut self, addr: IpAddr) -> Result<(), String> {
        let addr = v4(addr, "address")?;
        if let Some(s) = self.services.iter().find(|s| s.laddrs.contains(&addr)) {
            return Err(format!(
                "address {addr} is a local address of {}; remove it there first",
                s.key
            ));
        }
        let i = self
            .addrs
            .iter()
            .position(|a| a.addr == addr)
            .ok_or_else(|| format!("no address {addr}"))?;
        self.addrs.remove(i);
        Ok(())
    }

    pub fn route_add(
        &mut self,
        prefix: IpAddr,
        len: u8,
        port: &str,
        via: Option<IpAddr>,
        src: Option<IpAddr>,
    ) -> Result<(), String> {
        let route = Route {
            prefix: v4(prefix, "route")?,
            len,
            port: self.port_id(port)?,
            via: via.map(|v| v4(v, "gateway")).transpose()?,
            src: src.map(|v| v4(v, "source")).transpose()?,
        };
        // Validate through a scratch table: the same rules the snapshot's table enforces.
        let mut t = RouteTable::new();
        for r in &self.routes {
            let _ = t.insert(*r);
        }
        t.insert(route)
            .map_err(|e| format!("route {prefix}/{len}: {e}"))?;
        self.routes.push(route);
        Ok(())
    }

    pub fn route_del(&mut self, prefix: IpAddr, len: u8) -> Result<(), String> {
        let p = v4(prefix, "route")?;
        let i = self
            .routes
            .iter()
            .position(|r| r.prefix == p && r.len == len)
            .ok_or_else(|| format!("no route {p}/{len}"))?;
        self.routes.remove(i);
        Ok(())
    }

    pub fn neigh_add(&mut self, addr: IpAddr, mac: &str, port: &str) -> Result<(), String> {
        let addr = v4(addr, "neighbour")?;
        let mac: MacAddr = mac
            .parse()
            .map_err(|_| format!("invalid MAC address {mac:?}"))?;
        let port = self.port_id(port)?;
        self.neighs.insert(
            addr,
            NeighState {
                mac,
                port,
                is_static: true,
            },
        );
        Ok(())
    }

    pub fn neigh_del(&mut self, addr: IpAddr) -> Result<(), String> {
        let addr = v4(addr, "neighbour")?;
        self.neighs
            .remove(&addr)
            .map(|_| ())
            .ok_or_else(|| format!("no neighbour {addr}"))
    }

    /// Loads the configuration file's objects, in dependency order (addresses before the
    /// local addresses that use them). Errors name the config key.
    pub fn apply_config(&mut self, cfg: &Config) -> Result<(), String> {
        for (i, a) in cfg.addresses.iter().enumerate() {
            self.addr_add(a.addr, a.prefix_len, &a.port)
                .map_err(|e| format!("address[{i}]: {e}"))?;
        }
        for (i, r) in cfg.routes.iter().enumerate() {
            self.route_add(r.prefix, r.prefix_len, &r.port, r.via, r.src)
                .map_err(|e| format!("route[{i}]: {e}"))?;
        }
        for (i, n) in cfg.neighs.iter().enumerate() {
            self.neigh_add(n.addr, &n.mac.to_string(), &n.port)
                .map_err(|e| format!("neigh[{i}]: {e}"))?;
        }
        for (i, s) in cfg.services.iter().enumerate() {
            let key = |e: String| format!("service[{i}]: {e}");
            self.service_add(s.key, s.sched, s.forward).map_err(key)?;
            for l in &s.laddrs {
                self.laddr_add(&s.key, *l).map_err(key)?;
            }
            for (j, r) in s.rs.iter().enumerate() {
                self.rs_add(&s.key, r.addr, r.weight, r.forward)
                    .map_err(|e| format!("service[{i}].rs[{j}]: {e}"))?;
            }
        }
        Ok(())
    }

    /// Checks the configuration file's objects as the daemon will load them, without ports:
    /// a config that [`Self::apply_config`] would refuse is refused before EAL and the ports
    /// are touched, with the same one-line error. `slots` is the daemon's number of counter
    /// slots.
    pub fn check_config(cfg: &Config, slots: u32) -> Result<(), String> {
        let ports = cfg
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortState {
                name: p.name.clone(),
                id: i as u16,
                mac: MacAddr::ZERO,
                mtu: 1500,
            })
            .collect();
        let mut state = ControlState::new(ports, cfg.timeouts, slots);
        state.apply_config(cfg)
    }

    /// Records what a worker learnt from ARP; static entries win. Returns whether anything
    /// changed (and a new neighbour table must be published).
    pub fn neigh_learn(&mut self, ip: Ipv4Addr, mac: MacAddr, port: u16) -> bool {
        let new = NeighState {
            mac,
            port,
            is_static: false,
        };
        match self.neighs.get(&ip) {
            Some(n) if n.is_static || *n == new => false,
            _ => {
                self.neighs.insert(ip, new);
                true
            }
        }
    }

    /// Routes as the engine uses them: the configured ones plus a connected route for each
    /// address's subnet (shorter than /32) that no configured route covers exactly.
    fn route_table(&self) -> RouteTable {
        let mut t = RouteTable::new();
        for r in &self.routes {
            let _ = t.insert(*r);
        }
        // A /32 (a VIP, a local address) has no subnet to reach: a route for it would only add
        // a prefix length that every lookup probes.
        for a in self.addrs.iter().filter(|a| a.prefix_len < 32) {
            let prefix = mask(a.addr, a.prefix_len);
            let connected = Route {
                prefix,
                len: a.prefix_len,
                port: a.port,
                via: None,
                src: Some(a.addr),
            };
            // A duplicate means the user configured this prefix: theirs wins.
            let _ = t.insert(connected);
        }
        t
    }

    /// Builds the snapshot the workers will read.
    pub fn snapshot(&mut self) -> Snapshot {
        self.generation += 1;
        let mut ports = Vec::new();
        for p in &self.ports {
            let i = usize::from(p.id);
            if ports.len() <= i {
                ports.resize(i + 1, None);
            }
            ports[i] = Some(PortConf {
                mac: p.mac,
                mtu: p.mtu,
                addr: None,
            });
        }
        let mut local = HashMap::new();
        for a in &self.addrs {
            local.insert(
                a.addr.to_bits(),
                LocalAddr {
                    port: a.port,
                    is_laddr: false,
                    is_vip: false,
                },
            );
        }
        for s in &self.services {
            for l in &s.laddrs {
                if let Some(e) = local.get_mut(&l.to_bits()) {
                    e.is_laddr = true;
                }
            }
            if let IpAddr::V4(vip) = s.key.vip
                && let Some(e) = local.get_mut(&vip.to_bits())
            {
                e.is_vip = true;
            }
        }
        for (&ip, l) in local.iter().filter(|(_, l)| !l.is_laddr) {
            let pc = ports.get_mut(usize::from(l.port)).and_then(Option::as_mut);
            if let Some(pc) = pc {
                let ip = Ipv4Addr::from_bits(ip);
                pc.addr = Some(pc.addr.map_or(ip, |a| a.min(ip)));
            }
        }
        let mut services = Vec::new();
        let mut service_index = HashMap::new();
        for s in &self.services {
            let IpAddr::V4(vip) = s.key.vip else { continue };
            service_index.insert(
                (IpProto::from(s.key.proto), vip.to_bits(), s.key.port),
                services.len() as u32,
            );
            services.push(self.service_snapshot(s));
        }
        Snapshot {
            generation: self.generation,
            ports,
            local,
            services,
            service_index,
            routes: self.route_table(),
            timeouts: self.timeouts,
        }
    }

    fn service_snapshot(&self, s: &ServiceState) -> Service {
        let weights: Vec<u32> = s.rs.iter().map(|r| r.weight).collect();
        Service {
            key: s.key,
            slot: s.slot,
            forward: s.forward,
            schedule: Schedule::new(s.sched, &weights),
            rs: s
                .rs
                .iter()
                .map(|r| RealServer {
                    addr: r.addr,
                    weight: r.weight,
                    forward: r.forward.unwrap_or(s.forward),
                    slot: r.slot,
                })
                .collect(),
            laddrs: s.laddrs.clone(),
        }
    }

    /// The neighbour table the workers will read.
    pub fn neigh_table(&mut self) -> NeighTable {
        self.neigh_generation += 1;
        let mut t = NeighTable::new();
        t.set_generation(self.neigh_generation);
        for (ip, n) in &self.neighs {
            t.insert(
                *ip,
                NeighEntry {
                    mac: n.mac.0,
                    port: n.port,
                    is_static: n.is_static,
                },
            );
        }
        t
    }
}

fn check_rs(addr: SocketAddrV4, weight: u32) -> Result<(), String> {
    if addr.port() == 0 {
        return Err(format!("real server {addr}: port 0 is not allowed"));
    }
    if weight > 65535 {
        return Err(format!("real server {addr}: weight {weight} above 65535"));
    }
    Ok(())
}

/// `addr` with its host bits cleared.
pub fn mask(addr: Ipv4Addr, len: u8) -> Ipv4Addr {
    let m = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    Ipv4Addr::from_bits(addr.to_bits() & m)
}
