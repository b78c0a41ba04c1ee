//! The `pipeline` target's lab: testkit's two-port lab (client side `dpdk0`, real-server side
//! `dpdk1`) with services in every forwarding mode, TCP and UDP, and the situations that lead
//! to the worker's less trodden paths: an unresolved real server (ARP, parked packets), a
//! tunnel real server behind an unresolved gateway, clients beyond a default route, a
//! real server drained to weight 0 and a service with no other, a service whose real servers
//! override its mode, two NAT services sharing a real server (so that a client's two
//! connections can claim one reply tuple), routes that come and go ([`ROUTES`]), short
//! timeouts (so that expiry happens within an input).
//!
//! The lab's worker (1 of 2) starts each round-robin schedule at its second real server, so
//! services list the unresolved RS3 first: a service's first connection goes to a resolved
//! real server, its second waits for ARP.

use std::net::{IpAddr, Ipv4Addr};

use dpvs_api::{Forward, Proto, Sched, ServiceKey};
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::engine::worker::WorkerLimits;
use dpvs_core::packet::MacAddr;
use dpvs_daemon::control::state::ControlState;
use dpvs_testkit::lab::{CLIENT, LADDR, RS1, RS2, VIP, lab_state, sa, tcp_svc, udp_svc};

/// The client side's default gateway (resolved): clients beyond it are reachable.
pub const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
pub const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0x01, 0xfe]);
/// A real server on the real-server link whose MAC nobody configured: its packets wait for ARP.
pub const RS3: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 13);
/// A gateway on the real-server side that never answers ARP, and a tunnel real server behind it.
pub const RS_GW: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 254);
pub const RS_FAR: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 9);

/// Clients a template may send from: the resolved lab client, an on-link client nobody
/// resolved yet, and two beyond the default gateway.
pub const CLIENTS: [Ipv4Addr; 4] = [
    CLIENT,
    Ipv4Addr::new(10, 0, 0, 3),
    Ipv4Addr::new(203, 0, 113, 7),
    Ipv4Addr::new(198, 51, 100, 1),
];

/// Real servers a stray reply may come from (RS3 unresolved until learnt by ARP).
pub const RSS: [Ipv4Addr; 4] = [RS1, RS2, RS3, RS_FAR];

/// Idle timeouts short enough for an input to see connections expire (seconds).
pub const TIMEOUTS: Timeouts = Timeouts {
    established: 30,
    syn_sent: 10,
    syn_recv: 10,
    fin_wait: 10,
    time_wait: 5,
    close: 2,
    close_wait: 10,
    last_ack: 10,
    listen: 10,
    synack: 10,
    udp: 5,
};

/// The longest timeout above, in milliseconds: after that much time every entry has expired.
pub const LONGEST_TIMEOUT_MS: u64 = 30_000;

/// Small tables, so that the fuzzer fills them: a full connection table and a full pending
/// queue are paths too.
pub const LIMITS: WorkerLimits = WorkerLimits {
    conns: 64,
    pending_per_hop: 4,
    pending_hops: 4,
};

fn key(proto: Proto, port: u16) -> ServiceKey {
    ServiceKey {
        proto,
        vip: IpAddr::V4(VIP),
        port,
    }
}

/// The TCP services, in the order templates index them: FullNAT, NAT, DR, TUN, every mode,
/// a port with no service, NAT again to tcp:81's real server RS1:8081, and one whose only
/// real server is drained.
pub fn tcp_services() -> Vec<ServiceKey> {
    vec![
        tcp_svc(),
        key(Proto::Tcp, 81),
        key(Proto::Tcp, 8000),
        key(Proto::Tcp, 9000),
        key(Proto::Tcp, 82),
        // No such service: the VIP answers with a RST.
        key(Proto::Tcp, 7),
        key(Proto::Tcp, 83),
        key(Proto::Tcp, 84),
    ]
}

/// The UDP services, in the order templates index them: FullNAT, NAT, DR, TUN, no service.
pub fn udp_services() -> Vec<ServiceKey> {
    vec![
        udp_svc(),
        key(Proto::Udp, 54),
        key(Proto::Udp, 8001),
        key(Proto::Udp, 9001),
        key(Proto::Udp, 7),
    ]
}

/// A real server: address, port, weight, and the mode it overrides its service's with.
type Rs = (Ipv4Addr, u16, u32, Option<Forward>);

/// The control state of the lab. Panics if the control plane refuses it (a broken harness).
pub fn state() -> ControlState {
    // testkit's lab: FullNAT tcp:VIP:80 and udp:VIP:53 over RS1 and RS2 (both resolved),
    // local address LADDR.
    let mut s = lab_state(TIMEOUTS, &[RS1, RS2]);
    let v4 = IpAddr::V4;
    let (prefix, len, port, via) = ROUTES[1];
    s.route_add(v4(prefix), len, port, Some(v4(via)), None)
        .expect("default route");
    s.neigh_add(v4(GW), &GW_MAC.to_string(), "dpdk0")
        .expect("gateway neighbour");
    s.route_add(
        v4(Ipv4Addr::new(172, 16, 0, 0)),
        16,
        "dpdk1",
        Some(v4(RS_GW)),
        None,
    )
    .expect("route to the far real servers");
    let services: [(ServiceKey, Sched, Forward, &[Rs]); 9] = [
        (
            key(Proto::Tcp, 81),
            Sched::Rr,
            Forward::Nat,
            &[(RS3, 8081, 1, None), (RS1, 8081, 1, None)],
        ),
        (
            key(Proto::Udp, 54),
            Sched::Rr,
            Forward::Nat,
            &[(RS1, 5354, 1, None)],
        ),
        (
            key(Proto::Tcp, 8000),
            Sched::Rr,
            Forward::Dr,
            &[(RS3, 8000, 1, None), (RS2, 8000, 1, None)],
        ),
        (
            key(Proto::Udp, 8001),
            Sched::Rr,
            Forward::Dr,
            &[(RS1, 8001, 1, None)],
        ),
        (
            key(Proto::Tcp, 9000),
            Sched::Rr,
            Forward::Tun,
            &[(RS_FAR, 9000, 1, None), (RS1, 9000, 1, None)],
        ),
        (
            key(Proto::Udp, 9001),
            Sched::Rr,
            Forward::Tun,
            &[(RS3, 9001, 1, None), (RS2, 9001, 1, None)],
        ),
        // One service, every mode: its real servers override the FullNAT default.
        (
            key(Proto::Tcp, 82),
            Sched::Wrr,
            Forward::Fnat,
            &[
                (RS1, 8082, 3, None),
                (RS2, 8082, 1, Some(Forward::Nat)),
                (RS1, 82, 1, Some(Forward::Dr)),
                (RS3, 82, 1, Some(Forward::Tun)),
                (RS1, 8083, 0, None),
            ],
        ),
        (
            key(Proto::Tcp, 83),
            Sched::Rr,
            Forward::Nat,
            &[(RS1, 8081, 1, None)],
        ),
        (
            key(Proto::Tcp, 84),
            Sched::Rr,
            Forward::Fnat,
            &[(RS2, 8084, 0, None)],
        ),
    ];
    for (k, sched, forward, rss) in services {
        s.service_add(k, sched, forward).expect("service add");
        if forward == Forward::Fnat {
            s.laddr_add(&k, v4(LADDR)).expect("laddr add");
        }
        for &(ip, port, weight, fwd) in rss {
            s.rs_add(&k, sa(ip, port), weight, fwd).expect("rs add");
        }
    }
    s
}

/// Routes the control plane adds and removes while traffic flows ([`super::input::Step::Route`]):
/// RS2 behind the real-server side's gateway (its DR connections then count `rs_not_on_link`,
/// its others wait for that gateway's ARP), and the default route (without it, clients beyond
/// the gateway have `no_route`; it is in the lab at the start).
pub const ROUTES: [(Ipv4Addr, u8, &str, Ipv4Addr); 2] = [
    (RS2, 32, "dpdk1", RS_GW),
    (Ipv4Addr::UNSPECIFIED, 0, "dpdk0", GW),
];

/// The counter slots of the lab's services and of their real servers, for the flush steps.
pub fn slots(s: &ControlState) -> (Vec<u32>, Vec<u32>) {
    let svc = s.services.iter().map(|x| x.slot).collect();
    let rs = s
        .services
        .iter()
        .flat_map(|x| x.rs.iter().map(|r| r.slot))
        .collect();
    (svc, rs)
}
