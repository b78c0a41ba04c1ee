//! A small blocking client for the control socket. Blocking is enough: the CLI sends one or two
//! requests and exits, and tests drive it from plain threads.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proto::{
    MAX_RESPONSE_BYTES, PROTOCOL_VERSION, Request, RequestEnvelope, Response, decode_response,
    encode_request,
};

/// How long a request may take before the client gives up (a stuck daemon must not hang
/// scripts forever; a full connection dump of a busy box still fits comfortably).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call failed. Every variant displays as one line suitable for `dpvs-ctl: <error>`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {}: {}{}", .path.display(), io_reason(.source), connect_hint(.source))]
    Connect { path: PathBuf, source: io::Error },
    #[error("lost connection to dpvs at {}: {}", .path.display(), io_reason(.source))]
    Io { path: PathBuf, source: io::Error },
    #[error("no answer from dpvs at {} within {:?}", .path.display(), .timeout)]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("dpvs at {} closed the connection without answering", .path.display())]
    Closed { path: PathBuf },
    #[error("invalid response from dpvs: {0}")]
    BadResponse(String),
    /// The daemon refused the request; the message is the daemon's.
    #[error("{0}")]
    Daemon(String),
}

/// An open control connection; several requests may be sent on it, one at a time.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    timeout: Duration,
}

impl Client {
    /// Connects to the daemon's socket with [`DEFAULT_TIMEOUT`].
    pub fn connect(socket_path: &Path) -> Result<Client, ClientError> {
        let path = socket_path.to_path_buf();
        let stream = UnixStream::connect(&path).map_err(|source| ClientError::Connect {
            path: path.clone(),
            source,
        })?;
        let mut client = Client {
            path,
            reader: BufReader::new(stream),
            timeout: DEFAULT_TIMEOUT,
        };
        client.set_timeout(DEFAULT_TIMEOUT)?;
        Ok(client)
    }

    /// Changes how long one request may take.
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let stream = self.reader.get_ref();
        let t = Some(timeout.max(Duration::from_millis(1)));
        stream
            .set_read_timeout(t)
            .and_then(|()| stream.set_write_timeout(t))
            .map_err(|e| self.io(e))?;
        self.timeout = timeout;
        Ok(())
    }

    /// Sends one request and waits for its response. A daemon-side refusal is
    /// [`ClientError::Daemon`].
    pub fn call(&mut self, req: Request) -> Result<Response, ClientError> {
        let mut line = encode_request(&RequestEnvelope::new(req));
        line.push('\n');
        self.reader
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(|e| self.io(e))?;
        let reply = self.read_line()?;
        let env = decode_response(&reply).map_err(ClientError::BadResponse)?;
        debug_assert_eq!(env.version, PROTOCOL_VERSION);
        env.result.map_err(ClientError::Daemon)
    }

    /// Reads one response line, bounded by [`MAX_RESPONSE_BYTES`].
    fn read_line(&mut self) -> Result<String, ClientError> {
        let mut buf = Vec::new();
        let limit = MAX_RESPONSE_BYTES as u64;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|e| self.io(e))?;
        if n == 0 {
            return Err(ClientError::Closed {
                path: self.path.clone(),
            });
        }
        if buf.last() != Some(&b'\n') && n as u64 >= limit {
            return Err(ClientError::BadResponse(format!(
                "response longer than {limit} bytes"
            )));
        }
        String::from_utf8(buf).map_err(|_| ClientError::BadResponse("response is not UTF-8".into()))
    }

    /// Classifies an I/O error on an established connection.
    fn io(&self, source: io::Error) -> ClientError {
        let path = self.path.clone();
        match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
                path,
                timeout: self.timeout,
            },
            _ => ClientError::Io { path, source },
        }
    }
}

/// Connects, sends one request, returns its response.
pub fn call(socket_path: &Path, req: Request) -> Result<Response, ClientError> {
    Client::connect(socket_path)?.call(req)
}

/// The OS's text for an error without Rust's ` (os error N)` suffix, which users do not need.
fn io_reason(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s,
    }
}

/// The likely cause of a failed connect, as users most often hit it.
fn connect_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => " (is dpvs running?)",
        // The daemon makes its socket owner-only (0600): no group grants access.
        io::ErrorKind::PermissionDenied => {
            " (the socket is owner-only: run dpvs-ctl as the user dpvs runs as, normally root)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;
    use std::thread;

    use super::*;
    use crate::proto::serve_line;

    fn temp_socket(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("dpvs-api-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn connect_error_is_one_clear_line() {
        let e = call(Path::new("/nonexistent/dpvs.sock"), Request::Stats).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot connect to /nonexistent/dpvs.sock: No such file or directory (is dpvs running?)"
        );
    }

    #[test]
    fn permission_error_says_what_is_true() {
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        let hint = connect_hint(&e);
        assert!(
            hint.contains("owner-only") && !hint.contains("group"),
            "{hint}"
        );
    }

    #[test]
    fn several_requests_on_one_connection() {
        let path = temp_socket("multi");
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            for line in BufReader::new(stream).lines() {
                let reply = serve_line(&line.unwrap(), |req| match req {
                    Request::AddrList => Ok(Response::Addrs(vec![])),
                    other => Err(format!("unsupported: {other:?}")),
                });
                writeln!(out, "{reply}").unwrap();
            }
        });
        let mut c = Client::connect(&path).unwrap();
        assert_eq!(c.call(Request::AddrList).unwrap(), Response::Addrs(vec![]));
        let e = c.call(Request::Stats).unwrap_err();
        assert!(
            matches!(&e, ClientError::Daemon(m) if m == "unsupported: Stats"),
            "{e}"
        );
        assert_eq!(c.call(Request::AddrList).unwrap(), Response::Addrs(vec![]));
        drop(c);
        server.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }

    /// Runs a server that answers every line with `reply` and returns the client's error.
    fn call_against(name: &str, reply: &'static str) -> ClientError {
        let path = temp_socket(name);
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).unwrap();
            out.write_all(reply.as_bytes()).unwrap();
        });
        let e = call(&path, Request::Stats).unwrap_err();
        server.join().unwrap();
        let _ = std::fs::remove_file(&path);
        e
    }

    #[test]
    fn version_mismatch_and_garbage_are_reported() {
        let e = call_against("ver", "{\"version\":7,\"ok\":{\"type\":\"done\"}}\n");
        assert!(e.to_string().contains("response is version 7"), "{e}");
        let e = call_against("garbage", "hello\n");
        assert!(
            e.to_string()
                .starts_with("invalid response from dpvs: malformed response"),
            "{e}"
        );
        let e = call_against("closed", "");
        assert!(e.to_string().contains("closed the connection"), "{e}");
    }

    #[test]
    fn timeout_is_reported() {
        let path = temp_socket("timeout");
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            thread::sleep(Duration::from_millis(300));
        });
        let mut c = Client::connect(&path).unwrap();
        c.set_timeout(Duration::from_millis(50)).unwrap();
        let e = c.call(Request::Stats).unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
        server.join().unwrap();
        let _ = std::fs::remove_file(&path);
    }
}
