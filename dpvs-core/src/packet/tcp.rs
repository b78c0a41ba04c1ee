//! TCP RST generation: the answer to a segment for a connection that does not exist (a non-SYN
//! to a VIP with no entry, or a SYN the daemon refuses), built in the segment's own buffer.

use super::checksum::fill_ipv4_l4_checksum;
use core::net::SocketAddrV4;

use super::ether::{
    ETH_ZLEN, ETHERTYPE_IPV4, MacAddr, reply_macs, write_header as write_eth_header,
};
use super::ipv4::{DEFAULT_TTL, IPV4_HLEN, IpProto, write_header};
use super::parse::{Packet, TCP_HLEN, TcpInfo};

/// FIN flag.
pub const FIN: u8 = 0x01;
/// SYN flag.
pub const SYN: u8 = 0x02;
/// RST flag.
pub const RST: u8 = 0x04;
/// PSH flag.
pub const PSH: u8 = 0x08;
/// ACK flag.
pub const ACK: u8 = 0x10;
/// URG flag.
pub const URG: u8 = 0x20;
/// ECE flag (ECN echo).
pub const ECE: u8 = 0x40;
/// CWR flag (congestion window reduced).
pub const CWR: u8 = 0x80;

/// Whether a TCP flag combination can occur in a legitimate segment. The rule is the one of
/// Linux conntrack (`tcp_valid_flags`): PSH, ECE and CWR are ignored, and what remains must be
/// one of SYN, SYN|ACK, RST, RST|ACK, FIN|ACK, ACK, each optionally with URG except SYN|ACK
/// and the RSTs. So no flags (null scan), SYN|FIN, SYN|RST, FIN|RST, FIN without ACK
/// (Xmas scan) are all rejected (`DropReason::BadTcpFlags`).
pub fn flags_valid(flags: u8) -> bool {
    const SYN_URG: u8 = SYN | URG;
    const SYN_ACK: u8 = SYN | ACK;
    const RST_ACK: u8 = RST | ACK;
    const FIN_ACK: u8 = FIN | ACK;
    const FIN_ACK_URG: u8 = FIN | ACK | URG;
    const ACK_URG: u8 = ACK | URG;
    matches!(
        flags & !(PSH | ECE | CWR),
        SYN | SYN_URG | SYN_ACK | RST | RST_ACK | FIN_ACK | FIN_ACK_URG | ACK | ACK_URG
    )
}

/// The (seq, ack, flags) of the RST answering segment `t`, per RFC 793 ("Reset Generation"):
/// if `t` has ACK, the RST takes its sequence number from that ack and carries no ACK;
/// otherwise it has sequence 0 and acknowledges everything `t` occupied (payload, SYN, FIN).
pub fn rst_numbers(t: &TcpInfo) -> (u32, u32, u8) {
    if t.flags & ACK != 0 {
        return (t.ack, 0, RST);
    }
    let syn = u32::from(t.flags & SYN != 0);
    let fin = u32::from(t.flags & FIN != 0);
    let ack = t
        .seq
        .wrapping_add(u32::from(t.payload_len))
        .wrapping_add(syn)
        .wrapping_add(fin);
    (0, ack, RST | ACK)
}

/// Writes a 20-byte IPv4 header and a 20-byte TCP RST header into `l3` (exactly 40 bytes),
/// with full checksums.
fn write_rst_headers(
    l3: &mut [u8],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    seq: u32,
    ack: u32,
    flags: u8,
) -> Option<()> {
    let (iph, tcph) = l3.split_at_mut_checked(IPV4_HLEN)?;
    write_header(
        iph,
        *src.ip(),
        *dst.ip(),
        IpProto::TCP,
        DEFAULT_TTL,
        TCP_HLEN,
    )?;
    let [sp0, sp1] = src.port().to_be_bytes();
    let [dp0, dp1] = dst.port().to_be_bytes();
    let [s0, s1, s2, s3] = seq.to_be_bytes();
    let [a0, a1, a2, a3] = ack.to_be_bytes();
    tcph.get_mut(..TCP_HLEN)?.copy_from_slice(&[
        sp0, sp1, dp0, dp1, s0, s1, s2, s3, a0, a1, a2, a3, 0x50, flags, 0, 0, 0, 0, 0, 0,
    ]);
    fill_ipv4_l4_checksum(*src.ip(), *dst.ip(), IpProto::TCP, tcph);
    Some(())
}

/// Writes a whole RST frame `src → dst` with sequence number `seq` into `buf` (Ethernet
/// addresses zero: the sender fills them once the next hop is known) and returns its length
/// (60, the minimum frame); `None` when `buf` is shorter. Used to cut a connection at the end
/// that did not send the segment being answered.
pub fn write_rst(buf: &mut [u8], src: SocketAddrV4, dst: SocketAddrV4, seq: u32) -> Option<usize> {
    let frame = buf.get_mut(..ETH_ZLEN)?;
    frame.fill(0);
    let l3 = write_eth_header(frame, MacAddr::ZERO, MacAddr::ZERO, ETHERTYPE_IPV4, None)?;
    write_rst_headers(
        frame.get_mut(l3..l3 + IPV4_HLEN + TCP_HLEN)?,
        src,
        dst,
        seq,
        0,
        RST,
    )?;
    Some(ETH_ZLEN)
}

/// Turns the received TCP segment (parsed as `p` from `data`) into the RST a TCP stack would
/// answer with, in place: addresses, ports and MACs swapped (source MAC `our_mac`, VLAN tag
/// kept), a fresh 20-byte IP header (options dropped, TTL 64) and a 20-byte TCP header
/// (no options, no payload, window 0), full checksums. Returns the new frame length for
/// `Frame::set_len`: the headers' end, zero padded up to the 60-byte minimum frame as far as
/// `data` reaches.
///
/// `None` (unchanged) when `p` is not TCP, when the segment is itself a RST (never answer a
/// RST), or when the bytes do not hold what `p` describes.
pub fn rst_reply_in_place(data: &mut [u8], p: &Packet, our_mac: MacAddr) -> Option<usize> {
    let ip = p.ipv4()?;
    let t = *ip.tcp()?;
    if t.flags & RST != 0 {
        return None;
    }
    let l3_off = ip.l3_off;
    let end = l3_off + IPV4_HLEN + TCP_HLEN;
    // Parse guaranteed IP header + TCP header in the frame; re-check rather than trust.
    if ip.l4_off + TCP_HLEN > data.len() || end > data.len() {
        return None;
    }
    let (seq, ack, flags) = rst_numbers(&t);
    let src = SocketAddrV4::new(ip.dst, t.dport);
    let dst = SocketAddrV4::new(ip.src, t.sport);
    write_rst_headers(data.get_mut(l3_off..end)?, src, dst, seq, ack, flags)?;
    let len = end.max(ETH_ZLEN.min(data.len()));
    data.get_mut(end..len)?.fill(0);
    reply_macs(data, our_mac);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum::ipv4_l4_valid;
    use crate::packet::parse::{L4, parse};

    #[test]
    fn write_rst_builds_a_valid_reset() {
        let src: SocketAddrV4 = "192.168.10.200:1024".parse().unwrap();
        let dst: SocketAddrV4 = "192.168.10.11:8080".parse().unwrap();
        let mut buf = [0xaa; 80];
        assert_eq!(write_rst(&mut buf[..59], src, dst, 7), None);
        let len = write_rst(&mut buf, src, dst, 0xdead_beef).unwrap();
        let p = parse(&buf[..len]).unwrap();
        let ip = p.ipv4().unwrap();
        assert_eq!((ip.src, ip.dst), (*src.ip(), *dst.ip()));
        let L4::Tcp(t) = ip.l4 else {
            panic!("not TCP: {:?}", ip.l4)
        };
        assert_eq!(
            (t.sport, t.dport, t.seq, t.flags, t.payload_len),
            (1024, 8080, 0xdead_beef, RST, 0)
        );
        assert!(ipv4_l4_valid(
            ip.src,
            ip.dst,
            IpProto::TCP,
            &buf[ip.l4_off..ip.l4_off + TCP_HLEN]
        ));
    }
}
