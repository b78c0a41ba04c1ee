#!/usr/bin/env python3
"""restart: what an operator meets when (re)starting the daemon (issue 16).

1. A second dpvs on the same interfaces, with another EAL file prefix, instance and control
   socket, is refused at once with one line naming the running daemon's PID; with the very
   same config, also one line with the PID. The first keeps serving.
2. Requests sent the moment the control socket first answers all succeed and never count
   `laddr_exhausted` (the workers are complete before the socket answers), over several
   restarts.
3. Right after a restart, 30 requests are all fast: the new run does not hand out the
   (local address, port) pairs the previous run used last, which the real servers still hold
   in TIME_WAIT.
"""

import os
import subprocess
import time

from lab import VIP_URL, Fail, check, dpvs_cmd, drop_counters, main, run, say

RESTARTS = 4
FAST_S = 0.5


def second_daemon(lab, config, ipc):
    """Starts another dpvs in the balancer's namespace; returns (exit status, stderr lines)."""
    cmd = lab.nsexec("lb", dpvs_cmd() + ["--config", config, "--ipc", ipc])
    p = run(cmd, 20)
    return p.returncode, [line for line in p.stderr.splitlines() if line.strip()]


def check_second_daemons(lab):
    pid = lab.dpvs.pid
    other = lab.write_config(
        replace=[('"--file-prefix", "%s"' % lab.prefix, '"--file-prefix", "%s_b"' % lab.prefix),
                 ('instance = "%s"' % lab.prefix, 'instance = "%s_b"' % lab.prefix)],
        path=os.path.join(lab.state, "second.toml"))
    for what, config, ipc in [
            ("another prefix, instance and socket", other, os.path.join(lab.state, "b.sock")),
            ("the same config", lab.config, lab.sock)]:
        t0 = time.monotonic()
        rc, lines = second_daemon(lab, config, ipc)
        say("second dpvs (%s): exit %d in %.1fs: %s" % (what, rc, time.monotonic() - t0, lines))
        check(rc != 0, "a second dpvs (%s) started" % what)
        check(len(lines) == 1, "a second dpvs (%s) said %d lines, not one: %s"
              % (what, len(lines), lines))
        check("PID %d" % pid in lines[0], "its line does not name PID %d: %s" % (pid, lines[0]))
        lab.check_alive()
    r = lab.client(["http-seq", VIP_URL, "20"], timeout=60)
    check(r["ok"] == 20, "the first daemon stopped serving: %s" % r)


def restart_and_fire(lab):
    """Restarts dpvs and sends 8 concurrent requests the moment `dpvs-ctl stats` answers."""
    check(lab.stop_dpvs() == 0, "dpvs did not stop cleanly")
    lab.start_dpvs()
    deadline = time.monotonic() + 45
    while True:
        lab.check_alive()
        if os.path.exists(lab.sock) and lab.ctl(["stats"], timeout=5).returncode == 0:
            break
        if time.monotonic() > deadline:
            raise Fail("the control socket did not answer within 45 s")
        time.sleep(0.02)
    r = lab.client(["http-conc", VIP_URL, "8", "--timeout", "5"], timeout=60, allow_fail=True)
    drops = drop_counters(lab.stats())
    say("requests at the first answer: %d ok, %d failed %s, laddr_exhausted %d, in %ss"
        % (r["ok"], r["failed"], r["errors"], drops.get("laddr_exhausted", 0), r["elapsed_s"]))
    check(drops.get("laddr_exhausted", 0) == 0,
          "requests at the first answer counted laddr_exhausted %d"
          % drops.get("laddr_exhausted", 0))
    check(r["ok"] == 8, "requests at the first answer failed: %s" % r["errors"])


def timed_requests(lab, n):
    """n sequential requests, each timed on its own; returns the durations."""
    times = []
    for _ in range(n):
        r = lab.client(["http-seq", VIP_URL, "1", "--timeout", "3"], timeout=20, allow_fail=True)
        check(r["ok"] == 1, "a request failed: %s" % r["errors"])
        times.append(r["elapsed_s"])
    return times


def body(lab):
    check_second_daemons(lab)
    for _ in range(RESTARTS):
        restart_and_fire(lab)
    # Fill the real servers' TIME_WAIT with this run's pairs, then restart and ask again.
    lab.client(["http-seq", VIP_URL, "30"], timeout=60)
    check(lab.stop_dpvs() == 0, "dpvs did not stop cleanly")
    lab.start_dpvs()
    lab.wait_ctl()
    times = timed_requests(lab, 30)
    slow = [t for t in times if t >= FAST_S]
    say("after the restart: 30 requests, slowest %.3fs, %d at %.1fs or more"
        % (max(times), len(slow), FAST_S))
    check(not slow, "%d of 30 requests after a restart took %.1fs or more: %s"
          % (len(slow), FAST_S, sorted(slow)))
    lab.check_alive()


if __name__ == "__main__":
    main(body)
