#!/usr/bin/env bash
# End-to-end tests of dpvs over real kernel TCP/UDP stacks in network namespaces.
#
#   tests/e2e/run.sh [TEST...]      all tests, or only the named ones
#   tests/e2e/run.sh --list
#
# Each test is tests/e2e/t_NAME.py, runs in its own lab (namespaces named with its own PREFIX)
# under a hard time limit, and is torn down even when it fails or is killed. Prints
# `PASS name` / `FAIL name: reason`, then `N passed, M failed`; exits non-zero on any failure.
#
# Environment: DPVS_BIN, DPVS_CTL (default target/release/{dpvs,dpvs-ctl}),
# E2E_TEST_TIMEOUT (seconds per test, default 180), E2E_LOG_DIR (default target/e2e-logs).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
e2e=$root/tests/e2e

all_tests=(bad_config fullnat_tcp fullnat_udp nat_tcp dr_tcp tun_tcp icmp_pmtu rs_weight0_drain rs_delete schedulers bad_control garbage_frames fragments_tap churn restart kni kni_nm bench_smoke)

if [ "${1:-}" = --list ]; then
    printf '%s\n' "${all_tests[@]}"
    exit 0
fi
if [ $# -gt 0 ]; then
    tests=("$@")
else
    tests=("${all_tests[@]}")
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "tests/e2e/run.sh: needs root (network namespaces, raw sockets)" >&2
    echo "0 passed, ${#tests[@]} failed"
    exit 1
fi

py=$(command -v python3)
export PYTHONDONTWRITEBYTECODE=1
per_test=${E2E_TEST_TIMEOUT:-180}
log_dir=${E2E_LOG_DIR:-${CARGO_TARGET_DIR:-$root/target}/e2e-logs}
export E2E_LOG_DIR=$log_dir
mkdir -p "$log_dir"
run_id=$(( $$ % 100000 ))
prefixes=()

cleanup() {
    local p
    for p in "${prefixes[@]}"; do
        "$root/scripts/topology.sh" down "$p" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

passed=0
failed=0
i=0
for t in "${tests[@]}"; do
    i=$((i + 1))
    script=$e2e/t_$t.py
    if [ ! -f "$script" ]; then
        echo "FAIL $t: no such test ($script)"
        failed=$((failed + 1))
        continue
    fi
    prefix=e${run_id}t$i
    prefixes+=("$prefix")
    out=$log_dir/$t.log
    start=$SECONDS
    rc=0
    timeout -k 15 "$per_test" "$py" -u "$script" --prefix "$prefix" >"$out" 2>&1 || rc=$?
    "$root/scripts/topology.sh" down "$prefix" >/dev/null 2>&1 || true
    dt=$((SECONDS - start))
    if [ "$rc" -eq 0 ] && tail -n 1 "$out" | grep -qx OK; then
        echo "PASS $t (${dt}s)"
        passed=$((passed + 1))
    else
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            reason="timed out after ${per_test}s"
        else
            reason=$(grep -E '^FAIL: ' "$out" | tail -n 1 | cut -c7- || true)
            [ -n "$reason" ] || reason="exit status $rc"
        fi
        echo "FAIL $t: $reason"
        grep -vE '^FAIL: ' "$out" | tail -n 25 | sed 's/^/    /'
        echo "    (full log: $out)"
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
