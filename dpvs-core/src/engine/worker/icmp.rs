//! ICMP errors about connections: a destination unreachable (any code, "fragmentation needed"
//! included) or time exceeded that a host or router sends about a packet the balancer
//! forwarded reaches the other end of the packet's connection, translated so that it reads as
//! if the balancer were not there. Path MTU discovery works through the balancer that way, and
//! a connection learns of an unreachable peer at once rather than by timeout.
//!
//! The error quotes the packet as the balancer sent it; the reverse of that packet's tuple is
//! one its connection is indexed under ([`quoted_reply_tuple`]), and the direction the table
//! finds it in is the way the error travels on:
//! - from the real servers' side, about a packet `LIP:lport → RIP:rport` (the error to the
//!   local address; in NAT mode to the client's address, routed through us): found as a reply
//!   `RIP:rport → LIP:lport` (outbound), it goes to the client from the VIP, quoting the
//!   client's own `CIP:cport → VIP:vport`;
//! - from the clients' side, about a reply `VIP:vport → CIP:cport` (the error to the VIP):
//!   found as a client packet `CIP:cport → VIP:vport` (inbound), it goes to the real server
//!   quoting its own `RIP:rport → LIP:lport`, from the local address (FullNAT: the real server
//!   may know no route to the clients) or from its own sender (NAT: the real server routes to
//!   the clients' side through us anyway, and the reporting router is worth seeing, as in
//!   traceroute);
//! - DR and TUN connections only see the clients' side: an error about a real server's direct
//!   reply `VIP:vport → CIP:cport` reaches the VIP, that is us, and goes on to the real server
//!   unchanged, the way the client's packets go (its MAC, or IP-in-IP).
//!
//! A "fragmentation needed" keeps its next-hop MTU: FullNAT and NAT rewrite addresses and
//! ports in place and add no byte, so a packet that did not fit the narrow link as we sent it
//! does not fit it as its sender sent it either; and the direct replies of DR and TUN do not
//! pass us at all. The outer header's TTL goes down by one, as for any forwarded packet.

use std::net::{Ipv4Addr, SocketAddrV4};

use super::conns::{endpoints, sock};
use super::{Ctx, Output, Worker};
use crate::drop::DropReason;
use crate::engine::conn::{Conn, ConnFlags, ConnId, Dir};
use crate::engine::steer::quoted_reply_tuple;
use crate::packet::icmp_error::{self, Quoted};
use crate::packet::parse::Ipv4Info;
use crate::packet::{Frame, nat};

impl<F: Frame> Worker<F> {
    /// An ICMP error ([`icmp_error::is_error`]) received on `in_port`. One about a live
    /// connection is relayed to its other end. One to our address is otherwise dropped and
    /// counted: `bad_icmp_error` for a quote that cannot be read (see [`icmp_error::quoted`])
    /// or an error not sent to the quoted packet's source, `icmp_no_connection` for a stray
    /// one. One to another address, routed through us, and not about a NAT connection is the
    /// kernel's, like any other packet in transit.
    pub(super) fn on_icmp_error(
        &mut self,
        ctx: &Ctx<'_>,
        (in_port, ip): (u16, &Ipv4Info),
        f: F,
        out: &mut impl Output<F>,
    ) {
        let ours = ctx.snap.local(ip.dst).is_some();
        let found = icmp_error::quoted(f.data(), ip)
            .and_then(|q| sent_to_quoted_source(ip, q))
            .map(|q| (q, self.live_conn_of(&q)));
        match found {
            Ok((q, Some(conn))) => self.relay_icmp_error(ctx, ip, &q, conn, f, out),
            _ if !ours => self.not_for_us(ctx, in_port, f, DropReason::NotOurs, out),
            Ok((_, None)) => self.drop_pkt(f, DropReason::IcmpNoConnection),
            Err(r) => self.drop_pkt(f, r),
        }
    }

    /// The live connection of the packet `q` quotes, and the direction the error travels on it.
    /// A cut connection is no longer forwarded to: it has none.
    fn live_conn_of(&self, q: &Quoted) -> Option<(ConnId, Dir)> {
        self.conns
            .lookup(&quoted_reply_tuple(q))
            .filter(|(id, _)| !self.conns.get(*id).is_dead())
    }

    /// Relays the ICMP error `ip`, quoting `q`, to the other end of connection `id`, travelling
    /// in `dir`: unchanged to a DR or TUN real server, translated in the NAT modes. Counted
    /// with the connection's packets, as IPVS counts them; its deadline and TCP state stay
    /// (an error is no sign of life, and the end decides what it means).
    fn relay_icmp_error(
        &mut self,
        ctx: &Ctx<'_>,
        ip: &Ipv4Info,
        q: &Quoted,
        (id, dir): (ConnId, Dir),
        f: F,
        out: &mut impl Output<F>,
    ) {
        // Checked only now: a full sum over an error that is about no connection is wasted.
        if !icmp_error::checksum_valid(f.data(), ip) {
            return self.drop_pkt(f, DropReason::BadIcmpError);
        }
        let c = *self.conns.get(id);
        self.count_forwarded((c.svc_slot, c.rs_slot), dir, ip.total_len);
        if c.is_direct() {
            let rs = Ipv4Addr::from_bits(c.rip);
            return self.send_direct(ctx, c.flags, rs, ip.l3_off, f, out);
        }
        self.send_translated(ctx, ip, q, (&c, dir), f, out);
    }

    /// Sends the ICMP error `ip`, quoting `q`, to the end of NAT or FullNAT connection `c`
    /// that `dir` leads to, translated: see the module doc.
    fn send_translated(
        &mut self,
        ctx: &Ctx<'_>,
        ip: &Ipv4Info,
        q: &Quoted,
        (c, dir): (&Conn, Dir),
        mut f: F,
        out: &mut impl Output<F>,
    ) {
        // What the receiving end sent, as it sent it, is the quote it must find.
        let theirs = c.tuple(dir.reverse());
        let (quote_src, quote_dst) = (
            SocketAddrV4::new(theirs.src, theirs.sport),
            SocketAddrV4::new(theirs.dst, theirs.dport),
        );
        let to = Ipv4Addr::from_bits(endpoints(c, dir).1.0);
        let from = error_source(c, dir, ip.src);
        let translated = icmp_error::rewrite_quoted(f.data_mut(), ip, q, quote_src, quote_dst)
            .and_then(|()| {
                nat::rewrite_ipv4(f.data_mut(), ip, sock(from, 0), sock(to.to_bits(), 0), true)
            });
        match translated {
            Ok(()) => self.send_ip(ctx, to, f, out),
            Err(r) => self.drop_pkt(f, r),
        }
    }
}

/// The source of an error relayed on connection `c` in `dir`, first sent by `reporter`: the
/// address the receiving end sent its packet to, which is all it knows of the way (the VIP
/// for a client, the local address for a FullNAT real server); but a NAT real server gets the
/// reporter's own address (see the module doc).
fn error_source(c: &Conn, dir: Dir, reporter: Ipv4Addr) -> u32 {
    if dir == Dir::Inbound && c.flags.contains(ConnFlags::NAT) {
        reporter.to_bits()
    } else {
        endpoints(c, dir).0.0
    }
}

/// `q`, if the error `ip` quoting it went to the quoted packet's source, as errors do (RFC
/// 792): one sent elsewhere is inconsistent, and no end should act on it.
fn sent_to_quoted_source(ip: &Ipv4Info, q: Quoted) -> Result<Quoted, DropReason> {
    if *q.src.ip() == ip.dst {
        Ok(q)
    } else {
        Err(DropReason::BadIcmpError)
    }
}
