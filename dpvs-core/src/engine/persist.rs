//! Persistence templates: which real server a client of a persistent service keeps, shared by
//! all workers without a lock.
//!
//! A client's connections come from different source ports and so land on different workers,
//! yet must all reach one real server. The templates therefore live in one table shared by the
//! workers, each entry two atomics: a word holding the key (service slot, client address
//! under the service's netmask) with the real server's counter slot, and the deadline until
//! which it holds. A worker that finds no live template picks a server with the scheduler and
//! claims the entry with a compare-and-swap; a worker that lost the race to claim the same
//! entry for the same client takes the winner's server instead, so two workers never keep two
//! servers for one client. Services that are not persistent never touch the table.
//!
//! A template holds for the service's timeout after its last use: each new connection of the
//! client renews it, the expiry sweep renews it for every live connection it passes (about
//! once a second), and once more when the connection ends. Entries are never emptied, only
//! reclaimed once dead, so a probe run stops at the first empty entry. The table is sized at
//! start-up; when the entries around a key are all live, the connection is scheduled without
//! a template (counted as `templates_full`).

use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};

use super::sched::hash::mix;

/// Entries examined around a key's home position.
const PROBES: usize = 16;
/// Claims retried when other workers keep changing the entries around a key.
const CLAIM_TRIES: usize = 4;

/// One template: `word` = (service slot + 1) << 48 | client << 16 | real server slot; 0 when
/// the entry was never used.
#[derive(Debug, Default)]
struct Entry {
    word: AtomicU64,
    /// Engine milliseconds until which the template holds.
    deadline: AtomicU64,
}

/// A template's key: a service and a client address (already masked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateKey {
    pub svc_slot: u16,
    pub client: u32,
}

impl TemplateKey {
    fn tag(self) -> u64 {
        (u64::from(self.svc_slot) + 1) << 48 | u64::from(self.client) << 16
    }

    fn home(self, mask: usize) -> usize {
        mix(self.tag() ^ 0x7E3F_1A2B_0000_0000) as usize & mask
    }
}

/// The shared template table.
#[derive(Debug)]
pub struct Templates {
    entries: Box<[Entry]>,
    mask: usize,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::none()
    }
}

/// What [`Templates::claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The template now holds this real server slot (ours, or a concurrent claimer's).
    Holds(u16),
    /// No entry free around the key.
    Full,
}

impl Templates {
    /// A table of `capacity` entries (rounded up to a power of two, at least [`PROBES`]).
    pub fn new(capacity: usize) -> Templates {
        let n = capacity.max(PROBES).next_power_of_two();
        Templates {
            entries: (0..n).map(|_| Entry::default()).collect(),
            mask: n - 1,
        }
    }

    /// An empty table for runs with no persistent service.
    pub fn none() -> Templates {
        Templates::new(0)
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The entries around `key`'s home position, in probe order.
    fn probe(&self, key: TemplateKey) -> impl Iterator<Item = &Entry> {
        let home = key.home(self.mask);
        (0..PROBES).map(move |k| &self.entries[(home + k) & self.mask])
    }

    /// The real server slot of `key`'s live template.
    pub fn get(&self, key: TemplateKey, now_ms: u64) -> Option<u16> {
        for e in self.probe(key) {
            let w = e.word.load(Acquire);
            if w == 0 {
                return None;
            }
            if w & !0xFFFF == key.tag() {
                return (e.deadline.load(Relaxed) > now_ms).then_some(w as u16);
            }
        }
        None
    }

    /// Makes `key`'s template hold `rs_slot` until `now_ms + timeout_ms`, unless a live one
    /// exists (claimed meanwhile by another worker): then that one's server is the answer.
    pub fn claim(&self, key: TemplateKey, rs_slot: u16, now_ms: u64, timeout_ms: u64) -> Claim {
        let new = key.tag() | u64::from(rs_slot);
        for _ in 0..CLAIM_TRIES {
            let Some((e, old)) = self.claimable(key, now_ms) else {
                return Claim::Full;
            };
            if old & !0xFFFF == key.tag() && e.deadline.load(Relaxed) > now_ms {
                return Claim::Holds(old as u16);
            }
            // The deadline first: whoever sees the new word sees a live template.
            e.deadline.store(now_ms + timeout_ms, Relaxed);
            match e.word.compare_exchange(old, new, AcqRel, Acquire) {
                Ok(_) => return Claim::Holds(rs_slot),
                Err(now) if now & !0xFFFF == key.tag() => return Claim::Holds(now as u16),
                Err(_) => continue,
            }
        }
        Claim::Full
    }

    /// The entry to claim for `key` and its current word: `key`'s own entry if it has one
    /// (live or dead), else the first dead or empty one in its probe run.
    fn claimable(&self, key: TemplateKey, now_ms: u64) -> Option<(&Entry, u64)> {
        let mut free = None;
        for e in self.probe(key) {
            let w = e.word.load(Acquire);
            if w & !0xFFFF == key.tag() && w != 0 {
                return Some((e, w));
            }
            let dead = w == 0 || e.deadline.load(Relaxed) <= now_ms;
            if dead && free.is_none() {
                free = Some((e, w));
            }
            if w == 0 {
                break;
            }
        }
        free
    }

    /// Renews `key`'s template (if it still has one) until `now_ms + timeout_ms`.
    pub fn touch(&self, key: TemplateKey, now_ms: u64, timeout_ms: u64) {
        for e in self.probe(key) {
            let w = e.word.load(Acquire);
            if w == 0 {
                return;
            }
            if w & !0xFFFF == key.tag() {
                e.deadline.fetch_max(now_ms + timeout_ms, Relaxed);
                return;
            }
        }
    }

    /// The live templates, as (key, real server slot, ms left): for listing, off the fast path.
    pub fn live(&self, now_ms: u64) -> impl Iterator<Item = (TemplateKey, u16, u64)> + '_ {
        self.entries.iter().filter_map(move |e| {
            let w = e.word.load(Acquire);
            let left = e.deadline.load(Relaxed).checked_sub(now_ms)?;
            (w != 0 && left > 0).then(|| {
                let key = TemplateKey {
                    svc_slot: ((w >> 48) - 1) as u16,
                    client: (w >> 16) as u32,
                };
                (key, w as u16, left)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(svc: u16, client: u32) -> TemplateKey {
        TemplateKey {
            svc_slot: svc,
            client,
        }
    }

    #[test]
    fn a_template_holds_for_its_timeout_after_the_last_use() {
        let t = Templates::new(64);
        let k = key(3, 0x0A00_0002);
        assert_eq!(t.get(k, 0), None);
        assert_eq!(t.claim(k, 7, 1_000, 300_000), Claim::Holds(7));
        // A second claim (another worker, another server picked) gets the first's.
        assert_eq!(t.claim(k, 9, 1_500, 300_000), Claim::Holds(7));
        assert_eq!(t.get(k, 300_999), Some(7));
        t.touch(k, 200_000, 300_000);
        assert_eq!(t.get(k, 499_999), Some(7));
        assert_eq!(t.get(k, 500_000), None, "expired");
        // Expired: the next claim takes the entry over with its own server.
        assert_eq!(t.claim(k, 9, 500_000, 1_000), Claim::Holds(9));
        assert_eq!(t.get(key(4, 0x0A00_0002), 500_000), None, "another service");
        let live: Vec<_> = t.live(500_500).collect();
        assert_eq!(live, vec![(k, 9, 500)]);
    }

    #[test]
    fn full_around_a_key_is_reported_and_dead_entries_are_reused() {
        let t = Templates::new(PROBES);
        for c in 0..PROBES as u32 {
            assert_eq!(t.claim(key(0, c), 1, 0, 1_000), Claim::Holds(1));
        }
        assert_eq!(t.claim(key(0, 999), 1, 10, 1_000), Claim::Full);
        // Once they expire, the entries are free again.
        assert_eq!(t.claim(key(0, 999), 2, 1_000, 1_000), Claim::Holds(2));
        assert_eq!(t.get(key(0, 999), 1_001), Some(2));
    }

    #[test]
    fn racing_workers_agree_on_one_server() {
        for round in 0..50u32 {
            let t = Arc::new(Templates::new(1 << 10));
            let picks: Vec<u16> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4u16)
                    .map(|w| {
                        let t = Arc::clone(&t);
                        s.spawn(move || match t.claim(key(1, round), w + 1, 5, 10_000) {
                            Claim::Holds(rs) => rs,
                            Claim::Full => 0,
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(picks.iter().all(|&p| p == picks[0] && p != 0), "{picks:?}");
        }
    }
}
