#!/usr/bin/env python3
"""icmp_pmtu: path MTU discovery through the balancer, FullNAT and NAT, with real kernels
generating the ICMP "fragmentation needed" and real kernels consuming its translation.

Where the error comes from. A host whose own link is narrow never gets a packet too big for
it: its TCP announces an MSS that fits (1360 on a 1400 link) and its peer sends no more. So
the literal set-up "the real server's link at 1400" produces no error at all, and the
balancer's translation would go untested. An error comes from a router that must forward a
packet onto a narrower link than both ends know of: `scripts/topology.sh pmtu` makes two,
each a forwarding kernel whose interface onto the far host's link has MTU 1400 while the host
keeps 1500 (and announces MSS 1460), and routes to them through the balancer:
  - the client namespace routes to a second client, c2 (10.0.2.2), behind its eth2;
  - the switch namespace routes to a third real server, rs3 (192.168.30.13), behind its p-rs3.

Checks, each a single 200 kB transfer that only completes if the translated error reaches
the sender's kernel (Linux has no black-hole detection by default: without it, the sender
retransmits full-size segments until the client's timeout):
  - download, FullNAT (VIP:80, rs1/rs2) then NAT (VIP:81, rs1): c2 fetches 200 kB; the router
    in the client namespace sends "fragmentation needed" (MTU 1400) to the VIP; the balancer
    relays it to the real server (FullNAT: from the local address, quoting the real server's
    segment to it; NAT: from the router, quoting the segment to c2); the real server's kernel
    caches MTU 1400 towards the local address (FullNAT) or c2 (NAT), seen with `ip route get`;
  - upload, FullNAT (VIP:8081, rs3) then NAT (VIP:82, rs3): the client posts 200 kB; the router
    in the switch namespace sends "fragmentation needed" to the local address (FullNAT) or to
    the client (NAT, routed through the balancer); the client's kernel receives the
    translation from the VIP (its InDestUnreachs rises) and caches MTU 1400 towards the VIP;
  - the routers' OutDestUnreachs rose (the errors were real), no `bad_icmp_error` drop, the
    daemon alive.
"""

import os
import re

from lab import LADDR, PY, SCRIPTS, VIP, check, drop_counters, last_json, main, run, say

CLIENT = "10.0.0.2"
C2 = "10.0.2.2"
RS3 = "192.168.30.13"
SIZE = 200000


def icmp_counter(lab, ns, name):
    """The `Icmp: name` counter of namespace `ns` (/proc/net/snmp)."""
    out = run(lab.nsexec(ns, ["cat", "/proc/net/snmp"]), 5, check_rc=True).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("Icmp:")]
    check(len(rows) >= 2, "no Icmp counters in %s's /proc/net/snmp" % ns)
    return int(dict(zip(rows[0][1:], rows[1][1:]))[name])


def cached_mtu(lab, ns, dst):
    """The path MTU namespace `ns` caches towards `dst` (None when it caches none)."""
    out = run(lab.nsexec(ns, ["ip", "route", "get", dst]), 5, check_rc=True).stdout
    m = re.search(r"\bmtu (\d+)", out)
    return int(m.group(1)) if m else None


def transfer(lab, ns, args, what):
    """lbclient.py in namespace `ns`: one transfer that must succeed; returns its summary."""
    cmd = lab.nsexec(ns, [PY, os.path.join(SCRIPTS, "lbclient.py")] + args)
    r = last_json(run(cmd, 60).stdout, "lbclient %s" % what)
    say("%s: %s ok, errors %s, servers %s, seen as %s, in %ss" % (
        what, r["ok"], r["errors"], r["servers"], r["seen_as"], r["elapsed_s"]))
    check(r["ok"] == r["n"] and r["failed"] == 0, "%s did not complete: %s (first: %s)"
          % (what, r["errors"], (r["first_errors"] or [""])[0]))
    return r


def setup(lab):
    lab.topology("pmtu")
    lab.ns["c2"] = "%s-c2" % lab.prefix
    lab.ns["rs3"] = "%s-rs3" % lab.prefix
    for args in (
        ["route", "add", "10.0.2.0/24", "--port", "dpdk0", "--via", CLIENT],
        ["route", "add", "192.168.30.0/24", "--port", "dpdk1", "--via", "192.168.10.254"],
        ["service", "add", "tcp:%s:81" % VIP, "--sched", "rr", "--forward", "nat"],
        ["rs", "add", "tcp:%s:81" % VIP, "192.168.10.11:8080"],
        ["service", "add", "tcp:%s:8081" % VIP, "--sched", "rr", "--forward", "fnat"],
        ["laddr", "add", "tcp:%s:8081" % VIP, LADDR],
        ["rs", "add", "tcp:%s:8081" % VIP, "%s:8080" % RS3],
        ["service", "add", "tcp:%s:82" % VIP, "--sched", "rr", "--forward", "nat"],
        ["rs", "add", "tcp:%s:82" % VIP, "%s:8080" % RS3],
    ):
        lab.ctl_ok(args)


def download(lab, port, mode, seen_as, rs_dst):
    """c2 downloads through the narrow hop in the client namespace."""
    routers = icmp_counter(lab, "cl", "OutDestUnreachs")
    got = {rs: icmp_counter(lab, rs, "InDestUnreachs") for rs in ("rs1", "rs2")}
    r = transfer(lab, "c2", ["http-seq", "http://%s:%d/" % (VIP, port), "2",
                             "--download", str(SIZE), "--timeout", "15"],
                 "%s download of %d bytes to %s" % (mode, SIZE, C2))
    check(set(r["seen_as"]) == {seen_as}, "%s: the real servers saw %s, expected %s"
          % (mode, r["seen_as"], seen_as))
    sent = icmp_counter(lab, "cl", "OutDestUnreachs") - routers
    say("%s: the client-side router sent %d destination unreachable" % (mode, sent))
    check(sent > 0, "%s: the router sent no fragmentation needed: the download did not "
          "test path MTU discovery" % mode)
    for rs in r["servers"]:
        n = icmp_counter(lab, rs, "InDestUnreachs") - got[rs]
        mtu = cached_mtu(lab, rs, rs_dst)
        say("%s: %s received %d destination unreachable, caches mtu %s towards %s"
            % (mode, rs, n, mtu, rs_dst))
        check(n > 0, "%s: %s received no translated error" % (mode, rs))
        check(mtu == 1400, "%s: %s caches mtu %s towards %s, expected 1400"
              % (mode, rs, mtu, rs_dst))


def upload(lab, port, mode, seen_as):
    """The client uploads to rs3 through the narrow hop in the switch namespace."""
    run(lab.nsexec("cl", ["ip", "route", "flush", "cache"]), 5, check_rc=True)
    check(cached_mtu(lab, "cl", VIP) is None, "the client still caches a path MTU to the VIP")
    routers = icmp_counter(lab, "sw", "OutDestUnreachs")
    got = icmp_counter(lab, "cl", "InDestUnreachs")
    r = transfer(lab, "cl", ["http-seq", "http://%s:%d/" % (VIP, port), "1",
                             "--body", str(SIZE), "--timeout", "15"],
                 "%s upload of %d bytes to %s" % (mode, SIZE, RS3))
    check(r["servers"] == {"rs3": 1}, "%s: answered by %s, expected rs3" % (mode, r["servers"]))
    check(set(r["seen_as"]) == {seen_as}, "%s: rs3 saw %s, expected %s"
          % (mode, r["seen_as"], seen_as))
    sent = icmp_counter(lab, "sw", "OutDestUnreachs") - routers
    n = icmp_counter(lab, "cl", "InDestUnreachs") - got
    mtu = cached_mtu(lab, "cl", VIP)
    say("%s: the real-server-side router sent %d destination unreachable; the client received "
        "%d and caches mtu %s towards the VIP" % (mode, sent, n, mtu))
    check(sent > 0, "%s: the router sent no fragmentation needed: the upload did not test "
          "path MTU discovery" % mode)
    check(n > 0, "%s: the client's kernel received no translated error" % mode)
    check(mtu == 1400, "%s: the client caches mtu %s towards the VIP, expected 1400" % (mode, mtu))


def body(lab):
    setup(lab)
    download(lab, 80, "FullNAT", LADDR, LADDR)
    download(lab, 81, "NAT", C2, C2)
    upload(lab, 8081, "FullNAT", LADDR)
    upload(lab, 82, "NAT", CLIENT)
    drops = drop_counters(lab.stats())
    say("drops:", {k: v for k, v in drops.items() if v})
    check(drops.get("bad_icmp_error", 0) == 0,
          "%d ICMP errors counted bad_icmp_error" % drops.get("bad_icmp_error", 0))
    lab.check_alive()


if __name__ == "__main__":
    main(body)
