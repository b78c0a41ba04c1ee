//! Neighbour (ARP) table and the per-worker queue of packets waiting for a resolution.
//!
//! The table is immutable once built: the control thread builds a new one on every change and
//! publishes it (arc-swap), so a worker's per-packet `get` is one hash probe with no lock. A
//! worker whose next hop is unknown parks the packet in its own [`PendingQueue`], asks for an
//! ARP request, and releases the packet when a later table resolves the hop.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use hashbrown::HashMap;

/// Interval between ARP requests for one unresolved next hop.
pub const RETRY_MS: u64 = 1000;
/// ARP requests sent for one next hop (the first included) before its packets are dropped.
pub const MAX_TRIES: u8 = 3;

/// What a next hop resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NeighEntry {
    pub mac: [u8; 6],
    /// Port the neighbour was learnt (or configured) on.
    pub port: u16,
    /// Configured by the operator: never aged out or overwritten by learning.
    pub is_static: bool,
}

/// IPv4 → MAC map. `hashbrown`'s default hasher (foldhash) is fast on 4-byte keys and needs no
/// per-lookup allocation.
#[derive(Clone, Debug, Default)]
pub struct NeighTable {
    map: HashMap<Ipv4Addr, NeighEntry>,
    generation: u64,
}

impl NeighTable {
    pub fn new() -> NeighTable {
        NeighTable::default()
    }

    /// A number the control plane gives each table it publishes, different from the previous
    /// one's: workers compare it to notice a new table (their next-hop caches depend on it).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn set_generation(&mut self, generation: u64) {
        self.generation = generation;
    }

    /// The entry for `ip`. Allocation-free: the per-packet call.
    #[inline]
    pub fn get(&self, ip: Ipv4Addr) -> Option<&NeighEntry> {
        self.map.get(&ip)
    }

    /// Adds or replaces the entry for `ip`, returning the old one. Control side.
    pub fn insert(&mut self, ip: Ipv4Addr, entry: NeighEntry) -> Option<NeighEntry> {
        self.map.insert(ip, entry)
    }

    /// Removes the entry for `ip`. Control side.
    pub fn remove(&mut self, ip: Ipv4Addr) -> Option<NeighEntry> {
        self.map.remove(&ip)
    }

    /// Every entry, in unspecified order.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Addr, &NeighEntry)> {
        self.map.iter().map(|(&ip, e)| (ip, e))
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Packets parked for one unresolved next hop.
#[derive(Debug)]
struct Hop<F> {
    nexthop: Ipv4Addr,
    port: u16,
    /// ARP requests sent so far (the first one when the hop was created).
    tries: u8,
    last_request_ms: u64,
    /// Capacity `per_hop`, reserved at construction; never grows.
    pkts: VecDeque<F>,
}

/// Per-worker packets waiting for ARP, bounded in both next hops and packets per hop.
///
/// All storage is reserved by [`PendingQueue::new`]: hop slots `[0, active)` are in use, the
/// rest keep their (empty) reserved queues for reuse. Removing a hop swaps it with the last
/// active slot, which moves only the queue's pointer. Every packet pushed comes back out
/// exactly once: refused by `push`, released by `take_resolved`, expired by `poll`, or handed
/// back by `drain`.
#[derive(Debug)]
pub struct PendingQueue<F> {
    slots: Vec<Hop<F>>,
    active: usize,
    per_hop: usize,
    packets: usize,
}

impl<F> PendingQueue<F> {
    /// A queue of at most `per_hop` packets for each of at most `max_hops` next hops (note the
    /// order: packets per hop first). Allocates everything now (`max_hops × per_hop` slots).
    pub fn new(per_hop: usize, max_hops: usize) -> PendingQueue<F> {
        let slots = (0..max_hops)
            .map(|_| Hop {
                nexthop: Ipv4Addr::UNSPECIFIED,
                port: 0,
                tries: 0,
                last_request_ms: 0,
                pkts: VecDeque::with_capacity(per_hop),
            })
            .collect();
        PendingQueue {
            slots,
            active: 0,
            per_hop,
            packets: 0,
        }
    }

    /// Parks `pkt` until `nexthop` on `port` resolves.
    ///
    /// `Ok(true)`: the hop is new, send an ARP request now. `Ok(false)`: a request is already
    /// outstanding. `Err(pkt)`: refused because the hop's queue or the hop slots are full; the
    /// caller drops it and counts `NeighPendingFull`. Allocation-free.
    pub fn push(&mut self, nexthop: Ipv4Addr, port: u16, pkt: F, now_ms: u64) -> Result<bool, F> {
        let per_hop = self.per_hop;
        if let Some(hop) = self
            .active_slots_mut()
            .iter_mut()
            .find(|h| h.nexthop == nexthop && h.port == port)
        {
            if hop.pkts.len() >= per_hop {
                return Err(pkt);
            }
            hop.pkts.push_back(pkt);
            self.packets += 1;
            return Ok(false);
        }
        if per_hop == 0 {
            return Err(pkt);
        }
        let Some(hop) = self.slots.get_mut(self.active) else {
            return Err(pkt);
        };
        hop.nexthop = nexthop;
        hop.port = port;
        hop.tries = 1;
        hop.last_request_ms = now_ms;
        hop.pkts.push_back(pkt);
        self.active += 1;
        self.packets += 1;
        Ok(true)
    }

    /// Releases, oldest first, every packet whose next hop `is_resolved` now reports resolved,
    /// as `out(port, nexthop, pkt)`. Allocation-free.
    pub fn take_resolved(
        &mut self,
        is_resolved: impl Fn(Ipv4Addr) -> bool,
        out: &mut impl FnMut(u16, Ipv4Addr, F),
    ) {
        let mut i = 0;
        while i < self.active {
            let Some(hop) = self.slots.get_mut(i) else {
                break;
            };
            if !is_resolved(hop.nexthop) {
                i += 1;
                continue;
            }
            let (port, ip) = (hop.port, hop.nexthop);
            self.packets -= hop.pkts.len();
            hop.pkts.drain(..).for_each(|p| out(port, ip, p));
            self.release_slot(i);
        }
    }

    /// Timer work, call it regularly: re-requests every [`RETRY_MS`] through
    /// `out_request(port, nexthop)` until [`MAX_TRIES`] requests went unanswered, then hands a
    /// hop's packets to `out_expired` (the caller counts `NeighUnresolved`). Allocation-free.
    pub fn poll(
        &mut self,
        now_ms: u64,
        out_request: &mut impl FnMut(u16, Ipv4Addr),
        out_expired: &mut impl FnMut(F),
    ) {
        let mut i = 0;
        while i < self.active {
            let Some(hop) = self.slots.get_mut(i) else {
                break;
            };
            if now_ms.saturating_sub(hop.last_request_ms) < RETRY_MS {
                i += 1;
            } else if hop.tries < MAX_TRIES {
                hop.tries += 1;
                hop.last_request_ms = now_ms;
                out_request(hop.port, hop.nexthop);
                i += 1;
            } else {
                self.packets -= hop.pkts.len();
                hop.pkts.drain(..).for_each(&mut *out_expired);
                self.release_slot(i);
            }
        }
    }

    /// Hands back every parked packet (shutdown, port reset) and forgets all hops.
    pub fn drain(&mut self, out: &mut impl FnMut(F)) {
        for hop in self.active_slots_mut() {
            hop.pkts.drain(..).for_each(&mut *out);
        }
        self.active = 0;
        self.packets = 0;
    }

    /// Packets parked now.
    pub fn len(&self) -> usize {
        self.packets
    }

    pub fn is_empty(&self) -> bool {
        self.packets == 0
    }

    /// Next hops waiting for resolution now.
    pub fn hops(&self) -> usize {
        self.active
    }

    fn active_slots_mut(&mut self) -> &mut [Hop<F>] {
        let active = self.active.min(self.slots.len());
        &mut self.slots[..active]
    }

    /// Frees the (already emptied) slot `i` by swapping in the last active one.
    fn release_slot(&mut self, i: usize) {
        if self.active == 0 {
            return;
        }
        self.active -= 1;
        if i < self.active {
            self.slots.swap(i, self.active);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;
    use std::rc::Rc;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    #[test]
    fn table_get_insert_remove() {
        let mut t = NeighTable::new();
        let e = NeighEntry {
            mac: [2, 0, 0, 0, 0, 1],
            port: 0,
            is_static: true,
        };
        assert_eq!(t.insert(ip(1), e), None);
        assert_eq!(t.get(ip(1)), Some(&e));
        assert_eq!(t.get(ip(2)), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![(ip(1), &e)]);
        assert_eq!(t.remove(ip(1)), Some(e));
        assert!(t.is_empty());
    }

    #[test]
    fn bounds_per_hop_and_hops() {
        let mut q = PendingQueue::new(2, 2);
        assert_eq!(q.push(ip(1), 0, 1, 0), Ok(true));
        assert_eq!(q.push(ip(1), 0, 2, 0), Ok(false));
        assert_eq!(q.push(ip(1), 0, 3, 0), Err(3), "hop full");
        assert_eq!(q.push(ip(2), 0, 4, 0), Ok(true));
        assert_eq!(q.push(ip(3), 0, 5, 0), Err(5), "no free hop slot");
        assert_eq!(
            q.push(ip(1), 1, 6, 0),
            Err(6),
            "same IP on another port is another hop"
        );
        assert_eq!((q.len(), q.hops()), (3, 2));
        let mut none = PendingQueue::new(0, 4);
        assert_eq!(none.push(ip(1), 0, 7, 0), Err(7));
    }

    #[test]
    fn release_is_fifo_per_hop_and_frees_the_slot() {
        let mut q = PendingQueue::new(8, 2);
        for (n, hop) in [(1, 1), (2, 2), (3, 1), (4, 2), (5, 1)] {
            q.push(ip(hop), 0, n, 0).unwrap();
        }
        let mut out = Vec::new();
        q.take_resolved(|a| a == ip(1), &mut |port, hop, p| out.push((port, hop, p)));
        assert_eq!(out, vec![(0, ip(1), 1), (0, ip(1), 3), (0, ip(1), 5)]);
        assert_eq!((q.len(), q.hops()), (2, 1));
        assert_eq!(q.push(ip(3), 0, 6, 0), Ok(true), "slot reused");
        out.clear();
        q.take_resolved(|_| true, &mut |_, _, p| out.push((0, ip(0), p)));
        let pkts: Vec<i32> = out.iter().map(|o| o.2).collect();
        assert!(pkts == vec![2, 4, 6] || pkts == vec![6, 2, 4], "{pkts:?}");
        assert!(q.is_empty());
    }

    #[test]
    fn retries_then_expiry() {
        let mut q = PendingQueue::new(4, 4);
        assert_eq!(q.push(ip(1), 3, 'a', 100), Ok(true));
        q.push(ip(1), 3, 'b', 500).unwrap();
        let mut reqs = Vec::new();
        let mut dead = Vec::new();
        for now in [600, 1099, 1100, 1500, 2099, 2100, 3000, 3099] {
            q.poll(
                now,
                &mut |port, hop| reqs.push((now, port, hop)),
                &mut |p| dead.push(p),
            );
        }
        assert_eq!(reqs, vec![(1100, 3, ip(1)), (2100, 3, ip(1))]);
        assert!(dead.is_empty());
        q.poll(3100, &mut |_, _| panic!("no fourth request"), &mut |p| {
            dead.push(p)
        });
        assert_eq!(dead, vec!['a', 'b']);
        assert!(q.is_empty() && q.hops() == 0);
        assert_eq!(
            q.push(ip(1), 3, 'c', 3200),
            Ok(true),
            "a fresh try after expiry"
        );
    }

    #[test]
    fn clock_going_backwards_does_not_panic() {
        let mut q = PendingQueue::new(1, 1);
        q.push(ip(1), 0, (), u64::MAX).unwrap();
        q.poll(0, &mut |_, _| {}, &mut |_| {});
        assert_eq!(q.len(), 1);
    }

    /// A packet that counts how many times it was dropped, to catch losses and duplicates.
    struct Tracked(Rc<Cell<u32>>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(u8, u64),
        Resolve(u8),
        Poll(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..6, 0u64..400).prop_map(|(h, dt)| Op::Push(h, dt)),
            1 => (0u8..6).prop_map(Op::Resolve),
            2 => (0u64..1500).prop_map(Op::Poll),
        ]
    }

    proptest! {
        /// Every pushed packet leaves exactly once (refused, released, expired or drained) and
        /// `len` always equals pushed − left.
        #[test]
        fn no_packet_lost_or_duplicated(ops in prop::collection::vec(op(), 0..200)) {
            let mut q = PendingQueue::new(4, 3);
            let mut drops = Vec::new();
            let (mut now, mut inside) = (0u64, 0usize);
            for op in ops {
                match op {
                    Op::Push(h, dt) => {
                        now += dt;
                        let c = Rc::new(Cell::new(0));
                        drops.push(c.clone());
                        match q.push(ip(h), 0, Tracked(c), now) {
                            Ok(_) => inside += 1,
                            Err(p) => drop(p),
                        }
                    }
                    Op::Resolve(h) => {
                        q.take_resolved(|a| a == ip(h), &mut |_, hop, p| {
                            assert_eq!(hop, ip(h));
                            inside -= 1;
                            drop(p);
                        });
                    }
                    Op::Poll(dt) => {
                        now += dt;
                        q.poll(now, &mut |_, _| {}, &mut |p| { inside -= 1; drop(p) });
                    }
                }
                prop_assert_eq!(q.len(), inside);
                prop_assert!(q.hops() <= 3);
                let left = drops.iter().filter(|c| c.get() == 1).count();
                prop_assert_eq!(left + inside, drops.len());
            }
            q.drain(&mut drop);
            prop_assert!(q.is_empty());
            prop_assert!(drops.iter().all(|c| c.get() == 1));
        }
    }
}
