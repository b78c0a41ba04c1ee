#!/usr/bin/env python3
"""schedulers: every scheduler through a FullNAT VIP with 2 workers and real kernel TCP stacks
(issue 11). The service's scheduler is changed at run time with `dpvs-ctl service edit`; each
phase sends sequential HTTP requests from the client (one address, a new source port each) and
checks zero failures and the distribution the scheduler promises:

- wlc: three connections held open on rs1 (rs2 drained), rs2 back: the next three held
  connections all go to rs2 (an established connection weighs 256 inactive ones); one
  connection held on a server, 200 paced requests all go to the other;
- lc, rr, wrr: both real servers answer;
- sh, mh, conhash: one client address lands on one real server; mh-port and conhash-5tuple
  spread its connections over both;
- fo: only the heaviest real server, until it is drained, then only the other;
- persistence (rr with --persistent 60): every connection of the client on one server; off
  again, both;
- an upper connection limit on rs1 (10): rs1 takes no more connections once it holds 10 (its
  TIME_WAIT entries count), rs2 takes the rest;
- `service list` shows the scheduler, its flags and persistence as ipvsadm does, and
  `service list --rate` shows the connection rate.
"""

import time

from held import finish_hold
from lab import RS_TCP, SVC_TCP, VIP_URL, Fail, check, main, say, wait_for

N = 300
WLC_HOLD_S = 8
LONG_HOLD_S = 12  # over 200 paced requests' time, with room for a slow machine


def requests(lab, n, what, pause=0.0):
    """`n` sequential requests: all must succeed; returns {server: count}."""
    r = lab.client(["http-seq", VIP_URL, str(n), "--pause", str(pause)], timeout=120,
                   allow_fail=True)
    say("%-28s %d ok, %d failed, %s in %ss" % (what, r["ok"], r["failed"], r["servers"],
                                               r["elapsed_s"]))
    check(r["failed"] == 0 and r["ok"] == n, "%s: %s ok of %d, errors %s (first: %s)"
          % (what, r["ok"], n, r["errors"], (r["first_errors"] or [""])[0]))
    return r["servers"]


def sched(lab, *args):
    lab.ctl_ok(["service", "edit", SVC_TCP] + list(args), json_out=False)


def weight(lab, rs, w):
    lab.ctl_ok(["rs", "edit", SVC_TCP, RS_TCP[rs], "--weight", str(w)], json_out=False)


def one_server(servers, what):
    check(len(servers) == 1, "%s: expected one real server, got %s" % (what, servers))
    return next(iter(servers))


def both(servers, what):
    check(set(servers) == {"rs1", "rs2"}, "%s: expected both real servers, got %s"
          % (what, servers))


def hold_starts(lab):
    """How many held connections each real server has seen start."""
    return {rs: sum(1 for rec in lab.rs_log(rs) if rec.get("event") == "hold_start")
            for rs in ("rs1", "rs2")}


def hold(lab, k, secs=None):
    """Opens held connection `k` and waits until it reaches a real server; returns
    (process, stdout path, server)."""
    before = hold_starts(lab)
    proc, out, _ = lab.client_bg(["hold", VIP_URL, str(secs or WLC_HOLD_S), "--gap-timeout", "4"],
                                 "wlc-hold-%d" % k)

    def where():
        now = hold_starts(lab)
        grown = [rs for rs in now if now[rs] > before[rs]]
        if not grown and proc.poll() is not None:
            raise Fail("held connection %d ended before reaching a server" % k)
        return grown[0] if grown else None
    return proc, out, wait_for(where, 10, interval=0.05, what="held connection %d" % k)


def wlc_with_held_connections(lab):
    """Three connections held on rs1 while rs2 is drained; then rs2 back: the next three
    go to rs2 (rs1's 3 established weigh more than rs2's 0, 1, 2), where rr would alternate.
    Each is established before the next is scheduled, so every worker's view has it."""
    sched(lab, "--sched", "wlc")
    weight(lab, "rs2", 0)
    held = [hold(lab, k) for k in range(3)]
    check([h[2] for h in held] == ["rs1"] * 3, "with rs2 drained: %s" % [h[2] for h in held])
    weight(lab, "rs2", 1)
    time.sleep(0.1)  # well over a view's round
    more = [hold(lab, k) for k in range(3, 6)]
    say("wlc: held on %s, then %s" % ([h[2] for h in held], [h[2] for h in more]))
    check([h[2] for h in more] == ["rs2"] * 3, "wlc sent new connections to the busier rs1:"
          " %s after three held on rs1" % [h[2] for h in more])
    for proc, out, _ in held + more:
        r = finish_hold(proc, out, WLC_HOLD_S + 20)
        check(r["result"] == "completed", "a held connection: %s" % r)


def wlc_with_a_held_connection(lab):
    """One connection held on a server, then 200 requests one after the other: all go to the
    other server (its inactive TIME_WAIT entries stay under 256, the weight of one established
    connection). The requests are paced 20 ms apart: a view is exact for its own worker's picks
    but reads the other worker's connections ending up to a round (5 ms) late, and back to back
    requests would each find the previous one still established on the other worker."""
    proc, out, held_on = hold(lab, 6, LONG_HOLD_S)
    other = "rs2" if held_on == "rs1" else "rs1"
    time.sleep(0.1)
    servers = requests(lab, 200, "wlc, one held on %s" % held_on, pause=0.02)
    check(servers == {other: 200}, "wlc sent new connections to %s while %s held an established"
          " one" % (servers, held_on))
    h = finish_hold(proc, out, LONG_HOLD_S + 20)
    check(h["result"] == "completed", "the held connection: %s" % h)


def hashing(lab):
    for name, flags, spread in [("sh", None, False), ("mh", None, False),
                                ("mh", "mh-port", True), ("conhash", None, False),
                                ("conhash", "conhash-5tuple", True)]:
        args = ["--sched", name] + (["--sched-flags", flags] if flags else [])
        sched(lab, *args)
        what = " ".join(args[1:])
        servers = requests(lab, N, what)
        if spread:
            both(servers, what)
        else:
            one_server(servers, what + " from one client address")


def failover(lab):
    sched(lab, "--sched", "fo")
    weight(lab, "rs2", 5)
    check(requests(lab, 100, "fo, rs2 heavier") == {"rs2": 100}, "fo did not keep to rs2")
    weight(lab, "rs2", 0)
    check(requests(lab, 100, "fo, rs2 drained") == {"rs1": 100}, "fo did not fail over to rs1")
    weight(lab, "rs2", 1)


def persistence(lab):
    sched(lab, "--sched", "rr", "--persistent", "60", "--netmask", "255.255.255.0")
    listed = lab.ctl(["service", "list"], json_out=False).stdout
    check("rr persistent 60 mask 255.255.255.0" in listed, "service list: %s" % listed)
    one_server(requests(lab, N, "rr persistent 60"), "persistent rr")
    sched(lab, "--persistent", "0")
    both(requests(lab, 100, "rr, persistence off"), "rr without persistence")


def upper_limit(lab):
    lab.ctl_ok(["rs", "edit", SVC_TCP, RS_TCP["rs1"], "--upper", "10"], json_out=False)
    listed = {r["addr"]: r for s in lab.ctl_json(["service", "list"]) for r in s["rs"]}
    check(listed[RS_TCP["rs1"]].get("upper") == 10 and listed[RS_TCP["rs1"]].get("lower") == 7,
          "rs1's limits as listed: %s" % listed[RS_TCP["rs1"]])
    servers = requests(lab, 100, "rs1 limited to 10")
    # rs1 already holds TIME_WAIT connections of the phases before: over its limit at once,
    # give or take what the other worker opened before its view caught up.
    check(servers.get("rs1", 0) <= 2 and servers.get("rs2") >= 98,
          "rs1 is over its upper limit, yet took %s" % servers)
    lab.ctl_ok(["rs", "edit", SVC_TCP, RS_TCP["rs1"], "--upper", "0"], json_out=False)


def body(lab):
    wlc_with_held_connections(lab)
    wlc_with_a_held_connection(lab)
    sched(lab, "--sched", "lc")
    both(requests(lab, N, "lc"), "lc")
    for name in ("rr", "wrr"):
        sched(lab, "--sched", name)
        both(requests(lab, N, name), name)
    hashing(lab)
    sched(lab, "--sched", "sh", "--sched-flags", "sh-fallback,sh-port")
    listed = lab.ctl(["service", "list"], json_out=False).stdout
    check("sh (sh-fallback,sh-port)" in listed, "service list: %s" % listed)
    failover(lab)
    persistence(lab)
    upper_limit(lab)
    rates = lab.ctl(["service", "list", "--rate"], json_out=False).stdout
    say("service list --rate:\n" + rates)
    svc = next(s for s in lab.ctl_json(["service", "list", "--rate"]) if s["key"] == SVC_TCP)
    check(svc["rates"]["cps"] > 0, "no connection rate after the traffic: %s" % svc["rates"])
    lab.check_alive()


if __name__ == "__main__":
    main(body)
