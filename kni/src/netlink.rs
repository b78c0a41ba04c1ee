//! rtnetlink operations on one twin, each bounded by a timeout and each failing with a one-line
//! error that names the device and the operation; and the decoding of multicast notifications.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use futures::TryStreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use crate::KniError;
use crate::desired::{Actual, KniAddr, KniRoute};

const ENODEV: i32 = 19;
const EADDRNOTAVAIL: i32 = 99;
const ESRCH: i32 = 3;

/// A netdev as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub index: u32,
    pub up: bool,
}

/// The request side of the netlink connection.
#[derive(Clone)]
pub(crate) struct Netlink {
    handle: Handle,
    timeout: Duration,
}

impl Netlink {
    pub(crate) fn new(handle: Handle, timeout: Duration) -> Self {
        Netlink { handle, timeout }
    }

    /// Bound a request: a kernel that never answers must not hang the bridge.
    async fn bounded<T>(
        &self,
        ifname: &str,
        op: impl FnOnce() -> String,
        fut: impl Future<Output = Result<T, rtnetlink::Error>>,
    ) -> Result<T, KniError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(KniError::netlink(ifname, op(), reason(&e))),
            Err(_) => Err(KniError::netlink(
                ifname,
                op(),
                format!("no answer within {:?}", self.timeout),
            )),
        }
    }

    /// The link called `ifname`, or `None` if there is no such device.
    pub(crate) async fn link_by_name(&self, ifname: &str) -> Result<Option<Link>, KniError> {
        let mut req = self
            .handle
            .link()
            .get()
            .match_name(ifname.to_owned())
            .execute();
        let res = tokio::time::timeout(self.timeout, req.try_next()).await;
        match res {
            Ok(Ok(msg)) => Ok(msg.map(|m| link_of(&m))),
            Ok(Err(e)) if errno(&e) == Some(ENODEV) => Ok(None),
            Ok(Err(e)) => Err(KniError::netlink(ifname, "get link", reason(&e))),
            Err(_) => Err(KniError::netlink(ifname, "get link", "no answer")),
        }
    }

    pub(crate) async fn set_link(
        &self,
        ifname: &str,
        index: u32,
        up: bool,
    ) -> Result<(), KniError> {
        let builder = LinkUnspec::new_with_index(index);
        let msg = if up { builder.up() } else { builder.down() }.build();
        let op = || format!("set link {}", if up { "up" } else { "down" });
        self.bounded(ifname, op, self.handle.link().set(msg).execute())
            .await
    }

    async fn addr_messages(
        &self,
        ifname: &str,
        index: u32,
    ) -> Result<Vec<AddressMessage>, KniError> {
        let req = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        self.bounded(ifname, || "list addresses".into(), req.try_collect())
            .await
    }

    /// Delete every address of the device (the "flush" of the fixed sequence).
    pub(crate) async fn flush_addrs(&self, ifname: &str, index: u32) -> Result<(), KniError> {
        for msg in self.addr_messages(ifname, index).await? {
            let what = addr_of(&msg).map_or_else(|| "?".to_owned(), |a| a.to_string());
            let del = self.handle.address().del(msg).execute();
            // Deleting a primary IPv4 address also deletes its secondaries: their turn then
            // fails with EADDRNOTAVAIL, which is what we wanted anyway.
            match self.bounded(ifname, || format!("flush {what}"), del).await {
                Err(KniError::Netlink { reason, .. }) if is_gone(&reason) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Add (or refresh) an address. NLM_F_REPLACE makes this idempotent.
    pub(crate) async fn add_addr(
        &self,
        ifname: &str,
        index: u32,
        a: KniAddr,
    ) -> Result<(), KniError> {
        let req = self.handle.address().add(index, a.addr, a.len).replace();
        self.bounded(ifname, || format!("add {a}"), req.execute())
            .await
    }

    /// Delete an address; one that is already gone is not an error.
    pub(crate) async fn del_addr(
        &self,
        ifname: &str,
        index: u32,
        a: KniAddr,
    ) -> Result<(), KniError> {
        for msg in self.addr_messages(ifname, index).await? {
            if addr_of(&msg) == Some(a) {
                let del = self.handle.address().del(msg).execute();
                match self.bounded(ifname, || format!("del {a}"), del).await {
                    Err(KniError::Netlink { reason, .. }) if is_gone(&reason) => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }

    async fn route_messages(
        &self,
        ifname: &str,
        index: u32,
    ) -> Result<Vec<RouteMessage>, KniError> {
        let mut all = Vec::new();
        for family in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let req = self.handle.route().get(family).execute();
            let msgs: Vec<RouteMessage> = self
                .bounded(ifname, || "list routes".into(), req.try_collect())
                .await?;
            all.extend(msgs.into_iter().filter(|m| is_ours_to_report(m, index)));
        }
        Ok(all)
    }

    /// Add (or replace) a route through the device.
    pub(crate) async fn add_route(
        &self,
        ifname: &str,
        index: u32,
        r: KniRoute,
    ) -> Result<(), KniError> {
        let op = || format!("add route {r}");
        let msg = route_message(index, r).map_err(|e| KniError::invalid(ifname, op(), e))?;
        let req = self.handle.route().add(msg).replace();
        self.bounded(ifname, op, req.execute()).await
    }

    /// Delete a route through the device; one that is already gone is not an error.
    pub(crate) async fn del_route(
        &self,
        ifname: &str,
        index: u32,
        r: KniRoute,
    ) -> Result<(), KniError> {
        for msg in self.route_messages(ifname, index).await? {
            if route_of(&msg) == Some(r) {
                let del = self.handle.route().del(msg).execute();
                match self.bounded(ifname, || format!("del route {r}"), del).await {
                    Err(KniError::Netlink { reason, .. }) if is_gone(&reason) => {}
                    other => other?,
                }
            }
        }
        Ok(())
    }

    /// What the kernel has on the device now.
    pub(crate) async fn actual(&self, ifname: &str, link: &Link) -> Result<Actual, KniError> {
        let addrs = self
            .addr_messages(ifname, link.index)
            .await?
            .iter()
            .filter_map(addr_of)
            .collect();
        let routes = self
            .route_messages(ifname, link.index)
            .await?
            .iter()
            .filter_map(route_of)
            .collect();
        Ok(Actual {
            link_up: link.up,
            addrs,
            routes,
        })
    }
}

fn link_of(m: &LinkMessage) -> Link {
    Link {
        index: m.header.index,
        up: m.header.flags.contains(LinkFlags::Up),
    }
}

fn link_name(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// The address of an RTM_NEWADDR/DELADDR: IFA_LOCAL when present (IPv4 point-to-point puts the
/// peer in IFA_ADDRESS), IFA_ADDRESS otherwise.
pub(crate) fn addr_of(m: &AddressMessage) -> Option<KniAddr> {
    let local = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    let addr = local.or(address)?;
    Some(KniAddr {
        addr,
        len: m.header.prefix_len,
    })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn route_oif(m: &RouteMessage) -> Option<u32> {
    m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

fn route_table(m: &RouteMessage) -> u32 {
    m.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(m.header.table))
}

/// Routes the bridge reports and compares: main table, through this device, not the kernel's
/// own prefix routes.
fn is_ours_to_report(m: &RouteMessage, index: u32) -> bool {
    route_oif(m) == Some(index)
        && route_table(m) == u32::from(RouteHeader::RT_TABLE_MAIN)
        && m.header.protocol != RouteProtocol::Kernel
}

pub(crate) fn route_of(m: &RouteMessage) -> Option<KniRoute> {
    let mut prefix = None;
    let mut via = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => prefix = route_ip(d),
            RouteAttribute::Gateway(g) => via = route_ip(g),
            _ => {}
        }
    }
    // A default route has no RTA_DST.
    let prefix = prefix.or(match m.header.address_family {
        rtnetlink::packet_route::AddressFamily::Inet => Some(IpAddr::V4(0.into())),
        rtnetlink::packet_route::AddressFamily::Inet6 => Some(IpAddr::V6(0.into())),
        _ => None,
    })?;
    Some(KniRoute {
        prefix,
        len: m.header.destination_prefix_length,
        via,
    })
}

fn route_message(index: u32, r: KniRoute) -> Result<RouteMessage, String> {
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.prefix, r.len)
        .map_err(|e| e.to_string())?
        .output_interface(index);
    match r.via {
        Some(gw) => b = b.gateway(gw).map_err(|e| e.to_string())?,
        // What `ip route add PREFIX dev X` does: a directly connected route has link scope.
        None => b = b.scope(RouteScope::Link),
    }
    Ok(b.build())
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

/// The kernel's words for the error, without Rust's "(os error N)" suffix.
fn reason(e: &rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(m) => {
            let text = m.to_io().to_string();
            match text.find(" (os error") {
                Some(cut) => text[..cut].to_owned(),
                None => text,
            }
        }
        other => other.to_string(),
    }
}

fn is_gone(reason: &str) -> bool {
    let gone = [EADDRNOTAVAIL, ESRCH, ENODEV].map(|n| {
        let t = std::io::Error::from_raw_os_error(n).to_string();
        t[..t.find(" (os error").unwrap_or(t.len())].to_owned()
    });
    gone.iter().any(|g| g == reason)
}

/// A multicast notification, reduced to what the guard acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Link {
        index: u32,
        name: Option<String>,
        up: bool,
        deleted: bool,
    },
    Addr {
        index: u32,
        addr: Option<KniAddr>,
        deleted: bool,
    },
    Route {
        index: u32,
        route: Option<KniRoute>,
        deleted: bool,
    },
}

impl Event {
    pub(crate) fn index(&self) -> u32 {
        match self {
            Event::Link { index, .. } | Event::Addr { index, .. } | Event::Route { index, .. } => {
                *index
            }
        }
    }

    /// For the log: `RTM_DELADDR 10.0.0.5/24`.
    pub(crate) fn describe(&self) -> String {
        let verb = |deleted: bool, new: &str, del: &str| if deleted { del } else { new }.to_owned();
        match self {
            Event::Link { up, deleted, .. } => format!(
                "{} ({})",
                verb(*deleted, "RTM_NEWLINK", "RTM_DELLINK"),
                if *up { "up" } else { "down" }
            ),
            Event::Addr { addr, deleted, .. } => format!(
                "{} {}",
                verb(*deleted, "RTM_NEWADDR", "RTM_DELADDR"),
                addr.map_or_else(|| "?".to_owned(), |a| a.to_string())
            ),
            Event::Route { route, deleted, .. } => format!(
                "{} {}",
                verb(*deleted, "RTM_NEWROUTE", "RTM_DELROUTE"),
                route.map_or_else(|| "?".to_owned(), |r| r.to_string())
            ),
        }
    }
}

/// Decode a notification: the event and the netlink port id of whoever caused it (0 for the
/// kernel itself).
pub(crate) fn decode(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<(Event, u32)> {
    let NetlinkPayload::InnerMessage(inner) = &msg.payload else {
        return None;
    };
    let event = match inner {
        RouteNetlinkMessage::NewLink(m) | RouteNetlinkMessage::DelLink(m) => Event::Link {
            index: m.header.index,
            name: link_name(m),
            up: m.header.flags.contains(LinkFlags::Up),
            deleted: matches!(inner, RouteNetlinkMessage::DelLink(_)),
        },
        RouteNetlinkMessage::NewAddress(m) | RouteNetlinkMessage::DelAddress(m) => Event::Addr {
            index: m.header.index,
            addr: addr_of(m),
            deleted: matches!(inner, RouteNetlinkMessage::DelAddress(_)),
        },
        RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m) => Event::Route {
            index: route_oif(m)?,
            route: route_of(m),
            deleted: matches!(inner, RouteNetlinkMessage::DelRoute(_)),
        },
        _ => return None,
    };
    Some((event, msg.header.port_number))
}

/// Who sent a change, for the log. A netlink port id is the sender's PID for the first
/// socket a process opens (iproute2, NetworkManager), so /proc usually names it.
pub(crate) fn who(port: u32) -> String {
    if port == 0 {
        return "the kernel".to_owned();
    }
    match std::fs::read_to_string(format!("/proc/{port}/comm")) {
        Ok(comm) => format!("pid {port} ({})", comm.trim()),
        Err(_) => format!("netlink port {port}"),
    }
}

impl Netlink {
    /// Deletes the link called `ifname`; `false` when there is none.
    pub(crate) async fn del_link_by_name(&self, ifname: &str) -> Result<bool, KniError> {
        let Some(link) = self.link_by_name(ifname).await? else {
            return Ok(false);
        };
        let req = self.handle.link().del(link.index).execute();
        self.bounded(ifname, || "delete link".to_string(), req)
            .await?;
        Ok(true)
    }
}
