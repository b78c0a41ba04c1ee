//! Opening a connection: a client's first packet to a service gets a real server from the
//! service's scheduler, a local address and port from this worker's share (FullNAT), and an
//! entry in the table, counted.

use std::net::Ipv4Addr;

use dpvs_api::Forward;

use super::conns::deadline;
use super::{Ctx, Output, Worker};
use crate::drop::DropReason;
use crate::engine::conn::{Conn, ConnFlags, ConnId, Dir, InsertError, Tuple};
use crate::engine::laddr::PortPool;
use crate::engine::snapshot::Service;
use crate::engine::tcp_state::TcpState;
use crate::packet::ipv4::IpProto;
use crate::packet::parse::{Ipv4Info, Packet};
use crate::packet::{Frame, tcp};

impl<F: Frame> Worker<F> {
    /// A packet of no connection, `tuple`, received on `in_port`: a new connection if it opens
    /// one to a service (a TCP SYN, or any UDP datagram), the kernel's if it is not to one of
    /// our addresses, else the answer for a packet of no connection.
    pub(super) fn open_or_answer(
        &mut self,
        ctx: &Ctx<'_>,
        (in_port, pkt, ip): (u16, &Packet, &Ipv4Info),
        tuple: &Tuple,
        flags: u8,
        f: F,
        out: &mut impl Output<F>,
    ) {
        let Some(local) = ctx.snap.local(ip.dst) else {
            return self.not_for_us(ctx, in_port, f, DropReason::NotOurs, out);
        };
        let svc = if local.is_vip {
            ctx.snap.service(ip.proto, ip.dst, tuple.dport)
        } else {
            None
        };
        let Some(svc) = svc else {
            return self.no_connection(ctx, pkt, local, f, out);
        };
        if ip.proto == IpProto::TCP && flags & (tcp::SYN | tcp::ACK) != tcp::SYN {
            return self.no_connection(ctx, pkt, local, f, out);
        }
        // Checked before a connection (and a local port) is spent on a packet that cannot go.
        if ip.ttl <= 1 {
            return self.drop_pkt(f, DropReason::TtlExceeded);
        }
        match self.open(ctx, svc, tuple) {
            Ok(id) => self.forward(ctx, ip, (id, Dir::Inbound), flags, f, out),
            Err(r) => self.drop_pkt(f, r),
        }
    }

    /// A new connection of service `svc` for the client's packet with tuple `t`.
    fn open(&mut self, ctx: &Ctx<'_>, svc: &Service, t: &Tuple) -> Result<ConnId, DropReason> {
        let slot = svc.slot as usize;
        let pick = self.choose(ctx, svc, t)?;
        let rs = svc
            .rs
            .get(usize::from(pick))
            .ok_or(DropReason::NoRealServer)?;
        // NAT keeps the client as the source: the "local" side of its connection is the
        // client endpoint itself, so replies are looked up and rewritten like FullNAT's. DR
        // and TUN replies bypass us: they have no local side.
        let (lip, lport, flags) = match rs.forward {
            Forward::Fnat => {
                let (lip, lport) = self.alloc_local_port(svc, slot)?;
                (lip, lport, ConnFlags::empty())
            }
            Forward::Nat => (t.src, t.sport, ConnFlags::NAT),
            Forward::Dr => (Ipv4Addr::UNSPECIFIED, 0, ConnFlags::DR),
            Forward::Tun => (Ipv4Addr::UNSPECIFIED, 0, ConnFlags::TUN),
        };
        let flags = if svc.persistence.is_some() {
            flags | ConnFlags::PERSISTENT
        } else {
            flags
        };
        let conn = Conn {
            cip: t.src.to_bits(),
            vip: t.dst.to_bits(),
            lip: lip.to_bits(),
            rip: rs.addr.ip().to_bits(),
            cport: t.sport,
            vport: t.dport,
            lport,
            rport: rs.addr.port(),
            rs_slot: rs.slot,
            expires: deadline(ctx.now_ms, 1),
            svc_slot: svc.slot as u16,
            proto: t.proto,
            state: TcpState::None,
            flags,
        };
        let id = self.conns.insert(conn).map_err(|e| {
            let pooled = conn.holds_local_port();
            if pooled && let Some(p) = self.pools.get_mut(&lip.to_bits()) {
                p.free(lport);
            }
            match e {
                InsertError::Full => DropReason::ConnTableFull,
                InsertError::Exists if pooled => DropReason::LaddrExhausted,
                InsertError::Exists => DropReason::TupleInUse,
            }
        })?;
        self.count_opened([svc.slot, rs.slot]);
        if svc.needs_load {
            self.loads.opened(svc.slot, pick);
        }
        Ok(id)
    }

    /// Counts a new connection: the worker's, and its service's and real server's (which
    /// take it as inactive until its handshake completes).
    fn count_opened(&self, slots: [u32; 2]) {
        let w = usize::from(self.id);
        let c = self.stats.worker(w);
        c.conns_created.add(1);
        c.conns_active.add(1);
        for s in slots {
            if let Some(k) = self.stats.slot(w, s) {
                k.conns.add(1);
                k.inactive.add(1);
            }
        }
    }

    /// A local address and port for a new FullNAT connection: the service's local addresses in
    /// turn, the first whose pool has a free port on this worker.
    fn alloc_local_port(
        &mut self,
        svc: &Service,
        slot: usize,
    ) -> Result<(Ipv4Addr, u16), DropReason> {
        let n = svc.laddrs.len();
        let start = self.cursors[slot].1 as usize;
        for k in 0..n {
            let lip = svc.laddrs[(start + k) % n];
            if let Some(port) = self.pools.get_mut(&lip.to_bits()).and_then(PortPool::alloc) {
                self.cursors[slot].1 = ((start + k + 1) % n) as u32;
                return Ok((lip, port));
            }
        }
        Err(DropReason::LaddrExhausted)
    }
}
