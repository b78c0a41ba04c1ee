//! Steering: which worker processes a packet. Every packet of a connection must reach the
//! worker that owns it (its connection table, its slice of the local ports); this is the one
//! function that decides, from the packet's headers and the snapshot alone.

use std::net::Ipv4Addr;

use crate::engine::conn::Tuple;
use crate::engine::laddr::port_owner;
use crate::engine::snapshot::{LocalAddr, Snapshot};
use crate::packet::icmp_error::{self, Quoted};
use crate::packet::ipv4::IpProto;
use crate::packet::parse::{self, L3, Packet};

/// The worker that must process the frame `data`, parsed as `pkt`: the owner of its (possible)
/// connection. For an ICMP error about a TCP or UDP packet, that is the owner of the
/// connection of the packet it quotes (see [`quoted_reply_tuple`]): a FullNAT real server's
/// error to a local address goes by the quoted local port, a client-side error to a VIP by
/// the quoted client endpoint, and an error routed through us to a NAT client like the NAT
/// replies. `None` when any worker may: one worker, or a packet of no connection (ARP, ICMP
/// echo, an ICMP error whose quote cannot be read).
pub fn owner(snap: &Snapshot, workers: u16, data: &[u8], pkt: &Packet) -> Option<u16> {
    let L3::Ipv4(ip) = &pkt.l3 else { return None };
    let t = match ip.ports() {
        Some((sport, dport)) => tuple_of(ip.proto, ip.src, sport, ip.dst, dport),
        None if icmp_error::is_error(ip) => {
            let q = icmp_error::quoted(data, ip).ok()?;
            quoted_reply_tuple(&q)
        }
        None => return None,
    };
    l4_owner(snap, workers, &t)
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
        None => owner(snap, workers, data, &parse::parse(data).ok()?),
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

/// The tuple of the packets that travel opposite to the one an ICMP error quotes. The quoted
/// packet is one that left us (rewritten) or passed through us; its reverse is a tuple its
/// connection is indexed and steered under: for a FullNAT packet `LIP:lport → RIP:rport`, the
/// real server's replies `RIP:rport → LIP:lport`; for a reply `VIP:vport → CIP:cport`, the
/// client's packets `CIP:cport → VIP:vport`.
pub(crate) fn quoted_reply_tuple(q: &Quoted) -> Tuple {
    tuple_of(
        q.proto,
        *q.dst.ip(),
        q.dst.port(),
        *q.src.ip(),
        q.src.port(),
    )
}

/// The owner of a client's connection: a hash of the client endpoint (address and port),
/// modulo the workers. Client packets carry the endpoint as their source, NAT-mode replies as
/// their destination, so both directions of a NAT connection reach the same worker.
pub fn client_owner(client: Ipv4Addr, port: u16, workers: u16) -> u16 {
    let k = (u64::from(client.to_bits()) << 16) | u64::from(port);
    let h = k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) % u64::from(workers.max(1))) as u16
}
