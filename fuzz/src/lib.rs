//! Support for the fuzz targets in `fuzz_targets/`: the `pipeline` target's lab, input
//! decoding and invariants, kept in a library so that they have unit tests of their own and
//! `examples/seeds.rs` can write the seed corpus from the same definitions. See `README.md`.

pub mod pipeline;

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};

    use dpvs_daemon::config::Config;
    use dpvs_daemon::control::state::ControlState;

    fn files(dir: &str) -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut v: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        v.sort();
        v
    }

    /// The `config` target's seeds (and the sample configs it also starts from; not
    /// bench/conf/'s template, which has placeholders) are configs the daemon accepts, so that
    /// the fuzzer starts past the loader's refusals.
    #[test]
    fn config_seeds_are_accepted() {
        let seeds = files("corpus/config").into_iter().chain(files("../conf"));
        for path in seeds {
            let src = fs::read_to_string(&path).expect("a seed");
            let cfg =
                Config::from_toml_str(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            ControlState::check_config(&cfg, 4096)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    /// Every line of the `control` target's seeds is a request.
    #[test]
    fn control_seeds_decode() {
        for path in files("corpus/control") {
            let text = fs::read_to_string(&path).expect("a seed");
            for line in text.lines() {
                dpvs_api::decode_request(line)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
        }
    }
}
