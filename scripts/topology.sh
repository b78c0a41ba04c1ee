#!/usr/bin/env bash
# A two-arm FullNAT lab in network namespaces, every name derived from PREFIX so that parallel
# runs and clean-up are safe.
#
#   scripts/topology.sh up PREFIX        create the namespaces and links
#   scripts/topology.sh servers PREFIX   start scripts/servers.py in PREFIX-rs1 and PREFIX-rs2
#   scripts/topology.sh direct PREFIX    make rs1, rs2 DR/TUN real servers with a return path
#                                        that bypasses the balancer (see direct() below)
#   scripts/topology.sh pmtu PREFIX      a client and a real server one narrow hop away, behind
#                                        kernel routers (see pmtu() below)
#   scripts/topology.sh down PREFIX      kill what was started, delete everything (idempotent)
#   scripts/topology.sh status PREFIX    show the namespaces, links and recorded processes
#   scripts/topology.sh mac PREFIX PORT  print the MAC of lbc or lbr (what dpvs's port will use)
#
#   PREFIX-cl   eth0 10.0.0.2/24, default via 10.0.0.1 ------------+
#                                                                  | veth
#   PREFIX-lb   lbc (no kernel address; dpvs dpdk0 via af_packet) -+
#               lbr (no kernel address; dpvs dpdk1 via af_packet) -+
#                                                                  | veth
#   PREFIX-sw   br0 = { p-lb, p-rs1, p-rs2 } ----------------------+
#   PREFIX-rs1  eth0 192.168.10.11/24, default via 192.168.10.1 --- p-rs1
#   PREFIX-rs2  eth0 192.168.10.12/24, default via 192.168.10.1 --- p-rs2
#
# dpvs owns, in that lab: 10.0.0.1/24 and the VIP 10.0.0.100/32 on dpdk0 (lbc), 192.168.10.1/24
# and the local address 192.168.10.200/32 on dpdk1 (lbr).
#
# State (PIDs of started processes, logs, the control socket) lives in /tmp/dpvs-lab-PREFIX/.
# `down` removes it unless DPVS_LAB_KEEP_LOGS=1.
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    echo "usage: $0 up|down|servers|direct|pmtu|status PREFIX | mac PREFIX lbc|lbr" >&2
    exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
prefix=$2
# Namespace names are free-form, but keep PREFIX short and simple: it also names the DPDK
# runtime directory (--file-prefix) and the state directory.
if ! [[ $prefix =~ ^[A-Za-z0-9][A-Za-z0-9_]{0,15}$ ]]; then
    echo "$0: PREFIX must be 1-16 characters of [A-Za-z0-9_] (got '$prefix')" >&2
    exit 2
fi

state=/tmp/dpvs-lab-$prefix
ns_lb=$prefix-lb
ns_cl=$prefix-cl
ns_sw=$prefix-sw
ns_rs1=$prefix-rs1
ns_rs2=$prefix-rs2
all_ns=("$ns_cl" "$ns_rs1" "$ns_rs2" "$ns_sw" "$ns_lb")
# Made by `pmtu` only; removed by `down` when present.
ns_c2=$prefix-c2
ns_rs3=$prefix-rs3
extra_ns=("$ns_c2" "$ns_rs3")

# Fixed, locally administered MACs: easy to recognise in captures, and each lab is its own L2.
mac_lbc=02:d0:00:00:00:01
mac_cl=02:d0:00:00:00:02
mac_lbr=02:d0:00:00:01:01
mac_rs1=02:d0:00:00:01:11
mac_rs2=02:d0:00:00:01:12

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# Write a sysctl inside a namespace; quietly ignore knobs this kernel does not have.
ns_sysctl() {
    local ns=$1 key=$2 val=$3
    local path=/proc/sys/${key//.//}
    nsx "$ns" sh -c "[ -w '$path' ] && echo '$val' > '$path'" 2>/dev/null || true
}

no_ipv6() { # ns dev...
    local ns=$1; shift
    local d
    for d in "$@"; do ns_sysctl "$ns" "net.ipv6.conf.$d.disable_ipv6" 1; done
}

# Offloads off, one feature at a time so an unsupported one does not stop the others.
offloads_off() { # ns dev
    local f
    for f in tx rx tso gso gro lro tx-checksumming; do
        nsx "$1" ethtool -K "$2" "$f" off >/dev/null 2>&1 || true
    done
}

up() {
    if ns_exists "$ns_lb"; then
        echo "topology $prefix already exists; run '$0 down $prefix' first" >&2
        exit 1
    fi
    mkdir -p "$state/pids" "$state/logs"
    # If anything below fails, leave nothing half-built behind.
    trap 'echo "topology up $prefix failed; cleaning up" >&2; down >/dev/null 2>&1 || true' ERR

    local ns
    for ns in "${all_ns[@]}"; do
        ip netns add "$ns"
        # IPv6 off by default so new links never chatter (RS/MLD/DAD) at the balancer.
        ns_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 1
        ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 1
        nsx "$ns" ip link set lo up
    done

    # Client arm: lbc (lb) <-> eth0 (cl). Created straight inside the namespaces: no name is
    # ever used in the root namespace, so parallel labs cannot collide.
    ip link add lbc netns "$ns_lb" address "$mac_lbc" type veth peer name eth0 netns "$ns_cl" address "$mac_cl"
    # Real-server arm: lbr (lb) <-> p-lb (sw bridge port).
    ip link add lbr netns "$ns_lb" address "$mac_lbr" type veth peer name p-lb netns "$ns_sw"
    ip link add eth0 netns "$ns_rs1" address "$mac_rs1" type veth peer name p-rs1 netns "$ns_sw"
    ip link add eth0 netns "$ns_rs2" address "$mac_rs2" type veth peer name p-rs2 netns "$ns_sw"

    # Balancer namespace: links up, no kernel addresses, no IPv6: dpvs owns them via af_packet.
    # af_packet leaves the kernel its copy of every frame: keep the namespace's stack off
    # them (no ARP answers, no packet passes the reverse-path check), so that what reaches
    # the kernel comes through the kernel twins alone, as with a NIC bound to DPDK.
    no_ipv6 "$ns_lb" lbc lbr
    ns_sysctl "$ns_lb" net.ipv4.ip_forward 0
    local d
    for d in lbc lbr; do
        offloads_off "$ns_lb" "$d"
        ns_sysctl "$ns_lb" "net.ipv4.conf.$d.arp_ignore" 1
        ns_sysctl "$ns_lb" "net.ipv4.conf.$d.rp_filter" 1
        nsx "$ns_lb" ip link set "$d" up
    done

    # Client.
    no_ipv6 "$ns_cl" eth0
    offloads_off "$ns_cl" eth0
    nsx "$ns_cl" ip addr add 10.0.0.2/24 dev eth0
    nsx "$ns_cl" ip link set eth0 up
    nsx "$ns_cl" ip route add default via 10.0.0.1

    # Switch.
    nsx "$ns_sw" ip link add br0 type bridge stp_state 0 forward_delay 0
    no_ipv6 "$ns_sw" br0 p-lb p-rs1 p-rs2
    for d in p-lb p-rs1 p-rs2; do
        offloads_off "$ns_sw" "$d"
        nsx "$ns_sw" ip link set "$d" master br0
        nsx "$ns_sw" ip link set "$d" up
    done
    offloads_off "$ns_sw" br0
    nsx "$ns_sw" ip link set br0 up

    # Real servers.
    local i ns_rs
    for i in 1 2; do
        ns_rs=$prefix-rs$i
        no_ipv6 "$ns_rs" eth0
        offloads_off "$ns_rs" eth0
        nsx "$ns_rs" ip addr add "192.168.10.1$i/24" dev eth0
        nsx "$ns_rs" ip link set eth0 up
        nsx "$ns_rs" ip route add default via 192.168.10.1
    done
    trap - ERR
    echo "topology $prefix up: namespaces ${all_ns[*]}; state in $state"
}

# Kill one recorded process (TERM, then KILL after a grace period). Only PIDs we recorded.
kill_pidfile() {
    local f=$1 pid i
    pid=$(cat "$f" 2>/dev/null || true)
    rm -f "$f"
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

down() {
    local f ns pid
    if [ -d "$state/pids" ]; then
        for f in "$state"/pids/*.pid; do
            [ -e "$f" ] || continue
            kill_pidfile "$f"
        done
    fi
    # Anything still running inside our namespaces was started there by this lab's users.
    for ns in "${extra_ns[@]}" "${all_ns[@]}"; do
        ns_exists "$ns" || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
            kill -TERM "$pid" 2>/dev/null || true
        done
    done
    for ns in "${extra_ns[@]}" "${all_ns[@]}"; do
        ns_exists "$ns" || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
            for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    for ns in "${extra_ns[@]}" "${all_ns[@]}"; do
        if ns_exists "$ns"; then
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    # DPDK runtime directory of a daemon run with --file-prefix PREFIX.
    rm -rf "/var/run/dpdk/$prefix"
    if [ "${DPVS_LAB_KEEP_LOGS:-0}" = 1 ]; then
        rm -rf "$state/pids"
        rm -f "$state"/*.sock
    else
        rm -rf "$state"
    fi
    echo "topology $prefix down"
}

# wait_in_rs WHAT LOG CHECK: runs `CHECK NAMESPACE` until it succeeds for rs1 and for rs2,
# for at most 10 s in all; else prints $state/logs/rsN.LOG and exits 1.
wait_in_rs() {
    local what=$1 log=$2 check=$3 deadline=$((SECONDS + 10)) i
    for i in 1 2; do
        until "$check" "$prefix-rs$i" 2>/dev/null; do
            if [ $SECONDS -ge $deadline ]; then
                echo "$what in $prefix-rs$i did not start:" >&2
                cat "$state/logs/rs$i.$log" >&2 || true
                exit 1
            fi
            sleep 0.1
        done
    done
}

rs_listens() { # ns: its HTTP server accepts connections
    ip netns exec "$1" python3 -c '
import socket
socket.create_connection(("127.0.0.1", 8080), timeout=1).close()'
}
rs_decap_up() { ip -n "$1" link show ipip0 | grep -q ',UP'; } # ns: its decapsulator is up

servers() {
    ns_exists "$ns_rs1" || { echo "topology $prefix is not up" >&2; exit 1; }
    mkdir -p "$state/pids" "$state/logs"
    local py i
    py=$(command -v python3)
    for i in 1 2; do
        ip netns exec "$prefix-rs$i" "$py" -u "$here/servers.py" --name "rs$i" \
            --http-port 8080 --udp-port 5353 --log "$state/logs/rs$i.peers.jsonl" \
            >"$state/logs/rs$i.out" 2>&1 &
        echo $! >"$state/pids/rs$i.pid"
    done
    # Wait (bounded) until both listen.
    wait_in_rs servers out rs_listens
    echo "servers rs1, rs2 up in $prefix (logs in $state/logs)"
}

status() {
    local ns f
    for ns in "${all_ns[@]}" "${extra_ns[@]}"; do
        if ns_exists "$ns"; then
            echo "== $ns"
            ip -n "$ns" -br addr 2>/dev/null || true
        else
            echo "== $ns (absent)"
        fi
    done
    if [ -d "$state/pids" ]; then
        for f in "$state"/pids/*.pid; do
            [ -e "$f" ] || continue
            echo "process $(basename "$f" .pid): pid $(cat "$f")"
        done
    fi
}

# DR and TUN real servers answer the client directly, not through the balancer:
#   PREFIX-cl  eth1 192.168.10.2/24 on the switch (the return path; rp_filter off, since the
#              replies from the VIP arrive on eth1 while the VIP is routed via eth0)
#   PREFIX-rsN the VIP 10.0.0.100/32 on lo (arp_ignore=1, arp_announce=2, as an LVS real
#              server), 10.0.0.0/24 via 192.168.10.2, and scripts/ipip_decap.py feeding the
#              TUN device ipip0 (this kernel has no ipip module). Its decapsulated-packet count
#              is in $state/logs/rsN.ipip.count.
direct() {
    ns_exists "$ns_rs1" || { echo "topology $prefix is not up" >&2; exit 1; }
    mkdir -p "$state/pids" "$state/logs"
    local py i ns_rs d
    py=$(command -v python3)
    ip link add eth1 netns "$ns_cl" type veth peer name p-cl netns "$ns_sw"
    offloads_off "$ns_sw" p-cl
    nsx "$ns_sw" ip link set p-cl master br0
    nsx "$ns_sw" ip link set p-cl up
    no_ipv6 "$ns_cl" eth1
    offloads_off "$ns_cl" eth1
    nsx "$ns_cl" ip addr add 192.168.10.2/24 dev eth1
    nsx "$ns_cl" ip link set eth1 up
    for d in all default eth0 eth1; do
        ns_sysctl "$ns_cl" "net.ipv4.conf.$d.rp_filter" 0
    done
    for i in 1 2; do
        ns_rs=$prefix-rs$i
        nsx "$ns_rs" ip addr add 10.0.0.100/32 dev lo
        for d in all eth0; do
            ns_sysctl "$ns_rs" "net.ipv4.conf.$d.arp_ignore" 1
            ns_sysctl "$ns_rs" "net.ipv4.conf.$d.arp_announce" 2
            ns_sysctl "$ns_rs" "net.ipv4.conf.$d.rp_filter" 0
        done
        nsx "$ns_rs" ip route add 10.0.0.0/24 via 192.168.10.2
        ip netns exec "$ns_rs" "$py" -u "$here/ipip_decap.py" --dev ipip0 \
            --count-file "$state/logs/rs$i.ipip.count" >"$state/logs/rs$i.ipip.out" 2>&1 &
        echo $! >"$state/pids/rs$i.ipip.pid"
    done
    # Wait (bounded) until both decapsulators have their device up.
    wait_in_rs decapsulator ipip.out rs_decap_up
    echo "rs1, rs2 are direct-return real servers in $prefix"
}

# Path MTU discovery through the balancer needs a router that cannot forward one end's big
# packets: an end host's own narrow link never makes one (its TCP announces an MSS that fits),
# but a narrower link further on does. Two such hops, each a forwarding kernel whose
# interface onto the far host's link has MTU 1400 while the far host's own end keeps 1500
# (so it announces the full MSS, like a host that does not know of a narrower link beyond):
#   PREFIX-cl   also a router (ip_forward) to PREFIX-c2: eth2 10.0.2.1/24, MTU 1400
#   PREFIX-c2   eth0 10.0.2.2/24, MTU 1500, default via 10.0.2.1: a client one narrow hop
#               behind the balancer's client link (the balancer routes 10.0.2.0/24 via
#               10.0.0.2)
#   PREFIX-sw   also a router (ip_forward): br0 192.168.10.254/24, default via 192.168.10.1 (the
#               balancer: NAT replies go back through it), p-rs3 192.168.30.1/24, MTU 1400
#   PREFIX-rs3  eth0 192.168.30.13/24, MTU 1500, default via 192.168.30.1, scripts/servers.py
#               on 8080 (log $state/logs/rs3.peers.jsonl): a real server one narrow hop
#               behind the balancer's real-server link (routed 192.168.30.0/24 via
#               192.168.10.254)
pmtu() {
    ns_exists "$ns_sw" || { echo "topology $prefix is not up" >&2; exit 1; }
    if ns_exists "$ns_c2"; then
        echo "topology $prefix already has its pmtu hosts" >&2
        exit 1
    fi
    mkdir -p "$state/pids" "$state/logs"
    local ns py
    for ns in "${extra_ns[@]}"; do
        ip netns add "$ns"
        ns_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 1
        ns_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 1
        nsx "$ns" ip link set lo up
    done

    ip link add eth2 netns "$ns_cl" type veth peer name eth0 netns "$ns_c2"
    narrow_hop "$ns_cl" eth2 10.0.2.1/24 "$ns_c2" 10.0.2.2/24
    ns_sysctl "$ns_cl" net.ipv4.ip_forward 1

    ip link add p-rs3 netns "$ns_sw" type veth peer name eth0 netns "$ns_rs3"
    narrow_hop "$ns_sw" p-rs3 192.168.30.1/24 "$ns_rs3" 192.168.30.13/24
    nsx "$ns_sw" ip addr add 192.168.10.254/24 dev br0
    nsx "$ns_sw" ip route add default via 192.168.10.1
    ns_sysctl "$ns_sw" net.ipv4.ip_forward 1

    py=$(command -v python3)
    ip netns exec "$ns_rs3" "$py" -u "$here/servers.py" --name rs3 \
        --http-port 8080 --udp-port 5353 --log "$state/logs/rs3.peers.jsonl" \
        >"$state/logs/rs3.out" 2>&1 &
    echo $! >"$state/pids/rs3.pid"
    local deadline=$((SECONDS + 10))
    until rs_listens "$ns_rs3" 2>/dev/null; do
        if [ $SECONDS -ge $deadline ]; then
            echo "servers.py in $ns_rs3 did not start:" >&2
            cat "$state/logs/rs3.out" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    echo "pmtu hosts $ns_c2, $ns_rs3 up in $prefix"
}

# narrow_hop ROUTER_NS DEV ROUTER_ADDR HOST_NS HOST_ADDR: the router's DEV (MTU 1400) and the
# host's eth0 (MTU 1500, default route via the router) are up, offloads off, no IPv6.
narrow_hop() {
    local rns=$1 dev=$2 raddr=$3 hns=$4 haddr=$5
    no_ipv6 "$rns" "$dev"
    no_ipv6 "$hns" eth0
    offloads_off "$rns" "$dev"
    offloads_off "$hns" eth0
    nsx "$rns" ip link set "$dev" mtu 1400
    nsx "$rns" ip addr add "$raddr" dev "$dev"
    nsx "$rns" ip link set "$dev" up
    nsx "$hns" ip addr add "$haddr" dev eth0
    nsx "$hns" ip link set eth0 up
    nsx "$hns" ip route add default via "${raddr%/*}"
}

case $cmd in
    up) up ;;
    down) down ;;
    servers) servers ;;
    direct) direct ;;
    pmtu) pmtu ;;
    status) status ;;
    mac)
        [ $# -eq 3 ] || usage
        ip -n "$ns_lb" link show "$3" | awk '/link\/ether/ {print $2}'
        ;;
    *) usage ;;
esac
