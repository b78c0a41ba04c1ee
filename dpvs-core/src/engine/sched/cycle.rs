//! `rr` and `wrr`: a precomputed cycle over the real servers.
//!
//! The control thread turns the weights into a [`Cycle`] once per config change; a worker then
//! picks with one table read and a cursor it keeps itself. Workers share the table read-only
//! (it lives in the published snapshot), so picking needs no lock and no shared counter: every
//! worker walks the same cycle from its own offset. The smooth weighted order is also what
//! spreads a Maglev table's entries over the servers ([`super::maglev`]).

/// Longest precomputed cycle. Bounds the table's memory (128 KiB of `u16`) and its build time.
pub const MAX_TABLE: usize = 1 << 16;

/// Upper bound on `servers × cycle length` when building a smooth WRR table, which costs one
/// pass over the servers per entry. Beyond it the cycle is shortened (weights scaled down) so a
/// pathological config cannot stall the control thread for seconds.
const MAX_BUILD_WORK: u64 = 1 << 26;

/// A precomputed pick order over a service's real servers.
///
/// Picking is `table[cursor]`: rr and wrr reduce to a fixed cycle, so they cost the same.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cycle {
    /// Server indices in pick order; each entry has weight > 0. Length ≤ [`MAX_TABLE`].
    table: Box<[u16]>,
}

impl Cycle {
    /// The cycle over `weights` (indexed like the service's real-server list): each server
    /// with weight > 0 once (`rr`), or as often as its weight, smoothly interleaved (`wrr`).
    ///
    /// Weight 0 means draining: the server never appears in the cycle. Only the first 65536
    /// servers can be indexed by a `u16` and are considered. Config-time: allocates.
    pub fn new(weights: &[u32], weighted: bool) -> Cycle {
        let live = live(weights);
        let table = if weighted {
            smooth_wrr(&live)
        } else {
            live.iter().map(|&(i, _)| i).collect()
        };
        Cycle { table }
    }

    /// Picks the next server and advances the worker's `cursor`; `None` when no server has
    /// weight > 0.
    ///
    /// A cursor left over from an older (longer) schedule is wrapped to the start rather than
    /// trusted, so workers may keep their cursor across snapshot changes. Allocation-free.
    #[inline]
    pub fn pick(&self, cursor: &mut u32) -> Option<u16> {
        let len = self.table.len();
        let at = usize::try_from(*cursor).unwrap_or(usize::MAX);
        let at = if at < len { at } else { 0 };
        let server = *self.table.get(at)?;
        let next = if at + 1 < len { at + 1 } else { 0 };
        // `len ≤ MAX_TABLE` fits in `u32`; the fallback is unreachable but keeps this panic-free.
        *cursor = u32::try_from(next).unwrap_or(0);
        Some(server)
    }

    /// Picks like [`Self::pick`], skipping servers `ok` refuses (over their connection limit):
    /// each entry of the cycle is tried at most once.
    #[inline]
    pub fn pick_available(&self, cursor: &mut u32, ok: impl Fn(u16) -> bool) -> Option<u16> {
        let first = self.pick(cursor)?;
        if ok(first) {
            return Some(first);
        }
        self.pick_slow(cursor, ok)
    }

    #[cold]
    fn pick_slow(&self, cursor: &mut u32, ok: impl Fn(u16) -> bool) -> Option<u16> {
        (1..self.table.len())
            .filter_map(|_| self.pick(cursor))
            .find(|&i| ok(i))
    }

    /// Where worker `worker` of `workers` starts in the cycle: evenly spread offsets, so that
    /// workers that each receive their first connection at once do not all pick server 0.
    pub fn start_cursor(&self, worker: u16, workers: u16) -> u32 {
        let len = self.table.len() as u64;
        if workers == 0 || len == 0 {
            return 0;
        }
        let offset = len * u64::from(worker % workers) / u64::from(workers);
        u32::try_from(offset).unwrap_or(0)
    }

    /// Length of one full cycle (0 when no server can be picked).
    pub fn cycle_len(&self) -> usize {
        self.table.len()
    }

    /// True when no server has weight > 0: every pick returns `None`.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The cycle itself, in pick order (for diagnostics and tests).
    pub fn table(&self) -> &[u16] {
        &self.table
    }
}

/// The servers with weight > 0 as `(index, weight)`, at most 65536 of them.
pub(super) fn live(weights: &[u32]) -> Vec<(u16, u64)> {
    weights
        .iter()
        .take(usize::from(u16::MAX) + 1)
        .enumerate()
        .filter(|&(_, &w)| w > 0)
        .filter_map(|(i, &w)| Some((u16::try_from(i).ok()?, u64::from(w))))
        .collect()
}

/// Greatest common divisor (Euclid).
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Divides all weights by their gcd, so the cycle is as short as the proportions allow.
pub(super) fn reduce(live: &[(u16, u64)]) -> Vec<(u16, u64)> {
    let g = live.iter().fold(0, |g, &(_, w)| gcd(g, w)).max(1);
    live.iter().map(|&(i, w)| (i, w / g)).collect()
}

/// Largest cycle length allowed for `servers` servers: [`MAX_TABLE`], shortened so the build
/// stays under [`MAX_BUILD_WORK`], but never below one entry per server.
fn cycle_cap(servers: usize) -> u64 {
    let n = servers.max(1) as u64;
    (MAX_BUILD_WORK / n).min(MAX_TABLE as u64).max(n)
}

/// Scales weights down so they sum to at most `cap`, keeping every weight ≥ 1.
///
/// Each server keeps 1 and shares the remaining budget in proportion to `w - 1`; this cannot
/// overshoot (unlike `max(1, w * cap / sum)`) and never drains a live server.
pub(super) fn scale(live: &[(u16, u64)], cap: u64) -> Vec<(u16, u64)> {
    let sum: u64 = live.iter().map(|&(_, w)| w).sum();
    if sum <= cap {
        return live.to_vec();
    }
    let n = live.len() as u64;
    let budget = cap.saturating_sub(n);
    let excess: u64 = live.iter().map(|&(_, w)| w - 1).sum();
    live.iter()
        .map(|&(i, w)| {
            let extra = u128::from(w - 1) * u128::from(budget) / u128::from(excess.max(1));
            (i, 1 + u64::try_from(extra).unwrap_or(0))
        })
        .collect()
}

/// Smooth weighted round robin (the nginx scheme): each step every server gains its weight,
/// the richest is picked and pays the total. Over one cycle of `Σw` picks each server gets
/// exactly `w` picks, interleaved rather than bunched. Ties go to the lowest index, so the
/// table is deterministic.
pub(super) fn smooth_wrr(live: &[(u16, u64)]) -> Box<[u16]> {
    let reduced = reduce(live);
    let weights = reduce(&scale(&reduced, cycle_cap(reduced.len())));
    let total: u64 = weights.iter().map(|&(_, w)| w).sum();
    if weights.iter().all(|&(_, w)| w == 1) {
        // Equal weights: the smooth order is plain rr, built in O(n) rather than O(n²).
        return weights.iter().map(|&(i, _)| i).collect();
    }
    let total_i = i64::try_from(total).unwrap_or(i64::MAX);
    let mut current = vec![0i64; weights.len()];
    let mut table = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (k, &(_, w)) in weights.iter().enumerate() {
            current[k] += i64::try_from(w).unwrap_or(0);
            if current[k] > current[best] {
                best = k;
            }
        }
        current[best] -= total_i;
        table.push(weights[best].0);
    }
    table.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Picks `n` times from a fresh cursor.
    fn picks(s: &Cycle, n: usize) -> Vec<u16> {
        let mut c = 0;
        (0..n).map(|_| s.pick(&mut c).unwrap()).collect()
    }

    fn counts(seq: &[u16], servers: usize) -> Vec<u64> {
        let mut c = vec![0u64; servers];
        for &s in seq {
            c[usize::from(s)] += 1;
        }
        c
    }

    /// Expected picks per server over one cycle: weights divided by their gcd.
    fn expected(weights: &[u32]) -> Vec<u64> {
        let g = weights
            .iter()
            .fold(0u64, |g, &w| gcd(g, u64::from(w)))
            .max(1);
        weights.iter().map(|&w| u64::from(w) / g).collect()
    }

    #[test]
    fn rr_distributes_equally_and_ignores_weights() {
        let s = Cycle::new(&[1, 5, 2, 9], false);
        assert_eq!(s.cycle_len(), 4);
        assert_eq!(counts(&picks(&s, 400), 4), vec![100; 4]);
        assert_eq!(picks(&s, 5), vec![0, 1, 2, 3, 0]);
    }

    #[test]
    fn wrr_exact_proportions_over_one_cycle() {
        for w in [
            vec![1, 1],
            vec![5, 1, 1],
            vec![3, 2],
            vec![4, 2, 6],
            vec![100, 1],
            vec![7, 11, 13, 0, 2],
            vec![1000, 3000],
        ] {
            let s = Cycle::new(&w, true);
            let want = expected(&w);
            assert_eq!(s.cycle_len() as u64, want.iter().sum::<u64>(), "{w:?}");
            assert_eq!(counts(&picks(&s, s.cycle_len()), w.len()), want, "{w:?}");
        }
    }

    #[test]
    fn wrr_is_interleaved_like_nginx() {
        // The nginx reference sequence for {a:5, b:1, c:1}.
        let s = Cycle::new(&[5, 1, 1], true);
        assert_eq!(s.table(), &[0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn weight_zero_is_never_picked() {
        for sched in [false, true] {
            let s = Cycle::new(&[0, 3, 0, 1], sched);
            assert!(picks(&s, 1000).iter().all(|&i| i == 1 || i == 3));
        }
    }

    #[test]
    fn all_zero_or_empty_gives_none() {
        for sched in [false, true] {
            for w in [&[][..], &[0, 0, 0][..]] {
                let s = Cycle::new(w, sched);
                let mut c = 7;
                assert!(s.is_empty());
                assert_eq!(s.pick(&mut c), None);
                assert_eq!(s.start_cursor(1, 4), 0);
            }
        }
    }

    #[test]
    fn stale_cursor_wraps() {
        let s = Cycle::new(&[1, 1], false);
        let mut c = u32::MAX;
        assert_eq!(s.pick(&mut c), Some(0));
        assert_eq!(c, 1);
    }

    #[test]
    fn start_cursors_are_spread() {
        let s = Cycle::new(&[1; 8], false);
        let starts: Vec<u32> = (0..4).map(|w| s.start_cursor(w, 4)).collect();
        assert_eq!(starts, vec![0, 2, 4, 6]);
        assert_eq!(s.start_cursor(3, 0), 0);
    }

    #[test]
    fn huge_weights_are_capped_without_draining_anyone() {
        let w = [1, u32::MAX, 70_000, 2];
        let s = Cycle::new(&w, true);
        assert!(s.cycle_len() <= MAX_TABLE);
        let c = counts(s.table(), w.len());
        assert!(c.iter().all(|&n| n >= 1), "{c:?}");
        assert!(c[1] > c[2] && c[2] > c[3]);
    }

    #[test]
    fn many_servers_build_is_bounded() {
        let w: Vec<u32> = (1..=20_000).collect();
        let s = Cycle::new(&w, true);
        assert!(s.cycle_len() <= MAX_TABLE && s.cycle_len() >= w.len());
        assert!(counts(s.table(), w.len()).iter().all(|&n| n >= 1));
    }

    /// Smoothness, two ways. (1) After any prefix of `t` picks, server i has had `t·wᵢ/W`
    /// picks give or take less than two: never bunched ahead of, or starved behind, its share.
    /// (2) Cyclically, two picks of server i are never more than `2·W/wᵢ` apart (twice its
    /// ideal spacing). Smooth WRR keeps both well inside (about 1.3 and 1.96 at worst in a
    /// search over random vectors); a bunched order such as `aaaaabc` fails both.
    fn assert_smooth(weights: &[u32], s: &Cycle) {
        let want = expected(weights);
        let total: u64 = want.iter().sum();
        let mut got = vec![0u64; weights.len()];
        let mut last: Vec<Option<u64>> = vec![None; weights.len()];
        let mut first: Vec<Option<u64>> = vec![None; weights.len()];
        for (t, &pick) in s.table().iter().enumerate() {
            let (i, t) = (usize::from(pick), t as u64);
            got[i] += 1;
            if let Some(prev) = last[i] {
                assert!(
                    (t - prev) * want[i] <= 2 * total,
                    "{weights:?} gap of {i} at {t}"
                );
            }
            first[i].get_or_insert(t);
            last[i] = Some(t);
            for (k, &w) in want.iter().enumerate() {
                // |got·W − (t+1)·w| < 2W  ⇔  |got − (t+1)·w/W| < 2
                let diff = (got[k] * total).abs_diff((t + 1) * w);
                assert!(
                    diff < 2 * total,
                    "{weights:?} share of {k} at pick {}",
                    t + 1
                );
            }
        }
        for (i, (f, l)) in first.iter().zip(&last).enumerate() {
            if let (Some(f), Some(l)) = (f, l) {
                assert!(
                    (f + total - l) * want[i] <= 2 * total,
                    "{weights:?} wrap gap of {i}"
                );
            }
        }
    }

    #[test]
    fn bunched_order_is_not_smooth() {
        let bunched = Cycle {
            table: vec![0, 0, 0, 0, 0, 1, 2].into_boxed_slice(),
        };
        let r = std::panic::catch_unwind(|| assert_smooth(&[5, 1, 1], &bunched));
        assert!(r.is_err());
    }

    #[test]
    fn wrr_is_smooth() {
        for w in [
            vec![5, 1, 1],
            vec![1, 2, 3, 4, 5],
            vec![100, 1, 1, 1],
            vec![7, 7, 3],
        ] {
            assert_smooth(&w, &Cycle::new(&w, true));
        }
    }

    proptest! {
        #[test]
        fn wrr_proportions_exact_and_smooth(w in prop::collection::vec(0u32..50, 0..12)) {
            let s = Cycle::new(&w, true);
            let want = expected(&w);
            prop_assert_eq!(s.cycle_len() as u64, want.iter().sum::<u64>());
            prop_assert_eq!(counts(s.table(), w.len()), want);
            assert_smooth(&w, &s);
        }

        #[test]
        fn rr_cycle_is_each_live_server_once(w in prop::collection::vec(0u32..3, 0..12)) {
            let s = Cycle::new(&w, false);
            let live: Vec<u16> = (0..w.len() as u16).filter(|&i| w[usize::from(i)] > 0).collect();
            prop_assert_eq!(s.table(), &live[..]);
        }

    }

    proptest! {
        // Arbitrary u32 weights build full-size tables: fewer cases keep the suite quick.
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn pick_never_panics(w in prop::collection::vec(any::<u32>(), 0..8), c in any::<u32>()) {
            let s = Cycle::new(&w, true);
            let mut c = c;
            for _ in 0..3 {
                if let Some(i) = s.pick(&mut c) {
                    prop_assert!(w[usize::from(i)] > 0);
                    prop_assert!((c as usize) < s.cycle_len());
                }
            }
        }
    }
}
