#!/usr/bin/env bash
# The fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) on the stable toolchain: cargo-fuzz needs
# nightly flags, which RUSTC_BOOTSTRAP=1 allows on stable. See fuzz/README.md.
#
#   scripts/fuzz.sh --short [SECONDS]     build every target (quickly: dev profile, opt-level 1,
#                                         no sanitizer), run each SECONDS (default 20), two at a
#                                         time, from its committed seeds; fails on a crash (the
#                                         test step)
#   scripts/fuzz.sh TARGET [SECONDS] [-- LIBFUZZER_ARGS...]
#                                         run one target (default: until stopped) from its seeds
#                                         and what earlier runs found, in fuzz/work/TARGET
#
# Environment: SANITIZER (address, the default of cargo-fuzz, or none: faster to build, three
# to four times faster to run; the targets are safe Rust; --short uses none), FUZZ_FLAGS (more
# `cargo fuzz run` options, e.g. --no-trace-compares), JOBS (libFuzzer -fork processes for a
# long run).
# Crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
export RUSTC_BOOTSTRAP=1

targets=(parse pipeline control config)

# The longest input of each target: a few dozen frames, requests or config sections.
max_len() {
    case $1 in
        parse) echo 2048 ;;
        *) echo 4096 ;;
    esac
}

# Seed directories besides fuzz/corpus/TARGET: the config loader also starts from the
# project's sample configs.
extra_seeds() {
    case $1 in
        config) echo conf bench/conf ;;
    esac
}

usage() { sed -n '2,17p' "$0"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing (scripts/setup.sh installs it)" >&2
    exit 2
fi

# One short run of target $1 for $2 seconds from its committed seeds, with the binary that
# `--short` built; new inputs go to a scratch directory (the committed seeds stay as they are).
# Prints libFuzzer's summary, or the failure and where its input is; fails on a crash.
short_run() {
    local t=$1 seconds=$2 scratch status=0
    scratch=$(mktemp -d)
    mkdir -p "fuzz/artifacts/$t"
    # shellcheck disable=SC2046 # extra_seeds is a list of directories
    if "$short_bin/$t" "$scratch" "fuzz/corpus/$t" $(extra_seeds "$t") \
        -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$scratch.log" 2>&1; then
        echo "fuzz: $t: $(grep -h '^Done' "$scratch.log")"
    else
        status=1
        tail -n 40 "$scratch.log"
        echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/ (see fuzz/README.md)"
    fi
    rm -rf "$scratch" "$scratch.log"
    return "$status"
}

case ${1:-} in
    --short)
        seconds=${2:-20}
        # A build for a smoke test, not for hours: the dev profile at opt-level 1 builds in
        # less than half the CPU time of cargo-fuzz's release build and runs the targets
        # about as fast; debug assertions and overflow checks are on, as in every build.
        export CARGO_PROFILE_DEV_OPT_LEVEL=1 CARGO_PROFILE_DEV_DEBUG=line-tables-only
        export CARGO_INCREMENTAL=0
        cargo fuzz build --dev --sanitizer "${SANITIZER:-none}"
        short_bin=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/debug
        # Two targets at a time, one per core of a two-core CI machine.
        status=0
        for pair in "parse pipeline" "control config"; do
            pids=()
            for t in $pair; do
                echo "fuzz: $t for ${seconds}s"
                short_run "$t" "$seconds" &
                pids+=("$!")
            done
            for pid in "${pids[@]}"; do
                wait "$pid" || status=1
            done
        done
        exit "$status"
        ;;
    -h | --help | "")
        usage
        exit 0
        ;;
esac

target=$1
shift
seconds=
if [ $# -gt 0 ] && [ "$1" != -- ]; then
    seconds=$1
    shift
fi
[ "${1:-}" = -- ] && shift
if [[ ! " ${targets[*]} " =~ \ $target\  ]]; then
    echo "fuzz.sh: unknown target $target (targets: ${targets[*]})" >&2
    exit 2
fi
args=(-max_len="$(max_len "$target")" -timeout=10 -print_final_stats=1)
[ -n "$seconds" ] && args+=(-max_total_time="$seconds")
[ -n "${JOBS:-}" ] && args+=(-fork="$JOBS")
# The corpus a run grows is fuzz/work/TARGET (not committed); the seeds are read only.
mkdir -p "fuzz/work/$target"
# shellcheck disable=SC2046,SC2086 # word splitting of lists wanted
exec cargo fuzz run --sanitizer "${SANITIZER:-address}" ${FUZZ_FLAGS:-} "$target" \
    "fuzz/work/$target" "fuzz/corpus/$target" $(extra_seeds "$target") -- "${args[@]}" "$@"
