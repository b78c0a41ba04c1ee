//! How long connections live: per-state timeouts, the longest timeout, and a full table that
//! refuses new connections without touching established ones.

use dpvs_core::drop::DropReason;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::packet::tcp::{ACK, SYN};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

#[test]
fn tcp_connections_expire_by_state_timeout() {
    let t = Timeouts {
        established: 10,
        syn_recv: 3,
        ..Timeouts::default()
    };
    let mut rig = Rig::new(lab_state(t, &[RS1, RS2]), limits(64));
    handshake(&mut rig, 40200);
    rig.advance(9_999);
    rig.housekeeping();
    assert_eq!(
        rig.worker.conns().len(),
        1,
        "alive before the established timeout"
    );
    rig.advance(1);
    rig.housekeeping();
    assert!(
        rig.worker.conns().is_empty(),
        "gone at the established timeout"
    );
    assert_eq!(rig.counters().conns_active.get(), 0);
    let s = rig.stats.slot_totals(svc_slot(&rig.state, &tcp_svc()));
    assert_eq!((s.active, s.inactive), (0, 0), "gauges {s:?}");

    // A half-open connection uses the shorter SYN_RECV timeout.
    open(&mut rig, 40201);
    rig.advance(2_999);
    rig.housekeeping();
    assert_eq!(rig.worker.conns().len(), 1);
    rig.advance(1);
    rig.housekeeping();
    assert!(
        rig.worker.conns().is_empty(),
        "half-open gone after syn_recv"
    );

    // The client's next segment is answered with a RST.
    let out = rig.send(0, &client_tcp(40200, ACK, 1001, 5001, b"late"));
    let p = only_ip4(&out, "segment after expiry");
    assert!(p.tcp.unwrap().rst, "expired connection answered with RST");
}

/// Connection deadlines are wrapping 32-bit milliseconds, ordered for 24.8 days: the config
/// refuses longer timeouts, and the longest it accepts does not expire early.
#[test]
fn longest_accepted_timeout_does_not_expire_at_once() {
    let toml = |t: u32| {
        format!(
            "[[port]]\nname = \"dpdk0\"\ndevice = \"net_null0\"\n\n[timeouts]\ntcp_established = {t}\n"
        )
    };
    let err = dpvs_daemon::config::Config::from_toml_str(&toml(31_536_000)).unwrap_err();
    assert!(
        err.to_string().contains("timeouts.tcp_established"),
        "{err}"
    );
    let max = dpvs_core::engine::worker::MAX_TIMEOUT_S;
    let cfg =
        dpvs_daemon::config::Config::from_toml_str(&toml(max)).expect("the maximum is accepted");
    let mut rig = Rig::new(lab_state(cfg.timeouts, &[RS1, RS2]), limits(64));
    handshake(&mut rig, 40300);
    rig.advance(1_000);
    rig.housekeeping();
    assert_eq!(
        rig.worker.conns().len(),
        1,
        "an established connection with the longest timeout vanished after 1 s"
    );
}

#[test]
fn full_connection_table_refuses_new_and_keeps_established() {
    let mut rig = Rig::new(lab_state(Timeouts::default(), &[RS1, RS2]), limits(4));
    let mut conns = Vec::new();
    for cport in 47000..47004u16 {
        conns.push((cport, open(&mut rig, cport)));
    }
    let out = rig.send(0, &client_tcp(47004, SYN, 1, 0, b""));
    assert!(out.is_empty(), "the fifth connection must be refused");
    assert_eq!(rig.drops(DropReason::ConnTableFull), 1);
    assert_eq!(rig.counters().conns_created.get(), 4);
    assert_eq!(rig.counters().conns_active.get(), 4);
    for (cport, (rs, lport)) in conns {
        let out = rig.send(0, &client_tcp(cport, ACK, 1001, 5001, b"still here"));
        let p = only_ip4(&out, "segment of an established connection");
        assert_eq!((p.dst, p.sport), (rs, lport), "client port {cport}");
    }
}
