//! Services, their real servers and their local addresses: adding, editing and deleting them,
//! with the checks that keep a configuration workable (the forwarding mode's requirements, and
//! no address that is both the balancer's own and a real server's).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use dpvs_api::{
    Forward, MH_TABLE_DEFAULT, Persistence, RsSpec, Sched, SchedFlags, ServiceKey, ServiceSpec,
    check_mh_table_size,
};

use super::{ControlState, Cut, v4};
use crate::control::error::{ControlError, OwnAddress, RealServerOf};

#[derive(Clone, Debug)]
pub struct RsState {
    pub addr: SocketAddrV4,
    pub weight: u32,
    /// Its own forwarding mode; `None` follows the service's.
    pub forward: Option<Forward>,
    pub slot: u32,
    /// Connection limits (0: none); `lower` as given (0: 3/4 of `upper`).
    pub upper: u32,
    pub lower: u32,
}

impl RsState {
    /// The lower limit in effect: as given, else 3/4 of the upper one (IPVS's default).
    pub fn effective_lower(&self) -> u32 {
        if self.lower > 0 {
            self.lower
        } else {
            (u64::from(self.upper) * 3 / 4) as u32
        }
    }
}

#[derive(Clone, Debug)]
pub struct ServiceState {
    pub key: ServiceKey,
    pub sched: Sched,
    pub sched_flags: SchedFlags,
    pub persistence: Option<Persistence>,
    /// Maglev table size (used by `mh` only).
    pub mh_table_size: u32,
    pub forward: Forward,
    pub slot: u32,
    pub rs: Vec<RsState>,
    pub laddrs: Vec<Ipv4Addr>,
}

/// A real server's endpoint as IPv4.
fn v4_rs(addr: SocketAddr) -> Result<SocketAddrV4, ControlError> {
    match addr {
        SocketAddr::V4(s) => Ok(s),
        SocketAddr::V6(_) => Err(ControlError::Ipv6RealServer(addr)),
    }
}

/// A real server's endpoint, checked with its weight as any service needs them.
fn valid_rs(addr: SocketAddr, weight: u32) -> Result<SocketAddrV4, ControlError> {
    let addr = v4_rs(addr)?;
    if addr.port() == 0 {
        return Err(ControlError::RealServerPortZero(addr));
    }
    if weight > 65535 {
        return Err(ControlError::WeightTooHigh { rs: addr, weight });
    }
    Ok(addr)
}

/// A real server's limits: `upper` 0 is none; a `lower` above a non-zero `upper` is refused.
fn valid_limits(rs: SocketAddrV4, upper: u32, lower: u32) -> Result<(u32, u32), ControlError> {
    if upper > 0 && lower > upper {
        return Err(ControlError::LimitsInverted { rs, upper, lower });
    }
    Ok((upper, lower))
}

/// A service's scheduler settings, checked: flags the scheduler takes, a Maglev size that is a
/// prime in range, persistence in range.
fn valid_sched(spec: &ServiceSpec) -> Result<u32, ControlError> {
    let bad = |e: String| ControlError::Scheduler {
        service: spec.key,
        problem: e,
    };
    spec.sched_flags.check(spec.sched).map_err(bad)?;
    if let Some(p) = spec.persistence {
        Persistence::new(p.timeout, p.netmask).map_err(bad)?;
    }
    match spec.mh_table_size {
        Some(m) if spec.sched != Sched::Mh => Err(bad(format!(
            "a Maglev table size ({m}) is for scheduler mh, not {}",
            spec.sched
        ))),
        Some(m) => check_mh_table_size(m).map_err(bad),
        None => Ok(MH_TABLE_DEFAULT),
    }
}

impl ControlState {
    fn service_pos(&self, key: &ServiceKey) -> Result<usize, ControlError> {
        self.services
            .iter()
            .position(|s| s.key == *key)
            .ok_or(ControlError::NoService(*key))
    }

    pub fn service(&self, key: &ServiceKey) -> Result<&ServiceState, ControlError> {
        self.service_pos(key).map(|i| &self.services[i])
    }

    pub fn service_add(&mut self, spec: &ServiceSpec) -> Result<(), ControlError> {
        let key = spec.key;
        let vip = v4(key.vip, "service")?;
        if key.port == 0 {
            return Err(ControlError::ServicePortZero(key));
        }
        if self.services.iter().any(|s| s.key == key) {
            return Err(ControlError::ServiceExists(key));
        }
        if let Some(rs) = self.real_server_at(vip) {
            return Err(ControlError::VipIsRealServer {
                service: key,
                vip,
                rs,
            });
        }
        let mh_table_size = valid_sched(spec)?;
        let slot = self.slots.take()?;
        self.services.push(ServiceState {
            key,
            sched: spec.sched,
            sched_flags: spec.sched_flags,
            persistence: spec.persistence,
            mh_table_size,
            forward: spec.forward,
            slot,
            rs: Vec::new(),
            laddrs: Vec::new(),
        });
        Ok(())
    }

    /// Replaces a service's scheduler settings and default forwarding mode with `spec`'s.
    pub fn service_edit(&mut self, spec: &ServiceSpec) -> Result<(), ControlError> {
        let key = spec.key;
        let i = self.service_pos(&key)?;
        let mh_table_size = valid_sched(spec)?;
        let s = &self.services[i];
        // Real servers without a mode of their own take the new default.
        for r in s.rs.iter().filter(|r| r.forward.is_none()) {
            self.check_mode(&key, r.addr, spec.forward)?;
        }
        let s = &mut self.services[i];
        s.sched = spec.sched;
        s.sched_flags = spec.sched_flags;
        s.persistence = spec.persistence;
        s.mh_table_size = mh_table_size;
        s.forward = spec.forward;
        Ok(())
    }

    /// Removes a service; the caller cuts its connections, then calls [`Self::release`].
    pub fn service_del(&mut self, key: &ServiceKey) -> Result<Cut, ControlError> {
        let i = self.service_pos(key)?;
        Ok(Cut::Service(self.services[i].slot))
    }

    /// Stops scheduling to a service before its connections are cut.
    pub fn service_hide(&mut self, slot: u32) {
        if let Some(s) = self.services.iter_mut().find(|s| s.slot == slot) {
            for r in &mut s.rs {
                r.weight = 0;
            }
        }
    }

    pub fn rs_add(&mut self, key: &ServiceKey, spec: &RsSpec) -> Result<(), ControlError> {
        let (weight, forward) = (spec.weight, spec.forward);
        let addr = valid_rs(spec.addr, weight)?;
        let (upper, lower) = valid_limits(addr, spec.upper.unwrap_or(0), spec.lower.unwrap_or(0))?;
        let i = self.service_pos(key)?;
        if self.services[i].rs.iter().any(|r| r.addr == addr) {
            return Err(ControlError::RealServerExists {
                rs: addr,
                service: *key,
            });
        }
        if let Some(ours) = self.ours(*addr.ip()) {
            return Err(ControlError::RealServerIsOurs { rs: addr, ours });
        }
        self.check_mode(key, addr, forward.unwrap_or(self.services[i].forward))?;
        let slot = self.slots.take()?;
        self.services[i].rs.push(RsState {
            addr,
            weight,
            forward,
            slot,
            upper,
            lower,
        });
        Ok(())
    }

    /// Changes a real server's weight, and its mode and limits where `spec` gives them.
    pub fn rs_edit(&mut self, key: &ServiceKey, spec: &RsSpec) -> Result<(), ControlError> {
        let (weight, forward) = (spec.weight, spec.forward);
        let addr = valid_rs(spec.addr, weight)?;
        let (i, j) = self.rs_pos(key, addr)?;
        let s = &self.services[i];
        let old = &s.rs[j];
        let (upper, lower) = valid_limits(
            addr,
            spec.upper.unwrap_or(old.upper),
            spec.lower.unwrap_or(old.lower),
        )?;
        self.check_mode(key, addr, forward.or(old.forward).unwrap_or(s.forward))?;
        let rs = &mut self.services[i].rs[j];
        rs.weight = weight;
        if forward.is_some() {
            rs.forward = forward;
        }
        (rs.upper, rs.lower) = (upper, lower);
        Ok(())
    }

    /// Removes a real server from the schedule; the caller cuts its connections, then calls
    /// [`Self::release`].
    pub fn rs_del(&mut self, key: &ServiceKey, addr: SocketAddr) -> Result<Cut, ControlError> {
        let addr = v4_rs(addr)?;
        let (i, j) = self.rs_pos(key, addr)?;
        let rs = self.services[i].rs.remove(j);
        Ok(Cut::Rs(rs.slot))
    }

    /// Where real server `addr` of service `key` is: (service, real server) indices.
    fn rs_pos(&self, key: &ServiceKey, addr: SocketAddrV4) -> Result<(usize, usize), ControlError> {
        let i = self.service_pos(key)?;
        let j = self.services[i]
            .rs
            .iter()
            .position(|r| r.addr == addr)
            .ok_or(ControlError::NoRealServer {
                rs: addr,
                service: *key,
            })?;
        Ok((i, j))
    }

    /// Finishes a deletion once the workers let go of the connections: frees the counter
    /// slots (and, for a service, removes it) and returns the freed slots, which the caller
    /// zeroes before anything reuses them.
    pub fn release(&mut self, cut: Cut) -> Vec<u32> {
        let freed = match cut {
            Cut::None => Vec::new(),
            Cut::Rs(slot) => vec![slot],
            Cut::Service(slot) => match self.services.iter().position(|s| s.slot == slot) {
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

    pub fn laddr_add(&mut self, key: &ServiceKey, addr: IpAddr) -> Result<(), ControlError> {
        let addr = v4(addr, "local address")?;
        if !self.addrs.iter().any(|a| a.addr == addr) {
            return Err(ControlError::LocalAddressNotOurs(addr));
        }
        let i = self.service_pos(key)?;
        if self.services[i].laddrs.contains(&addr) {
            return Err(ControlError::LocalAddressExists {
                addr,
                service: *key,
            });
        }
        self.services[i].laddrs.push(addr);
        Ok(())
    }

    pub fn laddr_del(&mut self, key: &ServiceKey, addr: IpAddr) -> Result<(), ControlError> {
        let addr = v4(addr, "local address")?;
        let i = self.service_pos(key)?;
        let l = &mut self.services[i].laddrs;
        let j = l
            .iter()
            .position(|a| *a == addr)
            .ok_or(ControlError::NoLocalAddress {
                addr,
                service: *key,
            })?;
        l.remove(j);
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
    ) -> Result<(), ControlError> {
        if matches!(forward, Forward::Dr | Forward::Tun) && addr.port() != key.port {
            return Err(ControlError::PortMustBeService {
                rs: addr,
                forward,
                port: key.port,
            });
        }
        if forward == Forward::Dr {
            let rip = *addr.ip();
            match self.route_table().next_hop(rip) {
                Some((_, gw, _)) if gw == rip => {}
                Some((_, gw, _)) => return Err(ControlError::DrRoutedVia { rs: addr, gw }),
                None => return Err(ControlError::DrNotConnected(addr)),
            }
        }
        Ok(())
    }

    /// What `ip` is to the balancer, if it is its own: an address on a port, a service's VIP
    /// (a VIP need not be an address yet), a local address. Such an address can never be a
    /// real server: packets to it would come back to the balancer.
    pub(super) fn ours(&self, ip: Ipv4Addr) -> Option<OwnAddress> {
        if let Some(s) = self.services.iter().find(|s| s.key.vip == IpAddr::V4(ip)) {
            return Some(OwnAddress::Vip(s.key));
        }
        if let Some(s) = self.services.iter().find(|s| s.laddrs.contains(&ip)) {
            return Some(OwnAddress::LocalAddress(s.key));
        }
        let a = self.addrs.iter().find(|a| a.addr == ip)?;
        Some(OwnAddress::Address {
            addr: a.addr,
            prefix_len: a.prefix_len,
            port: self.port_name(a.port),
        })
    }

    /// The real server whose address is `ip`, which the balancer must not take as its own.
    pub(super) fn real_server_at(&self, ip: Ipv4Addr) -> Option<RealServerOf> {
        self.services.iter().find_map(|s| {
            let r = s.rs.iter().find(|r| *r.addr.ip() == ip)?;
            Some(RealServerOf {
                rs: r.addr,
                service: s.key,
            })
        })
    }
}
