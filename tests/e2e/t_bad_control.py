#!/usr/bin/env python3
"""bad_control: malformed request lines sent straight to the control socket each get an error
reply (or, for an oversized line, a closed connection), an idle client does not block the
server, 64 idle or half-sent clients do not lock a 65th out, a real server that is the VIP is
refused in one line, so are bad scheduler options (names, flags, netmasks, Maglev table
sizes, limits upside down) whether dpvs-ctl or the daemon catches them, and the daemon keeps serving: `dpvs-ctl stats` still works afterwards."""

import socket
import time

from lab import Fail, check, main, say, unix_exchange

# Each gets a reply line that reports an error.
MUST_REPLY = [
    ("plain text", b"hello daemon\n"),
    ("broken JSON", b'{"cmd": \n'),
    ("unknown command", b'{"no_such_command": {"x": 1}}\n'),
    ("JSON array", b"[1, 2, 3]\n"),
    ("JSON null", b"null\n"),
    ("wrong types", b'{"service": 42, "rs": [null], "weight": "heavy"}\n'),
    ("invalid UTF-8", b"\xff\xfe\x00\x01garbage\x80\n"),
    # Well-formed envelopes (dpvs-api proto.rs) with bad contents.
    ("wrong version", b'{"version": 99, "request": {"op": "stats"}}\n'),
    ("unknown op", b'{"version": 1, "request": {"op": "self_destruct"}}\n'),
    ("bad args", b'{"version": 1, "request": {"op": "rs_edit", "args": {"service": 42}}}\n'),
    ("weight overflow", b'{"version": 1, "request": {"op": "rs_edit", "args": {"service": '
                        b'"tcp:10.0.0.100:80", "rs": {"addr": "192.168.10.11:8080", '
                        b'"weight": 99999999999}}}}\n'),
    ("no such service", b'{"version": 1, "request": {"op": "rs_del", "args": {"service": '
                        b'"tcp:10.9.9.9:1", "addr": "10.9.9.9:2"}}}\n'),
]


def is_error(reply):
    low = reply.lower().replace(" ", "")
    return "err" in low or '"ok":false' in low or "invalid" in low or "unknown" in low


def body(lab):
    problems = []
    for what, payload in MUST_REPLY:
        kind, reply = unix_exchange(lab.sock, payload, timeout=3)
        say("%-16s -> %s %r" % (what, kind, reply[:160]))
        if kind != "reply":
            problems.append("%s: no reply (%s)" % (what, kind))
        elif not is_error(reply):
            problems.append("%s: reply is not an error: %r" % (what, reply[:120]))
        lab.check_alive()

    # Oversized line: an error reply, or the daemon closes the connection; never a hang.
    kind, reply = unix_exchange(lab.sock, b"x" * (4 << 20) + b"\n", timeout=5)
    say("%-16s -> %s %r" % ("4 MiB line", kind, reply[:160]))
    if kind == "timeout":
        problems.append("4 MiB line: neither an answer nor a close within 5 s")
    elif kind == "reply" and not is_error(reply):
        problems.append("4 MiB line: reply is not an error: %r" % reply[:120])
    lab.check_alive()

    # Half a request, then hang up; an empty connection.
    unix_exchange(lab.sock, b'{"cmd": "sta', close_after_send=True)
    unix_exchange(lab.sock, b"", close_after_send=True)
    lab.check_alive()

    # An idle client holds a connection open while another asks for stats.
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.settimeout(3)
    try:
        idle.connect(lab.sock)
        idle.sendall(b'{"cm')  # half a line, never finished
        p = lab.ctl(["stats"], json_out=True, timeout=8)
        if p.returncode != 0:
            problems.append("dpvs-ctl stats failed while a client idled: %s" % p.stderr.strip())
    except Fail as e:
        problems.append("dpvs-ctl stats while a client idled: %s" % e)
    finally:
        idle.close()

    # 64 clients that connect and never finish a request hold every slot: a 65th client and
    # `dpvs-ctl stats` are served all the same (issue 16).
    held = []
    try:
        for i in range(64):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(3)
            c.connect(lab.sock)
            if i % 2:
                c.sendall(b'{"version": 1, "req')
            held.append(c)
        time.sleep(0.3)
        kind, reply = unix_exchange(lab.sock, b'{"version": 1, "request": {"op": "stats"}}\n',
                                    timeout=5)
        say("65th client with 64 held -> %s %r" % (kind, reply[:80]))
        if kind != "reply" or '"ok":' not in reply:
            problems.append("a 65th client was not served with 64 held: %s %r"
                            % (kind, reply[:120]))
        p = lab.ctl(["stats"], json_out=True, timeout=8)
        if p.returncode != 0:
            problems.append("dpvs-ctl stats failed with 64 clients held: %s" % p.stderr.strip())
    finally:
        for c in held:
            c.close()

    # A real server that is the VIP is refused, in one line naming both.
    p = lab.ctl(["rs", "add", "tcp:10.0.0.100:80", "10.0.0.100:8080"], json_out=False)
    lines = p.stderr.strip().splitlines()
    say("rs add of the VIP -> exit %d %s" % (p.returncode, lines))
    if p.returncode == 0 or len(lines) != 1 or "VIP of tcp:10.0.0.100:80" not in lines[0]:
        problems.append("rs add of the VIP: exit %d, %s" % (p.returncode, lines))

    # Scheduler options the daemon or the CLI must refuse, each in one line: (args, exit
    # status, text the line must hold). Exit 2: refused by dpvs-ctl itself (usage).
    svc = "tcp:10.0.0.100:80"
    for args, status, text in [
        (["service", "edit", svc, "--sched", "fastest"], 2, "fastest"),
        (["service", "edit", svc, "--sched", "sh", "--sched-flags", "mh-port"], 1, "mh-port"),
        (["service", "edit", svc, "--sched", "rr", "--sched-flags", "no-such-flag"], 1,
         "no-such-flag"),
        (["service", "edit", svc, "--persistent", "60", "--netmask", "255.0.255.0"], 2,
         "netmask"),
        (["service", "edit", svc, "--persistent", "60", "--netmask", "33"], 2, "netmask"),
        (["service", "edit", svc, "--sched", "mh", "--mh-table-size", "65536"], 1, "prime"),
        (["rs", "edit", svc, "192.168.10.11:8080", "--upper", "5", "--lower", "10"], 1, "lower"),
    ]:
        p = lab.ctl(args, json_out=False)
        lines = p.stderr.strip().splitlines()
        say("dpvs-ctl %s -> exit %d %s" % (" ".join(args), p.returncode, lines))
        if p.returncode != status or len(lines) != 1 or text not in lines[0]:
            problems.append("dpvs-ctl %s: exit %d (expected %d), %s"
                            % (" ".join(args), p.returncode, status, lines))
    listed = lab.ctl(["service", "list"], json_out=False).stdout
    if "TCP  10.0.0.100:80 rr\n" not in listed:
        problems.append("a refused change changed the service: %s" % listed)

    lab.check_alive()
    stats = lab.stats()
    check(isinstance(stats, dict), "stats JSON is not an object")
    say("dpvs-ctl -o json stats still answers after the bad requests")
    if problems:
        for pr in problems:
            say("problem:", pr)
        raise Fail("; ".join(problems))


if __name__ == "__main__":
    main(body)
