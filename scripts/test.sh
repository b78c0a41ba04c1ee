#!/usr/bin/env bash
# The project's test command (also what CI runs):
#   set-up + release build (scripts/setup.sh), unit/integration tests (cargo nextest, or cargo
#   test when nextest is missing), a short run of each fuzz target (scripts/fuzz.sh --short),
#   then the end-to-end suite (tests/e2e/run.sh).
#
#   scripts/test.sh [--no-setup] [--unit-only | --e2e-only] [E2E_TEST...]
# Exits non-zero if anything failed. The last line is the e2e summary `N passed, M failed`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

setup=1
unit=1
e2e=1
e2e_tests=()
for arg in "$@"; do
    case $arg in
        --no-setup) setup=0 ;;
        --unit-only) e2e=0 ;;
        --e2e-only) unit=0 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        -*) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
        *) e2e_tests+=("$arg") ;;
    esac
done

if [ "$setup" = 1 ]; then
    scripts/setup.sh
fi
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi

status=0
if [ "$unit" = 1 ]; then
    echo "== unit and integration tests"
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-tests=warn || status=1
    else
        cargo test --workspace || status=1
    fi
    echo "== fuzz targets: a quick build, 20 s each, two at a time (scripts/fuzz.sh --short)"
    scripts/fuzz.sh --short || status=1
fi

if [ "$e2e" = 1 ]; then
    echo "== end-to-end tests (tests/e2e/run.sh)"
    tests/e2e/run.sh "${e2e_tests[@]}" || status=1
fi
exit "$status"
