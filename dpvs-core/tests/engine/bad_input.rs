//! Bad input: any frame is forwarded, answered or counted as a drop, never a panic, never a
//! leaked frame; bursts behave as packet-by-packet processing.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::bounded;
use dpvs_core::drop::DropReason;
use dpvs_core::engine::snapshot::Snapshot;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::engine::worker::{Command, WorkerLimits};
use dpvs_core::packet::ipv4::IpProto;
use dpvs_core::packet::tcp::{ACK, FIN, PSH, SYN};
use dpvs_core::packet::{Frame, L3, MacAddr, Packet, checksum, parse};
use dpvs_testkit::frames::{IcmpError, Spec, icmp_error_frame};
use dpvs_testkit::lab::*;
use dpvs_testkit::rig::*;
use proptest::prelude::*;

/// Valid frames of every kind the worker handles, to mutate.
fn templates() -> Vec<(u16, Vec<u8>)> {
    let mut vlan_syn = client_tcp(45000, SYN, 1, 0, b"");
    vlan_syn.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    // Packets of connections the `Valid` steps open, as the balancer sent them: errors
    // quoting them reach the translation.
    let to_client = tcp_frame(
        (MAC0, CLIENT_MAC),
        SocketAddrV4::new(VIP, VPORT_TCP),
        SocketAddrV4::new(CLIENT, 45101),
        ACK,
        (1, 1),
        b"reply",
    );
    let to_rs = tcp_frame(
        (MAC1, RS1_MAC),
        SocketAddrV4::new(LADDR, 1025),
        SocketAddrV4::new(RS1, RPORT_TCP),
        ACK,
        (1, 1),
        b"",
    );
    vec![
        (0, client_tcp(45001, SYN, 1, 0, b"")),
        (0, client_tcp(45001, ACK | PSH, 2, 1, b"data")),
        (0, client_tcp(45002, FIN | ACK, 2, 1, b"")),
        (1, rs_tcp(RS1, 1025, SYN | ACK, 1, 2, b"")),
        (1, rs_tcp(RS2, 1027, ACK, 1, 2, b"reply")),
        (0, client_udp(45003, b"query")),
        (1, rs_udp(RS1, 1025, b"answer")),
        (
            0,
            arp_frame(MacAddr::BROADCAST, ARP_REQUEST, CLIENT_MAC, CLIENT, VIP),
        ),
        (1, arp_frame(MAC1, ARP_REPLY, RS2_MAC, RS2, ADDR1)),
        (0, icmp_echo(CLIENT, ADDR0, 1, 1, b"ping")),
        (
            0,
            icmp_echo(CLIENT, Ipv4Addr::new(8, 8, 8, 8), 1, 1, b"ping"),
        ),
        (0, vlan_syn),
        icmp_error_to(0, VIP, &to_client),
        icmp_error_to(1, LADDR, &to_rs),
    ]
}

/// An ICMP "fragmentation needed" to our address `to`, received on `port` from a router,
/// quoting the IPv4 packet of `frame` whole (as Linux quotes up to 548 bytes).
fn icmp_error_to(port: u16, to: Ipv4Addr, frame: &[u8]) -> (u16, Vec<u8>) {
    let ours = if port == 0 { MAC0 } else { MAC1 };
    let router = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 254), 0);
    let s = Spec::between(
        ([2, 0, 0, 0, 9, 0xfe], ours.0),
        router,
        SocketAddrV4::new(to, 0),
    );
    (
        port,
        icmp_error_frame(&s, IcmpError::frag_needed(1400), &frame[14..]),
    )
}

#[derive(Clone, Debug)]
enum Step {
    /// Random bytes on a port (2 is a port the snapshot does not know).
    Random(u16, Vec<u8>),
    /// A template with bytes xor-ed at positions, optionally truncated.
    Mutated {
        template: usize,
        flips: Vec<(usize, u8)>,
        truncate: Option<usize>,
    },
    /// A template as is, so connections get created.
    Valid(usize, u16),
    Housekeeping(u32),
    ResolveRs2,
    CutRs1,
}

fn step() -> impl Strategy<Value = Step> {
    let n = templates().len();
    prop_oneof![
        2 => (0u16..3, prop::collection::vec(any::<u8>(), 0..160))
            .prop_map(|(p, b)| Step::Random(p, b)),
        6 => (0..n, prop::collection::vec((0usize..128, 1u8..=255), 1..6),
              prop::option::of(0usize..128))
            .prop_map(|(template, flips, truncate)| Step::Mutated { template, flips, truncate }),
        3 => (0..n, 0u16..64).prop_map(|(t, p)| Step::Valid(t, p)),
        2 => (0u32..4000).prop_map(Step::Housekeeping),
        1 => Just(Step::ResolveRs2),
        1 => Just(Step::CutRs1),
    ]
}

/// Frames the worker consumes without forwarding or counting: ARP that is not a request,
/// for one of our addresses, on a known port (learnt, then dropped).
fn consumed_silently(snap: &Snapshot, port: u16, bytes: &[u8]) -> bool {
    matches!(
        parse(bytes),
        Ok(Packet { l3: L3::Arp(a), .. })
            if a.op != ARP_REQUEST && snap.local(a.tpa).is_some() && snap.port(port).is_some()
    )
}

fn check_emitted(out: &[(u16, Counted)]) -> Result<(), TestCaseError> {
    for (port, f) in out {
        prop_assert!(*port <= 1, "frame sent on unknown port {}", port);
        prop_assert!(
            parse(f.data()).is_ok(),
            "the worker emitted an unparsable frame: {:02x?}",
            f.data()
        );
    }
    Ok(())
}

/// The received frame (port, bytes) a step stands for; `None` for steps that are not frames.
fn step_frame(templates: &[(u16, Vec<u8>)], s: Step) -> Option<(u16, Vec<u8>)> {
    Some(match s {
        Step::Random(p, b) => (p, b),
        Step::Mutated {
            template,
            flips,
            truncate,
        } => {
            let (p, mut b) = templates[template].clone();
            for (at, x) in flips {
                let len = b.len();
                b[at % len] ^= x;
            }
            if let Some(t) = truncate {
                b.truncate(t);
            }
            (p, b)
        }
        Step::Valid(t, cport) => {
            let (p, mut b) = templates[t].clone();
            // Vary the client port of client TCP templates (offset 34 = sport), then
            // fix the TCP checksum so the frame stays valid.
            if p == 0 && b.len() >= 54 && b[12..14] == [8, 0] && b[23] == 6 {
                b[34..36].copy_from_slice(&(45100 + cport).to_be_bytes());
                b[50..52].fill(0);
                let end = b.len();
                checksum::fill_ipv4_l4_checksum(CLIENT, VIP, IpProto::TCP, &mut b[34..end]);
            }
            (p, b)
        }
        Step::Housekeeping(_) | Step::ResolveRs2 | Step::CutRs1 => return None,
    })
}

/// Feeds the frame steps to one rig packet by packet and to another in bursts (cut where
/// `cuts` says and wherever the port changes); both must send the same frames, count the same
/// drops, hold the same connections, and leak nothing.
fn run_bursts(steps: Vec<Step>, cuts: Vec<bool>) -> Result<(), TestCaseError> {
    let templates = templates();
    let frames: Vec<(u16, Vec<u8>)> = steps
        .into_iter()
        .filter_map(|s| step_frame(&templates, s))
        .collect();
    let rig =
        || -> Rig<Counted> { Rig::new(lab_state(Timeouts::default(), &[RS1, RS2]), limits(64)) };
    let (mut one, mut burst) = (rig(), rig());
    let data = |out: Vec<(u16, Counted)>| -> Vec<(u16, Vec<u8>)> {
        out.into_iter()
            .map(|(p, f)| (p, f.data().to_vec()))
            .collect()
    };
    let (mut expected, mut got) = (Vec::new(), Vec::new());
    let mut pending: Vec<Vec<u8>> = Vec::new();
    for (k, (port, bytes)) in frames.iter().enumerate() {
        expected.extend(data(one.send(*port, bytes)));
        pending.push(bytes.clone());
        let last = k + 1 == frames.len();
        let cut = cuts.get(k).copied().unwrap_or(true);
        if last || cut || frames[k + 1].0 != *port {
            got.extend(data(burst.send_burst(*port, &pending)));
            pending.clear();
        }
    }
    prop_assert_eq!(got, expected);
    for r in DropReason::ALL {
        prop_assert_eq!(burst.drops(r), one.drops(r), "{:?}", r);
    }
    prop_assert_eq!(burst.worker.conns().len(), one.worker.conns().len());
    let live = [Arc::clone(&one.live), Arc::clone(&burst.live)];
    drop((one, burst));
    prop_assert_eq!(
        live.map(|l| l.load(Ordering::Relaxed)),
        [0, 0],
        "frames leaked"
    );
    Ok(())
}

fn run_steps(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let live = {
        let state = lab_state(Timeouts::default(), &[RS1]);
        let mut rig: Rig<Counted> = Rig::new(
            state,
            WorkerLimits {
                conns: 8,
                pending_per_hop: 2,
                pending_hops: 2,
            },
        );
        let live = Arc::clone(&rig.live);
        let templates = templates();
        let rs1_slot = rs_slot(&rig.state, &tcp_svc(), sa(RS1, RPORT_TCP));
        let mut kept: Vec<(u16, Counted)> = Vec::new();
        for s in steps {
            let (port, bytes) = match s {
                Step::Random(..) | Step::Mutated { .. } | Step::Valid(..) => {
                    step_frame(&templates, s).expect("a frame step")
                }
                Step::Housekeeping(ms) => {
                    rig.advance(u64::from(ms));
                    let out = rig.housekeeping();
                    check_emitted(&out)?;
                    kept.extend(out);
                    continue;
                }
                Step::ResolveRs2 => {
                    rig.neigh = lab_state(Timeouts::default(), &[RS1, RS2]).neigh_table();
                    continue;
                }
                Step::CutRs1 => {
                    let (reply, rx) = bounded(1);
                    rig.commands
                        .send(Command::CutRs {
                            rs_slot: rs1_slot,
                            reply,
                        })
                        .unwrap();
                    let out = rig.housekeeping();
                    kept.extend(out);
                    prop_assert!(rx.try_recv().is_ok(), "CutRs answered");
                    continue;
                }
            };
            let parked_before = live.load(Ordering::Relaxed) - kept.len();
            let drops_before = rig.total_drops();
            let consumed = consumed_silently(&rig.snap, port, &bytes);
            let out = rig.send(port, &bytes);
            check_emitted(&out)?;
            let emitted = out.len();
            kept.extend(out);
            let parked_after = live.load(Ordering::Relaxed) - kept.len();
            prop_assert!(
                parked_after >= parked_before,
                "process released parked frames"
            );
            let parked = parked_after - parked_before;
            let counted = rig.total_drops() - drops_before;
            prop_assert!(
                emitted + parked + counted as usize + usize::from(consumed) >= 1,
                "frame vanished: not emitted, parked nor counted: port {} {:02x?}",
                port,
                bytes
            );
            prop_assert!(emitted + parked <= 2, "one frame in, at most two out");
            prop_assert!(
                counted <= 2,
                "one frame counted at most twice (no connection + no route)"
            );
            // Keep memory bounded.
            if kept.len() > 64 {
                kept.clear();
            }
        }
        drop(kept);
        live
    };
    prop_assert_eq!(
        live.load(Ordering::Relaxed),
        0,
        "frames leaked after dropping the outputs and the worker"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn bad_input_is_counted_never_panics_never_leaks(
        steps in prop::collection::vec(step(), 1..48)
    ) {
        run_steps(steps)?;
    }

    #[test]
    fn bursts_of_any_traffic_match_packet_by_packet(
        steps in prop::collection::vec(step(), 1..80),
        cuts in prop::collection::vec(prop::bool::weighted(0.1), 80)
    ) {
        run_bursts(steps, cuts)?;
    }
}

#[test]
fn garbage_and_truncations_of_a_valid_frame_are_counted() {
    let mut rig = Rig::lab();
    let syn = client_tcp(46000, SYN, 1, 0, b"");
    for len in 0..syn.len() {
        let before = rig.total_drops();
        assert!(
            rig.send(0, &syn[..len]).is_empty(),
            "truncated to {len} forwarded"
        );
        assert_eq!(
            rig.total_drops(),
            before + 1,
            "truncated to {len} not counted"
        );
    }
    // Bad IP header checksum.
    let mut f = syn.clone();
    f[14 + 10] ^= 1;
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::BadIpChecksum), 1);
    // A fragment.
    let mut f = syn.clone();
    f[14 + 6] |= 0x20;
    checksum::fill_ipv4_header_checksum(&mut f[14..34]);
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::IpFragment), 1);
    // TTL 1: would expire on forwarding.
    let mut f = syn.clone();
    f[14 + 8] = 1;
    checksum::fill_ipv4_header_checksum(&mut f[14..34]);
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::TtlExceeded), 1);
    // Unknown ethertype.
    let mut f = syn.clone();
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::UnknownEthertype), 1);
    // An unknown L4 protocol to the VIP.
    let mut f = syn.clone();
    f[14 + 9] = 47;
    checksum::fill_ipv4_header_checksum(&mut f[14..34]);
    assert!(rig.send(0, &f).is_empty());
    assert_eq!(rig.drops(DropReason::UnknownL4Proto), 1);
}

#[test]
fn ip_options_are_carried_through_the_rewrite() {
    let mut rig = Rig::lab();
    let mut f = client_tcp(46100, SYN, 1, 0, b"");
    // Insert 4 bytes of options (NOP NOP NOP EOL) after the 20-byte IP header.
    f.splice(34..34, [1, 1, 1, 0]);
    f[14] = 0x46;
    let total = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    checksum::fill_ipv4_header_checksum(&mut f[14..38]);
    assert!(parse(&f).expect("valid frame").has_ip_options());
    let out = rig.send(0, &f);
    let p = only_ip4(&out, "SYN with IP options");
    assert_eq!(
        (p.src, p.dport),
        (LADDR, RPORT_TCP),
        "rewritten past the options"
    );
    assert_eq!(&out[0].1.data()[34..38], &[1, 1, 1, 0], "options kept");
}
