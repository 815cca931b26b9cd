#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test against real servers.
#
# Installs and starts the test servers (scripts/services.sh up), exports their settings and
# DEDUP_LAB_REQUIRE_SERVERS=1 (a missing server is then a failure, never a skip), runs all
# tests, and stops what it started, also when something fails.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
jobs="${DEDUP_LAB_JOBS:-2}"

if ! command -v cc >/dev/null 2>&1; then
    echo "test.sh: a C compiler is needed for bundled SQLite and zstd; installing gcc" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
fi
if ! command -v chromium >/dev/null 2>&1; then
    echo "test.sh: the HTML report is checked in headless Chromium; installing chromium" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy -j "$jobs" --workspace --all-targets -- -D warnings

services_started=0
cleanup() {
    if [ "$services_started" = 1 ]; then
        echo "== stopping test servers"
        bash scripts/services.sh down || true
    fi
}
trap cleanup EXIT

echo "== starting test servers"
bash scripts/services.sh up
services_started=1
eval "$(bash scripts/services.sh env)"
export DEDUP_LAB_REQUIRE_SERVERS=1

echo "== cargo test"
cargo test -j "$jobs" --workspace --all-targets
