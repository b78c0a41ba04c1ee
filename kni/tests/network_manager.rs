//! A real NetworkManager (Debian's 1.42) with a profile that would take every ethernet device
//! with DHCP, inside the test's namespace, against the bridge with its NetworkManager guard on.
//! After 60 seconds every kernel-side address of the twin must still be there, untouched (no
//! restore needed), and `nmcli device` must report the twin unmanaged. A control device beside
//! it (a veth NetworkManager does manage) shows that NetworkManager was live and grabbing.
//!
//! Needs root, the packages network-manager, dbus and udev, and no other NetworkManager on the
//! machine; when NetworkManager cannot run, the test prints why and skips that part. Labs are
//! serialised by an exclusive lock on /run/dpvs-test-nm.lock (one D-Bus name per machine).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use kni::lab::{NmLab, TempDir, wait_until};
use kni::{NmGuard, NmOptions};

const HOLD: Duration = Duration::from_secs(60);
const CONTROL: &str = "eth7";

#[test]
fn network_manager_leaves_the_twin_alone() {
    let mut ns = twin_ns_without_tap("nm");
    let dir = TempDir::new("nm").unwrap();
    let lab = match NmLab::start(&ns, dir.path(), Duration::from_secs(300)) {
        Ok(lab) => lab,
        Err(why) => {
            println!("SKIP the NetworkManager part: {}", why.0);
            return;
        }
    };
    // Production order: NetworkManager runs; dpvs writes its guard (keyfile where this
    // NetworkManager reads its conf.d, udev rule in udev's runtime rules directory) and asks
    // both to reload; only then does the DPDK side create the twin.
    let nm_opts = NmOptions {
        nm_conf_dir: lab.conf_dir(),
        udev_rules_dir: Path::new("/run/udev/rules.d").to_owned(),
        force: true,
        reload: true,
        ..NmOptions::system()
    };
    let guard = NmGuard::install(&nm_opts).unwrap();
    let files = guard.files().to_vec();
    assert_eq!(files.len(), 2, "both guard files written: {files:?}");

    // A control device that NetworkManager may manage: a veth named eth* (Debian's udev rules
    // leave other veths unmanaged), with carrier. Once NetworkManager has taken it with the
    // DHCP profile, an address goes on it by hand, as the bridge puts addresses on the twin.
    ns.ip(&[
        "link", "add", CONTROL, "type", "veth", "peer", "name", "peer7",
    ])
    .unwrap();
    ns.ip(&["link", "set", "peer7", "up"]).unwrap();
    ns.add_tap(TWIN).unwrap();
    let taken = wait_until(Duration::from_secs(10), Duration::from_millis(100), || {
        lab.device_state(CONTROL)
            .is_some_and(|s| s.starts_with("connecting"))
            && lab.device_state(TWIN).is_some()
    });
    assert!(
        taken.is_some(),
        "NetworkManager never took the control device:\n{}",
        lab.devices()
    );
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", CONTROL])
        .unwrap();

    let udev = ns
        .exec(
            "udevadm",
            &[
                "info",
                "-q",
                "property",
                "-p",
                &format!("/sys/class/net/{TWIN}"),
            ],
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    println!(
        "udev properties of {TWIN}: NM_UNMANAGED={}",
        prop(&udev, "NM_UNMANAGED")
    );
    assert_eq!(
        prop(&udev, "NM_UNMANAGED"),
        "1",
        "the udev rule applies to the twin"
    );

    let bridge = start(opts(), spec(), Some(guard));
    let t0 = Instant::now();
    let mut samples = 0;
    while t0.elapsed() < HOLD {
        std::thread::sleep(Duration::from_secs(5));
        samples += 1;
        let addrs = ns.addrs4(TWIN).unwrap();
        assert_eq!(
            addrs,
            SPEC_ADDRS,
            "at {:?}:\n{}",
            t0.elapsed(),
            lab.devices()
        );
    }
    let st = bridge.status().unwrap().remove(0);
    let twin_state = lab.device_state(TWIN);
    let control_state = lab.device_state(CONTROL);
    let control_addrs = ns.addrs4(CONTROL).unwrap();
    println!(
        "after {HOLD:?} ({samples} samples): twin {:?}, restores {}",
        ns.addrs4(TWIN).unwrap(),
        st.restores
    );
    println!("nmcli device:\n{}", lab.devices());
    println!("control {CONTROL}: state {control_state:?}, addresses {control_addrs:?}");
    assert!(holds(&ns, &SPEC_ADDRS, &SPEC_ROUTES));
    assert_eq!(
        st.restores, 0,
        "NetworkManager never touched the twin: {st:?}"
    );
    assert_eq!(twin_state.as_deref(), Some("unmanaged"));
    // The control: NetworkManager took it with the DHCP profile, DHCP failed (nobody
    // answers) and NetworkManager removed the address put there by hand: the failure the
    // guard exists for.
    assert!(
        control_state.as_deref().is_some_and(|s| s != "unmanaged"),
        "the control device shows that NetworkManager manages what it may"
    );
    assert!(
        control_addrs.is_empty(),
        "NetworkManager flushed the control device: {control_addrs:?}"
    );

    bridge.stop();
    assert!(
        files.iter().all(|f| !f.exists()),
        "guard files removed on stop"
    );
    drop(lab);
}

fn prop<'a>(props: &'a str, key: &str) -> &'a str {
    props
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("")
}

/// The namespace without the TAP: here the twin is created after the guard, as in production.
fn twin_ns_without_tap(tag: &str) -> kni::lab::Netns {
    logs();
    let ns = kni::lab::Netns::unique(tag).expect("create a network namespace (root needed)");
    ns.enter().expect("enter the namespace");
    ns
}
