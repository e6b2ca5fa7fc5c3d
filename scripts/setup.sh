#!/usr/bin/env bash
# Installs what Tether needs, skipping what is already there; a second run
# installs nothing and takes seconds. Everything comes from crates.io, npm,
# PyPI and Debian's archive.
#
#   scripts/setup.sh             to build and run (start.sh, through
#                                scripts/build-site.sh): the wasm32 target and
#                                the wasm-bindgen CLI matching Cargo.lock
#   scripts/setup.sh --dev       also cargo-leptos (no_downloads), for
#                                `cargo leptos watch` / `build`
#   scripts/setup.sh --services  also Debian's redis-server and haproxy
#                                (scripts/cluster.sh)
#   scripts/setup.sh --test      everything the test command needs (not
#                                cargo-leptos: it builds with build-site.sh): the above,
#                                trunk, cargo-fuzz, wasm-opt (npm binaryen),
#                                Debian's Chromium and sqlite3, the Playwright
#                                packages and the local model
#                                (scripts/local-model.sh)
#
# The local model is not installed here for start.sh: it runs
# `scripts/local-model.sh serve` beside Tether instead, so the app is usable
# while it installs. With --test, the downloads that wait on the network
# (Debian packages, npm, the model) run beside the compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/lib.sh

CARGO_LEPTOS_VERSION=0.3.4
BINARYEN_VERSION=132.0.0
TRUNK_VERSION=0.21.14
CARGO_FUZZ_VERSION=0.13.2
WITH_SERVICES=0
WITH_TEST=0
WITH_DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) WITH_DEV=1 ;;
    --services) WITH_SERVICES=1 ;;
    --test) WITH_SERVICES=1; WITH_TEST=1 ;;
    *) echo "usage: $0 [--dev] [--services] [--test]" >&2; exit 2 ;;
  esac
done
export PATH="$HOME/.cargo/bin:$ROOT/.tools/node_modules/.bin:$PATH"
LOGS=${TETHER_SETUP_LOGS:-$HOME/.cache/tether/setup-logs}
mkdir -p "$LOGS"
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi

# --- Steps that wait on the network or the disk, started in the background
# (with --test) and collected at the end.
background=()
later() { # NAME LOG cmd…: runs in the background; `collect` reports it
  local name=$1 log=$2
  shift 2
  echo "started in the background: $name (log: $log)"
  "$@" >"$log" 2>&1 &
  background+=("$!:$name:$log")
}
collect() {
  local entry pid name log failed=0
  for entry in "${background[@]}"; do
    IFS=: read -r pid name log <<<"$entry"
    if wait "$pid"; then
      echo "$name: done"
    else
      echo "$name: FAILED; the end of $log:" >&2
      tail -n 30 "$log" >&2
      failed=1
    fi
  done
  return "$failed"
}

debian_packages() {
  local missing=()
  if [ "$WITH_TEST" = 1 ]; then
    have chromium || missing+=(chromium)
    have sqlite3 || missing+=(sqlite3) # bench/long.sh seeds a database with it
  fi
  if [ "$WITH_SERVICES" = 1 ]; then
    have redis-server || missing+=(redis-server)
    have haproxy || missing+=(haproxy)
  fi
  printf '%s\n' "${missing[@]}"
}
install_debian() {
  $SUDO apt-get update -q
  # Their own services are not wanted: tests and cluster.sh start their own
  # processes on free ports.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@"
}
install_npm_tools() {
  if [ ! -x .tools/node_modules/.bin/wasm-opt ]; then
    mkdir -p .tools
    [ -f .tools/package.json ] || echo '{"private":true}' >.tools/package.json
    (cd .tools && npm install --no-audit --no-fund --loglevel=error "binaryen@$BINARYEN_VERSION")
  fi
  if ! { [ -d end2end/node_modules/@playwright/test ] \
      && [ end2end/node_modules/.package-lock.json -nt end2end/package-lock.json ]; }; then
    (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_tools_present() {
  [ -x .tools/node_modules/.bin/wasm-opt ] && [ -d end2end/node_modules/@playwright/test ] \
    && [ end2end/node_modules/.package-lock.json -nt end2end/package-lock.json ]
}

if [ "$WITH_SERVICES" = 1 ]; then
  step "Debian packages$([ "$WITH_TEST" = 1 ] && echo ": Chromium (Playwright), sqlite3," || echo ":") Redis and HAProxy (cluster tests)"
  mapfile -t missing < <(debian_packages)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "present"
  else
    later "apt-get install ${missing[*]}" "$LOGS/apt.log" install_debian "${missing[@]}"
  fi
fi
if [ "$WITH_TEST" = 1 ]; then
  step "npm: wasm-opt (binaryen $BINARYEN_VERSION) in .tools/, Playwright in end2end/"
  if npm_tools_present; then echo "present"; else later "npm install" "$LOGS/npm.log" install_npm_tools; fi
  step "Local model (scripts/local-model.sh install)"
  if [ -n "${TETHER_SKIP_LOCAL_MODEL:-}" ]; then
    echo "skipped (TETHER_SKIP_LOCAL_MODEL is set)"
  else
    later "the local model" "$LOGS/local-model.log" bash scripts/local-model.sh install
  fi
fi

# --- Rust tools, compiled here, one after the other (each uses both cores).
step "Rust target wasm32-unknown-unknown"
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "present"
else
  rustup target add wasm32-unknown-unknown
fi

# Not needed to run (start.sh builds with scripts/build-site.sh): the
# largest compile of all, left to development and the test command.
if [ "$WITH_DEV" = 1 ]; then
  step "cargo-leptos $CARGO_LEPTOS_VERSION (no_downloads)"
  if cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
    echo "present"
  else
    long "building cargo-leptos from crates.io" "12 min" "$LOGS/cargo-leptos.log" \
      cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
  fi
fi

WB_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
step "wasm-bindgen-cli $WB_VERSION (matches Cargo.lock)"
if wasm-bindgen --version 2>/dev/null | grep -q " $WB_VERSION\$"; then
  echo "present"
else
  long "building wasm-bindgen-cli from crates.io" "4 min" "$LOGS/wasm-bindgen.log" \
    cargo install wasm-bindgen-cli --version "$WB_VERSION" --force
fi

if [ "$WITH_TEST" = 1 ]; then
  step "trunk $TRUNK_VERSION (the client-only bundle, offline)"
  if trunk --version 2>/dev/null | grep -q " $TRUNK_VERSION\$"; then
    echo "present"
  else
    long "building trunk from crates.io" "8 min" "$LOGS/trunk.log" \
      cargo install trunk --version "$TRUNK_VERSION" --locked --no-default-features --features rustls
  fi

  step "cargo-fuzz $CARGO_FUZZ_VERSION (libFuzzer targets in fuzz/, scripts/fuzz.sh)"
  if cargo fuzz --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
    echo "present"
  else
    long "building cargo-fuzz from crates.io" "1 min" "$LOGS/cargo-fuzz.log" \
      cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
  fi
  # The fuzz targets build with the nightly toolchain (sanitizer coverage);
  # it cannot be downloaded here, so only say whether it is there.
  if rustc +nightly --version >/dev/null 2>&1; then
    echo "nightly toolchain: $(rustc +nightly --version)"
  else
    echo "WARNING: no nightly toolchain (rustup toolchain list): scripts/fuzz.sh cannot build"
  fi
fi

if [ ${#background[@]} -gt 0 ]; then
  step "Waiting for the background steps"
  collect
fi
step "Set-up complete"
