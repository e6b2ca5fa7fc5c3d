#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh) and runs Tether on its embedded
# defaults: SQLite file under ./data, http://127.0.0.1:3000.
#
# Model: if OPENAI_BASE_URL is set, Tether uses it (with OPENAI_API_KEY and
# OPENAI_MODEL). Otherwise a local llama.cpp server with the small Gemma 3
# 270M model from PyPI is started on 127.0.0.1:8080 and stopped with the app.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

bash scripts/setup.sh

echo
echo "==> Building Tether"
cargo leptos build

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${OPENAI_BASE_URL:-}" ]; then
  source scripts/local-model.sh
  start_local_model
fi

export LEPTOS_SITE_ROOT="$ROOT/target/site"
echo "==> Tether on http://${LISTEN_ADDR:-127.0.0.1:3000} (model ${OPENAI_MODEL:-?} at $OPENAI_BASE_URL)"
"$CARGO_TARGET_DIR/debug/tether" &
pids+=($!)
wait "${pids[-1]}"
