//! Rate limit for re-assertion, so that a fight with another manager cannot spin a CPU.
//!
//! Damage seen long after the last restore is repaired at once. Damage seen within `quiet` of
//! the last restore means someone is undoing our work: the next repair waits `initial`, then
//! twice as long each time the other side strikes again within `quiet`, up to `max`. Calm
//! returns (and the delay drops to zero) when damage next shows up more than `quiet` after a
//! restore.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    pub quiet: Duration,
}

/// What `on_damage` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Earliest time the repair may run.
    pub repair_at: Instant,
    /// This damage started a fight (the delay went from zero to non-zero).
    pub fight_started: bool,
    /// This damage ended a fight (calm again).
    pub fight_ended: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    cfg: BackoffConfig,
    delay: Duration,
}

impl Backoff {
    pub(crate) fn new(cfg: BackoffConfig) -> Self {
        Backoff {
            cfg,
            delay: Duration::ZERO,
        }
    }

    /// The current delay (zero when calm).
    pub(crate) fn delay(&self) -> Duration {
        self.delay
    }

    /// The last repair failed (the kernel refused something): retry after a growing delay
    /// rather than at every reconcile, so a refusal does not turn into a stream of attempts.
    pub(crate) fn on_failure(&mut self, now: Instant) -> Instant {
        self.delay = (self.delay * 2).clamp(self.cfg.initial, self.cfg.max);
        now + self.delay
    }

    /// Damage was first noticed at `seen`; the last restore ran at `last_restore`.
    pub(crate) fn on_damage(&mut self, seen: Instant, last_restore: Option<Instant>) -> Verdict {
        let fighting =
            last_restore.is_some_and(|last| seen.saturating_duration_since(last) < self.cfg.quiet);
        match (fighting, last_restore) {
            (true, Some(last)) => {
                let fight_started = self.delay.is_zero();
                self.delay = if fight_started {
                    self.cfg.initial
                } else {
                    (self.delay * 2).min(self.cfg.max)
                };
                Verdict {
                    repair_at: last + self.delay,
                    fight_started,
                    fight_ended: false,
                }
            }
            _ => {
                let fight_ended = !self.delay.is_zero();
                self.delay = Duration::ZERO;
                Verdict {
                    repair_at: seen,
                    fight_started: false,
                    fight_ended,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn cfg() -> BackoffConfig {
        BackoffConfig {
            initial: 100 * MS,
            max: 1000 * MS,
            quiet: 500 * MS,
        }
    }

    #[test]
    fn failures_back_off_too() {
        let mut b = Backoff::new(cfg());
        let t0 = Instant::now();
        assert_eq!(b.on_failure(t0), t0 + 100 * MS);
        assert_eq!(b.on_failure(t0), t0 + 200 * MS);
    }

    #[test]
    fn calm_damage_is_repaired_at_once() {
        let mut b = Backoff::new(cfg());
        let t0 = Instant::now();
        let v = b.on_damage(t0, None);
        assert_eq!(v.repair_at, t0);
        let v = b.on_damage(t0 + 2000 * MS, Some(t0));
        assert_eq!(v.repair_at, t0 + 2000 * MS);
        assert!(!v.fight_started);
    }

    #[test]
    fn a_fight_doubles_the_delay_up_to_max_then_calm_resets() {
        let mut b = Backoff::new(cfg());
        let mut last = Instant::now();
        let mut delays = Vec::new();
        let mut started = 0;
        for _ in 0..6 {
            let v = b.on_damage(last + 20 * MS, Some(last));
            started += usize::from(v.fight_started);
            delays.push(b.delay().as_millis());
            last = v.repair_at;
        }
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(started, 1);
        // The other side strikes 20 ms after a restore held back by the maximum delay: still a
        // fight, even though the gap between restores is longer than `quiet`.
        let v = b.on_damage(last + 20 * MS, Some(last));
        assert!(!v.fight_ended);
        let v = b.on_damage(v.repair_at + 5000 * MS, Some(v.repair_at));
        assert!(v.fight_ended);
        assert_eq!(b.delay(), Duration::ZERO);
    }
}
