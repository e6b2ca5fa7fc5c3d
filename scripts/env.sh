# Sourced by the scripts: shared paths and tool locations.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$ROOT/.tools/node_modules/.bin:$PATH"
# Build artefacts live outside the clone by default, so a fresh clone (CI)
# reuses earlier builds. Override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tether/target}"
# PostgreSQL's server tools (initdb, pg_ctl) from the machine image, for the
# cluster tests and scripts/cluster.sh.
if [ -d /usr/lib/postgresql/15/bin ]; then
  export PATH="$PATH:/usr/lib/postgresql/15/bin"
fi

# Removes the brotli and gzip variants a release build (`cargo leptos build
# --precompress`) writes beside each file of target/site. A later build
# without `--precompress` (build-site.sh, `cargo leptos build` or `watch`)
# rewrites the files but not their variants, and the file servers (from
# disk, leptos_axum's; embedded, server/assets.rs) would send the old
# variants in place of the new files: a page whose WASM does not match its
# server. Called before such builds and once the release files are used.
drop_site_variants() {
  [ -d "$ROOT/target/site" ] || return 0
  find "$ROOT/target/site" -type f \( -name '*.br' -o -name '*.gz' \) -delete
}
