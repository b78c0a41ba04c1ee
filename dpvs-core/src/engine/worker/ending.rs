//! How connections end, and the RSTs that tell the ends of a connection that is no more.
//!
//! One word for each step:
//! - **uncount**: the connection leaves its service's and real server's ActiveConn/InActConn
//!   gauges;
//! - **release**: the entry has left the table: its local port goes back to its pool, the
//!   worker's connection gauge goes down;
//! - **retire** = uncount + release, when a connection ends on its own: its deadline passed
//!   (expiry), or a client's new SYN reuses its tuple;
//! - **cut**: its real server or service was deleted. It is uncounted at once (the control
//!   plane reuses the counter slots) and marked dead; a TCP entry is released when its next
//!   segment comes, which is answered by resetting both ends, or when its close timeout
//!   passes; a UDP, DR or TUN entry is released at once.

use hashbrown::HashMap;

use super::conns::{conn_time, deadline, endpoints, sock};
use super::{Ctx, Output, Worker};
use crate::drop::DropReason;
use crate::engine::conn::{Conn, ConnFlags, ConnId, Dir};
use crate::engine::laddr::PortPool;
use crate::engine::persist::TemplateKey;
use crate::engine::snapshot::LocalAddr;
use crate::engine::stats::Stats;
use crate::engine::tcp_state;
use crate::packet::ether::{ETH_ZLEN, MacAddr};
use crate::packet::ipv4::IpProto;
use crate::packet::parse::{L3, Packet};
use crate::packet::{Frame, tcp};

/// A counter slot no service or real server has (counts into nothing).
const NO_SLOT: u32 = u32::MAX;

impl<F: Frame> Worker<F> {
    /// Retires connections whose deadline passed, examining at most `budget` entries; renews
    /// the persistence templates of the live persistent connections it passes, and once more
    /// those of the ones that end (a template holds for its timeout after the last one).
    pub(super) fn expire(&mut self, ctx: &Ctx<'_>, budget: usize) {
        let (stats, w, pools) = (&self.stats, usize::from(self.id), &mut self.pools);
        let on_expire = |c: &Conn| {
            retire(stats, w, pools, c);
            if c.flags.contains(ConnFlags::PERSISTENT) {
                touch_template(ctx, c);
            }
        };
        self.conns
            .sweep(conn_time(ctx.now_ms), budget, on_expire, |c| {
                touch_template(ctx, c)
            });
    }

    /// Cuts the connections matching `pred`, whose real server or service was deleted; returns
    /// how many.
    pub(super) fn cut(&mut self, ctx: &Ctx<'_>, mut pred: impl FnMut(&Conn) -> bool) -> usize {
        let (stats, w, pools) = (&self.stats, usize::from(self.id), &mut self.pools);
        let grace = deadline(ctx.now_ms, ctx.snap.timeouts.close);
        let mut cut = 0;
        self.conns.retain_mut(
            |c| {
                if c.is_dead() || !pred(c) {
                    return true;
                }
                cut += 1;
                uncount(stats, w, c);
                (c.rs_slot, c.svc_slot) = (NO_SLOT, NO_SLOT as u16);
                c.flags |= ConnFlags::DEAD;
                c.expires = grace;
                // A DR or TUN connection cannot reset the real server (its replies bypass us):
                // it goes now, and the client's next segment is answered with a RST.
                c.proto == IpProto::TCP && !c.is_direct()
            },
            |c| release(stats, w, pools, c),
        );
        cut
    }

    /// A segment of a cut connection: the sender gets the RST its peer's stack would send,
    /// the other end gets a RST carrying the sequence number it expects (this segment's, since
    /// FullNAT leaves sequence numbers alone), and the entry is released.
    pub(super) fn reset_both(
        &mut self,
        ctx: &Ctx<'_>,
        pkt: &Packet,
        id: ConnId,
        dir: Dir,
        f: F,
        out: &mut impl Output<F>,
    ) {
        let c = self.conns.remove(id);
        release(&self.stats, usize::from(self.id), &mut self.pools, &c);
        let Some(t) = pkt.ipv4().and_then(|ip| ip.tcp()).copied() else {
            return self.drop_pkt(f, DropReason::NoConnection);
        };
        let ((sip, sport), (dip, dport)) = endpoints(&c, dir);
        let (src, dst) = (sock(sip, sport), sock(dip, dport));
        if t.flags & tcp::RST == 0 {
            if let Some(mut other) = out.alloc() {
                let built = other.set_len(ETH_ZLEN)
                    && tcp::write_rst(other.data_mut(), src, dst, t.seq).is_some();
                if built {
                    self.send_ip(ctx, *dst.ip(), other, out);
                }
            } else {
                self.counters().drop(DropReason::NoBuffer);
            }
        }
        let local = LocalAddr {
            port: 0,
            is_laddr: dir == Dir::Outbound,
            is_vip: dir == Dir::Inbound,
        };
        self.no_connection(ctx, pkt, local, f, out);
    }

    /// A packet for a connection that does not exist, to our address `local`. TCP is answered
    /// with a RST, as the real server's stack would: that is how a client learns its
    /// connection was cut when its real server is removed. Everything else is dropped.
    pub(super) fn no_connection(
        &mut self,
        ctx: &Ctx<'_>,
        pkt: &Packet,
        local: LocalAddr,
        mut f: F,
        out: &mut impl Output<F>,
    ) {
        let L3::Ipv4(ip) = pkt.l3 else { return };
        let reason = if local.is_laddr || ip.proto == IpProto::TCP {
            DropReason::NoConnection
        } else {
            DropReason::NoService
        };
        self.counters().drop(reason);
        if ip.proto != IpProto::TCP {
            return;
        }
        let mac = ctx.snap.port(local.port).map_or(MacAddr::ZERO, |p| p.mac);
        match tcp::rst_reply_in_place(f.data_mut(), pkt, mac) {
            Some(len) if f.set_len(len) => self.send_ip(ctx, ip.src, f, out),
            _ => drop(f),
        }
    }
}

/// Renews the template of persistent connection `c`'s client, if its service still has one.
fn touch_template(ctx: &Ctx<'_>, c: &Conn) {
    let Some(p) = ctx
        .snap
        .service_by_slot(u32::from(c.svc_slot))
        .and_then(|s| s.persistence)
    else {
        return;
    };
    let key = TemplateKey {
        svc_slot: c.svc_slot,
        client: c.cip & p.mask,
    };
    ctx.snap.templates.touch(key, ctx.now_ms, p.timeout_ms);
}

/// Uncounts and releases connection `c`, which left the table on its own.
pub(super) fn retire(stats: &Stats, w: usize, pools: &mut HashMap<u32, PortPool>, c: &Conn) {
    uncount(stats, w, c);
    release(stats, w, pools, c);
}

/// Takes connection `c` out of its service's and real server's ActiveConn/InActConn gauges.
fn uncount(stats: &Stats, w: usize, c: &Conn) {
    let active = c.proto == IpProto::TCP && tcp_state::is_active(c.state);
    for s in [u32::from(c.svc_slot), c.rs_slot] {
        if let Some(k) = stats.slot(w, s) {
            if active {
                k.active.sub(1)
            } else {
                k.inactive.sub(1)
            }
        }
    }
}

/// Returns connection `c`'s local port to its pool (FullNAT) and lowers the worker's
/// connection gauge: `c` has left the table.
pub(super) fn release(stats: &Stats, w: usize, pools: &mut HashMap<u32, PortPool>, c: &Conn) {
    if c.holds_local_port()
        && let Some(p) = pools.get_mut(&c.lip)
    {
        p.free(c.lport);
    }
    stats.worker(w).conns_active.sub(1);
}
