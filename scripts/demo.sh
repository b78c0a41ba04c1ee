#!/usr/bin/env bash
# The DPVS-RS demo: a two-arm FullNAT load balancer between a client and two real servers,
# all in network namespaces on this machine (see scripts/topology.sh and conf/demo.toml).
#
#   scripts/demo.sh [--keep] [--no-setup]   set up, build, run the lab, show traffic and stats
#   scripts/demo.sh stop                    tear down a lab left running with --keep
#
# Without --keep everything is cleaned up when the demo ends (also on Ctrl-C or failure).
# DPVS_DEMO_PREFIX names the lab (default: demo).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
prefix=${DPVS_DEMO_PREFIX:-demo}
state=/tmp/dpvs-lab-$prefix
sock=$state/dpvs.sock
target=${CARGO_TARGET_DIR:-$root/target}
# DPVS_BIN / DPVS_CTL may override the binaries (a command line each).
read -ra dpvs <<<"${DPVS_BIN:-$target/release/dpvs}"
read -ra ctl <<<"${DPVS_CTL:-$target/release/dpvs-ctl}"
py=$(command -v python3)

keep=0
setup=1
for arg in "$@"; do
    case $arg in
        stop) exec "$root/scripts/topology.sh" down "$prefix" ;;
        --keep) keep=1 ;;
        --no-setup) setup=0 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "demo.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: run as root (network namespaces, af_packet)" >&2
    exit 1
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$setup" = 1 ]; then
    step "Set-up and build (scripts/setup.sh)"
    scripts/setup.sh
fi
for b in "${dpvs[0]}" "${ctl[0]}"; do
    [ -x "$b" ] || { echo "demo.sh: $b is missing: run scripts/setup.sh" >&2; exit 1; }
done

cleanup() {
    echo
    echo "Cleaning up the lab ($prefix)..."
    "$root/scripts/topology.sh" down "$prefix" >/dev/null 2>&1 || true
}
if [ "$keep" = 0 ]; then
    trap cleanup EXIT
fi
trap 'exit 130' INT TERM

step "Network namespaces ($prefix-cl, $prefix-lb, $prefix-sw, $prefix-rs1, $prefix-rs2)"
scripts/topology.sh down "$prefix" >/dev/null 2>&1 || true
scripts/topology.sh up "$prefix"
scripts/topology.sh servers "$prefix"

step "Starting dpvs in $prefix-lb"
"$py" scripts/labconf.py --prefix "$prefix" --out "$state/dpvs.toml"
ip netns exec "$prefix-lb" "${dpvs[@]}" --config "$state/dpvs.toml" --ipc "$sock" --log-level info \
    >"$state/logs/dpvs.log" 2>&1 &
dpvs_pid=$!
echo "$dpvs_pid" >"$state/pids/dpvs.pid"
echo "dpvs pid $dpvs_pid, config $state/dpvs.toml, log $state/logs/dpvs.log"

deadline=$((SECONDS + 45))
until timeout 5 "${ctl[@]}" --ipc "$sock" stats >/dev/null 2>&1; do
    if ! kill -0 "$dpvs_pid" 2>/dev/null; then
        echo "dpvs exited during start-up; its log:" >&2
        tail -n 30 "$state/logs/dpvs.log" >&2 || true
        exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
        echo "dpvs did not answer 'dpvs-ctl stats' within 45 s; its log:" >&2
        tail -n 30 "$state/logs/dpvs.log" >&2 || true
        exit 1
    fi
    sleep 0.5
done
echo "dpvs answers on $sock"
timeout 10 "${ctl[@]}" --ipc "$sock" link list || true

in_client() { ip netns exec "$prefix-cl" "$@"; }

step "20 HTTP requests from the client (10.0.0.2) to the VIP http://10.0.0.100/"
# The first request may wait for neighbour resolution: retry it for a while.
deadline=$((SECONDS + 20))
until in_client curl -s --noproxy '*' -m 2 -o /dev/null http://10.0.0.100/; do
    if [ $SECONDS -ge $deadline ]; then
        echo "no HTTP answer through the VIP within 20 s; dpvs log:" >&2
        tail -n 30 "$state/logs/dpvs.log" >&2 || true
        exit 1
    fi
    sleep 0.5
done
fails=0
for i in $(seq 1 20); do
    if body=$(in_client curl -s --noproxy '*' -m 3 http://10.0.0.100/); then
        printf '  %2d  %s\n' "$i" "$body"
    else
        printf '  %2d  (failed)\n' "$i"
        fails=$((fails + 1))
    fi
done
echo "(each real server answers with its name and the source address it saw: the FullNAT"
echo " local address 192.168.10.200, not the client's 10.0.0.2)"

step "UDP: 4 requests to 10.0.0.100:53, each from its own source port"
in_client "$py" scripts/lbclient.py udp 10.0.0.100:53 4 -v >/dev/null || fails=$((fails + 1))

step "The kernel bridge: the kernel's own address 10.0.0.3 on dpdk0's twin dpdk0.kni"
# Frames the data plane does not handle (here ARP and ICMP for 10.0.0.3) go to the kernel of
# the balancer's namespace through the twin, and its answers go out through the DPDK port.
timeout 10 "${ctl[@]}" --ipc "$sock" kni addr add 10.0.0.3/24 --port dpdk0
if in_client ping -c 3 -i 0.3 -W 2 10.0.0.3 | sed 's/^/  /'; then
    echo "(the client reached the balancer's kernel through the DPDK port)"
else
    echo "  no answer from 10.0.0.3 through the kernel twin"
    fails=$((fails + 1))
fi
timeout 10 "${ctl[@]}" --ipc "$sock" kni list || true

step "dpvs-ctl service list --stats"
timeout 10 "${ctl[@]}" --ipc "$sock" service list --stats || true

step "dpvs-ctl stats"
timeout 10 "${ctl[@]}" --ipc "$sock" stats || true

echo
if [ "$fails" -gt 0 ]; then
    echo "Some requests failed ($fails); the dpvs log is $state/logs/dpvs.log"
fi
if [ "$keep" = 1 ]; then
    cat <<MSG
The lab is still running. Try for example:
  ip netns exec $prefix-cl curl -s http://10.0.0.100/
  ${ctl[*]} --ipc $sock service list --stats
  ${ctl[*]} --ipc $sock conn list
Stop it with:
  scripts/demo.sh stop
MSG
else
    echo "Done. (Run 'scripts/demo.sh --keep' to leave the lab running.)"
fi
[ "$fails" -eq 0 ]
