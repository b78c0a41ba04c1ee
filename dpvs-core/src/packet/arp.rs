//! ARP answered and originated in the data plane: replies built in the request's own buffer,
//! and requests/announcements written into a fresh one.

use core::net::Ipv4Addr;

use super::ether::{ETH_ZLEN, ETHERTYPE_ARP, MacAddr, set_macs, write_header};
use super::parse::{ARP_LEN, ArpInfo, Packet};
pub use super::parse::{ARP_OP_REPLY as OP_REPLY, ARP_OP_REQUEST as OP_REQUEST};

/// Length of every ARP frame [`write_arp`] produces (the 60-byte minimum frame, VLAN tag or
/// not): the buffer size to reserve before writing one.
pub const REQUEST_LEN: usize = ETH_ZLEN;

impl ArpInfo {
    /// Whether this is a gratuitous ARP (sender and target address equal): an announcement
    /// to learn from, not a question (when the address is one of ours, it is a conflict).
    pub fn is_gratuitous(&self) -> bool {
        self.spa == self.tpa
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        self.op == OP_REQUEST
    }

    /// Whether this is a reply.
    pub fn is_reply(&self) -> bool {
        self.op == OP_REPLY
    }
}

/// Turns a received ARP request (parsed as `p` from `data`) into the reply in place: Ethernet
/// to the requester from `our_mac`, op 2, sender = (`our_mac`, the address asked for), target =
/// the requester. The VLAN tag and the frame length are kept. Whether the target address is
/// ours is the caller's check. `false` (unchanged) when `p` is not an ARP request or the bytes
/// do not hold it.
pub fn reply_in_place(data: &mut [u8], p: &Packet, our_mac: MacAddr) -> bool {
    let Some(req) = p.arp().filter(|a| a.is_request()) else {
        return false;
    };
    let Some(arp) = data
        .get_mut(p.l3_off..)
        .and_then(|d| d.first_chunk_mut::<ARP_LEN>())
    else {
        return false;
    };
    let reply = ArpInfo {
        op: OP_REPLY,
        sha: our_mac,
        spa: req.tpa,
        tha: req.sha,
        tpa: req.spa,
    };
    *arp = arp_bytes(&reply);
    set_macs(data, req.sha, our_mac)
}

/// Writes a complete ARP frame (Ethernet source = `arp.sha`, destination `eth_dst`, optional
/// VLAN tag) at the start of `buf`, zero padded to the 60-byte minimum frame, and returns the
/// frame length ([`REQUEST_LEN`]); 0 (nothing written) when `buf` is shorter than that.
#[must_use]
pub fn write_arp(buf: &mut [u8], eth_dst: MacAddr, vlan: Option<u16>, arp: &ArpInfo) -> usize {
    let Some(frame) = buf.get_mut(..REQUEST_LEN) else {
        return 0;
    };
    let Some(l3_off) = write_header(frame, eth_dst, arp.sha, ETHERTYPE_ARP, vlan) else {
        return 0;
    };
    let Some((body, pad)) = frame
        .get_mut(l3_off..)
        .and_then(|b| b.split_at_mut_checked(ARP_LEN))
    else {
        return 0;
    };
    body.copy_from_slice(&arp_bytes(arp));
    pad.fill(0);
    REQUEST_LEN
}

/// Writes a broadcast "who-has `target_ip`, tell `src_ip`" into `buf`; returns the frame
/// length ([`REQUEST_LEN`]), or 0 (nothing written) when `buf` is shorter than that.
#[must_use]
pub fn write_request(
    buf: &mut [u8],
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
    vlan: Option<u16>,
) -> usize {
    let req = ArpInfo {
        op: OP_REQUEST,
        sha: src_mac,
        spa: src_ip,
        tha: MacAddr::ZERO,
        tpa: target_ip,
    };
    write_arp(buf, MacAddr::BROADCAST, vlan, &req)
}

/// Writes a gratuitous ARP announcing `ip` at `mac` (a broadcast request with sender and
/// target address both `ip`, the RFC 5227 announcement form), sent when a VIP comes up or
/// moves so neighbours update their caches at once. Length as [`write_request`].
#[must_use]
pub fn write_gratuitous(buf: &mut [u8], mac: MacAddr, ip: Ipv4Addr, vlan: Option<u16>) -> usize {
    write_request(buf, mac, ip, ip, vlan)
}

/// The 28 wire bytes of an Ethernet/IPv4 ARP packet.
fn arp_bytes(a: &ArpInfo) -> [u8; ARP_LEN] {
    let mut b = [0u8; ARP_LEN];
    b[..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    b[6..8].copy_from_slice(&a.op.to_be_bytes());
    b[8..14].copy_from_slice(&a.sha.0);
    b[14..18].copy_from_slice(&a.spa.octets());
    b[18..24].copy_from_slice(&a.tha.0);
    b[24..28].copy_from_slice(&a.tpa.octets());
    b
}
