#!/usr/bin/env python3
"""kni: the kernel bridge end to end, two workers, af_packet ports (issue 10).

1. The config gives dpdk0's twin 10.0.0.5/24 and a route; from the client, ping 10.0.0.5 and
   hold a TCP conversation with a server on the balancer host bound to it (through
   dpdk0.kni), while HTTP through the FullNAT VIP keeps working, all at once.
2. `kni addr add/del` and `kni route add/del` at run time; `kni list` shows desired = actual.
3. Interference from outside: `ip addr flush`, `ip addr del`, `ip route del` and
   `ip link set dpdk0.kni down`, each undone within one second (measured, printed); the TCP
   test passes again afterwards.
4. Bad input from the kernel side: frames larger than the port can carry (written on a twin
   whose MTU was raised) are dropped and counted (`malformed`); the mbuf pool is back to
   idle. (Frames the kernel sends while the port is down, `port_down`, are checked in
   fragments_tap: net_af_packet reports no link state.)
5. A second dpvs with the same instance exits at once with the holder's PID in its one line;
   the first keeps serving. Another instance on other devices runs beside it with a twin of
   its own, and stops cleanly without taking the first's twins or NetworkManager files; one
   whose port has the same name as the first's (so the same twin) is refused in one line. `kill -9`, restart: exactly one twin per port, and it works.
   A clean stop leaves no twin and no NetworkManager or udev file of ours.
"""

import os
import signal
import subprocess
import time

from lab import (PY, SCRIPTS, VIP_URL, check, ctl_cmd, dpvs_cmd, idle_mbufs, main, run, say,
                 wait_for)

KERNEL_IP = "10.0.0.5"
KERNEL_URL = "http://%s:8000/" % KERNEL_IP
ROUTE = "10.9.0.0/16"
TWIN = "dpdk0.kni"
NM_FILES = ["/etc/NetworkManager/conf.d/99-dpvs-kni-unmanaged.conf",
            "/etc/udev/rules.d/85-dpvs-kni-unmanaged.rules"]
KNI_CONF = """
[[kni_address]]
port = "dpdk0"
addr = "10.0.0.5/24"

[[kni_route]]
port = "dpdk0"
prefix = "10.9.0.0/16"
via = "10.0.0.2"
"""


def start(lab):
    lab.write_config()
    with open(lab.config, "a") as f:
        f.write(KNI_CONF)
    lab.start_dpvs()
    lab.wait_ctl()
    lab.warm_up()


def ip_lb(lab, *args):
    return run(["ip", "-n", lab.ns["lb"]] + list(args), 10)


def twin_addrs(lab):
    out = ip_lb(lab, "-o", "-4", "addr", "show", "dev", TWIN).stdout
    return {line.split()[3] for line in out.splitlines()}


def twin_routes(lab):
    return ip_lb(lab, "-4", "route", "show", "dev", TWIN).stdout


def twin_up(lab):
    out = ip_lb(lab, "-o", "link", "show", "dev", TWIN).stdout
    return "<" in out and "UP" in out.split("<")[1].split(">")[0].split(",")


def twins(lab):
    out = ip_lb(lab, "-o", "link").stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
                  if ".kni" in line)


def kni_list(lab):
    return {t["port"]: t for t in lab.ctl_json(["kni", "list"])}


def kernel_server(lab):
    """An HTTP server on the balancer host, bound to the twin's address."""
    log = os.path.join(lab.logs, "kernel.peers.jsonl")
    p = subprocess.Popen(lab.nsexec("lb", [PY, "-u", os.path.join(SCRIPTS, "servers.py"),
                                           "--name", "kernel", "--bind", KERNEL_IP,
                                           "--http-port", "8000", "--udp-port", "8001",
                                           "--log", log]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lab.bg.append(p)

    probe = "import socket;socket.create_connection(('%s', 8000), 1).close()" % KERNEL_IP

    def listening():
        return run(lab.nsexec("lb", [PY, "-c", probe]), 5).returncode == 0
    wait_for(listening, 10, what="the kernel-side server")


def both_at_once(lab, what):
    """Ping the twin's address and hold a TCP conversation with the kernel's server while
    HTTP goes through the VIP, all at once."""
    hold, out, _ = lab.client_bg(["hold", "http://%s:8000" % KERNEL_IP, "4"], "hold-%s" % what)
    ping = subprocess.Popen(lab.nsexec("cl", ["ping", "-c", "10", "-i", "0.2", "-W", "1",
                                              KERNEL_IP]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    r = lab.client(["http-seq", VIP_URL, "100"], timeout=60)
    k = lab.client(["http-seq", KERNEL_URL, "50"], timeout=60)
    ping_out, _ = ping.communicate(timeout=20)
    hold.wait(20)
    with open(out) as f:
        held = f.read()
    say("%s: VIP %d/100, kernel server %d/50, ping: %s, hold: %s" % (
        what, r["ok"], k["ok"], ping_out.strip().splitlines()[-2], held.strip()[-80:]))
    check(r["ok"] == 100, "%s: HTTP through the VIP: %s" % (what, r["errors"]))
    check(k["ok"] == 50 and set(k["servers"]) == {"kernel"},
          "%s: HTTP to the kernel's server: %s %s" % (what, k["servers"], k["errors"]))
    check(" 0% packet loss" in ping_out, "%s: ping %s: %s" % (what, KERNEL_IP, ping_out[-200:]))
    check('"completed": true' in held, "%s: the held conversation: %s" % (what, held[-200:]))


def restored_within(lab, what, damage, healed, limit=1.0):
    damage()
    t0 = time.monotonic()
    took = wait_for(lambda: healed() and time.monotonic() - t0, limit + 4, interval=0.01,
                    what="%s to be undone" % what)
    say("%-22s undone in %.0f ms" % (what, took * 1000))
    check(took <= limit, "%s was undone only after %.2f s" % (what, took))


def interference(lab):
    want = "%s/24" % KERNEL_IP
    restored_within(lab, "ip addr flush", lambda: ip_lb(lab, "addr", "flush", "dev", TWIN),
                    lambda: want in twin_addrs(lab))
    restored_within(lab, "ip addr del", lambda: ip_lb(lab, "addr", "del", want, "dev", TWIN),
                    lambda: want in twin_addrs(lab))
    restored_within(lab, "ip route del", lambda: ip_lb(lab, "route", "del", ROUTE),
                    lambda: ROUTE in twin_routes(lab))
    restored_within(lab, "ip link set down",
                    lambda: ip_lb(lab, "link", "set", TWIN, "down"),
                    lambda: twin_up(lab) and want in twin_addrs(lab) and ROUTE in twin_routes(lab))
    t = kni_list(lab)["dpdk0"]
    check(t["restores"] >= 4, "kni list counts the restores: %s" % t["restores"])


def runtime_changes(lab):
    lab.ctl_ok(["kni", "addr", "add", "10.0.0.6/24", "--port", "dpdk0"], json_out=False)
    lab.ctl_ok(["kni", "route", "add", "10.8.0.0/16", "--port", "dpdk0"], json_out=False)
    wait_for(lambda: "10.0.0.6/24" in twin_addrs(lab) and "10.8.0.0/16" in twin_routes(lab),
             3, what="the runtime additions in the kernel")
    t = kni_list(lab)["dpdk0"]
    check(set(t["desired_addrs"]) == {"10.0.0.5/24", "10.0.0.6/24"}, "desired %s" % t)
    check(set(t["desired_addrs"]) <= set(t["actual_addrs"]), "actual %s" % t)
    r = lab.ctl(["kni", "addr", "add", "10.0.0.1/24", "--port", "dpdk0"], json_out=False)
    check(r.returncode != 0 and "the balancer's address 10.0.0.1/24" in r.stderr
          and len(r.stderr.strip().splitlines()) == 1,
          "kni addr add of the data plane's address: %s" % r.stderr)
    lab.ctl_ok(["kni", "addr", "del", "10.0.0.6/24", "--port", "dpdk0"], json_out=False)
    lab.ctl_ok(["kni", "route", "del", "10.8.0.0/16", "--port", "dpdk0"], json_out=False)
    wait_for(lambda: "10.0.0.6/24" not in twin_addrs(lab)
             and "10.8.0.0/16" not in twin_routes(lab), 3, what="the removals in the kernel")
    say("runtime kni addr/route add and del applied; the data plane's address refused")


def bad_kernel_frames(lab, idle):
    # The kernel never sends runts (it refuses them itself), but a twin whose MTU someone
    # raised sends frames no port can carry.
    ip_lb(lab, "link", "set", TWIN, "mtu", "4000")
    big = ("import socket;s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);s.bind(('%s',0))\n"
           "f=bytes.fromhex('02d00000000202d000000001')+b'\\x08\\x00'+bytes(1800)\n"
           "for i in range(20): s.send(f)" % TWIN)
    try:
        run(lab.nsexec("lb", [PY, "-c", big]), 10, check_rc=True)
        drops = wait_for(lambda: (lambda d: d if d.get("malformed", 0) >= 20 else None)(
            kni_list(lab)["dpdk0"]["drops"]), 5, what="oversized frames from the kernel counted")
    finally:
        ip_lb(lab, "link", "set", TWIN, "mtu", "1500")
    say("oversized frames from the kernel: %s" % drops)
    lab.warm_up()
    now = idle_mbufs(lab)
    check(now <= idle + 64, "mbufs in use %d, idle was %d: frames leaked" % (now, idle))


OTHER_CONF = """
[eal]
args = ["--no-huge", "-m", "256", "--no-pci", "--file-prefix", "%(prefix)s-%(tag)s",
        "--lcores", "(0-1)@(0,1)"]
[workers]
count = 1
[control]
instance = "%(prefix)s-%(tag)s"
[[port]]
name = "%(port)s"
device = "net_af_packet0,iface=%(iface)s"
[[address]]
addr = "10.98.0.1/24"
port = "%(port)s"
[[kni_address]]
addr = "10.98.0.5/24"
port = "%(port)s"
"""


def other_instance(lab, port, iface, tag):
    """Starts another dpvs, instance `<prefix>-<tag>`, with one port on `iface`."""
    conf = os.path.join(lab.state, "other-%s.toml" % tag)
    with open(conf, "w") as f:
        f.write(OTHER_CONF % {"prefix": lab.prefix, "tag": tag, "port": port, "iface": iface})
    sock = os.path.join(lab.state, "other-%s.sock" % tag)
    log = open(os.path.join(lab.logs, "dpvs-other-%s.log" % tag), "ab")
    p = subprocess.Popen(lab.nsexec("lb", dpvs_cmd() + ["--config", conf, "--ipc", sock]),
                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE, text=True)
    log.close()
    lab.bg.append(p)
    return p, sock


def side_by_side(lab):
    """Two instances on distinct ports run side by side; the twin of a port name is claimed."""
    ip_lb(lab, "link", "add", "kb0", "type", "veth", "peer", "name", "kb1")
    ip_lb(lab, "link", "set", "kb0", "up")
    ip_lb(lab, "link", "set", "kb1", "up")
    nm_files = [f for f in NM_FILES if os.path.exists(f)]
    other, sock = other_instance(lab, "b0", "kb0", "b")

    def other_twin():
        if other.poll() is not None:
            raise AssertionError("the other instance exited: %s" % other.stderr.read())
        r = run(ctl_cmd() + ["--ipc", sock, "-o", "json", "kni", "list"], 5)
        return r.returncode == 0 and "10.98.0.5/24" in r.stdout
    wait_for(other_twin, 45, what="the other instance's twin b0.kni with its address")
    check(twins(lab) == ["b0.kni", "dpdk0.kni", "dpdk1.kni"], "twins: %s" % twins(lab))
    lab.warm_up()
    # A third, named apart but with a port called dpdk0: its twin would be the first's.
    third, _ = other_instance(lab, "dpdk0", "kb1", "c")
    _, err = third.communicate(timeout=20)
    lines = [x for x in err.splitlines() if x.strip()]
    say("a port named like the first's, other instance: exit %d: %s" % (third.returncode, lines))
    check(third.returncode != 0 and len(lines) == 1
          and ("kernel twin dpdk0.kni is held by another dpvs (PID %d" % lab.dpvs.pid) in lines[0],
          "the same twin name under another instance: exit %d, %s" % (third.returncode, lines))
    other.send_signal(signal.SIGTERM)
    check(other.wait(15) == 0, "the other instance did not stop cleanly")
    check(twins(lab) == ["dpdk0.kni", "dpdk1.kni"], "twins after the other stopped: %s"
          % twins(lab))
    gone = [f for f in nm_files if not os.path.exists(f)]
    check(not gone, "the other instance removed files the first still uses: %s" % gone)
    ip_lb(lab, "link", "del", "kb0")
    lab.warm_up()
    say("another instance ran beside with its own twin and stopped leaving the first's alone")


def second_and_restart(lab):
    pid = lab.dpvs.pid
    p = run(lab.nsexec("lb", dpvs_cmd() + ["--config", lab.config, "--ipc",
                                           os.path.join(lab.state, "b.sock")]), 20)
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    say("second dpvs, same instance: exit %d: %s" % (p.returncode, lines))
    check(p.returncode != 0 and len(lines) == 1 and ("PID %d" % pid) in lines[0],
          "second dpvs: exit %d, %s" % (p.returncode, lines))
    lab.check_alive()
    lab.dpvs.kill()
    lab.dpvs.wait(10)
    lab.dpvs = None
    say("after kill -9: twins %s" % twins(lab))
    lab.start_dpvs()
    lab.wait_ctl()
    lab.warm_up()
    check(twins(lab) == ["dpdk0.kni", "dpdk1.kni"], "twins after restart: %s" % twins(lab))


def body(lab):
    check(os.path.exists("/dev/net/tun"), "no /dev/net/tun: the twins cannot be made")
    start(lab)
    kernel_server(lab)
    wait_for(lambda: "%s/24" % KERNEL_IP in twin_addrs(lab), 5, what="the twin's address")
    links = {l["name"]: l for l in lab.ctl_json(["link", "list"])}
    say("link list kni: %s" % {n: l.get("kni") for n, l in links.items()})
    check(str(links["dpdk0"].get("kni", "")).startswith(TWIN), "link list names the twin")
    idle = idle_mbufs(lab)
    both_at_once(lab, "first")
    runtime_changes(lab)
    interference(lab)
    both_at_once(lab, "after the interference")
    bad_kernel_frames(lab, idle)
    side_by_side(lab)
    second_and_restart(lab)
    both_at_once(lab, "after kill -9 and restart")
    rc = lab.stop_dpvs()
    check(rc == 0, "dpvs did not stop cleanly: %s" % rc)
    check(twins(lab) == [], "twins left after a clean stop: %s" % twins(lab))
    left = [f for f in NM_FILES if os.path.exists(f)]
    check(not left, "files of ours left after a clean stop: %s" % left)


if __name__ == "__main__":
    main(body, start_dpvs=False)
