"""Shared harness of the end-to-end tests: one lab (namespaces, real servers, a dpvs daemon).

A test is a script `t_NAME.py` that calls `main(body)` with a function `body(lab)`; `main`
parses `--prefix`, builds the lab, runs the body, always tears the lab down (also on SIGTERM
from `timeout`), and ends with a line `OK` or `FAIL: reason` that run.sh reads.

Binaries: $DPVS_BIN and $DPVS_CTL (a command line; default target/release/dpvs and
target/release/dpvs-ctl, honouring $CARGO_TARGET_DIR). Logs of a failed test are copied to
$E2E_LOG_DIR/NAME/ (default target/e2e-logs). Python standard library only.
"""

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPTS = os.path.join(ROOT, "scripts")
PY = sys.executable or "python3"

VIP = "10.0.0.100"
VIP_URL = "http://10.0.0.100/"
VIP_UDP = "10.0.0.100:53"
SVC_TCP = "tcp:10.0.0.100:80"
SVC_UDP = "udp:10.0.0.100:53"
LADDR = "192.168.10.200"
RS_TCP = {"rs1": "192.168.10.11:8080", "rs2": "192.168.10.12:8080"}
RS_UDP = {"rs1": "192.168.10.11:5353", "rs2": "192.168.10.12:5353"}


class Fail(Exception):
    """A test assertion failed; the message is the one-line reason."""


def check(cond, reason):
    if not cond:
        raise Fail(reason)


def say(*args):
    print("#", *args, flush=True)


def _target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def dpvs_cmd():
    v = os.environ.get("DPVS_BIN")
    return shlex.split(v) if v else [os.path.join(_target_dir(), "release", "dpvs")]


def ctl_cmd():
    v = os.environ.get("DPVS_CTL")
    return shlex.split(v) if v else [os.path.join(_target_dir(), "release", "dpvs-ctl")]


def require_binaries():
    for cmd in (dpvs_cmd(), ctl_cmd()):
        exe = cmd[0]
        if os.sep in exe:
            check(os.access(exe, os.X_OK),
                  "%s not found (build it: cargo build --release --workspace)" % exe)
        else:
            check(shutil.which(exe) is not None, "%s not found in PATH" % exe)


def run(cmd, timeout, check_rc=False, **kw):
    """Run a command with a hard timeout; returns CompletedProcess (text mode)."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise Fail("timed out after %ss: %s" % (timeout, " ".join(map(str, cmd))))
    if check_rc and p.returncode != 0:
        raise Fail("%s exited %d: %s" % (" ".join(map(str, cmd[:6])), p.returncode,
                                         (p.stderr.strip().splitlines() or [""])[-1]))
    return p


def last_json(text, what):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    raise Fail("%s printed no JSON summary: %r" % (what, text[-300:]))


def wait_for(pred, timeout, interval=0.2, what="condition"):
    """Poll pred() until it returns a truthy value (returned) or the timeout passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Fail as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise Fail("timed out after %ss waiting for %s%s" % (
                timeout, what, (": %s" % last_exc) if last_exc else ""))
        time.sleep(interval)


# ----- stats helpers: the shape `dpvs-ctl -o json stats` is expected to have -----------------

def _total(v):
    """A counter that may be a number or per-worker numbers (list/object), summed."""
    if isinstance(v, bool):
        return 0
    if isinstance(v, (int, float)):
        return int(v)
    if isinstance(v, list):
        return sum(_total(x) for x in v)
    if isinstance(v, dict):
        for k in ("total", "count", "packets", "value"):
            if k in v:
                return _total(v[k])
        return sum(_total(x) for x in v.values())
    return 0


def drop_counters(stats):
    """Drop counters by name from `dpvs-ctl -o json stats` (dpvs-api StatsInfo).

    Read from, in order: "drops_total" {name: N} (summed over workers); a "drops" object
    {name: N}; the sum of "workers"[i]["drops"]. A name that is absent counts as 0."""
    check(isinstance(stats, dict), "stats JSON is not an object")
    for key in ("drops_total", "drops"):
        d = stats.get(key)
        if isinstance(d, dict):
            return {k: _total(v) for k, v in d.items()}
        if isinstance(d, list):  # [{"reason"|"name": ..., "count": N}]
            out = {}
            for item in d:
                if isinstance(item, dict) and (item.get("reason") or item.get("name")):
                    name = item.get("reason") or item.get("name")
                    val = next((item[k] for k in ("count", "packets", "value") if k in item), 0)
                    out[name] = out.get(name, 0) + _total(val)
            return out
    workers = stats.get("workers")
    if isinstance(workers, list):
        out = {}
        for w in workers:
            for k, v in (w.get("drops") or {}).items() if isinstance(w, dict) else ():
                out[k] = out.get(k, 0) + _total(v)
        return out
    raise Fail("stats JSON has no drop counters (no drops_total/drops/workers[].drops; "
               "top-level keys: %s)" % sorted(stats)[:20])


def mbuf_in_use(stats):
    """`mbuf_in_use` from the stats JSON: top level, else the first one found nested."""
    def find(o):
        if isinstance(o, dict):
            if "mbuf_in_use" in o and isinstance(o["mbuf_in_use"], int):
                return o["mbuf_in_use"]
            for v in o.values():
                r = find(v)
                if r is not None:
                    return r
        elif isinstance(o, list):
            for v in o:
                r = find(v)
                if r is not None:
                    return r
        return None
    v = find(stats)
    if v is None:
        raise Fail("stats JSON has no integer 'mbuf_in_use'")
    return v


# ----- the lab ---------------------------------------------------------------------------------

class Lab:
    def __init__(self, prefix, name, workers=2):
        self.prefix = prefix
        self.name = name
        self.workers = workers
        self.state = "/tmp/dpvs-lab-%s" % prefix
        self.logs = os.path.join(self.state, "logs")
        self.sock = os.path.join(self.state, "dpvs.sock")
        self.config = os.path.join(self.state, "dpvs.toml")
        self.dpvs_log = os.path.join(self.logs, "dpvs.log")
        self.dpvs = None
        self.dpvs_rc = None
        self.bg = []
        self.ns = {k: "%s-%s" % (prefix, k) for k in ("lb", "cl", "sw", "rs1", "rs2")}

    # -- set-up / tear-down
    def topology(self, verb, timeout=60):
        return run([os.path.join(SCRIPTS, "topology.sh"), verb, self.prefix], timeout,
                   check_rc=(verb != "down"))

    def up(self, start_dpvs=True):
        require_binaries()
        self.topology("down")  # leftovers of an earlier run with the same prefix
        self.topology("up")
        self.topology("servers")
        if start_dpvs:
            self.write_config()
            self.start_dpvs()
            self.wait_ctl()
            self.warm_up()

    def write_config(self, replace=(), path=None):
        cmd = [PY, os.path.join(SCRIPTS, "labconf.py"), "--prefix", self.prefix,
               "--workers", str(self.workers), "--out", path or self.config]
        for old, new in replace:
            cmd += ["--replace", old, new]
        run(cmd, 10, check_rc=True)
        return path or self.config

    def start_dpvs(self, extra=()):
        os.makedirs(os.path.join(self.state, "pids"), exist_ok=True)
        os.makedirs(self.logs, exist_ok=True)
        cmd = ["ip", "netns", "exec", self.ns["lb"]] + dpvs_cmd() + [
            "--config", self.config, "--ipc", self.sock, "--log-level", "info"] + list(extra)
        say("starting:", " ".join(cmd))
        log = open(self.dpvs_log, "ab")
        # `ip netns exec` execs dpvs: the PID is dpvs's own.
        self.dpvs = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        with open(os.path.join(self.state, "pids", "dpvs.pid"), "w") as f:
            f.write("%d\n" % self.dpvs.pid)

    def dpvs_alive(self):
        return self.dpvs is not None and self.dpvs.poll() is None

    def check_alive(self):
        if not self.dpvs_alive():
            raise Fail("dpvs exited with status %s (log tail: %s)"
                       % (self.dpvs.returncode if self.dpvs else None, self.log_tail(3)))

    def wait_ctl(self, timeout=45):
        last = ["no socket %s" % self.sock]

        def ready():
            self.check_alive()
            if not os.path.exists(self.sock):
                return False
            p = self.ctl(["stats"], json_out=True, timeout=5)
            last[0] = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
            return p.returncode == 0
        t0 = time.monotonic()
        try:
            wait_for(ready, timeout, interval=0.3, what="`dpvs-ctl stats` to answer")
        except Fail as e:
            raise Fail("%s (last: %s)" % (e, last[0]))
        say("control socket answered after %.1fs" % (time.monotonic() - t0))

    def warm_up(self, timeout=30):
        """Until the data path works: a few HTTP requests through the VIP all succeed (with rr
        they reach both real servers, so the daemon resolves both neighbours)."""
        t0 = time.monotonic()
        seen = {}

        def ok():
            self.check_alive()
            r = self.client(["http-seq", VIP_URL, "4", "--timeout", "2"], timeout=20,
                            allow_fail=True)
            seen.update(r["servers"])
            return r["ok"] == 4
        wait_for(ok, timeout, interval=0.5, what="the first HTTP answers through the VIP")
        say("data path ready after %.1fs (warm-up answered by %s)"
            % (time.monotonic() - t0, sorted(seen)))

    def stop_dpvs(self, timeout=10):
        """SIGTERM the daemon; returns its exit status (None if it had to be killed)."""
        if self.dpvs is None:
            return self.dpvs_rc
        if self.dpvs.poll() is None:
            self.dpvs.send_signal(signal.SIGTERM)
            try:
                self.dpvs.wait(timeout)
            except subprocess.TimeoutExpired:
                self.dpvs.kill()
                self.dpvs.wait(5)
                self.dpvs_rc = None
                self.dpvs = None
                return None
        self.dpvs_rc = self.dpvs.returncode
        self.dpvs = None
        return self.dpvs_rc

    def down(self, failed):
        for p in self.bg:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        try:
            self.stop_dpvs()
        except Exception:  # noqa: BLE001 - tear-down goes on regardless
            pass
        if failed and os.path.isdir(self.logs):
            dest = os.path.join(os.environ.get("E2E_LOG_DIR",
                                               os.path.join(_target_dir(), "e2e-logs")),
                                self.name)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(self.logs, dest, dirs_exist_ok=True)
            say("logs kept in", dest)
        self.topology("down")

    def log_tail(self, n=20):
        try:
            with open(self.dpvs_log, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return " | ".join(lines[-n:])
        except OSError:
            return "(no dpvs log)"

    # -- tools
    def ctl(self, args, json_out=True, timeout=10):
        cmd = ctl_cmd() + ["--ipc", self.sock] + (["-o", "json"] if json_out else []) + list(args)
        return run(cmd, timeout)

    def ctl_ok(self, args, json_out=True, timeout=10):
        p = self.ctl(args, json_out, timeout)
        if p.returncode != 0:
            raise Fail("dpvs-ctl %s exited %d: %s" % (" ".join(args), p.returncode,
                                                      p.stderr.strip()[:300]))
        return p.stdout

    def ctl_json(self, args, timeout=10):
        out = self.ctl_ok(args, True, timeout)
        try:
            return json.loads(out)
        except ValueError:
            raise Fail("dpvs-ctl -o json %s printed no JSON: %r" % (" ".join(args), out[:200]))

    def stats(self):
        return self.ctl_json(["stats"])

    def nsexec(self, ns, cmd):
        return ["ip", "netns", "exec", self.ns[ns]] + list(cmd)

    def client(self, args, timeout, allow_fail=False):
        """Run lbclient.py in the client namespace; returns its JSON summary."""
        cmd = self.nsexec("cl", [PY, os.path.join(SCRIPTS, "lbclient.py")] + list(args))
        p = run(cmd, timeout)
        r = last_json(p.stdout, "lbclient %s" % args[0])
        r["_rc"] = p.returncode
        r["_stderr"] = p.stderr
        if not allow_fail and p.returncode != 0 and args[0] != "hold":
            raise Fail("lbclient %s: %d ok, %d failed, errors %s, first: %s" % (
                " ".join(args[:3]), r.get("ok", 0), r.get("failed", 0), r.get("errors"),
                (r.get("first_errors") or [""])[0]))
        return r

    def client_bg(self, args, tag):
        """Start lbclient.py in the background; returns (Popen, stdout path, stderr path)."""
        out = os.path.join(self.logs, "%s.out" % tag)
        err = os.path.join(self.logs, "%s.err" % tag)
        cmd = self.nsexec("cl", [PY, "-u", os.path.join(SCRIPTS, "lbclient.py")] + list(args))
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        self.bg.append(p)
        return p, out, err

    def rs_log(self, rs):
        path = os.path.join(self.logs, "%s.peers.jsonl" % rs)
        out = []
        try:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            pass
        except OSError:
            pass
        return out

    def rs_peers(self, rs, proto):
        """Source IPs (with counts) that real server `rs` saw for `proto`."""
        ips = {}
        for rec in self.rs_log(rs):
            if rec.get("proto") == proto and rec.get("event") in ("request", "datagram",
                                                                  "hold_start"):
                ip = rec["peer"].rsplit(":", 1)[0]
                ips[ip] = ips.get(ip, 0) + 1
        return ips


def client_endpoints(lab, proto, source):
    """The distinct client endpoints ("ip:port") from address `source` that rs1 and rs2 logged
    requests of: each is one connection tuple."""
    seen = set()
    for rs in ("rs1", "rs2"):
        for rec in lab.rs_log(rs):
            if rec.get("proto") == proto and rec.get("event") == "request":
                if rec["peer"].rsplit(":", 1)[0] == source:
                    seen.add(rec["peer"])
    return seen


def check_counts(r, n, what):
    """A counting-mode summary: all n succeeded and both real servers answered."""
    check(r.get("failed") == 0 and r.get("ok") == n,
          "%s: %s ok of %d, errors %s (first: %s)" % (what, r.get("ok"), n, r.get("errors"),
                                                      (r.get("first_errors") or [""])[0]))
    servers = r.get("servers", {})
    check(set(servers) == {"rs1", "rs2"}, "%s: expected both rs1 and rs2 to answer, got %s"
          % (what, servers))


def http_requests(lab, kind, url, n, source, timeout):
    """`n` HTTP requests to `url` (`kind`: "http-seq" or "http-conc"): all must succeed, on both
    real servers, and the real servers must have seen only `source` as the client address."""
    r = lab.client([kind, url, str(n)], timeout=timeout, allow_fail=True)
    say("%s %s %d:" % (url, kind, n), r["ok"], "ok", r["failed"], "failed", r["servers"],
        "in %ss" % r["elapsed_s"])
    check_counts(r, n, "%d requests (%s %s)" % (n, kind, url))
    check(set(r["seen_as"]) == {source},
          "real servers saw sources %s, expected only %s" % (r["seen_as"], source))
    return r


def service_counters(lab, key):
    """The traffic counters of service `key` (e.g. "tcp:10.0.0.100:8080") from `service list
    --stats`."""
    for svc in lab.ctl_json(["service", "list", "--stats"]):
        if svc.get("key") == key:
            return svc.get("stats") or {}
    raise Fail("service %s is not listed" % key)


def direct_service(lab, forward, port=8080):
    """Makes rs1 and rs2 direct-return real servers (topology.sh direct) and adds service
    tcp:VIP:`port` in `forward` mode (dr or tun) over both, at the same port; returns
    (service key, URL)."""
    lab.topology("direct")
    key = "tcp:%s:%d" % (VIP, port)
    lab.ctl_ok(["service", "add", key, "--sched", "rr", "--forward", forward])
    for rs in ("192.168.10.11", "192.168.10.12"):
        lab.ctl_ok(["rs", "add", key, "%s:%d" % (rs, port)])
    return key, "http://%s:%d/" % (VIP, port)


def idle_mbufs(lab, timeout=10):
    """mbuf_in_use once two readings 0.5 s apart agree."""
    prev = [None]

    def stable():
        v = mbuf_in_use(lab.stats())
        same = v == prev[0]
        prev[0] = v
        return (v,) if same else None
    return wait_for(stable, timeout, interval=0.5, what="a stable mbuf_in_use at idle")[0]


def main(body, workers=2, start_dpvs=True, lab_class=None):
    """Runs one test: sets up the lab (`lab_class`, default Lab), runs `body(lab)`, always
    tears down, prints OK or FAIL: reason, and exits accordingly."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    a = ap.parse_args()
    name = os.path.basename(sys.argv[0]).removeprefix("t_").removesuffix(".py")

    def on_term(signum, frame):
        raise SystemExit("FAIL: killed by signal %d (time limit?)" % signum)
    signal.signal(signal.SIGTERM, on_term)

    lab = (lab_class or Lab)(a.prefix, name, workers=workers)
    failed = True
    reason = None
    try:
        lab.up(start_dpvs=start_dpvs)
        body(lab)
        failed = False
    except Fail as e:
        reason = str(e)
    except SystemExit as e:
        reason = str(e.code)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc(file=sys.stdout)
        reason = "%s: %s" % (type(e).__name__, e)
    finally:
        if failed and lab.dpvs is not None:
            say("dpvs log tail:")
            for line in lab.log_tail(15).split(" | "):
                say("  ", line)
        try:
            lab.down(failed)
        except Exception as e:  # noqa: BLE001
            say("tear-down problem:", e)
    if failed:
        print("FAIL: %s" % (reason or "unknown").replace("\n", " ")[:1000], flush=True)
        sys.exit(1)
    print("OK", flush=True)
    sys.exit(0)


def unix_exchange(path, payload, timeout=3.0, close_after_send=False):
    """Send raw bytes to the control socket; return ('reply', line) | ('closed', '') |
    ('timeout', partial)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        try:
            s.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            return ("closed", "")
        if close_after_send:
            return ("sent", "")
        buf = b""
        while b"\n" not in buf:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return ("timeout", buf.decode("utf-8", "replace"))
            except ConnectionResetError:
                return ("closed", buf.decode("utf-8", "replace"))
            if not chunk:
                if buf:
                    return ("reply", buf.decode("utf-8", "replace"))
                return ("closed", "")
            buf += chunk
        return ("reply", buf.split(b"\n", 1)[0].decode("utf-8", "replace"))
    finally:
        s.close()
