//! `conhash`: a consistent-hash ring. Each real server stands on the ring at many points
//! (virtual nodes, in proportion to its weight), each point a hash of its address, port and the
//! point's number; a client hashed onto the ring goes to the first server at or after its
//! hash. Adding or removing a server moves only the clients between its points and the ones
//! before them. Clients hash by address, or with `conhash-5tuple` by the whole 5-tuple.
//!
//! A server over its connection limit passes its clients to the next server along the ring,
//! as a missing one would.

use super::cycle::{reduce, scale};
use super::hash::{ClientKey, server_hash};
use super::{Load, Server, sorted, weighted};

/// Virtual nodes per weight unit (after the weights are divided by their gcd).
const NODES_PER_UNIT: u64 = 160;
/// At most this many points on one ring (2 MiB).
const MAX_POINTS: u64 = 1 << 18;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// (position, server), sorted by position then by the server's address.
    points: Box<[(u32, u16)]>,
    by_tuple: bool,
}

impl Ring {
    pub fn new(servers: &[Server], by_tuple: bool) -> Ring {
        let order = sorted(servers);
        let live = weighted(servers, &order);
        let units = reduce(&scale(&reduce(&live), MAX_POINTS / NODES_PER_UNIT));
        let mut points = Vec::new();
        for (k, w) in units {
            let i = order[usize::from(k)];
            let addr = servers[usize::from(i)].addr;
            for node in 0..w * NODES_PER_UNIT {
                points.push(((server_hash(addr, node) >> 32) as u32, k, i));
            }
        }
        // Ties between two servers' points go to the lower address, in any config order.
        points.sort_unstable();
        Ring {
            points: points.into_iter().map(|(p, _, i)| (p, i)).collect(),
            by_tuple,
        }
    }

    /// The first available server at or after the client's point, wrapping around.
    pub fn pick(&self, client: &ClientKey, load: &impl Load) -> Option<u16> {
        let n = self.points.len();
        if n == 0 {
            return None;
        }
        let h = if self.by_tuple {
            client.tuple_hash()
        } else {
            client.hash(false)
        };
        let at = self.points.partition_point(|&(p, _)| p < (h >> 32) as u32);
        (0..n)
            .map(|k| self.points[(at + k) % n].1)
            .find(|&i| !load.overloaded(i))
    }

    /// How many points each server has (tests).
    pub fn points(&self) -> &[(u32, u16)] {
        &self.points
    }
}

#[cfg(test)]
mod tests {
    use super::super::NoLoad;
    use super::super::tests::{servers, shuffled};
    use super::*;

    fn key(a: u32) -> ClientKey {
        ClientKey {
            addr: a.wrapping_mul(2_654_435_761),
            port: (a % 50_000) as u16,
            proto: 6,
            vip: 1,
            vport: 80,
        }
    }

    #[test]
    fn points_follow_the_weights_and_clients_spread() {
        let s = servers(&[1, 2, 0, 1]);
        let r = Ring::new(&s, false);
        let count = |i| r.points().iter().filter(|p| p.1 == i).count() as u64;
        assert_eq!([count(0), count(1), count(2), count(3)], [160, 320, 0, 160]);
        let mut hits = [0u32; 4];
        for a in 0..40_000 {
            hits[usize::from(r.pick(&key(a), &NoLoad).unwrap())] += 1;
        }
        assert_eq!(hits[2], 0);
        // Roughly 1:2:1 (virtual nodes keep the spread within some percent).
        assert!((8_000..12_000).contains(&hits[0]), "{hits:?}");
        assert!((16_000..24_000).contains(&hits[1]), "{hits:?}");
    }

    #[test]
    fn removing_a_server_moves_only_its_clients() {
        let s = servers(&[1, 1, 1, 1, 1]);
        let before = Ring::new(&s, true);
        let mut rest = s.clone();
        rest[2].weight = 0;
        let after = Ring::new(&rest, true);
        for a in 0..5_000 {
            let (b, c) = (
                before.pick(&key(a), &NoLoad).unwrap(),
                after.pick(&key(a), &NoLoad),
            );
            if b != 2 {
                assert_eq!(c, Some(b), "client {a} moved off a server that stayed");
            }
        }
    }

    #[test]
    fn a_client_maps_to_the_same_server_in_any_config_order() {
        let s = servers(&[2, 1, 3, 1, 1, 4]);
        let (u, perm) = shuffled(&s, 11);
        for by_tuple in [false, true] {
            let a = Ring::new(&s, by_tuple);
            let b = Ring::new(&u, by_tuple);
            for c in 0..2_000 {
                let (x, y) = (
                    a.pick(&key(c), &NoLoad).unwrap(),
                    b.pick(&key(c), &NoLoad).unwrap(),
                );
                assert_eq!(x, perm[usize::from(y)]);
            }
        }
    }
}
