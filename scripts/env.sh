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
