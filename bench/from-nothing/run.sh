#!/usr/bin/env bash
# Measures a first run from nothing, as docs/performance.md reports it:
# `scripts/start.sh` to the first streamed reply in Chromium, then (with
# WITH_TEST=1) `scripts/test.sh` to green, in a fresh HOME and a fresh
# clone of this repository.
#
#   bench/from-nothing/run.sh [DIR]      # DIR: where to work (default /tmp/tether-from-nothing)
#
# "Nothing": a fresh HOME, so no ~/.cargo tools, no ~/.cache/tether (target
# dir, model venv), no npm, pip or cargo registry cache; CARGO_HOME in it
# with only the rustup proxies linked (the toolchains are the machine's:
# rustup cannot download here); PATH reduced to the system's. Debian
# packages already installed stay installed. Run it on a quiet machine: it
# measures wall-clock time. The probe drives Chromium with this checkout's
# end2end/node_modules (run scripts/setup.sh --test here first).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
F=${1:-/tmp/tether-from-nothing}
rm -rf "$F/home" "$F/tether"
mkdir -p "$F/home/.cargo/bin"
for b in cargo rustc rustup rustfmt cargo-fmt cargo-clippy clippy-driver rustdoc; do
  ln -s "$HOME/.cargo/bin/$b" "$F/home/.cargo/bin/$b"
done
git clone -q "$SRC" "$F/tether"
cd "$F/tether"
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
export HOME=$F/home CARGO_HOME=$F/home/.cargo
PYENV_PATH=""
[ -d /root/.pyenv ] && PYENV_PATH=/root/.pyenv/bin:/root/.pyenv/shims:
export PATH=$F/home/.cargo/bin:$PYENV_PATH/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
unset CARGO_TARGET_DIR OPENAI_BASE_URL
T0=$(date +%s)
export T0
echo "start.sh from nothing at $(date -u +%H:%M:%S)"
LISTEN_ADDR=127.0.0.1:3300 LOCAL_MODEL_PORT=18300 bash scripts/start.sh >"$F/start.log" 2>&1 &
START=$!
until curl -sf http://127.0.0.1:3300/healthz >/dev/null 2>&1; do
  kill -0 $START 2>/dev/null || { echo "start.sh died: see $F/start.log"; exit 1; }
  sleep 2 # polling the port until the app answers
done
echo "app up at +$(($(date +%s) - T0)) s"
URL=http://127.0.0.1:3300 NODE_MODULES="$SRC/end2end/node_modules" node "$HERE/probe.mjs"
echo "model: $(cat "$F/tether/data/model-setup.json")"
kill -TERM $START
wait $START
echo "start.sh done at +$(($(date +%s) - T0)) s"
[ "${WITH_TEST:-0}" = 1 ] || exit 0
T1=$(date +%s)
bash scripts/test.sh >"$F/test.log" 2>&1
echo "test.sh rc=$? after +$(($(date +%s) - T1)) s (from nothing +$(($(date +%s) - T0)) s)"
sed -n '/Time per step/,$p' "$F/test.log"
