#!/usr/bin/env bash
# Runs every check and test of Tether: formatting, clippy on both halves, the
# Rust unit and integration tests (real sockets, fake upstream over HTTP, real
# SQLite files; the cluster tests on real PostgreSQL, Redis and HAProxy), the
# fuzz targets on a short budget (beside the browser suites), then the Playwright suite in Debian's
# Chromium against the real server and, through HAProxy, against a cluster
# (scripts/cluster.sh). Installs what is missing first (scripts/setup.sh
# --test). Ends with the time each step took.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$ROOT/scripts/lib.sh"
cd "$ROOT"

step "Set-up (scripts/setup.sh --test: what is missing)"
bash scripts/setup.sh --test

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
CLUSTER_PID=""
CLUSTER_DIR=""
# cluster.sh stops everything it started on SIGTERM (a background job of a
# script ignores SIGINT).
stop_cluster() {
  if [ -n "$CLUSTER_PID" ]; then kill -TERM "$CLUSTER_PID" 2>/dev/null && wait "$CLUSTER_PID" || true; fi
  CLUSTER_PID=""
  if [ -n "$CLUSTER_DIR" ]; then rm -rf "$CLUSTER_DIR"; fi
}
FUZZ_PID=""
SOAK_PID=""
cleanup() {
  bash scripts/test-postgres.sh stop "$PG_RUN"
  stop_cluster
  for job in "$FUZZ_PID" "$SOAK_PID"; do
    if [ -n "$job" ]; then kill -TERM "$job" 2>/dev/null && wait "$job" || true; fi
  done
  rm -rf "${E2E_DATA:-}" "${FUZZ_LOG:-}"
}
trap cleanup EXIT
TETHER_TEST_POSTGRES=$(bash scripts/test-postgres.sh start "$PG_RUN")
export TETHER_TEST_POSTGRES

step "Rust tests (the local-model smoke test must run, not skip; the store conformance suite on SQLite and PostgreSQL)"
TETHER_REQUIRE_LOCAL_MODEL=1 cargo test -p tether -p tether-fake-upstream --features ssr
bash scripts/test-postgres.sh stop "$PG_RUN"

step "Fuzzing, short budget, in the background (scripts/fuzz.sh 15: five libFuzzer targets, 15 s each, nightly)"
# One core for 75 s while the browser suites below mostly wait on the
# page; its result is collected after them. The long run is
# `scripts/fuzz.sh` (5 minutes per target); see the README.
FUZZ_LOG=$(mktemp -t tether-fuzz.XXXXXX)
# Niced: its budget is wall-clock time; the browsers come first.
nice -n 10 bash scripts/fuzz.sh 15 >"$FUZZ_LOG" 2>&1 &
FUZZ_PID=$!
echo "PID $FUZZ_PID, log $FUZZ_LOG"

step "Build the site (scripts/build-site.sh: what cargo leptos build makes, as start.sh builds it)"
bash scripts/build-site.sh

step "Build the client-only bundle (trunk build, offline)"
trunk build

step "Playwright (Debian Chromium)"
E2E_DATA=$(mktemp -d) # removed on exit (cleanup)
export TETHER_DATA_DIR="$E2E_DATA"
export LEPTOS_SITE_ROOT="$ROOT/target/site"
(cd end2end && npx playwright test)

step "Soak smoke, in the background (bench/run.sh --soak 30: mixed traffic on both transports, zero errors)"
# 30 s of mixed traffic at half a core, beside the steps up to the
# packaged binary (which rebuilds target/debug/tether: the soak runs a copy).
SOAK_OUT=$(mktemp -d)
cp "$CARGO_TARGET_DIR/debug/tether" "$SOAK_OUT/tether"
SOAK_OUT="$SOAK_OUT" TETHER_BIN="$SOAK_OUT/tether" bash bench/run.sh --soak 30 >"$SOAK_OUT/soak.log" 2>&1 &
SOAK_PID=$!
echo "PID $SOAK_PID, log $SOAK_OUT/soak.log"

step "Long conversations, small (bench/long.sh 300: window, pages, sidebar of 200)"
CONVERSATIONS=200 RUNS=2 bash bench/long.sh 300

step "Playwright through HAProxy (scripts/cluster.sh: PostgreSQL, Redis, two instances, the fake model)"
CLUSTER_E2E_PORT="${CLUSTER_E2E_PORT:-3200}"
CLUSTER_DIR=$(mktemp -d)
# PostgreSQL runs as the `postgres` user and keeps its files in here.
chmod 711 "$CLUSTER_DIR"
env -u OPENAI_BASE_URL PORT="$CLUSTER_E2E_PORT" TETHER_CLUSTER_DIR="$CLUSTER_DIR" \
  CLUSTER_SKIP_BUILD=1 CLUSTER_FAKE_MODEL=1 FAKE_FIRST_MS=150 FAKE_DELAY_MS=60 \
  bash scripts/cluster.sh >"$CLUSTER_DIR/cluster.out" 2>&1 &
CLUSTER_PID=$!
deadline=$((SECONDS + 180))
until curl -sf "http://127.0.0.1:$CLUSTER_E2E_PORT/readyz" >/dev/null 2>&1; do
  if ! kill -0 "$CLUSTER_PID" 2>/dev/null || [ $SECONDS -gt $deadline ]; then
    cat "$CLUSTER_DIR/cluster.out" >&2
    echo "the cluster did not come up" >&2
    exit 1
  fi
  sleep 0.2
done
(cd end2end && TETHER_CLUSTER_URL="http://127.0.0.1:$CLUSTER_E2E_PORT" npx playwright test)
stop_cluster

# The result of a background job: its output, and the run fails with it.
collect_job() { # NAME PID LOG
  local status=0
  wait "$2" || status=$?
  cat "$3"
  [ "$status" = 0 ] || { echo "$1 failed (exit $status; output above, in $3)" >&2; exit 1; }
}

step "Soak smoke, the result (it ran beside the two steps above)"
collect_job "the soak (samples and plot kept in $SOAK_OUT)" "$SOAK_PID" "$SOAK_OUT/soak.log"
SOAK_PID=""
rm -rf "$SOAK_OUT"

step "Fuzzing, the result (it ran beside the browser suites)"
collect_job "fuzzing" "$FUZZ_PID" "$FUZZ_LOG"
FUZZ_PID=""

step "The one-file binary (scripts/package.sh --debug: the site embedded) from an empty directory"
PACKAGED_DIR=$(mktemp -d)
bash scripts/package.sh --debug
# Its unit tests need the built site too (it is embedded when they compile).
cargo test --no-default-features --features embed-site --lib server::assets
(cd end2end && TETHER_BIN="$ROOT/dist/tether" TETHER_E2E_CWD="$PACKAGED_DIR" TETHER_E2E_EMBEDDED=1 \
  TETHER_DATA_DIR="$PACKAGED_DIR/data" LEPTOS_SITE_ROOT="$PACKAGED_DIR/no-site" \
  npx playwright test tests/streaming.spec.ts)
rm -rf "$PACKAGED_DIR"

step "The load generator's own tests (bench/: its report and plot code)"
# In the bench's own target dir, where bench/run.sh builds it.
CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$HOME/.cache/tether/bench-target}" \
  cargo test --release --quiet --manifest-path bench/Cargo.toml

step "Load generator smoke run (bench/run.sh --smoke: a few users, seconds)"
bash bench/run.sh --smoke

step "All checks passed"
step_summary
