//! LVS-style TCP connection states, as a balancer that sees segments (not sequence numbers)
//! tracks them.
//!
//! Like LVS, states are named from the real server's side of the connection: a client FIN on
//! an established connection leaves the server in CLOSE_WAIT; a server FIN makes it FIN_WAIT.
//! The state only picks the idle timeout and the ipvsadm Active/InAct column; packets are
//! forwarded in every state. Each segment counts as one event, by priority
//! RST > SYN > FIN > ACK, and moves the state through a fixed table.

use serde::{Deserialize, Serialize};

use crate::engine::conn::Dir;

/// TCP header flag bits, as the packet layer defines them.
pub use crate::packet::tcp as flags;

/// Connection state. `u8` so a connection entry stores it in one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TcpState {
    /// Nothing classified yet.
    #[default]
    None,
    Established,
    /// The real server opened (SYN seen outbound first).
    SynSent,
    /// The client's SYN was seen; waiting for the handshake's final ACK.
    SynRecv,
    /// The real server closed first.
    FinWait,
    /// Both sides closed, the real server first: it holds TIME_WAIT on the tuple.
    TimeWait,
    /// Reset, or fully closed with the client's last ACK seen.
    Close,
    /// The client closed first; the real server has not yet.
    CloseWait,
    /// The client closed, then the real server: waiting for the client's last ACK.
    LastAck,
    /// Passive open; behaves like `None`. Kept for parity with LVS, not entered by the table.
    Listen,
    /// SYN+ACK stage of a secure-TCP table; behaves like `SynRecv`. Kept for parity with LVS,
    /// not entered by the table.
    SynAck,
}

impl TcpState {
    /// Every state, in `repr` order.
    pub const ALL: [TcpState; 11] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The state stored as `v` (`state as u8`). Total: a byte no state uses reads as
    /// [`TcpState::None`], the most conservative state, so a corrupt byte cannot panic.
    pub fn from_u8(v: u8) -> TcpState {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(TcpState::None)
    }
}

/// The one event a segment counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    Syn,
    Fin,
    Ack,
    Rst,
}

/// RST > SYN > FIN > ACK; a segment with none of these (invalid) is no event.
fn classify(f: u8) -> Option<Event> {
    if f & flags::RST != 0 {
        Some(Event::Rst)
    } else if f & flags::SYN != 0 {
        Some(Event::Syn)
    } else if f & flags::FIN != 0 {
        Some(Event::Fin)
    } else if f & flags::ACK != 0 {
        Some(Event::Ack)
    } else {
        None
    }
}

/// The state after a segment with TCP `flags` travelling `dir` on a connection in `cur`.
/// Total over all inputs; a segment without RST/SYN/FIN/ACK leaves the state unchanged.
pub fn next_state(cur: TcpState, dir: Dir, flags: u8) -> TcpState {
    let Some(ev) = classify(flags) else {
        return cur;
    };
    // The two parity states behave as their counterparts.
    let cur = match cur {
        TcpState::Listen => TcpState::None,
        TcpState::SynAck => TcpState::SynRecv,
        s => s,
    };
    match ev {
        // A reset ends the connection whichever side sends it.
        Event::Rst => TcpState::Close,
        Event::Syn => on_syn(cur, dir),
        Event::Fin => on_fin(cur, dir),
        Event::Ack => on_ack(cur, dir),
    }
}

/// The state after a client segment with TCP `flags` on a connection in `cur` whose replies
/// bypass the balancer (DR, TUN), so the server's segments are never seen. As LVS's
/// input-only table: the client's SYN half-opens, its next ACK establishes, its FIN leaves
/// the connection in FIN_WAIT until the timeout (the server's answer is invisible), a RST
/// closes.
pub fn next_state_inbound_only(cur: TcpState, flags: u8) -> TcpState {
    use TcpState::*;
    let Some(ev) = classify(flags) else {
        return cur;
    };
    match (ev, cur) {
        (Event::Rst, _) => Close,
        // A stray SYN never downgrades an established connection (see `on_syn`).
        (Event::Syn, Established) => Established,
        (Event::Syn, _) => SynRecv,
        (Event::Fin, Established | CloseWait) => FinWait,
        // A FIN before the handshake completed: the client gave up.
        (Event::Fin, SynRecv | SynAck) => TimeWait,
        (Event::Fin, None | Listen) => Close,
        (Event::Ack, SynRecv | SynAck | None | Listen) => Established,
        (Event::Fin | Event::Ack, s) => s,
    }
}

/// SYN (or SYN+ACK).
fn on_syn(cur: TcpState, dir: Dir) -> TcpState {
    use TcpState::*;
    match (dir, cur) {
        // A retransmitted or stray SYN never downgrades a live connection: a spoofed SYN
        // must not shorten an established connection's timeout.
        (_, Established) => Established,
        // Handshake in progress: retransmits and the server's SYN+ACK keep it half-open until
        // the client's final ACK, so a spoofed-SYN flood never looks established.
        (_, SynRecv | SynAck) => SynRecv,
        // Client opens (also re-opens a tuple that is closing or closed).
        (Dir::Inbound, None | Listen | FinWait | TimeWait | Close | CloseWait | LastAck) => SynRecv,
        // Client answers the server's SYN.
        (Dir::Inbound, SynSent) => SynRecv,
        // Server opens, or re-opens a finished tuple.
        (Dir::Outbound, None | Listen | SynSent | TimeWait | Close) => SynSent,
        // A late server SYN+ACK retransmit during close changes nothing.
        (Dir::Outbound, s) => s,
    }
}

/// FIN.
fn on_fin(cur: TcpState, dir: Dir) -> TcpState {
    use TcpState::*;
    match (dir, cur) {
        // A FIN from either side only makes sense once the handshake completed (it carries an
        // ACK), so a half-open connection closes as if established.
        (Dir::Inbound, Established | SynRecv | SynAck) => CloseWait,
        (Dir::Outbound, Established | SynRecv | SynAck) => FinWait,
        // The second FIN: server closed first → it holds TIME_WAIT.
        (Dir::Inbound, FinWait) => TimeWait,
        // Client closed first → server's FIN waits for the client's last ACK.
        (Dir::Outbound, CloseWait) => LastAck,
        // FIN with no connection is a stray: nothing to keep.
        (_, None | Listen) => Close,
        // Retransmits, and FINs in states they cannot advance.
        (_, s) => s,
    }
}

/// ACK (data or pure ACK).
fn on_ack(cur: TcpState, dir: Dir) -> TcpState {
    use TcpState::*;
    match (dir, cur) {
        // The ACK that completes the handshake: the client's for a client open, the server's
        // for a server open. A server cannot ACK without SYN before the handshake completed
        // (its SYN+ACK counts as SYN), so a SYN flood stays half-open either way.
        (_, SynRecv | SynAck) => Established,
        // The client's ACK of the server's FIN: fully closed.
        (Dir::Inbound, LastAck) => Close,
        // Picked up mid-stream (e.g. a connection synced or re-created): trust it.
        (_, None | Listen) => Established,
        // Everything else: an ACK confirms, it does not move.
        (_, s) => s,
    }
}

/// True for what ipvsadm counts as ActiveConn (ESTABLISHED); everything else is InActConn.
pub fn is_active(s: TcpState) -> bool {
    s == TcpState::Established
}

/// The state's name as ipvsadm prints it.
pub fn name(s: TcpState) -> &'static str {
    match s {
        TcpState::None => "NONE",
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::FinWait => "FIN_WAIT",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::SynAck => "SYNACK",
    }
}

/// Idle timeouts in seconds, per TCP state and for UDP. `Default` is LVS's defaults.
/// Deserializable with missing fields defaulted, so a config may override only some.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    pub established: u32,
    pub syn_sent: u32,
    pub syn_recv: u32,
    pub fin_wait: u32,
    pub time_wait: u32,
    pub close: u32,
    pub close_wait: u32,
    pub last_ack: u32,
    pub listen: u32,
    pub synack: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            established: 900,
            syn_sent: 120,
            syn_recv: 60,
            fin_wait: 120,
            time_wait: 120,
            close: 10,
            close_wait: 60,
            last_ack: 30,
            listen: 120,
            synack: 120,
            udp: 300,
        }
    }
}

impl Timeouts {
    /// Idle timeout of a TCP connection in `s`. `None` (nothing classified yet) uses the
    /// `close` timeout: the shortest, since such an entry proves nothing.
    pub fn for_state(&self, s: TcpState) -> u32 {
        match s {
            TcpState::None | TcpState::Close => self.close,
            TcpState::Established => self.established,
            TcpState::SynSent => self.syn_sent,
            TcpState::SynRecv => self.syn_recv,
            TcpState::FinWait => self.fin_wait,
            TcpState::TimeWait => self.time_wait,
            TcpState::CloseWait => self.close_wait,
            TcpState::LastAck => self.last_ack,
            TcpState::Listen => self.listen,
            TcpState::SynAck => self.synack,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;
    use super::*;
    use Dir::{Inbound as In, Outbound as Out};
    use TcpState::*;
    use proptest::prelude::*;

    /// Runs a segment sequence from `None`, returning every state visited.
    fn run(steps: &[(Dir, u8)]) -> Vec<TcpState> {
        let mut s = TcpState::None;
        steps
            .iter()
            .map(|&(d, f)| {
                s = next_state(s, d, f);
                s
            })
            .collect()
    }

    const HANDSHAKE: [(Dir, u8); 3] = [(In, SYN), (Out, SYN | ACK), (In, ACK)];

    #[test]
    fn open_then_client_closes() {
        let mut seq = HANDSHAKE.to_vec();
        seq.extend([
            (In, PSH | ACK),
            (Out, ACK),
            (In, FIN | ACK),
            (Out, ACK),
            (Out, FIN | ACK),
            (In, ACK),
        ]);
        assert_eq!(
            run(&seq),
            vec![
                SynRecv,
                SynRecv,
                Established,
                Established,
                Established,
                CloseWait,
                CloseWait,
                LastAck,
                Close
            ]
        );
    }

    #[test]
    fn server_closes_first() {
        let mut seq = HANDSHAKE.to_vec();
        seq.extend([(Out, FIN | ACK), (In, ACK), (In, FIN | ACK), (Out, ACK)]);
        assert_eq!(run(&seq)[3..], [FinWait, FinWait, TimeWait, TimeWait]);
    }

    #[test]
    fn simultaneous_close_never_reopens() {
        for first in [In, Out] {
            let second = if first == In { Out } else { In };
            let mut seq = HANDSHAKE.to_vec();
            seq.extend([
                (first, FIN | ACK),
                (second, FIN | ACK),
                (first, ACK),
                (second, ACK),
            ]);
            let states = run(&seq);
            assert!(!states[3..].iter().any(|&s| is_active(s)), "{states:?}");
            assert!(
                matches!(states.last(), Some(Close | TimeWait)),
                "{states:?}"
            );
        }
    }

    #[test]
    fn rst_closes_from_anywhere() {
        for s in TcpState::ALL {
            assert_eq!(next_state(s, In, RST), Close);
            assert_eq!(next_state(s, Out, RST | ACK), Close);
        }
        let mut seq = HANDSHAKE.to_vec();
        seq.extend([(Out, RST), (In, ACK)]);
        assert_eq!(
            run(&seq)[3..],
            [Close, Close],
            "a stray ACK does not revive a reset conn"
        );
    }

    #[test]
    fn syn_retransmits_and_stray_syns() {
        assert_eq!(run(&[(In, SYN), (In, SYN), (In, SYN)]), vec![SynRecv; 3]);
        assert_eq!(
            run(&[(In, SYN), (Out, SYN | ACK), (Out, SYN | ACK)]),
            vec![SynRecv; 3]
        );
        assert_eq!(next_state(Established, In, SYN), Established);
        assert_eq!(next_state(TimeWait, In, SYN), SynRecv, "tuple reuse");
        assert_eq!(next_state(Close, In, SYN), SynRecv);
    }

    #[test]
    fn server_initiated_open() {
        assert_eq!(
            run(&[(Out, SYN), (Out, SYN), (In, SYN | ACK), (Out, ACK)]),
            vec![SynSent, SynSent, SynRecv, Established]
        );
        assert_eq!(next_state(SynSent, Out, ACK), SynSent);
    }

    #[test]
    fn priorities_and_invalid_flags() {
        assert_eq!(next_state(Established, In, SYN | FIN | RST), Close);
        assert_eq!(next_state(None, In, SYN | FIN), SynRecv);
        assert_eq!(next_state(Established, In, FIN | ACK), CloseWait);
        assert_eq!(next_state(Established, In, 0), Established);
        assert_eq!(next_state(SynRecv, In, PSH | URG), SynRecv);
    }

    #[test]
    fn parity_states_behave_as_counterparts() {
        assert_eq!(next_state(SynAck, In, ACK), Established);
        assert_eq!(next_state(Listen, In, SYN), SynRecv);
    }

    #[test]
    fn names_activity_and_repr() {
        assert_eq!(name(Established), "ESTABLISHED");
        assert_eq!(name(SynRecv), "SYN_RECV");
        for (i, s) in TcpState::ALL.into_iter().enumerate() {
            assert_eq!(s as usize, i);
            assert_eq!(TcpState::from_u8(i as u8), s);
            assert_eq!(is_active(s), s == Established);
        }
        assert_eq!(TcpState::from_u8(11), None);
        assert_eq!(TcpState::from_u8(255), None);
    }

    #[test]
    fn timeouts_default_to_lvs() {
        let t = Timeouts::default();
        assert_eq!(t.for_state(Established), 900);
        assert_eq!(t.for_state(SynRecv), 60);
        assert_eq!(t.for_state(TimeWait), 120);
        assert_eq!(t.for_state(Close), 10);
        assert_eq!(t.for_state(LastAck), 30);
        assert_eq!(t.udp, 300);
        let partial: Timeouts = toml::from_str("established = 60").unwrap();
        assert_eq!(
            partial,
            Timeouts {
                established: 60,
                ..t
            }
        );
    }

    #[test]
    fn inbound_only_lifecycle() {
        let mut s = TcpState::None;
        let mut seen = vec![];
        for f in [SYN, SYN, ACK, ACK | PSH, SYN, FIN | ACK, ACK, RST] {
            s = next_state_inbound_only(s, f);
            seen.push(s);
        }
        assert_eq!(
            seen,
            [
                SynRecv,
                SynRecv,
                Established,
                Established,
                Established,
                FinWait,
                FinWait,
                Close
            ]
        );
        assert_eq!(next_state_inbound_only(SynRecv, FIN | ACK), TimeWait);
        assert_eq!(next_state_inbound_only(Close, SYN), SynRecv);
        assert_eq!(next_state_inbound_only(Established, 0), Established);
    }

    proptest! {
        #[test]
        fn inbound_only_is_total_and_only_rst_resets(s in 0u8..11, f in any::<u8>()) {
            let s = TcpState::from_u8(s);
            let n = next_state_inbound_only(s, f);
            if f & RST != 0 { prop_assert_eq!(n, Close); }
            if s == Established && f & (RST | FIN) == 0 { prop_assert_eq!(n, Established); }
        }

        #[test]
        fn total_and_only_rst_resets(s in 0u8..11, inbound in any::<bool>(), f in any::<u8>()) {
            let s = TcpState::from_u8(s);
            let n = next_state(s, if inbound { In } else { Out }, f);
            if f & RST != 0 { prop_assert_eq!(n, Close); }
            if s == Established && f & (RST | FIN) == 0 { prop_assert_eq!(n, Established); }
        }
    }
}
