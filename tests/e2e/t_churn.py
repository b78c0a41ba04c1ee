#!/usr/bin/env python3
"""churn: about 200 control changes in 30 s while HTTP flows through the VIP (four client
threads, a new connection per request). Weights move, a real server is deleted and added back,
a second local address comes and goes, another service, routes and neighbours are added and
deleted. No request may fail except one in flight while the service's real server was deleted
under it (issue 16: clients were refused on tuples of cut connections; a removed local
address cut the connections it carried)."""

import json
import os
import time

from lab import LADDR, RS_TCP, SVC_TCP, VIP_URL, check, main, say

LOAD_S = 34
CHURN_S = 30
CHANGES = 200
# A failure this close to a deletion of one of the service's real servers is that deletion's.
SLACK_S = 0.25
LADDR2 = "192.168.10.201"
OTHER = "tcp:10.0.0.100:81"


def cycle():
    """One round of changes: (dpvs-ctl arguments, deletion of SVC_TCP's real server?)."""
    rs1, rs2 = RS_TCP["rs1"], RS_TCP["rs2"]
    return [
        (["rs", "edit", SVC_TCP, rs1, "--weight", "3"], False),
        (["rs", "del", SVC_TCP, rs2], True),
        (["rs", "add", SVC_TCP, rs2], False),
        (["laddr", "add", SVC_TCP, LADDR2], False),
        (["service", "add", OTHER, "--sched", "wrr"], False),
        (["rs", "add", OTHER, rs1], False),
        (["rs", "edit", SVC_TCP, rs1, "--weight", "1"], False),
        (["route", "add", "192.168.20.0/24", "--port", "dpdk1", "--via", "192.168.10.254"],
         False),
        (["neigh", "add", "192.168.10.99", "02:00:00:00:99:99", "--port", "dpdk1"], False),
        (["laddr", "del", SVC_TCP, LADDR2], False),
        (["service", "del", OTHER], False),
        (["route", "del", "192.168.20.0/24"], False),
        (["neigh", "del", "192.168.10.99"], False),
    ]


def churn(lab):
    """Runs the changes, paced over CHURN_S; returns the times of the real-server deletions."""
    ops = []
    while len(ops) < CHANGES:
        ops += cycle()
    gap = CHURN_S / len(ops)
    deletions = []
    t_start = time.monotonic()
    for i, (args, deletes) in enumerate(ops):
        t0 = time.monotonic()
        lab.ctl_ok(args, json_out=False, timeout=15)
        if deletes:
            deletions.append((t0, time.monotonic()))
        time.sleep(max(0.0, t_start + (i + 1) * gap - time.monotonic()))
    say("%d changes in %.1fs" % (len(ops), time.monotonic() - t_start))
    return len(ops), deletions


def excused(rec, deletions):
    return any(rec["t0"] - SLACK_S <= d1 and d0 <= rec["t1"] + SLACK_S for d0, d1 in deletions)


def body(lab):
    lab.ctl_ok(["addr", "add", LADDR2 + "/32", "--port", "dpdk1"], json_out=False)
    log = os.path.join(lab.logs, "load.jsonl")
    proc, out, err = lab.client_bg(["http-load", VIP_URL, str(LOAD_S), "--threads", "4",
                                    "--timeout", "5", "--log", log], "load")
    time.sleep(2)
    n_changes, deletions = churn(lab)
    proc.wait(LOAD_S + 30)
    with open(log) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    failed = [r for r in recs if not r["ok"]]
    unexcused = [r for r in failed if not excused(r, deletions)]
    kinds = {}
    for r in unexcused:
        kinds[r["what"]] = kinds.get(r["what"], 0) + 1
    say("%d requests, %d failed: %d during a deletion of their service's real server, %d not %s"
        % (len(recs), len(failed), len(failed) - len(unexcused), len(unexcused), kinds))
    check(n_changes >= CHANGES, "only %d changes" % n_changes)
    check(len(recs) >= 1000, "only %d requests in %ds" % (len(recs), LOAD_S))
    check(not unexcused, "%d requests failed with no deletion under them: %s (first: %s)"
          % (len(unexcused), kinds, unexcused[0] if unexcused else None))
    servers = {}
    for r in recs:
        if r["ok"]:
            servers[r["what"]] = servers.get(r["what"], 0) + 1
    check(set(servers) == {"rs1", "rs2"}, "both real servers answered: %s" % servers)
    # What the daemon counts agrees: the service's real servers are both back, and the
    # laddr that came and went left the pools consistent (the next requests all work).
    r = lab.client(["http-seq", VIP_URL, "50"], timeout=60)
    check(r["ok"] == 50, "after the churn: %s" % r)
    seen = lab.client(["http-conc", VIP_URL, "20"], timeout=60)["seen_as"]
    check(set(seen) <= {LADDR}, "sources after the churn: %s" % seen)
    lab.check_alive()


if __name__ == "__main__":
    main(body)
