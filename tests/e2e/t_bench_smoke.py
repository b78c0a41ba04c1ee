#!/usr/bin/env python3
"""bench_smoke: `bench/run.sh --smoke` (about a second per mode, small flow counts) runs every
row of the benchmark end to end (dpvs-pktgen against dpdk-testpmd io/macswap and against dpvs
FullNAT, established TCP and UDP flows, new connections, the zero-loss run, the DR/TUN/NAT
probes), so the script, the generator and the configs cannot rot. Checks that every run
completed, that the generator found no wrong rewrite, that the modes the daemon does not
implement are reported as such, that the results JSON (and the chart, when matplotlib is
there) were written, and that nothing was left running.

Numbers are not checked: a smoke run on a shared two-CPU machine measures nothing.
Needs root, dpdk-testpmd (Debian dpdk-dev) and the release binaries (dpvs, dpvs-ctl,
dpvs-pktgen). Does not use the namespace lab.
"""

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIME_LIMIT = 150


class Fail(Exception):
    pass


def check(cond, reason):
    if not cond:
        raise Fail(reason)


def say(*args):
    print("#", *args, flush=True)


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def env_for_script():
    """run.sh takes single paths; a DPVS_BIN that is a command line (a wrapper) is not
    passed on, and run.sh then uses the target directory's binaries."""
    env = dict(os.environ)
    for k in ("DPVS_BIN", "DPVS_CTL"):
        v = env.get(k)
        if v and len(shlex.split(v)) != 1:
            del env[k]
    if "PKTGEN_BIN" not in env:
        base = env.get("DPVS_BIN")
        cand = os.path.join(os.path.dirname(base), "dpvs-pktgen") if base else None
        if cand and os.access(cand, os.X_OK):
            env["PKTGEN_BIN"] = cand
    return env


def leftovers(work):
    """Processes whose command line still names the run's work directory."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if work in cmd and "t_bench_smoke" not in cmd:
            out.append("%s %s" % (pid, cmd[:120]))
    return out


CHILD = []


def run_script(cmd):
    """Runs bench/run.sh; on the time limit (or our own SIGTERM) it gets SIGTERM, so that its
    trap stops what it started, rather than SIGKILL."""
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env_for_script())
    CHILD.append(child)
    try:
        out, err = child.communicate(timeout=TIME_LIMIT)
    except subprocess.TimeoutExpired:
        stop_child()
        raise
    return subprocess.CompletedProcess(cmd, child.returncode, out, err)


def stop_child():
    for c in CHILD:
        if c.poll() is None:
            c.terminate()
            try:
                c.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                c.kill()


def body(tmp):
    pktgen = os.path.join(target_dir(), "release", "dpvs-pktgen")
    check(os.access(os.environ.get("PKTGEN_BIN", pktgen), os.X_OK),
          "dpvs-pktgen not built (cargo build --release --workspace)")
    check(shutil.which(os.environ.get("TESTPMD", "dpdk-testpmd")) is not None,
          "dpdk-testpmd not found (Debian package dpdk-dev)")
    out = os.path.join(tmp, "smoke.json")
    t0 = time.time()
    p = run_script(["bash", os.path.join(ROOT, "bench", "run.sh"), "--smoke", "--out", out])
    say("bench/run.sh --smoke: exit %d in %.0f s" % (p.returncode, time.time() - t0))
    for line in (p.stdout + p.stderr).splitlines():
        if not line.startswith("EAL:"):
            print("   ", line)
    check(p.returncode == 0, "bench/run.sh --smoke exited %d" % p.returncode)
    check(os.path.exists(out), "no results JSON at %s" % out)
    doc = json.load(open(out))
    runs = {r["name"]: r for r in doc["runs"]}
    for name in ("io", "macswap", "fnat-1k", "fnat-10k", "fnat-10k-80", "fnat-10k-kni",
                 "fnat-udp-10k", "fnat-newconn"):
        r = runs.get(name)
        check(r is not None, "run %s missing from the results" % name)
        check(r["status"] == "ok", "run %s: %s %s" % (name, r["status"], r["note"]))
        g = r["gen"]
        check(g["check_failures"] == 0, "run %s: %d wrong rewrites: %s"
              % (name, g["check_failures"], g["checks"]))
        check(g["received_measured"] > 0, "run %s: nothing forwarded" % name)
        check(r["dut"] and r["dut"]["cycles_per_pkt"], "run %s: no device cycles" % name)
    nc = runs["fnat-newconn"]["gen"]["conns"]
    check(nc and nc["completed"] > 0, "new connections: none completed (%s)" % nc)
    # Every forwarding mode is implemented: each must be measured, every frame checked.
    for mode in ("dr", "tun", "nat"):
        r = runs.get(mode)
        check(r is not None, "run %s missing" % mode)
        check(r["status"] == "ok", "%s: %s %s" % (mode, r["status"], r["note"]))
        g = r["gen"]
        check(g["check_failures"] == 0, "run %s: %d wrong rewrites: %s"
              % (mode, g["check_failures"], g["checks"]))
        check(g["received_measured"] > 0, "run %s: nothing forwarded" % mode)
    targets = [t["target"] for t in doc["targets"]]
    # Throughput, zero loss, the idle kernel bridge, DR and TUN.
    check(len(targets) == 5, "expected 5 targets, got %s" % targets)
    check(any(t.startswith("kernel bridge idle") for t in targets), "no kernel bridge target")
    check(all(t["result"] in ("PASS", "MISS") for t in doc["targets"]), "target results")
    check("PASS" in p.stdout or "MISS" in p.stdout, "targets not printed")
    try:
        subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"], check=True,
                       capture_output=True, timeout=30)
        has_mpl = True
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired):
        has_mpl = False
    png = out[:-len(".json")] + ".png"
    if has_mpl:
        check(os.path.getsize(png) > 1000 if os.path.exists(png) else False,
              "no chart at %s" % png)
    else:
        say("matplotlib missing: chart not checked")
    work = next((ln.split("work dir ", 1)[1].strip() for ln in p.stdout.splitlines()
                 if "work dir " in ln), None)
    check(work is not None, "run.sh did not print its work dir")
    time.sleep(0.5)
    check(not os.path.exists(work), "work dir %s left behind" % work)
    left = leftovers(work)
    check(not left, "processes left running: %s" % left)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=False, default="bench")
    ap.parse_args()

    def on_term(signum, frame):
        stop_child()
        raise SystemExit("killed by signal %d (time limit?)" % signum)
    signal.signal(signal.SIGTERM, on_term)
    reason = None
    tmp = tempfile.mkdtemp(prefix="bench-smoke.")
    try:
        body(tmp)
    except Fail as e:
        reason = str(e)
    except subprocess.TimeoutExpired:
        reason = "bench/run.sh --smoke took more than %d s" % TIME_LIMIT
    except SystemExit as e:
        reason = str(e.code)
    except Exception as e:  # noqa: BLE001
        reason = "%s: %s" % (type(e).__name__, e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if reason:
        print("FAIL: %s" % reason.replace("\n", " ")[:1000], flush=True)
        sys.exit(1)
    print("OK", flush=True)


if __name__ == "__main__":
    main()
