#!/usr/bin/env python3
"""tun_tcp: 2 workers; a TUN service added at run time, over real servers that receive IP-in-IP
(decapsulated in user space by scripts/ipip_decap.py, as this kernel has no ipip module) and
answer the client directly. 300 sequential and 100 concurrent HTTP requests: no failure, both
real servers used, each saw the client's own address, and every request came through the
tunnel (the decapsulators' counts). Then 20 uploads of 200 kB: the client's full-size segments
no longer fit the link with the outer header, so the balancer answers them with ICMP
"fragmentation needed" (counted as too_big) and the client's TCP shrinks its segments: every
upload arrives whole."""

import os

from lab import check, direct_service, drop_counters, http_requests, main, say, service_counters

CLIENT = "10.0.0.2"


def decapsulated(lab):
    total = 0
    for rs in ("rs1", "rs2"):
        try:
            with open(os.path.join(lab.logs, "%s.ipip.count" % rs)) as f:
                total += int(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
    return total


def body(lab):
    key, url = direct_service(lab, "tun")
    http_requests(lab, "http-seq", url, 300, CLIENT, timeout=120)
    http_requests(lab, "http-conc", url, 100, CLIENT, timeout=90)
    n = decapsulated(lab)
    say("packets decapsulated by the real servers:", n)
    # A request is at least SYN, ACK, request, FIN (and the ACKs of the answer).
    check(n >= 400 * 4, "only %d packets came through the tunnel for 400 requests" % n)

    r = lab.client(["http-seq", url, "20", "--body", "200000", "--timeout", "15"], timeout=200)
    say("uploads:", r["ok"], "ok", r["servers"], "in %ss" % r["elapsed_s"])
    drops = drop_counters(lab.stats())
    say("too_big drops (answered with fragmentation needed):", drops.get("too_big", 0))
    check(drops.get("too_big", 0) > 0,
          "full-size uploads never hit the tunnel MTU: the test does not test PMTU discovery")

    stats = service_counters(lab, key)
    say(key, "counters:", stats)
    check(stats.get("out_pkts", 0) == 0,
          "TUN replies must bypass the balancer, yet it forwarded %s" % stats.get("out_pkts"))
    lab.check_alive()


if __name__ == "__main__":
    main(body)
