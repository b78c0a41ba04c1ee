#!/usr/bin/env python3
"""fullnat_tcp: 2 workers; 1,000 sequential + 200 concurrent HTTP requests through the VIP:
no failure, both real servers used, and the real servers saw only the local address as source.
The daemon then shuts down cleanly on SIGTERM (exit status 0)."""

from lab import LADDR, VIP_URL, check, http_requests, main, say


def body(lab):
    http_requests(lab, "http-seq", VIP_URL, 1000, LADDR, timeout=240)
    http_requests(lab, "http-conc", VIP_URL, 200, LADDR, timeout=90)

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
