#!/usr/bin/env bash
# Compares the two local models scripts/local-model.sh offers on the same
# five companion prompts (docs/performance.md, "The default local model").
# Installs whichever is missing, serves both (18081: gemma3, 18082: smollm2),
# asks, stops them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=${TETHER_VENV:-$HOME/.cache/tether/venv}
D=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait; rm -rf "$D"' EXIT
LOCAL_MODEL=gemma3 LOCAL_MODEL_PORT=18081 bash "$ROOT/scripts/local-model.sh" serve "$D/g.json" &
pids+=($!)
LOCAL_MODEL=smollm2 LOCAL_MODEL_PORT=18082 bash "$ROOT/scripts/local-model.sh" serve "$D/s.json" &
pids+=($!)
until grep -q ready "$D/g.json" 2>/dev/null && grep -q ready "$D/s.json" 2>/dev/null; do
  if grep -qs failed "$D/g.json" "$D/s.json"; then cat "$D"/*.json >&2; exit 1; fi
  sleep 0.5 # polling the installers' status files
done
"$VENV/bin/python" "$ROOT/bench/local-models/ask.py"
