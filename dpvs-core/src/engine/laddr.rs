//! The per-worker local-port pool of one FullNAT local address.
//!
//! Worker `w` of `n` only hands out ports `p` with `p % n == w`, so the reply to
//! `(laddr, p)` names its owner by its destination port alone ([`port_owner`]) and each worker
//! manages its slice without sharing anything.

use std::ops::RangeInclusive;

/// Default local-port range: everything above the well-known ports.
pub const DEFAULT_RANGE: RangeInclusive<u16> = 1024..=65535;

/// Number of `u64` words in a bitmap covering every `u16` port.
const BITMAP_WORDS: usize = (u16::MAX as usize + 1) / 64;

/// The worker that owns local port `port` when there are `workers` workers.
///
/// `workers == 0` is treated as one worker, so this never divides by zero.
#[inline]
pub fn port_owner(port: u16, workers: u16) -> u16 {
    port % workers.max(1)
}

/// The free local ports of one worker for one local address.
///
/// Free ports wait in a FIFO ring: a port freed now is handed out again only after every other
/// free port, which gives the real server's TIME_WAIT for `(laddr, port)` the longest time to
/// expire before the tuple is reused. A bitmap of free ports makes `free` reject foreign and
/// double-freed ports in O(1).
#[derive(Clone, Debug)]
pub struct PortPool {
    worker: u16,
    workers: u16,
    range: RangeInclusive<u16>,
    /// Ring storage, one slot per owned port, so it can never overflow.
    ring: Box<[u16]>,
    /// Index of the oldest free port.
    head: usize,
    /// Number of free ports in the ring.
    len: usize,
    /// Bit `p` set ⇔ port `p` is owned and currently free.
    free_bits: Box<[u64]>,
}

impl PortPool {
    /// The pool of worker `worker` of `workers` over `range`, with every owned port free, in
    /// ascending order from the `start`th (modulo the ports owned), wrapping around. A
    /// `worker ≥ workers` owns nothing; `workers == 0` counts as one. Config-time: allocates.
    ///
    /// `start` is why a restart does not collide with the real servers' TIME_WAIT: a pool
    /// that began at the lowest port on every run would hand out the very `(laddr, lport)`
    /// pairs the previous run used last, which the real servers still hold for a minute. The
    /// daemon draws it at random; tests pass 0.
    pub fn new(worker: u16, workers: u16, range: RangeInclusive<u16>, start: usize) -> PortPool {
        let workers = workers.max(1);
        let ring: Box<[u16]> = if worker < workers {
            range
                .clone()
                .filter(|&p| port_owner(p, workers) == worker)
                .collect()
        } else {
            Box::new([])
        };
        let mut free_bits = vec![0u64; BITMAP_WORDS].into_boxed_slice();
        for &p in ring.iter() {
            set_bit(&mut free_bits, p, true);
        }
        PortPool {
            worker,
            workers,
            range,
            len: ring.len(),
            head: start.checked_rem(ring.len()).unwrap_or(0),
            ring,
            free_bits,
        }
    }

    /// Takes the free port that has been free the longest; `None` when exhausted.
    /// Allocation-free.
    #[inline]
    pub fn alloc(&mut self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let port = *self.ring.get(self.head)?;
        self.head = self.wrap(self.head + 1);
        self.len -= 1;
        set_bit(&mut self.free_bits, port, false);
        Some(port)
    }

    /// Returns `port` to the pool. `false`, and nothing changes, when this pool does not own
    /// the port or it is already free. Allocation-free.
    #[inline]
    pub fn free(&mut self, port: u16) -> bool {
        if !self.owns(port) || get_bit(&self.free_bits, port) || self.len >= self.ring.len() {
            return false;
        }
        let tail = self.wrap(self.head + self.len);
        let Some(slot) = self.ring.get_mut(tail) else {
            return false;
        };
        *slot = port;
        self.len += 1;
        set_bit(&mut self.free_bits, port, true);
        true
    }

    /// True when `port` belongs to this pool (free or allocated).
    #[inline]
    pub fn owns(&self, port: u16) -> bool {
        self.worker < self.workers
            && self.range.contains(&port)
            && port_owner(port, self.workers) == self.worker
    }

    /// True when `port` is owned and currently free.
    pub fn is_free(&self, port: u16) -> bool {
        get_bit(&self.free_bits, port)
    }

    /// Number of ports that can be allocated now.
    pub fn available(&self) -> usize {
        self.len
    }

    /// Number of ports this pool owns.
    pub fn capacity(&self) -> usize {
        self.ring.len()
    }

    /// Ring index arithmetic without `%` by zero: `i` is at most twice the capacity.
    #[inline]
    fn wrap(&self, i: usize) -> usize {
        let cap = self.ring.len();
        if i >= cap { i - cap } else { i }
    }
}

#[inline]
fn get_bit(bits: &[u64], port: u16) -> bool {
    let p = usize::from(port);
    bits.get(p / 64).is_some_and(|w| w & (1 << (p % 64)) != 0)
}

#[inline]
fn set_bit(bits: &mut [u64], port: u16, on: bool) {
    let p = usize::from(port);
    if let Some(w) = bits.get_mut(p / 64) {
        if on {
            *w |= 1 << (p % 64);
        } else {
            *w &= !(1 << (p % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, VecDeque};

    fn drain(pool: &mut PortPool) -> Vec<u16> {
        std::iter::from_fn(|| pool.alloc()).collect()
    }

    #[test]
    fn pools_partition_the_range() {
        for workers in [1u16, 2, 3, 7] {
            let mut seen = BTreeSet::new();
            for w in 0..workers {
                let mut pool = PortPool::new(w, workers, DEFAULT_RANGE, 0);
                let ports = drain(&mut pool);
                assert_eq!(ports.len(), pool.capacity());
                for p in ports {
                    assert_eq!(port_owner(p, workers), w);
                    assert!(seen.insert(p), "port {p} in two pools");
                }
            }
            assert_eq!(seen, DEFAULT_RANGE.collect::<BTreeSet<u16>>());
        }
    }

    #[test]
    fn exhaustion_then_recovery() {
        let mut pool = PortPool::new(1, 2, 1000..=1009, 0);
        assert_eq!(pool.capacity(), 5);
        assert_eq!(drain(&mut pool), vec![1001, 1003, 1005, 1007, 1009]);
        assert_eq!(pool.alloc(), None);
        assert_eq!(pool.available(), 0);
        assert!(pool.free(1005));
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.alloc(), Some(1005));
        assert_eq!(pool.alloc(), None);
    }

    #[test]
    fn foreign_and_double_free_rejected() {
        let mut pool = PortPool::new(0, 2, 1000..=1009, 0);
        let p = pool.alloc().unwrap();
        assert!(!pool.free(1001), "odd port belongs to worker 1");
        assert!(!pool.free(2000), "outside the range");
        assert!(!pool.free(1002), "owned but never allocated: already free");
        assert!(pool.free(p));
        assert!(!pool.free(p), "double free");
        assert_eq!(pool.available(), pool.capacity());
    }

    #[test]
    fn a_pool_starts_where_it_is_told_and_still_covers_its_ports() {
        let mut pool = PortPool::new(1, 2, 1000..=1009, 7);
        // Ports 1001..=1009 step 2: index 7 % 5 = 2 is 1005.
        assert_eq!(drain(&mut pool), vec![1005, 1007, 1009, 1001, 1003]);
        let mut whole = PortPool::new(0, 1, DEFAULT_RANGE, 40_000);
        let ports: BTreeSet<u16> = drain(&mut whole).into_iter().collect();
        assert_eq!(ports, DEFAULT_RANGE.collect::<BTreeSet<u16>>());
    }

    #[test]
    fn freed_ports_are_reused_last() {
        let mut pool = PortPool::new(0, 1, 10..=14, 0);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert!(pool.free(b));
        assert!(pool.free(a));
        assert_eq!(drain(&mut pool), vec![12, 13, 14, b, a]);
    }

    #[test]
    fn degenerate_inputs_own_nothing_or_everything() {
        let mut none = PortPool::new(3, 2, DEFAULT_RANGE, 0);
        assert_eq!(none.capacity(), 0);
        assert_eq!(none.alloc(), None);
        assert!(!none.free(1025));
        let all = PortPool::new(0, 0, 1..=3, 0);
        assert_eq!(all.capacity(), 3);
        assert_eq!(port_owner(77, 0), 0);
        #[allow(
            clippy::reversed_empty_ranges,
            reason = "an empty range is the case under test"
        )]
        let empty = PortPool::new(0, 1, 5..=4, 7);
        assert_eq!(empty.capacity(), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc,
        Free(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![Just(Op::Alloc), (90u16..130).prop_map(Op::Free)]
    }

    proptest! {
        /// Against a model (a FIFO of free ports and a set of allocated ones): same results,
        /// and available + allocated == capacity at every step.
        #[test]
        fn matches_fifo_model(worker in 0u16..3, ops in prop::collection::vec(op(), 0..300)) {
            let mut pool = PortPool::new(worker, 3, 100..=120, 0);
            let mut free: VecDeque<u16> = (100..=120).filter(|p| p % 3 == worker).collect();
            let mut used = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Alloc => {
                        let want = free.pop_front();
                        prop_assert_eq!(pool.alloc(), want);
                        if let Some(p) = want { used.insert(p); }
                    }
                    Op::Free(p) => {
                        let ok = used.remove(&p);
                        prop_assert_eq!(pool.free(p), ok);
                        if ok { free.push_back(p); }
                    }
                }
                prop_assert_eq!(pool.available(), free.len());
                prop_assert_eq!(pool.available() + used.len(), pool.capacity());
            }
        }
    }
}
