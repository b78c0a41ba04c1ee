//! Keep NetworkManager off the twins: a `conf.d` keyfile that lists `*.kni` as unmanaged and a
//! udev rule that sets `NM_UNMANAGED=1` on them. Written before the DPDK side creates the twins,
//! so NetworkManager never gets a moment to grab one; removed on a clean stop, but only the
//! files this process wrote (or adopted from a crashed run of its own: they carry a marker),
//! and only by the last of the daemons using them.
//!
//! Several daemons (distinct instances) share the two files. Each holds a shared `flock` on a
//! users file while it runs; one that stops releases its own and removes the files only if it
//! then gets the lock exclusively, i.e. no other daemon is using them. The kernel drops a
//! crashed daemon's lock, so a crash never keeps the files forever (a leftover is adopted by
//! the next run).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::KniError;

/// First line of every file the crate writes: how a later run recognises its own files.
const MARKER: &str = "# Written by DPVS-RS (kni crate)";
/// Sorts after most admin snippets, and appends (`+=`) instead of overriding their list.
const KEYFILE_NAME: &str = "99-dpvs-kni-unmanaged.conf";
const UDEV_RULE_NAME: &str = "85-dpvs-kni-unmanaged.rules";
/// How long a reload command may take before it is abandoned.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `install` waits for a stopping daemon to finish removing the files.
const USERS_WAIT: Duration = Duration::from_secs(5);

/// Where the guard files go and whether to poke running daemons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NmOptions {
    /// NetworkManager's `conf.d` directory.
    pub nm_conf_dir: PathBuf,
    /// udev's rules directory.
    pub udev_rules_dir: PathBuf,
    /// The interface-name glob to mark unmanaged.
    pub pattern: String,
    /// Write the files even if NetworkManager does not look installed.
    pub force: bool,
    /// Ask a running NetworkManager to reload its configuration (`nmcli general reload conf`)
    /// and udev its rules (`udevadm control --reload`). Failures are logged, not fatal.
    pub reload: bool,
    /// The lock file that counts the daemons using the files.
    pub users_lock: PathBuf,
}

impl NmOptions {
    /// The real system: `/etc/NetworkManager/conf.d` and `/etc/udev/rules.d`.
    pub fn system() -> Self {
        Self::under(Path::new("/"))
    }

    /// The same layout under another root (tests use a temporary directory).
    pub fn under(root: &Path) -> Self {
        NmOptions {
            nm_conf_dir: root.join("etc/NetworkManager/conf.d"),
            udev_rules_dir: root.join("etc/udev/rules.d"),
            pattern: "*.kni".to_owned(),
            force: false,
            reload: root == Path::new("/"),
            users_lock: root.join("run/dpvs/kni-nm-guard.users"),
        }
    }

    fn nm_installed(&self) -> bool {
        let etc_nm = self.nm_conf_dir.parent().is_some_and(Path::is_dir);
        etc_nm || on_path("NetworkManager")
    }
}

/// The files the guard wrote; removes them when dropped (or by `remove`).
#[derive(Debug, Default)]
pub struct NmGuard {
    owned: Vec<PathBuf>,
    reload: bool,
    /// Our shared lock on the users file, and its path.
    users: Option<(File, PathBuf)>,
}

impl NmGuard {
    /// Write the keyfile and the udev rule if NetworkManager is installed (or `force`).
    /// Idempotent: a file already there with our marker is adopted; a file without it at the
    /// same path belongs to someone else and is left alone.
    pub fn install(opts: &NmOptions) -> Result<NmGuard, KniError> {
        let mut guard = NmGuard {
            owned: Vec::new(),
            reload: opts.reload,
            users: None,
        };
        if !opts.force && !opts.nm_installed() {
            tracing::info!(
                "NetworkManager is not installed: no unmanaged keyfile or udev rule needed"
            );
            return Ok(guard);
        }
        guard.users = Some((share_users(&opts.users_lock)?, opts.users_lock.clone()));
        let keyfile = opts.nm_conf_dir.join(KEYFILE_NAME);
        let keyfile_text = format!(
            "{MARKER}: NetworkManager must leave the kernel twins of DPDK ports alone.\n\
             # Removed when dpvs stops cleanly.\n[keyfile]\nunmanaged-devices+=interface-name:{}\n",
            opts.pattern
        );
        let rule = opts.udev_rules_dir.join(UDEV_RULE_NAME);
        let rule_text = format!(
            "{MARKER}: NetworkManager must leave the kernel twins of DPDK ports alone.\n\
             # Removed when dpvs stops cleanly.\n\
             SUBSYSTEM==\"net\", ACTION==\"add|change|move\", ENV{{INTERFACE}}==\"{}\", ENV{{NM_UNMANAGED}}=\"1\"\n",
            opts.pattern
        );
        for (path, text) in [(keyfile, keyfile_text), (rule, rule_text)] {
            if write_owned(&path, &text)? {
                guard.owned.push(path);
            }
        }
        if opts.reload {
            reload_daemons();
        }
        Ok(guard)
    }

    /// The files this guard will remove.
    pub fn files(&self) -> &[PathBuf] {
        &self.owned
    }

    /// Remove the files now, reporting the first failure.
    pub fn remove(mut self) -> Result<(), KniError> {
        self.remove_owned()
    }

    fn remove_owned(&mut self) -> Result<(), KniError> {
        if !self.last_user()? {
            tracing::info!(
                "NetworkManager guard files left in place: another dpvs still uses them"
            );
            self.owned.clear();
            return Ok(());
        }
        let mut first_err = None;
        let removed = !self.owned.is_empty();
        for path in self.owned.drain(..) {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "removed NetworkManager guard file")
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    tracing::warn!(file = %path.display(), error = %source, "cannot remove guard file");
                    first_err.get_or_insert(KniError::File {
                        path,
                        op: "remove",
                        source,
                    });
                }
            }
        }
        if removed && self.reload {
            reload_daemons();
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl NmGuard {
    /// Releases our shared lock and tells whether no other daemon holds one. The exclusive
    /// lock that says so is held only for this check: a daemon starting meanwhile waits in
    /// `share_users` at most for the removal, then writes the files again.
    fn last_user(&mut self) -> Result<bool, KniError> {
        let Some((file, path)) = self.users.take() else {
            return Ok(true);
        };
        drop(file);
        let again = open_users(&path)?;
        match again.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(source)) => Err(KniError::File {
                path,
                op: "lock",
                source,
            }),
        }
    }
}

/// Opens the users file at `path` and takes a shared lock on it, waiting (bounded) for a daemon
/// that is removing the files.
fn share_users(path: &Path) -> Result<File, KniError> {
    let file = open_users(path)?;
    let deadline = Instant::now() + USERS_WAIT;
    loop {
        match file.try_lock_shared() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                let source = std::io::Error::new(
                    ErrorKind::WouldBlock,
                    format!("held exclusively for more than {USERS_WAIT:?}"),
                );
                return Err(users_err(path, "lock", source));
            }
            Err(TryLockError::Error(source)) => return Err(users_err(path, "lock", source)),
        }
    }
}

fn open_users(path: &Path) -> Result<File, KniError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| users_err(path, "create directory", e))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| users_err(path, "open", e))
}

fn users_err(path: &Path, op: &'static str, source: std::io::Error) -> KniError {
    KniError::File {
        path: path.to_owned(),
        op,
        source,
    }
}

impl Drop for NmGuard {
    fn drop(&mut self) {
        // Errors were logged; there is nobody left to return them to.
        let _ = self.remove_owned();
    }
}

/// Write `text` to `path` unless a foreign file is there. Returns whether the file is ours.
fn write_owned(path: &Path, text: &str) -> Result<bool, KniError> {
    let file_err = |op, source| KniError::File {
        path: path.to_owned(),
        op,
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(existing) if existing == text => {
            tracing::info!(file = %path.display(), "NetworkManager guard file already in place (adopted)");
            return Ok(true);
        }
        Ok(existing) if !existing.starts_with(MARKER) => {
            tracing::warn!(file = %path.display(), "a file that is not ours is in the way: left alone");
            return Ok(false);
        }
        Ok(_) => {} // ours, from another version: rewrite
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(file_err("read", e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| file_err("create directory", e))?;
    }
    // Write then rename, so NetworkManager or udev never read half a file.
    let tmp = path.with_extension("tmp-dpvs");
    std::fs::write(&tmp, text).map_err(|e| file_err("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err("rename", e))?;
    tracing::info!(file = %path.display(), "wrote NetworkManager guard file");
    Ok(true)
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}

/// Ask NetworkManager and udev to re-read their configuration. Neither may be running: that is
/// logged, never fatal.
fn reload_daemons() {
    if on_path("nmcli") {
        run_bounded("nmcli", &["general", "reload", "conf"]);
    }
    if on_path("udevadm") {
        run_bounded("udevadm", &["control", "--reload"]);
    }
}

/// Run a command, killing it if it outlives `RELOAD_TIMEOUT`.
fn run_bounded(program: &str, args: &[&str]) {
    let cmdline = format!("{program} {}", args.join(" "));
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(command = %cmdline, error = %e, "cannot run");
            return;
        }
    };
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                tracing::info!(command = %cmdline, "configuration reloaded");
                return;
            }
            Ok(Some(status)) => {
                tracing::info!(command = %cmdline, %status, "reload failed (daemon not running?)");
                return;
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(command = %cmdline, "no answer within {RELOAD_TIMEOUT:?}: abandoned");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_root(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kni-nm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn install_is_idempotent_and_remove_spares_foreign_files() {
        let root = tmp_root("unit");
        let mut opts = NmOptions::under(&root);
        opts.force = true;
        let first = NmGuard::install(&opts).unwrap();
        assert_eq!(first.files().len(), 2);
        let keyfile = std::fs::read_to_string(&first.files()[0]).unwrap();
        assert!(keyfile.contains("[keyfile]\nunmanaged-devices+=interface-name:*.kni\n"));
        // A second install (a restart after a crash) adopts the same files.
        let second = NmGuard::install(&opts).unwrap();
        assert_eq!(second.files(), first.files());
        // A crash: the kernel drops the process's lock, the files stay.
        let mut first = first;
        drop(first.users.take());
        std::mem::forget(first);
        // A foreign file beside ours survives removal.
        let foreign = opts.nm_conf_dir.join("10-admin.conf");
        std::fs::write(&foreign, "[main]\n").unwrap();
        second.remove().unwrap();
        assert!(foreign.exists());
        assert!(!opts.nm_conf_dir.join(KEYFILE_NAME).exists());
        assert!(!opts.udev_rules_dir.join(UDEV_RULE_NAME).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn only_the_last_daemon_using_the_files_removes_them() {
        let root = tmp_root("users");
        let mut opts = NmOptions::under(&root);
        opts.force = true;
        let a = NmGuard::install(&opts).unwrap();
        let b = NmGuard::install(&opts).unwrap();
        let files = a.files().to_vec();
        a.remove().unwrap();
        assert!(files.iter().all(|f| f.exists()), "b still needs them");
        let c = NmGuard::install(&opts).unwrap();
        drop(b);
        assert!(files.iter().all(|f| f.exists()), "c still needs them");
        drop(c);
        assert!(
            files.iter().all(|f| !f.exists()),
            "the last one removed them"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_foreign_file_at_our_path_is_not_touched() {
        let root = tmp_root("foreign");
        let mut opts = NmOptions::under(&root);
        opts.force = true;
        std::fs::create_dir_all(&opts.nm_conf_dir).unwrap();
        let path = opts.nm_conf_dir.join(KEYFILE_NAME);
        std::fs::write(&path, "[keyfile]\n").unwrap();
        let guard = NmGuard::install(&opts).unwrap();
        assert_eq!(guard.files().len(), 1, "only the udev rule is ours");
        drop(guard);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "[keyfile]\n");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
