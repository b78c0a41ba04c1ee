//! A worker's view of its services' real servers' load: connection counts for `wlc` and `lc`,
//! and which servers are over their connection limits (`upper`/`lower`).
//!
//! The counts are IPVS's (ActiveConn, InActConn), summed over all workers: each worker keeps
//! its own in its counter slots (written by it alone, no shared atomic written per packet or
//! per connection), and a view adds them up lazily. The view of a service re-reads every real
//! server's counts from all workers in rounds, one round every [`ROUND_MS`], at most
//! [`ROUND_STEP`] servers per housekeeping call; between reads, this worker's own new
//! connections are added to the servers it picked at once. So a view is exact for this
//! worker's picks and at most about `ROUND_MS` behind the other workers' picks and everyone's
//! ended connections. That is enough: what `wlc` must get right is where a burst of new
//! connections goes, and each worker spreads its own burst over its own view exactly; the
//! other workers' bursts show within milliseconds. Connection limits are checked at the same
//! pace, so a server may overshoot its upper limit by the connections the other workers open
//! in that time.
//!
//! Only services that need it (a load-based scheduler, or a real server with a limit) have a
//! view; the others cost nothing here.

use hashbrown::HashMap;

use crate::engine::sched::{LeastTree, Load, overhead};
use crate::engine::snapshot::{Service, Snapshot};
use crate::engine::stats::Stats;

/// A round of re-reading every view starts this often (engine milliseconds).
pub(super) const ROUND_MS: u64 = 5;
/// Real servers re-read per housekeeping call, so a round of thousands is spread out.
pub(super) const ROUND_STEP: usize = 64;

/// One service's view.
#[derive(Debug)]
pub(super) struct LoadView {
    svc_slot: u32,
    /// Per real server (indexed like the service's list): counter slot, weight, limits.
    rs_slots: Box<[u32]>,
    weights: Box<[u32]>,
    limits: Box<[(u32, u32)]>,
    /// Connections of all workers as last read, plus this worker's opened since.
    active: Box<[u64]>,
    inactive: Box<[u64]>,
    overloaded: Box<[bool]>,
    /// The least-loaded server (`wlc`, `lc` only).
    tree: Option<LeastTree>,
}

impl Load for LoadView {
    #[inline]
    fn overloaded(&self, i: u16) -> bool {
        self.overloaded.get(usize::from(i)).copied().unwrap_or(true)
    }

    #[inline]
    fn least(&self) -> Option<u16> {
        self.tree.as_ref()?.least()
    }
}

impl LoadView {
    /// The view of `svc`, its counts read at once.
    fn new(svc: &Service, stats: &Stats) -> LoadView {
        let n = svc.rs.len();
        let weighted = matches!(
            *svc.schedule,
            crate::engine::sched::Schedule::Least { weighted: true }
        );
        let mut v = LoadView {
            svc_slot: svc.slot,
            rs_slots: svc.rs.iter().map(|r| r.slot).collect(),
            weights: svc.rs.iter().map(|r| r.weight).collect(),
            limits: svc.rs.iter().map(|r| (r.upper, r.lower)).collect(),
            active: vec![0; n].into_boxed_slice(),
            inactive: vec![0; n].into_boxed_slice(),
            overloaded: vec![false; n].into_boxed_slice(),
            tree: svc.schedule.by_load().then(|| LeastTree::new(n, weighted)),
        };
        for i in 0..n {
            v.read(i, stats);
        }
        v
    }

    /// Whether this view still describes `svc` (same servers, weights and limits).
    fn matches(&self, svc: &Service) -> bool {
        self.svc_slot == svc.slot
            && self.tree.is_some() == svc.schedule.by_load()
            && self.rs_slots.len() == svc.rs.len()
            && svc.rs.iter().enumerate().all(|(i, r)| {
                self.rs_slots[i] == r.slot
                    && self.weights[i] == r.weight
                    && self.limits[i] == (r.upper, r.lower)
            })
    }

    /// Re-reads server `i`'s counts from every worker's counter slot.
    fn read(&mut self, i: usize, stats: &Stats) {
        let (mut active, mut inactive) = (0u64, 0u64);
        for w in 0..stats.workers() {
            if let Some(c) = stats.slot(w, self.rs_slots[i]) {
                active = active.wrapping_add(c.active.get());
                inactive = inactive.wrapping_add(c.inactive.get());
            }
        }
        // A worker's gauge is never negative, but one read mid-change could make a sum wrap.
        self.active[i] = active.min(i64::MAX as u64);
        self.inactive[i] = inactive.min(i64::MAX as u64);
        self.settle(i);
    }

    /// Counts a connection this worker just opened to server `i` (inactive until established).
    fn opened(&mut self, i: usize) {
        if i < self.inactive.len() {
            self.inactive[i] += 1;
            self.settle(i);
        }
    }

    /// Brings server `i`'s limit state and place in the tree up to its counts. A server at
    /// its upper limit takes no new connections until it is below its lower one, as IPVS's
    /// thresholds work.
    fn settle(&mut self, i: usize) {
        let (upper, lower) = self.limits[i];
        let total = self.active[i].saturating_add(self.inactive[i]);
        if upper > 0 && total >= u64::from(upper) {
            self.overloaded[i] = true;
        } else if upper == 0 || total < u64::from(lower) {
            self.overloaded[i] = false;
        }
        if let Some(t) = &mut self.tree {
            let weight = if self.overloaded[i] {
                0
            } else {
                self.weights[i]
            };
            t.set(i, overhead(self.active[i], self.inactive[i]), weight);
        }
    }
}

/// All of a worker's views, and where the refresh rounds stand.
#[derive(Debug, Default)]
pub(super) struct LoadViews {
    views: Vec<LoadView>,
    /// Service counter slot → index in `views`.
    by_slot: HashMap<u32, usize>,
    /// When the next round starts, and where the current one is (view, server).
    next_round_ms: u64,
    at: Option<(usize, usize)>,
}

impl LoadViews {
    /// Brings the views up to `snap`: a view for every service that needs one, kept when its
    /// service did not change (its counts stay), rebuilt when it did, dropped with its
    /// service. Runs when a snapshot is published, not per packet.
    pub(super) fn sync(&mut self, snap: &Snapshot, stats: &Stats) {
        let mut old: HashMap<u32, LoadView> =
            self.views.drain(..).map(|v| (v.svc_slot, v)).collect();
        for svc in snap.services.iter().filter(|s| s.needs_load) {
            let view = match old.remove(&svc.slot) {
                Some(v) if v.matches(svc) => v,
                _ => LoadView::new(svc, stats),
            };
            self.views.push(view);
        }
        self.by_slot = self
            .views
            .iter()
            .enumerate()
            .map(|(k, v)| (v.svc_slot, k))
            .collect();
        self.at = None;
    }

    /// The view of the service in counter slot `svc_slot`.
    #[inline]
    pub(super) fn get(&self, svc_slot: u32) -> Option<&LoadView> {
        self.views.get(*self.by_slot.get(&svc_slot)?)
    }

    /// Counts a connection this worker opened to server `i` of service `svc_slot`.
    #[inline]
    pub(super) fn opened(&mut self, svc_slot: u32, i: u16) {
        if let Some(&k) = self.by_slot.get(&svc_slot) {
            self.views[k].opened(usize::from(i));
        }
    }

    /// Re-reads up to [`ROUND_STEP`] servers' counts if a round is due or under way.
    pub(super) fn refresh(&mut self, now_ms: u64, stats: &Stats) {
        if self.views.is_empty() {
            return;
        }
        let (mut v, mut i) = match self.at {
            Some(at) => at,
            None if now_ms >= self.next_round_ms => (0, 0),
            None => return,
        };
        for _ in 0..ROUND_STEP {
            let Some(view) = self.views.get_mut(v) else {
                self.at = None;
                self.next_round_ms = now_ms + ROUND_MS;
                return;
            };
            if i < view.rs_slots.len() {
                view.read(i, stats);
                i += 1;
            } else {
                (v, i) = (v + 1, 0);
            }
        }
        self.at = Some((v, i));
    }
}
