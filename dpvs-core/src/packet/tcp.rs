//! TCP RST generation: the answer to a segment for a connection that does not exist (a non-SYN
//! to a VIP with no entry, or a SYN the daemon refuses), built in the segment's own buffer.

use super::checksum::fill_ipv4_l4_checksum;
use super::ether::{ETH_ZLEN, MacAddr, reply_macs};
use super::ipv4::{DEFAULT_TTL, IPPROTO_TCP, IPV4_HLEN, write_header};
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
    let l3 = data.get_mut(l3_off..end)?;
    let (iph, tcph) = l3.split_at_mut(IPV4_HLEN);
    write_header(iph, ip.dst, ip.src, IPPROTO_TCP, DEFAULT_TTL, TCP_HLEN)?;
    let [sp0, sp1] = t.dport.to_be_bytes();
    let [dp0, dp1] = t.sport.to_be_bytes();
    let [s0, s1, s2, s3] = seq.to_be_bytes();
    let [a0, a1, a2, a3] = ack.to_be_bytes();
    tcph.copy_from_slice(&[
        sp0, sp1, dp0, dp1, s0, s1, s2, s3, a0, a1, a2, a3, 0x50, flags, 0, 0, 0, 0, 0, 0,
    ]);
    fill_ipv4_l4_checksum(ip.dst, ip.src, IPPROTO_TCP, tcph);
    let len = end.max(ETH_ZLEN.min(data.len()));
    data.get_mut(end..len)?.fill(0);
    reply_macs(data, our_mac);
    Some(len)
}
