//! Next hops not yet resolved: packets parked while ARP asks, retries, drops.

use std::net::Ipv4Addr;

use dpvs_api::RsSpec;
use dpvs_core::drop::DropReason;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::packet::tcp::SYN;
use dpvs_core::packet::{Frame, MacAddr, VecFrame};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;

/// The lab with no neighbour entry for the real servers.
fn unresolved_rig() -> Rig<VecFrame> {
    Rig::new(lab_state(Timeouts::default(), &[]), limits(64))
}

/// Checks an ARP request the worker sent for `target` on dpdk1; returns the sender address.
fn assert_arp_request(rig: &Rig<VecFrame>, out: &(u16, VecFrame), target: Ipv4Addr) {
    assert_eq!(out.0, 1, "ARP request leaves on the real servers' port");
    let (dst, src, a) = arp_out(out.1.data());
    assert_eq!(dst, MacAddr::BROADCAST, "ARP request is broadcast");
    assert_eq!(src, MAC1);
    assert_eq!(a.op, ARP_REQUEST);
    assert_eq!((a.sha, a.tha, a.tpa), (MAC1, MacAddr::ZERO, target));
    let local = rig.snap.local(a.spa);
    assert_eq!(
        local.map(|l| l.port),
        Some(1),
        "sender {} must be one of our addresses on dpdk1",
        a.spa
    );
    assert_eq!(
        a.spa, ADDR1,
        "sender is the connected address, not the laddr"
    );
}

#[test]
fn unresolved_rs_parks_the_syn_until_arp_resolves() {
    let mut rig = unresolved_rig();
    let out = rig.send(0, &client_tcp(43000, SYN, 1000, 0, b""));
    assert_eq!(out.len(), 1, "only an ARP request goes out");
    let (_, _, a) = arp_out(out[0].1.data());
    let target = a.tpa;
    assert!(target == RS1 || target == RS2, "ARP for {target}");
    assert_arp_request(&rig, &out[0], target);
    // A retransmitted SYN joins the queue without a second request.
    assert!(
        rig.send(0, &client_tcp(43000, SYN, 1000, 0, b""))
            .is_empty()
    );

    // Resolution published: housekeeping releases both SYNs to the real server.
    rig.state
        .neigh_add(target.into(), &mac_of(target).unwrap().to_string(), "dpdk1")
        .unwrap();
    rig.neigh = rig.state.neigh_table();
    let out = rig.housekeeping();
    assert_eq!(out.len(), 2, "both parked SYNs released");
    for (port, f) in &out {
        let p = ip4(*port, f.data());
        assert_eq!(p.port, 1);
        assert_eq!((p.eth_dst, p.eth_src), (mac_of(target).unwrap(), MAC1));
        assert_eq!((p.src, p.dst, p.dport), (LADDR, target, RPORT_TCP));
        assert!(is_syn(&p));
    }
    assert!(rig.housekeeping().is_empty(), "released once only");
    assert_eq!(rig.total_drops(), 0);
}

#[test]
fn unresolved_rs_arp_retries_then_drop() {
    let mut rig = unresolved_rig();
    let out = rig.send(0, &client_tcp(43100, SYN, 1000, 0, b""));
    let target = arp_out(out[0].1.data()).2.tpa;
    rig.advance(999);
    assert!(rig.housekeeping().is_empty(), "no retry before 1 s");
    rig.advance(1);
    let out = rig.housekeeping();
    assert_eq!(out.len(), 1, "second try after 1 s");
    assert_arp_request(&rig, &out[0], target);
    rig.advance(1_000);
    let out = rig.housekeeping();
    assert_eq!(out.len(), 1, "third try after 2 s");
    assert_arp_request(&rig, &out[0], target);
    rig.advance(1_000);
    assert!(rig.housekeeping().is_empty(), "no fourth try");
    assert_eq!(
        rig.drops(DropReason::NeighUnresolved),
        1,
        "parked SYN dropped"
    );
}

/// The engine clock is a wrapping u32 (`Ctx::now_ms`, the daemon truncates ms since start),
/// but the pending queue compares it as a u64 with a saturating subtraction.
#[test]
fn arp_retry_survives_the_engine_clock_wrapping() {
    let mut rig = unresolved_rig();
    // Connections keep 32-bit deadlines: cross that boundary of the engine clock.
    rig.now = u64::from(u32::MAX) - 500;
    rig.housekeeping();
    let out = rig.send(0, &client_tcp(43200, SYN, 1000, 0, b""));
    let target = arp_out(out[0].1.data()).2.tpa;
    rig.advance(1_000); // wraps to 499
    let out = rig.housekeeping();
    assert_eq!(
        out.len(),
        1,
        "the retry 1 s later must be sent across the wrap"
    );
    assert_arp_request(&rig, &out[0], target);
    // The loop polls continuously; step through the last try and the expiry a second apart.
    for _ in 0..3 {
        rig.advance(1_000);
        rig.housekeeping();
    }
    assert_eq!(
        rig.drops(DropReason::NeighUnresolved),
        1,
        "the parked SYN must be dropped after the retries, not held forever"
    );
}

#[test]
fn arp_retries_are_sent_for_every_unresolved_hop() {
    let mut state = lab_state(Timeouts::default(), &[]);
    for last in 21..=28u8 {
        state
            .rs_add(
                &tcp_svc(),
                &RsSpec::new(sa(Ipv4Addr::new(192, 168, 10, last), RPORT_TCP), 1),
            )
            .unwrap();
    }
    let mut rig: Rig<VecFrame> = Rig::new(state, limits(64));
    let mut targets = Vec::new();
    for cport in 44000..44010u16 {
        let out = rig.send(0, &client_tcp(cport, SYN, 1, 0, b""));
        assert_eq!(out.len(), 1, "one ARP request per new hop");
        targets.push(arp_out(out[0].1.data()).2.tpa);
    }
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 10, "ten distinct next hops");
    rig.advance(1_000);
    let out = rig.housekeeping();
    assert_eq!(out.len(), 10, "every hop due for a retry gets one");
}
