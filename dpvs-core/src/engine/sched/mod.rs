//! Schedulers: which real server a service's new connection goes to.
//!
//! The control thread compiles a service's scheduler, flags and real servers into a
//! [`Schedule`] once per change, off the fast path, and publishes it in the snapshot; workers
//! share it read-only. What a pick needs beyond it comes from the worker: its cursor (`rr`,
//! `wrr`), the client (`sh`, `mh`, `conhash`) and its view of the real servers' load
//! ([`Load`]: connection counts for `wlc`/`lc`, and which servers are over their limits).
//!
//! | scheduler | module | a pick costs |
//! |---|---|---|
//! | `rr`, `wrr` | [`cycle`] | one table read |
//! | `wlc`, `lc` | [`least`] (in the worker's load view) | the tree's root; `log₂ n` to account the new connection |
//! | `sh` | [`source`] | a hash and a table read |
//! | `mh` | [`maglev`] | a hash and a table read |
//! | `conhash` | [`ring`] | a hash and a binary search over the virtual nodes |
//! | `fo` | here | the first available server in weight order |
//!
//! Unavailable servers (weight 0, or over their connection limit) are skipped by every
//! scheduler; `sh` and `mh` refuse the client instead unless their fallback flag is set, since
//! sending it elsewhere breaks its affinity.

pub mod cycle;
pub mod hash;
pub mod least;
pub mod maglev;
pub mod ring;
pub mod source;

use std::net::SocketAddrV4;

use dpvs_api::{Sched, SchedFlags};

pub use cycle::{Cycle, MAX_TABLE};
pub use hash::ClientKey;
pub use least::{LeastTree, overhead};
pub use maglev::Maglev;
pub use ring::Ring;
pub use source::SourceHash;

/// A real server as a scheduler sees it (indexed like the service's list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Server {
    pub addr: SocketAddrV4,
    pub weight: u32,
}

/// A worker's view of the real servers' load.
pub trait Load {
    /// Whether server `i` is over its connection limit.
    fn overloaded(&self, i: u16) -> bool;
    /// The least-loaded available server (`wlc`, `lc`).
    fn least(&self) -> Option<u16>;
}

/// No load view: no limits, no counts (a service that needs neither).
pub struct NoLoad;

impl Load for NoLoad {
    #[inline]
    fn overloaded(&self, _: u16) -> bool {
        false
    }
    fn least(&self) -> Option<u16> {
        None
    }
}

/// A service's compiled scheduler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// `rr`, `wrr`.
    Cycle(Cycle),
    /// `wlc` (weighted) and `lc`: decided by the worker's load view.
    Least {
        weighted: bool,
    },
    Source(SourceHash),
    Maglev(Maglev),
    Ring(Ring),
    /// `fo`: the servers with weight > 0, heaviest first (ties in list order).
    Failover(Box<[u16]>),
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Cycle(Cycle::default())
    }
}

impl Schedule {
    /// Compiles `sched` with `flags` over `servers`; `mh_size` is the Maglev table's size.
    /// Config-time: allocates (a Maglev table is `2 × mh_size` bytes).
    pub fn new(sched: Sched, flags: SchedFlags, mh_size: u32, servers: &[Server]) -> Schedule {
        let weights = || servers.iter().map(|s| s.weight).collect::<Vec<_>>();
        match sched {
            Sched::Rr => Schedule::Cycle(Cycle::new(&weights(), false)),
            Sched::Wrr => Schedule::Cycle(Cycle::new(&weights(), true)),
            Sched::Wlc => Schedule::Least { weighted: true },
            Sched::Lc => Schedule::Least { weighted: false },
            Sched::Sh => Schedule::Source(SourceHash::new(servers, flags.port, flags.fallback)),
            Sched::Mh => {
                Schedule::Maglev(Maglev::new(servers, mh_size, flags.port, flags.fallback))
            }
            Sched::Conhash => Schedule::Ring(Ring::new(servers, flags.port)),
            Sched::Fo => Schedule::Failover(failover_order(servers)),
        }
    }

    /// Picks a server for a new connection of `client`; `cursor` is the worker's position in
    /// a cycle. `None` when no server is available (or, for `sh`/`mh` without fallback, the
    /// client's is not).
    #[inline]
    pub fn pick(&self, cursor: &mut u32, client: &ClientKey, load: &impl Load) -> Option<u16> {
        match self {
            Schedule::Cycle(c) => c.pick_available(cursor, |i| !load.overloaded(i)),
            Schedule::Least { .. } => load.least(),
            Schedule::Source(t) => t.pick(client, load),
            Schedule::Maglev(t) => t.pick(client, load),
            Schedule::Ring(r) => r.pick(client, load),
            Schedule::Failover(order) => order.iter().copied().find(|&i| !load.overloaded(i)),
        }
    }

    /// Where worker `worker` of `workers` starts in a cycle (see [`Cycle::start_cursor`]).
    pub fn start_cursor(&self, worker: u16, workers: u16) -> u32 {
        match self {
            Schedule::Cycle(c) => c.start_cursor(worker, workers),
            _ => 0,
        }
    }

    /// Whether picks depend on the real servers' connection counts.
    pub fn by_load(&self) -> bool {
        matches!(self, Schedule::Least { .. })
    }
}

/// `fo`'s order: weight descending, then list order.
fn failover_order(servers: &[Server]) -> Box<[u16]> {
    let mut live: Vec<(u16, u64)> =
        cycle::live(&servers.iter().map(|s| s.weight).collect::<Vec<_>>());
    live.sort_by_key(|&(i, w)| (std::cmp::Reverse(w), i));
    live.into_iter().map(|(i, _)| i).collect()
}

/// The servers' indices in the order of their addresses and ports: what the hashing schedulers
/// lay out, so that the configuration's order does not matter.
pub(crate) fn sorted(servers: &[Server]) -> Vec<u16> {
    let mut order: Vec<u16> = (0..servers.len().min(usize::from(u16::MAX)) as u16).collect();
    order.sort_by_key(|&i| {
        let a = servers[usize::from(i)].addr;
        (a.ip().to_bits(), a.port())
    });
    order
}

/// The servers of weight > 0 in `order` (from [`sorted`]), as (position in `order`, weight):
/// what the weighted tables are laid out from.
pub(crate) fn weighted(servers: &[Server], order: &[u16]) -> Vec<(u16, u64)> {
    order
        .iter()
        .enumerate()
        .filter(|&(_, &i)| servers[usize::from(i)].weight > 0)
        .map(|(k, &i)| (k as u16, u64::from(servers[usize::from(i)].weight)))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Servers 10.1.x.y:80 with these weights, in a scrambled address order.
    pub(crate) fn servers(weights: &[u32]) -> Vec<Server> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| {
                let k = (i as u32).wrapping_mul(2_654_435_761) >> 16;
                Server {
                    addr: SocketAddrV4::new(Ipv4Addr::from_bits(0x0A01_0000 | k), 80),
                    weight,
                }
            })
            .collect()
    }

    /// `s` in another order, and for each new position the old index.
    pub(crate) fn shuffled(s: &[Server], seed: u64) -> (Vec<Server>, Vec<u16>) {
        let mut perm: Vec<u16> = (0..s.len() as u16).collect();
        perm.sort_by_key(|&i| hash::mix(u64::from(i) ^ seed));
        (perm.iter().map(|&i| s[usize::from(i)]).collect(), perm)
    }

    /// Marks the servers in `down` overloaded.
    struct Down(Vec<u16>);
    impl Load for Down {
        fn overloaded(&self, i: u16) -> bool {
            self.0.contains(&i)
        }
        fn least(&self) -> Option<u16> {
            None
        }
    }

    #[test]
    fn failover_takes_the_heaviest_available() {
        let s = Schedule::new(
            Sched::Fo,
            SchedFlags::default(),
            0,
            &servers(&[2, 5, 5, 0, 1]),
        );
        let k = ClientKey::default();
        let mut c = 0;
        assert_eq!(
            s.pick(&mut c, &k, &NoLoad),
            Some(1),
            "ties go to the first listed"
        );
        assert_eq!(s.pick(&mut c, &k, &Down(vec![1])), Some(2));
        assert_eq!(s.pick(&mut c, &k, &Down(vec![1, 2])), Some(0));
        assert_eq!(s.pick(&mut c, &k, &Down(vec![0, 1, 2, 4])), None);
    }

    #[test]
    fn cycles_skip_servers_over_their_limit() {
        let s = Schedule::new(Sched::Rr, SchedFlags::default(), 0, &servers(&[1, 1, 1]));
        let k = ClientKey::default();
        let mut c = 0;
        let picks: Vec<_> = (0..4)
            .map(|_| s.pick(&mut c, &k, &Down(vec![1])).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
        assert_eq!(s.pick(&mut c, &k, &Down(vec![0, 1, 2])), None);
    }

    #[test]
    fn every_scheduler_compiles_and_picks_a_live_server() {
        let srv = servers(&[1, 0, 2, 3]);
        for sched in Sched::ALL {
            let s = Schedule::new(sched, SchedFlags::default(), 251, &srv);
            let mut c = 0;
            for a in 0..50 {
                let k = ClientKey {
                    addr: a,
                    ..ClientKey::default()
                };
                match s.pick(&mut c, &k, &NoLoad) {
                    Some(i) => assert_ne!(i, 1, "{sched}: weight 0 picked"),
                    // wlc/lc pick from the worker's view; sh refuses the clients of a drained
                    // server (its buckets stay) unless sh-fallback is set.
                    None => assert!(s.by_load() || sched == Sched::Sh, "{sched}: nothing picked"),
                }
            }
        }
    }
}
