#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh) and runs Tether on its embedded
# defaults: SQLite file under ./data, http://127.0.0.1:3000.
#
# Model: OPENAI_BASE_URL / OPENAI_API_KEY / OPENAI_MODEL if you set them.
# Otherwise the bundled demo model (`fake-upstream`, an echo) is started so the
# app works offline out of the box.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

bash scripts/setup.sh

cargo build --features ssr --bin fake-upstream
cargo leptos build

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if [ -z "${OPENAI_BASE_URL:-}" ]; then
  echo "No OPENAI_BASE_URL set: starting the bundled demo model on 127.0.0.1:19101."
  echo "Point Tether at a real model with OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL."
  FAKE_ADDR=127.0.0.1:19101 FAKE_FIRST_MS=200 FAKE_DELAY_MS=40 "$CARGO_TARGET_DIR/debug/fake-upstream" &
  pids+=($!)
  export OPENAI_BASE_URL=http://127.0.0.1:19101/v1 OPENAI_MODEL=fake
fi

export LEPTOS_SITE_ROOT="$ROOT/target/site"
echo "Tether on http://${LISTEN_ADDR:-127.0.0.1:3000}"
"$CARGO_TARGET_DIR/debug/tether" &
pids+=($!)
wait "${pids[-1]}"
