#!/usr/bin/env bash
# Runs Tether as a cluster on this machine, all on 127.0.0.1: PostgreSQL
# (storage), Redis (live state), two Tether instances and HAProxy in front
# (deploy/haproxy.cfg: round robin, WebSockets, health check on /readyz).
# Prints the URL; Ctrl-C (or any exit) stops everything it started, by PID.
#
#   PORT                  HAProxy's port (default 3000); the instances take
#                         PORT+1, PORT+2, …, PostgreSQL PORT+20, Redis PORT+21
#   CLUSTER_INSTANCES     how many Tether instances (default 2)
#   TETHER_CLUSTER_DIR    data, logs and the shared session secret
#                         (default ~/.local/share/tether/cluster; kept between runs)
#   OPENAI_BASE_URL …     the model, as for start.sh; unset: the local model,
#                         or with CLUSTER_FAKE_MODEL=1 the fake one
#                         (crates/fake-upstream, on PORT+22; FAKE_* knobs)
#   CLUSTER_RELEASE=1     build and run the release binary
#   CLUSTER_SKIP_BUILD=1  run what `cargo leptos build` built (the test command
#                         builds first)
#   CLUSTER_SQLITE=1      only to check this script itself: every instance on
#                         its own SQLite file (nothing shared, not a cluster)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

PORT="${PORT:-3000}"
INSTANCES="${CLUSTER_INSTANCES:-2}"
PG_PORT=$((PORT + 20))
REDIS_PORT=$((PORT + 21))
FAKE_PORT=$((PORT + 22))
CLUSTER_DIR="${TETHER_CLUSTER_DIR:-$HOME/.local/share/tether/cluster}"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { echo "cluster.sh: $*" >&2; exit 1; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Polls (every 0.1 s, at most $2 s) until the command in "${@:3}" succeeds;
# gives up early when the process $1 has exited.
wait_for() {
  local pid=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# Everything started is stopped on exit, newest first: HAProxy, the
# instances (SIGTERM: running replies finish), the model, Redis, PostgreSQL.
pids=()
PG_PID=""
cleanup() {
  trap - EXIT INT TERM
  step "Stopping the cluster"
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$PG_PID" ] && kill -0 "$PG_PID" 2>/dev/null; then
    kill -INT "$PG_PID" # PostgreSQL's fast shutdown
    while kill -0 "$PG_PID" 2>/dev/null; do sleep 0.1; done
  fi
  echo "stopped: ${pids[*]} ${PG_PID}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ports=()
for ((i = 1; i <= INSTANCES; i++)); do ports+=($((PORT + i))); done
for p in "$PORT" "${ports[@]}" "$PG_PORT" "$REDIS_PORT"; do
  if port_busy "$p"; then fail "127.0.0.1:$p is in use (set PORT to move the cluster's ports)"; fi
done
mkdir -p "$CLUSTER_DIR/logs"
LOGS="$CLUSTER_DIR/logs"

step "Set-up (scripts/setup.sh --services: Redis, HAProxy)"
bash scripts/setup.sh --services

if [ "${CLUSTER_RELEASE:-0}" = 1 ]; then PROFILE=release; else PROFILE=debug; fi
BIN="$CARGO_TARGET_DIR/$PROFILE/tether"
if [ "${CLUSTER_SKIP_BUILD:-0}" = 1 ]; then
  [ -x "$BIN" ] && [ -d target/site/pkg ] || fail "CLUSTER_SKIP_BUILD=1 but $BIN or target/site is missing"
elif [ "$PROFILE" = release ]; then
  step "Building Tether (release) and its site (cargo leptos build --release)"
  # cargo-leptos makes the release site (wasm-opt and all).
  cargo leptos --version >/dev/null 2>&1 || bash scripts/setup.sh --dev
  cargo leptos build --release
else
  step "Building Tether (debug) and its site (scripts/build-site.sh)"
  bash scripts/build-site.sh
fi

step "PostgreSQL on 127.0.0.1:$PG_PORT"
PG_CTL=$(command -v pg_ctl) || fail "no pg_ctl (PostgreSQL 15 is expected in /usr/lib/postgresql/15/bin)"
PG_BIN=$(dirname "$(readlink -f "$PG_CTL")")
PG_DIR="$CLUSTER_DIR/postgres"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root: its files belong to the `postgres` user,
  # which must be able to reach them.
  as_pg=(runuser -u postgres --)
  if ! runuser -u postgres -- test -x "$CLUSTER_DIR"; then
    PG_DIR="$(getent passwd postgres | cut -d: -f6)/tether-cluster-$(printf %s "$CLUSTER_DIR" | md5sum | cut -c1-8)"
    echo "($CLUSTER_DIR is not reachable by the postgres user: its data is in $PG_DIR)"
  fi
  mkdir -p "$PG_DIR"
  chown postgres: "$PG_DIR"
fi
if [ ! -s "$PG_DIR/data/PG_VERSION" ]; then
  echo "creating the database cluster in $PG_DIR/data"
  "${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U tether --no-sync >"$LOGS/initdb.log"
fi
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -s \
  -o "-k $PG_DIR -p $PG_PORT -c listen_addresses=127.0.0.1" start
PG_PID=$(head -n1 "$PG_DIR/data/postmaster.pid")
psql_() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U tether -d postgres -tAq "$@"; }
if [ "$(psql_ -c "SELECT 1 FROM pg_database WHERE datname = 'tether'")" != 1 ]; then
  psql_ -c "CREATE DATABASE tether"
fi
DATABASE_URL="postgres://tether@127.0.0.1:$PG_PORT/tether"
echo "PID $PG_PID, $DATABASE_URL (log: $PG_DIR/postgres.log)"
if [ "${CLUSTER_SQLITE:-0}" = 1 ]; then
  echo "CLUSTER_SQLITE=1: the instances use their own SQLite files instead"
  DATABASE_URL=""
fi

step "Redis on 127.0.0.1:$REDIS_PORT"
mkdir -p "$CLUSTER_DIR/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize no \
  --dir "$CLUSTER_DIR/redis" --logfile "$LOGS/redis.log" </dev/null &
pids+=($!)
wait_for "${pids[-1]}" 10 redis-cli -p "$REDIS_PORT" ping || fail "redis-server did not start; see $LOGS/redis.log"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
echo "PID ${pids[-1]}, $REDIS_URL"

if [ -z "${OPENAI_BASE_URL:-}" ] && [ "${CLUSTER_FAKE_MODEL:-0}" = 1 ]; then
  step "The fake model (crates/fake-upstream) on 127.0.0.1:$FAKE_PORT"
  cargo build --quiet -p tether -p tether-fake-upstream --features ssr --bin fake-upstream
  FAKE_ADDR="127.0.0.1:$FAKE_PORT" "$CARGO_TARGET_DIR/debug/fake-upstream" >"$LOGS/fake-upstream.log" 2>&1 </dev/null &
  pids+=($!)
  wait_for "${pids[-1]}" 10 curl -sf "http://127.0.0.1:$FAKE_PORT/v1/models" || fail "the fake model did not start"
  echo "PID ${pids[-1]}, http://127.0.0.1:$FAKE_PORT/v1 (log: $LOGS/fake-upstream.log)"
  export OPENAI_BASE_URL="http://127.0.0.1:$FAKE_PORT/v1" OPENAI_MODEL=fake OPENAI_API_KEY=""
elif [ -z "${OPENAI_BASE_URL:-}" ]; then
  step "The local model (scripts/local-model.sh serve), in the background"
  source scripts/local-model.sh
  # Every instance follows the installer's status file: replies wait until
  # the model is ready.
  export MODEL_SETUP_FILE="$CLUSTER_DIR/model-setup.json"
  local_model_pending "$MODEL_SETUP_FILE"
  LOCAL_MODEL_LOG="$LOGS/local-model-install.log" LOCAL_MODEL_SERVER_LOG="$LOGS/local-model.log" \
    bash scripts/local-model.sh serve "$MODEL_SETUP_FILE" >"$LOGS/local-model.out" 2>&1 </dev/null &
  pids+=($!)
  local_model_env
  echo "PID ${pids[-1]}, $OPENAI_BASE_URL (progress: $MODEL_SETUP_FILE)"
fi

# One secret signs every instance's cookies: a browser's requests may land on
# any of them.
if [ ! -s "$CLUSTER_DIR/session_secret" ]; then
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$CLUSTER_DIR/session_secret")
fi
chmod 600 "$CLUSTER_DIR/session_secret"

for ((i = 1; i <= INSTANCES; i++)); do
  port=${ports[i - 1]}
  step "Tether instance $i on 127.0.0.1:$port"
  mkdir -p "$CLUSTER_DIR/instance-$i"
  env -u DATABASE_URL ${DATABASE_URL:+DATABASE_URL="$DATABASE_URL"} REDIS_URL="$REDIS_URL" \
    SESSION_SECRET="$(cat "$CLUSTER_DIR/session_secret")" TRUSTED_PROXIES=127.0.0.1 \
    LISTEN_ADDR="127.0.0.1:$port" TETHER_DATA_DIR="$CLUSTER_DIR/instance-$i" \
    LEPTOS_SITE_ROOT="$ROOT/target/site" LOG_FORMAT="${LOG_FORMAT:-json}" \
    "$BIN" >"$LOGS/tether-$i.log" 2>&1 </dev/null &
  pids+=($!)
  if ! wait_for "${pids[-1]}" 60 curl -sf "http://127.0.0.1:$port/healthz"; then
    tail -n 20 "$LOGS/tether-$i.log" >&2
    fail "instance $i did not start; its log: $LOGS/tether-$i.log"
  fi
  echo "PID ${pids[-1]} (log: $LOGS/tether-$i.log)"
done

step "HAProxy on 127.0.0.1:$PORT (deploy/haproxy.cfg)"
# deploy/haproxy.cfg with this cluster's ports: only the `bind` and `server`
# lines change (as in the tests, tests/common/haproxy.rs).
awk -v port="$PORT" -v servers="${ports[*]}" '
  /^[[:space:]]*bind / { match($0, /^[[:space:]]*/); print substr($0, 1, RLENGTH) "bind 127.0.0.1:" port; next }
  /^[[:space:]]*server / {
    if (!done) { n = split(servers, s, " "); match($0, /^[[:space:]]*/)
      for (i = 1; i <= n; i++) print substr($0, 1, RLENGTH) "server tether-" i " 127.0.0.1:" s[i]
      done = 1 }
    next }
  { print }' deploy/haproxy.cfg >"$CLUSTER_DIR/haproxy.cfg"
haproxy -c -q -f "$CLUSTER_DIR/haproxy.cfg" || fail "invalid $CLUSTER_DIR/haproxy.cfg"
haproxy -db -f "$CLUSTER_DIR/haproxy.cfg" >"$LOGS/haproxy.log" 2>&1 </dev/null &
pids+=($!)
HAPROXY_PID=${pids[-1]}
wait_for "$HAPROXY_PID" 10 curl -sf "http://127.0.0.1:$PORT/healthz" || fail "haproxy did not start; see $LOGS/haproxy.log"
echo "PID $HAPROXY_PID (log: $LOGS/haproxy.log)"

step "Tether cluster on http://127.0.0.1:$PORT ($INSTANCES instances, model ${OPENAI_MODEL:-?} at $OPENAI_BASE_URL)"
echo "Logs in $LOGS. Try: kill -9 one instance's PID and keep chatting. Ctrl-C stops everything."
# Runs until HAProxy exits or the script is stopped; an instance that dies is
# left dead (the proxy routes around it), which is the point of a cluster.
wait "$HAPROXY_PID"
