//! `sh`, source hashing: the client's address (with `sh-port`, also its port) hashed onto a
//! table of buckets, each holding a real server, in proportion to the weights.
//!
//! As in IPVS, a real server with weight 0 keeps its buckets (one weight unit's worth) but is
//! unavailable, like one over its connection limit: its clients are refused, or with
//! `sh-fallback` passed on to the next available bucket's server. So draining one server does
//! not move anybody else's clients. The servers are laid out in the order of their addresses,
//! not of the configuration, so the same set of servers gives the same table anywhere.

use super::cycle::{reduce, scale, smooth_wrr};
use super::hash::{ClientKey, onto};
use super::{Load, Server, sorted};

/// At least this many buckets (IPVS's table size), so few servers still spread evenly.
const MIN_BUCKETS: u64 = 256;
/// At most this many weight units in one pass over the servers.
const MAX_UNITS: u64 = 1 << 16;
/// Marks a bucket whose server has weight 0.
const DRAINED: u16 = 1 << 15;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceHash {
    /// Server index per bucket (`| DRAINED` for weight 0). Only the first 32768 servers can be
    /// indexed.
    buckets: Box<[u16]>,
    by_port: bool,
    fallback: bool,
}

impl SourceHash {
    pub fn new(servers: &[Server], by_port: bool, fallback: bool) -> SourceHash {
        // Weight 0 counts as 1 in the layout (and is marked unavailable below).
        let units: Vec<(u16, u64)> = sorted(servers)
            .into_iter()
            .filter(|&i| i < DRAINED)
            .map(|i| (i, u64::from(servers[usize::from(i)].weight.max(1))))
            .collect();
        let units = reduce(&scale(&reduce(&units), MAX_UNITS));
        let pass = smooth_wrr(&units);
        let passes = if pass.is_empty() {
            0
        } else {
            MIN_BUCKETS.div_ceil(pass.len() as u64) as usize
        };
        let buckets = pass
            .iter()
            .cycle()
            .take(pass.len() * passes)
            .map(|&i| {
                if servers[usize::from(i)].weight == 0 {
                    i | DRAINED
                } else {
                    i
                }
            })
            .collect();
        SourceHash {
            buckets,
            by_port,
            fallback,
        }
    }

    /// The client's server: its bucket's if available; else, with fallback, the first
    /// available one in the buckets after it.
    pub fn pick(&self, client: &ClientKey, load: &impl Load) -> Option<u16> {
        let n = self.buckets.len();
        if n == 0 {
            return None;
        }
        let home = onto(client.hash(self.by_port), n);
        let reach = if self.fallback { n } else { 1 };
        (0..reach)
            .map(|k| self.buckets[(home + k) % n])
            .find(|&b| b & DRAINED == 0 && !load.overloaded(b))
    }

    /// The buckets (tests).
    pub fn buckets(&self) -> &[u16] {
        &self.buckets
    }
}

#[cfg(test)]
mod tests {
    use super::super::NoLoad;
    use super::super::tests::{servers, shuffled};
    use super::*;

    fn share(t: &SourceHash, i: u16) -> usize {
        t.buckets().iter().filter(|&&b| b & !DRAINED == i).count()
    }

    #[test]
    fn buckets_follow_the_weights() {
        let s = servers(&[1, 2, 3, 0]);
        let t = SourceHash::new(&s, false, false);
        assert!(t.buckets().len() >= 256);
        let unit = share(&t, 0);
        assert_eq!(
            [share(&t, 1), share(&t, 2), share(&t, 3)],
            [2 * unit, 3 * unit, unit]
        );
        assert!(
            t.buckets()
                .iter()
                .all(|&b| (b & DRAINED != 0) == (b & !DRAINED == 3))
        );
    }

    #[test]
    fn a_client_keeps_its_server_and_drained_ones_refuse_or_fall_back() {
        let s = servers(&[1, 1, 1, 1]);
        let t = SourceHash::new(&s, false, false);
        let c = |addr| ClientKey {
            addr,
            port: 1,
            ..ClientKey::default()
        };
        let picks: Vec<_> = (0..64).map(|a| t.pick(&c(a), &NoLoad).unwrap()).collect();
        let again: Vec<_> = (0..64).map(|a| t.pick(&c(a), &NoLoad).unwrap()).collect();
        assert_eq!(picks, again);
        // Another port of the same client: the same server (no sh-port).
        assert_eq!(
            t.pick(&ClientKey { port: 9, ..c(5) }, &NoLoad),
            t.pick(&c(5), &NoLoad)
        );

        let mut drained = s.clone();
        drained[picks[0] as usize].weight = 0;
        let strict = SourceHash::new(&drained, false, false);
        assert_eq!(
            strict.pick(&c(0), &NoLoad),
            None,
            "refused without fallback"
        );
        let lenient = SourceHash::new(&drained, false, true);
        let other = lenient.pick(&c(0), &NoLoad).unwrap();
        assert_ne!(other, picks[0]);
        // Nobody else moved.
        for a in 0..64 {
            if picks[a as usize] != picks[0] {
                assert_eq!(strict.pick(&c(a), &NoLoad), Some(picks[a as usize]));
            }
        }
    }

    #[test]
    fn the_table_does_not_depend_on_the_order_of_the_config() {
        let s = servers(&[3, 1, 2, 5, 1]);
        let t = SourceHash::new(&s, true, false);
        let (u, perm) = shuffled(&s, 7);
        let tu = SourceHash::new(&u, true, false);
        for a in 0..500u32 {
            let k = ClientKey {
                addr: a.wrapping_mul(2_654_435_761),
                port: a as u16,
                ..ClientKey::default()
            };
            let i = t.pick(&k, &NoLoad).unwrap();
            let j = tu.pick(&k, &NoLoad).unwrap();
            assert_eq!(s[usize::from(i)].addr, u[usize::from(j)].addr);
            assert_eq!(perm[usize::from(j)], i);
        }
    }
}
