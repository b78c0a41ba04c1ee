//! Building the generator's frames without allocating or summing the whole packet.
//!
//! A [`Template`] holds one complete client→VIP frame (flow 0, zeroed probe) with correct
//! checksums. Each packet is a copy of it with the client address, source port, TCP flags and
//! probe patched in, and both checksums updated incrementally (RFC 1624), so the cost does not
//! depend on the packet size beyond the copy. [`write_frame`] builds any frame from scratch
//! with full checksums; the generator uses it for the small replies it sends as a real server.

use std::net::SocketAddrV4;

use dpvs_core::packet::MacAddr;
use dpvs_core::packet::checksum::{Delta, fill_ipv4_header_checksum, fill_ipv4_l4_checksum};
use dpvs_core::packet::ether::{ETH_HLEN, ETH_ZLEN, ETHERTYPE_IPV4, write_header as write_eth};
use dpvs_core::packet::ipv4::{IPV4_HLEN, IpProto};

use crate::probe::{OFF_FLAGS, OFF_FLOW, OFF_TSC, PROBE_LEN, Probe};

/// TCP header length (no options).
pub const TCP_HLEN: usize = 20;
/// UDP header length.
pub const UDP_HLEN: usize = 8;
/// Offset of the IPv4 header in every frame the generator sends (no VLAN tag).
pub const L3_OFF: usize = ETH_HLEN;
/// Offset of the L4 header (IPv4 without options).
pub const L4_OFF: usize = ETH_HLEN + IPV4_HLEN;

/// TCP flags the generator uses.
pub mod tcpf {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// What the probe's `kind` byte says a packet is (for debugging captures; the logic reads flags).
pub mod kind {
    pub const SYN: u8 = 1;
    pub const DATA: u8 = 2;
    pub const SYNACK: u8 = 3;
    pub const ACK: u8 = 4;
    pub const RST: u8 = 5;
}

/// Header length of `proto` (TCP or UDP).
pub fn l4_hlen(proto: IpProto) -> usize {
    if proto == IpProto::TCP {
        TCP_HLEN
    } else {
        UDP_HLEN
    }
}

/// The smallest frame (without FCS) that carries headers and probe for `proto`.
pub fn min_frame_len(proto: IpProto) -> usize {
    (L4_OFF + l4_hlen(proto) + PROBE_LEN).max(ETH_ZLEN)
}

/// Offset of the probe in frames of `proto`.
pub fn probe_off(proto: IpProto) -> usize {
    L4_OFF + l4_hlen(proto)
}

/// Everything in the headers of one generated frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    /// `IpProto::TCP` or `IpProto::UDP`.
    pub proto: IpProto,
    pub ttl: u8,
    /// TCP only.
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
}

/// Writes a whole frame of `len` bytes (at least [`min_frame_len`]) into `buf`: Ethernet,
/// IPv4 (no options, DF), TCP or UDP, the probe, zero padding; full checksums. Returns `len`,
/// or `None` when `buf` is shorter or `len` too small.
pub fn write_frame(buf: &mut [u8], h: &Headers, probe: &Probe, len: usize) -> Option<usize> {
    let hl = l4_hlen(h.proto);
    if len < min_frame_len(h.proto) {
        return None;
    }
    let frame = buf.get_mut(..len)?;
    frame.fill(0);
    write_eth(frame, h.dst_mac, h.src_mac, ETHERTYPE_IPV4, None)?;
    let l4_len = len - L4_OFF;
    write_ipv4(&mut frame[L3_OFF..L4_OFF], h, l4_len)?;
    let l4 = &mut frame[L4_OFF..];
    l4[0..2].copy_from_slice(&h.src.port().to_be_bytes());
    l4[2..4].copy_from_slice(&h.dst.port().to_be_bytes());
    if h.proto == IpProto::TCP {
        l4[4..8].copy_from_slice(&h.seq.to_be_bytes());
        l4[8..12].copy_from_slice(&h.ack.to_be_bytes());
        l4[12] = 0x50;
        l4[13] = h.flags;
        l4[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    } else {
        l4[4..6].copy_from_slice(&u16::try_from(l4_len).ok()?.to_be_bytes());
    }
    probe.write(&mut l4[hl..]);
    fill_ipv4_l4_checksum(*h.src.ip(), *h.dst.ip(), h.proto, l4).then_some(len)
}

/// IPv4 header with TTL `h.ttl`, DF, ID 0, full checksum.
fn write_ipv4(ip: &mut [u8], h: &Headers, l4_len: usize) -> Option<()> {
    let total = u16::try_from(IPV4_HLEN + l4_len).ok()?;
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = h.ttl;
    ip[9] = h.proto.0;
    ip[12..16].copy_from_slice(&h.src.ip().octets());
    ip[16..20].copy_from_slice(&h.dst.ip().octets());
    fill_ipv4_header_checksum(ip).then_some(())
}

/// One client→VIP frame, patched per packet (see the module doc).
#[derive(Clone, Debug)]
pub struct Template {
    bytes: Vec<u8>,
    base: Headers,
    ip_csum: u16,
    l4_csum: u16,
    csum_off: usize,
    probe_off: usize,
}

impl Template {
    /// A template of `len` bytes (raised to [`min_frame_len`]) for headers `base`.
    pub fn new(base: Headers, len: usize) -> Template {
        let len = len.max(min_frame_len(base.proto));
        let mut bytes = vec![0u8; len];
        let zero = Probe {
            flags: 0,
            kind: 0,
            flow: 0,
            tsc: 0,
        };
        write_frame(&mut bytes, &base, &zero, len).expect("length checked above");
        let csum_off = L4_OFF + if base.proto == IpProto::TCP { 16 } else { 6 };
        Template {
            ip_csum: u16::from_be_bytes([bytes[L3_OFF + 10], bytes[L3_OFF + 11]]),
            l4_csum: u16::from_be_bytes([bytes[csum_off], bytes[csum_off + 1]]),
            probe_off: probe_off(base.proto),
            csum_off,
            bytes,
            base,
        }
    }

    /// Frame length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the frame is empty (never: kept for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The L4 protocol.
    pub fn proto(&self) -> IpProto {
        self.base.proto
    }

    /// Fills `buf` (exactly [`Template::len`] bytes) with the template's frame from client
    /// `src`, TCP `flags` (ignored for UDP), carrying `probe`. `false` when `buf` has the
    /// wrong length.
    #[inline]
    pub fn fill(&self, buf: &mut [u8], src: SocketAddrV4, flags: u8, probe: &Probe) -> bool {
        if buf.len() != self.bytes.len() {
            return false;
        }
        buf.copy_from_slice(&self.bytes);
        let (old_ip, new_ip) = (u32::from(*self.base.src.ip()), u32::from(*src.ip()));
        buf[L3_OFF + 12..L3_OFF + 16].copy_from_slice(&src.ip().octets());
        let ip_csum = Delta::new().add32(old_ip, new_ip).apply(self.ip_csum);
        buf[L3_OFF + 10..L3_OFF + 12].copy_from_slice(&ip_csum.to_be_bytes());
        buf[L4_OFF..L4_OFF + 2].copy_from_slice(&src.port().to_be_bytes());
        let mut d = Delta::new()
            .add32(old_ip, new_ip)
            .add16(self.base.src.port(), src.port());
        if self.base.proto == IpProto::TCP {
            let old = u16::from_be_bytes([0x50, self.base.flags]);
            buf[L4_OFF + 13] = flags;
            d = d.add16(old, u16::from_be_bytes([0x50, flags]));
        }
        let p = self.probe_off;
        probe.write(&mut buf[p..]);
        // The template's probe is zero apart from the magic: add the new words.
        d = d
            .add16(
                0,
                u16::from_be_bytes([buf[p + OFF_FLAGS], buf[p + OFF_FLAGS + 1]]),
            )
            .add32(0, probe.flow)
            .add32(0, (probe.tsc >> 32) as u32)
            .add32(0, probe.tsc as u32);
        debug_assert_eq!(OFF_FLOW + 4, OFF_TSC);
        let c = if self.base.proto == IpProto::UDP {
            d.apply_udp(self.l4_csum)
        } else {
            d.apply(self.l4_csum)
        };
        buf[self.csum_off..self.csum_off + 2].copy_from_slice(&c.to_be_bytes());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::F_MEASURED;
    use dpvs_core::packet::checksum::{ipv4_header_valid, ipv4_l4_valid};
    use dpvs_core::packet::parse::{L4, parse};
    use std::net::Ipv4Addr;

    fn base(proto: IpProto) -> Headers {
        Headers {
            src_mac: MacAddr([2, 0, 0, 0, 0, 0x0a]),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src: "10.1.0.0:1024".parse().unwrap(),
            dst: "10.0.0.100:80".parse().unwrap(),
            proto,
            ttl: 64,
            flags: tcpf::ACK | tcpf::PSH,
            seq: 1,
            ack: 1,
        }
    }

    fn valid(frame: &[u8]) -> bool {
        let p = parse(frame).expect("parses");
        let ip = p.ipv4().unwrap();
        ipv4_header_valid(&frame[L3_OFF..L4_OFF])
            && ipv4_l4_valid(ip.src, ip.dst, ip.proto, &frame[ip.l4_off..ip.end()])
    }

    #[test]
    fn filled_frames_have_correct_checksums() {
        for proto in [IpProto::TCP, IpProto::UDP] {
            for len in [0, 60, 64, 200, 1514] {
                let t = Template::new(base(proto), len);
                let mut buf = vec![0u8; t.len()];
                let mut seed = 0x1234_5678_9abc_def1u64;
                for i in 0..2000u32 {
                    seed = seed.rotate_left(7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let src = SocketAddrV4::new(
                        Ipv4Addr::from_bits(0x0a01_0000 + (seed as u32 & 0xffff)),
                        (seed >> 16) as u16 | 1024,
                    );
                    let probe = Probe {
                        flags: (i & 1) as u8 * F_MEASURED,
                        kind: kind::DATA,
                        flow: seed as u32 ^ i,
                        tsc: seed,
                    };
                    let flags = if i % 3 == 0 { tcpf::SYN } else { tcpf::ACK };
                    assert!(t.fill(&mut buf, src, flags, &probe));
                    assert!(valid(&buf), "proto {proto:?} len {len} i {i}");
                    let p = parse(&buf).unwrap();
                    let ip = p.ipv4().unwrap();
                    assert_eq!(ip.src, *src.ip());
                    assert_eq!(ip.ports().unwrap().0, src.port());
                    if let L4::Tcp(tcp) = ip.l4 {
                        assert_eq!(tcp.flags, flags);
                    }
                    let got = Probe::read(&buf[probe_off(proto)..]).unwrap();
                    assert_eq!(got, probe);
                }
            }
        }
    }

    #[test]
    fn write_frame_refuses_short_lengths() {
        let mut buf = [0u8; 100];
        let p = Probe {
            flags: 0,
            kind: 0,
            flow: 0,
            tsc: 0,
        };
        assert_eq!(write_frame(&mut buf, &base(IpProto::TCP), &p, 69), None);
        assert_eq!(write_frame(&mut buf, &base(IpProto::TCP), &p, 70), Some(70));
        assert!(valid(&buf[..70]));
        assert_eq!(write_frame(&mut buf, &base(IpProto::UDP), &p, 60), Some(60));
        assert!(valid(&buf[..60]));
        assert_eq!(write_frame(&mut buf, &base(IpProto::UDP), &p, 101), None);
    }
}
