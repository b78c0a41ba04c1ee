//! What two daemons must never share, claimed before EAL or any device is touched: the
//! instance name, the EAL file prefix, each port's device (a kernel interface in this
//! network namespace, a PCI function, a memif socket it serves) and each port's kernel twin
//! (`<port>.kni` in this namespace: a daemon removes a twin of that name left by a crashed
//! run, so it must know that no live daemon holds it).
//!
//! A claim is a lock file under [`CLAIM_DIR`], locked (`flock`) for the daemon's life and
//! holding its PID, so that a second daemon is refused with one line naming the holder. The
//! kernel drops the lock when the holder dies, even by `kill -9`, so a crash never leaves a
//! stale claim; a clean exit also removes the file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Where the claims live.
pub const CLAIM_DIR: &str = "/run/dpvs/claims";

/// The claims of a running daemon; each is released (and its file removed) when dropped.
#[derive(Debug)]
pub struct Claims {
    held: Vec<Claim>,
}

#[derive(Debug)]
struct Claim {
    path: PathBuf,
    _file: File,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Removed while still locked: a daemon that opens the file now sees it vanish (its
        // lock is on an unlinked inode) and tries again on a fresh one.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One thing to claim: a file name and how to say what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The lock file's name (without directory).
    file: String,
    /// What it is, for the error ("instance \"dpvs\"").
    what: String,
}

impl Claims {
    /// Claims everything `cfg` will use, in `dir`, for instance `instance` with EAL file prefix
    /// `prefix`. The error is the one-line reason naming the daemon that holds the first claim
    /// refused.
    pub fn take(dir: &Path, cfg: &Config, prefix: &str) -> Result<Claims, String> {
        let instance = &cfg.control.instance;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut keys = vec![
            (String::new(), instance_key(instance)),
            (String::new(), prefix_key(prefix)),
        ];
        let netns = netns_id();
        for p in &cfg.ports {
            if let Some(k) = device_key(&p.device, &netns) {
                keys.push((format!("port {} ({}): ", p.name, p.device), k));
            }
            if p.kni {
                let twin = format!("{}.kni", p.name);
                keys.push((
                    format!("port {}: ", p.name),
                    netdev_key(&netns, &twin, "kernel twin"),
                ));
            }
        }
        let mut held = Vec::with_capacity(keys.len());
        for (context, key) in keys {
            held.push(Claim::take(dir, &key, instance).map_err(|e| format!("{context}{e}"))?);
        }
        Ok(Claims { held })
    }

    /// How many claims are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is claimed.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

impl Claim {
    fn take(dir: &Path, key: &Key, instance: &str) -> Result<Claim, String> {
        let path = dir.join(&key.file);
        // A holder that exits removes the file between our open and our lock at most once per
        // exit; a few tries cover any realistic race.
        for _ in 0..8 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            match file.try_lock() {
                Ok(()) if same_file(&file, &path) => {
                    return Claim::hold(path, file, instance);
                }
                Ok(()) => continue,
                Err(TryLockError::WouldBlock) => {
                    return Err(format!("{} is held by {}", key.what, holder(&path)));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(format!("cannot lock {}: {e}", path.display()));
                }
            }
        }
        Err(format!("{} keeps changing hands; try again", key.what))
    }

    /// Records who holds the claim, for the next daemon's error.
    fn hold(path: PathBuf, mut file: File, instance: &str) -> Result<Claim, String> {
        let record = format!("pid={} instance={instance}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.write_all(record.as_bytes()))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Claim { path, _file: file })
    }
}

/// Whether `file` is still the file at `path` (not unlinked by a holder that just exited).
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// "another dpvs (PID 1234, instance \"x\")", from the holder's record.
fn holder(path: &Path) -> String {
    let record = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        record
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
    };
    match (field("pid"), field("instance")) {
        (Some(pid), Some(inst)) => format!("another dpvs (PID {pid}, instance {inst:?})"),
        (Some(pid), None) => format!("another dpvs (PID {pid})"),
        _ => "another dpvs (PID not recorded yet)".to_string(),
    }
}

fn instance_key(instance: &str) -> Key {
    Key {
        file: format!("instance-{}.lock", escape(instance)),
        what: format!("instance {instance:?}"),
    }
}

fn prefix_key(prefix: &str) -> Key {
    Key {
        file: format!("eal-prefix-{}.lock", escape(prefix)),
        what: format!("EAL file prefix {prefix:?}"),
    }
}

/// The claim for a port's `device` (a vdev string or a PCI address), `None` for devices that
/// belong to nobody else (`net_ring`, `net_null`, ...). Kernel interfaces are named per
/// network namespace, `netns` identifying ours.
pub fn device_key(device: &str, netns: &str) -> Option<Key> {
    let mut parts = device.split(',');
    let driver = parts.next()?.trim();
    let arg = |name: &str| {
        device
            .split(',')
            .skip(1)
            .find_map(|kv| kv.trim().strip_prefix(name)?.strip_prefix('='))
    };
    const IFACE_DRIVERS: [&str; 5] = [
        "net_af_packet",
        "net_af_xdp",
        "net_tap",
        "net_virtio_user",
        "net_pcap",
    ];
    if IFACE_DRIVERS.iter().any(|d| driver.starts_with(d)) {
        return Some(netdev_key(netns, arg("iface")?, "interface"));
    }
    if driver.starts_with("net_memif") {
        // Two servers cannot serve one socket; a client is the other end of the link.
        if arg("role").unwrap_or("server") != "server" {
            return None;
        }
        let socket = arg("socket").unwrap_or("/run/memif.sock");
        return Some(Key {
            file: format!("memif-{}.lock", escape(socket)),
            what: format!("memif socket {socket}"),
        });
    }
    pci_address(driver).map(|pci| Key {
        file: format!("pci-{}.lock", escape(&pci)),
        what: format!("PCI device {pci}"),
    })
}

/// The claim of the kernel interface `ifname` in the network namespace `netns`, a `kind` of
/// interface ("interface", "kernel twin"). One key space for both: a port's device cannot be
/// another daemon's twin either.
fn netdev_key(netns: &str, ifname: &str, kind: &str) -> Key {
    Key {
        file: format!("netdev-{}-{}.lock", escape(netns), escape(ifname)),
        what: format!("{kind} {ifname}"),
    }
}

/// A PCI address (`0000:03:00.0` or `03:00.0`) with its domain, else `None`.
fn pci_address(s: &str) -> Option<String> {
    let hex = |t: &str, n: usize| t.len() == n && t.chars().all(|c| c.is_ascii_hexdigit());
    let (head, func) = s.rsplit_once('.')?;
    let fields: Vec<&str> = head.split(':').collect();
    let (domain, bus, dev) = match fields[..] {
        [d, b, v] => (d, b, v),
        [b, v] => ("0000", b, v),
        _ => return None,
    };
    let ok = hex(domain, 4) && hex(bus, 2) && hex(dev, 2) && hex(func, 1);
    ok.then(|| format!("{domain}:{bus}:{dev}.{func}").to_ascii_lowercase())
}

/// This process's network namespace ("4026531840"), as the kernel names it.
fn netns_id() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|l| {
            let s = l.to_string_lossy().into_owned();
            Some(s.strip_prefix("net:[")?.strip_suffix(']')?.to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// `s` as a file-name part: letters, digits, `.`, `_` and `-` kept, anything else as `%XX`.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(instance: &str, devices: &[&str]) -> Config {
        let ports: Vec<(String, &str)> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (format!("dpdk{i}"), *d))
            .collect();
        cfg_named(instance, &ports)
    }

    fn cfg_named(instance: &str, ports: &[(String, &str)]) -> Config {
        let mut toml = format!("[control]\ninstance = \"{instance}\"\n");
        for (name, d) in ports {
            toml += &format!("[[port]]\nname = \"{name}\"\ndevice = \"{d}\"\n");
        }
        Config::from_toml_str(&toml).expect("test config")
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dpvs-claims-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn device_keys() {
        let k = |d| device_key(d, "4026531840").map(|k| k.file);
        assert_eq!(
            k("net_af_packet0,iface=lbc,qpairs=2"),
            Some("netdev-4026531840-lbc.lock".into())
        );
        assert_eq!(
            k("net_af_xdp1,iface=eth1"),
            Some("netdev-4026531840-eth1.lock".into())
        );
        assert_eq!(k("net_tap0"), None, "a tap without a name gets a fresh one");
        assert_eq!(
            k("net_memif0,role=server,socket=/tmp/a b.sock"),
            Some("memif-%2Ftmp%2Fa%20b.sock.lock".into())
        );
        assert_eq!(k("net_memif0,role=client,socket=/tmp/x.sock"), None);
        assert_eq!(
            k("net_memif0"),
            Some("memif-%2Frun%2Fmemif.sock.lock".into())
        );
        assert_eq!(k("0000:03:00.1"), Some("pci-0000%3A03%3A00.1.lock".into()));
        assert_eq!(k("03:00.1"), k("0000:03:00.1"), "the same device");
        assert_eq!(k("net_ring0"), None);
        assert_eq!(k("net_null0,size=64"), None);
        assert_eq!(k("garbage"), None);
    }

    #[test]
    fn a_second_daemon_is_refused_naming_the_holder() {
        let d = dir("second");
        let first = Claims::take(&d, &cfg("one", &["net_af_packet0,iface=veth0"]), "p1")
            .expect("first daemon claims");
        // Instance, prefix, the interface, the port's twin dpdk0.kni.
        assert_eq!(first.len(), 4);
        let pid = std::process::id();

        // Another instance and prefix on the same interface: the device is refused.
        let e = Claims::take(&d, &cfg("two", &["net_af_packet3,iface=veth0"]), "p2").unwrap_err();
        assert_eq!(
            e,
            format!(
                "port dpdk0 (net_af_packet3,iface=veth0): interface veth0 is held by another dpvs (PID {pid}, instance \"one\")"
            )
        );
        // The same instance: refused on the instance, before anything else.
        let e = Claims::take(&d, &cfg("one", &["net_null0"]), "p3").unwrap_err();
        assert_eq!(
            e,
            format!("instance \"one\" is held by another dpvs (PID {pid}, instance \"one\")")
        );
        // The same EAL file prefix under another instance name.
        let e = Claims::take(&d, &cfg("three", &["net_null0"]), "p1").unwrap_err();
        assert!(e.starts_with("EAL file prefix \"p1\" is held by"), "{e}");
        // Another device, but a port of the same name: its twin would be dpdk0.kni too.
        let e = Claims::take(&d, &cfg("five", &["net_af_packet0,iface=veth1"]), "p5").unwrap_err();
        assert_eq!(
            e,
            format!(
                "port dpdk0: kernel twin dpdk0.kni is held by another dpvs (PID {pid}, instance \"one\")"
            )
        );
        // Distinct everything: side by side.
        let ports = [("lb1".to_string(), "net_af_packet0,iface=veth1")];
        let other = Claims::take(&d, &cfg_named("four", &ports), "p4")
            .expect("a daemon on other devices runs beside");

        // Released on drop: the files go and the next daemon gets them.
        drop(first);
        assert!(!d.join("instance-one.lock").exists());
        Claims::take(&d, &cfg("two", &["net_af_packet3,iface=veth0"]), "p2").expect("free again");
        drop(other);
        let _ = std::fs::remove_dir_all(&d);
    }
}
