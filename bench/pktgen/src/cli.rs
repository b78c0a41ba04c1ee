//! The command line, and its translation into a [`Plan`](crate::engine::Plan).

use dpvs_core::packet::ipv4::IpProto;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use dpvs_core::packet::MacAddr;

use crate::check::{Expect, Net};
use crate::engine::{Plan, Traffic};
use crate::flows::{FlowSpace, Order};

/// dpvs-pktgen: a DPDK traffic generator and checker for layer-4 load balancers.
///
/// It plays every client and every real server on one DPDK port, checks each frame the
/// device returns (addresses rewritten as the forwarding mode requires, checksums, TTL, the
/// flow named in the payload), and reports offered and received packets per second, loss and
/// latency percentiles, as a table and as JSON.
#[derive(Debug, Parser)]
#[command(name = "dpvs-pktgen", version)]
pub struct Args {
    /// DPDK device: a vdev (`net_memif0,role=client,socket=/tmp/x.sock,socket-abstract=no`)
    /// or a PCI address.
    #[arg(long)]
    pub port: String,
    /// The device under test's MAC (frames are sent to it).
    #[arg(long)]
    pub dut_mac: MacAddr,
    /// CPU for the generator's single lcore.
    #[arg(long, default_value_t = 0)]
    pub cpu: u32,
    /// EAL file prefix (distinct per DPDK process on the machine).
    #[arg(long)]
    pub file_prefix: Option<String>,
    /// EAL arguments replacing the defaults (`--no-huge -m 1024 --no-pci --no-telemetry`),
    /// whitespace-separated; `--lcores` and `--file-prefix` are added unless given.
    #[arg(long, allow_hyphen_values = true)]
    pub eal_args: Option<String>,
    /// Traffic kind.
    #[arg(long, value_enum, default_value_t = TrafficArg::EstTcp)]
    pub traffic: TrafficArg,
    /// The forwarding the device is expected to do (what the checker accepts).
    #[arg(long, value_enum, default_value_t = Expect::Fnat)]
    pub expect: Expect,
    /// Concurrent flows (client endpoints), e.g. 1000, 100K, 10M.
    #[arg(long, default_value = "1K", value_parser = parse_count)]
    pub flows: u64,
    /// Order in which flows are visited.
    #[arg(long, value_enum, default_value_t = OrderArg::Random)]
    pub order: OrderArg,
    /// Frame size on the wire in bytes, FCS included (raised to what headers and the 16-byte
    /// probe need: 64 for UDP, 74 for TCP).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Client packets per second (established) or connections per second (new-conn), with
    /// K/M suffixes; `max`: as fast as the port takes them.
    #[arg(long, default_value = "max", value_parser = parse_rate)]
    pub rate: Rate,
    /// Seconds of traffic before the measured interval.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds to keep receiving after the measured interval (in-flight packets).
    #[arg(long, default_value_t = 0.3)]
    pub drain: f64,
    /// The virtual service.
    #[arg(long, default_value = "10.0.0.100:80")]
    pub vip: SocketAddrV4,
    /// First client address (flows use ports 1024-65535 of consecutive addresses).
    #[arg(long, default_value = "10.1.0.0")]
    pub client: Ipv4Addr,
    /// FullNAT local addresses, `FIRST+COUNT`.
    #[arg(long, default_value = "10.0.1.0+256", value_parser = parse_range)]
    pub laddrs: (Ipv4Addr, u32),
    /// Real servers, comma-separated ADDR:PORT.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10.0.0.20:8080,10.0.0.21:8080"
    )]
    pub rs: Vec<SocketAddrV4>,
    /// DR: the real servers' MACs, in the order of --rs (default: all the generator's MAC).
    #[arg(long, value_delimiter = ',')]
    pub rs_mac: Vec<MacAddr>,
    /// TUN: the outer source address the balancer uses.
    #[arg(long, default_value = "10.0.0.1")]
    pub tun_src: Ipv4Addr,
    /// TTL of generated packets.
    #[arg(long, default_value_t = 64)]
    pub ttl: u8,
    /// Established flows: the real server answers every data packet (traffic both ways).
    #[arg(long)]
    pub rs_reply: bool,
    /// New connections at `--rate max`: at most this many open at once (a closed loop, so that
    /// new SYNs do not crowd out the handshakes in progress). Target rates are open-loop.
    #[arg(long, default_value_t = 4096)]
    pub conn_window: u64,
    /// Seed of the random flow order.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Seconds to wait for the port's link.
    #[arg(long, default_value_t = 10.0)]
    pub link_timeout: f64,
    /// Seconds a priming pass may wait for the flows to show up.
    #[arg(long, default_value_t = 5.0)]
    pub prime_timeout: f64,
    /// Write the JSON report here (`-`: standard output, instead of the table).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print phase markers (`# phase NAME`) on standard error, for scripts that sample the
    /// device's counters over exactly the measured interval.
    #[arg(long)]
    pub markers: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TrafficArg {
    EstTcp,
    EstUdp,
    NewConn,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OrderArg {
    Sequential,
    Random,
}

/// A target rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    Max,
    PerSecond(f64),
}

fn parse_count(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1e3),
        Some('M') => (&s[..s.len() - 1], 1e6),
        Some('G') => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| format!("not a number: {s:?}"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("not a count: {s:?}"));
    }
    Ok((v * mult).round() as u64)
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    let v = parse_count(s)?;
    if v == 0 {
        return Err("rate must be > 0 (or max)".into());
    }
    Ok(Rate::PerSecond(v as f64))
}

fn parse_range(s: &str) -> Result<(Ipv4Addr, u32), String> {
    let (a, n) = s.split_once('+').unwrap_or((s, "1"));
    let a: Ipv4Addr = a.parse().map_err(|_| format!("bad address in {s:?}"))?;
    let n: u32 = n.parse().map_err(|_| format!("bad count in {s:?}"))?;
    if n == 0 || n > 256 {
        return Err("between 1 and 256 local addresses".into());
    }
    Ok((a, n))
}

impl Args {
    /// The EAL arguments: the defaults or `--eal-args`, plus lcore and file prefix.
    pub fn eal(&self) -> Vec<String> {
        let base = self
            .eal_args
            .as_deref()
            .unwrap_or("--no-huge -m 1024 --no-pci --no-telemetry");
        let mut v: Vec<String> = base.split_whitespace().map(str::to_string).collect();
        let has =
            |v: &[String], f: &str| v.iter().any(|a| a == f || a.starts_with(&format!("{f}=")));
        if !has(&v, "--lcores") && !has(&v, "-l") && !has(&v, "-c") {
            v.push("--lcores".into());
            v.push(format!("0@{}", self.cpu));
        }
        if !has(&v, "--file-prefix") {
            v.push("--file-prefix".into());
            v.push(
                self.file_prefix
                    .clone()
                    .unwrap_or_else(|| format!("pktgen-{}", std::process::id())),
            );
        }
        v
    }

    /// The traffic kind.
    pub fn traffic(&self) -> Traffic {
        match self.traffic {
            TrafficArg::EstTcp => Traffic::EstTcp,
            TrafficArg::EstUdp => Traffic::EstUdp,
            TrafficArg::NewConn => Traffic::NewConn,
        }
    }

    /// The plan, given the port's own MAC.
    pub fn plan(&self, our_mac: MacAddr) -> Result<Plan, String> {
        if self.flows == 0 || self.flows > u64::from(u32::MAX) {
            return Err(format!("--flows {} out of range", self.flows));
        }
        if self.rs.is_empty() || self.rs.len() > 255 {
            return Err("--rs: between 1 and 255 real servers".into());
        }
        if !self.rs_mac.is_empty() && self.rs_mac.len() != self.rs.len() {
            return Err("--rs-mac: one MAC per real server".into());
        }
        let traffic = self.traffic();
        let net = Net {
            expect: self.expect,
            our_mac,
            dut_mac: self.dut_mac,
            vip: self.vip,
            clients: FlowSpace::new(self.client, self.flows as u32),
            laddr_base: self.laddrs.0,
            laddr_count: self.laddrs.1,
            rs: self.rs.clone(),
            rs_macs: self.rs_mac.clone(),
            tun_src: self.tun_src,
            proto: if traffic == Traffic::EstUdp {
                IpProto::UDP
            } else {
                IpProto::TCP
            },
            ttl: self.ttl,
        };
        Ok(Plan {
            traffic,
            net,
            order: match self.order {
                OrderArg::Sequential => Order::Sequential,
                OrderArg::Random => Order::Random,
            },
            frame_len: self.size.saturating_sub(4),
            rs_reply: self.rs_reply,
            seed: self.seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rates() {
        assert_eq!(parse_count("10M"), Ok(10_000_000));
        assert_eq!(parse_count("1.5k"), Ok(1500));
        assert_eq!(parse_count("42"), Ok(42));
        assert!(parse_count("x").is_err());
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("2.5M"), Ok(Rate::PerSecond(2.5e6)));
        assert!(parse_rate("0").is_err());
        assert_eq!(
            parse_range("10.0.1.0+16"),
            Ok((Ipv4Addr::new(10, 0, 1, 0), 16))
        );
        assert!(parse_range("10.0.1.0+0").is_err());
    }

    #[test]
    fn eal_defaults() {
        let a = Args::parse_from([
            "p",
            "--port",
            "net_null0",
            "--dut-mac",
            "02:00:00:00:00:01",
            "--cpu",
            "1",
            "--file-prefix",
            "x",
        ]);
        let e = a.eal();
        assert!(e.windows(2).any(|w| w == ["--lcores", "0@1"]));
        assert!(e.windows(2).any(|w| w == ["--file-prefix", "x"]));
        assert!(e.contains(&"--no-huge".to_string()));
    }
}
