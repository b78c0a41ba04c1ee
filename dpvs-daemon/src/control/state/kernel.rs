//! The kernel side of the kernel bridge: the addresses and routes the daemon keeps on the
//! ports' kernel twins. Kept here (the bridge guards them in the kernel) so that an address is
//! either the kernel's or the balancer's, never both: both would answer ARP for it.

use std::net::{IpAddr, Ipv4Addr};

use super::{AddrState, ControlState, v4};
use crate::control::error::ControlError;

/// A route through a port's kernel twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KniRouteState {
    pub prefix: Ipv4Addr,
    pub len: u8,
    pub port: u16,
    pub via: Option<Ipv4Addr>,
}

impl std::fmt::Display for KniRouteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.prefix, self.len)?;
        match self.via {
            Some(gw) => write!(f, " via {gw}"),
            None => Ok(()),
        }
    }
}

impl ControlState {
    /// The id of `port`, which must have a kernel twin.
    fn twin_port(&self, port: &str) -> Result<u16, ControlError> {
        let id = self.port_id(port)?;
        if self.ports.iter().any(|p| p.id == id && p.kni) {
            Ok(id)
        } else {
            Err(ControlError::NoTwin(port.to_string()))
        }
    }

    pub fn kni_addr_add(
        &mut self,
        port: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), ControlError> {
        let addr = v4(addr, "kernel-side address")?;
        if prefix_len > 32 {
            return Err(ControlError::PrefixTooLong { addr, prefix_len });
        }
        let port_id = self.twin_port(port)?;
        if let Some(ours) = self.ours(addr) {
            return Err(ControlError::KernelAddressIsOurs {
                addr,
                prefix_len,
                ours,
            });
        }
        if let Some(k) = self.kni_addrs.iter().find(|k| k.addr == addr) {
            return Err(ControlError::KernelAddressExists {
                addr,
                prefix_len: k.prefix_len,
                port: self.port_name(k.port),
            });
        }
        self.kni_addrs.push(AddrState {
            addr,
            prefix_len,
            port: port_id,
        });
        Ok(())
    }

    pub fn kni_addr_del(
        &mut self,
        port: &str,
        addr: IpAddr,
        prefix_len: u8,
    ) -> Result<(), ControlError> {
        let addr = v4(addr, "kernel-side address")?;
        let port_id = self.twin_port(port)?;
        let want = AddrState {
            addr,
            prefix_len,
            port: port_id,
        };
        let i = self
            .kni_addrs
            .iter()
            .position(|k| *k == want)
            .ok_or_else(|| ControlError::NoKernelAddress {
                addr,
                prefix_len,
                port: port.to_string(),
            })?;
        self.kni_addrs.remove(i);
        Ok(())
    }

    pub fn kni_route_add(
        &mut self,
        port: &str,
        prefix: IpAddr,
        len: u8,
        via: Option<IpAddr>,
    ) -> Result<(), ControlError> {
        let route = self.kni_route(port, prefix, len, via)?;
        if self
            .kni_routes
            .iter()
            .any(|r| (r.prefix, r.len) == (route.prefix, route.len))
        {
            return Err(ControlError::KernelRouteExists {
                route: route.to_string(),
                port: port.to_string(),
            });
        }
        self.kni_routes.push(route);
        Ok(())
    }

    pub fn kni_route_del(
        &mut self,
        port: &str,
        prefix: IpAddr,
        len: u8,
        via: Option<IpAddr>,
    ) -> Result<(), ControlError> {
        let route = self.kni_route(port, prefix, len, via)?;
        let i = self
            .kni_routes
            .iter()
            .position(|r| *r == route)
            .ok_or_else(|| ControlError::NoKernelRoute {
                route: route.to_string(),
                port: port.to_string(),
            })?;
        self.kni_routes.remove(i);
        Ok(())
    }

    fn kni_route(
        &self,
        port: &str,
        prefix: IpAddr,
        len: u8,
        via: Option<IpAddr>,
    ) -> Result<KniRouteState, ControlError> {
        let prefix = v4(prefix, "kernel-side route")?;
        if len > 32 {
            return Err(ControlError::PrefixTooLong {
                addr: prefix,
                prefix_len: len,
            });
        }
        Ok(KniRouteState {
            prefix,
            len,
            port: self.twin_port(port)?,
            via: via.map(|g| v4(g, "gateway")).transpose()?,
        })
    }
}
