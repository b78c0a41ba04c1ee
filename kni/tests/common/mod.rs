//! Shared set-up for the integration tests: logs, a namespace with a TAP twin, a bridge in it.
#![allow(dead_code, reason = "each test file uses its own subset")]

use std::time::Duration;

use kni::lab::{Netns, wait_until};
use kni::{BridgeOptions, KernelBridge, KniAddr, KniRoute, NmGuard, TwinSpec};

pub(crate) const PORT: &str = "dpdk0";
pub(crate) const TWIN: &str = "dpdk0.kni";

pub(crate) fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kni=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub(crate) fn addr(s: &str) -> KniAddr {
    let (ip, len) = s.split_once('/').unwrap();
    KniAddr::new(ip.parse().unwrap(), len.parse().unwrap()).unwrap()
}

pub(crate) fn route(prefix: &str, via: Option<&str>) -> KniRoute {
    let (ip, len) = prefix.split_once('/').unwrap();
    KniRoute::new(
        ip.parse().unwrap(),
        len.parse().unwrap(),
        via.map(|v| v.parse().unwrap()),
    )
    .unwrap()
}

/// The twin used by most tests: two addresses, a gateway route and a direct route.
pub(crate) fn spec() -> TwinSpec {
    TwinSpec::new(PORT)
        .with_addr(addr("10.0.0.5/24"))
        .with_addr(addr("10.0.1.5/24"))
        .with_route(route("10.9.0.0/16", Some("10.0.0.254")))
        .with_route(route("10.8.0.0/16", None))
}

pub(crate) const SPEC_ADDRS: [&str; 2] = ["10.0.0.5/24", "10.0.1.5/24"];
pub(crate) const SPEC_ROUTES: [&str; 2] = ["10.8.0.0/16", "10.9.0.0/16 via 10.0.0.254"];

/// Test timing: a faster backstop and a short backoff ceiling keep the tests short.
pub(crate) fn opts() -> BridgeOptions {
    BridgeOptions {
        reconcile_every: Duration::from_millis(500),
        device_wait: Duration::from_secs(2),
        backoff_max: Duration::from_secs(2),
        ..BridgeOptions::default()
    }
}

/// A namespace holding a TAP `dpdk0.kni` (as DPDK's net_tap would make it), entered by the
/// calling thread so the bridge started next works inside it.
pub(crate) fn twin_ns(tag: &str) -> Netns {
    logs();
    let mut ns = Netns::unique(tag).expect("create a network namespace (root needed)");
    ns.add_tap(TWIN).expect("create the TAP");
    ns.enter().expect("enter the namespace");
    ns
}

pub(crate) fn start(opts: BridgeOptions, spec: TwinSpec, nm: Option<NmGuard>) -> KernelBridge {
    KernelBridge::start(opts, vec![spec], nm).expect("start the bridge")
}

/// Whether the twin carries exactly `addrs` and `routes` and is up, as `ip` sees it.
pub(crate) fn holds(ns: &Netns, addrs: &[&str], routes: &[&str]) -> bool {
    let mut want_a: Vec<String> = addrs.iter().map(|s| s.to_string()).collect();
    let mut want_r: Vec<String> = routes.iter().map(|s| s.to_string()).collect();
    want_a.sort();
    want_r.sort();
    ns.link_up(TWIN).unwrap_or(false)
        && ns.addrs4(TWIN).ok() == Some(want_a)
        && ns.routes4(TWIN).ok() == Some(want_r)
}

/// Wait (bounded) for the twin to hold the spec's state; the time it took.
pub(crate) fn converge(ns: &Netns, limit: Duration) -> Option<Duration> {
    wait_until(limit, Duration::from_millis(5), || {
        holds(ns, &SPEC_ADDRS, &SPEC_ROUTES)
    })
}
