//! Helpers for tests that run a real EAL (one per process): unique EAL arguments and the
//! removal of the runtime directory EAL leaves behind.

use std::path::PathBuf;

/// EAL arguments for a test, isolated by a unique `--file-prefix`, with no hugepages and no PCI
/// scan, on lcores 0 and 1 (main + one worker; the CI machines have two CPUs), and the guard
/// that removes the runtime directory when dropped. Declare the guard before the `Eal` so it is
/// dropped after it.
pub fn test_eal_args(test_name: &str) -> (Vec<String>, RuntimeDirGuard) {
    let prefix = format!("dpvs-test-{test_name}-{}", std::process::id());
    let args = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "-l",
        "0-1",
        "--file-prefix",
        &prefix,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    (args, RuntimeDirGuard { prefix })
}

/// Removes `/var/run/dpdk/<prefix>` (root) or `$XDG_RUNTIME_DIR/dpdk/<prefix>` when dropped.
#[derive(Debug)]
pub struct RuntimeDirGuard {
    prefix: String,
}

impl RuntimeDirGuard {
    /// The candidate runtime directories of this prefix.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut v = vec![PathBuf::from("/var/run/dpdk").join(&self.prefix)];
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
            v.push(PathBuf::from(x).join("dpdk").join(&self.prefix));
        }
        v.push(std::env::temp_dir().join("dpdk").join(&self.prefix));
        v
    }
}

impl Drop for RuntimeDirGuard {
    fn drop(&mut self) {
        for d in self.dirs() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
