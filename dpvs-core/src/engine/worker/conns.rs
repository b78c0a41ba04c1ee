//! Connection life on the general path: a TCP or UDP packet finds its connection (or opens
//! one, see [`super::open`]), moves its TCP state and deadline, is counted, rewritten and sent.
//! How connections end is [`super::ending`]'s.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::ending::{release, retire};
use super::{Ctx, Output, Worker};
use crate::drop::DropReason;
use crate::engine::conn::{Conn, ConnFlags, ConnId, Dir, Tuple};
use crate::engine::stats::Stats;
use crate::engine::tcp_state::{self, TcpState};
use crate::packet::ipv4::IpProto;
use crate::packet::parse::{Ipv4Info, L4, Packet};
use crate::packet::{Frame, nat, tcp};

/// The longest timeout a connection deadline can hold: connections compare 32-bit wrapping
/// millisecond deadlines, which stay ordered for 2^31 ms (24.8 days).
pub const MAX_TIMEOUT_S: u32 = 2_000_000;

/// What a TCP or UDP packet of the general path is: its ports and TCP flags (0 for UDP).
#[derive(Clone, Copy, Debug)]
pub(super) struct Segment {
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) flags: u8,
}

impl<F: Frame> Worker<F> {
    /// An IPv4 packet on the general path: TCP and UDP here, anything else to
    /// [`super::local`].
    pub(super) fn on_ipv4(
        &mut self,
        ctx: &Ctx<'_>,
        (in_port, pkt, ip): (u16, &Packet, &Ipv4Info),
        f: F,
        out: &mut impl Output<F>,
    ) {
        let seg = match ip.l4 {
            L4::Tcp(t) if tcp::flags_valid(t.flags) => Segment {
                sport: t.sport,
                dport: t.dport,
                flags: t.flags,
            },
            L4::Tcp(_) => return self.drop_pkt(f, DropReason::BadTcpFlags),
            L4::Udp { sport, dport } => Segment {
                sport,
                dport,
                flags: 0,
            },
            _ => return self.on_other_ipv4(ctx, (in_port, pkt, ip), f, out),
        };
        self.on_segment(ctx, (in_port, pkt, ip), seg, f, out)
    }

    /// A TCP or UDP packet: its connection if it has one, else a new one if it opens one to a
    /// service, else the answer for a packet of no connection.
    fn on_segment(
        &mut self,
        ctx: &Ctx<'_>,
        (in_port, pkt, ip): (u16, &Packet, &Ipv4Info),
        seg: Segment,
        f: F,
        out: &mut impl Output<F>,
    ) {
        // The connection first: a hit (the common case) needs nothing else, and only our own
        // addresses ever get connections.
        let tuple = Tuple {
            proto: ip.proto,
            src: ip.src,
            sport: seg.sport,
            dst: ip.dst,
            dport: seg.dport,
        };
        if let Some((id, dir)) = self.conns.lookup(&tuple) {
            let c = self.conns.get(id);
            let gives_way = is_client_syn(c, dir, seg.flags) && (c.is_dead() || is_over(c));
            if !gives_way && c.is_dead() {
                return self.reset_both(ctx, pkt, id, dir, f, out);
            }
            if !gives_way {
                return self.forward(ctx, ip, (id, dir), seg.flags, f, out);
            }
            // LVS's connection reuse (its default `conn_reuse_mode`): a client's SYN on a
            // tuple whose connection is over, or was cut when its real server or service
            // went, is a new connection, scheduled afresh, not the old one re-opened towards
            // the real server it had (which may be gone).
            let old = self.conns.remove(id);
            let w = usize::from(self.id);
            if old.is_dead() {
                // A cut connection was uncounted when it was cut.
                release(&self.stats, w, &mut self.pools, &old);
            } else {
                retire(&self.stats, w, &mut self.pools, &old);
            }
        }
        self.open_or_answer(ctx, (in_port, pkt, ip), &tuple, seg.flags, f, out);
    }

    /// Forwards a packet of connection `id` travelling in `dir`: its TCP state (LVS's states,
    /// and the ActiveConn/InActConn gauges that follow them), its deadline, its counters, the
    /// rewrite of its mode and the next hop.
    pub(super) fn forward(
        &mut self,
        ctx: &Ctx<'_>,
        ip: &Ipv4Info,
        (id, dir): (ConnId, Dir),
        flags: u8,
        mut f: F,
        out: &mut impl Output<F>,
    ) {
        let w = usize::from(self.id);
        let c = self.conns.get_mut(id);
        let timeout_s = if c.proto == IpProto::TCP {
            let old = c.state;
            // Most segments are plain ACKs (with data) of an established connection.
            let plain = flags & (tcp::SYN | tcp::FIN | tcp::RST) == 0;
            let new = if old == TcpState::Established && plain {
                old
            } else if c.is_direct() {
                tcp_state::next_state_inbound_only(old, flags)
            } else {
                tcp_state::next_state(old, dir, flags)
            };
            if new != old {
                c.state = new;
                track_activity(&self.stats, w, c, old, new);
            }
            ctx.snap.timeouts.for_state(new)
        } else {
            ctx.snap.timeouts.udp
        };
        c.expires = deadline(ctx.now_ms, timeout_s);
        let ((sip, sport), (dip, dport)) = endpoints(c, dir);
        let (src, dst) = (sock(sip, sport), sock(dip, dport));
        let (slots, conn_flags) = ((c.svc_slot, c.rs_slot), c.flags);
        self.count_forwarded(slots, dir, ip.total_len);
        if conn_flags.intersects(ConnFlags::DIRECT) {
            return self.send_direct(ctx, conn_flags, *dst.ip(), ip.l3_off, f, out);
        }
        match nat::rewrite_ipv4(f.data_mut(), ip, src, dst, true) {
            Ok(()) => self.send_ip(ctx, *dst.ip(), f, out),
            Err(r) => self.drop_pkt(f, r),
        }
    }
}

/// The engine clock as connections store it (wrapping milliseconds).
pub(super) fn conn_time(now_ms: u64) -> u32 {
    now_ms as u32
}

/// A connection deadline `timeout_s` seconds after `now_ms`.
pub(super) fn deadline(now_ms: u64, timeout_s: u32) -> u32 {
    conn_time(now_ms).wrapping_add(timeout_s.min(MAX_TIMEOUT_S) * 1000)
}

/// The (source, destination) address and port a packet of `c` travelling in `dir` leaves
/// with: FullNAT swaps the client side for the local address side and back. (DR and TUN
/// leave the packet as it is; only the destination's address, the real server's, is used.)
#[inline]
pub(super) fn endpoints(c: &Conn, dir: Dir) -> ((u32, u16), (u32, u16)) {
    match dir {
        Dir::Inbound => ((c.lip, c.lport), (c.rip, c.rport)),
        Dir::Outbound => ((c.vip, c.vport), (c.cip, c.cport)),
    }
}

pub(super) fn sock(ip: u32, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from_bits(ip), port)
}

/// Moves a connection between ipvsadm's ActiveConn and InActConn gauges.
fn track_activity(stats: &Stats, w: usize, c: &Conn, old: TcpState, new: TcpState) {
    let (was, is) = (tcp_state::is_active(old), tcp_state::is_active(new));
    if was == is {
        return;
    }
    for s in [u32::from(c.svc_slot), c.rs_slot] {
        if let Some(k) = stats.slot(w, s) {
            if is {
                k.active.add(1);
                k.inactive.sub(1);
            } else {
                k.active.sub(1);
                k.inactive.add(1);
            }
        }
    }
}

/// Whether a segment with TCP `flags` travelling in `dir` is a client's SYN (opening a
/// connection) on connection `c`'s tuple.
fn is_client_syn(c: &Conn, dir: Dir, flags: u8) -> bool {
    c.proto == IpProto::TCP
        && dir == Dir::Inbound
        && flags & (tcp::SYN | tcp::ACK | tcp::FIN | tcp::RST) == tcp::SYN
}

/// Whether TCP connection `c` is over (TIME_WAIT or CLOSE): a client's new SYN on its tuple
/// is a new connection, as LVS takes it.
fn is_over(c: &Conn) -> bool {
    matches!(c.state, TcpState::TimeWait | TcpState::Close)
}
