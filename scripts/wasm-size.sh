#!/usr/bin/env bash
# Builds the release site and checks the WASM bundle against its budget
# (raw and gzip). Not part of CI: a release build with LTO takes ~10 minutes
# on 2 cores. Usage: scripts/wasm-size.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
BUDGET_RAW=${BUDGET_RAW:-1153434}   # 1.1 MiB
BUDGET_GZIP=${BUDGET_GZIP:-460800}  # 450 KiB
cargo leptos build --release
wasm=target/site/pkg/tether.wasm
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
printf 'tether.wasm: %d bytes raw (budget %d), %d bytes gzip (budget %d)\n' "$raw" "$BUDGET_RAW" "$gz" "$BUDGET_GZIP"
[ "$raw" -le "$BUDGET_RAW" ] && [ "$gz" -le "$BUDGET_GZIP" ] || { echo "over budget" >&2; exit 1; }
