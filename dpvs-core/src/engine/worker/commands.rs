//! The control plane's requests about a worker's connections. They travel on a channel the
//! worker's lcore loop owns, each with its one-shot reply, and are served between bursts.

use std::net::SocketAddrV4;

use crossbeam_channel::Sender;

use super::conns::{conn_time, sock};
use super::{Ctx, Worker};
use crate::engine::conn::Conn;
use crate::engine::tcp_state;
use crate::packet::Frame;
use crate::packet::ipv4::IpProto;

impl<F: Frame> Worker<F> {
    /// Serves one request of the control plane (a lost reply, whose asker gave up waiting, is
    /// no concern of the worker's).
    pub fn serve(&mut self, ctx: &Ctx<'_>, cmd: Command) {
        match cmd {
            Command::ListConns {
                svc_slot,
                limit,
                reply,
            } => {
                let list = self
                    .conns
                    .iter()
                    .filter(|c| svc_slot.is_none_or(|s| u32::from(c.svc_slot) == s))
                    .take(limit)
                    .map(|c| view(c, conn_time(ctx.now_ms)))
                    .collect();
                let _ = reply.send(list);
            }
            Command::CutRs { rs_slot, reply } => {
                let n = self.cut(ctx, |c| c.rs_slot == rs_slot);
                let _ = reply.send(n);
            }
            Command::CutService { svc_slot, reply } => {
                let n = self.cut(ctx, |c| u32::from(c.svc_slot) == svc_slot);
                let _ = reply.send(n);
            }
        }
    }
}

/// A connection as reported to the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnView {
    pub proto: IpProto,
    pub client: SocketAddrV4,
    pub vip: SocketAddrV4,
    /// The source the real server sees: a local address (FullNAT), the client (NAT); `None`
    /// in DR and TUN, where the real server sees the client's packet as sent.
    pub laddr: Option<SocketAddrV4>,
    pub rs: SocketAddrV4,
    pub state: &'static str,
    pub expires_in_ms: u32,
    pub svc_slot: u32,
}

/// Requests the control plane sends a worker; each carries its reply channel.
#[derive(Debug)]
pub enum Command {
    /// Up to `limit` connections, of one service slot if given.
    ListConns {
        svc_slot: Option<u32>,
        limit: usize,
        reply: Sender<Vec<ConnView>>,
    },
    /// Cuts the connections to a deleted real server; replies with how many.
    CutRs { rs_slot: u32, reply: Sender<usize> },
    /// Cuts the connections of a deleted service; replies with how many.
    CutService { svc_slot: u32, reply: Sender<usize> },
}

fn view(c: &Conn, now_ms: u32) -> ConnView {
    let state = match c.proto {
        IpProto::TCP => tcp_state::name(c.state),
        IpProto::UDP => "UDP",
        _ => "-",
    };
    ConnView {
        proto: c.proto,
        client: sock(c.cip, c.cport),
        vip: sock(c.vip, c.vport),
        laddr: (!c.is_direct()).then(|| sock(c.lip, c.lport)),
        rs: sock(c.rip, c.rport),
        state,
        expires_in_ms: if c.is_expired(now_ms) {
            0
        } else {
            c.expires.wrapping_sub(now_ms)
        },
        svc_slot: u32::from(c.svc_slot),
    }
}
