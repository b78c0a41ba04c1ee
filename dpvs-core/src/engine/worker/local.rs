//! Traffic for the balancer itself: ARP for its addresses (answered on the port the address
//! lives on, the sender learnt) and ICMP echo (answered in place); ICMP errors are
//! [`super::icmp`]'s. On a port with a kernel twin, the kernel gets a copy of the ARP the
//! data plane consumes (so both neighbour tables learn) and whatever else is not the data
//! plane's.

use std::net::Ipv4Addr;

use super::{Ctx, Event, Output, Worker};
use crate::drop::DropReason;
use crate::packet::ether::MacAddr;
use crate::packet::ipv4::IpProto;
use crate::packet::parse::{Ipv4Info, L3, L4, Packet};
use crate::packet::{Frame, arp, icmp, icmp_error};

const ICMP_ECHO_REQUEST: u8 = 8;

impl<F: Frame> Worker<F> {
    /// An ARP packet received on `in_port`.
    pub(super) fn on_arp(
        &mut self,
        ctx: &Ctx<'_>,
        in_port: u16,
        pkt: &Packet,
        mut f: F,
        out: &mut impl Output<F>,
    ) {
        let L3::Arp(a) = pkt.l3 else { return };
        // Answer only on the port the address lives on, as DPVS does (not Linux's arp_ignore=0).
        let ours = ctx.snap.local(a.tpa).is_some_and(|l| l.port == in_port);
        let (true, Some(port)) = (ours, ctx.snap.port(in_port)) else {
            return self.not_for_us(ctx, in_port, f, DropReason::ArpIgnored, out);
        };
        self.learn(ctx, a.spa, a.sha, in_port);
        if port.kni {
            self.copy_to_kernel(in_port, f.data(), out);
        }
        if a.op == arp::OP_REQUEST && arp::reply_in_place(f.data_mut(), pkt, port.mac) {
            out.tx(in_port, f);
        }
        // A reply to one of our requests is consumed by learning it.
    }

    /// Hands a copy of the frame `data`, received on `port`, to the port's kernel twin.
    #[cold]
    fn copy_to_kernel(&self, port: u16, data: &[u8], out: &mut impl Output<F>) {
        let Some(mut copy) = out.alloc() else {
            return self.counters().drop(DropReason::NoBuffer);
        };
        if !copy.set_len(data.len()) {
            return self.drop_pkt(copy, DropReason::NoBuffer);
        }
        copy.data_mut().copy_from_slice(data);
        match out.to_kernel(port, copy) {
            Ok(()) => self.counters().to_kernel.add(1),
            Err(copy) => self.drop_pkt(copy, DropReason::KernelFull),
        }
    }

    /// Learns from an ARP packet that `ip` is at `mac` behind `port`, telling the control
    /// plane (which publishes neighbours to every worker) unless it knows already.
    fn learn(&mut self, ctx: &Ctx<'_>, ip: Ipv4Addr, mac: MacAddr, port: u16) {
        // Someone claiming one of our addresses is a conflict, not a neighbour.
        if ip.is_unspecified() || mac.is_multicast() || ctx.snap.local(ip).is_some() {
            return;
        }
        let known = ctx
            .neigh
            .get(ip)
            .is_some_and(|e| e.mac == mac.0 && e.port == port);
        // A full queue loses the event; the neighbour's next ARP packet repeats it.
        if !known && self.events.len() < self.events.capacity() {
            self.events.push_back(Event::NeighLearned { ip, mac, port });
        }
    }

    /// IPv4 that is neither TCP nor UDP, received on `in_port`: ICMP errors go to
    /// [`super::icmp`] (they may be about a connection, also when routed through us); ICMP
    /// echo to our addresses is answered; anything else not to us is the kernel's.
    pub(super) fn on_other_ipv4(
        &mut self,
        ctx: &Ctx<'_>,
        (in_port, pkt, ip): (u16, &Packet, &Ipv4Info),
        f: F,
        out: &mut impl Output<F>,
    ) {
        if icmp_error::is_error(ip) {
            return self.on_icmp_error(ctx, (in_port, ip), f, out);
        }
        if ctx.snap.local(ip.dst).is_none() {
            return self.not_for_us(ctx, in_port, f, DropReason::NotOurs, out);
        }
        match ip.l4 {
            L4::Icmp {
                icmp_type: ICMP_ECHO_REQUEST,
                ..
            } if ip.proto == IpProto::ICMP => self.echo_reply(ctx, pkt, ip, f, out),
            L4::Icmp { .. } => self.drop_pkt(f, DropReason::IcmpIgnored),
            _ => self.drop_pkt(f, DropReason::UnknownL4Proto),
        }
    }

    fn echo_reply(
        &mut self,
        ctx: &Ctx<'_>,
        pkt: &Packet,
        ip: &Ipv4Info,
        mut f: F,
        out: &mut impl Output<F>,
    ) {
        let mac = ctx
            .snap
            .local(ip.dst)
            .and_then(|l| ctx.snap.port(l.port))
            .map_or(MacAddr::ZERO, |p| p.mac);
        if icmp::echo_reply_in_place(f.data_mut(), pkt, mac) {
            self.send_ip(ctx, ip.src, f, out);
        } else {
            self.drop_pkt(f, DropReason::IcmpIgnored);
        }
    }
}
