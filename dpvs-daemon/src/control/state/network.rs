//! The balancer's side of the network: its addresses on the ports, its routes (configured, and
//! the connected routes its addresses imply), and its neighbours (static, or learnt from ARP).

use std::net::{IpAddr, Ipv4Addr};

use super::{ControlState, v4};
use crate::control::error::ControlError;
use dpvs_core::engine::route::{Route, RouteTable};
use dpvs_core::packet::ether::MacAddr;

/// An address of the balancer on one of its ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrState {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighState {
    pub mac: MacAddr,
    pub port: u16,
    /// Configured, as opposed to learnt; ARP never overrides it.
    pub is_static: bool,
}

impl ControlState {
    pub fn addr_add(
        &mut self,
        addr: IpAddr,
        prefix_len: u8,
        port: &str,
    ) -> Result<(), ControlError> {
        let addr = v4(addr, "address")?;
        if prefix_len > 32 {
            return Err(ControlError::PrefixTooLong { addr, prefix_len });
        }
        let port = self.port_id(port)?;
        if self.addrs.iter().any(|a| a.addr == addr) {
            return Err(ControlError::AddressExists(addr));
        }
        if let Some(rs) = self.real_server_at(addr) {
            return Err(ControlError::AddressIsRealServer { addr, rs });
        }
        if let Some(k) = self.kni_addrs.iter().find(|k| k.addr == addr) {
            return Err(ControlError::AddressIsKernels {
                addr,
                prefix_len: k.prefix_len,
                port: self.port_name(k.port),
            });
        }
        self.addrs.push(AddrState {
            addr,
            prefix_len,
            port,
        });
        Ok(())
    }

    pub fn addr_del(&mut self, addr: IpAddr) -> Result<(), ControlError> {
        let addr = v4(addr, "address")?;
        if let Some(s) = self.services.iter().find(|s| s.laddrs.contains(&addr)) {
            return Err(ControlError::AddressInUse {
                addr,
                service: s.key,
            });
        }
        let i = self
            .addrs
            .iter()
            .position(|a| a.addr == addr)
            .ok_or(ControlError::NoAddress(addr))?;
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
    ) -> Result<(), ControlError> {
        let route = Route {
            prefix: v4(prefix, "route")?,
            len,
            port: self.port_id(port)?,
            via: via.map(|v| v4(v, "gateway")).transpose()?,
            src: src.map(|v| v4(v, "source")).transpose()?,
        };
        // Validate through a scratch table: the same rules the snapshot's table enforces.
        self.configured_routes()
            .insert(route)
            .map_err(|source| ControlError::Route {
                prefix: route.prefix,
                len,
                source,
            })?;
        self.routes.push(route);
        Ok(())
    }

    pub fn route_del(&mut self, prefix: IpAddr, len: u8) -> Result<(), ControlError> {
        let p = v4(prefix, "route")?;
        let i = self
            .routes
            .iter()
            .position(|r| r.prefix == p && r.len == len)
            .ok_or(ControlError::NoRoute { prefix: p, len })?;
        self.routes.remove(i);
        Ok(())
    }

    pub fn neigh_add(&mut self, addr: IpAddr, mac: &str, port: &str) -> Result<(), ControlError> {
        let addr = v4(addr, "neighbour")?;
        let mac: MacAddr = mac
            .parse()
            .map_err(|_| ControlError::BadMac(mac.to_string()))?;
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

    pub fn neigh_del(&mut self, addr: IpAddr) -> Result<(), ControlError> {
        let addr = v4(addr, "neighbour")?;
        self.neighs
            .remove(&addr)
            .map(|_| ())
            .ok_or(ControlError::NoNeighbour(addr))
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

    /// The configured routes alone. They were each accepted against the others, so none is
    /// refused here.
    fn configured_routes(&self) -> RouteTable {
        let mut t = RouteTable::new();
        for r in &self.routes {
            let _ = t.insert(*r);
        }
        t
    }

    /// Routes as the engine uses them: the configured ones plus a connected route for each
    /// address's subnet (shorter than /32) that no configured route covers exactly.
    pub(in crate::control) fn route_table(&self) -> RouteTable {
        let mut t = self.configured_routes();
        // A /32 (a VIP, a local address) has no subnet to reach: a route for it would only add
        // a prefix length that every lookup probes.
        for a in self.addrs.iter().filter(|a| a.prefix_len < 32) {
            let connected = Route {
                prefix: mask(a.addr, a.prefix_len),
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
}

/// `addr` with its host bits cleared.
fn mask(addr: Ipv4Addr, len: u8) -> Ipv4Addr {
    let m = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    Ipv4Addr::from_bits(addr.to_bits() & m)
}
