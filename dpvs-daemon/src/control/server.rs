//! The control socket: newline-delimited JSON requests on a Unix socket (mode 0600), one
//! thread per client connection, every request served under the control lock.
//!
//! A broken script must not lock the operator out. A client that sends nothing for a minute,
//! or leaves a request half-sent for ten seconds, is closed ([`Limits`]); and when 64 are
//! connected, a new client takes the place of the one idle the longest (which is told why),
//! so `dpvs-ctl` always gets in. Only when every connected client is in the middle of a
//! request is a new one refused.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use dpvs_api::{MAX_REQUEST_BYTES, ResponseEnvelope, encode_response, serve_line};

use crate::control::handler::Control;

/// How the socket treats its clients.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Client connections served at once; beyond that, the longest-idle one makes room.
    pub max_clients: usize,
    /// A connection with no request in progress is closed after this long without a byte.
    pub idle: Duration,
    /// A request must arrive whole (up to its newline) within this long of its first byte.
    pub request: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 64,
            idle: Duration::from_secs(60),
            request: Duration::from_secs(10),
        }
    }
}

/// How often a client thread wakes up to check its timeouts, at most.
const POLL: Duration = Duration::from_millis(500);

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
/// there, and serves it from a background thread with the default [`Limits`].
pub fn serve(path: &Path, control: Arc<Mutex<Control>>) -> Result<ControlSocket, String> {
    serve_with(path, control, Limits::default())
}

/// [`serve`] with the given limits.
pub fn serve_with(
    path: &Path,
    control: Arc<Mutex<Control>>,
    limits: Limits,
) -> Result<ControlSocket, String> {
    let listener = bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    let clients = Arc::new(Mutex::new(Clients {
        limits,
        next_id: 0,
        list: Vec::new(),
    }));
    thread::Builder::new()
        .name("dpvs-ctl-accept".into())
        .spawn(move || accept_loop(listener, control, clients))
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    Ok(ControlSocket {
        path: path.to_path_buf(),
    })
}

/// Whether a daemon answers on the socket at `path`: a second daemon checks this before it
/// touches anything.
pub fn answering(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if answering(path) {
            return Err(io::Error::new(
                ErrorKind::AddrInUse,
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

/// One connected client as the accept loop sees it.
struct Entry {
    id: u64,
    /// A handle to shut the connection down when it must make room.
    stream: UnixStream,
    /// When it last finished a request (or connected), while not in the middle of one.
    idle_since: Option<Instant>,
}

/// The connected clients.
struct Clients {
    limits: Limits,
    next_id: u64,
    list: Vec<Entry>,
}

impl Clients {
    /// Registers a new client, making room by evicting the longest-idle one when full.
    /// `None` when every client is in the middle of a request.
    fn admit(&mut self, stream: &UnixStream) -> io::Result<Option<u64>> {
        if self.list.len() >= self.limits.max_clients.max(1) {
            let Some(i) = self.longest_idle() else {
                return Ok(None);
            };
            let evicted = self.list.swap_remove(i);
            let bye = error_line(
                "closed: the control socket is full and this connection was idle longest",
            );
            let _ = writeln!(&evicted.stream, "{bye}");
            let _ = evicted.stream.shutdown(Shutdown::Both);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.list.push(Entry {
            id,
            stream: stream.try_clone()?,
            idle_since: Some(Instant::now()),
        });
        Ok(Some(id))
    }

    fn longest_idle(&self) -> Option<usize> {
        (0..self.list.len())
            .filter(|&i| self.list[i].idle_since.is_some())
            .min_by_key(|&i| self.list[i].idle_since)
    }

    /// Marks a client busy (`None`) or idle from now.
    fn set_idle(&mut self, id: u64, idle: bool) {
        if let Some(e) = self.list.iter_mut().find(|e| e.id == id) {
            e.idle_since = idle.then(Instant::now);
        }
    }

    fn remove(&mut self, id: u64) {
        self.list.retain(|e| e.id != id);
    }
}

fn accept_loop(listener: UnixListener, control: Arc<Mutex<Control>>, clients: Arc<Mutex<Clients>>) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let admitted = lock_clients(&clients).admit(&stream);
        let id = match admitted {
            Ok(Some(id)) => id,
            Ok(None) => {
                let busy = error_line("too many control clients busy with requests; try again");
                let _ = writeln!(stream, "{busy}");
                continue;
            }
            Err(e) => {
                tracing::warn!("control client: {e}");
                continue;
            }
        };
        let (control, clients) = (Arc::clone(&control), Arc::clone(&clients));
        let spawned = thread::Builder::new()
            .name("dpvs-ctl-client".into())
            .spawn(move || {
                let _ = serve_client(
                    stream,
                    &control,
                    &Session {
                        id,
                        clients: &clients,
                    },
                );
                lock_clients(&clients).remove(id);
            });
        if spawned.is_err() {
            tracing::warn!("cannot start a thread for a control client");
        }
    }
}

/// A client thread's handle on its registry entry.
struct Session<'a> {
    id: u64,
    clients: &'a Mutex<Clients>,
}

impl Session<'_> {
    fn set_idle(&self, idle: bool) {
        lock_clients(self.clients).set_idle(self.id, idle);
    }
}

/// Serves requests on one connection until the client closes it, or leaves it idle or a
/// request half-sent too long. A line over the size limit or not UTF-8 gets an error reply
/// and closes the connection; a malformed request gets an error reply and the connection
/// goes on.
fn serve_client(
    stream: UnixStream,
    control: &Mutex<Control>,
    session: &Session<'_>,
) -> io::Result<()> {
    let limits = lock_clients(session.clients).limits;
    let poll = POLL.min(limits.request / 4).max(Duration::from_millis(10));
    stream.set_read_timeout(Some(poll))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut idle_since = Instant::now();
    // When the first byte of the request in `line` arrived.
    let mut started: Option<Instant> = None;
    loop {
        let read = read_request(&mut reader, &mut line);
        if !line.is_empty() {
            started.get_or_insert_with(Instant::now);
        }
        match read {
            Ok(Progress::Eof) => return Ok(()),
            Ok(Progress::Line) => {}
            Ok(Progress::Partial) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if let Some(why) = timed_out(&limits, started, idle_since) {
                    let _ = writeln!(writer, "{}", error_line(&why));
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        session.set_idle(false);
        let (reply, fatal) = match std::str::from_utf8(&line) {
            _ if line.len() > MAX_REQUEST_BYTES => (error_line("request too long"), true),
            Err(_) => (error_line("request is not UTF-8"), true),
            Ok(text) if text.trim().is_empty() => (String::new(), false),
            Ok(text) => (serve_line(text, |req| lock(control).handle(req)), false),
        };
        // Idle from before the reply goes out: a client that has its answer may act on it at
        // once (a script connecting its next client), and must find this one idle already.
        if !fatal {
            idle_since = Instant::now();
            session.set_idle(true);
        }
        if !reply.is_empty() {
            writer.write_all(reply.as_bytes())?;
            writer.write_all(b"\n")?;
        }
        if fatal {
            return Ok(());
        }
        line.clear();
        started = None;
    }
}

/// What one read of a request brought.
enum Progress {
    /// The client closed the connection with nothing pending.
    Eof,
    /// `line` holds a whole request (its newline, the client's close, or too long).
    Line,
    /// More bytes of a request that is not whole yet.
    Partial,
}

/// Reads on towards the end of the request in `line`, at most one byte beyond the limit.
fn read_request(reader: &mut BufReader<UnixStream>, line: &mut Vec<u8>) -> io::Result<Progress> {
    let room = (MAX_REQUEST_BYTES + 1).saturating_sub(line.len()) as u64;
    let n = reader.take(room).read_until(b'\n', line)?;
    Ok(match n {
        0 if line.is_empty() => Progress::Eof,
        0 => Progress::Line,
        _ if line.ends_with(b"\n") || line.len() > MAX_REQUEST_BYTES => Progress::Line,
        _ => Progress::Partial,
    })
}

/// Why a connection must close: a request `started` and still not whole after
/// `limits.request`, or none for `limits.idle` since `idle_since`. `None` while it is within
/// its time.
fn timed_out(limits: &Limits, started: Option<Instant>, idle_since: Instant) -> Option<String> {
    match started {
        Some(t) if t.elapsed() >= limits.request => Some(format!(
            "request not completed within {:?} (no newline); closing",
            limits.request
        )),
        None if idle_since.elapsed() >= limits.idle => {
            Some(format!("closed: idle for {:?}", limits.idle))
        }
        _ => None,
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

fn lock_clients(clients: &Mutex<Clients>) -> std::sync::MutexGuard<'_, Clients> {
    clients.lock().unwrap_or_else(|p| p.into_inner())
}
