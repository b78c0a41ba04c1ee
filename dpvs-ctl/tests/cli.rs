//! Runs the real `dpvs-ctl` binary against a stand-in daemon on a temporary Unix socket. The
//! stand-in is a test double (the real daemon needs DPDK and is tested end to end elsewhere):
//! it records the requests it receives and answers with canned data through the same
//! `dpvs_api::serve_line` the daemon uses.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread;

use dpvs_api::{
    AddrInfo, Forward, Request, Response, RsSpec, Sched, ServiceInfo, ServiceKey, ServiceSpec,
};

type Handler = dyn Fn(&Request) -> Result<Response, String> + Send + Sync;

/// A stand-in daemon serving connections until the test process exits.
struct FakeDaemon {
    path: PathBuf,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeDaemon {
    fn start(
        name: &str,
        handler: impl Fn(&Request) -> Result<Response, String> + Send + Sync + 'static,
    ) -> Self {
        let path =
            std::env::temp_dir().join(format!("dpvs-ctl-{}-{name}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let handler: Arc<Handler> = Arc::new(handler);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let stream = stream.unwrap();
                let mut out = stream.try_clone().unwrap();
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let reply = dpvs_api::serve_line(&line, |req| {
                        seen.lock().unwrap().push(req.clone());
                        handler(&req)
                    });
                    if writeln!(out, "{reply}").is_err() {
                        break;
                    }
                }
            }
        });
        FakeDaemon { path, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Runs `dpvs-ctl --ipc <socket> args...`.
    fn ctl(&self, args: &[&str]) -> Output {
        let mut full = vec!["--ipc", self.path.to_str().unwrap()];
        full.extend_from_slice(args);
        ctl(&full, None)
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn ctl(args: &[&str], env_ipc: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dpvs-ctl"));
    cmd.args(args).env_remove("DPVS_IPC");
    if let Some(p) = env_ipc {
        cmd.env("DPVS_IPC", p);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn svc() -> ServiceKey {
    "tcp:10.0.0.100:80".parse().unwrap()
}

/// `tcp:10.0.0.100:80` (rr, FullNAT) with one real server.
fn one_service() -> Vec<ServiceInfo> {
    vec![dpvs_api::samples::service()]
}

#[test]
fn service_list_prints_ipvsadm_layout() {
    let d = FakeDaemon::start("list", |_| Ok(Response::Services(one_service())));
    let o = d.ctl(&["service", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("IP Virtual Server version"));
    assert_eq!(lines[1], "Prot LocalAddress:Port Scheduler Flags");
    assert_eq!(lines[3], "TCP  10.0.0.100:80 rr");
    assert_eq!(
        lines[4],
        "  -> 192.168.10.11:8080           FullNat 1      3          0"
    );
    assert_eq!(d.requests(), [Request::ServiceList { stats: false }]);
}

#[test]
fn mutation_sends_the_request_and_prints_nothing() {
    let d = FakeDaemon::start("rsadd", |_| Ok(Response::Done));
    let o = d.ctl(&[
        "rs",
        "add",
        "tcp:10.0.0.100:80",
        "192.168.10.11:8080",
        "--weight",
        "3",
        "--forward",
        "dr",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "");
    let rs = RsSpec {
        forward: Some(Forward::Dr),
        ..RsSpec::new("192.168.10.11:8080".parse().unwrap(), 3)
    };
    assert_eq!(d.requests(), [Request::RsAdd { service: svc(), rs }]);
}

#[test]
fn daemon_error_is_one_line_and_exit_1() {
    let d = FakeDaemon::start("err", |_| Err("no such service tcp:10.0.0.100:80".into()));
    let o = d.ctl(&["service", "del", "tcp:10.0.0.100:80"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "dpvs-ctl: no such service tcp:10.0.0.100:80\n");
    assert_eq!(stdout(&o), "");
}

#[test]
fn missing_daemon_is_reported_clearly() {
    let o = ctl(&["--ipc", "/nonexistent/dpvs.sock", "stats"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "dpvs-ctl: cannot connect to /nonexistent/dpvs.sock: No such file or directory (is dpvs running?)\n"
    );
}

#[test]
fn default_socket_and_env_override() {
    let o = ctl(&["stats"], Some("/nonexistent/env.sock"));
    assert!(
        stderr(&o).contains("cannot connect to /nonexistent/env.sock"),
        "{}",
        stderr(&o)
    );
    let o = ctl(&["stats"], None);
    assert!(
        stderr(&o).contains("/run/dpvs/dpvs.sock") || o.status.success(),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_error_is_one_line_and_exit_2() {
    let o = ctl(&["service", "add", "tcp:10.0.0.100"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("dpvs-ctl: invalid value 'tcp:10.0.0.100' for '<SERVICE>'"),
        "{err}"
    );
}

#[test]
fn json_output_is_the_data() {
    let d = FakeDaemon::start("json", |_| {
        Ok(Response::Addrs(vec![AddrInfo {
            addr: "10.0.0.1".parse().unwrap(),
            prefix_len: 24,
            port: "dpdk0".into(),
        }]))
    });
    let o = d.ctl(&["-o", "json", "addr", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"addr": "10.0.0.1", "prefix_len": 24, "port": "dpdk0"}])
    );
}

#[test]
fn partial_service_edit_keeps_the_other_field() {
    let d = FakeDaemon::start("edit", |req| match req {
        Request::ServiceList { .. } => Ok(Response::Services(one_service())),
        _ => Ok(Response::Done),
    });
    let o = d.ctl(&["service", "edit", "tcp:10.0.0.100:80", "--sched", "wrr"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        d.requests(),
        [
            Request::ServiceList { stats: false },
            Request::ServiceEdit(ServiceSpec::new(svc(), Sched::Wrr, Forward::Fnat)),
        ]
    );
    let o = d.ctl(&["service", "edit", "tcp:10.0.0.1:80", "--forward", "dr"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "dpvs-ctl: no such service tcp:10.0.0.1:80\n");
}
