//! IPv4 routing table with longest-prefix match.
//!
//! Layout: one hash map per prefix length present, kept longest first. A lookup masks the
//! destination once per length and probes that map, so its cost is bounded by the number of
//! *distinct lengths* (at most 33, typically 2–4 on a load balancer: host routes, a few
//! subnets, a default), not by the number of routes. A sorted-Vec scan would be as fast for a
//! handful of routes but degrades linearly with hundreds; a trie would be overkill here.

use std::net::Ipv4Addr;

use hashbrown::HashMap;

/// One route: packets to `prefix/len` leave on `port`, via `via` or directly (connected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub prefix: Ipv4Addr,
    pub len: u8,
    /// DPDK port the packets leave on.
    pub port: u16,
    /// Gateway; `None` for a connected route (the destination itself is the next hop).
    pub via: Option<Ipv4Addr>,
    /// Preferred source address for packets the balancer originates on this route.
    pub src: Option<Ipv4Addr>,
}

/// Why a route was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("prefix length {0} is longer than 32")]
    BadLength(u8),
    #[error("{0}/{1} has host bits set")]
    HostBitsSet(Ipv4Addr, u8),
    #[error("route {0}/{1} already exists")]
    Exists(Ipv4Addr, u8),
}

/// All routes of one prefix length, keyed by the masked prefix.
#[derive(Clone, Debug)]
struct Group {
    len: u8,
    mask: u32,
    routes: HashMap<u32, Route>,
    /// The group's route when it has exactly one (the usual connected subnet or default
    /// route): a compare instead of a hash probe per packet.
    only: Option<(u32, Route)>,
}

impl Group {
    fn refresh(&mut self) {
        self.only = match self.routes.len() {
            1 => self.routes.iter().next().map(|(k, r)| (*k, *r)),
            _ => None,
        };
    }

    #[inline]
    fn get(&self, d: u32) -> Option<&Route> {
        let key = d & self.mask;
        match &self.only {
            Some((k, r)) => (*k == key).then_some(r),
            None => self.routes.get(&key),
        }
    }
}

/// The routing table. Built on the control thread, read by workers through the snapshot.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    /// Sorted by `len`, longest first; no empty group.
    groups: Vec<Group>,
}

/// The netmask of a prefix length ≤ 32.
fn mask(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

impl RouteTable {
    pub fn new() -> RouteTable {
        RouteTable::default()
    }

    /// Adds a route. Refuses a length over 32, host bits set, or a prefix already present.
    /// Config-time: allocates.
    pub fn insert(&mut self, route: Route) -> Result<(), RouteError> {
        let (prefix, len) = (route.prefix, route.len);
        if len > 32 {
            return Err(RouteError::BadLength(len));
        }
        let m = mask(len);
        let key = u32::from(prefix);
        if key & !m != 0 {
            return Err(RouteError::HostBitsSet(prefix, len));
        }
        let at = match self.groups.binary_search_by(|g| len.cmp(&g.len)) {
            Ok(at) => at,
            Err(at) => {
                let group = Group {
                    len,
                    mask: m,
                    routes: HashMap::new(),
                    only: None,
                };
                self.groups.insert(at, group);
                at
            }
        };
        let group = &mut self.groups[at];
        if group.routes.contains_key(&key) {
            return Err(RouteError::Exists(prefix, len));
        }
        group.routes.insert(key, route);
        group.refresh();
        Ok(())
    }

    /// Removes the route for exactly `prefix/len`; `false` when there is none.
    pub fn remove(&mut self, prefix: Ipv4Addr, len: u8) -> bool {
        let Ok(at) = self.groups.binary_search_by(|g| len.cmp(&g.len)) else {
            return false;
        };
        let removed = self.groups[at].routes.remove(&u32::from(prefix)).is_some();
        self.groups[at].refresh();
        if self.groups[at].routes.is_empty() {
            self.groups.remove(at);
        }
        removed
    }

    /// The most specific route covering `dst`. Allocation-free.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<&Route> {
        let d = u32::from(dst);
        self.groups.iter().find_map(|g| g.get(d))
    }

    /// Where to send a packet for `dst`: `(port, next-hop IP, preferred source)`. The next hop
    /// is the gateway, or `dst` itself on a connected route. Allocation-free.
    #[inline]
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<(u16, Ipv4Addr, Option<Ipv4Addr>)> {
        let r = self.lookup(dst)?;
        Some((r.port, r.via.unwrap_or(dst), r.src))
    }

    /// Every route, longest prefixes first; order within one length is unspecified.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.groups.iter().flat_map(|g| g.routes.values())
    }

    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.routes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_group_back_to_one_route_still_matches_only_it() {
        let mut t = RouteTable::new();
        t.insert(route("10.0.0.0", 24, 1)).unwrap();
        t.insert(route("10.0.1.0", 24, 2)).unwrap();
        assert_eq!(t.lookup(ip("10.0.1.9")).map(|r| r.port), Some(2));
        assert!(t.remove(ip("10.0.0.0"), 24));
        assert_eq!(t.lookup(ip("10.0.1.9")).map(|r| r.port), Some(2));
        assert_eq!(t.lookup(ip("10.0.0.9")), None);
        assert!(t.remove(ip("10.0.1.0"), 24));
        assert!(t.is_empty());
    }

    fn route(prefix: &str, len: u8, port: u16) -> Route {
        Route {
            prefix: ip(prefix),
            len,
            port,
            via: None,
            src: None,
        }
    }

    fn table() -> RouteTable {
        let mut t = RouteTable::new();
        t.insert(Route {
            via: Some(ip("10.0.0.254")),
            ..route("0.0.0.0", 0, 9)
        })
        .unwrap();
        t.insert(route("10.0.0.0", 8, 1)).unwrap();
        t.insert(route("10.1.0.0", 16, 2)).unwrap();
        t.insert(Route {
            src: Some(ip("10.1.2.1")),
            ..route("10.1.2.0", 24, 3)
        })
        .unwrap();
        t.insert(route("10.1.2.3", 32, 4)).unwrap();
        t
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table();
        assert_eq!(t.lookup(ip("10.1.2.3")).unwrap().port, 4);
        assert_eq!(t.lookup(ip("10.1.2.4")).unwrap().port, 3);
        assert_eq!(t.lookup(ip("10.1.3.4")).unwrap().port, 2);
        assert_eq!(t.lookup(ip("10.2.0.1")).unwrap().port, 1);
        assert_eq!(t.lookup(ip("8.8.8.8")).unwrap().port, 9);
        assert_eq!(t.len(), 5);
        let lens: Vec<u8> = t.iter().map(|r| r.len).collect();
        assert_eq!(lens, vec![32, 24, 16, 8, 0]);
    }

    #[test]
    fn next_hop_is_gateway_or_destination() {
        let t = table();
        assert_eq!(t.next_hop(ip("8.8.8.8")), Some((9, ip("10.0.0.254"), None)));
        assert_eq!(
            t.next_hop(ip("10.1.2.9")),
            Some((3, ip("10.1.2.9"), Some(ip("10.1.2.1"))))
        );
    }

    #[test]
    fn no_default_no_route() {
        let mut t = table();
        assert!(t.remove(ip("0.0.0.0"), 0));
        assert_eq!(t.lookup(ip("8.8.8.8")), None);
        assert_eq!(RouteTable::new().next_hop(ip("1.2.3.4")), None);
    }

    #[test]
    fn remove_falls_back_to_shorter() {
        let mut t = table();
        assert!(t.remove(ip("10.1.2.3"), 32));
        assert_eq!(t.lookup(ip("10.1.2.3")).unwrap().port, 3);
        assert!(!t.remove(ip("10.1.2.3"), 32), "already gone");
        assert!(!t.remove(ip("10.1.2.0"), 25), "no such length");
        assert!(!t.remove(ip("10.9.0.0"), 16), "no such prefix");
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn bad_routes_are_refused() {
        let mut t = table();
        assert_eq!(
            t.insert(route("10.0.0.0", 33, 1)),
            Err(RouteError::BadLength(33))
        );
        assert_eq!(
            t.insert(route("10.1.2.3", 24, 1)),
            Err(RouteError::HostBitsSet(ip("10.1.2.3"), 24))
        );
        assert_eq!(
            t.insert(route("1.0.0.0", 0, 1)),
            Err(RouteError::HostBitsSet(ip("1.0.0.0"), 0))
        );
        assert_eq!(
            t.insert(route("10.1.0.0", 16, 7)),
            Err(RouteError::Exists(ip("10.1.0.0"), 16))
        );
        assert_eq!(
            t.lookup(ip("10.1.9.9")).unwrap().port,
            2,
            "duplicate did not replace"
        );
    }

    proptest! {
        /// Lookup agrees with a brute-force scan for the longest covering route.
        #[test]
        fn matches_linear_scan(
            routes in prop::collection::vec((any::<u32>(), 0u8..=32), 0..40),
            probes in prop::collection::vec(any::<u32>(), 1..40),
        ) {
            let mut t = RouteTable::new();
            let mut all = Vec::new();
            for (i, (p, len)) in routes.into_iter().enumerate() {
                let r = Route { prefix: Ipv4Addr::from(p & mask(len)), len, port: i as u16, via: None, src: None };
                if t.insert(r).is_ok() { all.push(r); }
            }
            for d in probes {
                let want = all.iter()
                    .filter(|r| d & mask(r.len) == u32::from(r.prefix))
                    .max_by_key(|r| r.len);
                prop_assert_eq!(t.lookup(Ipv4Addr::from(d)), want);
            }
        }
    }
}
