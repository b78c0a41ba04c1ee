#!/usr/bin/env bash
# A real NetworkManager for tests, inside one network namespace, with its own configuration.
# There is no systemd here, so this starts what NetworkManager needs itself:
#   - a system D-Bus (dbus-daemon --system), unless one already answers;
#   - systemd-udevd inside the namespace: without udev, NetworkManager treats every device as
#     unmanaged (which would make any "NetworkManager leaves it alone" test meaningless), and
#     the kernel sends a namespace's device uevents only to listeners in that namespace;
#   - NetworkManager (1.42) inside the namespace (ip netns exec remounts /sys for it), reading
#     DIR/NetworkManager.conf, DIR/conf.d (--config-dir) and profiles from DIR/connections, with
#     one profile that would take every ethernet device with DHCP.
#
#   scripts/nm_lab.sh start NS DIR   start the lab; prints nothing on success, why on failure
#   scripts/nm_lab.sh stop NS DIR    stop, by PID, what start started (idempotent)
#
# NetworkManager owns a well-known D-Bus name, so only one lab can run at a time: callers hold
# an exclusive flock on /run/dpvs-test-nm.lock for the lab's whole life (kni::lab::NmLab does;
# from a shell: flock /run/dpvs-test-nm.lock -c '...'). nmcli talks to the lab's NetworkManager.
# The lab never touches /etc: DNS, resolv.conf and the hostname are left alone (dns=none,
# rc-manager=unmanaged, hostname-mode=none). Logs: DIR/nm.log, DIR/udevd.log.
#
# Environment (both optional):
#   NM_LAB_CONF_DIR   the --config-dir NetworkManager reads (default DIR/conf.d); the daemon's
#                     end-to-end test points it at /etc/NetworkManager/conf.d, where dpvs writes
#                     its unmanaged keyfile
#   NM_LAB_UNMANAGED  devices to leave alone besides, as keyfile specs ("interface-name:x;...")
set -Eeuo pipefail

cmd=${1:-}; ns=${2:-}; dir=${3:-}
if [ -z "$cmd" ] || [ -z "$ns" ] || [ -z "$dir" ]; then
    sed -n '2,22p' "$0" >&2
    exit 2
fi

udevd=/lib/systemd/systemd-udevd
[ -x "$udevd" ] || udevd=$(command -v systemd-udevd || true)

die() { echo "nm_lab.sh: $*" >&2; exit 1; }

udevadm_ping() { udevadm control --ping >/dev/null 2>&1; }

bus_answers() {
    dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.GetId \
        >/dev/null 2>&1
}

# Wait up to $1 tenths of a second for the command that follows to succeed.
wait_for() {
    local n=$1; shift
    for _ in $(seq "$n"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

start_dbus() {
    if bus_answers; then
        return
    fi
    # A socket or pid file left by a dead bus makes dbus-daemon refuse to start.
    rm -f /run/dbus/pid /run/dbus/system_bus_socket
    mkdir -p /run/dbus
    dbus-daemon --system --fork --print-pid >"$dir/dbus.pid"
    wait_for 50 bus_answers || die "the system D-Bus did not come up"
}

start_udevd() {
    [ -n "$udevd" ] || die "systemd-udevd not found (Debian package udev)"
    if [ -S /run/udev/control ] && udevadm_ping; then
        die "a udevd already runs (outside $ns): it cannot see the namespace's devices"
    fi
    rm -f /run/udev/control
    [ -d /run/udev ] || { mkdir -p /run/udev; touch "$dir/run-udev.created"; }
    setsid ip netns exec "$ns" "$udevd" >"$dir/udevd.log" 2>&1 &
    echo $! >"$dir/udevd.pid"
    wait_for 50 udevadm_ping || die "udevd did not come up (see $dir/udevd.log)"
    # Devices that existed before udevd (lo, ...) have no udev record yet: announce them.
    ip netns exec "$ns" udevadm trigger --action=add --subsystem-match=net
    ip netns exec "$ns" udevadm settle --timeout=10
}

write_config() {
    mkdir -p "$dir/conf.d" "$dir/connections" "$dir/state" "$dir/sysconf.d"
    cat >"$dir/NetworkManager.conf" <<CONF
[main]
plugins=keyfile
no-auto-default=*
dns=none
rc-manager=unmanaged
hostname-mode=none
systemd-resolved=false
[keyfile]
path=$dir/connections
${NM_LAB_UNMANAGED:+unmanaged-devices=$NM_LAB_UNMANAGED}
[logging]
level=INFO
CONF
    # Would take every ethernet device with DHCP (and fail fast, then drop the addresses).
    cat >"$dir/connections/grab-all.nmconnection" <<'PROFILE'
[connection]
id=grab-all
type=ethernet
autoconnect=true
[match]
interface-name=*
[ipv4]
method=auto
dhcp-timeout=5
[ipv6]
method=auto
PROFILE
    chmod 600 "$dir/connections/grab-all.nmconnection"
}

start_nm() {
    [ -d /run/NetworkManager ] || { mkdir -p /run/NetworkManager; touch "$dir/run-nm.created"; }
    setsid ip netns exec "$ns" NetworkManager --debug \
        --config="$dir/NetworkManager.conf" --config-dir="${NM_LAB_CONF_DIR:-$dir/conf.d}" \
        --system-config-dir="$dir/sysconf.d" --intern-config="$dir/state/intern.conf" \
        --state-file="$dir/state/NetworkManager.state" --pid-file="$dir/state/nm.pid" \
        >"$dir/nm.log" 2>&1 &
    echo $! >"$dir/nm.pid"
    nm_started() { nmcli -t -f STARTUP general 2>/dev/null | grep -qx 'started'; }
    wait_for 300 nm_started || die "NetworkManager did not finish starting (see $dir/nm.log)"
}

stop_pidfile() {
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

case $cmd in
    start)
        [ "$(id -u)" -eq 0 ] || die "needs root"
        command -v NetworkManager >/dev/null || die "NetworkManager not installed (Debian package network-manager)"
        [ -e "/run/netns/$ns" ] || die "no network namespace $ns"
        if pgrep -x NetworkManager >/dev/null; then
            die "a NetworkManager already runs on this machine; only one can own its D-Bus name"
        fi
        mkdir -p "$dir"
        trap '"$0" stop "$ns" "$dir"' ERR
        start_dbus
        start_udevd
        write_config
        start_nm
        ;;
    stop)
        stop_pidfile "$dir/nm.pid"
        stop_pidfile "$dir/udevd.pid"
        if [ -f "$dir/dbus.pid" ]; then
            stop_pidfile "$dir/dbus.pid"
            rm -f /run/dbus/pid /run/dbus/system_bus_socket
        fi
        if [ -f "$dir/run-udev.created" ]; then
            rm -rf /run/udev "$dir/run-udev.created"
        fi
        if [ -f "$dir/run-nm.created" ]; then
            rm -rf /run/NetworkManager "$dir/run-nm.created"
        fi
        ;;
    *)
        die "unknown command $cmd (start|stop)"
        ;;
esac
