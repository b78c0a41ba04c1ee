//! UDP connections: round trip, expiry, zero checksums, local ports back to the pool.

use dpvs_core::drop::DropReason;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::packet::VecFrame;
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

pub(crate) fn udp_rig(conns: usize) -> Rig<VecFrame> {
    let t = Timeouts {
        udp: 5,
        ..Timeouts::default()
    };
    Rig::new(lab_state(t, &[RS1, RS2]), limits(conns))
}

#[test]
fn udp_round_trip_expiry_and_new_flow() {
    let mut rig = udp_rig(64);
    let out = rig.send(0, &client_udp(5000, b"query"));
    let p = only_ip4(&out, "UDP request");
    assert_eq!(p.port, 1);
    let rs = p.dst;
    assert!(rs == RS1 || rs == RS2);
    assert_eq!((p.src, p.dport), (LADDR, RPORT_UDP));
    assert_eq!(p.eth_dst, mac_of(rs).unwrap());
    assert_eq!(p.ttl, 63);
    assert!(p.udp.as_ref().unwrap().checksum != 0, "checksum kept");
    assert_eq!(p.payload, b"query");
    let lport = p.sport;
    assert_eq!(lport % WORKERS, ME);

    let out = rig.send(1, &rs_udp(rs, lport, b"answer"));
    let p = only_ip4(&out, "UDP reply");
    assert_eq!(p.port, 0);
    assert_eq!(
        (p.src, p.sport, p.dst, p.dport),
        (VIP, VPORT_UDP, CLIENT, 5000)
    );
    assert_eq!(p.eth_dst, CLIENT_MAC);
    assert_eq!(p.payload, b"answer");

    // The reply refreshed the 5 s timeout.
    rig.advance(4_999);
    rig.housekeeping();
    assert_eq!(rig.worker.conns().len(), 1, "alive before the UDP timeout");
    rig.advance(1);
    rig.housekeeping();
    assert_eq!(rig.worker.conns().len(), 0, "expired after the UDP timeout");
    assert_eq!(
        rig.counters().conns_active.get(),
        0,
        "conns_active back to 0"
    );
    let t = rig.stats.slot_totals(svc_slot(&rig.state, &udp_svc()));
    assert_eq!(
        (t.active, t.inactive),
        (0, 0),
        "slot gauges back to 0: {t:?}"
    );

    // A late reply finds nothing.
    assert!(rig.send(1, &rs_udp(rs, lport, b"late")).is_empty());
    assert_eq!(rig.drops(DropReason::NoConnection), 1);

    // The same client flow again: a new connection.
    let out = rig.send(0, &client_udp(5000, b"again"));
    let p = only_ip4(&out, "UDP after expiry");
    assert_eq!((p.src, p.dport), (LADDR, RPORT_UDP));
    assert_eq!(rig.counters().conns_created.get(), 2, "a new connection");
    assert_eq!(rig.counters().conns_active.get(), 1);
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let mut rig = udp_rig(64);
    let mut f = client_udp(5001, b"nocsum");
    let l4 = 14 + 20;
    f[l4 + 6] = 0;
    f[l4 + 7] = 0;
    let out = rig.send(0, &f);
    let p = only_ip4(&out, "UDP without checksum");
    assert_eq!(
        p.udp.unwrap().checksum,
        0,
        "0 means no checksum and must stay 0"
    );
}

#[test]
fn udp_local_ports_return_to_the_pool() {
    // Worker 1 of 2 owns the odd ports of 1024..=65535.
    let owned = (1024..=65535u32).filter(|p| p % 2 == 1).count();
    let mut rig = udp_rig(owned + 16);
    // One template, the client port patched in place (UDP checksum 0: none).
    let mut f = client_udp(0, b"q");
    f[40..42].fill(0);
    let mut flow = |rig: &mut Rig<VecFrame>, cport: u16| {
        f[34..36].copy_from_slice(&cport.to_be_bytes());
        rig.send(0, &f).len()
    };
    for i in 0..owned {
        assert_eq!(flow(&mut rig, 1024 + i as u16), 1, "flow {i} forwarded");
    }
    assert_eq!(rig.counters().conns_active.get(), owned as u64);
    assert_eq!(flow(&mut rig, 60000), 0, "no local port left");
    assert_eq!(rig.drops(DropReason::LaddrExhausted), 1);

    rig.advance(5_000);
    rig.housekeeping();
    assert_eq!(rig.worker.conns().len(), 0);
    assert_eq!(rig.counters().conns_active.get(), 0, "gauge back to 0");
    // Every port came back: the pool serves its whole range again.
    for i in 0..owned {
        assert_eq!(
            flow(&mut rig, 1024 + i as u16),
            1,
            "flow {i} after expiry forwarded"
        );
    }
    assert_eq!(
        rig.drops(DropReason::LaddrExhausted),
        1,
        "no new exhaustion"
    );
}
