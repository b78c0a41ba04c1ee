//! How a service chooses real servers: the scheduler, its flags, persistence and the Maglev
//! table size, with IPVS's names and the checks shared by the CLI, the config file and the
//! daemon.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Scheduler of a service (IPVS's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sched {
    /// Round robin over real servers with weight > 0.
    Rr,
    /// Weighted round robin (smooth interleaving).
    Wrr,
    /// Weighted least-connection: the least `(active × 256 + inactive) / weight` (ipvsadm's
    /// default).
    #[default]
    Wlc,
    /// Least-connection: the least `active × 256 + inactive`.
    Lc,
    /// Source hashing: a client address always maps to the same real server.
    Sh,
    /// Maglev hashing: consistent hashing with near-perfect balance and minimal disruption.
    Mh,
    /// Consistent-hash ring with virtual nodes.
    Conhash,
    /// Weighted fail-over: the available real server with the highest weight takes all.
    Fo,
}

impl Sched {
    pub const ALL: [Sched; 8] = [
        Sched::Rr,
        Sched::Wrr,
        Sched::Wlc,
        Sched::Lc,
        Sched::Sh,
        Sched::Mh,
        Sched::Conhash,
        Sched::Fo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Sched::Rr => "rr",
            Sched::Wrr => "wrr",
            Sched::Wlc => "wlc",
            Sched::Lc => "lc",
            Sched::Sh => "sh",
            Sched::Mh => "mh",
            Sched::Conhash => "conhash",
            Sched::Fo => "fo",
        }
    }

    /// The flags this scheduler takes, by name.
    pub fn flag_names(self) -> &'static [(&'static str, SchedFlag)] {
        match self {
            Sched::Sh => &[
                ("sh-fallback", SchedFlag::Fallback),
                ("sh-port", SchedFlag::Port),
            ],
            Sched::Mh => &[
                ("mh-fallback", SchedFlag::Fallback),
                ("mh-port", SchedFlag::Port),
            ],
            Sched::Conhash => &[("conhash-5tuple", SchedFlag::Port)],
            _ => &[],
        }
    }

    /// Whether the scheduler balances by the real servers' connection counts.
    pub fn by_load(self) -> bool {
        matches!(self, Sched::Wlc | Sched::Lc)
    }
}

impl FromStr for Sched {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Sched::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Sched::ALL.iter().map(|k| k.name()).collect();
                format!("unknown scheduler {s:?} (supported: {})", known.join(", "))
            })
    }
}

impl fmt::Display for Sched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One scheduler flag, as IPVS's generic flags: what it means depends on the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedFlag {
    /// `sh-fallback`, `mh-fallback`: a client whose real server is unavailable (weight 0 or
    /// over its connection limit) goes to another one instead of being refused.
    Fallback,
    /// `sh-port`, `mh-port`: hash the client's port too; `conhash-5tuple`: hash the whole
    /// 5-tuple instead of the client address.
    Port,
}

/// A service's scheduler flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchedFlags {
    #[serde(default, skip_serializing_if = "is_false")]
    pub fallback: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub port: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl SchedFlags {
    pub fn is_empty(&self) -> bool {
        *self == SchedFlags::default()
    }

    fn set(&mut self, f: SchedFlag) {
        match f {
            SchedFlag::Fallback => self.fallback = true,
            SchedFlag::Port => self.port = true,
        }
    }

    fn has(&self, f: SchedFlag) -> bool {
        match f {
            SchedFlag::Fallback => self.fallback,
            SchedFlag::Port => self.port,
        }
    }

    /// Parses `sh-port,sh-fallback` (ipvsadm's `-b`) for scheduler `sched`; an empty string
    /// is no flag.
    pub fn parse(sched: Sched, text: &str) -> Result<SchedFlags, String> {
        let mut flags = SchedFlags::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let flag = sched
                .flag_names()
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| unknown_flag(sched, name))?;
            flags.set(flag.1);
        }
        Ok(flags)
    }

    /// Checks that every flag set is one `sched` takes (after a scheduler change, say).
    pub fn check(&self, sched: Sched) -> Result<(), String> {
        for (f, generic) in [(SchedFlag::Fallback, "fallback"), (SchedFlag::Port, "port")] {
            if self.has(f) && !sched.flag_names().iter().any(|(_, g)| *g == f) {
                return Err(unknown_flag(sched, generic));
            }
        }
        Ok(())
    }

    /// The flags' names for `sched`, comma-separated (`sh-fallback,sh-port`).
    pub fn names(&self, sched: Sched) -> String {
        let names: Vec<&str> = sched
            .flag_names()
            .iter()
            .filter(|(_, f)| self.has(*f))
            .map(|(n, _)| *n)
            .collect();
        names.join(",")
    }
}

fn unknown_flag(sched: Sched, name: &str) -> String {
    let known: Vec<&str> = sched.flag_names().iter().map(|(n, _)| *n).collect();
    if known.is_empty() {
        format!("scheduler {sched} takes no flags (got {name:?})")
    } else {
        format!(
            "unknown flag {name:?} for scheduler {sched} (supported: {})",
            known.join(", ")
        )
    }
}

/// A persistent service: a client (its address under the netmask) keeps its real server for
/// `timeout` seconds after its last connection (ipvsadm's `-p TIMEOUT -M NETMASK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Persistence {
    /// Seconds, 1..=MAX_PERSISTENT.
    pub timeout: u32,
    /// Prefix length of the client netmask, 0..=32 (32: each client address on its own).
    #[serde(default = "full_mask")]
    pub netmask: u8,
}

fn full_mask() -> u8 {
    32
}

/// Longest persistence timeout, as the connection timeouts' (23 days in milliseconds fits the
/// engine's 32-bit deadlines).
pub const MAX_PERSISTENT: u32 = 2_000_000;

impl Persistence {
    /// Checks the ranges; the error says what is wrong.
    pub fn new(timeout: u32, netmask: u8) -> Result<Persistence, String> {
        if !(1..=MAX_PERSISTENT).contains(&timeout) {
            return Err(format!(
                "persistence timeout {timeout} is out of range (1..={MAX_PERSISTENT} seconds)"
            ));
        }
        if netmask > 32 {
            return Err(format!("netmask /{netmask} is out of range (0..=32)"));
        }
        Ok(Persistence { timeout, netmask })
    }

    /// The netmask as ipvsadm prints it (`255.255.255.0`).
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(
            u32::MAX
                .checked_shl(32 - u32::from(self.netmask))
                .unwrap_or(0),
        )
    }
}

/// Parses a netmask given as a dotted mask (`255.255.255.0`, contiguous) or a prefix length
/// (`24`, `/24`).
pub fn parse_netmask(text: &str) -> Result<u8, String> {
    let t = text.trim().trim_start_matches('/');
    if let Ok(len) = t.parse::<u8>() {
        return if len <= 32 {
            Ok(len)
        } else {
            Err(format!("netmask /{len} is out of range (0..=32)"))
        };
    }
    let mask: Ipv4Addr = t
        .parse()
        .map_err(|_| format!("invalid netmask {text:?} (expected 255.255.255.0 or 24)"))?;
    let bits = mask.to_bits();
    let len = bits.leading_ones();
    if bits.checked_shl(len).unwrap_or(0) != 0 {
        return Err(format!("netmask {text} is not contiguous"));
    }
    Ok(len as u8)
}

/// The default Maglev lookup-table size: a prime, as the Maglev paper asks, about 65 K.
pub const MH_TABLE_DEFAULT: u32 = 65_537;
/// Bounds of the Maglev table size: at least a few entries per real server, at most 4 MiB of
/// table per service.
pub const MH_TABLE_MIN: u32 = 251;
pub const MH_TABLE_MAX: u32 = 2_097_143;

/// Checks a Maglev table size: a prime within the bounds.
pub fn check_mh_table_size(m: u32) -> Result<u32, String> {
    if !(MH_TABLE_MIN..=MH_TABLE_MAX).contains(&m) {
        return Err(format!(
            "Maglev table size {m} is out of range ({MH_TABLE_MIN}..={MH_TABLE_MAX})"
        ));
    }
    if !is_prime(m) {
        return Err(format!("Maglev table size {m} is not a prime"));
    }
    Ok(m)
}

fn is_prime(n: u32) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known() {
        for s in Sched::ALL {
            assert_eq!(s.name().parse::<Sched>(), Ok(s));
        }
        assert_eq!(Sched::default(), Sched::Wlc);
        let e = "lblc".parse::<Sched>().unwrap_err();
        assert_eq!(
            e,
            "unknown scheduler \"lblc\" (supported: rr, wrr, wlc, lc, sh, mh, conhash, fo)"
        );
    }

    #[test]
    fn flags_belong_to_their_scheduler() {
        let f = SchedFlags::parse(Sched::Sh, "sh-port, sh-fallback").unwrap();
        assert!(f.port && f.fallback);
        assert_eq!(f.names(Sched::Sh), "sh-fallback,sh-port");
        assert_eq!(f.names(Sched::Mh), "mh-fallback,mh-port");
        assert_eq!(
            SchedFlags::parse(Sched::Mh, "sh-port").unwrap_err(),
            "unknown flag \"sh-port\" for scheduler mh (supported: mh-fallback, mh-port)"
        );
        assert_eq!(
            SchedFlags::parse(Sched::Rr, "sh-port").unwrap_err(),
            "scheduler rr takes no flags (got \"sh-port\")"
        );
        assert_eq!(SchedFlags::parse(Sched::Rr, ""), Ok(SchedFlags::default()));
        let c = SchedFlags::parse(Sched::Conhash, "conhash-5tuple").unwrap();
        assert!(c.port && c.check(Sched::Conhash).is_ok());
        assert!(
            f.check(Sched::Conhash).is_err(),
            "conhash has no fallback flag"
        );
        assert!(f.check(Sched::Wlc).is_err());
    }

    #[test]
    fn netmasks_dotted_or_lengths() {
        assert_eq!(parse_netmask("255.255.255.0"), Ok(24));
        assert_eq!(parse_netmask("24"), Ok(24));
        assert_eq!(parse_netmask("/16"), Ok(16));
        assert_eq!(parse_netmask("0.0.0.0"), Ok(0));
        assert_eq!(parse_netmask("255.255.255.255"), Ok(32));
        assert!(
            parse_netmask("255.0.255.0")
                .unwrap_err()
                .contains("not contiguous")
        );
        assert!(parse_netmask("33").unwrap_err().contains("out of range"));
        assert!(parse_netmask("x").is_err());
        let p = Persistence::new(300, 24).unwrap();
        assert_eq!(p.mask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(
            Persistence::new(300, 0).unwrap().mask(),
            Ipv4Addr::UNSPECIFIED
        );
        assert!(Persistence::new(0, 24).is_err());
        assert!(Persistence::new(MAX_PERSISTENT + 1, 24).is_err());
    }

    #[test]
    fn maglev_sizes_are_primes_in_range() {
        assert_eq!(check_mh_table_size(65_537), Ok(65_537));
        assert_eq!(check_mh_table_size(251), Ok(251));
        assert!(
            check_mh_table_size(65_536)
                .unwrap_err()
                .contains("not a prime")
        );
        assert!(check_mh_table_size(7).unwrap_err().contains("out of range"));
        assert!(is_prime(MH_TABLE_MAX));
    }
}
