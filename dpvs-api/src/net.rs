//! Small network value types and parsers shared by the CLI, the config file and the daemon, so
//! that `ADDR/LEN` and MAC addresses are accepted and printed the same way everywhere.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An Ethernet MAC address. On the wire and in text it is `02:00:00:00:00:11` (lower case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `00:00:00:00:00:00`, the unknown target hardware address of an ARP request.
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// The six bytes, in wire order.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// Whether the group bit (I/G, lowest bit of the first octet) is set; broadcast included.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether every octet is zero.
    pub fn is_zero(self) -> bool {
        self == Self::ZERO
    }

    /// Reads a MAC address from the first six bytes of `b`; `None` when shorter.
    pub fn from_slice(b: &[u8]) -> Option<MacAddr> {
        b.first_chunk::<6>().map(|a| MacAddr(*a))
    }
}

impl FromStr for MacAddr {
    type Err = String;
    /// Accepts six hexadecimal pairs separated by `:` or `-` (the two spellings users paste).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid MAC address {s:?} (expected xx:xx:xx:xx:xx:xx)");
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(mac))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses `ADDR/LEN` (e.g. `10.0.0.1/24`, `2001:db8::/32`), checking LEN against the family.
/// Host bits are allowed here: an interface address carries them; callers that need a network
/// prefix check [`host_bits_set`].
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("invalid prefix {s:?} (expected ADDR/LEN)"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("invalid prefix {s:?}: {addr:?} is not an IP address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("invalid prefix {s:?}: {len:?} is not a prefix length"))?;
    let max = max_prefix_len(addr);
    if len > max {
        return Err(format!(
            "invalid prefix {s:?}: length {len} is longer than {max}"
        ));
    }
    Ok((addr, len))
}

/// 32 for IPv4, 128 for IPv6.
pub fn max_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// True when `addr` has bits set beyond the first `len` bits, i.e. `addr/len` names a host
/// inside a network rather than the network itself (a route prefix must not).
pub fn host_bits_set(addr: IpAddr, len: u8) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let host_mask = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            bits & host_mask != 0
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let host_mask = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
            bits & host_mask != 0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "02:00:00:00:00:1A".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0, 0, 0, 0x1a]);
        assert_eq!(m.to_string(), "02:00:00:00:00:1a");
        assert_eq!("02-00-00-00-00-1a".parse::<MacAddr>().unwrap(), m);
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "0g:00:00:00:00:00",
            "2:0:0:0:0:0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn mac_serializes_as_string() {
        let m = MacAddr([2, 0, 0, 0, 0, 0x11]);
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(j, "\"02:00:00:00:00:11\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&j).unwrap(), m);
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("10.0.0.1/24").unwrap(),
            ("10.0.0.1".parse().unwrap(), 24)
        );
        assert!(parse_prefix("10.0.0.1").is_err());
        assert!(parse_prefix("10.0.0.1/33").is_err());
        assert!(parse_prefix("10.0.0/8").is_err());
        assert!(parse_prefix("2001:db8::/64").is_ok());
        assert!(host_bits_set("10.0.0.1".parse().unwrap(), 24));
        assert!(!host_bits_set("10.0.0.0".parse().unwrap(), 24));
        assert!(!host_bits_set("0.0.0.0".parse().unwrap(), 0));
        assert!(!host_bits_set("10.0.0.1".parse().unwrap(), 32));
        assert!(host_bits_set("2001:db8::1".parse().unwrap(), 64));
    }
}
