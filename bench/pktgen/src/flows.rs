//! The flow space: flow index ↔ client (address, port), and the order flows are visited in.
//!
//! Flows are pure arithmetic on their index (no per-flow storage to build or walk), so
//! 10 million concurrent flows cost nothing until a per-flow table is wanted.

use std::net::Ipv4Addr;

/// First client source port: ports below are left alone (well-known range).
pub const PORT_MIN: u16 = 1024;
/// Client source ports per client address.
pub const PORTS_PER_IP: u32 = 65536 - PORT_MIN as u32;

/// `n` client endpoints: address `base + i / PORTS_PER_IP`, port `PORT_MIN + i % PORTS_PER_IP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSpace {
    /// First client address.
    pub base: Ipv4Addr,
    /// Number of flows (at least 1).
    pub n: u32,
}

impl FlowSpace {
    /// A space of `n` flows (0 is taken as 1) from `base`.
    pub fn new(base: Ipv4Addr, n: u32) -> Self {
        FlowSpace { base, n: n.max(1) }
    }

    /// The client endpoint of flow `i` (`i < n`).
    #[inline]
    pub fn endpoint(&self, i: u32) -> (Ipv4Addr, u16) {
        let ip = self.base.to_bits().wrapping_add(i / PORTS_PER_IP);
        let port = PORT_MIN as u32 + i % PORTS_PER_IP;
        (Ipv4Addr::from_bits(ip), port as u16)
    }

    /// The flow index of a client endpoint, `None` when it is not one of ours.
    #[inline]
    pub fn index(&self, ip: Ipv4Addr, port: u16) -> Option<u32> {
        let k = ip.to_bits().checked_sub(self.base.to_bits())?;
        let p = u32::from(port.checked_sub(PORT_MIN)?);
        let i = k.checked_mul(PORTS_PER_IP)?.checked_add(p)?;
        (i < self.n).then_some(i)
    }

    /// Number of client addresses the space spans.
    pub fn addresses(&self) -> u32 {
        self.n.div_ceil(PORTS_PER_IP)
    }
}

/// The order in which flows get packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// 0, 1, 2, ... n-1, 0, ...: each flow once per round, best case for caches at small n.
    Sequential,
    /// Uniformly random: the worst case for the balancer's connection-table caches.
    Random,
}

/// Yields flow indexes in an [`Order`] without allocating.
#[derive(Clone, Debug)]
pub struct FlowCursor {
    order: Order,
    n: u32,
    next: u32,
    rng: u64,
}

impl FlowCursor {
    /// A cursor over `n` flows; `seed` makes random runs reproducible.
    pub fn new(order: Order, n: u32, seed: u64) -> Self {
        FlowCursor {
            order,
            n: n.max(1),
            next: 0,
            rng: seed | 1,
        }
    }

    /// The next flow index.
    #[inline]
    pub fn next_flow(&mut self) -> u32 {
        match self.order {
            Order::Sequential => {
                let i = self.next;
                self.next = if i + 1 >= self.n { 0 } else { i + 1 };
                i
            }
            Order::Random => {
                // xorshift64*, then Lemire's multiply-shift reduction (no division).
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
                ((r * u64::from(self.n)) >> 32) as u32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_and_index_are_inverse() {
        let s = FlowSpace::new(Ipv4Addr::new(10, 1, 0, 0), 10_000_000);
        for i in [0, 1, PORTS_PER_IP - 1, PORTS_PER_IP, 9_999_999] {
            let (ip, port) = s.endpoint(i);
            assert!(port >= PORT_MIN);
            assert_eq!(s.index(ip, port), Some(i));
        }
        assert_eq!(
            s.endpoint(PORTS_PER_IP),
            (Ipv4Addr::new(10, 1, 0, 1), PORT_MIN)
        );
        assert_eq!(s.index(Ipv4Addr::new(10, 0, 255, 255), 2000), None);
        assert_eq!(s.index(Ipv4Addr::new(10, 1, 0, 0), 80), None);
        assert_eq!(s.index(Ipv4Addr::new(10, 1, 200, 0), 2000), None);
        assert_eq!(s.addresses(), 156);
    }

    #[test]
    fn cursors_stay_in_range_and_cover() {
        let mut c = FlowCursor::new(Order::Sequential, 3, 1);
        let v: Vec<u32> = (0..7).map(|_| c.next_flow()).collect();
        assert_eq!(v, [0, 1, 2, 0, 1, 2, 0]);
        let mut r = FlowCursor::new(Order::Random, 100, 42);
        let mut seen = [false; 100];
        for _ in 0..10_000 {
            let i = r.next_flow();
            assert!(i < 100);
            seen[i as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
