//! The bridge against a real kernel: a TAP in a network namespace of the test's own, standing
//! in for the twin that DPDK's net_tap creates. Root needed (CI runs as root).

mod common;

use std::time::{Duration, Instant};

use common::*;
use kni::lab::{TempDir, wait_until};
use kni::{BridgeOptions, KernelBridge, KniError, NmGuard, NmOptions, TwinSpec};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn fixed_sequence_gives_exactly_the_desired_state_and_is_idempotent() {
    let ns = twin_ns("fixed");
    // Leftovers of a previous life: the flush must clear them.
    ns.ip(&["addr", "add", "203.0.113.9/24", "dev", TWIN])
        .unwrap();
    let bridge = start(opts(), spec(), None);
    assert!(
        holds(&ns, &SPEC_ADDRS, &SPEC_ROUTES),
        "{:?} {:?}",
        ns.addrs4(TWIN),
        ns.routes4(TWIN)
    );
    let st = &bridge.status().unwrap()[0];
    assert!(st.converged() && st.link_up && st.restores == 0, "{st:?}");
    bridge.stop();
    // Running it again on a configured device converges to the same state, without error.
    let bridge = start(opts(), spec(), None);
    assert!(holds(&ns, &SPEC_ADDRS, &SPEC_ROUTES));
    bridge.stop();
}

#[test]
fn interference_from_outside_is_undone_within_a_second() {
    let ns = twin_ns("undo");
    let bridge = start(opts(), spec(), None);
    let actions: [(&str, &[&str]); 5] = [
        ("ip addr flush", &["addr", "flush", "dev", TWIN]),
        ("ip addr del", &["addr", "del", "10.0.1.5/24", "dev", TWIN]),
        (
            "ip route del",
            &["route", "del", "10.9.0.0/16", "dev", TWIN],
        ),
        ("ip link set down", &["link", "set", TWIN, "down"]),
        (
            "ip addr del (primary)",
            &["addr", "del", "10.0.0.5/24", "dev", TWIN],
        ),
    ];
    for (what, args) in actions {
        ns.ip(args).unwrap_or_else(|e| panic!("{what}: {e}"));
        let t0 = Instant::now();
        let took = converge(&ns, SECOND);
        println!("{what}: restored in {:?}", took.map_or(t0.elapsed(), |d| d));
        assert!(
            took.is_some(),
            "{what}: not restored within 1 s: {:?} {:?}",
            ns.addrs4(TWIN),
            ns.routes4(TWIN)
        );
        // Let the fight window pass, so that the next action is a new incident, not a fight.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let st = &bridge.status().unwrap()[0];
    assert_eq!((st.restores, st.fights), (5, 0), "{st:?}");
    assert!(st.last_restore.is_some_and(|d| d < 2 * SECOND));
    bridge.stop();
}

/// CPU time (user + system) of this process's threads named `name`, from /proc. Summed, so
/// that it is an upper bound when several bridges share the process (`cargo test`).
fn thread_cpu(name: &str) -> Duration {
    let tick = 100; // USER_HZ on Linux
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread just ended
        };
        if comm.trim() == name {
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            let f: Vec<u64> = after
                .split(' ')
                .skip(11)
                .take(2)
                .map(|x| x.parse().unwrap())
                .collect();
            ticks += f[0] + f[1];
        }
    }
    Duration::from_millis(ticks * 1000 / tick)
}

#[test]
fn a_fight_engages_backoff_is_counted_and_stays_cheap() {
    let ns = twin_ns("fight");
    let bridge = start(opts(), spec(), None);
    let cpu0 = thread_cpu("kni-bridge");
    // Another manager deletes our address 50 times a second for 5 seconds.
    let fight = Duration::from_secs(5);
    let t0 = Instant::now();
    let mut deletes = 0;
    while t0.elapsed() < fight {
        if ns.ip(&["addr", "del", "10.0.1.5/24", "dev", TWIN]).is_ok() {
            deletes += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = bridge.status().unwrap().remove(0);
    let cpu = thread_cpu("kni-bridge").saturating_sub(cpu0);
    println!(
        "fight: {deletes} successful deletes in {fight:?}; {} restores ({:.1}/s), {} fight(s), backoff now {:?}, bridge CPU {cpu:?}",
        st.restores,
        st.restores as f64 / fight.as_secs_f64(),
        st.fights,
        st.backoff
    );
    assert!(st.fights >= 1, "{st:?}");
    assert!(st.backoff > Duration::ZERO, "{st:?}");
    // Unbounded re-assertion would restore after nearly every delete (about 250 here).
    assert!(st.restores <= 12, "{st:?}");
    assert!(
        deletes <= st.restores as usize + 1,
        "the other side only deletes what we put back"
    );
    assert!(
        cpu < Duration::from_millis(500),
        "bridge thread used {cpu:?} in {fight:?}"
    );
    // Once the other side stops, the address comes back within the backoff ceiling.
    let back = converge(&ns, opts().backoff_max + SECOND);
    println!("after the fight: restored in {back:?}");
    assert!(back.is_some());
    bridge.stop();
}

#[test]
fn foreign_addresses_are_left_alone_when_not_exclusive() {
    let ns = twin_ns("foreign");
    let bridge = start(opts(), spec(), None);
    ns.ip(&["addr", "add", "198.51.100.7/24", "dev", TWIN])
        .unwrap();
    // Longer than a notification round and two periodic reconciles.
    std::thread::sleep(Duration::from_millis(1200));
    let addrs = ns.addrs4(TWIN).unwrap();
    assert!(addrs.contains(&"198.51.100.7/24".to_owned()), "{addrs:?}");
    let st = &bridge.status().unwrap()[0];
    assert_eq!(st.foreign_addrs, vec![addr("198.51.100.7/24")]);
    assert_eq!(st.restores, 0, "a foreign address is not damage: {st:?}");
    assert!(st.converged());
    bridge.stop();
}

#[test]
fn foreign_addresses_are_removed_when_exclusive() {
    let ns = twin_ns("exclusive");
    let bridge = start(
        BridgeOptions {
            exclusive: true,
            ..opts()
        },
        spec(),
        None,
    );
    ns.ip(&["addr", "add", "198.51.100.7/24", "dev", TWIN])
        .unwrap();
    let took = converge(&ns, SECOND);
    println!("exclusive: foreign address removed in {took:?}");
    assert!(took.is_some(), "{:?}", ns.addrs4(TWIN));
    assert!(bridge.status().unwrap()[0].foreign_addrs.is_empty());
    bridge.stop();
}

#[test]
fn runtime_changes_and_status_report_desired_against_actual() {
    let ns = twin_ns("status");
    let bridge = start(opts(), spec(), None);
    bridge.addr_add(PORT, addr("10.0.2.5/24")).unwrap();
    bridge.addr_add(PORT, addr("10.0.2.5/24")).unwrap(); // idempotent
    bridge
        .route_add(PORT, route("10.7.0.0/16", Some("10.0.2.1")))
        .unwrap();
    assert!(holds(
        &ns,
        &["10.0.0.5/24", "10.0.1.5/24", "10.0.2.5/24"],
        &[
            "10.7.0.0/16 via 10.0.2.1",
            "10.8.0.0/16",
            "10.9.0.0/16 via 10.0.0.254"
        ]
    ));
    bridge
        .route_del(PORT, route("10.7.0.0/16", Some("10.0.2.1")))
        .unwrap();
    bridge.addr_del(PORT, addr("10.0.2.5/24")).unwrap();
    assert!(holds(&ns, &SPEC_ADDRS, &SPEC_ROUTES));

    // Errors are one line naming the device and the operation.
    let e = bridge
        .route_add(PORT, route("10.6.0.0/16", Some("192.0.2.1")))
        .unwrap_err();
    println!("{e}");
    assert!(
        e.to_string()
            .starts_with("dpdk0.kni: add route 10.6.0.0/16 via 192.0.2.1: "),
        "{e}"
    );
    assert!(!e.to_string().contains('\n'));
    let e = bridge.addr_del(PORT, addr("10.0.3.5/24")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "dpdk0.kni: del 10.0.3.5/24: not a configured address"
    );
    assert!(matches!(
        bridge.addr_add("dpdk9", addr("10.0.3.5/24")),
        Err(KniError::UnknownPort { .. })
    ));

    // A refused route is not kept in the desired state (the guard would retry it forever).
    let st = &bridge.status().unwrap()[0];
    println!("{st:#?}");
    assert_eq!(st.ifname, TWIN);
    assert_eq!(
        st.desired_addrs,
        vec![addr("10.0.0.5/24"), addr("10.0.1.5/24")]
    );
    assert_eq!(st.desired_routes.len(), 2);
    assert!(st.converged() && st.ifindex.is_some());
    for a in &st.desired_addrs {
        assert!(st.actual_addrs.contains(a));
    }
    // Operator changes are not restores.
    assert_eq!(st.restores, 0);
    bridge.stop();
}

/// A twin left behind by an earlier run is removed before the DPDK side creates the port's
/// twin anew, so there is never a second one.
#[test]
fn a_stale_twin_is_removed_once() {
    let ns = twin_ns("stale");
    assert!(ns.link_up(TWIN).is_ok(), "the stale twin exists");
    assert!(kni::remove_stale_twin(TWIN, SECOND).expect("remove it"));
    assert!(ns.link_up(TWIN).is_err(), "gone");
    assert!(!kni::remove_stale_twin(TWIN, SECOND).expect("nothing to remove"));
}

#[test]
fn a_recreated_twin_is_configured_again() {
    let mut ns = twin_ns("recreate");
    let bridge = start(opts(), spec(), None);
    ns.ip(&["link", "del", TWIN]).unwrap();
    ns.add_tap(TWIN).unwrap();
    let took = converge(&ns, SECOND);
    println!("recreated twin configured in {took:?}");
    assert!(took.is_some());
    bridge.stop();
}

#[test]
fn a_repair_the_kernel_refuses_is_retried_with_backoff_and_reported() {
    let mut ns = twin_ns("refused");
    let opts = BridgeOptions {
        reconcile_every: Duration::from_millis(200),
        backoff_initial: Duration::from_millis(500),
        ..opts()
    };
    let bridge = start(opts, spec(), None);
    // While the twin is away, a route through a gateway it cannot reach becomes desired
    // (accepted: there is no device to refuse it); the twin comes back and the route fails.
    ns.ip(&["link", "del", TWIN]).unwrap();
    let bad = route("10.6.0.0/16", Some("192.0.2.1"));
    let absent = wait_until(SECOND, Duration::from_millis(10), || {
        bridge.status().unwrap()[0].ifindex.is_none()
    });
    assert!(absent.is_some());
    bridge.route_add(PORT, bad).unwrap();
    ns.add_tap(TWIN).unwrap();
    std::thread::sleep(3 * SECOND);
    let st = bridge.status().unwrap().remove(0);
    println!(
        "{} attempts in 3 s; last error: {:?}",
        st.restores, st.last_error
    );
    assert_eq!(
        st.last_error.as_deref(),
        Some("dpdk0.kni: add route 10.6.0.0/16 via 192.0.2.1: Network is unreachable")
    );
    // Without the backoff: one attempt per 200 ms reconcile, about 15.
    assert!(st.restores <= 5, "{st:?}");
    // Everything else is in place.
    assert!(holds(&ns, &SPEC_ADDRS, &SPEC_ROUTES));
    bridge.route_del(PORT, bad).unwrap();
    bridge.stop();
}

#[test]
fn start_fails_in_bounded_time_without_the_device_and_cleans_up() {
    logs();
    let ns = kni::lab::Netns::unique("nodev").unwrap();
    ns.enter().unwrap();
    let tmp = TempDir::new("nodev").unwrap();
    let nm_opts = NmOptions {
        force: true,
        ..NmOptions::under(tmp.path())
    };
    let nm = NmGuard::install(&nm_opts).unwrap();
    let files = nm.files().to_vec();
    let opts = BridgeOptions {
        device_wait: Duration::from_millis(300),
        ..opts()
    };
    let t0 = Instant::now();
    let e = KernelBridge::start(opts, vec![TwinSpec::new(PORT)], Some(nm))
        .err()
        .unwrap();
    println!("{e} (after {:?})", t0.elapsed());
    assert!(matches!(e, KniError::NoDevice { .. }), "{e}");
    assert!(t0.elapsed() < 2 * SECOND);
    assert!(
        files.iter().all(|f| !f.exists()),
        "guard files removed on a failed start"
    );
}

#[test]
fn stop_removes_the_guard_files_it_created_and_only_those() {
    let ns = twin_ns("nmfiles");
    let tmp = TempDir::new("nmfiles").unwrap();
    let nm_opts = NmOptions {
        force: true,
        ..NmOptions::under(tmp.path())
    };
    std::fs::create_dir_all(&nm_opts.nm_conf_dir).unwrap();
    std::fs::create_dir_all(&nm_opts.udev_rules_dir).unwrap();
    let foreign = [
        nm_opts.nm_conf_dir.join("10-admin.conf"),
        nm_opts.udev_rules_dir.join("70-admin.rules"),
    ];
    for f in &foreign {
        std::fs::write(f, "# the admin's\n").unwrap();
    }
    let nm = NmGuard::install(&nm_opts).unwrap();
    let ours = nm.files().to_vec();
    assert_eq!(ours.len(), 2);
    let keyfile = std::fs::read_to_string(&ours[0]).unwrap();
    assert!(
        keyfile.contains("unmanaged-devices+=interface-name:*.kni"),
        "{keyfile}"
    );
    let rule = std::fs::read_to_string(&ours[1]).unwrap();
    assert!(rule.contains(r#"ENV{NM_UNMANAGED}="1""#), "{rule}");
    let bridge = start(opts(), spec(), Some(nm));
    assert!(ours.iter().all(|f| f.exists()));
    bridge.stop();
    assert!(ours.iter().all(|f| !f.exists()), "ours removed");
    assert!(
        foreign.iter().all(|f| f.exists()),
        "foreign files left alone"
    );
    // The twin stays: the DPDK side owns it.
    assert!(ns.link_up(TWIN).unwrap());
}
