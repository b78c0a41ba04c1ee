#!/usr/bin/env python3
"""fragments_tap: IPv4 fragments reach the daemon over a net_tap port and are dropped and
counted as `ip_fragment`; the kernel's frames while that port's link is down are counted and
freed (a net_tap port reports its link, which af_packet does not).

The other tests use net_af_packet, whose kernel packet-fanout group has
PACKET_FANOUT_FLAG_DEFRAG: the kernel reassembles fragments (and holds a lone one) before the
daemon sees them. A net_tap port has no such step: what the kernel transmits on the TAP's
kernel-side interface reaches the DPDK port as it is.

Lab: one namespace PREFIX-lb, nothing else. The daemon (1 worker) owns one port
dpdk0 = net_tap0,iface=PREFIXt0 with 10.9.0.1/24, the VIP 10.9.0.100/32 and the local address
10.9.0.200/32; services udp:10.9.0.100:53 and tcp:10.9.0.100:80, fnat, one real server
10.9.0.20 that does not exist (a static neighbour with an unused MAC, so that forwarded
datagrams leave at once instead of waiting in the ARP queue). From the namespace, an AF_PACKET
socket on the TAP sends to the DPDK port's MAC:
  - 20 valid UDP datagrams to the VIP (control): the UDP service's in_pkts grows by 20 and
    ip_fragment does not move;
  - 20 first fragments (MF, offset 0) and 20 last fragments (offset 185, MF clear) of UDP
    datagrams to VIP:53: ip_fragment grows by >= 40 within 5 s.
Then the daemon still runs and answers, and mbuf_in_use returns to its idle value. Last, the
port's kernel twin dpdk0.kni holds 10.9.0.5/24: with the TAP's kernel side set down (the port's
link goes down), the kernel pings 10.9.0.2 through the twin: its frames (ARP requests) are
counted `port_down` by the kernel bridge, and mbuf_in_use returns to idle again.

Tear-down (also on failure or SIGTERM): SIGTERM/KILL the daemon, then `scripts/topology.sh down
PREFIX`, which kills what is left in PREFIX-lb, deletes the namespace, /var/run/dpdk/PREFIX and
/tmp/dpvs-lab-PREFIX."""

import os
import re

from lab import (PY, Fail, Lab, check, drop_counters, idle_mbufs, main, mbuf_in_use,
                 require_binaries, run, say, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
COUNT = 20
VIP = "10.9.0.100"
SVC_UDP = "udp:10.9.0.100:53"
CLIENT_IP = "10.9.0.2"          # source of the frames (nobody owns it; nothing answers)
CLIENT_MAC = "02:e9:00:00:00:02"
RS_MAC = "02:e9:00:00:00:20"    # static neighbour 10.9.0.20: frames to it are dropped by the kernel

CONFIG = """\
# fragments_tap: one net_tap port, written by tests/e2e/t_fragments_tap.py
[eal]
args = ["--no-huge", "-m", "256", "--no-pci", "--file-prefix", "{prefix}", "--lcores", "(0-1)@(0,1)"]

[workers]
count = 1

[[port]]
name = "dpdk0"
device = "net_tap0,iface={iface}"

[[address]]
addr = "10.9.0.1/24"
port = "dpdk0"

[[address]]
addr = "10.9.0.100/32"
port = "dpdk0"

[[address]]
addr = "10.9.0.200/32"
port = "dpdk0"

[[neigh]]
addr = "10.9.0.20"
mac = "{rs_mac}"
port = "dpdk0"

[[service]]
proto = "udp"
vip = "10.9.0.100"
port = 53
sched = "rr"
forward = "fnat"
laddrs = ["10.9.0.200"]

[[service.rs]]
addr = "10.9.0.20:5353"
weight = 1

[[service]]
proto = "tcp"
vip = "10.9.0.100"
port = 80
sched = "rr"
forward = "fnat"
laddrs = ["10.9.0.200"]

[[service.rs]]
addr = "10.9.0.20:80"
weight = 1

[[kni_address]]
port = "dpdk0"
addr = "10.9.0.5/24"
"""


class TapLab(Lab):
    """The harness's Lab (daemon start/stop, dpvs-ctl, logs, tear-down through
    `topology.sh down PREFIX`) with a single namespace PREFIX-lb and no veths or servers."""

    def __init__(self, prefix, name, workers=1):
        super().__init__(prefix, name, workers=workers)
        self.iface = "%st0" % prefix
        self.ns = {"lb": "%s-lb" % prefix}

    def up(self, start_dpvs=True):
        require_binaries()
        check(len(self.iface) <= 15, "interface name %s is longer than 15 characters (prefix "
              "too long)" % self.iface)
        self.topology("down")  # leftovers of an earlier run with the same prefix
        os.makedirs(os.path.join(self.state, "pids"), exist_ok=True)
        os.makedirs(self.logs, exist_ok=True)
        ns = self.ns["lb"]
        run(["ip", "netns", "add", ns], 10, check_rc=True)
        # No IPv6 on links created from now on (the TAP), so the kernel side does not send
        # MLD reports, DAD and router solicitations at the port (counted unknown_ethertype).
        for key in ("default", "all"):
            run(self.nsexec("lb", ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6"
                                   % key]), 10)
        run(["ip", "-n", ns, "link", "set", "lo", "up"], 10, check_rc=True)
        with open(self.config, "w") as f:
            f.write(CONFIG.format(prefix=self.prefix, iface=self.iface, rs_mac=RS_MAC))
        if start_dpvs:
            self.start_dpvs()
            self.wait_ctl(timeout=20)
            self.tap_up()

    def tap_link(self):
        """(flags, kernel-side MAC) of the TAP in PREFIX-lb, or None if it is absent."""
        p = run(["ip", "-n", self.ns["lb"], "-o", "link", "show", "dev", self.iface], 5)
        m = re.search(r"<([^>]*)>.*link/ether (\S+)", p.stdout)
        if p.returncode != 0 or not m:
            return None
        return m.group(1).split(","), m.group(2)

    def tap_up(self):
        """The TAP exists in PREFIX-lb; it is brought up if the driver left it down."""
        flags, _ = wait_for(self.tap_link, 5, what="interface %s in %s"
                            % (self.iface, self.ns["lb"]))
        if "UP" not in flags:
            say("%s is down (%s); bringing it up" % (self.iface, ",".join(flags)))
            run(["ip", "-n", self.ns["lb"], "link", "set", self.iface, "up"], 5, check_rc=True)

            def is_up():
                link = self.tap_link()
                return link if link and "UP" in link[0] else None
            flags, _ = wait_for(is_up, 5, what="%s to be up" % self.iface)
        say("%s flags: %s" % (self.iface, ",".join(flags)))


def send(lab, kind, dst_mac):
    p = run(lab.nsexec("lb", [PY, os.path.join(HERE, "rawframes.py"), "--iface", lab.iface,
                              "--dst-mac", dst_mac, "--src-mac", CLIENT_MAC, "--kind", kind,
                              "--count", str(COUNT), "--vip", VIP, "--src-ip", CLIENT_IP]),
            15)
    check(p.returncode == 0, "rawframes.py --kind %s exited %d: %s"
          % (kind, p.returncode, (p.stderr.strip().splitlines() or [""])[-1]))


def udp_in_pkts(lab):
    for svc in lab.ctl_json(["service", "list", "--stats"]):
        if isinstance(svc, dict) and svc.get("key") == SVC_UDP:
            return int((svc.get("stats") or {}).get("in_pkts", 0))
    raise Fail("service %s not in `service list --stats`" % SVC_UDP)


def moved(before, after):
    return {k: after[k] - before.get(k, 0) for k in sorted(after) if after[k] != before.get(k, 0)}


def body(lab):
    links = lab.ctl_json(["link", "list"])
    check(isinstance(links, list) and links, "`link list` is empty: %r" % (links,))
    link = next((li for li in links if li.get("name") == "dpdk0"), links[0])
    port_mac = link.get("mac")
    check(isinstance(port_mac, str) and re.fullmatch(r"(?i)([0-9a-f]{2}:){5}[0-9a-f]{2}",
                                                     port_mac),
          "no usable `mac` in `link list`: %r" % (link,))
    kmac = (lab.tap_link() or ([], "?"))[1]
    say("dpdk0: driver %s, MAC %s; kernel side %s: MAC %s%s" % (
        link.get("driver"), port_mac, lab.iface, kmac,
        " (the same)" if kmac.lower() == port_mac.lower() else ""))

    base_mbufs = idle_mbufs(lab)
    s0 = lab.stats()
    d0 = drop_counters(s0)
    in0 = udp_in_pkts(lab)
    say("idle mbuf_in_use %d; drops so far %s" % (base_mbufs, moved({}, d0)))

    # Control: well-formed datagrams are forwarded, not counted as fragments.
    send(lab, "valid_udp", port_mac)
    def forwarded():
        lab.check_alive()
        g = udp_in_pkts(lab) - in0
        return g if g >= COUNT else None
    try:
        n = wait_for(forwarded, 5, interval=0.25,
                     what="%s in_pkts to grow by %d" % (SVC_UDP, COUNT))
    except Fail:
        raise Fail("%d valid UDP datagrams to %s:53: service in_pkts grew by %d only; drops "
                   "that moved: %s" % (COUNT, VIP, udp_in_pkts(lab) - in0,
                                       moved(d0, drop_counters(lab.stats()))))
    d1 = drop_counters(lab.stats())
    say("valid_udp          in_pkts +%d; drops moved %s" % (n, moved(d0, d1)))
    check(d1.get("ip_fragment", 0) == d0.get("ip_fragment", 0),
          "valid UDP datagrams counted as ip_fragment (+%d)"
          % (d1.get("ip_fragment", 0) - d0.get("ip_fragment", 0)))

    # Fragments: first (MF, offset 0) and last (offset 185, MF clear).
    send(lab, "ip_fragment", port_mac)
    send(lab, "ip_fragment_tail", port_mac)
    want = 2 * COUNT

    def grown():
        lab.check_alive()
        d = drop_counters(lab.stats())
        g = d.get("ip_fragment", 0) - d1.get("ip_fragment", 0)
        return (g, d) if g >= want else None
    try:
        g, d2 = wait_for(grown, 5, interval=0.25, what="ip_fragment to grow")
    except Fail:
        d2 = drop_counters(lab.stats())
        raise Fail("sent %d fragments (%d first, %d last) to %s: ip_fragment grew by %d "
                   "(drops that moved: %s; link %s)" % (
                       want, COUNT, COUNT, VIP,
                       d2.get("ip_fragment", 0) - d1.get("ip_fragment", 0), moved(d1, d2),
                       {k: v for k, v in lab.ctl_json(["link", "list"])[0].items()
                        if k.startswith(("rx_", "tx_"))}))
    say("fragments          ip_fragment +%d; drops moved %s" % (g, moved(d1, d2)))
    check(udp_in_pkts(lab) - in0 == n, "fragments reached the UDP service (in_pkts %d -> %d)"
          % (in0 + n, udp_in_pkts(lab)))

    # Still alive and answering; mbufs back to idle.
    lab.check_alive()
    try:
        wait_for(lambda: mbuf_in_use(lab.stats()) <= base_mbufs, 8, interval=0.5,
                 what="mbuf_in_use to return to idle")
    except Fail:
        raise Fail("mbuf_in_use %d after the fragments, %d at idle before (leak?)"
                   % (mbuf_in_use(lab.stats()), base_mbufs))
    s = lab.stats()
    lab.check_alive()
    say("mbuf_in_use back to %d (idle %d); drops total %s" % (
        mbuf_in_use(s), base_mbufs, moved({}, drop_counters(s))))
    kernel_while_port_down(lab, base_mbufs)


def port_down_drops(lab):
    twins = {t["port"]: t for t in lab.ctl_json(["kni", "list"])}
    return twins["dpdk0"]["drops"].get("port_down", 0)


def kernel_while_port_down(lab, base_mbufs):
    """The kernel's frames, sent through the twin while the port's link is down, are counted
    and freed."""
    before = port_down_drops(lab)
    run(["ip", "-n", lab.ns["lb"], "link", "set", lab.iface, "down"], 5, check_rc=True)
    try:
        wait_for(lambda: not next(li for li in lab.ctl_json(["link", "list"])
                                  if li.get("name") == "dpdk0")["link_up"],
                 5, what="the port's link to go down")
        run(lab.nsexec("lb", ["ping", "-c", "6", "-i", "0.5", "-W", "1", "-I", "dpdk0.kni",
                              "10.9.0.2"]), 15)
        lost = port_down_drops(lab) - before
        say("the kernel's frames while the port was down: port_down +%d" % lost)
        check(lost >= 1, "the kernel's frames while the port was down: port_down +%d" % lost)
    finally:
        run(["ip", "-n", lab.ns["lb"], "link", "set", lab.iface, "up"], 5)
    wait_for(lambda: mbuf_in_use(lab.stats()) <= base_mbufs, 8, interval=0.5,
             what="mbuf_in_use to return to idle after the port was down")


if __name__ == "__main__":
    main(body, workers=1, lab_class=TapLab)
