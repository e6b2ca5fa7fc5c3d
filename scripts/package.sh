#!/usr/bin/env bash
# Builds the one-file artefact: a release `tether` binary with the site (WASM,
# JS, CSS, public files) embedded at build time (feature `embed-site`), so the
# binary alone runs anywhere this OS runs, from any directory:
#
#   scripts/package.sh            # -> dist/tether (release)
#   scripts/package.sh --debug    # a debug build, quicker, for checking
#
# Then e.g. `./dist/tether` (settings as usual: variables, flags or
# ./tether.toml; data in ./data), or install it with deploy/tether.service.
# `cargo leptos` workflows are unchanged: the embedded site is only in this
# build.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

PROFILE=release
if [[ "${1:-}" == "--debug" ]]; then
  PROFILE=debug
fi

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
started=$SECONDS

if [ "$PROFILE" = release ]; then
  # cargo-leptos builds the release site (wasm-opt and all); start.sh does
  # not install it.
  cargo leptos --version >/dev/null 2>&1 || bash scripts/setup.sh --dev

  # `--precompress`: a brotli (quality 11) and a gzip of each file beside it,
  # which the binary serves to browsers that accept them (server/assets.rs).
  step "The site (cargo leptos build --release --precompress), which the binary embeds"
  cargo leptos build --release --precompress

  step "The server with the site inside (--bin-features embed-site)"
  # Built by cargo-leptos too, so the server renders exactly the markup the
  # site's WASM hydrates; the site is unchanged from the step before
  # (cargo leptos writes it again, so again with its compressed variants).
  cargo leptos build --release --precompress --bin-features embed-site
else
  step "The site (scripts/build-site.sh: debug, what cargo leptos build makes), which the binary embeds"
  bash scripts/build-site.sh

  step "The server with the site inside (--features embed-site)"
  cargo build --bin tether --no-default-features --features embed-site
fi

mkdir -p dist
cp "$CARGO_TARGET_DIR/$PROFILE/tether" dist/tether
# The variants are inside the binary now; on disk they would shadow the
# files of the next debug build (env.sh).
drop_site_variants
step "dist/tether: $(du -h dist/tether | cut -f1) ($PROFILE, $((SECONDS - started)) s); the site is inside it"
