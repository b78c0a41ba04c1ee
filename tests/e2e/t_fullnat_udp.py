#!/usr/bin/env python3
"""fullnat_udp: 200 UDP exchanges through udp:10.0.0.100:53, each from its own source port:
no failure, both real servers used, the real servers saw only the local address as source."""

from lab import LADDR, VIP_UDP, check, check_counts, main, say

N = 200


def body(lab):
    r = lab.client(["udp", VIP_UDP, str(N), "--timeout", "2"], timeout=120, allow_fail=True)
    say("udp %d:" % N, r["ok"], "ok", r["failed"], "failed", r["servers"],
        "distinct ports", r.get("distinct_ports"), "in %ss" % r["elapsed_s"])
    check(r.get("distinct_ports") == N, "only %s distinct source ports" % r.get("distinct_ports"))
    check_counts(r, N, "%d UDP exchanges" % N)

    total = 0
    for rs in ("rs1", "rs2"):
        peers = lab.rs_peers(rs, "udp")
        say(rs, "log: udp sources", peers)
        check(set(peers) == {LADDR}, "%s log shows UDP sources %s, expected only %s"
              % (rs, peers, LADDR))
        total += sum(peers.values())
    check(total >= N, "real-server logs hold %d datagrams, expected at least %d" % (total, N))
    lab.check_alive()


if __name__ == "__main__":
    main(body)
