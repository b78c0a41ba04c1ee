//! Next hop and transmit: where a packet leaves (route, neighbour, the port's MAC), from the
//! per-worker next-hop cache when it can, and packets parked until ARP resolves their next
//! hop (3 requests, 1 s apart, then a counted drop).

use std::net::Ipv4Addr;

use super::{Ctx, Output, Worker};
use crate::drop::DropReason;
use crate::engine::hop::{NextHop, Path};
use crate::engine::snapshot::Snapshot;
use crate::packet::ether::{MacAddr, set_macs};
use crate::packet::{Frame, arp};

impl<F: Frame> Worker<F> {
    /// Sends the parked packets whose next hop got resolved, retries ARP for the others, and
    /// drops those whose retries ran out.
    pub(super) fn release_pending(&mut self, ctx: &Ctx<'_>, out: &mut impl Output<F>) {
        if self.pending.is_empty() {
            return;
        }
        let neigh = ctx.neigh;
        let snap = ctx.snap;
        let counters = self.stats.worker(usize::from(self.id));
        self.pending.take_resolved(
            |ip| neigh.get(ip).is_some(),
            &mut |port, ip, mut f: F| match (neigh.get(ip), snap.port(port)) {
                (Some(e), Some(p)) => {
                    set_macs(f.data_mut(), MacAddr(e.mac), p.mac);
                    out.tx(port, f);
                }
                _ => counters.drop(DropReason::NeighUnresolved),
            },
        );
        // Room for every pending hop was reserved at construction: no allocation here.
        let mut due = std::mem::take(&mut self.arp_due);
        due.clear();
        self.pending.poll(
            ctx.now_ms,
            &mut |port, ip| due.push((port, ip)),
            &mut |f: F| {
                counters.drop(DropReason::NeighUnresolved);
                drop(f);
            },
        );
        for &(port, ip) in &due {
            self.send_arp_request(ctx, port, ip, out);
        }
        self.arp_due = due;
    }

    /// Sends an IPv4 packet towards `dst`: the cached next hop, else [`Self::send_resolving`].
    /// Inlined into every caller: a hit is a handful of instructions.
    #[inline(always)]
    pub(super) fn send_ip(&mut self, ctx: &Ctx<'_>, dst: Ipv4Addr, f: F, out: &mut impl Output<F>) {
        match self.hops.get(dst) {
            Some(hop) => transmit(hop, f, out),
            None => self.send_resolving(ctx, dst, f, out),
        }
    }

    /// [`Self::send_ip`] on a cache miss: route, then the next hop's MAC, or park the packet
    /// until ARP resolves it.
    #[inline(never)]
    pub(super) fn send_resolving(
        &mut self,
        ctx: &Ctx<'_>,
        dst: Ipv4Addr,
        f: F,
        out: &mut impl Output<F>,
    ) {
        match self.resolve(ctx, dst) {
            Ok((hop, _)) => transmit(hop, f, out),
            Err(why) => self.park(ctx, f, why, out),
        }
    }

    /// The next hop of `dst` from the route and neighbour tables, cached when complete; else
    /// what stopped it: no route, or the gateway (port, address) whose MAC is unknown.
    pub(super) fn resolve(
        &mut self,
        ctx: &Ctx<'_>,
        dst: Ipv4Addr,
    ) -> Result<(NextHop, Path), Unresolved> {
        let eg = egress(ctx.snap, dst).ok_or(Unresolved::NoRoute)?;
        self.resolve_via(ctx, dst, &eg)
    }

    /// [`Self::resolve`] of `dst` once its egress `eg` is known.
    pub(super) fn resolve_via(
        &mut self,
        ctx: &Ctx<'_>,
        dst: Ipv4Addr,
        eg: &Egress,
    ) -> Result<(NextHop, Path), Unresolved> {
        let Some(e) = ctx.neigh.get(eg.gw) else {
            return Err(Unresolved::Neigh(eg.port, eg.gw));
        };
        let hop = NextHop::new(eg.port, MacAddr(e.mac), eg.mac);
        let path = Path {
            on_link: eg.gw == dst,
            mtu: eg.mtu,
            src_ip: eg.src,
        };
        self.hops.put(dst, hop, path);
        Ok((hop, path))
    }

    /// A packet whose next hop is not resolved: dropped without a route, else queued for ARP.
    pub(super) fn park(&mut self, ctx: &Ctx<'_>, f: F, why: Unresolved, out: &mut impl Output<F>) {
        let Unresolved::Neigh(port, hop) = why else {
            return self.drop_pkt(f, DropReason::NoRoute);
        };
        match self.pending.push(hop, port, f, ctx.now_ms) {
            Ok(true) => self.send_arp_request(ctx, port, hop, out),
            Ok(false) => {}
            Err(f) => self.drop_pkt(f, DropReason::NeighPendingFull),
        }
    }

    fn send_arp_request(
        &mut self,
        ctx: &Ctx<'_>,
        port: u16,
        target: Ipv4Addr,
        out: &mut impl Output<F>,
    ) {
        let (Some(pc), Some(src_ip)) = (ctx.snap.port(port), ctx.snap.arp_source(port, target))
        else {
            return;
        };
        let Some(mut f) = out.alloc() else {
            return self.counters().drop(DropReason::NoBuffer);
        };
        if !f.set_len(arp::REQUEST_LEN) {
            return self.drop_pkt(f, DropReason::NoBuffer);
        }
        let len = arp::write_request(f.data_mut(), pc.mac, src_ip, target, None);
        if f.set_len(len) {
            out.tx(port, f);
        }
    }
}

/// Addresses `f` to its next hop and queues it on the hop's port.
#[inline(always)]
pub(super) fn transmit<F: Frame>(hop: NextHop, mut f: F, out: &mut impl Output<F>) {
    hop.address(f.data_mut());
    out.tx(hop.port, f)
}

/// How a packet for some destination leaves, by the route and port tables alone.
pub(super) struct Egress {
    pub(super) port: u16,
    /// The neighbour to hand it to: the route's gateway, else the destination itself.
    pub(super) gw: Ipv4Addr,
    pub(super) mac: MacAddr,
    pub(super) mtu: u16,
    /// Our address on the way (see [`Path::src_ip`]).
    pub(super) src: Ipv4Addr,
}

pub(super) fn egress(snap: &Snapshot, dst: Ipv4Addr) -> Option<Egress> {
    let (port, gw, src) = snap.routes.next_hop(dst)?;
    let pc = snap.port(port)?;
    Some(Egress {
        port,
        gw,
        mac: pc.mac,
        mtu: pc.mtu,
        src: src.or(pc.addr).unwrap_or(Ipv4Addr::UNSPECIFIED),
    })
}

/// Why a destination has no next hop yet.
pub(super) enum Unresolved {
    NoRoute,
    /// The MAC of this gateway (or directly connected host) on this port is unknown.
    Neigh(u16, Ipv4Addr),
}
