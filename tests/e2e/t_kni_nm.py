#!/usr/bin/env python3
"""kni_nm: a real NetworkManager (Debian's) holds no grip on the kernel twins (issue 10).

NetworkManager runs in the balancer's namespace (scripts/nm_lab.sh: a system D-Bus, udevd in
the namespace, NetworkManager reading /etc/NetworkManager/conf.d, where dpvs writes its
keyfile) with a profile that would take every ethernet device with DHCP (the lab's veths lbc
and lbr are kept out of it, so the data plane's links stay as they are). Then dpvs starts
with 10.0.0.5/24 on dpdk0's twin. For 60 seconds the twin keeps its address (checked every
few seconds), `nmcli device` reports it unmanaged, and the client reaches 10.0.0.5 at the end.
A clean stop removes the keyfile and the udev rule.

If NetworkManager cannot run here, the test says why and passes, skipping only this part."""

import fcntl
import os
import time

from lab import check, main, run, say

from t_kni import NM_FILES, start, twin_addrs

HERE = os.path.dirname(os.path.abspath(__file__))
NM_LAB = os.path.join(HERE, "..", "..", "scripts", "nm_lab.sh")
LOCK = "/run/dpvs-test-nm.lock"
HOLD_S = 60


def nm_device_state(lab, ifname):
    p = run(["nmcli", "-t", "-f", "DEVICE,STATE", "device"], 10)
    for line in p.stdout.splitlines():
        dev, _, state = line.partition(":")
        if dev == ifname:
            return state
    return None


def body(lab):
    os.makedirs("/run", exist_ok=True)
    lock = open(LOCK, "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    nm_dir = os.path.join(lab.state, "nm")
    env = dict(os.environ, NM_LAB_CONF_DIR="/etc/NetworkManager/conf.d",
               NM_LAB_UNMANAGED="interface-name:lbc;interface-name:lbr")
    started = run([NM_LAB, "start", lab.ns["lb"], nm_dir], 90, env=env)
    if started.returncode != 0:
        say("SKIP: NetworkManager cannot run here: %s" % started.stderr.strip()[-300:])
        return
    try:
        start(lab)
        deadline = time.monotonic() + HOLD_S
        while time.monotonic() < deadline:
            addrs = twin_addrs(lab)
            check("10.0.0.5/24" in addrs, "the twin lost its address: %s" % addrs)
            time.sleep(5)
        state = nm_device_state(lab, "dpdk0.kni")
        say("after %d s: dpdk0.kni has %s; NetworkManager says %s" % (HOLD_S, twin_addrs(lab),
                                                                       state))
        check(state == "unmanaged", "NetworkManager reports dpdk0.kni %s" % state)
        p = run(lab.nsexec("cl", ["ping", "-c", "5", "-i", "0.3", "-W", "2", "10.0.0.5"]), 20)
        if p.returncode != 0:
            # What the path looked like, for the failure's message.
            neigh = run(lab.nsexec("cl", ["ip", "neigh"]), 10).stdout.strip()
            twin = lab.ctl_json(["kni", "list"])[0]
            say("client neighbours: %s; twin: %s" % (neigh, twin))
        check(p.returncode == 0, "ping 10.0.0.5 after %d s: %s" % (HOLD_S, p.stdout[-200:]))
        restores = lab.ctl_json(["kni", "list"])[0]["restores"]
        say("the guard restored the twin %d times" % restores)
        check(lab.stop_dpvs() == 0, "dpvs did not stop cleanly")
        left = [f for f in NM_FILES if os.path.exists(f)]
        check(not left, "files of ours left after a clean stop: %s" % left)
    finally:
        lab.stop_dpvs()
        run([NM_LAB, "stop", lab.ns["lb"], nm_dir], 60, env=env)
        lock.close()


if __name__ == "__main__":
    main(body, start_dpvs=False)
