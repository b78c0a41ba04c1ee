#!/usr/bin/env python3
"""A real server for the DPVS-RS lab: run one inside each real-server namespace.

    servers.py --name rs1 [--http-port 8080] [--udp-port 5353] [--log FILE]

HTTP (ThreadingHTTPServer, HTTP/1.0, one request per connection):
    GET /         -> "rs1 from 192.168.10.200:40001\n"  (the server's name and the peer it saw)
    GET /hold?s=N -> Content-Length N, then one byte per second for N seconds (a long-lived
                     connection); headers X-Server and X-Peer name the server and the peer
    GET /health   -> "ok\n"
    GET /bytes?n=N -> N bytes (at least the first line): "rs1 from 192.168.10.200:40001\n",
                     then dots (a download of full-size segments)
UDP echo: a datagram "PAYLOAD" is answered with "rs1 PAYLOAD".

Every peer seen is appended to --log as one JSON object per line:
    {"t": 1700000000.1, "server": "rs1", "proto": "tcp", "peer": "192.168.10.200:40001",
     "event": "request", "path": "/"}
events: "request" (tcp), "hold_start", "hold_end" (with "result": "completed" or an error
name), "datagram" (udp). Tests read it to check which source address the balancer used.
Python standard library only.
"""

import argparse
import json
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class PeerLog:
    def __init__(self, path, name):
        self.name = name
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1) if path else None

    def write(self, proto, peer, event, **extra):
        rec = {"t": round(time.time(), 3), "server": self.name, "proto": proto,
               "peer": "%s:%d" % (peer[0], peer[1]), "event": event}
        rec.update(extra)
        line = json.dumps(rec, sort_keys=True)
        if self.f:
            with self.lock:
                self.f.write(line + "\n")
                self.f.flush()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Many concurrent connections arrive at once in the tests: a deep accept queue.
    request_queue_size = 1024


def make_handler(name, log):
    class Handler(BaseHTTPRequestHandler):
        server_version = "dpvs-lab-rs"
        sys_version = ""
        protocol_version = "HTTP/1.0"

        def log_message(self, fmt, *args):  # quiet: the peer log is what matters
            pass

        def _send(self, code, body, extra_headers=()):
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Server", name)
            self.send_header("X-Peer", "%s:%d" % self.client_address[:2])
            for k, v in extra_headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlsplit(self.path)
            peer = self.client_address[:2]
            if url.path == "/hold":
                self._hold(url, peer)
                return
            log.write("tcp", peer, "request", path=url.path)
            if url.path == "/health":
                self._send(200, b"ok\n")
            elif url.path == "/":
                self._send(200, ("%s from %s:%d\n" % (name, peer[0], peer[1])).encode())
            elif url.path == "/bytes":
                self._send(200, self._bytes(url, peer))
            else:
                self._send(404, ("%s: not found\n" % name).encode())

        def do_POST(self):
            # An upload: the body is read whole and its length reported, so the client can
            # tell that every byte arrived.
            peer = self.client_address[:2]
            try:
                n = max(0, int(self.headers.get("Content-Length", "0")))
            except ValueError:
                n = 0
            got = 0
            while got < n:
                chunk = self.rfile.read(min(65536, n - got))
                if not chunk:
                    break
                got += len(chunk)
            log.write("tcp", peer, "request", path=self.path, body=got)
            self._send(200, ("%s from %s:%d got %d\n" % (name, peer[0], peer[1], got)).encode())

        def _bytes(self, url, peer):
            try:
                n = int(parse_qs(url.query).get("n", ["0"])[0])
            except ValueError:
                n = 0
            head = ("%s from %s:%d\n" % (name, peer[0], peer[1])).encode()
            return head + b"." * max(0, min(n, 64 << 20) - len(head))

        def _hold(self, url, peer):
            try:
                secs = int(parse_qs(url.query).get("s", ["5"])[0])
            except ValueError:
                secs = 5
            secs = max(0, min(secs, 3600))
            log.write("tcp", peer, "hold_start", path=self.path, seconds=secs)
            result = "completed"
            try:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(secs))
                self.send_header("X-Server", name)
                self.send_header("X-Peer", "%s:%d" % peer)
                self.end_headers()
                self.wfile.flush()
                for _ in range(secs):
                    time.sleep(1.0)
                    self.wfile.write(b".")
                    self.wfile.flush()
            except OSError as e:
                result = type(e).__name__
            log.write("tcp", peer, "hold_end", path=self.path, result=result)

    return Handler


def udp_loop(sock, name, log):
    while True:
        try:
            data, peer = sock.recvfrom(65535)
        except OSError:
            return
        log.write("udp", peer, "datagram", size=len(data))
        try:
            sock.sendto(name.encode() + b" " + data, peer)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--http-port", type=int, default=8080)
    ap.add_argument("--udp-port", type=int, default=5353)
    ap.add_argument("--log", default=None, help="append one JSON line per peer seen")
    args = ap.parse_args()

    log = PeerLog(args.log, args.name)

    httpd = Server((args.bind, args.http_port), make_handler(args.name, log))
    usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    usock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    usock.bind((args.bind, args.udp_port))
    threading.Thread(target=udp_loop, args=(usock, args.name, log), daemon=True).start()

    def stop(signum, frame):
        # shutdown() must not run on the serve_forever thread: hand it off.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("%s: http on %s:%d, udp on %s:%d" % (args.name, args.bind, args.http_port,
                                               args.bind, args.udp_port), flush=True)
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()
    usock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
