//! The control protocol between `dpvs-ctl` and the `dpvs` daemon, and the domain names both
//! sides share: protocol, scheduler, forwarding mode, service key.
//!
//! - [`proto`]: the messages and how they travel, one concern a module:
//!   [`proto::wire`] (the versioned one-line JSON envelope, documented there; size limits;
//!   [`decode_request`], [`serve_line`], the daemon's per-line entry point),
//!   [`proto::request`] ([`Request`]), [`proto::response`] ([`Response`]) and
//!   [`proto::stats`] (the counters in answers, summed over workers with `+`). All of them are
//!   re-exported at the crate root.
//! - [`client`]: a blocking client ([`call`], [`Client`]) for the Unix control socket.
//! - `samples` (with the feature `test-util`): sample values for the tests of the protocol's
//!   users.
//! - [`net`]: MAC addresses and `ADDR/LEN` prefixes, parsed the same way by the CLI, the
//!   config file and the daemon.
//! - [`sched`]: schedulers, their flags, persistence, the Maglev table size.
#![forbid(unsafe_code)]

pub mod client;
pub mod net;
pub mod proto;
#[cfg(any(test, feature = "test-util"))]
pub mod samples;
pub mod sched;

pub use client::{Client, ClientError, call};
pub use net::{MacAddr, host_bits_set, max_prefix_len, parse_prefix};
pub use proto::*;
pub use sched::{
    MH_TABLE_DEFAULT, Persistence, Sched, SchedFlag, SchedFlags, check_mh_table_size, parse_netmask,
};

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Transport protocol of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(format!("unknown protocol {s:?} (expected tcp or udp)")),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Forwarding mode of a real server (the service gives the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// Full NAT: source and destination rewritten, replies come back to a local address.
    #[default]
    Fnat,
    /// Direct routing: only the destination MAC changes.
    Dr,
    /// IP-in-IP tunnel to the real server.
    Tun,
    /// Destination NAT: replies must route back through the balancer.
    Nat,
}

impl Forward {
    pub fn name(self) -> &'static str {
        match self {
            Forward::Fnat => "fnat",
            Forward::Dr => "dr",
            Forward::Tun => "tun",
            Forward::Nat => "nat",
        }
    }
    /// The column ipvsadm prints for this mode.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forward::Fnat => "FullNat",
            Forward::Dr => "Route",
            Forward::Tun => "Tunnel",
            Forward::Nat => "Masq",
        }
    }
}

impl FromStr for Forward {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fnat" => Ok(Forward::Fnat),
            "dr" => Ok(Forward::Dr),
            "tun" => Ok(Forward::Tun),
            "nat" => Ok(Forward::Nat),
            _ => Err(format!(
                "unknown forwarding mode {s:?} (expected fnat, dr, tun or nat)"
            )),
        }
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A service's name: `PROTO:VIP:PORT`, e.g. `tcp:10.0.0.100:80` or `udp:[2001:db8::1]:53`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub proto: Proto,
    pub vip: IpAddr,
    pub port: u16,
}

impl FromStr for ServiceKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (proto, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("invalid service {s:?} (expected PROTO:VIP:PORT)"))?;
        let proto: Proto = proto.parse()?;
        let addr: SocketAddr = rest.parse().map_err(|_| {
            format!("invalid service {s:?} (expected PROTO:VIP:PORT, IPv6 as [ADDR]:PORT)")
        })?;
        Ok(ServiceKey {
            proto,
            vip: addr.ip(),
            port: addr.port(),
        })
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.proto, SocketAddr::new(self.vip, self.port))
    }
}

impl Serialize for ServiceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ServiceKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_key_round_trips() {
        for s in ["tcp:10.0.0.100:80", "udp:[2001:db8::1]:53"] {
            let k: ServiceKey = s.parse().unwrap();
            assert_eq!(k.to_string(), s);
        }
        assert!("tcp:10.0.0.100".parse::<ServiceKey>().is_err());
        assert!("sctp:10.0.0.1:80".parse::<ServiceKey>().is_err());
    }
}
