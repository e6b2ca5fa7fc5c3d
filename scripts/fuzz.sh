#!/usr/bin/env bash
# Runs every cargo-fuzz (libFuzzer) target in fuzz/ for SECONDS_PER_TARGET
# seconds each (default 300), one after the other, and prints per target the
# inputs it ran and whether it crashed. Exits non-zero when one did, with the
# path of the input that crashed it (replay: the target's binary + that path).
#
#   scripts/fuzz.sh          # the long run: 5 minutes per target
#   scripts/fuzz.sh 15       # CI's short run (scripts/test.sh)
#
# Builds with the nightly toolchain (cargo-fuzz needs it; scripts/setup.sh
# installs cargo-fuzz) into a fixed target dir, FUZZ_TARGET_DIR (default
# ~/.cache/tether/fuzz-target), so later runs rebuild only what changed.
# The corpus each run grows is kept in FUZZ_CORPUS_DIR (default
# ~/.cache/tether/fuzz-corpus), outside the clone; the committed seeds in
# fuzz/seeds/ are only read. Crash inputs go to fuzz/artifacts/ (ignored by git).
# FUZZ_SANITIZER (default none) picks cargo-fuzz's sanitizer: see the README.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

SECONDS_PER_TARGET=${1:-300}
case "$SECONDS_PER_TARGET" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;;
esac
TARGETS=(decode_client_frame event_stream markdown highlight chunk_reader)
FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/tether/fuzz-target}
FUZZ_CORPUS_DIR=${FUZZ_CORPUS_DIR:-$HOME/.cache/tether/fuzz-corpus}
SANITIZER=${FUZZ_SANITIZER:-none}

if ! rustc +nightly --version >/dev/null 2>&1; then
  echo "error: the nightly Rust toolchain is not installed (see 'rustup toolchain list')." >&2
  echo "cargo-fuzz builds libFuzzer targets with nightly-only flags; install it with" >&2
  echo "'rustup toolchain install nightly' where the network allows." >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "error: cargo-fuzz is not installed: run scripts/setup.sh" >&2
  exit 2
fi

echo "Building ${#TARGETS[@]} fuzz targets ($(rustc +nightly --version), sanitizer $SANITIZER) into $FUZZ_TARGET_DIR"
# Release with debug assertions and overflow checks (-O -a).
cargo +nightly fuzz build --fuzz-dir fuzz -O -a -s "$SANITIZER" --target-dir "$FUZZ_TARGET_DIR"
BIN_DIR=$FUZZ_TARGET_DIR/x86_64-unknown-linux-gnu/release

LOG_DIR=$(mktemp -d)
trap 'rm -rf "$LOG_DIR"' EXIT
failed=()
printf '\n%-22s %12s %8s  %s\n' target executions corpus result
for target in "${TARGETS[@]}"; do
  corpus=$FUZZ_CORPUS_DIR/$target
  artifacts=$ROOT/fuzz/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  dict=()
  [ -f "fuzz/dicts/$target.dict" ] && dict=("-dict=fuzz/dicts/$target.dict")
  log=$LOG_DIR/$target.log
  status=0
  # New inputs go to the first corpus dir; the seeds are only read.
  "$BIN_DIR/$target" "$corpus" "fuzz/seeds/$target" "${dict[@]}" \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  size=$(find "$corpus" -type f | wc -l)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    result="CRASHED (exit $status)"
    failed+=("$target")
  fi
  printf '%-22s %12s %8s  %s\n' "$target" "${runs:-?}" "$size" "$result"
  if [ "$status" -ne 0 ]; then
    # libFuzzer's own report: the failure, and where the input was written.
    # (The line after "panicked at" is the property's message.)
    grep -E -A1 "panicked at" "$log" | head -12 | sed 's/^/    /'
    grep -E "ERROR: libFuzzer|Test unit written to" "$log" | sed 's/^/    /'
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo
  echo "FAILED: ${failed[*]}. Replay a crash with: $BIN_DIR/<target> <artifact path>"
  exit 1
fi
echo
echo "No crash in ${#TARGETS[@]} targets x ${SECONDS_PER_TARGET}s."
