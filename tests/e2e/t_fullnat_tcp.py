#!/usr/bin/env python3
"""fullnat_tcp: 2 workers; 1,000 sequential + 200 concurrent HTTP requests through the VIP:
no failure, both real servers used, and the real servers saw only the local address as source.
The daemon then shuts down cleanly on SIGTERM (exit status 0)."""

from lab import LADDR, VIP_URL, check, check_counts, main, say


def body(lab):
    r = lab.client(["http-seq", VIP_URL, "1000"], timeout=240, allow_fail=True)
    say("http-seq 1000:", r["ok"], "ok", r["failed"], "failed", r["servers"],
        "in %ss" % r["elapsed_s"])
    check_counts(r, 1000, "1000 sequential requests")
    check(set(r["seen_as"]) == {LADDR},
          "real servers saw sources %s, expected only %s" % (r["seen_as"], LADDR))

    r = lab.client(["http-conc", VIP_URL, "200"], timeout=90, allow_fail=True)
    say("http-conc 200:", r["ok"], "ok", r["failed"], "failed", r["servers"],
        "in %ss" % r["elapsed_s"])
    check_counts(r, 200, "200 concurrent requests")
    check(set(r["seen_as"]) == {LADDR},
          "real servers saw sources %s, expected only %s" % (r["seen_as"], LADDR))

    total = 0
    for rs in ("rs1", "rs2"):
        peers = lab.rs_peers(rs, "tcp")
        say(rs, "log: sources", peers)
        check(set(peers) == {LADDR}, "%s log shows sources %s, expected only %s"
              % (rs, peers, LADDR))
        total += sum(peers.values())
    check(total >= 1200, "real-server logs hold %d requests, expected at least 1200" % total)

    p = lab.ctl(["service", "list", "--stats"], json_out=False)
    say("dpvs-ctl service list --stats (exit %d):" % p.returncode)
    for line in p.stdout.splitlines()[:12]:
        say("  ", line)

    lab.check_alive()
    rc = lab.stop_dpvs(timeout=10)
    check(rc is not None, "dpvs did not exit within 10 s of SIGTERM")
    check(rc == 0, "dpvs exited with status %s on SIGTERM, expected 0" % rc)


if __name__ == "__main__":
    main(body)
