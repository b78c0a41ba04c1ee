#!/usr/bin/env python3
"""nat_tcp: 2 workers; a NAT-mode service added at run time next to the FullNAT one; 300
sequential and 100 concurrent HTTP requests through it: no failure, both real servers used,
the real servers saw the client's own address (not the local address), and their replies,
routed back through the balancer, came from the VIP. The FullNAT service still works beside
it."""

from lab import LADDR, RS_TCP, VIP, VIP_URL, check, http_requests, main, say

NAT_SVC = "tcp:%s:81" % VIP
NAT_URL = "http://%s:81/" % VIP
CLIENT = "10.0.0.2"


def body(lab):
    lab.ctl_ok(["service", "add", NAT_SVC, "--sched", "rr", "--forward", "nat"])
    for rs in RS_TCP.values():
        lab.ctl_ok(["rs", "add", NAT_SVC, rs])

    http_requests(lab, "http-seq", NAT_URL, 300, CLIENT, timeout=120)
    http_requests(lab, "http-conc", NAT_URL, 100, CLIENT, timeout=90)
    for rs in ("rs1", "rs2"):
        peers = lab.rs_peers(rs, "tcp")
        say(rs, "log: sources", peers)
        check(CLIENT in peers, "%s never saw the client %s as a source: %s" % (rs, CLIENT, peers))

    # The FullNAT service beside it is untouched.
    http_requests(lab, "http-seq", VIP_URL, 50, LADDR, timeout=60)

    conns = lab.ctl_json(["conn", "list"])
    say("dpvs-ctl conn list:", len(conns) if isinstance(conns, list) else conns)
    lab.check_alive()


if __name__ == "__main__":
    main(body)
