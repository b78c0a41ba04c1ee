#!/usr/bin/env bash
# The fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) on the stable toolchain: cargo-fuzz needs
# nightly flags, which RUSTC_BOOTSTRAP=1 allows on stable. See fuzz/README.md.
#
#   scripts/fuzz.sh --short [SECONDS]     build every target, run each SECONDS (default 20) from
#                                         its committed seeds; fails on a crash (the test step)
#   scripts/fuzz.sh TARGET [SECONDS] [-- LIBFUZZER_ARGS...]
#                                         run one target (default: until stopped) from its seeds
#                                         and what earlier runs found, in fuzz/work/TARGET
#
# Environment: SANITIZER (address, the default of cargo-fuzz; or none: twice as fast to build,
# four times faster to run; the targets are safe Rust), FUZZ_FLAGS (more `cargo fuzz run`
# options, e.g. --no-trace-compares), JOBS (libFuzzer -fork processes for a long run).
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

usage() { sed -n '2,14p' "$0"; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing (scripts/setup.sh installs it)" >&2
    exit 2
fi

case ${1:-} in
    --short)
        seconds=${2:-20}
        sanitizer=${SANITIZER:-none}
        # 16 codegen units: a quicker build, for runs this short.
        cargo fuzz build --sanitizer "$sanitizer" --codegen-units 16
        status=0
        for t in "${targets[@]}"; do
            # New inputs go to a scratch directory: the committed seeds stay as they are.
            scratch=$(mktemp -d)
            echo "fuzz: $t for ${seconds}s"
            # shellcheck disable=SC2046 # extra_seeds is a list of directories
            if cargo fuzz run --sanitizer "$sanitizer" --codegen-units 16 "$t" \
                "$scratch" "fuzz/corpus/$t" $(extra_seeds "$t") -- \
                -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 \
                -print_final_stats=1 >"$scratch.log" 2>&1; then
                grep -h '^Done' "$scratch.log"
            else
                status=1
                tail -n 40 "$scratch.log"
                echo "fuzz: $t FAILED; the input is in fuzz/artifacts/$t/ (see fuzz/README.md)"
            fi
            rm -rf "$scratch" "$scratch.log"
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
