#!/usr/bin/env bash
# The kernel bridge's own cost: TCP throughput (iperf3) and round-trip time (ping) between a
# client namespace and the balancer host's kernel through a kernel twin, against the same two
# namespaces joined by a plain veth. Prints a table and writes bench/results/kni-<date>.json.
#
#   bench/kni.sh [--seconds N] [--out FILE]
#
# Lab: scripts/topology.sh (client --veth-- dpvs dpdk0 (af_packet) ... dpdk0.kni in the
# balancer namespace, 10.0.0.5/24); the baseline is a veth pair between two fresh namespaces,
# 10.77.0.1 and 10.77.0.2. Needs root, iperf3 (installed if missing), the release binaries.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
secs=10
out=""
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) secs=$2; shift ;;
        --out) out=$2; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "kni.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
command -v iperf3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
target=${CARGO_TARGET_DIR:-$root/target}
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out=${out:-$root/bench/results/kni-$stamp.json}
p=bk$$
work=$(mktemp -d)
dpvs_pid=""
cleanup() {
    [ -z "$dpvs_pid" ] || { kill "$dpvs_pid" 2>/dev/null; wait "$dpvs_pid" 2>/dev/null || true; }
    "$root/scripts/topology.sh" down "$p" >/dev/null 2>&1 || true
    ip netns del "$p-va" 2>/dev/null || true
    ip netns del "$p-vb" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# measure NS_CLIENT NS_SERVER ADDR: "Mbit/s rtt_ms" from the client namespace to ADDR.
measure() {
    local cl=$1 sv=$2 addr=$3 mbps rtt
    ip netns exec "$sv" iperf3 -s -1 -B "$addr" >/dev/null 2>&1 &
    sleep 0.5
    mbps=$(ip netns exec "$cl" iperf3 -c "$addr" -t "$secs" -J |
        python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))')
    wait || true
    rtt=$(ip netns exec "$cl" ping -q -c 200 -i 0.01 "$addr" |
        awk -F/ '/^rtt/ {print $5}')
    echo "$mbps $rtt"
}

# The kernel twin.
"$root/scripts/topology.sh" up "$p" >/dev/null
python3 "$root/scripts/labconf.py" --prefix "$p" --workers 2 --out "$work/dpvs.toml"
printf '\n[[kni_address]]\nport = "dpdk0"\naddr = "10.0.0.5/24"\n' >>"$work/dpvs.toml"
ip netns exec "$p-lb" "$target/release/dpvs" --config "$work/dpvs.toml" \
    --ipc "$work/dpvs.sock" --log-level warn >"$work/dpvs.log" 2>&1 &
dpvs_pid=$!
for _ in $(seq 100); do
    "$target/release/dpvs-ctl" --ipc "$work/dpvs.sock" stats >/dev/null 2>&1 && break
    sleep 0.2
done
ip netns exec "$p-cl" ping -q -c 3 -W 1 10.0.0.5 >/dev/null
read -r twin_mbps twin_rtt < <(measure "$p-cl" "$p-lb" 10.0.0.5)

# The same over a plain veth.
ip netns add "$p-va"
ip netns add "$p-vb"
ip link add eth0 netns "$p-va" type veth peer name eth0 netns "$p-vb"
ip -n "$p-va" addr add 10.77.0.1/24 dev eth0
ip -n "$p-vb" addr add 10.77.0.2/24 dev eth0
for n in "$p-va" "$p-vb"; do ip -n "$n" link set eth0 up; ip -n "$n" link set lo up; done
read -r veth_mbps veth_rtt < <(measure "$p-va" "$p-vb" 10.77.0.2)

printf '%-34s %12s %12s\n' "path" "TCP Mbit/s" "RTT ms"
printf '%-34s %12s %12s\n' "client -> kernel twin (dpdk0.kni)" "$twin_mbps" "$twin_rtt"
printf '%-34s %12s %12s\n' "client -> kernel, plain veth" "$veth_mbps" "$veth_rtt"
mkdir -p "$(dirname "$out")"
python3 - "$out" <<PY
import json, sys
doc = {"date": "$stamp", "seconds": $secs,
       "twin": {"tcp_mbps": float("$twin_mbps"), "rtt_ms": float("$twin_rtt")},
       "veth": {"tcp_mbps": float("$veth_mbps"), "rtt_ms": float("$veth_rtt")}}
doc["ratio_tcp"] = round(doc["twin"]["tcp_mbps"] / doc["veth"]["tcp_mbps"], 3)
json.dump(doc, open(sys.argv[1], "w"), indent=1)
print("results: %s" % sys.argv[1])
PY
