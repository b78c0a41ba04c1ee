//! The `pipeline` target's lab: testkit's two-port lab (client side `dpdk0`, real-server side
//! `dpdk1`) with services in every forwarding mode, TCP and UDP, every scheduler family, and
//! the situations that lead to the worker's less trodden paths: an unresolved real server
//! (ARP, parked packets), a tunnel real server behind an unresolved gateway, clients beyond a
//! default route, a real server drained to weight 0 and a service with no other, a service
//! whose real servers override its mode, two NAT services sharing a real server (so that a
//! client's two connections can claim one reply tuple), real servers with connection limits
//! low enough to reach, persistent services over a template table small enough to fill, a
//! kernel twin on the client side (what is not the data plane's goes there), routes that come
//! and go ([`ROUTES`]), short timeouts (so that expiry happens within an input).
//!
//! The lab's worker (1 of 2) starts each round-robin schedule at its second real server, so
//! services list the unresolved RS3 first: a service's first connection goes to a resolved
//! real server, its second waits for ARP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use dpvs_api::{
    Forward, Persistence, Proto, RsSpec, Sched, SchedFlag, SchedFlags, ServiceKey, ServiceSpec,
};
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

/// The longest persistence timeout a service may have (the lab's, or one an edit sets), in
/// milliseconds.
pub const LONGEST_PERSISTENCE_MS: u64 = 20_000;

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
/// a port with no service, NAT again to tcp:81's real server RS1:8081, one whose only real
/// server is drained, then one per scheduler family: wlc with connection limits, mh, a
/// persistent sh, fo.
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
        key(Proto::Tcp, 85),
        key(Proto::Tcp, 86),
        key(Proto::Tcp, 87),
        key(Proto::Tcp, 88),
    ]
}

/// The UDP services, in the order templates index them: FullNAT, NAT, DR, TUN, no service,
/// a persistent conhash, lc with a limit.
pub fn udp_services() -> Vec<ServiceKey> {
    vec![
        udp_svc(),
        key(Proto::Udp, 54),
        key(Proto::Udp, 8001),
        key(Proto::Udp, 9001),
        key(Proto::Udp, 7),
        key(Proto::Udp, 55),
        key(Proto::Udp, 56),
    ]
}

/// Persistence templates in the lab's table: the fewest the engine makes (16, which its
/// probes cover whole), so that a full table is reachable too.
pub const TEMPLATES: usize = 16;

/// The Maglev table size of the `mh` service: the smallest allowed, cheap to build per input.
pub const MH_TABLE: u32 = 251;

/// A real server: address, port, weight, the mode it overrides its service's with, and its
/// connection limits (upper, lower; 0 none, as the API's absent).
type Rs = (Ipv4Addr, u16, u32, Option<Forward>, (u32, u32));

/// A service: key, scheduler, flags, persistence (timeout, netmask), mode, real servers.
type Svc<'a> = (
    ServiceKey,
    Sched,
    SchedFlags,
    Option<(u32, u8)>,
    Forward,
    &'a [Rs],
);

const NONE: (u32, u32) = (0, 0);
const NO_FLAGS: SchedFlags = SchedFlags {
    fallback: false,
    port: false,
};

/// The control state of the lab. Panics if the control plane refuses it (a broken harness).
pub fn state() -> ControlState {
    // testkit's lab: FullNAT tcp:VIP:80 and udp:VIP:53 over RS1 and RS2 (both resolved),
    // local address LADDR; the client side's port gets a kernel twin.
    let mut s = lab_state(TIMEOUTS, &[RS1, RS2]).with_templates(TEMPLATES);
    s.ports[0].kni = true;
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
    let rr = |k, forward, rss: &'static [Rs]| -> Svc<'static> {
        (k, Sched::Rr, NO_FLAGS, None, forward, rss)
    };
    let both = SchedFlags {
        fallback: true,
        port: true,
    };
    let services: [Svc<'_>; 15] = [
        rr(
            key(Proto::Tcp, 81),
            Forward::Nat,
            &[(RS3, 8081, 1, None, NONE), (RS1, 8081, 1, None, NONE)],
        ),
        rr(
            key(Proto::Udp, 54),
            Forward::Nat,
            &[(RS1, 5354, 1, None, NONE)],
        ),
        rr(
            key(Proto::Tcp, 8000),
            Forward::Dr,
            &[(RS3, 8000, 1, None, NONE), (RS2, 8000, 1, None, NONE)],
        ),
        rr(
            key(Proto::Udp, 8001),
            Forward::Dr,
            &[(RS1, 8001, 1, None, NONE)],
        ),
        rr(
            key(Proto::Tcp, 9000),
            Forward::Tun,
            &[(RS_FAR, 9000, 1, None, NONE), (RS1, 9000, 1, None, NONE)],
        ),
        rr(
            key(Proto::Udp, 9001),
            Forward::Tun,
            &[(RS3, 9001, 1, None, NONE), (RS2, 9001, 1, None, NONE)],
        ),
        // One service, every mode: its real servers override the FullNAT default.
        (
            key(Proto::Tcp, 82),
            Sched::Wrr,
            NO_FLAGS,
            None,
            Forward::Fnat,
            &[
                (RS1, 8082, 3, None, NONE),
                (RS2, 8082, 1, Some(Forward::Nat), NONE),
                (RS1, 82, 1, Some(Forward::Dr), NONE),
                (RS3, 82, 1, Some(Forward::Tun), NONE),
                (RS1, 8083, 0, None, NONE),
            ],
        ),
        rr(
            key(Proto::Tcp, 83),
            Forward::Nat,
            &[(RS1, 8081, 1, None, NONE)],
        ),
        rr(
            key(Proto::Tcp, 84),
            Forward::Fnat,
            &[(RS2, 8084, 0, None, NONE)],
        ),
        // Weighted least-connection with limits small enough to reach: RS1 takes 3, then
        // none until it is down to 1; RS2 takes 2, then none until down to 1 (3/4 of 2).
        (
            key(Proto::Tcp, 85),
            Sched::Wlc,
            NO_FLAGS,
            None,
            Forward::Fnat,
            &[
                (RS1, 8085, 2, None, (3, 1)),
                (RS2, 8085, 1, None, (2, 0)),
                (RS3, 8085, 1, None, NONE),
            ],
        ),
        // Maglev over the client's address and port, falling back when a server is out.
        (
            key(Proto::Tcp, 86),
            Sched::Mh,
            both,
            None,
            Forward::Nat,
            &[
                (RS1, 8086, 1, None, (2, 0)),
                (RS2, 8086, 2, None, NONE),
                (RS3, 8086, 1, None, NONE),
            ],
        ),
        // Source hashing, persistent per /24 for 20 s (a client keeps its real server even
        // over its limit, as IPVS's templates do), falling back when its server is out.
        (
            key(Proto::Tcp, 87),
            Sched::Sh,
            SchedFlags {
                fallback: true,
                port: false,
            },
            Some((20, 24)),
            Forward::Fnat,
            &[(RS1, 8087, 1, None, (2, 0)), (RS2, 8087, 1, None, NONE)],
        ),
        // Fail-over: RS2 (the heaviest) takes all until its limit, then RS1.
        (
            key(Proto::Tcp, 88),
            Sched::Fo,
            NO_FLAGS,
            None,
            Forward::Dr,
            &[(RS1, 88, 1, None, NONE), (RS2, 88, 3, None, (1, 0))],
        ),
        // A persistent consistent-hash ring over the whole 5-tuple, per client for 10 s.
        (
            key(Proto::Udp, 55),
            Sched::Conhash,
            SchedFlags {
                fallback: false,
                port: true,
            },
            Some((10, 32)),
            Forward::Fnat,
            &[(RS1, 5355, 1, None, NONE), (RS2, 5355, 2, None, NONE)],
        ),
        // Least-connection through the tunnel, RS1 limited to one datagram flow.
        (
            key(Proto::Udp, 56),
            Sched::Lc,
            NO_FLAGS,
            None,
            Forward::Tun,
            &[(RS_FAR, 56, 1, None, NONE), (RS1, 56, 1, None, (1, 0))],
        ),
    ];
    for (k, sched, sched_flags, persistence, forward, rss) in services {
        let spec = ServiceSpec {
            sched_flags,
            persistence: persistence.map(|(timeout, netmask)| Persistence { timeout, netmask }),
            mh_table_size: (sched == Sched::Mh).then_some(MH_TABLE),
            ..ServiceSpec::new(k, sched, forward)
        };
        s.service_add(&spec).expect("service add");
        if forward == Forward::Fnat {
            s.laddr_add(&k, v4(LADDR)).expect("laddr add");
        }
        for &(ip, port, weight, fwd, (upper, lower)) in rss {
            let rs = RsSpec {
                forward: fwd,
                upper: (upper > 0).then_some(upper),
                lower: (lower > 0).then_some(lower),
                ..RsSpec::new(sa(ip, port), weight)
            };
            s.rs_add(&k, &rs).expect("rs add");
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

/// An edit of the control plane ([`super::input::Step::Edit`]); `false` when it refused it
/// (say, a DR real server's service edited while a route puts it behind a gateway).
///
/// `target < 128` edits the `target`-th real server of the lab (over all services): weight
/// `a % 4`; `b % 4` its upper limit (0 none), `b / 4 % (upper + 1)` its lower one (0: 3/4 of
/// upper). Else it edits service `target - 128` (by index): scheduler `Sched::ALL[a % 8]`,
/// the flags of `b`'s bits 0 (fallback) and 1 (port) that the scheduler takes, persistent when
/// bit 2 is set (for `1 + b / 16` seconds, per /24 if bit 3 is set, else per client); its
/// forwarding mode stays.
pub fn edit(s: &mut ControlState, target: u8, a: u8, b: u8) -> bool {
    if let Some(t) = target.checked_sub(128) {
        let svc = &s.services[usize::from(t) % s.services.len()];
        let sched = Sched::ALL[usize::from(a) % Sched::ALL.len()];
        let takes = |f| sched.flag_names().iter().any(|(_, g)| *g == f);
        let spec = ServiceSpec {
            sched_flags: SchedFlags {
                fallback: b & 1 != 0 && takes(SchedFlag::Fallback),
                port: b & 2 != 0 && takes(SchedFlag::Port),
            },
            persistence: (b & 4 != 0).then(|| Persistence {
                timeout: 1 + u32::from(b / 16),
                netmask: if b & 8 != 0 { 24 } else { 32 },
            }),
            mh_table_size: (sched == Sched::Mh).then_some(MH_TABLE),
            ..ServiceSpec::new(svc.key, sched, svc.forward)
        };
        return s.service_edit(&spec).is_ok();
    }
    let all: Vec<(ServiceKey, SocketAddr)> = s
        .services
        .iter()
        .flat_map(|x| x.rs.iter().map(|r| (x.key, SocketAddr::V4(r.addr))))
        .collect();
    let (k, addr) = all[usize::from(target) % all.len()];
    let upper = u32::from(b % 4);
    let lower = u32::from(b / 4) % (upper + 1);
    let spec = RsSpec {
        upper: Some(upper),
        lower: Some(lower),
        ..RsSpec::new(addr, u32::from(a % 4))
    };
    s.rs_edit(&k, &spec).is_ok()
}

/// The counter slots of the lab's services and of their real servers, for the cut steps.
pub fn slots(s: &ControlState) -> (Vec<u32>, Vec<u32>) {
    let svc = s.services.iter().map(|x| x.slot).collect();
    let rs = s
        .services
        .iter()
        .flat_map(|x| x.rs.iter().map(|r| r.slot))
        .collect();
    (svc, rs)
}
