//! `mh`, Maglev hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size `M` in
//! which each real server owns entries in proportion to its weight, filled so that a change
//! of the server set moves few entries, and a client hashed onto it.
//!
//! Every server has its own permutation of the table's positions, from two hashes of its
//! address and port: it starts at `offset` and steps by `skip` (`M` is prime, so the steps
//! reach every position). Servers take turns claiming their next free preferred position
//! until the table is full. Where the paper gives every server one turn per round, the turns
//! here follow the smooth weighted round-robin order of the weights, so that at every moment of
//! the fill each server has claimed its weight's share give or take two entries: shares match
//! the weights to about `2/M`, and weight 1 next to weight 1000 still works. The servers are
//! taken in the order of their addresses, never of the configuration: the same servers and
//! weights give the same table on every balancer and after every restart.

use super::cycle::{reduce, scale, smooth_wrr};
use super::hash::{ClientKey, mix, onto, server_hash};
use super::{Load, Server, sorted, weighted};

/// An empty table entry while filling.
const EMPTY: u16 = u16::MAX;
/// Rehashes tried for a client whose server is unavailable (`mh-fallback`) before the table is
/// walked from the last one.
const REHASHES: u64 = 32;
/// Salts of the two permutation hashes.
const OFFSET_SALT: u64 = 1;
const SKIP_SALT: u64 = 2;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maglev {
    /// Server index per entry; empty when no server has weight > 0.
    table: Box<[u16]>,
    by_port: bool,
    fallback: bool,
}

impl Maglev {
    /// The table of size `m` (a prime, checked by the control plane) over `servers`.
    pub fn new(servers: &[Server], m: u32, by_port: bool, fallback: bool) -> Maglev {
        Maglev {
            table: fill(servers, m as usize),
            by_port,
            fallback,
        }
    }

    /// The client's entry's server; if unavailable, with fallback, the first available one
    /// along a fixed sequence of rehashes, then along the table.
    pub fn pick(&self, client: &ClientKey, load: &impl Load) -> Option<u16> {
        let m = self.table.len();
        if m == 0 {
            return None;
        }
        let h = client.hash(self.by_port);
        let first = self.table[onto(h, m)];
        if !load.overloaded(first) {
            return Some(first);
        }
        if !self.fallback {
            return None;
        }
        self.fall_back(h, load)
    }

    #[cold]
    fn fall_back(&self, h: u64, load: &impl Load) -> Option<u16> {
        let m = self.table.len();
        let rehashed = (1..=REHASHES).map(|k| self.table[onto(mix(h ^ k), m)]);
        let start = onto(mix(h ^ REHASHES), m);
        let walked = (1..m).map(|k| self.table[(start + k) % m]);
        rehashed.chain(walked).find(|&i| !load.overloaded(i))
    }

    /// The table (tests).
    pub fn table(&self) -> &[u16] {
        &self.table
    }
}

/// One server's walk over the table's positions.
struct Permutation {
    server: u16,
    offset: u64,
    skip: u64,
    next: u64,
}

impl Permutation {
    /// Its next preferred position.
    fn step(&mut self, m: u64) -> usize {
        let c = (self.offset + self.next * self.skip) % m;
        self.next += 1;
        c as usize
    }
}

/// The filled table of size `m`: turns in the smooth weighted order of the servers (in address
/// order), each claiming its next free preferred position.
fn fill(servers: &[Server], m: usize) -> Box<[u16]> {
    let order = sorted(servers);
    let live = weighted(servers, &order);
    if live.is_empty() || m < 2 {
        return Box::new([]);
    }
    // One turn per weight unit, at most one table's worth of turns per pass.
    let turns = smooth_wrr(&reduce(&scale(&reduce(&live), m as u64)));
    let mm = m as u64;
    let mut perms: Vec<Permutation> = order
        .iter()
        .map(|&i| {
            let addr = servers[usize::from(i)].addr;
            Permutation {
                server: i,
                offset: server_hash(addr, OFFSET_SALT) % mm,
                skip: server_hash(addr, SKIP_SALT) % (mm - 1) + 1,
                next: 0,
            }
        })
        .collect();
    let mut table = vec![EMPTY; m];
    let mut filled = 0;
    for &k in turns.iter().cycle() {
        let p = &mut perms[usize::from(k)];
        let mut c = p.step(mm);
        while table[c] != EMPTY {
            c = p.step(mm);
        }
        table[c] = p.server;
        filled += 1;
        if filled == m {
            break;
        }
    }
    table.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::super::NoLoad;
    use super::super::tests::{servers, shuffled};
    use super::*;
    use proptest::prelude::*;

    const M: u32 = 65_537;

    fn shares(t: &Maglev, n: usize) -> Vec<f64> {
        let mut c = vec![0usize; n];
        for &i in t.table() {
            c[usize::from(i)] += 1;
        }
        c.iter()
            .map(|&k| k as f64 / t.table().len() as f64)
            .collect()
    }

    #[test]
    fn every_entry_is_filled_with_a_live_server() {
        let s = servers(&[1, 0, 3]);
        let t = Maglev::new(&s, 251, false, false);
        assert_eq!(t.table().len(), 251);
        assert!(t.table().iter().all(|&i| i == 0 || i == 2));
        assert!(
            Maglev::new(&servers(&[0, 0]), 251, false, false)
                .table()
                .is_empty()
        );
        assert_eq!(
            Maglev::new(&servers(&[]), 251, false, false).pick(&ClientKey::default(), &NoLoad),
            None
        );
    }

    #[test]
    fn unavailable_servers_refuse_or_fall_back() {
        struct Down(u16);
        impl Load for Down {
            fn overloaded(&self, i: u16) -> bool {
                i == self.0
            }
            fn least(&self) -> Option<u16> {
                None
            }
        }
        let s = servers(&[1, 1, 1]);
        let strict = Maglev::new(&s, 251, false, false);
        let lenient = Maglev::new(&s, 251, false, true);
        for a in 0..200 {
            let k = ClientKey {
                addr: a,
                ..ClientKey::default()
            };
            let home = strict.pick(&k, &NoLoad).unwrap();
            assert_eq!(strict.pick(&k, &Down(home)), None);
            let other = lenient.pick(&k, &Down(home)).unwrap();
            assert_ne!(other, home);
            assert_eq!(
                lenient.pick(&k, &Down(home)),
                Some(other),
                "the same fallback"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Each server's share of a 65,537-entry table is within 1 % of its weight's share.
        #[test]
        fn shares_match_the_weights(w in prop::collection::vec(1u32..100, 1..40)) {
            let t = Maglev::new(&servers(&w), M, false, false);
            let total: u32 = w.iter().sum();
            for (i, share) in shares(&t, w.len()).into_iter().enumerate() {
                let want = f64::from(w[i]) / f64::from(total);
                prop_assert!((share - want).abs() <= 0.01 * want + 2.0 / f64::from(M),
                    "server {i}: {share} vs {want}");
            }
        }

        /// Removing one of N servers moves at most 1/N + 2 % of the table: its own entries and
        /// few others.
        #[test]
        fn removal_disrupts_little(n in 2usize..60, gone in any::<prop::sample::Index>()) {
            let s = servers(&vec![1; n]);
            let before = Maglev::new(&s, M, false, false);
            let g = gone.index(n);
            let mut rest = s.clone();
            rest[g].weight = 0;
            let after = Maglev::new(&rest, M, false, false);
            let moved = before.table().iter().zip(after.table()).filter(|(a, b)| a != b).count();
            let frac = moved as f64 / f64::from(M);
            prop_assert!(frac <= 1.0 / n as f64 + 0.02, "{n} servers: {frac}");
        }

        /// The same servers in any order give the same table (by address).
        #[test]
        fn order_of_the_config_does_not_matter(w in prop::collection::vec(0u32..20, 1..30),
                                               seed in any::<u64>()) {
            let s = servers(&w);
            let (u, perm) = shuffled(&s, seed);
            let a = Maglev::new(&s, 4093, true, false);
            let b = Maglev::new(&u, 4093, true, false);
            prop_assert_eq!(a.table().len(), b.table().len());
            for (x, y) in a.table().iter().zip(b.table()) {
                prop_assert_eq!(*x, perm[usize::from(*y)]);
            }
        }
    }
}
