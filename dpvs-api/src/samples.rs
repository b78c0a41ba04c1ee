//! Sample values for the tests of the protocol and of its users (`dpvs-ctl`'s renderings),
//! so that each is written once. Built with the crate's tests, or for other crates with the
//! feature `test-util`.

use std::collections::BTreeMap;

use crate::{
    ConnInfo, Forward, Proto, RsInfo, Sched, ServiceInfo, StatsInfo, WorkerCounters, WorkerStats,
};

/// `tcp:10.0.0.100:80`, FullNAT, `rr`, with one local address and one real server carrying
/// three connections; no counters.
pub fn service() -> ServiceInfo {
    ServiceInfo {
        key: "tcp:10.0.0.100:80".parse().unwrap(),
        sched: Sched::Rr,
        forward: Forward::Fnat,
        sched_flags: Default::default(),
        persistence: None,
        mh_table_size: None,
        laddrs: vec!["192.168.10.200".parse().unwrap()],
        rs: vec![RsInfo {
            addr: "192.168.10.11:8080".parse().unwrap(),
            weight: 1,
            forward: Forward::Fnat,
            active_conns: 3,
            inactive_conns: 0,
            upper: 0,
            lower: 0,
            stats: None,
            rates: None,
        }],
        stats: None,
        rates: None,
    }
}

/// A FullNAT TCP connection, owned by worker 1.
pub fn conn() -> ConnInfo {
    ConnInfo {
        proto: Proto::Tcp,
        client: "10.0.0.2:40000".parse().unwrap(),
        vip: "10.0.0.100:80".parse().unwrap(),
        laddr: Some("192.168.10.200:1028".parse().unwrap()),
        rs: "192.168.10.11:8080".parse().unwrap(),
        state: "ESTABLISHED".into(),
        expires_in_s: 899,
        worker: 1,
    }
}

/// Two workers in which every counter has a value of its own (worker 0 counts 1, 2, 3, ...
/// in field order, worker 1 the same plus 100; both spend 90 busy cycles a packet), so that
/// a field shown or sent as another shows.
pub fn numbered_stats() -> StatsInfo {
    let worker = |id: u16, base: u64| WorkerStats {
        id,
        lcore: u32::from(id) + 1,
        counters: WorkerCounters {
            rx_pkts: base + 1,
            tx_pkts: base + 2,
            conns_active: base + 3,
            conns_created: base + 4,
            kernel_pkts: base + 5,
            ring_in: base + 6,
            ring_out: base + 7,
        },
        busy_cycles: 90 * (base + 9),
        busy_pkts: base + 9,
        drops: BTreeMap::from([
            ("bad_csum".to_string(), base + 10),
            ("no_route".to_string(), base + 11),
        ]),
    };
    StatsInfo::from_workers(vec![worker(0, 0), worker(1, 100)])
}
