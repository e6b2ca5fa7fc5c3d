#!/usr/bin/env bash
# Runs every check and test of Tether: formatting, clippy on both halves, the
# Rust unit and integration tests (real sockets, fake upstream over HTTP, real
# SQLite files and a real PostgreSQL), the fuzz targets on a short budget, then the Playwright suite
# in Debian's Chromium against the real server. Installs what is missing first (scripts/setup.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

bash scripts/setup.sh

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (server: ssr, all targets; and the fake upstream, crates/fake-upstream)"
# Both packages in one run: dependencies keep one feature set, built once.
cargo clippy -p tether -p tether-fake-upstream --features ssr --all-targets -- -D warnings

step "clippy (browser: hydrate, wasm32)"
cargo clippy --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings

step "clippy (browser: csr, wasm32, the Trunk bundle)"
cargo clippy --bin tether-csr --no-default-features --features csr --target wasm32-unknown-unknown -- -D warnings

step "PostgreSQL for the store tests (scripts/test-postgres.sh: one throw-away server for the run)"
# tests/common/postgres.rs makes a fresh database per test on it; without
# TETHER_TEST_POSTGRES each test binary would start its own.
PG_RUN=$(mktemp -d /tmp/tether-pg-run-XXXXXX)
cleanup() {
  bash scripts/test-postgres.sh stop "$PG_RUN"
  rm -rf "${E2E_DATA:-}"
}
trap cleanup EXIT
TETHER_TEST_POSTGRES=$(bash scripts/test-postgres.sh start "$PG_RUN")
export TETHER_TEST_POSTGRES

step "Rust tests (the local-model smoke test must run, not skip; the store conformance suite on SQLite and PostgreSQL)"
TETHER_REQUIRE_LOCAL_MODEL=1 cargo test -p tether -p tether-fake-upstream --features ssr
bash scripts/test-postgres.sh stop "$PG_RUN"

step "Fuzzing, short budget (scripts/fuzz.sh 15: five libFuzzer targets, 15 s each, nightly)"
# The long run is `scripts/fuzz.sh` (5 minutes per target); see the README.
bash scripts/fuzz.sh 15

step "Build the site (cargo leptos build)"
cargo leptos build

step "Build the client-only bundle (trunk build, offline)"
trunk build

step "Playwright (Debian Chromium)"
E2E_DATA=$(mktemp -d) # removed on exit (cleanup)
export TETHER_DATA_DIR="$E2E_DATA"
export LEPTOS_SITE_ROOT="$ROOT/target/site"
(cd end2end && npx playwright test)

step "Load generator smoke run (bench/run.sh --smoke: a few users, seconds)"
bash bench/run.sh --smoke

step "Soak smoke (bench/run.sh --soak 30: mixed traffic on both transports, zero errors)"
SOAK_OUT=$(mktemp -d)
export SOAK_OUT
bash bench/run.sh --soak 30 || { echo "soak samples and plot kept in $SOAK_OUT" >&2; exit 1; }
rm -rf "$SOAK_OUT"
unset SOAK_OUT

step "All checks passed"
