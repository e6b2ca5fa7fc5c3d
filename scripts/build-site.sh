#!/usr/bin/env bash
# Builds what `cargo leptos build` builds in debug, without cargo-leptos:
# the WASM half (feature `hydrate`) and its JS glue (the wasm-bindgen CLI),
# the stylesheet and the public files into target/site, and the server
# (feature `ssr`). start.sh uses it, so a first run does not compile
# cargo-leptos (12–16 min on 2 cores) before the app can start. cargo-leptos
# workflows (`cargo leptos build`, `cargo leptos watch`) are unchanged and
# produce the same site; `scripts/setup.sh --test` installs cargo-leptos and
# the test command builds with it. One difference: the stylesheet is copied
# as written, where cargo-leptos passes it through Lightning CSS (prefixes
# for older browsers).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
SITE=$ROOT/target/site
# cargo-leptos' own target dir for the WASM half: a later `cargo leptos
# build` finds it built.
FRONT=$CARGO_TARGET_DIR/front

cargo build --lib --target wasm32-unknown-unknown --no-default-features --features hydrate \
  --target-dir "$FRONT"
mkdir -p "$SITE/pkg"
# Not this build's: a release build's compressed variants (env.sh).
drop_site_variants
wasm-bindgen "$FRONT/wasm32-unknown-unknown/debug/tether.wasm" --target web --no-typescript \
  --out-dir "$SITE/pkg" --out-name tether
# The name the page loads (cargo-leptos' naming: no `_bg`).
mv -f "$SITE/pkg/tether_bg.wasm" "$SITE/pkg/tether.wasm"
cp style/main.css "$SITE/pkg/tether.css"
cp -R public/. "$SITE/"
cargo build --bin tether --no-default-features --features ssr
