//! Test helpers (feature `lab`, root only): a network namespace with TAPs standing in for the
//! twins the DPDK side creates, entering that namespace from a thread without `unsafe`, and a
//! NetworkManager lab (D-Bus, udevd and NetworkManager started inside the namespace by
//! `scripts/nm_lab.sh`). Everything is removed on drop, so a failing test cleans up too.
//!
//! Entering a namespace: [`Netns::enter`] calls `setns(2)` (nix's safe wrapper) on the calling
//! thread only. Threads it spawns afterwards inherit the namespace, so a `KernelBridge` started
//! from that thread works inside it. Run one test per process (cargo-nextest does) or give each
//! test its own thread (libtest does): other threads are not moved.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

/// Lock file that serialises NetworkManager labs: only one NetworkManager can own its D-Bus
/// name at a time.
pub const NM_LOCK: &str = "/run/dpvs-test-nm.lock";

fn run(cmd: &mut Command) -> io::Result<Output> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A network namespace, deleted (with the TAPs made in it) on drop.
pub struct Netns {
    name: String,
    taps: Vec<String>,
}

impl Netns {
    /// `kni-<tag>-<pid>`: unique per test and per process, so parallel runs never collide.
    pub fn unique(tag: &str) -> io::Result<Netns> {
        Self::new(&format!("kni-{tag}-{}", std::process::id()))
    }

    pub fn new(name: &str) -> io::Result<Netns> {
        // A leftover of a crashed run of the same name would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Netns {
            name: name.to_owned(),
            taps: Vec::new(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NS ARGS...`, returning stdout.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let out = run(Command::new("ip").arg("-n").arg(&self.name).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ip netns exec NS PROGRAM ARGS...`
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args))
    }

    /// A persistent TAP, the way DPDK's `net_tap` makes the twin (`ip tuntap add`).
    pub fn add_tap(&mut self, ifname: &str) -> io::Result<()> {
        self.ip(&["tuntap", "add", "dev", ifname, "mode", "tap"])?;
        self.taps.push(ifname.to_owned());
        Ok(())
    }

    /// Move the calling thread into the namespace (threads it spawns later follow).
    pub fn enter(&self) -> io::Result<()> {
        let f = File::open(Path::new("/run/netns").join(&self.name))?;
        setns(f, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
    }

    /// The IPv4 addresses of `ifname`, as `a.b.c.d/len`, sorted.
    pub fn addrs4(&self, ifname: &str) -> io::Result<Vec<String>> {
        let out = self.ip(&["-o", "-4", "addr", "show", "dev", ifname])?;
        let mut v: Vec<String> = out
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                w.find(|&t| t == "inet")
                    .and_then(|_| w.next())
                    .map(str::to_owned)
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// The IPv4 main-table routes through `ifname` that are not the kernel's prefix routes,
    /// as `ip route` prints them without the device (`10.9.0.0/16 via 10.0.0.254`).
    pub fn routes4(&self, ifname: &str) -> io::Result<Vec<String>> {
        let out = self.ip(&["-4", "route", "show", "dev", ifname])?;
        let mut v: Vec<String> = out
            .lines()
            .filter(|l| !l.contains("proto kernel"))
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                match w.iter().position(|&t| t == "via") {
                    Some(i) if i + 1 < w.len() => format!("{} via {}", w[0], w[i + 1]),
                    _ => w[0].to_owned(),
                }
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// Whether `ifname` is administratively up.
    pub fn link_up(&self, ifname: &str) -> io::Result<bool> {
        let out = self.ip(&["-o", "link", "show", "dev", ifname])?;
        let flags = out
            .split('<')
            .nth(1)
            .and_then(|s| s.split('>').next())
            .unwrap_or("");
        Ok(flags.split(',').any(|f| f == "UP"))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for tap in &self.taps {
            let _ = Command::new("ip")
                .args(["-n", &self.name, "link", "del", tap])
                .output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Poll `cond` every `step` until it holds or `limit` passes; returns the time it took.
pub fn wait_until(
    limit: Duration,
    step: Duration,
    mut cond: impl FnMut() -> bool,
) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if cond() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(step);
    }
}

/// A private directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> io::Result<TempDir> {
        let p = std::env::temp_dir().join(format!("kni-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Why a NetworkManager lab cannot run here (the caller skips that part and says why).
#[derive(Debug)]
pub struct NmUnavailable(pub String);

/// NetworkManager, udevd and (if none answers) a system D-Bus, started by `scripts/nm_lab.sh`
/// for one namespace, with its configuration in `dir`. Holds [`NM_LOCK`] while it lives.
pub struct NmLab {
    ns: String,
    dir: PathBuf,
    _lock: File,
}

impl NmLab {
    /// The script that starts and stops the lab (also usable from the shell and Python).
    pub fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nm_lab.sh")
    }

    /// Take the lock (waiting up to `lock_wait`), then start the lab. NetworkManager reads its
    /// `conf.d` from [`NmLab::conf_dir`].
    pub fn start(ns: &Netns, dir: &Path, lock_wait: Duration) -> Result<NmLab, NmUnavailable> {
        for bin in ["NetworkManager", "nmcli", "dbus-daemon", "udevadm"] {
            if !on_path(bin) {
                return Err(NmUnavailable(format!(
                    "{bin} is not installed (Debian: network-manager, dbus, udev)"
                )));
            }
        }
        let lock = File::create(NM_LOCK).map_err(|e| NmUnavailable(format!("{NM_LOCK}: {e}")))?;
        wait_until(lock_wait, Duration::from_millis(200), || {
            lock.try_lock().is_ok()
        })
        .ok_or_else(|| {
            NmUnavailable(format!(
                "{NM_LOCK} still held by another run after {lock_wait:?}"
            ))
        })?;
        let out = Command::new(Self::script())
            .args(["start", ns.name()])
            .arg(dir)
            .output()
            .map_err(|e| NmUnavailable(format!("nm_lab.sh: {e}")))?;
        let lab = NmLab {
            ns: ns.name().to_owned(),
            dir: dir.to_owned(),
            _lock: lock,
        };
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Err(NmUnavailable(format!("nm_lab.sh start failed: {why}")));
        }
        Ok(lab)
    }

    /// NetworkManager's `--config-dir`: where the guard's keyfile must go.
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.join("conf.d")
    }

    /// NetworkManager's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("nm.log")
    }

    /// `nmcli -t -f DEVICE,STATE device` for one device: `unmanaged`, `connecting`, ...
    pub fn device_state(&self, ifname: &str) -> Option<String> {
        let out = Command::new("nmcli")
            .args(["-t", "-f", "DEVICE,STATE", "device"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (dev, state) = l.rsplit_once(':')?;
            (dev.replace("\\:", ":") == ifname).then(|| state.to_owned())
        })
    }

    /// `nmcli device` as printed, for test output.
    pub fn devices(&self) -> String {
        Command::new("nmcli")
            .arg("device")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for NmLab {
    fn drop(&mut self) {
        // Stops, by PID, what `start` started; the lock goes with `_lock` after this.
        let _ = Command::new(Self::script())
            .args(["stop", &self.ns])
            .arg(&self.dir)
            .output();
    }
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
        || Path::new("/usr/sbin").join(binary).is_file()
}
