#!/usr/bin/env bash
# The long-conversation bench row (issue 18): one user with N messages in one
# conversation and CONVERSATIONS (default 2,000) short ones, seeded straight
# into the SQLite file of a server of its own; measures the server-rendered
# /c/:id (time, bytes), the snapshot (bytes, messages) and, in Chromium, the
# time to "connected" and to the last message in view, the <article>s in the
# DOM, the bytes the first load carried over the wire (compressed, by kind),
# the sidebar's first conversation painted and a search. See
# end2end/tests/long.bench.spec.ts.
#
#   bench/long.sh N [OUT.json]
#
# Environment: TETHER_BIN (server binary; default $CARGO_TARGET_DIR/debug/tether,
# as `cargo leptos build` leaves it), LEPTOS_SITE_ROOT (default
# $CARGO_TARGET_DIR/site, else target/site), CONVERSATIONS (2000), RUNS (5
# SSR requests after one warm-up). Needs `cargo leptos build` first and
# `npm ci` in end2end/. Prints one `LONG_RESULT {json}` line.
set -euo pipefail

[[ "${1:-}" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/long.sh MESSAGES [OUT.json]" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/tether/target}
SITE=${LEPTOS_SITE_ROOT:-$TARGET/site}
[[ -d "$SITE" ]] || SITE=$ROOT/target/site
BIN=${TETHER_BIN:-$TARGET/debug/tether}
[[ -x "$BIN" ]] || { echo "no server binary at $BIN: run cargo leptos build" >&2; exit 1; }
OUT=${2:-}
[[ -z "$OUT" || "$OUT" = /* ]] || OUT=$PWD/$OUT

cd "$ROOT/end2end"
# Only this spec runs; Playwright's config also starts the fake model and the
# suite's server (which this row does not use) as it does for every run.
TETHER_LONG=$1 \
TETHER_LONG_CONVERSATIONS=${CONVERSATIONS:-2000} \
TETHER_LONG_RUNS=${RUNS:-5} \
TETHER_LONG_BIN=$BIN \
TETHER_LONG_OUT=$OUT \
LEPTOS_SITE_ROOT=$SITE \
TETHER_DATA_DIR=${TETHER_DATA_DIR:-$(mktemp -d)} \
    npx playwright test long.bench.spec.ts --reporter=line
