//! The modes whose replies bypass the balancer: direct routing (the client's packet to the
//! real server's MAC on our link) and IP-in-IP (the client's packet in an outer header from
//! our address on the way, with ICMP "fragmentation needed" when it no longer fits).

use std::net::Ipv4Addr;

use super::xmit::{Unresolved, egress, transmit};
use super::{Ctx, Output, Worker};
use crate::drop::DropReason;
use crate::engine::conn::ConnFlags;
use crate::packet::Frame;
use crate::packet::ether::{self, ETH_HLEN, ETH_ZLEN, ETHERTYPE_IPV4, MacAddr};
use crate::packet::ipip::{self, EncapError};
use crate::packet::ipv4::{IPV4_PROTO_OFF, IpProto};

impl<F: Frame> Worker<F> {
    /// Sends a packet of a DR or TUN connection (`conn_flags`) to real server `rs`, the IPv4
    /// packet at `l3_off` as the client sent it. Kept out of line, so that it does not weigh
    /// on the NAT modes' fast path it is called from.
    #[inline(never)]
    pub(super) fn send_direct(
        &mut self,
        ctx: &Ctx<'_>,
        conn_flags: ConnFlags,
        rs: Ipv4Addr,
        l3_off: usize,
        f: F,
        out: &mut impl Output<F>,
    ) {
        if conn_flags.contains(ConnFlags::TUN) {
            return self.send_tunnelled(ctx, rs, l3_off, f, out);
        }
        match self.hops.get_path(rs) {
            Some((hop, path)) if path.on_link => transmit(hop, f, out),
            Some(_) => self.drop_pkt(f, DropReason::RsNotOnLink),
            None => self.send_routed_resolving(ctx, rs, f, out),
        }
    }

    /// Direct routing on a next-hop cache miss: the real server must be the next hop itself.
    #[inline(never)]
    fn send_routed_resolving(
        &mut self,
        ctx: &Ctx<'_>,
        rs: Ipv4Addr,
        f: F,
        out: &mut impl Output<F>,
    ) {
        match self.resolve(ctx, rs) {
            Ok((hop, path)) if path.on_link => transmit(hop, f, out),
            Err(why @ Unresolved::Neigh(_, gw)) if gw == rs => self.park(ctx, f, why, out),
            Err(Unresolved::NoRoute) => self.drop_pkt(f, DropReason::NoRoute),
            Ok(_) | Err(Unresolved::Neigh(..)) => self.drop_pkt(f, DropReason::RsNotOnLink),
        }
    }

    /// IP-in-IP to real server `rs`, from our address on the way there. A packet the outer
    /// header makes too big for the egress MTU is dropped; if it forbids fragmentation, its
    /// sender is told the MTU that fits (path MTU discovery then shrinks its packets).
    fn send_tunnelled(
        &mut self,
        ctx: &Ctx<'_>,
        rs: Ipv4Addr,
        l3_off: usize,
        f: F,
        out: &mut impl Output<F>,
    ) {
        let Some((hop, path)) = self.hops.get_path(rs) else {
            return self.send_tunnelled_resolving(ctx, rs, l3_off, f, out);
        };
        if let Some(f) = self.encapsulate(ctx, (path.src_ip, rs), path.mtu, l3_off, f, out) {
            transmit(hop, f, out);
        }
    }

    /// [`Self::send_tunnelled`] on a next-hop cache miss: the egress found for the outer
    /// header serves the resolution too.
    #[inline(never)]
    fn send_tunnelled_resolving(
        &mut self,
        ctx: &Ctx<'_>,
        rs: Ipv4Addr,
        l3_off: usize,
        f: F,
        out: &mut impl Output<F>,
    ) {
        let Some(eg) = egress(ctx.snap, rs) else {
            return self.drop_pkt(f, DropReason::NoRoute);
        };
        let Some(f) = self.encapsulate(ctx, (eg.src, rs), eg.mtu, l3_off, f, out) else {
            return;
        };
        match self.resolve_via(ctx, rs, &eg) {
            Ok((hop, _)) => transmit(hop, f, out),
            Err(why) => self.park(ctx, f, why, out),
        }
    }

    /// Puts the IPv4 packet at `l3_off` of `f` in an outer header `src` → `dst` for a link of
    /// `mtu`; `None` when it could not (the packet dropped and counted, and its sender told
    /// of the MTU when it forbids fragmentation).
    #[inline(always)]
    fn encapsulate(
        &mut self,
        ctx: &Ctx<'_>,
        (src, dst): (Ipv4Addr, Ipv4Addr),
        mtu: u16,
        l3_off: usize,
        mut f: F,
        out: &mut impl Output<F>,
    ) -> Option<F> {
        // No address of ours on the way: nothing to source the tunnel from.
        if src.is_unspecified() {
            self.drop_pkt(f, DropReason::NoRoute);
            return None;
        }
        match ipip::encapsulate(&mut f, l3_off, src, dst, mtu) {
            Ok(()) => return Some(f),
            Err(EncapError::TooBig { df: true }) => {
                self.send_frag_needed(ctx, f.data().get(l3_off..).unwrap_or(&[]), mtu, out);
                self.drop_pkt(f, DropReason::TooBig)
            }
            Err(e) => self.drop_pkt(f, e.reason()),
        }
        None
    }

    /// Tells the sender of the IPv4 packet `ip` that it must fit in `mtu` bytes with the
    /// tunnel header, from the address it sent to (the VIP).
    fn send_frag_needed(&mut self, ctx: &Ctx<'_>, ip: &[u8], mtu: u16, out: &mut impl Output<F>) {
        // The only ICMP a tunnel carries are errors relayed to the real server (`super::icmp`),
        // and no error may be sent about an error (RFC 1122 §3.2.2).
        if ip.get(IPV4_PROTO_OFF) == Some(&IpProto::ICMP.0) {
            return;
        }
        let mut quoted = [0u8; 68];
        let q = ipip::quote(ip);
        let Some(((client, vip), quoted)) = ip_pair(ip).zip(quoted.get_mut(..q.len())) else {
            return;
        };
        quoted.copy_from_slice(q);
        let Some(mut e) = out.alloc() else {
            return self.counters().drop(DropReason::NoBuffer);
        };
        let len = ipip::frag_needed_len(ETH_HLEN, quoted.len());
        let inner_mtu = mtu.saturating_sub(ipip::OVERHEAD as u16);
        let built = e.set_len(len.max(ETH_ZLEN))
            && ether::write_header(
                e.data_mut(),
                MacAddr::ZERO,
                MacAddr::ZERO,
                ETHERTYPE_IPV4,
                None,
            )
            .is_some()
            && ipip::write_frag_needed(e.data_mut(), ETH_HLEN, vip, client, inner_mtu, quoted)
                .is_some();
        if built {
            self.send_ip(ctx, client, e, out);
        } else {
            self.drop_pkt(e, DropReason::NoBuffer);
        }
    }
}

/// The source and destination addresses of the IPv4 header at the start of `ip`.
fn ip_pair(ip: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr)> {
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    Some((Ipv4Addr::from(src), Ipv4Addr::from(dst)))
}
