//! The fast path: a burst's straight-line classification, and the forwarding of a packet of
//! an established connection from its connection entry alone.

use std::net::Ipv4Addr;

use super::conns::{deadline, endpoints};
use super::{Ctx, Output, Worker};
use crate::drop::DropReason;
use crate::engine::conn::{Bucket, ConnFlags, Dir};
use crate::engine::steer::common_tuple;
use crate::engine::tcp_state::TcpState;
use crate::packet::ether::ETH_HLEN;
use crate::packet::ipv4::IpProto;
use crate::packet::{Frame, nat, parse, tcp};

impl<F: Frame> Worker<F> {
    /// The common-layout header of `f` and its connection bucket (whose head it starts to
    /// load), or `None` for a packet the general path must look at.
    #[inline(always)]
    pub(super) fn classify(&self, f: &F) -> Option<(parse::Common, Bucket)> {
        let h = parse::common(f.data())?;
        let b = self.conns.bucket(&common_tuple(&h));
        self.conns.prefetch_bucket(b);
        Some((h, b))
    }

    /// The fast path when it applies, else the general path. Inlined into the burst loop, so
    /// that a fast-path packet costs no call; the general path is a call of its own.
    #[inline(always)]
    pub(super) fn process_classified(
        &mut self,
        ctx: &Ctx<'_>,
        in_port: u16,
        f: F,
        common: Option<&(parse::Common, Bucket)>,
        out: &mut impl Output<F>,
    ) {
        let f = match common {
            Some((h, b)) => match self.forward_established(ctx, h, *b, f, out) {
                Some(f) => f,
                None => return,
            },
            None => f,
        };
        self.process_general(ctx, in_port, f, out);
    }

    /// The fast path: a TCP segment without SYN, FIN or RST of an ESTABLISHED connection, or a
    /// datagram of a UDP connection, in the common frame layout ([`parse::common`]) whose
    /// connection bucket is `b`, in any forwarding mode. That is nearly every packet of a busy
    /// balancer, and it needs the connection and nothing else: no state change, no gauge
    /// moves, no service. Any other packet is handed back (`Some`) for the general path,
    /// which decides on it afresh.
    #[inline(always)]
    pub(super) fn forward_established(
        &mut self,
        ctx: &Ctx<'_>,
        h: &parse::Common,
        b: Bucket,
        mut f: F,
        out: &mut impl Output<F>,
    ) -> Option<F> {
        let plain = h.proto == IpProto::UDP
            || h.tcp_flags & (tcp::SYN | tcp::FIN | tcp::RST | tcp::ACK) == tcp::ACK;
        if !plain || h.ttl <= 1 {
            return Some(f);
        }
        let Some((id, dir)) = self.conns.lookup_in(b, &common_tuple(h)) else {
            return Some(f);
        };
        let c = self.conns.get_mut(id);
        let timeout_s = match c.proto {
            _ if c.is_dead() => return Some(f),
            IpProto::TCP if c.state != TcpState::Established => return Some(f),
            IpProto::TCP => ctx.snap.timeouts.established,
            _ => ctx.snap.timeouts.udp,
        };
        c.expires = deadline(ctx.now_ms, timeout_s);
        let (src, dst) = endpoints(c, dir);
        let (slots, conn_flags) = ((c.svc_slot, c.rs_slot), c.flags);
        self.count_forwarded(slots, dir, h.total_len);
        if conn_flags.intersects(ConnFlags::DIRECT) {
            let rs = Ipv4Addr::from_bits(dst.0);
            self.send_direct(ctx, conn_flags, rs, ETH_HLEN, f, out);
            return None;
        }
        // One borrow of the frame's head serves the rewrite and the next hop's MACs.
        let to = Ipv4Addr::from_bits(dst.0);
        let hop = self.hops.get(to);
        let Some(head) = f.data_mut().first_chunk_mut::<{ parse::COMMON_HEAD }>() else {
            self.drop_pkt(f, DropReason::Truncated);
            return None;
        };
        nat::rewrite_common(head, h.proto, src, dst);
        match hop {
            Some(hop) => {
                hop.address(head);
                out.tx(hop.port, f);
            }
            None => self.send_resolving(ctx, to, f, out),
        }
        None
    }

    /// Adds a forwarded packet of `bytes` to the service's and the real server's counters.
    #[inline]
    pub(super) fn count_forwarded(&self, (svc_slot, rs_slot): (u16, u32), dir: Dir, bytes: u16) {
        let bytes = u64::from(bytes);
        for s in [usize::from(svc_slot), rs_slot as usize] {
            if let Some(k) = self.slot_cells.get(s) {
                match dir {
                    Dir::Inbound => {
                        k.in_pkts.add(1);
                        k.in_bytes.add(bytes);
                    }
                    Dir::Outbound => {
                        k.out_pkts.add(1);
                        k.out_bytes.add(bytes);
                    }
                }
            }
        }
    }
}
