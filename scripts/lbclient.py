#!/usr/bin/env python3
"""Traffic client for the DPVS-RS lab: run it inside the client namespace.

    lbclient.py http-seq  URL N          [--timeout S] [--body BYTES | --download BYTES]
                                         [--pause S] [-v]
    lbclient.py http-conc URL N          [--timeout S] [--body BYTES | --download BYTES] [-v]
    lbclient.py udp       HOST:PORT N    [--timeout S] [-v]
    lbclient.py hold      URL SECONDS    [--gap-timeout S]
    lbclient.py http-load URL SECONDS    [--threads N] [--timeout S] --log FILE

http-seq   N GET requests one after the other, each on a new connection; --pause S: that
           long between one request's end and the next one's start.
http-conc  N GET requests at once, one thread and one connection each.
           --body BYTES: POST that many bytes instead (uploads: full-size segments), and
           count an answer good only if the server reports receiving all of them.
           --download BYTES: GET /bytes?n=BYTES instead (downloads: full-size segments),
           and count an answer good only if all of them arrive.
http-load  GET requests, each on a new connection, from --threads threads for SECONDS;
           every request is logged to FILE as a JSON line {"t0", "t1" (time.monotonic()
           seconds, comparable across namespaces), "ok", "what" (the server, or the error
           kind)}, so a test can tell which failures coincide with its own changes.
udp        N request/response exchanges, each from its own source port (all sockets are kept
           open until the end, so the ports are distinct), one try each (no retries).
hold       GET /hold?s=SECONDS (when URL has no path): the real server trickles one byte per
           second. Reports whether the connection completed or was cut, and whether the cut was
           clean (RST or early EOF) or a hang (no byte for --gap-timeout seconds). TCP
           keepalive probes every second let a balancer that forgot the connection answer with
           a RST even while the real server is silent.

Bodies from scripts/servers.py look like "rs1 from 192.168.10.200:40001" (UDP: "rs1 q7"):
the summary counts answers per server name and per source address the server saw.

Output: one JSON object on the last stdout line, for example
    {"mode": "http-seq", "n": 10, "ok": 10, "failed": 0, "servers": {"rs1": 5, "rs2": 5},
     "seen_as": {"192.168.10.200": 10}, "errors": {}, "first_errors": [], "elapsed_s": 0.1}
Exit status (counting modes): 0 when every exchange succeeded, 1 otherwise.
hold: 0 completed, 2 cut cleanly (reset/eof), 1 anything else (timeout, connect failure).
-v prints one line per exchange on stderr. Python standard library only.
"""

import argparse
import errno
import http.client
import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

BODY_RE = re.compile(r"^(\S+) from (\d+\.\d+\.\d+\.\d+):(\d+)(?: got (\d+))?")


def error_kind(e):
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, (http.client.RemoteDisconnected, http.client.IncompleteRead,
                      BrokenPipeError)):
        return "eof"
    if isinstance(e, http.client.HTTPException):
        return "bad_http"
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, "oserror").lower()
    return type(e).__name__


class Tally:
    def __init__(self, mode, target, n):
        self.mode, self.target, self.n = mode, target, n
        self.lock = threading.Lock()
        self.ok = 0
        self.servers = Counter()
        self.seen_as = Counter()
        self.errors = Counter()
        self.first_errors = []
        self.t0 = time.monotonic()

    def good(self, server, seen_ip=None):
        with self.lock:
            self.ok += 1
            self.servers[server] += 1
            if seen_ip:
                self.seen_as[seen_ip] += 1

    def bad(self, kind, detail):
        with self.lock:
            self.errors[kind] += 1
            if len(self.first_errors) < 5:
                self.first_errors.append("%s: %s" % (kind, detail))

    def summary(self):
        failed = sum(self.errors.values())
        return {
            "mode": self.mode, "target": self.target, "n": self.n,
            "ok": self.ok, "failed": failed,
            "servers": dict(sorted(self.servers.items())),
            "seen_as": dict(sorted(self.seen_as.items())),
            "errors": dict(sorted(self.errors.items())),
            "first_errors": self.first_errors,
            "elapsed_s": round(time.monotonic() - self.t0, 3),
        }


def parse_url(url):
    u = urlsplit(url if "://" in url else "http://" + url)
    if u.scheme != "http":
        raise SystemExit("only http:// URLs are supported: %s" % url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


def http_once(host, port, path, timeout, tally, verbose, i, upload=0, download=0):
    # http.client directly: no proxy environment variables get in the way.
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        if upload:
            conn.request("POST", path, body=b"u" * upload, headers={"Connection": "close"})
        elif download:
            conn.request("GET", "/bytes?n=%d" % download, headers={"Connection": "close"})
        else:
            conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        raw = resp.read()
        body = raw.decode("utf-8", "replace")
        if download and resp.status == 200 and len(raw) != download:
            tally.bad("short_download", "%d of %d bytes" % (len(raw), download))
            return False, "short_download"
        if resp.status != 200:
            tally.bad("http_%d" % resp.status, body.strip()[:80])
            return False, "http_%d" % resp.status
        m = BODY_RE.match(body)
        if not m:
            tally.bad("bad_body", body.strip()[:80])
            return False, "bad_body"
        if m.group(4) is not None and int(m.group(4)) != upload:
            tally.bad("short_upload", body.strip()[:80])
            return False, "short_upload"
        tally.good(m.group(1), m.group(2))
        if verbose:
            print("%4d %s" % (i, body.strip()), file=sys.stderr, flush=True)
        return True, m.group(1)
    except Exception as e:  # noqa: BLE001 - every failure is counted by kind
        tally.bad(error_kind(e), repr(e))
        if verbose:
            print("%4d error %s" % (i, error_kind(e)), file=sys.stderr, flush=True)
        return False, error_kind(e)
    finally:
        conn.close()


def cmd_http_seq(a):
    host, port, path = parse_url(a.url)
    t = Tally("http-seq", a.url, a.n)
    for i in range(a.n):
        if i and a.pause > 0:
            time.sleep(a.pause)
        http_once(host, port, path, a.timeout, t, a.verbose, i, a.body, a.download)
    return t


def cmd_http_conc(a):
    host, port, path = parse_url(a.url)
    t = Tally("http-conc", a.url, a.n)
    barrier = threading.Barrier(a.n) if a.n > 0 else None

    def run(i):
        try:
            barrier.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        http_once(host, port, path, a.timeout, t, a.verbose, i, a.body, a.download)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(a.n)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + a.timeout + 35
    for th in threads:
        th.join(max(0.0, deadline - time.monotonic()))
    hung = sum(1 for th in threads if th.is_alive())
    if hung:
        t.bad("hung", "%d threads did not finish" % hung)
    return t


def cmd_http_load(a):
    host, port, path = parse_url(a.url)
    t = Tally("http-load", a.url, 0)
    records = [[] for _ in range(a.threads)]
    end = time.monotonic() + a.seconds

    def run(k):
        i = 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            ok, what = http_once(host, port, path, a.timeout, t, False, i)
            records[k].append({"t0": round(t0, 4), "t1": round(time.monotonic(), 4),
                               "ok": ok, "what": what})
            i += 1

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(a.threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(a.seconds + a.timeout + 10)
    with open(a.log, "w") as f:
        for rec in sorted((r for rs in records for r in rs), key=lambda r: r["t0"]):
            f.write(json.dumps(rec) + "\n")
    t.n = sum(len(r) for r in records)
    return t


def cmd_udp(a):
    host, _, port = a.target.rpartition(":")
    port = int(port)
    t = Tally("udp", a.target, a.n)
    socks = []
    ports = set()
    try:
        for i in range(a.n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)  # kept open until the end: every exchange has its own port
            try:
                s.bind(("0.0.0.0", 0))
                ports.add(s.getsockname()[1])
                s.connect((host, port))  # only replies from HOST:PORT are accepted
                s.settimeout(a.timeout)
                payload = "q%d" % i
                s.send(payload.encode())
                reply = s.recv(2048).decode("utf-8", "replace")
                server, _, echoed = reply.partition(" ")
                if echoed != payload:
                    t.bad("bad_reply", reply[:80])
                    continue
                t.good(server)
                if a.verbose:
                    print("%4d from port %d: %s" % (i, s.getsockname()[1], reply),
                          file=sys.stderr, flush=True)
            except Exception as e:  # noqa: BLE001
                t.bad(error_kind(e), repr(e))
                if a.verbose:
                    print("%4d error %s" % (i, error_kind(e)), file=sys.stderr, flush=True)
    finally:
        for s in socks:
            s.close()
    t.distinct_ports = len(ports)
    return t


def cmd_hold(a):
    host, port, path = parse_url(a.url)
    if path == "/":
        path = "/hold?s=%d" % a.seconds
    out = {"mode": "hold", "target": "%s:%d%s" % (host, port, path), "result": None,
           "completed": False, "clean_cut": False, "bytes": 0, "expected": None,
           "server": None, "peer": None, "local_port": None, "elapsed_s": None, "error": None}
    t0 = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(a.gap_timeout)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, val in (("TCP_KEEPIDLE", 1), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 5)):
            if hasattr(socket, opt):
                s.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), val)
        try:
            s.connect((host, port))
        except Exception as e:  # noqa: BLE001
            out["result"] = "connect_failed"
            out["error"] = error_kind(e)
            return out
        out["local_port"] = s.getsockname()[1]
        s.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (path, host)).encode())
        buf = b""
        body = 0
        headers_done = False
        while True:
            try:
                chunk = s.recv(4096)
            except (socket.timeout, TimeoutError):
                out["result"] = "timeout"
                break
            except ConnectionResetError:
                out["result"] = "reset"
                break
            except OSError as e:
                out["result"] = "error"
                out["error"] = error_kind(e)
                break
            if not chunk:
                done = headers_done and out["expected"] is not None and body >= out["expected"]
                out["result"] = "completed" if done else "eof"
                break
            if not headers_done:
                buf += chunk
                if b"\r\n\r\n" not in buf:
                    continue
                head, _, rest = buf.partition(b"\r\n\r\n")
                headers_done = True
                lines = head.decode("latin-1").split("\r\n")
                out["status"] = lines[0]
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    k, v = k.strip().lower(), v.strip()
                    if k == "content-length":
                        out["expected"] = int(v)
                    elif k == "x-server":
                        out["server"] = v
                    elif k == "x-peer":
                        out["peer"] = v
                print(json.dumps({"event": "headers", "server": out["server"],
                                  "peer": out["peer"], "local_port": out["local_port"]}),
                      file=sys.stderr, flush=True)
                body += len(rest)
            else:
                body += len(chunk)
            out["bytes"] = body
            if out["expected"] is not None and body >= out["expected"]:
                # Everything arrived: the connection is complete whatever closes it.
                out["result"] = "completed"
                break
    finally:
        s.close()
        out["elapsed_s"] = round(time.monotonic() - t0, 3)
    return out


def main():
    ap = argparse.ArgumentParser(description="DPVS-RS lab traffic client",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("http-seq", "http-conc"):
        p = sub.add_parser(name)
        p.add_argument("url")
        p.add_argument("n", type=int)
        p.add_argument("--timeout", type=float, default=5.0)
        p.add_argument("--body", type=int, default=0, metavar="BYTES",
                       help="POST a body of this many bytes instead of a GET")
        p.add_argument("--download", type=int, default=0, metavar="BYTES",
                       help="GET /bytes?n=BYTES and check that all of them arrive")
        p.add_argument("-v", "--verbose", action="store_true")
        p.add_argument("--pause", type=float, default=0.0, metavar="S",
                       help="seconds between requests (http-seq)")
    p = sub.add_parser("http-load")
    p.add_argument("url")
    p.add_argument("seconds", type=float)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--log", required=True)
    p = sub.add_parser("udp")
    p.add_argument("target", metavar="HOST:PORT")
    p.add_argument("n", type=int)
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("-v", "--verbose", action="store_true")
    p = sub.add_parser("hold")
    p.add_argument("url")
    p.add_argument("seconds", type=int)
    p.add_argument("--gap-timeout", type=float, default=4.0,
                   help="a silence this long counts as a hang (default 4 s)")
    a = ap.parse_args()

    if a.cmd == "hold":
        out = cmd_hold(a)
        out["completed"] = out["result"] == "completed"
        out["clean_cut"] = out["result"] in ("reset", "eof")
        print(json.dumps(out, sort_keys=True), flush=True)
        return 0 if out["completed"] else (2 if out["clean_cut"] else 1)

    t = {"http-seq": cmd_http_seq, "http-conc": cmd_http_conc, "udp": cmd_udp,
         "http-load": cmd_http_load}[a.cmd](a)
    s = t.summary()
    if hasattr(t, "distinct_ports"):
        s["distinct_ports"] = t.distinct_ports
    print(json.dumps(s, sort_keys=True), flush=True)
    return 0 if s["failed"] == 0 and s["ok"] == t.n else 1


if __name__ == "__main__":
    sys.exit(main())
