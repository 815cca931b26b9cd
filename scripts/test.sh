#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test against real servers.
#
# Installs and starts the test servers (scripts/services.sh up), exports their settings and
# DEDUP_LAB_REQUIRE_SERVERS=1 (a missing server is then a failure, never a skip), runs all
# tests, and stops what it started, also when something fails. At the end (also after a
# failure) it prints how long each phase took: installs, formatting, clippy, each server's
# start, the test build, each test binary, and the stop.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
jobs="${DEDUP_LAB_JOBS:-2}"

# --- phase timings -----------------------------------------------------------
PHASES=()
phase_start=0
phase_name=""
begin() {
    phase_name="$1"
    phase_start=$(date +%s)
    echo "== $1"
}
end() {
    PHASES+=("$(printf '%6ss  %s' "$(($(date +%s) - phase_start))" "$phase_name")")
    phase_name=""
}
run_started=$(date +%s)
print_timings() {
    # A phase still open when the script stops (it failed) is reported as such.
    if [ -n "$phase_name" ]; then
        PHASES+=("$(printf '%6ss  %s (stopped here)' "$(($(date +%s) - phase_start))" "$phase_name")")
    fi
    echo "== phase timings"
    printf '%s\n' "${PHASES[@]}"
    printf '%6ss  total\n' "$(($(date +%s) - run_started))"
}

services_started=0
cleanup() {
    local rc=$?
    if [ "$services_started" = 1 ]; then
        begin "stopping test servers"
        bash scripts/services.sh down || true
        end
    fi
    print_timings
    exit "$rc"
}
trap cleanup EXIT

begin "installs (C compiler, Chromium, pdflatex, rustfmt/clippy)"
if ! command -v cc >/dev/null 2>&1; then
    echo "test.sh: a C compiler is needed for bundled SQLite and zstd; installing gcc" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
fi
if ! command -v chromium >/dev/null 2>&1; then
    echo "test.sh: the HTML report is checked in headless Chromium; installing chromium" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! command -v pdflatex >/dev/null 2>&1 || ! kpsewhich pgfplots.sty >/dev/null 2>&1; then
    echo "test.sh: the LaTeX export is compiled by a test; installing pdflatex with booktabs and pgfplots" >&2
    apt-get update -qq && apt-get install -y -qq --no-install-recommends \
        texlive-latex-base texlive-latex-recommended texlive-pictures >/dev/null
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
end

begin "cargo fmt --check"
cargo fmt --all --check
end

begin "cargo clippy"
cargo clippy -j "$jobs" --workspace --all-targets -- -D warnings
end

# The Kafka test broker (crabka-broker) is built once per machine into ~/.cache/dedup-lab;
# its own phase, so a fresh machine shows what the one-time build cost.
begin "kafka broker: one-time build (cached)"
bash scripts/services.sh install kafka
end

# Servers start while nothing else runs, one by one, so each one's time is its own.
services_started=1
for system in $(bash scripts/services.sh list); do
    begin "server $system: install and start"
    bash scripts/services.sh up "$system"
    end
done
eval "$(bash scripts/services.sh env)"
export DEDUP_LAB_REQUIRE_SERVERS=1

begin "cargo test: build"
cargo test -j "$jobs" --workspace --all-targets --no-run
end

# --no-fail-fast: every test binary runs and reports, and the run fails at the end (one
# failing unit test would otherwise hide every later binary's result).
# `tee -a`: when stderr is a file (a local `.ci/run > log 2>&1`), plain tee would reopen and truncate it.
# One line per test binary in the timings: cargo prints "Running <binary>" before and
# "test result: … finished in Xs" after each.
begin "cargo test: run"
set +e
cargo test -j "$jobs" --workspace --all-targets --no-fail-fast 2>&1 | tee -a /dev/stderr | awk '
    /^ *Running / {
        name = $2
        if (name == "unittests") { c = $4; sub(/.*deps\//, "", c); sub(/-[0-9a-f]+\)$/, "", c); name = "unit tests of " c }
    }
    /^ *Doc-tests / { name = "doc-tests " $2 }
    /^test result:/ { n = split($0, f, "finished in "); if (n > 1) printf "  %9s  %s\n", f[2], name }
' >"${TMPDIR:-/tmp}/dedup-lab-test-times.$$"
status=${PIPESTATUS[0]}
set -e
end
while IFS= read -r line; do PHASES+=("$line"); done <"${TMPDIR:-/tmp}/dedup-lab-test-times.$$"
rm -f "${TMPDIR:-/tmp}/dedup-lab-test-times.$$"
exit "$status"
