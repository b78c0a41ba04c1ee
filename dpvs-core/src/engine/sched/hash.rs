//! The hashes the hashing schedulers (`sh`, `mh`, `conhash`) map clients and servers with.
//!
//! Fixed functions with fixed constants, no per-run seed: the same client maps to the same
//! real server on every balancer and after every restart, which is the point of these
//! schedulers (several balancers behind ECMP must agree). A client can therefore aim at one
//! real server on purpose; that is inherent to source hashing, and the connection-table hash,
//! which a flood could target, is seeded per run instead.

use std::net::SocketAddrV4;

/// The SplitMix64 finalizer: a bijective mix whose every output bit depends on every input
/// bit.
#[inline]
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Maps `h` uniformly onto `0..n` (`n ≤ 2³²`) with a multiply instead of a division, from the
/// hash's high bits.
#[inline]
pub(crate) fn onto(h: u64, n: usize) -> usize {
    (((h >> 32) * n as u64) >> 32) as usize
}

/// Distinct constants keep the hashes of different uses apart.
const CLIENT: u64 = 0x243F_6A88_85A3_08D3;
const CLIENT_PORT: u64 = 0x1319_8A2E_0370_7344;
const TUPLE: u64 = 0xA409_3822_299F_31D0;

/// What a hashing scheduler may hash of a new connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientKey {
    /// The client's address and port (host byte order).
    pub addr: u32,
    pub port: u16,
    /// The IP protocol, and the service's address and port: with the client's, the 5-tuple.
    pub proto: u8,
    pub vip: u32,
    pub vport: u16,
}

impl ClientKey {
    /// The client address alone, or with its port (`sh-port`, `mh-port`).
    #[inline]
    pub fn hash(&self, with_port: bool) -> u64 {
        if with_port {
            mix((u64::from(self.addr) << 16 | u64::from(self.port)) ^ CLIENT_PORT)
        } else {
            mix(u64::from(self.addr) ^ CLIENT)
        }
    }

    /// The whole 5-tuple (`conhash-5tuple`).
    #[inline]
    pub fn tuple_hash(&self) -> u64 {
        let client = u64::from(self.addr) << 16 | u64::from(self.port);
        let service =
            u64::from(self.vip) << 24 | u64::from(self.vport) << 8 | u64::from(self.proto);
        mix(mix(client ^ TUPLE) ^ service)
    }
}

/// A real server's identity as a number: its address and port, and `salt` to draw several
/// independent hashes of one server.
pub(crate) fn server_hash(addr: SocketAddrV4, salt: u64) -> u64 {
    let id = u64::from(addr.ip().to_bits()) << 16 | u64::from(addr.port());
    mix(mix(id ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onto_covers_the_range_evenly() {
        let n = 7;
        let mut seen = [0u32; 7];
        for x in 0..70_000u64 {
            let i = onto(mix(x), n);
            assert!(i < n);
            seen[i] += 1;
        }
        assert!(
            seen.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{seen:?}"
        );
    }

    #[test]
    fn hashes_are_fixed_functions() {
        // The same inputs give the same numbers in every run: the balancers agree.
        let k = ClientKey {
            addr: 0x0A00_0002,
            port: 40_000,
            proto: 6,
            vip: 0x0A00_0064,
            vport: 80,
        };
        assert_eq!(k.hash(false), ClientKey { port: 1, ..k }.hash(false));
        assert_ne!(k.hash(true), ClientKey { port: 1, ..k }.hash(true));
        assert_ne!(k.tuple_hash(), ClientKey { vport: 81, ..k }.tuple_hash());
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161D_100B_05E5);
    }
}
