//! What the generator expects back from the device under test, and the per-packet check.
//!
//! The checker is written from the wire format, not from the balancer's code: its own
//! fixed-offset parse and its own checksum sum, so a bug shared with the daemon's packet layer
//! cannot hide itself. Every frame the device returns is either accepted ([`Seen`]: which side
//! it arrived on, the flow its probe names, the balancer's choice of path for that flow) or
//! refused with one [`Bad`] reason, which the generator counts.

use dpvs_core::packet::ipv4::IpProto;
use std::net::{Ipv4Addr, SocketAddrV4};

use dpvs_core::packet::MacAddr;

use crate::flows::FlowSpace;
use crate::probe::{PROBE_LEN, Probe};

/// The forwarding the device under test is expected to perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// FullNAT: client→VIP becomes laddr:lport→RS; RS→laddr becomes VIP→client.
    Fnat,
    /// NAT (masquerade): client→VIP becomes client→RS; RS→client becomes VIP→client.
    Nat,
    /// Direct routing: only the destination MAC changes (to the RS's).
    Dr,
    /// IP-in-IP: an outer header balancer→RS, the client's packet unchanged inside.
    Tun,
    /// testpmd `io`: the frame comes back byte for byte.
    Io,
    /// testpmd `macswap`: the frame comes back with its MAC addresses swapped.
    Macswap,
}

impl Expect {
    /// Whether the real server's answers travel back through the device (FullNAT, NAT), or
    /// go straight to the client (DR, TUN; and the reflecting testpmd modes).
    pub fn reverse_via_dut(self) -> bool {
        matches!(self, Expect::Fnat | Expect::Nat)
    }
}

/// Where an accepted frame arrived: at one of the real servers the generator plays, or at one
/// of its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Addressed to a real server (forwarded client traffic; also testpmd's reflection).
    Rs,
    /// Addressed to a client (the balancer's rewrite of a real server's answer).
    Client,
}

/// Why a returned frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Bad {
    /// Shorter than its headers, not IPv4 without options, a fragment, or not our L4 protocol.
    Malformed,
    /// Destination or source MAC not the expected one.
    Mac,
    /// IPv4 header checksum wrong.
    IpChecksum,
    /// TCP/UDP checksum wrong.
    L4Checksum,
    /// TTL not what the forwarding mode leaves.
    Ttl,
    /// Source address or port not what the mode rewrites it to (e.g. not a local address in
    /// FullNAT, or left unchanged).
    Src,
    /// Destination neither a real server nor a client the mode could produce.
    Dst,
    /// Probe missing or naming a flow that does not exist.
    Probe,
    /// The addresses belong to another flow than the one the probe names.
    FlowMismatch,
    /// The flow's path (local address, port, real server) changed mid-flow.
    PathChanged,
    /// IP-in-IP outer header wrong (protocol, source, destination, length).
    Outer,
}

impl Bad {
    /// Every reason, in counter order.
    pub const ALL: [Bad; 11] = [
        Bad::Malformed,
        Bad::Mac,
        Bad::IpChecksum,
        Bad::L4Checksum,
        Bad::Ttl,
        Bad::Src,
        Bad::Dst,
        Bad::Probe,
        Bad::FlowMismatch,
        Bad::PathChanged,
        Bad::Outer,
    ];

    /// Counter index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Bad::Malformed => "malformed",
            Bad::Mac => "bad_mac",
            Bad::IpChecksum => "bad_ip_checksum",
            Bad::L4Checksum => "bad_l4_checksum",
            Bad::Ttl => "bad_ttl",
            Bad::Src => "bad_src",
            Bad::Dst => "bad_dst",
            Bad::Probe => "bad_probe",
            Bad::FlowMismatch => "flow_mismatch",
            Bad::PathChanged => "path_changed",
            Bad::Outer => "bad_outer_header",
        }
    }
}

/// An accepted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub side: Side,
    pub probe: Probe,
    /// TCP flags (0 for UDP).
    pub flags: u8,
    /// The path the device chose for this flow, packed (local address index, real server
    /// index, local port); never 0. The caller compares it across a flow's packets.
    pub path: u32,
    /// Offset of the IPv4 header the flow's packet is in (past an IP-in-IP outer header).
    pub l3_off: usize,
}

/// The addresses of the test network and what the device should do to them.
#[derive(Clone, Debug)]
pub struct Net {
    pub expect: Expect,
    /// The generator's port MAC (clients and real servers all live behind it).
    pub our_mac: MacAddr,
    /// The device's MAC.
    pub dut_mac: MacAddr,
    pub vip: SocketAddrV4,
    pub clients: FlowSpace,
    /// FullNAT local addresses: `laddr_base .. laddr_base + laddr_count`.
    pub laddr_base: Ipv4Addr,
    pub laddr_count: u32,
    /// Real servers (at most 255).
    pub rs: Vec<SocketAddrV4>,
    /// DR: the MAC of each real server, in the order of `rs` (empty: all `our_mac`).
    pub rs_macs: Vec<MacAddr>,
    /// TUN: the outer source address the balancer uses.
    pub tun_src: Ipv4Addr,
    /// `IpProto::TCP` or `IpProto::UDP`.
    pub proto: IpProto,
    /// TTL of every packet the generator sends.
    pub ttl: u8,
}

/// The IPv4 and L4 fields of one (inner) packet, as read by [`read_ip`].
#[derive(Clone, Copy, Debug)]
struct Ip {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ttl: u8,
    flags: u8,
    probe: Probe,
}

/// One's complement sum of big-endian 16-bit words (odd tail padded), not folded. Summed as
/// 32-bit words, which folds to the same value (2^16 ≡ 1 modulo 0xffff) in half the steps.
fn sum(b: &[u8], mut acc: u64) -> u64 {
    let mut w = b.chunks_exact(4);
    for c in &mut w {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let mut r = w.remainder().chunks_exact(2);
    for c in &mut r {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [x] = r.remainder() {
        acc += u64::from(*x) << 8;
    }
    acc
}

fn folds_to_ones(mut acc: u64) -> bool {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc == 0xffff
}

fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

fn ip4(b: &[u8], off: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[off], b[off + 1], b[off + 2], b[off + 3])
}

/// Reads and validates the IPv4 packet at `off` of `b` carrying `proto`: header checksum, no
/// options or fragments, L4 checksum, probe present.
fn read_ip(b: &[u8], off: usize, proto: IpProto) -> Result<Ip, Bad> {
    let ip = b.get(off..off + 20).ok_or(Bad::Malformed)?;
    let total = usize::from(be16(ip, 2));
    let frag = be16(ip, 6) & 0x3fff;
    if ip[0] != 0x45 || frag != 0 || total < 20 || off + total > b.len() || ip[9] != proto.0 {
        return Err(Bad::Malformed);
    }
    if !folds_to_ones(sum(ip, 0)) {
        return Err(Bad::IpChecksum);
    }
    let l4 = &b[off + 20..off + total];
    let hl = if proto == IpProto::TCP {
        usize::from(l4.get(12).ok_or(Bad::Malformed)? >> 4) * 4
    } else {
        8
    };
    if hl < 8 || l4.len() < hl + PROBE_LEN {
        return Err(Bad::Malformed);
    }
    let pseudo = sum(&ip[12..20], u64::from(proto.0) + l4.len() as u64);
    let udp_none = proto == IpProto::UDP && be16(l4, 6) == 0;
    if !udp_none && !folds_to_ones(sum(l4, pseudo)) {
        return Err(Bad::L4Checksum);
    }
    let probe = Probe::read(&l4[hl..]).ok_or(Bad::Probe)?;
    Ok(Ip {
        src: SocketAddrV4::new(ip4(ip, 12), be16(l4, 0)),
        dst: SocketAddrV4::new(ip4(ip, 16), be16(l4, 2)),
        ttl: ip[8],
        flags: if proto == IpProto::TCP { l4[13] } else { 0 },
        probe,
    })
}

impl Net {
    /// Index of real server `a` (address and port), if it is one.
    fn rs_index(&self, a: SocketAddrV4) -> Option<usize> {
        self.rs.iter().position(|r| *r == a)
    }

    /// Index of the real server at address `ip` (any port).
    fn rs_ip_index(&self, ip: Ipv4Addr) -> Option<usize> {
        self.rs.iter().position(|r| *r.ip() == ip)
    }

    /// Index of local address `ip`, if it is one.
    fn laddr_index(&self, ip: Ipv4Addr) -> Option<u32> {
        let k = ip.to_bits().checked_sub(self.laddr_base.to_bits())?;
        (k < self.laddr_count).then_some(k)
    }

    /// The client endpoint of the flow a probe names; `Err(Probe)` for a flow that does not
    /// exist.
    fn client_of(&self, p: &Probe) -> Result<SocketAddrV4, Bad> {
        if p.flow >= self.clients.n {
            return Err(Bad::Probe);
        }
        let (ip, port) = self.clients.endpoint(p.flow);
        Ok(SocketAddrV4::new(ip, port))
    }

    /// Checks one frame the device returned. See the module doc.
    pub fn check(&self, b: &[u8]) -> Result<Seen, Bad> {
        if b.len() < 14 || be16(b, 12) != 0x0800 {
            return Err(Bad::Malformed);
        }
        let (dst_mac, src_mac) = (mac_at(b, 0), mac_at(b, 6));
        match self.expect {
            Expect::Io | Expect::Macswap => self.check_reflected(b, dst_mac, src_mac),
            Expect::Dr => self.check_dr(b, dst_mac, src_mac),
            Expect::Tun => self.check_tun(b, dst_mac, src_mac),
            Expect::Fnat | Expect::Nat => {
                if dst_mac != self.our_mac || src_mac != self.dut_mac {
                    return Err(Bad::Mac);
                }
                let ip = read_ip(b, 14, self.proto)?;
                if ip.ttl != self.ttl.wrapping_sub(1) {
                    return Err(Bad::Ttl);
                }
                if self.clients.index(*ip.dst.ip(), ip.dst.port()).is_some() {
                    return self.check_to_client(&ip);
                }
                match self.expect {
                    Expect::Fnat => self.check_fnat_to_rs(&ip),
                    _ => self.check_nat_to_rs(&ip),
                }
            }
        }
    }

    /// FullNAT, client→RS: source one of our local addresses, destination a real server.
    fn check_fnat_to_rs(&self, ip: &Ip) -> Result<Seen, Bad> {
        let rs = self.rs_index(ip.dst).ok_or(Bad::Dst)?;
        let laddr = self.laddr_index(*ip.src.ip()).ok_or(Bad::Src)?;
        self.client_of(&ip.probe)?;
        let path = ((laddr & 0xff) << 24) | ((rs as u32 & 0xff) << 16) | u32::from(ip.src.port());
        Ok(seen(Side::Rs, ip, path.max(1), 14))
    }

    /// NAT, client→RS: source untouched, destination a real server.
    fn check_nat_to_rs(&self, ip: &Ip) -> Result<Seen, Bad> {
        let rs = self.rs_index(ip.dst).ok_or(Bad::Dst)?;
        if ip.src != self.client_of(&ip.probe)? {
            return Err(
                if self.clients.index(*ip.src.ip(), ip.src.port()).is_some() {
                    Bad::FlowMismatch
                } else {
                    Bad::Src
                },
            );
        }
        Ok(seen(Side::Rs, ip, (rs as u32 + 1) << 16, 14))
    }

    /// FullNAT and NAT, RS→client: source the VIP, destination the flow's client.
    fn check_to_client(&self, ip: &Ip) -> Result<Seen, Bad> {
        if ip.src != self.vip {
            return Err(Bad::Src);
        }
        if ip.dst != self.client_of(&ip.probe)? {
            return Err(Bad::FlowMismatch);
        }
        Ok(seen(Side::Client, ip, 1, 14))
    }

    /// The client's packet exactly as sent: client→VIP, TTL one of `ttls`.
    fn unchanged(&self, ip: &Ip, ttls: [u8; 2]) -> Result<(), Bad> {
        if ip.dst != self.vip {
            return Err(Bad::Dst);
        }
        let client = self.client_of(&ip.probe)?;
        if ip.src != client {
            return Err(
                if self.clients.index(*ip.src.ip(), ip.src.port()).is_some() {
                    Bad::FlowMismatch
                } else {
                    Bad::Src
                },
            );
        }
        if !ttls.contains(&ip.ttl) {
            return Err(Bad::Ttl);
        }
        Ok(())
    }

    /// testpmd io (unchanged frame) and macswap (MACs swapped).
    fn check_reflected(&self, b: &[u8], dst_mac: MacAddr, src_mac: MacAddr) -> Result<Seen, Bad> {
        let macs_ok = match self.expect {
            Expect::Io => dst_mac == self.dut_mac && src_mac == self.our_mac,
            _ => dst_mac == self.our_mac && src_mac == self.dut_mac,
        };
        if !macs_ok {
            return Err(Bad::Mac);
        }
        let ip = read_ip(b, 14, self.proto)?;
        self.unchanged(&ip, [self.ttl; 2])?;
        Ok(seen(Side::Rs, &ip, 1, 14))
    }

    /// DR: a real server's MAC as destination, the balancer's as source, the IP packet as the
    /// client sent it. The TTL may be decremented once (a router hop) or not (LVS leaves it).
    fn check_dr(&self, b: &[u8], dst_mac: MacAddr, src_mac: MacAddr) -> Result<Seen, Bad> {
        let rs = if self.rs_macs.is_empty() {
            (dst_mac == self.our_mac).then_some(0)
        } else {
            self.rs_macs.iter().position(|m| *m == dst_mac)
        };
        let (Some(rs), true) = (rs, src_mac == self.dut_mac) else {
            return Err(Bad::Mac);
        };
        let ip = read_ip(b, 14, self.proto)?;
        self.unchanged(&ip, [self.ttl, self.ttl.wrapping_sub(1)])?;
        Ok(seen(Side::Rs, &ip, (rs as u32 + 1) << 16, 14))
    }

    /// TUN: outer IPv4 (protocol 4) from the balancer to a real server, valid and sized for
    /// the inner packet, which is the client's unchanged (TTL as in DR).
    fn check_tun(&self, b: &[u8], dst_mac: MacAddr, src_mac: MacAddr) -> Result<Seen, Bad> {
        if dst_mac != self.our_mac || src_mac != self.dut_mac {
            return Err(Bad::Mac);
        }
        let outer = b.get(14..34).ok_or(Bad::Malformed)?;
        let total = usize::from(be16(outer, 2));
        if outer[0] != 0x45 || outer[9] != 4 || total < 40 || 14 + total > b.len() {
            return Err(Bad::Outer);
        }
        if !folds_to_ones(sum(outer, 0)) {
            return Err(Bad::IpChecksum);
        }
        if ip4(outer, 12) != self.tun_src {
            return Err(Bad::Outer);
        }
        let rs = self.rs_ip_index(ip4(outer, 16)).ok_or(Bad::Outer)?;
        let inner_total = usize::from(be16(b, 36));
        if inner_total + 20 != total {
            return Err(Bad::Outer);
        }
        let ip = read_ip(b, 34, self.proto)?;
        self.unchanged(&ip, [self.ttl, self.ttl.wrapping_sub(1)])?;
        Ok(seen(Side::Rs, &ip, (rs as u32 + 1) << 16, 34))
    }
}

fn seen(side: Side, ip: &Ip, path: u32, l3_off: usize) -> Seen {
    Seen {
        side,
        probe: ip.probe,
        flags: ip.flags,
        path,
        l3_off,
    }
}

fn mac_at(b: &[u8], off: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[off..off + 6]);
    MacAddr(m)
}

#[cfg(test)]
mod tests;
