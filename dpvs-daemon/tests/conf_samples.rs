//! Every sample configuration in `conf/` loads and is accepted as the daemon would accept it
//! (the same check it runs before EAL starts), so the samples the README points to stay true.

use std::path::Path;

use dpvs_daemon::config;
use dpvs_daemon::control::state::ControlState;

#[test]
fn every_sample_config_loads_and_applies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let mut samples: Vec<_> = std::fs::read_dir(&dir)
        .expect("conf/ is readable")
        .map(|e| e.expect("conf/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    samples.sort();
    assert!(samples.len() >= 5, "the samples: {samples:?}");
    for path in &samples {
        let cfg = config::load(path).unwrap_or_else(|e| panic!("{e}"));
        ControlState::check_config(&cfg, 4096)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!cfg.services.is_empty(), "{}: no service", path.display());
    }
}
