//! The control plane through its public entry points: `Control::handle` with `dpvs_api`
//! requests (state changes, publication, listings, one-line errors), deletions that cut a real
//! worker's connections, and the Unix control socket (`control::server::serve`) driven by
//! `dpvs_api::Client` and by raw lines.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, unbounded};
use dpvs_api::{
    Client, Counters, Forward, MAX_REQUEST_BYTES, MacAddr as ApiMac, NeighKind, Request,
    RequestEnvelope, Response, RouteSpec, RsSpec, Sched, ServiceInfo, ServiceKey, ServiceSpec,
    decode_response, encode_request,
};
use dpvs_core::drop::DropReason;
use dpvs_core::engine::sched::{Cycle, Schedule};
use dpvs_core::engine::stats::Stats;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_core::engine::worker::{Command, Ctx, Event, Output, Worker, WorkerLimits};
use dpvs_core::packet::VecFrame;
use dpvs_core::packet::ipv4::IpProto;
use dpvs_daemon::control::handler::{Control, Detached};
use dpvs_daemon::control::publish::{Publisher, Readers};
use dpvs_daemon::control::server::{Limits, serve, serve_with};
use dpvs_daemon::control::state::ControlState;
use dpvs_testkit::lab::*;

const WORKERS: usize = 2;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

fn control_from(mut state: ControlState) -> Control {
    let publisher = Publisher::new(state.snapshot(), state.neigh_table());
    Control {
        state,
        publisher,
        stats: Arc::new(Stats::new(WORKERS, SLOTS as usize)),
        commands: vec![],
        dataplane: Box::new(Detached),
        kernel: Default::default(),
        rates: Default::default(),
    }
}

/// Ports and our four addresses; no service, no neighbour.
fn control() -> Control {
    control_from(base_state(Timeouts::default()))
}

fn ok(c: &mut Control, req: Request) -> Response {
    let what = format!("{req:?}");
    c.handle(req)
        .unwrap_or_else(|e| panic!("{what} refused: {e}"))
}

/// The request must be refused with a one-line error containing every one of `needles`.
fn refused(c: &mut Control, req: Request, needles: &[&str]) -> String {
    let what = format!("{req:?}");
    let e = match c.handle(req) {
        Ok(r) => panic!("{what} accepted: {r:?}"),
        Err(e) => e,
    };
    assert!(!e.contains('\n'), "multi-line error for {what}: {e:?}");
    for n in needles {
        assert!(e.contains(n), "error for {what} does not name {n:?}: {e}");
    }
    e
}

fn spec(key: ServiceKey, sched: Sched) -> ServiceSpec {
    ServiceSpec::new(key, sched, Forward::Fnat)
}

fn rs_spec(ip: Ipv4Addr, port: u16, weight: u32) -> RsSpec {
    RsSpec::new(sa(ip, port), weight)
}

/// The pick cycle of an rr/wrr service.
fn cycle(s: &Schedule) -> &Cycle {
    match s {
        Schedule::Cycle(c) => c,
        other => panic!("not a cycle: {other:?}"),
    }
}

fn services(c: &mut Control, stats: bool) -> Vec<ServiceInfo> {
    match ok(c, Request::ServiceList { stats }) {
        Response::Services(v) => v,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The tcp service with RS1 and RS2 (weight 1) and the local address, through requests.
fn with_tcp_service(c: &mut Control) {
    ok(c, Request::ServiceAdd(spec(tcp_svc(), Sched::Rr)));
    ok(
        c,
        Request::LaddrAdd {
            service: tcp_svc(),
            addr: IpAddr::V4(LADDR),
            port: None,
        },
    );
    for rs in [RS1, RS2] {
        ok(
            c,
            Request::RsAdd {
                service: tcp_svc(),
                rs: rs_spec(rs, RPORT_TCP, 1),
            },
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Services and real servers
// ---------------------------------------------------------------------------------------------

#[test]
fn service_add_edit_del() {
    let mut c = control();
    let gen0 = c.publisher.snapshot.load().generation;
    assert_eq!(
        ok(&mut c, Request::ServiceAdd(spec(tcp_svc(), Sched::Rr))),
        Response::Done
    );
    let snap = c.publisher.snapshot.load();
    assert!(snap.generation > gen0, "a change publishes a new snapshot");
    assert!(
        snap.service(IpProto::TCP, VIP, VPORT_TCP).is_some(),
        "published"
    );

    refused(
        &mut c,
        Request::ServiceAdd(spec(tcp_svc(), Sched::Wrr)),
        &["tcp:10.0.0.100:80", "exists"],
    );
    // Every mode is a service default; DR and TUN need nothing the service lacks yet.
    for forward in [Forward::Dr, Forward::Tun, Forward::Nat] {
        let spec = ServiceSpec::new(udp_svc(), Sched::Rr, forward);
        ok(&mut c, Request::ServiceAdd(spec));
        ok(&mut c, Request::ServiceDel { service: udp_svc() });
    }
    let zero = ServiceKey {
        port: 0,
        ..udp_svc()
    };
    refused(
        &mut c,
        Request::ServiceAdd(spec(zero, Sched::Rr)),
        &["port 0"],
    );
    let v6 = ServiceKey {
        vip: "2001:db8::1".parse().unwrap(),
        ..tcp_svc()
    };
    refused(&mut c, Request::ServiceAdd(spec(v6, Sched::Rr)), &["IPv6"]);

    ok(&mut c, Request::ServiceEdit(spec(tcp_svc(), Sched::Wrr)));
    let list = services(&mut c, false);
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].key, list[0].sched), (tcp_svc(), Sched::Wrr));
    assert!(list[0].stats.is_none(), "no counters unless asked");
    let missing = ServiceKey {
        port: 81,
        ..tcp_svc()
    };
    refused(
        &mut c,
        Request::ServiceEdit(spec(missing, Sched::Rr)),
        &["no service tcp:10.0.0.100:81"],
    );

    assert_eq!(
        ok(&mut c, Request::ServiceDel { service: tcp_svc() }),
        Response::Done
    );
    assert!(services(&mut c, false).is_empty());
    assert!(
        c.publisher
            .snapshot
            .load()
            .service(IpProto::TCP, VIP, VPORT_TCP)
            .is_none(),
        "unpublished"
    );
    refused(
        &mut c,
        Request::ServiceDel { service: tcp_svc() },
        &["no service tcp:10.0.0.100:80"],
    );
    // The slots came back: the service can be added again.
    with_tcp_service(&mut c);
    assert_eq!(services(&mut c, false)[0].rs.len(), 2);
}

#[test]
fn real_server_add_edit_del() {
    let mut c = control();
    refused(
        &mut c,
        Request::RsAdd {
            service: tcp_svc(),
            rs: rs_spec(RS1, RPORT_TCP, 1),
        },
        &["no service tcp:10.0.0.100:80"],
    );
    with_tcp_service(&mut c);
    let list = services(&mut c, false);
    let rs = &list[0].rs;
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].addr, sa(RS1, RPORT_TCP));
    assert_eq!((rs[0].weight, rs[0].forward), (1, Forward::Fnat));
    assert_eq!((rs[0].active_conns, rs[0].inactive_conns), (0, 0));
    assert!(rs[0].stats.is_none());
    assert_eq!(list[0].laddrs, vec![IpAddr::V4(LADDR)]);
    let snap = c.publisher.snapshot.load();
    let svc = snap.service(IpProto::TCP, VIP, VPORT_TCP).unwrap();
    assert_eq!((svc.rs.len(), cycle(&svc.schedule).cycle_len()), (2, 2));
    assert_eq!(svc.laddrs, vec![LADDR]);

    let add = |rs: RsSpec| Request::RsAdd {
        service: tcp_svc(),
        rs,
    };
    refused(
        &mut c,
        add(rs_spec(RS1, RPORT_TCP, 5)),
        &["192.168.10.11:8080", "exists", "tcp:10.0.0.100:80"],
    );
    refused(
        &mut c,
        add(rs_spec(RS1, 9000, 70_000)),
        &["192.168.10.11:9000", "65535"],
    );
    refused(
        &mut c,
        add(rs_spec(RS1, 0, 1)),
        &["192.168.10.11:0", "port 0"],
    );
    // DR and TUN hand over the client's packet: the real server serves the VIP's port.
    for forward in [Forward::Dr, Forward::Tun] {
        let other_port = RsSpec {
            forward: Some(forward),
            ..rs_spec(RS1, 9000, 1)
        };
        refused(
            &mut c,
            add(other_port),
            &["192.168.10.11:9000", "port must be the service's (80)"],
        );
    }
    // DR reaches the real server by its MAC: it must be on one of our links.
    ok(
        &mut c,
        Request::RouteAdd(RouteSpec {
            prefix: "172.16.0.0".parse().unwrap(),
            prefix_len: 16,
            port: "dpdk1".into(),
            via: Some(IpAddr::V4(RS2)),
            src: None,
        }),
    );
    let routed = RsSpec {
        forward: Some(Forward::Dr),
        ..rs_spec("172.16.0.5".parse().unwrap(), 80, 1)
    };
    refused(
        &mut c,
        add(routed.clone()),
        &["172.16.0.5:80", "directly connected", "via 192.168.10.12"],
    );
    let unrouted = RsSpec {
        forward: Some(Forward::Dr),
        ..rs_spec("203.0.113.5".parse().unwrap(), 80, 1)
    };
    refused(
        &mut c,
        add(unrouted),
        &["203.0.113.5:80", "directly connected"],
    );
    // TUN goes through gateways.
    ok(
        &mut c,
        add(RsSpec {
            forward: Some(Forward::Tun),
            ..routed
        }),
    );
    ok(
        &mut c,
        Request::RsDel {
            service: tcp_svc(),
            addr: "172.16.0.5:80".parse().unwrap(),
        },
    );
    ok(
        &mut c,
        Request::RouteDel {
            prefix: "172.16.0.0".parse().unwrap(),
            prefix_len: 16,
        },
    );

    // Drain RS1: out of the schedule.
    ok(
        &mut c,
        Request::RsEdit {
            service: tcp_svc(),
            rs: rs_spec(RS1, RPORT_TCP, 0),
        },
    );
    assert_eq!(services(&mut c, false)[0].rs[0].weight, 0);
    let snap = c.publisher.snapshot.load();
    let svc = snap.service(IpProto::TCP, VIP, VPORT_TCP).unwrap();
    assert_eq!(cycle(&svc.schedule).table(), &[1], "only RS2 scheduled");
    refused(
        &mut c,
        Request::RsEdit {
            service: tcp_svc(),
            rs: rs_spec(Ipv4Addr::new(192, 168, 10, 99), RPORT_TCP, 1),
        },
        &["no real server 192.168.10.99:8080 in tcp:10.0.0.100:80"],
    );

    let del = |ip| Request::RsDel {
        service: tcp_svc(),
        addr: sa(ip, RPORT_TCP),
    };
    assert_eq!(ok(&mut c, del(RS1)), Response::Done);
    let list = services(&mut c, false);
    assert_eq!(list[0].rs.len(), 1);
    assert_eq!(list[0].rs[0].addr, sa(RS2, RPORT_TCP));
    let snap = c.publisher.snapshot.load();
    assert_eq!(
        snap.service(IpProto::TCP, VIP, VPORT_TCP).unwrap().rs.len(),
        1
    );
    refused(&mut c, del(RS1), &["no real server 192.168.10.11:8080"]);
}

#[test]
fn service_list_with_stats_sums_workers() {
    let mut c = control();
    with_tcp_service(&mut c);
    let svc = svc_slot(&c.state, &tcp_svc());
    let rs1 = rs_slot(&c.state, &tcp_svc(), sa(RS1, RPORT_TCP));
    // What two workers would have counted.
    for (w, n) in [(0, 2u64), (1, 3)] {
        for slot in [svc, rs1] {
            let k = c.stats.slot(w, slot).unwrap();
            k.conns.add(n);
            k.in_pkts.add(10 * n);
            k.out_pkts.add(20 * n);
            k.in_bytes.add(1000 * n);
            k.out_bytes.add(2000 * n);
            k.active.add(1);
            k.inactive.add(n - 1);
        }
    }
    let list = services(&mut c, true);
    let want = Counters {
        conns: 5,
        in_pkts: 50,
        out_pkts: 100,
        in_bytes: 5000,
        out_bytes: 10000,
    };
    assert_eq!(
        list[0].stats,
        Some(want),
        "service counters summed over workers"
    );
    let r1 = list[0]
        .rs
        .iter()
        .find(|r| r.addr == sa(RS1, RPORT_TCP))
        .unwrap();
    assert_eq!(r1.stats, Some(want));
    assert_eq!((r1.active_conns, r1.inactive_conns), (2, 3));
    let r2 = list[0]
        .rs
        .iter()
        .find(|r| r.addr == sa(RS2, RPORT_TCP))
        .unwrap();
    assert_eq!(r2.stats, Some(Counters::default()));
    // The JSON shape carries the counters only when asked.
    let with = serde_json::to_value(&list[0]).unwrap();
    assert!(with.get("stats").is_some());
    let without = serde_json::to_value(&services(&mut c, false)[0]).unwrap();
    assert!(without.get("stats").is_none(), "{without}");
}

/// `Stats::reset_slot` is documented as "zeroes a slot before it is handed to a new service or
/// real server", but nothing calls it: a freed slot is handed out with its old totals.
#[test]
fn new_real_server_starts_with_zero_counters() {
    let mut c = control();
    with_tcp_service(&mut c);
    let rs1 = rs_slot(&c.state, &tcp_svc(), sa(RS1, RPORT_TCP));
    let k = c.stats.slot(0, rs1).unwrap();
    k.conns.add(7);
    k.in_pkts.add(70);
    ok(
        &mut c,
        Request::RsDel {
            service: tcp_svc(),
            addr: sa(RS1, RPORT_TCP),
        },
    );
    let rs3 = Ipv4Addr::new(192, 168, 10, 13);
    ok(
        &mut c,
        Request::RsAdd {
            service: tcp_svc(),
            rs: rs_spec(rs3, RPORT_TCP, 1),
        },
    );
    let list = services(&mut c, true);
    let r3 = list[0]
        .rs
        .iter()
        .find(|r| r.addr == sa(rs3, RPORT_TCP))
        .unwrap();
    assert_eq!(
        r3.stats,
        Some(Counters::default()),
        "a new real server shows the deleted one's traffic"
    );
}

// ---------------------------------------------------------------------------------------------
// Addresses, local addresses, routes, neighbours
// ---------------------------------------------------------------------------------------------

#[test]
fn local_address_must_be_ours() {
    let mut c = control_from(ControlState::new(ports(), Timeouts::default(), SLOTS));
    ok(&mut c, Request::ServiceAdd(spec(tcp_svc(), Sched::Rr)));
    let laddr = |addr: Ipv4Addr| Request::LaddrAdd {
        service: tcp_svc(),
        addr: IpAddr::V4(addr),
        port: Some("dpdk1".into()),
    };
    refused(
        &mut c,
        laddr(LADDR),
        &["192.168.10.200", "not one of the daemon's addresses"],
    );
    ok(
        &mut c,
        Request::AddrAdd {
            addr: IpAddr::V4(LADDR),
            prefix_len: 32,
            port: "dpdk1".into(),
        },
    );
    ok(&mut c, laddr(LADDR));
    refused(
        &mut c,
        laddr(LADDR),
        &["192.168.10.200", "exists", "tcp:10.0.0.100:80"],
    );
    let snap = c.publisher.snapshot.load();
    assert!(
        snap.local(LADDR).unwrap().is_laddr,
        "published as a local address"
    );
    match ok(&mut c, Request::LaddrList { service: None }) {
        Response::Laddrs(v) => {
            assert_eq!(v.len(), 1);
            assert_eq!((v[0].service, v[0].addr), (tcp_svc(), IpAddr::V4(LADDR)));
            assert_eq!(v[0].port.as_deref(), Some("dpdk1"));
        }
        other => panic!("{other:?}"),
    }
    refused(
        &mut c,
        Request::AddrDel {
            addr: IpAddr::V4(LADDR),
        },
        &["192.168.10.200", "local address of tcp:10.0.0.100:80"],
    );
    let del = Request::LaddrDel {
        service: tcp_svc(),
        addr: IpAddr::V4(LADDR),
    };
    ok(&mut c, del.clone());
    refused(
        &mut c,
        del,
        &["no local address 192.168.10.200 in tcp:10.0.0.100:80"],
    );
    ok(
        &mut c,
        Request::AddrDel {
            addr: IpAddr::V4(LADDR),
        },
    );
    assert!(c.publisher.snapshot.load().local(LADDR).is_none());
}

#[test]
fn addresses_add_list_del() {
    let mut c = control_from(ControlState::new(ports(), Timeouts::default(), SLOTS));
    let add = |addr: &str, prefix_len: u8, port: &str| Request::AddrAdd {
        addr: addr.parse().unwrap(),
        prefix_len,
        port: port.into(),
    };
    ok(&mut c, add("10.0.0.1", 24, "dpdk0"));
    ok(&mut c, add("192.168.10.1", 24, "dpdk1"));
    refused(
        &mut c,
        add("10.0.0.1", 24, "dpdk1"),
        &["address 10.0.0.1 exists"],
    );
    refused(
        &mut c,
        add("10.0.0.5", 33, "dpdk0"),
        &["10.0.0.5/33", "prefix length"],
    );
    refused(
        &mut c,
        add("10.0.0.5", 24, "dpdk9"),
        &["unknown port \"dpdk9\""],
    );
    refused(
        &mut c,
        add("2001:db8::1", 64, "dpdk0"),
        &["2001:db8::1", "IPv6"],
    );
    match ok(&mut c, Request::AddrList) {
        Response::Addrs(v) => {
            assert_eq!(v.len(), 2);
            assert_eq!(v[0].addr, IpAddr::V4(ADDR0));
            assert_eq!((v[0].prefix_len, v[0].port.as_str()), (24, "dpdk0"));
            assert_eq!(v[1].port, "dpdk1");
        }
        other => panic!("{other:?}"),
    }
    let snap = c.publisher.snapshot.load();
    assert_eq!(snap.local(ADDR0).map(|l| l.port), Some(0));
    assert_eq!(
        snap.routes.next_hop(Ipv4Addr::new(10, 0, 0, 9)),
        Some((0, Ipv4Addr::new(10, 0, 0, 9), Some(ADDR0))),
        "connected route derived from the address"
    );
    ok(
        &mut c,
        Request::AddrDel {
            addr: "10.0.0.1".parse().unwrap(),
        },
    );
    refused(
        &mut c,
        Request::AddrDel {
            addr: "10.0.0.1".parse().unwrap(),
        },
        &["no address 10.0.0.1"],
    );
    let snap = c.publisher.snapshot.load();
    assert!(snap.local(ADDR0).is_none());
    assert!(snap.routes.next_hop(Ipv4Addr::new(10, 0, 0, 9)).is_none());
}

#[test]
fn routes_add_list_del() {
    let mut c = control();
    let route = |prefix: &str, len: u8| {
        Request::RouteAdd(RouteSpec {
            prefix: prefix.parse().unwrap(),
            prefix_len: len,
            port: "dpdk0".into(),
            via: Some("10.0.0.254".parse().unwrap()),
            src: None,
        })
    };
    ok(&mut c, route("172.16.0.0", 12));
    refused(
        &mut c,
        route("172.16.0.1", 12),
        &["172.16.0.1/12", "host bits"],
    );
    refused(
        &mut c,
        route("172.16.0.0", 12),
        &["172.16.0.0/12", "exists"],
    );
    refused(&mut c, route("172.16.0.0", 40), &["172.16.0.0/40"]);
    let mut bad_port = route("172.20.0.0", 16);
    if let Request::RouteAdd(r) = &mut bad_port {
        r.port = "nope".into();
    }
    refused(&mut c, bad_port, &["unknown port \"nope\""]);
    let snap = c.publisher.snapshot.load();
    assert_eq!(
        snap.routes.next_hop(Ipv4Addr::new(172, 17, 1, 1)),
        Some((0, Ipv4Addr::new(10, 0, 0, 254), None)),
        "published: via the gateway"
    );
    match ok(&mut c, Request::RouteList) {
        Response::Routes(v) => {
            let ours = v
                .iter()
                .find(|r| r.prefix == "172.16.0.0".parse::<IpAddr>().unwrap())
                .expect("configured route listed");
            assert_eq!((ours.prefix_len, ours.port.as_str()), (12, "dpdk0"));
            assert_eq!(ours.via, Some("10.0.0.254".parse().unwrap()));
            let connected = v
                .iter()
                .find(|r| r.prefix == "192.168.10.0".parse::<IpAddr>().unwrap())
                .expect("connected route listed");
            assert_eq!(connected.port, "dpdk1");
            assert_eq!(connected.src, Some(IpAddr::V4(ADDR1)));
        }
        other => panic!("{other:?}"),
    }
    let del = Request::RouteDel {
        prefix: "172.16.0.0".parse().unwrap(),
        prefix_len: 12,
    };
    ok(&mut c, del.clone());
    refused(&mut c, del, &["no route 172.16.0.0/12"]);
    assert!(
        c.publisher
            .snapshot
            .load()
            .routes
            .next_hop(Ipv4Addr::new(172, 17, 1, 1))
            .is_none()
    );
}

#[test]
fn neighbours_add_list_del_and_learn() {
    let mut c = control();
    let m = |s: &str| s.parse::<ApiMac>().unwrap();
    ok(
        &mut c,
        Request::NeighAdd {
            addr: IpAddr::V4(RS2),
            mac: RS2_MAC,
            port: "dpdk1".into(),
        },
    );
    ok(
        &mut c,
        Request::NeighAdd {
            addr: IpAddr::V4(RS1),
            mac: RS1_MAC,
            port: "dpdk1".into(),
        },
    );
    refused(
        &mut c,
        Request::NeighAdd {
            addr: IpAddr::V4(RS1),
            mac: RS1_MAC,
            port: "dpdk7".into(),
        },
        &["unknown port \"dpdk7\""],
    );
    let n = c.publisher.neigh.load();
    let e = n.get(RS1).expect("published to the workers");
    assert_eq!((e.mac, e.port, e.is_static), (RS1_MAC.0, 1, true));

    // Learnt from a worker's event; a learnt entry never overrides a static one.
    let learnt = m("02:00:00:00:01:03");
    c.on_event(Event::NeighLearned {
        ip: Ipv4Addr::new(10, 0, 0, 3),
        mac: learnt,
        port: 0,
    });
    c.on_event(Event::NeighLearned {
        ip: RS1,
        mac: learnt,
        port: 1,
    });
    match ok(&mut c, Request::NeighList) {
        Response::Neighs(v) => {
            let addrs: Vec<IpAddr> = v.iter().map(|n| n.addr).collect();
            let mut sorted = addrs.clone();
            sorted.sort();
            assert_eq!(addrs, sorted, "listed in address order");
            assert_eq!(v.len(), 3);
            let l = v
                .iter()
                .find(|n| n.addr == IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)));
            let l = l.expect("learnt entry listed");
            assert_eq!(
                (l.mac, l.port.as_str(), l.kind),
                (learnt, "dpdk0", NeighKind::Learnt)
            );
            let s = v.iter().find(|n| n.addr == IpAddr::V4(RS1)).unwrap();
            assert_eq!((s.mac, s.kind), (RS1_MAC, NeighKind::Static), "static wins");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        c.publisher
            .neigh
            .load()
            .get(Ipv4Addr::new(10, 0, 0, 3))
            .is_some()
    );

    ok(
        &mut c,
        Request::NeighDel {
            addr: IpAddr::V4(RS1),
        },
    );
    assert!(
        c.publisher.neigh.load().get(RS1).is_none(),
        "removal published"
    );
    refused(
        &mut c,
        Request::NeighDel {
            addr: IpAddr::V4(RS1),
        },
        &["no neighbour 192.168.10.11"],
    );
}

#[test]
fn stats_links_and_conns_without_workers() {
    let mut c = control();
    c.stats.worker(1).drops[DropReason::NoRoute.index()].add(4);
    c.stats.worker(0).rx_pkts.add(9);
    match ok(&mut c, Request::Stats) {
        Response::Stats(s) => {
            assert_eq!(s.workers.len(), WORKERS);
            assert_eq!(s.workers[1].lcore, 2, "Detached: lcore = worker + 1");
            assert_eq!(
                s.workers[0].drops.len(),
                DropReason::ALL.len(),
                "every reason listed"
            );
            assert_eq!(s.workers[1].drops["no_route"], 4);
            assert_eq!(s.drops_total["no_route"], 4);
            assert_eq!((s.total.drops, s.total.rx_pkts), (4, 9));
            assert_eq!((s.mbuf_in_use, s.mbuf_capacity), (0, 0));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ok(&mut c, Request::LinkList), Response::Links(vec![]));
    assert_eq!(
        ok(
            &mut c,
            Request::ConnList {
                service: None,
                limit: None
            }
        ),
        Response::Conns(vec![])
    );
    refused(
        &mut c,
        Request::ConnList {
            service: Some(tcp_svc()),
            limit: None,
        },
        &["no service tcp:10.0.0.100:80"],
    );
}

// ---------------------------------------------------------------------------------------------
// Deletions with a real worker
// ---------------------------------------------------------------------------------------------

struct Out(Vec<(u16, VecFrame)>);

impl Output<VecFrame> for Out {
    fn tx(&mut self, port: u16, f: VecFrame) {
        self.0.push((port, f));
    }
    fn alloc(&mut self) -> Option<VecFrame> {
        Some(VecFrame::new())
    }
}

fn client_syn(cport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ethernet2(CLIENT_MAC.0, MAC0.0)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .tcp(cport, VPORT_TCP, 1, 64240)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

/// A worker on its own thread running housekeeping (which serves commands) until stopped.
struct WorkerThread {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl WorkerThread {
    /// Runs `worker` as the daemon's lcore loop would between bursts: housekeeping, then the
    /// commands on `commands`.
    fn spawn(
        mut worker: Worker<VecFrame>,
        commands: Receiver<Command>,
        mut readers: Readers,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut out = Out(Vec::new());
            while !flag.load(Ordering::Relaxed) {
                let Readers { snapshot, neigh } = &mut readers;
                let ctx = Ctx {
                    snap: snapshot.load(),
                    neigh: neigh.load(),
                    now_ms: 5_000,
                };
                worker.housekeeping(&ctx, 64, &mut out);
                while let Ok(cmd) = commands.try_recv() {
                    worker.serve(&ctx, cmd);
                }
                out.0.clear();
                thread::yield_now();
            }
        });
        WorkerThread {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for WorkerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[test]
fn deletions_cut_the_connections_of_a_running_worker() {
    let mut c = control_from(lab_state(Timeouts::default(), &[RS1, RS2]));
    let (cmd_tx, cmd_rx) = unbounded();
    let mut worker: Worker<VecFrame> = Worker::new(
        0,
        1,
        WorkerLimits {
            conns: 64,
            pending_per_hop: 4,
            pending_hops: 4,
        },
        0,
        Arc::clone(&c.stats),
    );
    // Four connections, two per real server.
    {
        let snap = c.publisher.snapshot.load();
        let neigh = c.publisher.neigh.load();
        let ctx = Ctx {
            snap: &snap,
            neigh: &neigh,
            now_ms: 5_000,
        };
        let mut out = Out(Vec::new());
        worker.housekeeping(&ctx, 64, &mut out);
        for cport in 50000..50004 {
            worker.process(&ctx, 0, VecFrame::from_bytes(&client_syn(cport)), &mut out);
        }
        assert_eq!(out.0.len(), 4, "four SYNs forwarded");
    }
    c.commands.push(cmd_tx);
    let _w = WorkerThread::spawn(worker, cmd_rx, c.publisher.readers());

    let conns = |c: &mut Control, service: Option<ServiceKey>| match ok(
        c,
        Request::ConnList {
            service,
            limit: None,
        },
    ) {
        Response::Conns(v) => v,
        other => panic!("{other:?}"),
    };
    let all = conns(&mut c, Some(tcp_svc()));
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|x| x.state == "SYN_RECV" && x.worker == 0));
    assert_eq!(
        all.iter().filter(|x| x.rs == sa(RS1, RPORT_TCP)).count(),
        2,
        "{all:?}"
    );
    let limited = match ok(
        &mut c,
        Request::ConnList {
            service: None,
            limit: Some(3),
        },
    ) {
        Response::Conns(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(limited.len(), 3, "limit honoured");

    // Deleting RS1 cuts its connections in the worker.
    ok(
        &mut c,
        Request::RsDel {
            service: tcp_svc(),
            addr: sa(RS1, RPORT_TCP),
        },
    );
    let left = conns(&mut c, Some(tcp_svc()));
    assert_eq!(
        left.len(),
        2,
        "only RS2's connections belong to the service: {left:?}"
    );
    assert!(left.iter().all(|x| x.rs == sa(RS2, RPORT_TCP)));
    let rs2 = &services(&mut c, false)[0].rs;
    assert_eq!(rs2.len(), 1);
    assert_eq!(rs2[0].inactive_conns, 2, "RS2's gauge untouched");

    // Deleting the service cuts the rest.
    ok(&mut c, Request::ServiceDel { service: tcp_svc() });
    assert!(services(&mut c, false).iter().all(|s| s.key != tcp_svc()));
    refused(
        &mut c,
        Request::ConnList {
            service: Some(tcp_svc()),
            limit: None,
        },
        &["no service tcp:10.0.0.100:80"],
    );
    // Added again (its counter slots are reused): the cut connections do not come back
    // under it, and its gauges start at zero.
    with_tcp_service(&mut c);
    assert!(
        conns(&mut c, Some(tcp_svc())).is_empty(),
        "cut connections reappeared"
    );
    let svc = &services(&mut c, false)[0];
    for r in &svc.rs {
        assert_eq!((r.active_conns, r.inactive_conns), (0, 0), "{r:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The control socket
// ---------------------------------------------------------------------------------------------

/// A fresh socket path in a directory that does not exist yet (serve creates it).
fn socket_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dpvs-ctl-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("dpvs.sock")
}

struct Raw {
    reader: BufReader<UnixStream>,
}

impl Raw {
    fn connect(path: &Path) -> Raw {
        let s = UnixStream::connect(path).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Raw {
            reader: BufReader::new(s),
        }
    }
    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }
    fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self.reader.read_line(&mut l).expect("read a reply line");
        assert!(n > 0, "server closed instead of answering");
        l
    }
    /// The next reply, decoded.
    fn reply(&mut self) -> Result<Response, String> {
        let l = self.line();
        decode_response(&l)
            .unwrap_or_else(|e| panic!("bad reply {l:?}: {e}"))
            .result
    }
    fn call(&mut self, req: Request) -> Result<Response, String> {
        let mut line = encode_request(&RequestEnvelope::new(req));
        line.push('\n');
        self.send(line.as_bytes());
        self.reply()
    }
    /// True once the server closed the connection (EOF or reset).
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 16];
        match self.reader.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        }
    }
}

fn served() -> Arc<Mutex<Control>> {
    let mut c = control();
    with_tcp_service(&mut c);
    Arc::new(Mutex::new(c))
}

#[test]
fn socket_serves_and_survives_bad_input() {
    let path = socket_path("serve");
    let control = served();
    let sock = serve(&path, Arc::clone(&control)).expect("serve");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    // The real client, several requests on one connection.
    let mut client = Client::connect(&path).expect("client connects");
    match client.call(Request::AddrList).unwrap() {
        Response::Addrs(v) => assert_eq!(v.len(), 4),
        other => panic!("{other:?}"),
    }
    let e = client
        .call(Request::RsDel {
            service: tcp_svc(),
            addr: sa(Ipv4Addr::new(192, 168, 10, 99), 1),
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no real server 192.168.10.99:1 in tcp:10.0.0.100:80"
    );
    assert_eq!(
        services_via(&mut client).len(),
        1,
        "still served after a refusal"
    );

    // Raw lines: malformed, wrong version, unknown op, blank line; the connection goes on.
    let mut raw = Raw::connect(&path);
    raw.send(b"hello\n");
    let e = raw.reply().unwrap_err();
    assert!(e.starts_with("malformed request"), "{e}");
    raw.send(b"{\"version\":2,\"request\":{\"op\":\"stats\"}}\n");
    let e = raw.reply().unwrap_err();
    assert!(
        e.contains("protocol version mismatch") && e.contains("version 2"),
        "{e}"
    );
    raw.send(b"{\"version\":1,\"request\":{\"op\":\"frobnicate\"}}\n");
    let e = raw.reply().unwrap_err();
    assert!(e.starts_with("invalid request"), "{e}");
    raw.send(b"{\"version\":1}\n");
    assert!(raw.reply().is_err(), "a request without a body is refused");
    raw.send(b"\n   \n");
    assert!(
        matches!(raw.call(Request::AddrList), Ok(Response::Addrs(_))),
        "blank lines skipped"
    );

    // A line over 1 MiB: refused, connection closed; the server serves the next one.
    let mut big = Raw::connect(&path);
    let mut writer = big.reader.get_ref().try_clone().unwrap();
    let w = thread::spawn(move || {
        let mut line = vec![b'a'; MAX_REQUEST_BYTES + 16];
        line.push(b'\n');
        let _ = writer.write_all(&line); // the server may close before it all went
    });
    let e = big.reply().unwrap_err();
    assert_eq!(e, "request too long");
    assert!(big.closed(), "connection closed after an oversized line");
    w.join().unwrap();

    // Not UTF-8: refused, connection closed.
    let mut bin = Raw::connect(&path);
    bin.send(b"\xff\xfe{}\n");
    assert_eq!(bin.reply().unwrap_err(), "request is not UTF-8");
    assert!(bin.closed());

    // Still serving, on the old connection and on new ones.
    assert!(matches!(raw.call(Request::Stats), Ok(Response::Stats(_))));
    assert_eq!(services_via(&mut client).len(), 1);
    let mut fresh = Client::connect(&path).unwrap();
    assert_eq!(services_via(&mut fresh).len(), 1);

    // A change through the socket reaches the shared control.
    fresh
        .call(Request::ServiceAdd(spec(udp_svc(), Sched::Wrr)))
        .unwrap();
    assert_eq!(
        dpvs_daemon::control::server::lock(&control)
            .state
            .services
            .len(),
        2
    );

    // A second daemon on the same path is refused while this one answers.
    let e = serve(&path, Arc::clone(&control))
        .err()
        .expect("second serve refused");
    assert!(e.contains("another dpvs is serving it"), "{e}");

    drop(sock);
    assert!(
        !path.exists(),
        "socket file removed when the server is dropped"
    );
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

fn services_via(client: &mut Client) -> Vec<ServiceInfo> {
    match client.call(Request::ServiceList { stats: true }).unwrap() {
        Response::Services(v) => v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn stale_socket_file_is_replaced() {
    let path = socket_path("stale");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    drop(UnixListener::bind(&path).unwrap()); // leaves the file, nobody listening
    assert!(path.exists());
    let _sock = serve(&path, served()).expect("a dead socket file is replaced");
    let mut client = Client::connect(&path).unwrap();
    assert!(matches!(
        client.call(Request::AddrList),
        Ok(Response::Addrs(_))
    ));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// 64 idle clients (or 64 that each left a request half-sent) do not lock the operator out:
/// a 65th client is served, the longest-idle one is told why it was closed (issue 16, item 5).
#[test]
fn a_full_socket_makes_room_for_a_new_client() {
    let path = socket_path("busy");
    let _sock = serve(&path, served()).expect("serve");
    // 64 clients, each proven to be served (so counted) before the next one.
    let mut held: Vec<Raw> = (0..64)
        .map(|_| {
            let mut r = Raw::connect(&path);
            assert!(r.call(Request::AddrList).is_ok());
            r
        })
        .collect();
    let mut extra = Raw::connect(&path);
    assert!(
        matches!(extra.call(Request::Stats), Ok(Response::Stats(_))),
        "the 65th client is served"
    );
    let e = held[0].reply().unwrap_err();
    assert!(
        e.contains("idle longest"),
        "the oldest idle client is told: {e}"
    );
    assert!(held[0].closed());
    let mut client = Client::connect(&path).expect("and the next one too");
    assert!(matches!(
        client.call(Request::Stats),
        Ok(Response::Stats(_))
    ));
    for r in held.iter_mut().skip(60) {
        assert!(
            r.call(Request::AddrList).is_ok(),
            "the others are still served"
        );
    }

    // The same with clients that each sent half a request.
    let path = socket_path("halfsent");
    let _sock = serve(&path, served()).expect("serve");
    let half: Vec<Raw> = (0..64)
        .map(|_| {
            let mut r = Raw::connect(&path);
            r.send(b"{\"version\":1,\"req");
            r
        })
        .collect();
    // Let the server take them all in before the 65th arrives.
    thread::sleep(Duration::from_millis(200));
    let mut client = Client::connect(&path).expect("connects");
    assert!(matches!(
        client.call(Request::Stats),
        Ok(Response::Stats(_))
    ));
    drop(half);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// Idle connections and half-sent requests are closed after their time, with an error line.
#[test]
fn idle_and_half_sent_clients_time_out() {
    let path = socket_path("timeouts");
    let limits = Limits {
        idle: Duration::from_millis(400),
        request: Duration::from_millis(300),
        ..Limits::default()
    };
    let _sock = serve_with(&path, served(), limits).expect("serve");
    let mut idle = Raw::connect(&path);
    assert!(idle.call(Request::AddrList).is_ok(), "served first");
    let t0 = Instant::now();
    let e = idle.reply().unwrap_err();
    assert!(e.starts_with("closed: idle"), "{e}");
    assert!(idle.closed());
    assert!(
        t0.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t0.elapsed()
    );

    let mut half = Raw::connect(&path);
    half.send(b"{\"version\":1,");
    let e = half.reply().unwrap_err();
    assert!(e.starts_with("request not completed"), "{e}");
    assert!(half.closed());

    // A client that keeps asking stays.
    let mut busy = Raw::connect(&path);
    for _ in 0..6 {
        assert!(busy.call(Request::AddrList).is_ok());
        thread::sleep(Duration::from_millis(150));
    }
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

/// A real server that is one of the balancer's own addresses (a VIP, a local address, an
/// interface address) would receive its share of connections back at the balancer: refused,
/// one line naming both, and the reverse too (issue 16, item 6).
#[test]
fn addresses_that_cannot_work_are_refused() {
    let mut c = control();
    with_tcp_service(&mut c);
    let rs_add = |ip: Ipv4Addr| Request::RsAdd {
        service: tcp_svc(),
        rs: rs_spec(ip, RPORT_TCP, 1),
    };
    refused(
        &mut c,
        rs_add(VIP),
        &["10.0.0.100:8080", "the VIP of tcp:10.0.0.100:80"],
    );
    refused(
        &mut c,
        rs_add(LADDR),
        &["192.168.10.200", "local address of tcp:10.0.0.100:80"],
    );
    refused(
        &mut c,
        rs_add(ADDR1),
        &["192.168.10.1", "address 192.168.10.1/24 on dpdk1"],
    );
    // A VIP that is not an address yet is a VIP all the same.
    let other = ServiceKey {
        port: 8443,
        vip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 101)),
        ..tcp_svc()
    };
    ok(&mut c, Request::ServiceAdd(spec(other, Sched::Rr)));
    let e = refused(
        &mut c,
        rs_add(Ipv4Addr::new(10, 0, 0, 101)),
        &["tcp:10.0.0.101:8443"],
    );
    assert!(e.contains("real server 10.0.0.101:8080"), "{e}");
    // The reverse: an address or a VIP that a real server already has.
    let add = Request::AddrAdd {
        addr: IpAddr::V4(RS1),
        prefix_len: 32,
        port: "dpdk0".into(),
    };
    refused(
        &mut c,
        add,
        &[
            "192.168.10.11",
            "real server 192.168.10.11:8080 of tcp:10.0.0.100:80",
        ],
    );
    let on_rs = ServiceKey {
        vip: IpAddr::V4(RS2),
        ..tcp_svc()
    };
    refused(
        &mut c,
        Request::ServiceAdd(spec(on_rs, Sched::Rr)),
        &["192.168.10.12:8080"],
    );

    // The same in a config file: refused before the daemon touches EAL, naming the key.
    let toml = r#"
        [[port]]
        name = "dpdk0"
        device = "net_null0"
        [[address]]
        addr = "10.0.0.100/32"
        port = "dpdk0"
        [[service]]
        proto = "tcp"
        vip = "10.0.0.100"
        port = 80
        forward = "nat"
        [[service.rs]]
        addr = "10.0.0.100:80"
    "#;
    let cfg = dpvs_daemon::config::Config::from_toml_str(toml).expect("valid as a file");
    let e = ControlState::check_config(&cfg, SLOTS).unwrap_err();
    assert!(
        e.starts_with("service[0].rs[0]: real server 10.0.0.100:80: 10.0.0.100 is the VIP"),
        "{e}"
    );
}

#[test]
fn errors_are_one_line_and_name_the_object() {
    let mut c = control();
    with_tcp_service(&mut c);
    let cases: Vec<(Request, &str)> = vec![
        (
            Request::ServiceDel { service: udp_svc() },
            "udp:10.0.0.100:53",
        ),
        (
            Request::LaddrAdd {
                service: tcp_svc(),
                addr: "10.9.9.9".parse().unwrap(),
                port: None,
            },
            "10.9.9.9",
        ),
        (
            Request::AddrAdd {
                addr: "10.0.0.100".parse().unwrap(),
                prefix_len: 32,
                port: "dpdk0".into(),
            },
            "10.0.0.100",
        ),
        (
            Request::RouteDel {
                prefix: "10.8.0.0".parse().unwrap(),
                prefix_len: 16,
            },
            "10.8.0.0/16",
        ),
        (
            Request::NeighDel {
                addr: "10.7.7.7".parse().unwrap(),
            },
            "10.7.7.7",
        ),
        (
            Request::RsEdit {
                service: udp_svc(),
                rs: rs_spec(RS1, 1, 1),
            },
            "udp:10.0.0.100:53",
        ),
    ];
    for (req, name) in cases {
        refused(&mut c, req, &[name]);
    }
    // Nothing changed.
    let list = services(&mut c, false);
    assert_eq!((list.len(), list[0].rs.len()), (1, 2));
}

/// `kni addr|route add|del`: checked against the data plane's addresses and the ports' twins,
/// one line each; without a running bridge the change is refused and leaves no trace.
#[test]
fn kernel_side_changes_are_checked_and_kept_apart_from_the_data_plane() {
    let mut state = base_state(Timeouts::default());
    state.ports[0].kni = true;
    let mut c = control_from(state);
    with_tcp_service(&mut c);
    let add = |addr: &str, len: u8, port: &str| Request::KniAddrAdd {
        port: port.into(),
        addr: addr.parse().unwrap(),
        prefix_len: len,
    };
    refused(
        &mut c,
        add("10.0.0.100", 32, "dpdk0"),
        &[
            "kernel-side address 10.0.0.100/32",
            "the VIP of tcp:10.0.0.100:80",
        ],
    );
    refused(
        &mut c,
        add("10.0.0.1", 24, "dpdk0"),
        &["10.0.0.1", "the balancer's address 10.0.0.1/24 on dpdk0"],
    );
    refused(
        &mut c,
        add("192.168.10.5", 24, "dpdk1"),
        &["\"dpdk1\" has no kernel twin"],
    );
    // A valid change, but no bridge runs here: refused, and the state keeps nothing of it.
    refused(
        &mut c,
        add("10.0.0.5", 24, "dpdk0"),
        &["kernel bridge is not running"],
    );
    assert!(c.state.kni_addrs.is_empty());
    let route = Request::KniRouteAdd {
        port: "dpdk0".into(),
        prefix: "10.9.0.0".parse().unwrap(),
        prefix_len: 16,
        via: Some("10.0.0.254".parse().unwrap()),
    };
    refused(&mut c, route, &["kernel bridge is not running"]);
    assert!(c.state.kni_routes.is_empty());

    // The reverse: a kernel-side address (taken from the config) cannot become the data
    // plane's.
    c.state
        .kni_addr_add("dpdk0", "10.0.0.5".parse().unwrap(), 24)
        .unwrap();
    let addr = Request::AddrAdd {
        addr: "10.0.0.5".parse().unwrap(),
        prefix_len: 32,
        port: "dpdk0".into(),
    };
    refused(
        &mut c,
        addr,
        &["10.0.0.5", "kernel-side address 10.0.0.5/24 of dpdk0.kni"],
    );
    match ok(&mut c, Request::KniList) {
        Response::Twins(v) => assert!(v.is_empty(), "no twin was made here: {v:?}"),
        other => panic!("{other:?}"),
    }
}
