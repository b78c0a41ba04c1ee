//! The desired state of each twin (authoritative: the crate never learns it back from the
//! kernel) and the pure comparison of desired against what the kernel reports.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

/// Linux limits interface names to 15 bytes (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// An address with its prefix length, `10.0.0.5/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KniAddr {
    pub addr: IpAddr,
    pub len: u8,
}

impl KniAddr {
    /// `len` must fit the family (32 for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, String> {
        check_len(addr, len)?;
        Ok(KniAddr { addr, len })
    }

    /// IPv6 link-local addresses belong to the kernel (it adds one on link up): never foreign.
    pub(crate) fn is_kernel_owned(&self) -> bool {
        matches!(self.addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
    }
}

impl fmt::Display for KniAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A route through the twin: `prefix/len [via gateway]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KniRoute {
    pub prefix: IpAddr,
    pub len: u8,
    pub via: Option<IpAddr>,
}

impl KniRoute {
    /// Host bits of `prefix` are cleared, because the kernel reports the prefix that way and
    /// the guard compares what it asked for with what the kernel reports.
    pub fn new(prefix: IpAddr, len: u8, via: Option<IpAddr>) -> Result<Self, String> {
        check_len(prefix, len)?;
        if let Some(gw) = via
            && gw.is_ipv4() != prefix.is_ipv4()
        {
            return Err(format!(
                "gateway {gw} is not in the family of {prefix}/{len}"
            ));
        }
        Ok(KniRoute {
            prefix: mask(prefix, len),
            len,
            via,
        })
    }
}

impl fmt::Display for KniRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.prefix, self.len)?;
        if let Some(gw) = self.via {
            write!(f, " via {gw}")?;
        }
        Ok(())
    }
}

/// One kernel twin: the DPDK port it mirrors, its netdev name and what it must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwinSpec {
    /// The DPDK port, `dpdk0`.
    pub port: String,
    /// The kernel netdev, `dpdk0.kni`.
    pub ifname: String,
    pub addrs: Vec<KniAddr>,
    pub routes: Vec<KniRoute>,
}

impl TwinSpec {
    /// A twin named `<port>.kni` with nothing on it yet.
    pub fn new(port: &str) -> Self {
        TwinSpec {
            port: port.to_owned(),
            ifname: format!("{port}.kni"),
            addrs: Vec::new(),
            routes: Vec::new(),
        }
    }

    pub fn with_addr(mut self, addr: KniAddr) -> Self {
        self.addrs.push(addr);
        self
    }

    pub fn with_route(mut self, route: KniRoute) -> Self {
        self.routes.push(route);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.ifname.is_empty() || self.ifname.len() > IFNAME_MAX {
            return Err(format!(
                "interface name must be 1 to {IFNAME_MAX} bytes long"
            ));
        }
        Ok(())
    }
}

/// What a twin must carry. Sets, so that adding twice is idempotent.
#[derive(Clone, Debug, Default)]
pub(crate) struct Desired {
    pub addrs: BTreeSet<KniAddr>,
    pub routes: BTreeSet<KniRoute>,
}

impl Desired {
    pub(crate) fn from_spec(spec: &TwinSpec) -> Self {
        Desired {
            addrs: spec.addrs.iter().copied().collect(),
            routes: spec.routes.iter().copied().collect(),
        }
    }
}

/// What the kernel reports for a twin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Actual {
    pub link_up: bool,
    pub addrs: Vec<KniAddr>,
    pub routes: Vec<KniRoute>,
}

/// Desired minus actual, and what is there that nobody asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Diff {
    pub link_down: bool,
    pub missing_addrs: Vec<KniAddr>,
    pub missing_routes: Vec<KniRoute>,
    pub foreign_addrs: Vec<KniAddr>,
}

impl Diff {
    pub(crate) fn compute(desired: &Desired, actual: &Actual) -> Diff {
        let missing_addrs = desired
            .addrs
            .iter()
            .filter(|a| !actual.addrs.contains(a))
            .copied()
            .collect();
        let missing_routes = desired
            .routes
            .iter()
            .filter(|r| !actual.routes.contains(r))
            .copied()
            .collect();
        let foreign_addrs = actual
            .addrs
            .iter()
            .filter(|a| !a.is_kernel_owned() && !desired.addrs.contains(a))
            .copied()
            .collect();
        Diff {
            link_down: !actual.link_up,
            missing_addrs,
            missing_routes,
            foreign_addrs,
        }
    }

    /// Nothing to restore (foreign addresses are judged separately: they matter only when
    /// the bridge is exclusive).
    pub(crate) fn is_intact(&self) -> bool {
        !self.link_down && self.missing_addrs.is_empty() && self.missing_routes.is_empty()
    }

    /// Every desired address is gone at once: someone flushed the device. A flush (like a
    /// link that went down) gets the full fixed sequence rather than a targeted repair.
    pub(crate) fn looks_flushed(&self, desired: &Desired) -> bool {
        !desired.addrs.is_empty() && self.missing_addrs.len() == desired.addrs.len()
    }

    /// One line for the log: what changed.
    pub(crate) fn describe(&self, exclusive: bool) -> String {
        let mut parts = Vec::new();
        if self.link_down {
            parts.push("link down".to_owned());
        }
        for a in &self.missing_addrs {
            parts.push(format!("address {a} missing"));
        }
        for r in &self.missing_routes {
            parts.push(format!("route {r} missing"));
        }
        if exclusive {
            for a in &self.foreign_addrs {
                parts.push(format!("foreign address {a}"));
            }
        }
        parts.join(", ")
    }
}

fn check_len(addr: IpAddr, len: u8) -> Result<(), String> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("prefix length {len} is too long for {addr}"));
    }
    Ok(())
}

fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> KniAddr {
        let (ip, len) = s.split_once('/').unwrap();
        KniAddr::new(ip.parse().unwrap(), len.parse().unwrap()).unwrap()
    }

    fn desired(addrs: &[&str]) -> Desired {
        Desired {
            addrs: addrs.iter().map(|s| a(s)).collect(),
            routes: BTreeSet::new(),
        }
    }

    #[test]
    fn route_prefix_is_masked_and_family_checked() {
        let r = KniRoute::new("10.9.1.7".parse().unwrap(), 16, None).unwrap();
        assert_eq!(r.to_string(), "10.9.0.0/16");
        let d = KniRoute::new("10.9.0.0".parse().unwrap(), 0, None).unwrap();
        assert_eq!(d.to_string(), "0.0.0.0/0");
        assert!(
            KniRoute::new(
                "10.9.0.0".parse().unwrap(),
                16,
                Some("::1".parse().unwrap())
            )
            .is_err()
        );
        assert!(KniAddr::new("10.0.0.1".parse().unwrap(), 33).is_err());
    }

    #[test]
    fn diff_finds_missing_and_foreign_but_not_link_local() {
        let d = desired(&["10.0.0.5/24", "10.0.1.5/24"]);
        let actual = Actual {
            link_up: true,
            addrs: vec![a("10.0.0.5/24"), a("192.0.2.9/24"), a("fe80::1/64")],
            routes: vec![],
        };
        let diff = Diff::compute(&d, &actual);
        assert_eq!(diff.missing_addrs, vec![a("10.0.1.5/24")]);
        assert_eq!(diff.foreign_addrs, vec![a("192.0.2.9/24")]);
        assert!(!diff.is_intact());
        assert!(!diff.looks_flushed(&d));
        assert_eq!(diff.describe(false), "address 10.0.1.5/24 missing");
    }

    #[test]
    fn all_addresses_gone_is_a_flush() {
        let d = desired(&["10.0.0.5/24", "10.0.1.5/24"]);
        let diff = Diff::compute(
            &d,
            &Actual {
                link_up: true,
                ..Actual::default()
            },
        );
        assert!(diff.looks_flushed(&d));
        let down = Diff::compute(&d, &Actual::default());
        assert!(down.link_down);
        assert_eq!(down.describe(false).split(", ").next(), Some("link down"));
    }
}
