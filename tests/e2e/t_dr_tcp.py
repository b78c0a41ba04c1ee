#!/usr/bin/env python3
"""dr_tcp: 2 workers; a DR service added at run time next to the FullNAT one, over real servers
that hold the VIP on lo and answer the client on a path that bypasses the balancer. 300
sequential and 100 concurrent HTTP requests and 20 uploads of 200 kB: no failure, both real
servers used, each saw the client's own address, and the balancer forwarded only the inbound
direction (its out counters stay 0). The FullNAT service still works beside it."""

from lab import (LADDR, VIP_URL, check, client_endpoints, direct_service, http_requests, main,
                 say, service_counters)

CLIENT = "10.0.0.2"


def body(lab):
    key, url = direct_service(lab, "dr")
    http_requests(lab, "http-seq", url, 300, CLIENT, timeout=120)
    http_requests(lab, "http-conc", url, 100, CLIENT, timeout=90)
    r = lab.client(["http-seq", url, "20", "--body", "200000", "--timeout", "15"], timeout=200)
    say("uploads:", r["ok"], "ok", r["servers"])

    stats = service_counters(lab, key)
    say(key, "counters:", stats)
    # The client's kernel may reuse a port whose previous connection the server closed: that
    # SYN re-opens our entry (still in FIN_WAIT, the server's FIN being invisible in DR), as
    # LVS does, so the count is of distinct tuples, not of requests.
    tuples = client_endpoints(lab, "tcp", CLIENT)
    say("distinct client endpoints the real servers saw:", len(tuples))
    check(len(tuples) >= 400, "expected about 420 client endpoints, saw %d" % len(tuples))
    check(stats.get("conns", 0) >= len(tuples),
          "expected >= %d connections (one per client tuple), got %s" % (len(tuples), stats))
    check(stats.get("in_pkts", 0) > 0, "no inbound packets counted: %s" % stats)
    check(stats.get("out_pkts", 0) == 0,
          "DR replies must bypass the balancer, yet it forwarded %s" % stats.get("out_pkts"))

    # The FullNAT service beside it is untouched.
    http_requests(lab, "http-seq", VIP_URL, 50, LADDR, timeout=60)
    lab.check_alive()


if __name__ == "__main__":
    main(body)
