//! Writes the seed corpus of the `pipeline`, `parse` and `control` targets into `corpus/`
//! (the `config` seeds are files in `corpus/config/` and the project's sample configs):
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example seeds
//!
//! Deterministic: the same definitions write the same files.

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use dpvs_api::{
    Forward, MacAddr, Persistence, Request, RequestEnvelope, RouteSpec, RsSpec, Sched, SchedFlags,
    ServiceKey, ServiceSpec, encode_request,
};
use dpvs_core::packet::{Ipv4Info, parse};
use dpvs_fuzz::pipeline::{run_recording, seeds::seeds};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("create the corpus directory");
        fs::write(dir.join(name), bytes).expect("write a seed");
    };

    // pipeline: the seed inputs; parse: one frame of each kind they made the worker receive
    // and send (each side and mode, the worker's RSTs, ARP, ICMP and tunnels).
    let mut frames = BTreeMap::new();
    for (name, input) in seeds() {
        write("pipeline", &name, &input.encode());
        let r = run_recording(&input);
        println!(
            "{name}: {} received, {} sent",
            r.received.len(),
            r.sent.len()
        );
        for f in r.received.into_iter().chain(r.sent) {
            frames.entry(kind(&f)).or_insert(f);
        }
    }
    for (i, f) in frames.values().enumerate() {
        write("parse", &format!("frame_{i:03}"), f);
    }

    // control: every request kind alone, then all of them as one session.
    let lines: Vec<String> = requests()
        .into_iter()
        .map(|r| encode_request(&RequestEnvelope::new(r)))
        .collect();
    for (i, line) in lines.iter().enumerate() {
        write("control", &format!("request_{i:02}"), line.as_bytes());
    }
    write("control", "session", lines.join("\n").as_bytes());
    println!(
        "{} pipeline, {} parse, {} control seeds",
        seeds().len(),
        frames.len(),
        lines.len() + 1
    );
}

/// What makes frames different for the parser: the parse's outcome and shape, the protocol,
/// and the lower port.
fn kind(f: &[u8]) -> String {
    match parse(f) {
        Err(r) => format!("{r:?}"),
        Ok(p) => {
            // The lower port is the service's or the real server's (not the client's).
            let port = |ip: &Ipv4Info| ip.ports().map(|(s, d)| s.min(d));
            let l4 = p.ipv4().map(|ip| (ip.proto, port(ip)));
            let arp = p.arp().map(|a| a.op);
            format!("{:?} {} {l4:?} {arp:?}", p.vlan, p.has_ip_options())
        }
    }
}

/// One request of each kind, against the lab's control plane (`fuzz_targets/control.rs`).
fn requests() -> Vec<Request> {
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let svc: ServiceKey = "tcp:10.0.0.100:80".parse().unwrap();
    let nat: ServiceKey = "tcp:10.0.0.100:81".parse().unwrap();
    let persistent: ServiceKey = "tcp:10.0.0.100:87".parse().unwrap();
    let spec = |key, forward| ServiceSpec::new(key, Sched::Wrr, forward);
    let rs = |addr: &str, weight, forward| RsSpec {
        forward,
        ..RsSpec::new(sa(addr), weight)
    };
    let limited = |addr: &str, weight, upper, lower| RsSpec {
        upper: Some(upper),
        lower,
        ..RsSpec::new(sa(addr), weight)
    };
    let fallback_port = SchedFlags {
        fallback: true,
        port: true,
    };
    vec![
        Request::ServiceAdd(spec(nat, Forward::Nat)),
        Request::RsAdd {
            service: nat,
            rs: rs("192.168.10.11:8081", 2, None),
        },
        Request::RsAdd {
            service: nat,
            rs: rs("192.168.10.12:81", 1, Some(Forward::Dr)),
        },
        Request::RsEdit {
            service: svc,
            rs: rs("192.168.10.11:8080", 0, Some(Forward::Fnat)),
        },
        Request::ServiceEdit(spec(svc, Forward::Fnat)),
        Request::LaddrAdd {
            service: svc,
            addr: ip("192.168.10.1"),
            port: Some("dpdk1".into()),
        },
        Request::LaddrDel {
            service: svc,
            addr: ip("192.168.10.1"),
        },
        Request::LaddrList { service: Some(svc) },
        Request::AddrAdd {
            addr: ip("10.0.0.101"),
            prefix_len: 32,
            port: "dpdk0".into(),
        },
        Request::AddrDel {
            addr: ip("10.0.0.101"),
        },
        Request::AddrList,
        Request::RouteAdd(RouteSpec {
            prefix: ip("0.0.0.0"),
            prefix_len: 0,
            port: "dpdk0".into(),
            via: Some(ip("10.0.0.254")),
            src: Some(ip("10.0.0.1")),
        }),
        Request::RouteDel {
            prefix: ip("0.0.0.0"),
            prefix_len: 0,
        },
        Request::RouteList,
        Request::NeighAdd {
            addr: ip("10.0.0.254"),
            mac: "02:00:00:00:01:fe".parse::<MacAddr>().unwrap(),
            port: "dpdk0".into(),
        },
        Request::NeighDel {
            addr: ip("10.0.0.254"),
        },
        Request::NeighList,
        Request::ConnList {
            service: Some(svc),
            limit: Some(10),
        },
        Request::Stats,
        Request::LinkList,
        Request::ServiceList { stats: true },
        Request::RsDel {
            service: svc,
            addr: sa("192.168.10.12:8080"),
        },
        Request::ServiceDel { service: nat },
        // The schedulers' options: a persistent sh service with flags, limits on its real
        // servers, then Maglev with a small table, conhash, least-connection.
        Request::ServiceAdd(ServiceSpec {
            sched_flags: fallback_port,
            persistence: Some(Persistence {
                timeout: 300,
                netmask: 24,
            }),
            ..ServiceSpec::new(persistent, Sched::Sh, Forward::Fnat)
        }),
        Request::RsAdd {
            service: persistent,
            rs: limited("192.168.10.11:8087", 1, 10, Some(5)),
        },
        Request::RsAdd {
            service: persistent,
            rs: limited("192.168.10.12:8087", 2, 4, None),
        },
        Request::RsEdit {
            service: persistent,
            rs: limited("192.168.10.12:8087", 2, 0, None),
        },
        Request::ServiceEdit(ServiceSpec {
            sched_flags: fallback_port,
            mh_table_size: Some(251),
            ..ServiceSpec::new(persistent, Sched::Mh, Forward::Fnat)
        }),
        Request::ServiceEdit(ServiceSpec {
            sched_flags: SchedFlags {
                fallback: false,
                port: true,
            },
            ..ServiceSpec::new(persistent, Sched::Conhash, Forward::Fnat)
        }),
        Request::ServiceEdit(ServiceSpec::new(persistent, Sched::Lc, Forward::Fnat)),
        // The kernel twin of dpdk0.
        Request::KniAddrAdd {
            port: "dpdk0".into(),
            addr: ip("10.0.0.9"),
            prefix_len: 24,
        },
        Request::KniRouteAdd {
            port: "dpdk0".into(),
            prefix: ip("172.20.0.0"),
            prefix_len: 16,
            via: Some(ip("10.0.0.254")),
        },
        Request::KniList,
        Request::KniRouteDel {
            port: "dpdk0".into(),
            prefix: ip("172.20.0.0"),
            prefix_len: 16,
            via: Some(ip("10.0.0.254")),
        },
        Request::KniAddrDel {
            port: "dpdk0".into(),
            addr: ip("10.0.0.9"),
            prefix_len: 24,
        },
    ]
}
