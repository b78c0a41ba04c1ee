//! The config loader on arbitrary text: `Config::from_toml_str` never panics and refuses with
//! one line; a config it accepts goes through `ControlState::check_config` (the daemon's check
//! before EAL), which refuses with one line too, and a config that passes both builds the
//! control state and the first snapshot the daemon would publish (schedules compiled,
//! persistence templates made), and the kernel twins' specifications the bridge starts from,
//! which must accept every address and route the config gave them: the daemon builds them
//! after EAL and the ports are up, too late to refuse a config cleanly.
#![no_main]

use dpvs_core::packet::MacAddr;
use dpvs_daemon::config::Config;
use dpvs_daemon::control::state::{ControlState, PortState};
use kni::{KniAddr, KniRoute, TwinSpec};
use libfuzzer_sys::fuzz_target;

/// The daemon's counter slots (`SLOTS` in the daemon's start-up).
const SLOTS: u32 = 4096;

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    let cfg = match Config::from_toml_str(&src) {
        Ok(cfg) => cfg,
        Err(e) => return assert_one_line(&e.to_string(), "Config::from_toml_str"),
    };
    if let Err(e) = ControlState::check_config(&cfg, SLOTS) {
        return assert_one_line(&e, "ControlState::check_config");
    }
    // What the daemon does next, with its ports up: the state, then the first snapshot.
    let ports = cfg
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| PortState {
            name: p.name.clone(),
            id: i as u16,
            mac: MacAddr([0x02, 0, 0, 0, 0, i as u8]),
            mtu: 1500,
            kni: p.kni,
        })
        .collect();
    let mut state = ControlState::new(ports, cfg.timeouts, SLOTS)
        .with_templates(cfg.templates.min(MAX_TEMPLATES));
    state
        .apply_config(&cfg)
        .expect("check_config passed a config apply_config refuses");
    let _ = state.snapshot();
    let _ = state.neigh_table();
    for p in cfg.ports.iter().filter(|p| p.kni) {
        twin_spec(&cfg, &p.name);
    }
});

/// Persistence templates allocated per input at most (`[conn] templates` may ask for
/// hundreds of millions, which the daemon allocates once; the fuzzer would run out of memory).
const MAX_TEMPLATES: usize = 1 << 12;

/// The kernel side of `port`'s twin, as the daemon's start-up builds it (`daemon::kernel`).
fn twin_spec(cfg: &Config, port: &str) -> TwinSpec {
    let mut spec = TwinSpec::new(port);
    assert!(
        spec.ifname.len() <= 15,
        "twin name {:?} too long for the kernel",
        spec.ifname
    );
    for a in cfg.kni.addresses.iter().filter(|a| a.port == port) {
        let addr = KniAddr::new(a.addr, a.prefix_len).unwrap_or_else(|e| {
            panic!("the config accepted a twin address the bridge refuses: {e}")
        });
        spec = spec.with_addr(addr);
    }
    for r in cfg.kni.routes.iter().filter(|r| r.port == port) {
        let route = KniRoute::new(r.prefix, r.prefix_len, r.via)
            .unwrap_or_else(|e| panic!("the config accepted a twin route the bridge refuses: {e}"));
        spec = spec.with_route(route);
    }
    spec
}

fn assert_one_line(s: &str, what: &str) {
    assert!(!s.contains(['\n', '\r']), "{what}: not one line: {s:?}");
}
