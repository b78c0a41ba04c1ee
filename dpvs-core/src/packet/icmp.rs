//! ICMP echo (ping) answered in the data plane for the daemon's own addresses and VIPs.

use super::checksum::{Delta, plain_valid};
use super::ether::{MacAddr, reply_macs};
use super::ipv4::{
    DEFAULT_TTL, IPV4_CSUM_OFF, IPV4_DST_OFF, IPV4_HLEN, IPV4_SRC_OFF, IPV4_TTL_OFF,
};
use super::parse::{ICMP_HLEN, L4, Packet};

/// ICMP echo reply type.
pub const ICMP_ECHO_REPLY: u8 = 0;
/// ICMP destination unreachable type.
pub const ICMP_DEST_UNREACH: u8 = 3;
/// ICMP echo request type.
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMP time exceeded type.
pub const ICMP_TIME_EXCEEDED: u8 = 11;

/// Turns a received ICMP echo request (parsed as `p` from `data`) into the echo reply in place:
/// addresses swapped, TTL 64, type 0, both checksums patched incrementally (the swap itself
/// leaves the IP checksum unchanged), Ethernet back to the sender from `our_mac`. Identifier,
/// sequence, payload, IP options and the frame length are kept.
///
/// `false` (unchanged) when `p` is not an echo request (type 8, code 0) or its ICMP checksum is
/// wrong (RFC 1122 says to drop those silently; the check is one pass over a ping payload, on
/// the slow path). Whether the destination is ours (never broadcast) is the caller's check.
pub fn echo_reply_in_place(data: &mut [u8], p: &Packet, our_mac: MacAddr) -> bool {
    let Some(ip) = p.ipv4() else { return false };
    if ip.l4
        != (L4::Icmp {
            icmp_type: ICMP_ECHO_REQUEST,
            code: 0,
        })
    {
        return false;
    }
    let Some((head, msg)) = data
        .get_mut(..ip.end())
        .and_then(|d| d.split_at_mut_checked(ip.l4_off))
    else {
        return false;
    };
    let Some(hdr) = head
        .get_mut(ip.l3_off..)
        .and_then(|h| h.first_chunk_mut::<IPV4_HLEN>())
    else {
        return false;
    };
    if !plain_valid(msg) {
        return false;
    }
    let Some(icmp) = msg.first_chunk_mut::<ICMP_HLEN>() else {
        return false;
    };
    let old_type = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = ICMP_ECHO_REPLY;
    let c = Delta::new()
        .add16(old_type, u16::from_be_bytes([icmp[0], icmp[1]]))
        .apply(u16::from_be_bytes([icmp[2], icmp[3]]));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());

    let ttl_word = u16::from_be_bytes([hdr[IPV4_TTL_OFF], hdr[IPV4_TTL_OFF + 1]]);
    hdr[IPV4_TTL_OFF] = DEFAULT_TTL;
    let new_word = u16::from_be_bytes([DEFAULT_TTL, hdr[IPV4_TTL_OFF + 1]]);
    let csum = u16::from_be_bytes([hdr[IPV4_CSUM_OFF], hdr[IPV4_CSUM_OFF + 1]]);
    let c = Delta::new().add16(ttl_word, new_word).apply(csum);
    hdr[IPV4_CSUM_OFF..IPV4_CSUM_OFF + 2].copy_from_slice(&c.to_be_bytes());
    hdr[IPV4_SRC_OFF..IPV4_SRC_OFF + 4].copy_from_slice(&ip.dst.octets());
    hdr[IPV4_DST_OFF..IPV4_DST_OFF + 4].copy_from_slice(&ip.src.octets());
    reply_macs(data, our_mac)
}
