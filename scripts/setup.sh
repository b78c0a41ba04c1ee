#!/usr/bin/env bash
# Install what DPVS-RS needs on a fresh Debian 12, then build the workspace (release).
# Idempotent: installs only what is missing.
#
#   scripts/setup.sh              install + cargo build --release --workspace
#   scripts/setup.sh --no-build   install only
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=1
for arg in "$@"; do
    case $arg in
        --no-build) build=0 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

log() { echo "setup: $*"; }

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup.sh: run as root (or install sudo)" >&2; exit 1; }
    sudo=(sudo)
fi

# 1. Debian packages.
pkgs=(libdpdk-dev dpdk-dev clang libclang-dev pkg-config iproute2 ethtool curl python3
      procps iputils-ping build-essential ca-certificates python3-matplotlib coreutils network-manager dbus udev)
missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "Debian packages present"
fi

# 2. Rust.
if [ -f "$HOME/.cargo/env" ]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    log "installing Rust (rustup, stable)"
    curl https://sh.rustup.rs -sSf | sh -s -- -y --profile minimal -c rustfmt,clippy >/dev/null
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
fi
log "$(cargo --version)"

# 3. cargo-nextest (one process per test: DPDK's EAL initialises once per process).
if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest (cargo install, takes a few minutes)"
    cargo install cargo-nextest --locked --quiet
fi

# 4. cargo-fuzz (the fuzz targets' short runs in scripts/test.sh: scripts/fuzz.sh, fuzz/README.md).
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (cargo install, takes a minute)"
    cargo install cargo-fuzz --locked --quiet
fi

# 5. Build.
if [ "$build" = 1 ]; then
    log "cargo build --release --workspace"
    cargo build --release --workspace
fi
log "done"
