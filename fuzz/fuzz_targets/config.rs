//! The config loader on arbitrary text: `Config::from_toml_str` never panics and refuses with
//! one line; a config it accepts goes through `ControlState::check_config` (the daemon's check
//! before EAL), which refuses with one line too, and a config that passes both builds the
//! control state and the first snapshot the daemon would publish.
#![no_main]

use dpvs_core::packet::MacAddr;
use dpvs_daemon::config::Config;
use dpvs_daemon::control::state::{ControlState, PortState};
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
        })
        .collect();
    let mut state = ControlState::new(ports, cfg.timeouts, SLOTS);
    state
        .apply_config(&cfg)
        .expect("check_config passed a config apply_config refuses");
    let _ = state.snapshot();
    let _ = state.neigh_table();
});

fn assert_one_line(s: &str, what: &str) {
    assert!(!s.contains(['\n', '\r']), "{what}: not one line: {s:?}");
}
