#!/usr/bin/env python3
"""garbage_frames: malformed frames sent from the client namespace with a raw AF_PACKET socket
(truncated IP, IHL < 5, bad total length, bad IP checksum, unknown
ethertype, TCP SYN+FIN to the VIP, truncated TCP header): the daemon stays up, the named drop
counters of `dpvs-ctl -o json stats` grow by at least what was sent (an unknown ethertype is
well formed: it goes to the port's kernel twin, counted as `kernel_pkts`), traffic still flows, and
`mbuf_in_use` returns to its idle value.

IP fragments are not sent here: DPDK's af_packet driver joins a kernel packet-fanout group with
PACKET_FANOUT_FLAG_DEFRAG, so the kernel reassembles fragments (and holds a lone one) before the
daemon sees them. t_fragments_tap.py sends them over a TAP port instead."""

import os
import time

from lab import (PY, VIP_URL, Fail, check, drop_counters, idle_mbufs, main, mbuf_in_use, run, say,
                 wait_for)

COUNT = 20
# kind -> drop counters that may account for it (the first is the expected one)
KINDS = [
    ("truncated", ["truncated"]),
    ("ihl_short", ["bad_ip_header"]),
    ("bad_total_length", ["bad_ip_header", "truncated"]),
    ("bad_ip_checksum", ["bad_ip_checksum"]),
    # Well-formed but not the data plane's: to the port's kernel twin (kni is on by default).
    ("unknown_ethertype", ["to_kernel", "unknown_ethertype"]),
    ("syn_fin", ["bad_tcp_flags"]),
    ("tcp_truncated", ["truncated", "bad_l4_header"]),
]
HERE = os.path.dirname(os.path.abspath(__file__))


def counts(lab):
    """Drop counters by reason, and `to_kernel`: frames the workers handed to a kernel twin."""
    stats = lab.stats()
    c = drop_counters(stats)
    c["to_kernel"] = sum(w.get("kernel_pkts", 0) for w in stats.get("workers", []))
    return c


def body(lab):
    mac = run([os.path.join(HERE, "..", "..", "scripts", "topology.sh"), "mac", lab.prefix,
               "lbc"], 10, check_rc=True).stdout.strip()
    check(mac, "no MAC for lbc")
    time.sleep(1.0)  # let the warm-up traffic settle
    problems = []
    try:
        base_mbufs = idle_mbufs(lab)
    except Fail as e:
        problems.append(str(e))
        base_mbufs = None
    say("lbc MAC %s; idle mbuf_in_use %s" % (mac, base_mbufs))

    for kind, counters in KINDS:
        before = counts(lab)
        run(lab.nsexec("cl", [PY, os.path.join(HERE, "rawframes.py"), "--iface", "eth0",
                              "--dst-mac", mac, "--kind", kind, "--count", str(COUNT)]),
            30, check_rc=True)

        def grown():
            after = counts(lab)
            d = sum(after.get(c, 0) - before.get(c, 0) for c in counters)
            return (d, after) if d >= COUNT else None
        try:
            d, after = wait_for(grown, 5, interval=0.25, what="drop counters to grow")
            say("%-18s +%d %s" % (kind, d, " ".join(
                "%s=%d(+%d)" % (c, after.get(c, 0), after.get(c, 0) - before.get(c, 0))
                for c in counters)))
        except Fail:
            after = counts(lab)
            deltas = {c: after.get(c, 0) - before.get(c, 0) for c in counters}
            moved = {k: after[k] - before.get(k, 0) for k in after
                     if after[k] != before.get(k, 0)}
            problems.append("%s: sent %d, %s grew by %s (counters that moved: %s)"
                            % (kind, COUNT, "/".join(counters), deltas, moved))
        lab.check_alive()

    lab.check_alive()
    r = lab.client(["http-seq", VIP_URL, "4"], timeout=30, allow_fail=True)
    if r["ok"] != 4:
        problems.append("HTTP through the VIP fails after the garbage: %s" % r["errors"])

    if base_mbufs is None:
        for pr in problems:
            say("problem:", pr)
        raise Fail("; ".join(problems))
    try:
        def back():
            v = mbuf_in_use(lab.stats())
            return (v,) if v <= base_mbufs else None
        wait_for(back, 10, interval=0.5, what="mbuf_in_use to return to idle")
        say("mbuf_in_use back to <= %d" % base_mbufs)
    except Fail:
        problems.append("mbuf_in_use %d after the garbage, %d at idle before (leak?)"
                        % (mbuf_in_use(lab.stats()), base_mbufs))
    lab.check_alive()
    if problems:
        for pr in problems:
            say("problem:", pr)
        raise Fail("; ".join(problems))


if __name__ == "__main__":
    main(body)
