//! Steering: which worker processes a packet. Every packet of a connection must reach the
//! worker that owns it (its connection table, its slice of the local ports); this is the one
//! function that decides, from the packet's headers and the snapshot alone.

use std::net::Ipv4Addr;

use crate::engine::conn::Tuple;
use crate::engine::laddr::port_owner;
use crate::engine::snapshot::{LocalAddr, Snapshot};
use crate::packet::ipv4::IpProto;
use crate::packet::parse::{self, L3, Packet};

/// The worker that must process a parsed packet: the owner of its (possible) connection. `None`
/// when any worker may: one worker, or a packet that is not TCP or UDP (ARP, ICMP).
pub fn owner(snap: &Snapshot, workers: u16, pkt: &Packet) -> Option<u16> {
    let L3::Ipv4(ip) = &pkt.l3 else { return None };
    let (sport, dport) = ip.ports()?;
    l4_owner(
        snap,
        workers,
        &tuple_of(ip.proto, ip.src, sport, ip.dst, dport),
    )
}

/// [`owner`] of the frame in `data`, parsed only as far as needed: the common layout in
/// straight-line code, anything else with the general parse.
#[inline]
pub fn steer(snap: &Snapshot, workers: u16, data: &[u8]) -> Option<u16> {
    if workers <= 1 {
        return None;
    }
    match parse::common(data) {
        Some(h) => l4_owner(snap, workers, &common_tuple(&h)),
        None => owner(snap, workers, &parse::parse(data).ok()?),
    }
}

/// The owner of a TCP or UDP packet with tuple `t`:
/// - a client packet, to a service of a VIP: the owner of its source endpoint;
/// - a packet to any other address of ours, which may be a FullNAT reply to a local address
///   (or to one that was a local address until an `laddr del`: its connections go on): the
///   worker whose share of local ports holds its destination port;
/// - anything else, which can only be a NAT-mode reply (the real server sends it to the
///   client through us): the owner of its destination endpoint.
fn l4_owner(snap: &Snapshot, workers: u16, t: &Tuple) -> Option<u16> {
    if workers <= 1 {
        return None;
    }
    let to_client_side = |l: LocalAddr| {
        // A VIP that is also a local address: its service ports are the client side.
        l.is_vip && (!l.is_laddr || snap.service(t.proto, t.dst, t.dport).is_some())
    };
    Some(match snap.local(t.dst) {
        Some(l) if to_client_side(l) => client_owner(t.src, t.sport, workers),
        Some(_) => port_owner(t.dport, workers),
        None => client_owner(t.dst, t.dport, workers),
    })
}

fn tuple_of(proto: IpProto, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Tuple {
    Tuple {
        proto,
        src,
        sport,
        dst,
        dport,
    }
}

/// The connection tuple of a common-layout packet.
#[inline]
pub(crate) fn common_tuple(h: &parse::Common) -> Tuple {
    tuple_of(h.proto, h.src, h.sport, h.dst, h.dport)
}

/// The owner of a client's connection: a hash of the client endpoint (address and port),
/// modulo the workers. Client packets carry the endpoint as their source, NAT-mode replies as
/// their destination, so both directions of a NAT connection reach the same worker.
pub fn client_owner(client: Ipv4Addr, port: u16, workers: u16) -> u16 {
    let k = (u64::from(client.to_bits()) << 16) | u64::from(port);
    let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) % u64::from(workers.max(1))) as u16
}
