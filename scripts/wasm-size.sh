#!/usr/bin/env bash
# Builds the release WASM (the front end only: the server binary plays no
# part in it) and checks it against its budget (raw and gzip -9). Also prints
# what a browser that accepts brotli is sent: the `.br` the release build
# writes beside it (`--precompress`, quality 11; scripts/package.sh embeds it).
# docs/performance.md "Page weight" has the history of these numbers. Not part
# of CI: the LTO build takes ~5-10 minutes on 2 cores. Usage: scripts/wasm-size.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
BUDGET_RAW=${BUDGET_RAW:-1284096}   # 1,254 KiB (1,281,924 on 2026-12-02)
BUDGET_GZIP=${BUDGET_GZIP:-485376}  # 474 KiB (483,415 on 2026-12-02)
cargo leptos build --release --precompress --frontend-only
wasm=target/site/pkg/tether.wasm
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
br=$(stat -c %s "$wasm.br")
# Measured; on disk they would shadow the next debug build's files (env.sh).
drop_site_variants
printf 'tether.wasm: %d bytes raw (budget %d), %d bytes gzip (budget %d), %d bytes brotli as served\n' "$raw" "$BUDGET_RAW" "$gz" "$BUDGET_GZIP" "$br"
[ "$raw" -le "$BUDGET_RAW" ] && [ "$gz" -le "$BUDGET_GZIP" ] || { echo "over budget" >&2; exit 1; }
