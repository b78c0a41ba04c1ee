//! The control socket: newline-delimited JSON requests on a Unix socket (mode 0600), one
//! thread per client connection, every request served under the control lock.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use dpvs_api::{MAX_REQUEST_BYTES, ResponseEnvelope, encode_response, serve_line};

use crate::control::handler::Control;

/// Client connections served at once; more are refused with an error line.
const MAX_CLIENTS: usize = 64;

/// A bound control socket; the file is removed when this is dropped.
pub struct ControlSocket {
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket at `path` (creating its directory), refusing if another daemon answers
/// there, and serves it from a background thread.
pub fn serve(path: &Path, control: Arc<Mutex<Control>>) -> Result<ControlSocket, String> {
    let listener = bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    let clients = Arc::new(AtomicUsize::new(0));
    thread::Builder::new()
        .name("dpvs-ctl-accept".into())
        .spawn(move || accept_loop(listener, control, clients))
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    Ok(ControlSocket {
        path: path.to_path_buf(),
    })
}

fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another dpvs is serving it",
            ));
        }
        // A socket file left by a daemon that died: nobody answers, so it is safe to replace.
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn accept_loop(listener: UnixListener, control: Arc<Mutex<Control>>, clients: Arc<AtomicUsize>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::SeqCst);
            let busy = ResponseEnvelope::new(Err("too many control clients; try again".into()));
            let _ = writeln!(stream, "{}", encode_response(&busy));
            continue;
        }
        let (control, clients) = (Arc::clone(&control), Arc::clone(&clients));
        let spawned = thread::Builder::new()
            .name("dpvs-ctl-client".into())
            .spawn(move || {
                let _ = serve_client(stream, &control);
                clients.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            tracing::warn!("cannot start a thread for a control client");
        }
    }
}

/// Serves requests on one connection until the client closes it. A line over the size limit
/// or not UTF-8 gets an error reply and closes the connection; a malformed request gets an
/// error reply and the connection goes on.
fn serve_client(stream: UnixStream, control: &Mutex<Control>) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let (reply, fatal) = match std::str::from_utf8(&line) {
            _ if n > MAX_REQUEST_BYTES => (error_line("request too long"), true),
            Err(_) => (error_line("request is not UTF-8"), true),
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => (serve_line(text, |req| lock(control).handle(req)), false),
        };
        writer.write_all(reply.as_bytes())?;
        writer.write_all(b"\n")?;
        if fatal {
            return Ok(());
        }
    }
}

fn error_line(msg: &str) -> String {
    encode_response(&ResponseEnvelope::new(Err(msg.to_string())))
}

/// The control lock. A panic while holding it would poison it; the state is still
/// consistent (every change validates before it mutates), so keep serving.
pub fn lock(control: &Mutex<Control>) -> std::sync::MutexGuard<'_, Control> {
    control.lock().unwrap_or_else(|p| p.into_inner())
}
