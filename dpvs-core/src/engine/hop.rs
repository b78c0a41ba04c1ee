//! A worker's cache of resolved next hops: destination address → (port, destination MAC,
//! source MAC, and what tunnels and direct routing need to know of the path).
//!
//! Resolving a destination takes a longest-prefix route match, a neighbour lookup and the
//! port's MAC: over a hundred instructions, for an answer that changes only when a new
//! configuration or neighbour table is published. The cache is direct-mapped and keyed by
//! the destination address. It remembers the generations of the snapshot and neighbour table
//! it was filled from and empties itself when either changes, so an entry is never stale.
//!
//! Real servers are few, so the inbound direction always hits. Replies go to client
//! addresses, which may be many more than the entries; those that miss pay the full
//! resolution, as they would without a cache.

use std::net::Ipv4Addr;

use crate::packet::ether::{ETH_ALEN, MacAddr, set_macs};

/// Entries in a worker's cache (a power of two).
pub const HOP_CACHE_SIZE: usize = 4096;

/// Where a packet for one destination leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// The Ethernet addresses a frame to this hop starts with, as on the wire: the hop's MAC,
    /// then the port's. Addressing a frame is then one 12-byte copy.
    pub macs: [u8; 2 * ETH_ALEN],
    pub port: u16,
}

impl NextHop {
    pub fn new(port: u16, dst_mac: MacAddr, src_mac: MacAddr) -> NextHop {
        let mut macs = [0; 2 * ETH_ALEN];
        set_macs(&mut macs, dst_mac, src_mac);
        NextHop { macs, port }
    }

    /// Writes the hop's addresses over the Ethernet header at the start of `data` (a frame of
    /// at least that header).
    #[inline(always)]
    pub fn address(&self, data: &mut [u8]) {
        if let Some(h) = data.first_chunk_mut::<{ 2 * ETH_ALEN }>() {
            *h = self.macs;
        }
    }
}

/// What direct routing and tunnels need to know of the way to a destination, besides its
/// next hop. Kept apart from [`NextHop`] so that the NAT modes' lookup returns 14 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    /// The destination is on the port's link (its own MAC), not behind a gateway: what
    /// direct routing requires of a real server.
    pub on_link: bool,
    /// The port's MTU: the largest IP packet the hop takes.
    pub mtu: u16,
    /// Our address that packets we originate towards the destination come from (the route's
    /// source, else an address on the port; unspecified when the port has none).
    pub src_ip: Ipv4Addr,
}

#[derive(Clone, Copy)]
struct Entry {
    dst: u32,
    /// `false` for an empty entry (any address, 0.0.0.0 included, can be a key).
    valid: bool,
    hop: NextHop,
    path: Path,
}

const EMPTY: Entry = Entry {
    dst: 0,
    valid: false,
    hop: NextHop {
        macs: [0; 2 * ETH_ALEN],
        port: 0,
    },
    path: Path {
        on_link: false,
        mtu: 0,
        src_ip: Ipv4Addr::UNSPECIFIED,
    },
};

/// The cache itself; one per worker, never shared.
pub struct HopCache {
    entries: Box<[Entry]>,
    /// (snapshot generation, neighbour table generation) the entries were resolved under.
    generations: (u64, u64),
}

impl Default for HopCache {
    fn default() -> Self {
        HopCache {
            entries: vec![EMPTY; HOP_CACHE_SIZE].into_boxed_slice(),
            generations: (u64::MAX, u64::MAX),
        }
    }
}

impl HopCache {
    /// Empties the cache when the configuration or the neighbour table it was filled from is no
    /// longer the current one. Call before [`Self::get`] with every packet's context; it is
    /// two compares when nothing changed.
    #[inline]
    pub fn sync(&mut self, generations: (u64, u64)) {
        if self.generations != generations {
            self.entries.fill(EMPTY);
            self.generations = generations;
        }
    }

    #[inline]
    fn slot(dst: Ipv4Addr) -> usize {
        // Fibonacci hashing: the top bits of a multiply spread neighbouring addresses.
        let h = dst.to_bits().wrapping_mul(0x9E37_79B1);
        (h >> (32 - HOP_CACHE_SIZE.trailing_zeros())) as usize
    }

    /// The cached next hop of `dst`. Always inlined: on the fast path the call would cost
    /// as much as the lookup.
    #[inline(always)]
    pub fn get(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let e = &self.entries[Self::slot(dst)];
        (e.valid && e.dst == dst.to_bits()).then_some(e.hop)
    }

    /// The cached next hop of `dst` and what else is known of the way there.
    #[inline]
    pub fn get_path(&self, dst: Ipv4Addr) -> Option<(NextHop, Path)> {
        let e = &self.entries[Self::slot(dst)];
        (e.valid && e.dst == dst.to_bits()).then_some((e.hop, e.path))
    }

    /// Remembers the next hop of `dst` and the way there, replacing whatever shared its
    /// entry.
    pub fn put(&mut self, dst: Ipv4Addr, hop: NextHop, path: Path) {
        self.entries[Self::slot(dst)] = Entry {
            dst: dst.to_bits(),
            valid: true,
            hop,
            path,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(port: u16) -> NextHop {
        NextHop::new(
            port,
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 2]),
        )
    }

    fn path(mtu: u16) -> Path {
        Path {
            on_link: true,
            mtu,
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
        }
    }

    #[test]
    fn hits_only_the_address_it_holds_and_empties_on_a_new_generation() {
        let mut c = HopCache::default();
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(0, 0, 0, 0));
        c.sync((1, 1));
        assert_eq!(c.get(a), None);
        assert_eq!(c.get(b), None, "an empty entry is not 0.0.0.0's");
        c.put(a, hop(3), path(3));
        c.put(b, hop(4), path(4));
        assert_eq!((c.get(a), c.get(b)), (Some(hop(3)), Some(hop(4))));
        assert_eq!(c.get_path(b), Some((hop(4), path(4))));
        c.sync((1, 1));
        assert_eq!(c.get(a), Some(hop(3)));
        c.sync((1, 2));
        assert_eq!((c.get(a), c.get(b)), (None, None));
        c.put(a, hop(5), path(5));
        c.sync((2, 2));
        assert_eq!(c.get(a), None);
    }

    #[test]
    fn colliding_addresses_replace_each_other() {
        let mut c = HopCache::default();
        c.sync((0, 0));
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = (1..u32::MAX)
            .map(|i| Ipv4Addr::from_bits(a.to_bits() ^ i))
            .find(|b| HopCache::slot(*b) == HopCache::slot(a))
            .unwrap();
        c.put(a, hop(1), path(1));
        c.put(b, hop(2), path(2));
        assert_eq!((c.get(a), c.get(b)), (None, Some(hop(2))));
    }
}
