//! `wlc` and `lc`: the real server with the least connections for its weight, as IPVS defines
//! it. A server's overhead is `active × 256 + inactive`; `wlc` picks the least
//! `overhead / weight` (compared as `overhead_a × weight_b < overhead_b × weight_a`), `lc` the
//! least overhead among servers with weight > 0; ties go to the server listed first. Servers
//! with weight 0 or over their connection limit are not candidates.
//!
//! A [`LeastTree`] keeps the answer current under changes: a tournament tree over the servers
//! whose every node holds the better of its two children, so a pick reads the root and a
//! server's change replays only its path, `log₂ n` comparisons. With 1,000 servers a new
//! connection costs ten comparisons instead of IPVS's scan of all of them.

/// An empty node: no candidate below.
const NONE: u16 = u16::MAX;

/// What IPVS weighs a server's connections by: an established connection costs 256 times an
/// inactive one.
#[inline]
pub fn overhead(active: u64, inactive: u64) -> u64 {
    active.saturating_mul(256).saturating_add(inactive)
}

#[derive(Clone, Debug)]
pub struct LeastTree {
    weighted: bool,
    /// Per server: overhead, and weight (0: not a candidate).
    load: Box<[u64]>,
    weight: Box<[u32]>,
    /// Node `k`'s children are `2k` and `2k + 1`; the leaves start at `leaves`; node 0 is unused.
    nodes: Box<[u16]>,
    leaves: usize,
}

impl LeastTree {
    /// A tree over `n` servers (at most 65535), none a candidate yet.
    pub fn new(n: usize, weighted: bool) -> LeastTree {
        let n = n.min(usize::from(NONE));
        let leaves = n.next_power_of_two().max(1);
        LeastTree {
            weighted,
            load: vec![0; n].into_boxed_slice(),
            weight: vec![0; n].into_boxed_slice(),
            nodes: vec![NONE; 2 * leaves].into_boxed_slice(),
            leaves,
        }
    }

    /// Sets server `i`'s overhead and weight (0: not a candidate) and replays its path.
    pub fn set(&mut self, i: usize, load: u64, weight: u32) {
        if i >= self.load.len() {
            return;
        }
        self.load[i] = load;
        self.weight[i] = if self.weighted { weight } else { weight.min(1) };
        let mut k = self.leaves + i;
        self.nodes[k] = if weight > 0 { i as u16 } else { NONE };
        while k > 1 {
            k /= 2;
            self.nodes[k] = self.better(self.nodes[2 * k], self.nodes[2 * k + 1]);
        }
    }

    /// The server to pick, `None` when there is no candidate.
    #[inline]
    pub fn least(&self) -> Option<u16> {
        let best = self.nodes.get(1).copied().unwrap_or(NONE);
        (best != NONE).then_some(best)
    }

    /// Server `i`'s overhead.
    pub fn load(&self, i: usize) -> u64 {
        self.load.get(i).copied().unwrap_or(0)
    }

    /// The better of two nodes; `a` is listed first, so it wins ties.
    fn better(&self, a: u16, b: u16) -> u16 {
        if a == NONE {
            return b;
        }
        if b == NONE {
            return a;
        }
        let (ia, ib) = (usize::from(a), usize::from(b));
        let lhs = u128::from(self.load[ib]) * u128::from(self.weight[ia]);
        let rhs = u128::from(self.load[ia]) * u128::from(self.weight[ib]);
        if lhs < rhs { b } else { a }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// IPVS's way: scan in list order, keep the first of the least `overhead / weight`.
    fn reference(loads: &[u64], weights: &[u32], weighted: bool) -> Option<u16> {
        let w = |i: usize| {
            if weighted {
                weights[i]
            } else {
                weights[i].min(1)
            }
        };
        let mut least: Option<usize> = None;
        for i in 0..loads.len() {
            if weights[i] == 0 {
                continue;
            }
            match least {
                None => least = Some(i),
                Some(l) => {
                    let (ll, li) = (u128::from(loads[l]), u128::from(loads[i]));
                    if ll * u128::from(w(i)) > li * u128::from(w(l)) {
                        least = Some(i);
                    }
                }
            }
        }
        least.map(|i| i as u16)
    }

    #[test]
    fn picks_by_ratio_and_ties_go_first() {
        let mut t = LeastTree::new(3, true);
        assert_eq!(t.least(), None);
        t.set(0, overhead(1, 0), 1);
        t.set(1, overhead(0, 3), 1);
        t.set(2, overhead(0, 3), 1);
        assert_eq!(
            t.least(),
            Some(1),
            "3 inactive < 1 active; tie between 1 and 2"
        );
        t.set(1, overhead(0, 3), 0);
        assert_eq!(t.least(), Some(2), "weight 0 is not a candidate");
        t.set(0, overhead(1, 0), 100);
        assert_eq!(t.least(), Some(0), "256/100 < 3/1");
        let mut lc = LeastTree::new(2, false);
        lc.set(0, 10, 100);
        lc.set(1, 5, 1);
        assert_eq!(lc.least(), Some(1), "lc ignores the weights");
    }

    proptest! {
        #[test]
        fn agrees_with_a_scan(cases in prop::collection::vec(
                (0u64..3, 0u64..600, 0u32..4), 1..70),
                weighted in any::<bool>(),
                updates in prop::collection::vec((any::<prop::sample::Index>(), 0u64..5, 0u64..900, 0u32..5), 0..30)) {
            let mut loads: Vec<u64> = cases.iter().map(|&(a, i, _)| overhead(a, i)).collect();
            let mut weights: Vec<u32> = cases.iter().map(|c| c.2).collect();
            let mut t = LeastTree::new(loads.len(), weighted);
            for i in 0..loads.len() {
                t.set(i, loads[i], weights[i]);
            }
            prop_assert_eq!(t.least(), reference(&loads, &weights, weighted));
            for (at, a, i, w) in updates {
                let k = at.index(loads.len());
                loads[k] = overhead(a, i);
                weights[k] = w;
                t.set(k, loads[k], w);
                prop_assert_eq!(t.least(), reference(&loads, &weights, weighted));
            }
        }
    }
}
