#!/usr/bin/env bash
# DPVS-RS side-by-side benchmark: dpvs-pktgen on one CPU, one dpvs worker (or dpdk-testpmd,
# the I/O ceiling) on the other, joined by one memif link. See bench/README.md.
#
#   bench/run.sh [--smoke] [--duration S] [--warmup S] [--only NAME,...] [--out FILE]
#                [--gen-cpu N] [--dut-cpu N] [--rsize N] [--no-plot] [--strict] [--keep]
#
#   --smoke      a few seconds per mode, small flow counts (what the tests run)
#   --duration   measured seconds per run (default 10; smoke 1)
#   --warmup     seconds of traffic before each measurement (default 3; smoke 0.5)
#   --only       run only these runs (names as in the table, e.g. io,fnat-1m)
#   --out        results JSON (default bench/results/<UTC date-time>.json; smoke: work dir)
#   --rsize      log2 of the memif ring size, both directions (default 14: 16384 slots, which
#                rides out the generator being descheduled for tens of ms on a shared machine)
#   --no-plot    do not draw the PNG chart
#   --strict     exit 1 when a target is missed (default: report misses, exit 0)
#   --keep       keep the work directory (configs, logs, per-run JSON)
#
# Exit status: 0 when every run completed and every frame the generator checked was right;
# 1 on a failed run or a wrong rewrite (and on a missed target with --strict).
# Binaries: ${CARGO_TARGET_DIR:-target}/release/{dpvs,dpvs-ctl,dpvs-pktgen}, dpdk-testpmd
# from PATH (override with DPVS_BIN, DPVS_CTL, PKTGEN_BIN, TESTPMD).
# shellcheck disable=SC2317  # functions run from traps and loops
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
bin=${CARGO_TARGET_DIR:-$root/target}/release
case $bin in /*) ;; *) bin=$root/$bin ;; esac
DPVS=${DPVS_BIN:-$bin/dpvs}
CTL=${DPVS_CTL:-$bin/dpvs-ctl}
GEN=${PKTGEN_BIN:-$bin/dpvs-pktgen}
TESTPMD=${TESTPMD:-dpdk-testpmd}

smoke=0
duration=
warmup=
only=
out=
gen_cpu=0
dut_cpu=1
rsize=14
plot=1
strict=0
keep=0
argv=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        --smoke) smoke=1 ;;
        --duration) duration=$2; shift ;;
        --warmup) warmup=$2; shift ;;
        --only) only=$2; shift ;;
        --out) out=$2; shift ;;
        --gen-cpu) gen_cpu=$2; shift ;;
        --dut-cpu) dut_cpu=$2; shift ;;
        --no-plot) plot=0 ;;
        --strict) strict=1 ;;
        --keep) keep=1 ;;
        --rsize) rsize=$2; shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$smoke" = 1 ]; then
    duration=${duration:-1}
    warmup=${warmup:-0.5}
else
    duration=${duration:-10}
    warmup=${warmup:-3}
fi

for b in "$DPVS" "$CTL" "$GEN"; do
    if [ ! -x "$b" ]; then
        echo "run.sh: $b not found; build first (bench/README.md, set-up)" >&2
        exit 2
    fi
done
command -v "$TESTPMD" >/dev/null || { echo "run.sh: $TESTPMD not found (Debian dpdk-dev)" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: needs root (DPDK)" >&2
    exit 2
fi
# The interpreter that has matplotlib (Debian's python3-matplotlib is for /usr/bin/python3).
py=python3
for p in /usr/bin/python3 python3; do
    if "$p" -c 'import matplotlib' 2>/dev/null; then py=$p; break; fi
done
command -v "$py" >/dev/null || py=/usr/bin/python3

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
work=$(mktemp -d "/tmp/dpvs-bench.XXXXXX")
tag=b$$
sock=$work/memif.sock
ctl_sock=$work/ctl.sock
pids=()
prefixes=()

cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    exec 3>&- 2>/dev/null || true
    for p in "${prefixes[@]}"; do
        rm -rf "/var/run/dpdk/$p" 2>/dev/null || true
    done
    if [ "$keep" = 1 ]; then
        echo "run.sh: work directory kept: $work" >&2
        rm -f "$sock" "$ctl_sock" "$work/testpmd.in"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM

log() { echo "== $*"; }

# Removes a finished process from the list of those to clean up.
forget() {
    local p keep_pids=()
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep_pids+=("$p"); done
    pids=("${keep_pids[@]}")
}

# stop PID: SIGTERM, then SIGKILL after 10 s.
stop() {
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    forget "$1"
}

# wait_for SECONDS CMD...: polls CMD every 50 ms.
wait_for() {
    local t=$1
    shift
    for _ in $(seq $((t * 20))); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

# wait_marker FILE PHASE PID: waits for the generator's phase marker (or its exit).
wait_marker() {
    while ! grep -q "^# phase $2\$" "$1" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
}

selected() {
    [ -z "$only" ] && return 0
    case ",$only," in *",$1,"*) return 0 ;; esac
    return 1
}

# The runs: NAME KIND EXPECT TRAFFIC FLOWS [RATE]. KIND: dpvs, testpmd, or probe (a mode the
# daemon may refuse; it is measured like dpvs when it accepts it).
# testpmd io runs are spread through the list: each dpvs row is compared with the io runs just
# before and after it, so that slow drifts of this shared machine cancel as far as they can.
if [ "$smoke" = 1 ]; then
    runs=(
        "io testpmd io est-tcp 10K"
        "macswap testpmd macswap est-tcp 10K"
        "fnat-1k dpvs fnat est-tcp 1K"
        "fnat-10k dpvs fnat est-tcp 10K"
        "fnat-10k-80 dpvs fnat est-tcp 10K 80%:fnat-10k"
        "fnat-10k-kni dpvs fnat est-tcp 10K"
        "fnat-udp-10k dpvs fnat est-udp 10K"
        "fnat-newconn dpvs fnat new-conn 100K"
        "dr probe dr est-tcp 10K"
        "tun probe tun est-tcp 10K"
        "nat probe nat est-tcp 10K"
        "io-end testpmd io est-tcp 10K"
    )
else
    runs=(
        "io testpmd io est-tcp 1M"
        "macswap testpmd macswap est-tcp 1M"
        "fnat-1k dpvs fnat est-tcp 1K"
        "fnat-100k dpvs fnat est-tcp 100K"
        "io-2 testpmd io est-tcp 1M"
        "fnat-1m dpvs fnat est-tcp 1M"
        "fnat-1m-kni dpvs fnat est-tcp 1M"
        "fnat-1m-80 dpvs fnat est-tcp 1M 80%:fnat-1m"
        "fnat-1m-50 dpvs fnat est-tcp 1M 50%:fnat-1m"
        "io-3 testpmd io est-tcp 1M"
        "fnat-10m dpvs fnat est-tcp 10M"
        "fnat-udp-1m dpvs fnat est-udp 1M"
        "fnat-newconn dpvs fnat new-conn 1M"
        "dr probe dr est-tcp 1M"
        "tun probe tun est-tcp 1M"
        "nat probe nat est-tcp 1M"
        "io-end testpmd io est-tcp 1M"
    )
fi

DUT_MAC=02:00:00:00:00:01
GEN_MAC=02:00:00:00:00:0a

# count TEXT: 10K -> 10000.
count() {
    local n=$1
    case $n in
        *K) echo $(( ${n%K} * 1000 )) ;;
        *M) echo $(( ${n%M} * 1000000 )) ;;
        *) echo "$n" ;;
    esac
}

# render_conf NAME MAX_CONNS: the daemon config of a run. A run named *-kni gives the port its
# kernel twin (idle: no traffic goes to the kernel), to compare with the same run without.
render_conf() {
    local kni=false
    case $1 in *-kni) kni=true ;; esac
    sed -e "s#@SOCK@#$sock#" -e "s#@PREFIX@#$tag-dut#" -e "s#@LCORES@#0@$dut_cpu,1@$dut_cpu#" \
        -e "s#@MAX_CONNS@#$2#" -e "s#^kni = false#kni = $kni#" \
        "$root/bench/conf/fnat.toml" > "$work/$1.toml"
}

# start_dpvs NAME FLOWS: starts the daemon, sets $dut_pid.
start_dpvs() {
    local name=$1 flows max
    flows=$(count "$2")
    max=$(( flows * 2 ))
    [ "$max" -ge 65536 ] || max=65536
    # New connections: closed entries linger for tcp_close (2 s) at up to ~1M/s.
    [ "$3" != new-conn ] || max=4194304
    render_conf "$name" "$max"
    rm -f "$sock" "$ctl_sock"
    local launch=()
    # A run with a kernel twin gets a network namespace of its own without IPv6, so that the
    # twin's kernel stays quiet (no router solicitations, MLD): the bridge is idle, and the
    # generator sees only the balancer's frames.
    case $name in
        *-kni) launch=(unshare -n sh -c 'sysctl -qw net.ipv6.conf.default.disable_ipv6=1 \
            net.ipv6.conf.all.disable_ipv6=1 && exec "$0" "$@"') ;;
    esac
    "${launch[@]}" "$DPVS" --config "$work/$name.toml" --ipc "$ctl_sock" --log-level warn \
        >"$work/$name.dut.log" 2>&1 &
    dut_pid=$!
    pids+=("$dut_pid")
    prefixes+=("$tag-dut")
    if ! wait_for 60 "$CTL" --ipc "$ctl_sock" -o json stats >/dev/null 2>&1; then
        echo "dpvs did not come up:" >&2
        tail -n 20 "$work/$name.dut.log" >&2
        return 1
    fi
}

# start_testpmd NAME MODE: the I/O ceiling on the same port, MAC and CPU; sets $dut_pid, fd 3.
start_testpmd() {
    rm -f "$sock" "$work/testpmd.in"
    mkfifo "$work/testpmd.in"
    # Line-buffered so that the log shows when forwarding started; no link check, since the
    # link only comes up once the generator connects.
    stdbuf -oL -eL "$TESTPMD" --lcores "0@$dut_cpu,1@$dut_cpu" --no-huge -m 1024 --no-pci \
        --no-telemetry --file-prefix "$tag-tp" \
        --vdev "net_memif0,role=server,socket=$sock,socket-abstract=no,mac=$DUT_MAC" \
        -- -i --forward-mode="$2" --record-core-cycles --auto-start --disable-link-check \
        --total-num-mbufs=32768 <"$work/testpmd.in" >"$work/$1.dut.log" 2>&1 &
    dut_pid=$!
    pids+=("$dut_pid")
    prefixes+=("$tag-tp")
    exec 3>"$work/testpmd.in"
    wait_for 60 grep -q "^Start automatic packet forwarding" "$work/$1.dut.log"
}

# dut_sample NAME WHICH KIND: the device's counters at the start/end of the measurement.
dut_sample() {
    if [ "$3" = testpmd ]; then
        if [ "$2" = start ]; then
            echo "clear fwd stats all" >&3
        else
            wc -c <"$work/$1.dut.log" >"$work/$1.tp.offset"
            echo "show fwd stats all" >&3
        fi
    else
        "$CTL" --ipc "$ctl_sock" -o json stats >"$work/$1.stats-$2.json" 2>/dev/null || true
    fi
}

# run_gen NAME KIND EXPECT TRAFFIC FLOWS RATE [EXTRA...]: the generator against the running
# device; samples the device over exactly the measured interval.
run_gen() {
    local name=$1 kind=$2 expect=$3 traffic=$4 flows=$5 rate=$6 gpid rc=0
    shift 6
    # The memif client sets the ring size for both directions (the server accepts up to 2^14).
    "$GEN" --port "net_memif0,role=client,socket=$sock,socket-abstract=no,mac=$GEN_MAC,rsize=$rsize" \
        --dut-mac "$DUT_MAC" --cpu "$gen_cpu" --file-prefix "$tag-gen" \
        --traffic "$traffic" --expect "$expect" --flows "$flows" --rate "$rate" \
        --warmup "$warmup" --duration "$duration" --prime-timeout 30 --markers \
        --json "$work/$name.gen.json" "$@" >"$work/$name.gen.out" 2>"$work/$name.gen.err" &
    gpid=$!
    pids+=("$gpid")
    prefixes+=("$tag-gen")
    if wait_marker "$work/$name.gen.err" measure "$gpid"; then
        dut_sample "$name" start "$kind"
        if wait_marker "$work/$name.gen.err" drain "$gpid"; then
            dut_sample "$name" end "$kind"
        fi
    fi
    wait "$gpid" || rc=$?
    forget "$gpid"
    if [ "$kind" = testpmd ]; then
        sleep 0.5
    fi
    if [ "$rc" -ne 0 ]; then
        echo "dpvs-pktgen failed (exit $rc):" >&2
        grep -v '^EAL:' "$work/$name.gen.err" | tail -n 10 >&2
    fi
    return "$rc"
}

# The helper that turns a run's files into its record and its table row (Python: JSON).
record() {
    "$py" - "$work" "$@" <<'PY'
import json, os, re, sys
work, name, kind, expect, traffic, flows, status = sys.argv[1:8]
note = sys.argv[8] if len(sys.argv) > 8 else ""
def load(p):
    try:
        with open(os.path.join(work, p)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
rec = {"name": name, "kind": kind, "expect": expect, "traffic": traffic, "flows": flows,
       "status": status, "note": note, "gen": load(name + ".gen.json"), "dut": None}
if kind == "testpmd":
    try:
        log = open(os.path.join(work, name + ".dut.log"), errors="replace").read()
        off = int(open(os.path.join(work, name + ".tp.offset")).read().strip() or 0)
        part = log[off:]
        m = re.search(r"CPU cycles/packet=([\d.]+) \(total cycles=(\d+) / total \S+ packets=(\d+)\)", part)
        rx = re.search(r"Accumulated forward statistics.*?RX-packets:\s+(\d+).*?TX-packets:\s+(\d+)\s+TX-dropped:\s+(\d+)", part, re.S)
        if m:
            rec["dut"] = {"busy_cycles": int(m.group(2)), "busy_pkts": int(m.group(3)),
                          "cycles_per_pkt": float(m.group(1))}
            if rx:
                rec["dut"].update(rx_pkts=int(rx.group(1)), tx_pkts=int(rx.group(2)),
                                  tx_dropped=int(rx.group(3)))
    except (OSError, ValueError):
        pass
elif kind in ("dpvs", "probe"):
    a, b = load(name + ".stats-start.json"), load(name + ".stats-end.json")
    if a and b:
        wa, wb = a["workers"][0], b["workers"][0]
        cyc = wb["busy_cycles"] - wa["busy_cycles"]
        pk = wb["busy_pkts"] - wa["busy_pkts"]
        drops = {k: wb["drops"][k] - wa["drops"].get(k, 0) for k in wb["drops"]
                 if wb["drops"][k] - wa["drops"].get(k, 0)}
        rec["dut"] = {"busy_cycles": cyc, "busy_pkts": pk,
                      "cycles_per_pkt": cyc / pk if pk else None,
                      "rx_pkts": wb["rx_pkts"] - wa["rx_pkts"],
                      "tx_pkts": wb["tx_pkts"] - wa["tx_pkts"],
                      "conns_active": wb["conns_active"], "drops": drops}
g = rec["gen"]
if status == "ok" and g and g.get("check_failures", 0) > 0:
    rec["status"] = "wrong-rewrite"
if status == "ok" and (not g or not rec["dut"]):
    rec["status"] = "failed"
    rec["note"] = (note + "; " if note else "") + "no generator report or no device counters"
with open(os.path.join(work, name + ".record.json"), "w") as f:
    json.dump(rec, f, indent=1)
PY
}

# The summary: one table, the targets, the results JSON (Python).
summary() {
    "$py" - "$work" "$results" "$stamp" "$smoke" "$strict" "$duration" "$warmup" "$root" \
        "$rsize" "bench/run.sh $*" "$DPVS" "$GEN" <<'PY'
import json, os, platform, subprocess, sys, time
work, results, stamp, smoke, strict, duration, warmup, root, rsize, cmd = sys.argv[1:11]
binaries = {}
for b in sys.argv[11:13]:
    try:
        binaries[os.path.basename(b)] = {
            "path": b, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(b)))}
    except OSError:
        pass
order = [l.split()[0] for l in open(os.path.join(work, "runs.txt")) if l.strip()]
recs = []
for n in order:
    p = os.path.join(work, n + ".record.json")
    if os.path.exists(p):
        recs.append(json.load(open(p)))
def io_cpp(r):
    d = r.get("dut") or {}
    if r["kind"] == "testpmd" and r["expect"] == "io" and r["status"] == "ok":
        return d.get("cycles_per_pkt")
    return None

io = [io_cpp(r) for r in recs if io_cpp(r)]
io_ref = sum(io) / len(io) if io else None

def local_io(i):
    """testpmd io's cycles/packet around run i: the mean of the nearest io run before and the
    nearest after (one of them at the ends of the list)."""
    near = []
    for rng in (range(i - 1, -1, -1), range(i + 1, len(recs))):
        for j in rng:
            if io_cpp(recs[j]):
                near.append(io_cpp(recs[j]))
                break
    return sum(near) / len(near) if near else None

def mpps(v):
    return "%.3f" % (v / 1e6) if v is not None else "-"

rows = []
for i, r in enumerate(recs):
    g, d = r["gen"] or {}, r["dut"] or {}
    cpp = d.get("cycles_per_pkt")
    ref = io_cpp(r) or local_io(i)
    r["io_ref_cycles_per_pkt"] = ref
    r["ratio_to_io"] = cpp / ref if (cpp and ref) else None
    mode = "%s %s" % (r["expect"], r["traffic"])
    if r["kind"] == "testpmd":
        mode = "testpmd " + r["expect"]
    rows.append([
        r["name"], mode, r["flows"],
        mpps(g.get("offered_pps")) if r["status"] != "not-implemented" else "-",
        mpps(g.get("received_pps")) if r["status"] != "not-implemented" else "-",
        ("%.4f%%" % (100 * g["loss_ratio"])) if "loss_ratio" in g else "-",
        ("%.0f" % cpp) if cpp else "-",
        ("%.2f" % r["ratio_to_io"]) if r["ratio_to_io"] else "-",
        (g.get("bound") or {}).get("by", "-") if r["status"] == "ok" else r["status"],
    ])
head = ["run", "mode", "flows", "offered Mpps", "fwd Mpps", "loss", "cyc/pkt", "x io", "bound/status"]
w = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
print()
print("  ".join(h.ljust(w[i]) for i, h in enumerate(head)))
for x in rows:
    print("  ".join(str(v).ljust(w[i]) for i, v in enumerate(x)))
for r in recs:
    if r["note"]:
        print("  %s: %s" % (r["name"], r["note"]))
print("  cyc/pkt: the device's busy TSC cycles per packet over the measured interval;"
      " x io: that over testpmd io's in the io runs just before and after it"
      " (io runs: %s)" % (", ".join("%.0f" % v for v in io) or "none"))

by = {r["name"]: r for r in recs}
big = "fnat-10k" if smoke == "1" else "fnat-1m"
targets = []
def target(name, value, limit, ok, note=""):
    targets.append({"target": name, "value": value, "limit": limit,
                    "result": "PASS" if ok else "MISS", "note": note})
f = by.get(big)
if f and f.get("ratio_to_io") is not None:
    target("FullNAT established %s: cycles/packet <= 2.5 x testpmd io" % f["flows"],
           round(f["ratio_to_io"], 2), 2.5, f["ratio_to_io"] <= 2.5,
           "%.0f vs %.0f cycles/packet (io runs around it)"
           % (f["dut"]["cycles_per_pkt"], f["io_ref_cycles_per_pkt"]))
else:
    target("FullNAT established: cycles/packet <= 2.5 x testpmd io", None, 2.5, False,
           "not measured (run %s or an io run missing or failed)" % big)
for pct in ("80", "50"):
    z = by.get("%s-%s" % (big, pct))
    if not z:
        continue
    if z["status"] != "ok" or not z["gen"]:
        target("FullNAT established: zero loss at %s%% of saturation" % pct, None, 0, False,
               "not measured: %s" % z["note"])
        continue
    g = z["gen"]
    drops = ((z["dut"] or {}).get("drops") or {})
    why = []
    if g["lost"] > 0 and set(drops) == {"tx_full"}:
        why.append("all lost packets were dropped by the device because its TX ring towards the"
                   " generator was full (the generator did not drain it in time)")
    if g["bound"]["by"] == "dut":
        why.append("inconclusive: the device pushed back at this rate, so it was not below its"
                   " saturation during this run")
    target("FullNAT established %s: zero loss at %s%% of saturation (%.3f Mpps offered)"
           % (z["flows"], pct, g["offered_pps"] / 1e6), g["lost"], 0, g["lost"] <= 0,
           "; ".join(["%d of %d packets lost; device drops: %s"
                      % (g["lost"], g["sent_measured"],
                         " ".join("%s=%d" % kv for kv in sorted(drops.items())) or "none")]
                     + why))
k, f = by.get(big + "-kni"), by.get(big)
if k and f and k["status"] == "ok" and f["status"] == "ok" and k["dut"] and f["dut"]:
    kc, fc = k["dut"]["cycles_per_pkt"], f["dut"]["cycles_per_pkt"]
    target("kernel bridge idle: FullNAT %s cycles/packet with the twin <= 1.05 x without"
           % f["flows"], round(kc / fc, 3), 1.05, kc / fc <= 1.05,
           "%.0f with, %.0f without (same run)" % (kc, fc))
for m in ("dr", "tun"):
    r = by.get(m)
    if r and r.get("ratio_to_io") is not None and r["status"] == "ok":
        target("%s: cycles/packet <= 1.8 x testpmd io" % m.upper(), round(r["ratio_to_io"], 2),
               1.8, r["ratio_to_io"] <= 1.8)
    else:
        target("%s: cycles/packet <= 1.8 x testpmd io" % m.upper(), None, 1.8, False,
               (r or {}).get("note") or "not measured")
print()
for t in targets:
    v = "-" if t["value"] is None else t["value"]
    print("%-4s %s: %s (limit %s)%s" % (t["result"], t["target"], v, t["limit"],
          ("; " + t["note"]) if t["note"] else ""))

def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""
doc = {
    "date": stamp, "command": cmd, "smoke": smoke == "1",
    "duration_s": float(duration), "warmup_s": float(warmup), "memif_ring": 2 ** int(rsize),
    "host": {"cpus": os.cpu_count(), "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
             "kernel": platform.release(), "load_before": sh("cat " + os.path.join(work, "load.txt")),
             "git": sh("git -C %s rev-parse --short HEAD" % root),
             "git_dirty": bool(sh("git -C %s status --porcelain --untracked-files=no" % root))},
    "binaries": binaries,
    "testpmd_io_cycles_per_pkt": io_ref,
    "runs": recs, "targets": targets,
}
os.makedirs(os.path.dirname(os.path.abspath(results)), exist_ok=True)
with open(results, "w") as f:
    json.dump(doc, f, indent=1)
print("\nresults: %s" % results)
bad = [r["name"] for r in recs if r["status"] not in ("ok", "not-implemented")]
if bad:
    print("FAILED runs: %s" % ", ".join(bad))
    sys.exit(1)
if strict == "1" and any(t["result"] == "MISS" for t in targets):
    sys.exit(3)
PY
}

if [ -z "$out" ]; then
    if [ "$smoke" = 1 ]; then out=$work/results.json; else out=$root/bench/results/$stamp.json; fi
fi
results=$out
uptime >"$work/load.txt" 2>/dev/null || true
: >"$work/runs.txt"
log "dpvs-pktgen on CPU $gen_cpu, device under test on CPU $dut_cpu, memif rings of $((1 << rsize)); ${duration}s measured after ${warmup}s warm-up; work dir $work"
log "load before: $(cat "$work/load.txt")"

# saturation NAME: the forwarded rate of an earlier run (for "80%:NAME" rates).
saturation() {
    "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["gen"]["received_pps"])' \
        "$work/$1.record.json" 2>/dev/null || true
}

for spec in "${runs[@]}"; do
    read -r name kind expect traffic flows rate <<<"$spec"
    selected "$name" || continue
    echo "$name" >>"$work/runs.txt"
    rate=${rate:-max}
    case $rate in
        *%:*)
            base=$(saturation "${rate#*:}")
            if [ -z "$base" ]; then
                log "$name: skipped (no saturation rate from ${rate#*:})"
                record "$name" "$kind" "$expect" "$traffic" "$flows" failed "needs run ${rate#*:} first"
                continue
            fi
            rate=$("$py" -c "print(int(float('$base') * ${rate%%%:*} / 100))")
            ;;
    esac
    log "$name: $kind, expect $expect, $traffic, $flows flows, rate $rate"
    status=ok
    note=
    extra=()
    case $kind in
        testpmd)
            if start_testpmd "$name" "$expect"; then
                run_gen "$name" testpmd "$expect" "$traffic" "$flows" "$rate" || status=failed
                echo quit >&3 || true
                exec 3>&-
                stop "$dut_pid"
            else
                status=failed
                note="testpmd did not start"
                stop "$dut_pid"
            fi
            ;;
        dpvs|probe)
            if ! start_dpvs "$name" "$flows" "$traffic"; then
                status=failed
                note="dpvs did not start"
            elif [ "$kind" = probe ]; then
                # A mode the daemon may not implement yet: ask for it, report its answer.
                port=81
                [ "$expect" != nat ] || port=82
                [ "$expect" != tun ] || port=83
                svc=tcp:10.0.0.100:$port
                if msg=$("$CTL" --ipc "$ctl_sock" service add "$svc" --sched rr --forward "$expect" 2>&1); then
                    rport=$port
                    [ "$expect" != nat ] || rport=8080
                    "$CTL" --ipc "$ctl_sock" rs add "$svc" "10.0.0.20:$rport" >/dev/null
                    "$CTL" --ipc "$ctl_sock" rs add "$svc" "10.0.0.21:$rport" >/dev/null
                    extra=(--vip "10.0.0.100:$port" --rs "10.0.0.20:$rport,10.0.0.21:$rport" --tun-src 10.0.0.1)
                    run_gen "$name" "$kind" "$expect" "$traffic" "$flows" "$rate" "${extra[@]}" || status=failed
                else
                    status=not-implemented
                    note="not implemented (daemon refuses forward=$expect: $(echo "$msg" | tail -n 1))"
                fi
            else
                run_gen "$name" dpvs "$expect" "$traffic" "$flows" "$rate" || status=failed
            fi
            stop "$dut_pid"
            ;;
    esac
    record "$name" "$kind" "$expect" "$traffic" "$flows" "$status" "$note"
    if [ -f "$work/$name.gen.out" ]; then
        sed 's/^/   /' "$work/$name.gen.out"
    fi
    "$py" - "$work/$name.record.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d = r.get("dut") or {}
if r["status"] != "ok":
    print("   status: %s %s" % (r["status"], r["note"]))
if d.get("cycles_per_pkt"):
    extra = ""
    if d.get("drops"):
        extra = "; drops " + " ".join("%s=%d" % kv for kv in sorted(d["drops"].items()))
    print("   device       %.0f busy cycles/packet over %d packets%s"
          % (d["cycles_per_pkt"], d["busy_pkts"], extra))
PY
done

rc=0
summary "${argv[@]}" || rc=$?
if [ "$plot" = 1 ] && [ -f "$results" ]; then
    png=${results%.json}.png
    if "$py" "$root/bench/plot.py" "$results" "$png"; then
        echo "chart: $png"
    else
        echo "run.sh: no chart (bench/plot.py needs python3-matplotlib)" >&2
    fi
fi
case $rc in
    0) exit 0 ;;
    3) exit 1 ;;
    *) exit 1 ;;
esac
