#!/usr/bin/env bash
# Builds tether-bench, starts the fake upstream and a tether server on free
# ports (temp data dir, high limits), runs the bench, prints the table, and
# stops both processes. One fresh server pair per transport.
#
#   bench/run.sh [--cluster N] [--smoke] [tether-bench args...]
#   bench/run.sh [--cluster N] --soak SECONDS [tether-bench soak args...]
#   bench/run.sh [--cluster N] --sweep "10 100 1000" [tether-bench args...]
#
# Defaults: 100 users x 10 messages, idle 1000, WebSocket. Environment:
#   F=100 D=20            fake upstream first-token / inter-token delay (ms)
#   TRANSPORTS="ws"       transports to run, e.g. "ws sse"
#   TETHER_BIN            server binary (default: the newer of release/debug in ~/.cache/tether/target)
#   FAKE_BIN              fake upstream binary (default: crates/fake-upstream, built here in
#                         the profile of the server binary, into the same target dir)
#   BENCH_TARGET_DIR      cargo target dir of the bench (default ~/.cache/tether/bench-target)
#   BENCH_KEEP=1          keep the temp dir (server, proxy, Redis, PostgreSQL logs)
# --smoke: 5 users x 2 messages, idle 20, ws and sse; exit code != 0 on any error.
# --soak SECONDS: `tether-bench soak` (mixed traffic, both transports) against
#   one server pair for SECONDS; writes soak.csv and soak.svg into SOAK_OUT
#   (default: the current directory); exit code != 0 when its verdict fails.
#   From 120 s on it first fills the database with 12,000 messages of 4,000
#   characters (past the SQLite writer's 32 MiB page cache, whose filling
#   would otherwise read as growth) and judges RSS/fd growth after the
#   warm-up (< 5 %). Under 120 s it samples every second and reports the
#   growth without judging it (the CI smoke: errors, and every kind of
#   traffic completing).
# --sweep "U1 U2 ...": the run for each number of users and each transport
#   (TRANSPORTS, default "ws sse"; a fresh server pair each), every report
#   saved as JSON in PLOT_OUT (default: a new directory under /tmp), then
#   `tether-bench plot` draws them, with the kit's results in PLOT_WITH
#   (space-separated files, e.g. the Go prototype's
#   /work/shared/bench/results/seed-*.json) beside them, into PLOT_SVG
#   (default $PLOT_OUT/bench.svg). Defaults per run: 5 messages, no idle sockets.
# --cluster N (first): cluster mode instead of one server on SQLite. Per run:
#   a throw-away PostgreSQL (scripts/test-postgres.sh), redis-server
#   (--save '' --appendonly no), N tether instances with the same raised
#   limits plus DATABASE_URL, REDIS_URL, one SESSION_SECRET and
#   TRUSTED_PROXIES=127.0.0.1, and for N >= 2 (or CLUSTER_PROXY=1) HAProxy
#   with deploy/haproxy.cfg (only its bind/server lines replaced, as
#   tests/common/haproxy.rs does; HAPROXY_MAXCONN overrides its maxconn,
#   HAPROXY_TIMEOUT_CHECK=T adds a `timeout check T` to its defaults (the
#   config's backend sets 2s and `fall 3` since the 1,000-user burst that,
#   with a check timing out after `inter`, 300 ms, and `fall 1`, marked every
#   instance DOWN and closed all their sockets).
#   The bench runs at the proxy, or at the one instance; --server-pid (RSS)
#   is the first instance's. Everything is stopped by PID. CLUSTER_REDIS=0
#   (with --cluster 1): PostgreSQL alone, no Redis (to tell their shares).
# After each run: CPU seconds spent during the bench (utime + stime from
#   /proc/<pid>/stat before/after) by the tether process(es), and in cluster
#   mode by Redis, PostgreSQL (the postmaster, its backends, and children
#   that exited) and HAProxy; the fake upstream and the bench itself for
#   reference; the tether/Redis/PostgreSQL CPU per completed message; and how
#   busy the whole machine was (/proc/stat), other processes included.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TETHER_TARGET=${TETHER_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/tether/target}}
export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$HOME/.cache/tether/bench-target}
F=${F:-100}
D=${D:-20}
TRANSPORTS_SET=${TRANSPORTS:-}
TRANSPORTS=${TRANSPORTS:-ws}

CLUSTER=0
if [[ "${1:-}" == "--cluster" ]]; then
    [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/run.sh --cluster N [...]" >&2; exit 2; }
    CLUSTER=$2
    shift 2
fi
SMOKE=0
SOAK_SECS=""
SWEEP=""
if [[ "${1:-}" == "--sweep" ]]; then
    [[ "${2:-}" =~ ^[0-9][0-9\ ]*$ ]] || { echo "usage: bench/run.sh --sweep \"10 100 1000\" [...]" >&2; exit 2; }
    SWEEP=$2
    shift 2
    TRANSPORTS=${TRANSPORTS_SET:-"ws sse"}
elif [[ "${1:-}" == "--smoke" ]]; then
    SMOKE=1
    shift
    TRANSPORTS="ws sse"
elif [[ "${1:-}" == "--soak" ]]; then
    [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "usage: bench/run.sh --soak SECONDS [soak args...]" >&2; exit 2; }
    SOAK_SECS=$2
    shift 2
fi

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

pick() { # the most recently built binary among the arguments (a stale release
          # build may lack newer endpoints such as POST /api/chat)
    local best="" b
    for b in "$@"; do
        if [[ -x "$b" && ( -z "$best" || "$b" -nt "$best" ) ]]; then best=$b; fi
    done
    [[ -n "$best" ]] || { echo "no binary among: $*" >&2; exit 2; }
    echo "$best"
}
TETHER_BIN=${TETHER_BIN:-$(pick "$TETHER_TARGET/release/tether" "$TETHER_TARGET/debug/tether")}
if [[ -z "${FAKE_BIN:-}" ]]; then
    # The fake is a workspace member of its own that no other step builds.
    # Selecting tether too keeps the server's dependency features: only the
    # fake itself is compiled.
    FAKE_PROFILE=release
    if [[ $(basename "$(dirname "$TETHER_BIN")") == debug ]]; then FAKE_PROFILE=dev; fi
    CARGO_TARGET_DIR="$TETHER_TARGET" cargo build --quiet --manifest-path "$ROOT/Cargo.toml" \
        --profile "$FAKE_PROFILE" -p tether -p tether-fake-upstream --features ssr --bin fake-upstream
    FAKE_BIN="$TETHER_TARGET/$([[ $FAKE_PROFILE == dev ]] && echo debug || echo release)/fake-upstream"
fi

cargo build --release --quiet --manifest-path "$HERE/Cargo.toml"
BENCH="$CARGO_TARGET_DIR/release/tether-bench"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

TMP=$(mktemp -d -t tether-bench.XXXXXX)
FAKE_PID=""
SERVER_PID=""
SERVER_PIDS=""   # every tether process (cluster mode: all instances)
PROXY_PID=""
REDIS_PID=""
PG_DIR=""
PG_PID=""
stop_servers() {
    for p in $PROXY_PID $SERVER_PIDS $FAKE_PID $REDIS_PID; do
        kill "$p" 2>/dev/null || true
    done
    for p in $PROXY_PID $SERVER_PIDS $FAKE_PID $REDIS_PID; do
        wait "$p" 2>/dev/null || true
    done
    if [[ -n "$PG_DIR" ]]; then
        bash "$ROOT/scripts/test-postgres.sh" stop "$PG_DIR" || true
    fi
    SERVER_PID=""
    SERVER_PIDS=""
    FAKE_PID=""
    PROXY_PID=""
    REDIS_PID=""
    PG_DIR=""
    PG_PID=""
}
cleanup() {
    stop_servers
    if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
        echo "# logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The raised limits every server of a run gets.
LIMITS=(RATE_BURST=1000000 RATE_PER_SEC=1000000 MAX_CONNECTIONS=200000
    MAX_SOCKETS_PER_USER=1000 MAX_CONCURRENT_UPSTREAM=100000
    MAX_STREAMS_PER_ADDR=200000 ADDR_RATE_BURST=1000000 ADDR_RATE_PER_SEC=1000000
    IDENTITY_BURST=1000000 IDENTITY_PER_SEC=1000000)

wait_up() { # $1: url, $2: pid, $3: log; waits for GET $1 (30 s at most)
    for _ in $(seq 1 300); do
        if curl -sf -o /dev/null "$1"; then
            return 0
        fi
        if ! kill -0 "$2" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "$1 did not answer; log $3:" >&2
    tail -n 30 "$3" >&2
    exit 2
}

start_tether() { # $1: data dir, $2: port, $3: log name, then extra VAR=value
    local data=$1 port=$2 log=$3
    shift 3
    LAST_LISTEN="127.0.0.1:$port"
    # Run from the data dir so that no ./tether.toml is picked up.
    (cd "$data" && exec env \
        LISTEN_ADDR="127.0.0.1:$port" TETHER_DATA_DIR="$data" \
        OPENAI_BASE_URL="http://127.0.0.1:$FAKE_PORT/v1" OPENAI_MODEL=fake OPENAI_API_KEY= \
        LEPTOS_SITE_ROOT="$ROOT/target/site" RUST_LOG=warn "${LIMITS[@]}" "$@" \
        "$TETHER_BIN" >"$data/$log" 2>&1) &
    SERVER_PIDS="$SERVER_PIDS $!"
    wait_up "http://127.0.0.1:$port/api/session" "$!" "$data/$log"
}

start_servers() { # $1: run name
    local server_port data
    FAKE_PORT=$(free_port)
    data="$TMP/$1"
    mkdir -p "$data"
    FAKE_ADDR="127.0.0.1:$FAKE_PORT" FAKE_FIRST_MS="$F" FAKE_DELAY_MS="$D" \
        "$FAKE_BIN" >"$data/fake.log" 2>&1 &
    FAKE_PID=$!
    if [[ $CLUSTER != 0 ]]; then
        start_cluster "$data"
        return 0
    fi
    server_port=$(free_port)
    start_tether "$data" "$server_port" server.log
    SERVER_PID=${SERVER_PIDS# }
    URL="http://127.0.0.1:$server_port"
}

start_cluster() { # $1: the run's dir; PostgreSQL, Redis, N instances, HAProxy
    local data=$1 db redis_port secret i port ports=() dir
    # PostgreSQL runs as the `postgres` user (as root), which must reach its dir.
    chmod 711 "$TMP"
    PG_DIR="$data/pg"
    db=$(bash "$ROOT/scripts/test-postgres.sh" start "$PG_DIR")
    PG_PID=$(head -n1 "$PG_DIR/data/postmaster.pid")
    if [[ "${CLUSTER_REDIS:-1}" == 0 ]]; then
        # PostgreSQL alone (no REDIS_URL: one instance, not a cluster), to
        # tell the database's share from Redis's.
        (( CLUSTER == 1 )) || { echo "CLUSTER_REDIS=0 needs --cluster 1" >&2; exit 2; }
        mkdir -p "$data/instance-1"
        start_tether "$data/instance-1" "$(free_port)" server.log DATABASE_URL="$db"
        SERVER_PID=${SERVER_PIDS# }
        URL="http://$LAST_LISTEN"
        return 0
    fi
    redis_port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
        --daemonize no --dir "$data" --logfile "$data/redis.log" </dev/null &
    REDIS_PID=$!
    for _ in $(seq 1 100); do
        redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    for ((i = 1; i <= CLUSTER; i++)); do
        port=$(free_port)
        ports+=("$port")
        dir="$data/instance-$i"
        mkdir -p "$dir"
        start_tether "$dir" "$port" server.log DATABASE_URL="$db" \
            REDIS_URL="redis://127.0.0.1:$redis_port" SESSION_SECRET="$secret" \
            TRUSTED_PROXIES=127.0.0.1
    done
    read -r SERVER_PID _ <<<"$SERVER_PIDS"
    if (( CLUSTER == 1 )) && [[ "${CLUSTER_PROXY:-0}" != 1 ]]; then
        URL="http://127.0.0.1:${ports[0]}"
        return 0
    fi
    port=$(free_port)
    # deploy/haproxy.cfg with only its bind and server lines replaced (as
    # tests/common/haproxy.rs and scripts/cluster.sh do); HAPROXY_MAXCONN
    # replaces its maxconn, HAPROXY_TIMEOUT_CHECK adds a `timeout check`.
    awk -v port="$port" -v servers="${ports[*]}" -v maxconn="${HAPROXY_MAXCONN:-}" \
        -v check="${HAPROXY_TIMEOUT_CHECK:-}" '
      /^[[:space:]]*maxconn / && maxconn != "" { match($0, /^[[:space:]]*/); print substr($0, 1, RLENGTH) "maxconn " maxconn; next }
      /^[[:space:]]*timeout connect / && check != "" { print; match($0, /^[[:space:]]*/); print substr($0, 1, RLENGTH) "timeout check " check; next }
      /^[[:space:]]*bind / { match($0, /^[[:space:]]*/); print substr($0, 1, RLENGTH) "bind 127.0.0.1:" port; next }
      /^[[:space:]]*server / {
        if (!done) { n = split(servers, s, " "); match($0, /^[[:space:]]*/)
          for (i = 1; i <= n; i++) print substr($0, 1, RLENGTH) "server tether-" i " 127.0.0.1:" s[i]
          done = 1 }
        next }
      { print }' "$ROOT/deploy/haproxy.cfg" >"$data/haproxy.cfg"
    haproxy -c -q -f "$data/haproxy.cfg"
    haproxy -db -f "$data/haproxy.cfg" >"$data/haproxy.log" 2>&1 </dev/null &
    PROXY_PID=$!
    URL="http://127.0.0.1:$port"
    # Its servers start UP (every instance answered before it started).
    wait_up "$URL/readyz" "$PROXY_PID" "$data/haproxy.log"
}

# CPU seconds (utime + stime) of the given processes; with `tree:PID`, of PID,
# its live children and its exited, reaped children (PostgreSQL's backends).
cpu_secs() {
    python3 - "$@" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
def fields(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
total = 0
for arg in sys.argv[1:]:
    tree = arg.startswith("tree:")
    pid = int(arg[5:] if tree else arg)
    f = fields(pid)
    if f is None:
        continue
    total += int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)
    if tree:
        total += int(f[13]) + int(f[14])  # cutime, cstime: exited children
        for c in os.listdir("/proc"):
            if c.isdigit() and (g := fields(c)) is not None and int(g[1]) == pid:
                total += int(g[11]) + int(g[12])
print(f"{total / hz:.2f}")
PY
}

describe() { # what the bench runs against
    local build
    build=$(basename "$(dirname "$TETHER_BIN")")
    if [[ $CLUSTER == 0 ]]; then
        echo "server $URL (pid $SERVER_PID, $build build)"
    else
        echo "cluster of $CLUSTER (pids$SERVER_PIDS, $build build; PostgreSQL pid $PG_PID, Redis pid $REDIS_PID${PROXY_PID:+, HAProxy pid $PROXY_PID}) at $URL"
    fi
}

# "tether redis postgres haproxy fake" CPU seconds now.
cpu_sample() {
    local t r="" p="" h=""
    # shellcheck disable=SC2086
    t=$(cpu_secs $SERVER_PIDS)
    if [[ -n "$REDIS_PID" ]]; then r=$(cpu_secs "$REDIS_PID"); fi
    if [[ -n "$PG_PID" ]]; then p=$(cpu_secs "tree:$PG_PID"); fi
    if [[ -n "$PROXY_PID" ]]; then h=$(cpu_secs "$PROXY_PID"); fi
    echo "$t ${r:-0} ${p:-0} ${h:-0} $(cpu_secs "$FAKE_PID") $(box_cpu)"
}

# The whole machine's busy and total CPU seconds (/proc/stat), to tell how
# busy the box was during a run (other processes included).
box_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '/^cpu / {
        total = 0; for (i = 2; i <= 9; i++) total += $i
        printf "%.2f %.2f", (total - $5 - $6) / hz, total / hz }' /proc/stat
}

# Prints the CPU spent between two samples ($1, $2) and per completed message
# (from the bench's "messages ok N/M" line in file $3); $4: bench CPU seconds.
cpu_report() {
    python3 - "$1" "$2" "$3" "$4" "$CLUSTER" <<'PY'
import re, sys
before, after = (list(map(float, a.split())) for a in sys.argv[1:3])
d = [b - a for a, b in zip(before, after)]
m = re.search(r"messages ok (\d+)/", open(sys.argv[3]).read())
n = int(m.group(1)) if m else 0
per = lambda s: f"{s / n * 1e6:,.0f} us/msg" if n else "n/a"
names = ["tether", "redis", "postgres", "haproxy"] if sys.argv[5] != "0" else ["tether"]
parts = [f"{name} {d[i]:.2f} s ({per(d[i])})" for i, name in enumerate(names)]
ours = sum(d[:5]) + float(sys.argv[4])
print(f"# cpu during the run, {n} messages: " + ", ".join(parts)
      + f"; fake upstream {d[4]:.2f} s, bench {float(sys.argv[4]):.2f} s"
      + f"; the machine was {d[5] / max(d[6], 1e-9):.0%} busy"
      + f" ({d[5]:.1f} of {d[6]:.1f} CPU s, {max(d[5] - ours, 0):.1f} s by other processes)")
PY
}

# CPU seconds of this shell's reaped children (`times`, second line; run in
# this shell, not a subshell, whose counters start at zero): the bench's.
children_cpu() {
    times >"$TMP/times"
    tail -n 1 "$TMP/times" | awk '{
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
        printf "%.2f", t }'
}

if [[ $SMOKE == 1 ]]; then
    DEFAULTS=(--users 5 --messages 2 --idle 20 --ramp-ms 100 --duration-cap-s 60 --msg-timeout-s 20)
else
    DEFAULTS=(--users 100 --messages 10 --idle 1000 --ramp-ms 1000)
fi

if [[ -n "$SOAK_SECS" ]]; then
    OUT=${SOAK_OUT:-.}
    SOAK_DEFAULTS=(--secs "$SOAK_SECS" --csv "$OUT/soak.csv" --svg "$OUT/soak.svg")
    if (( SOAK_SECS < 120 )); then
        SOAK_DEFAULTS+=(--sample-secs 1 --no-growth-verdict)
    else
        SOAK_DEFAULTS+=(--prefill-messages 12000 --prefill-chars 4000)
    fi
    start_servers soak
    echo "# soak: $(describe), fake upstream F=$F D=$D, ${SOAK_SECS} s" >&2
    status=0
    "$BENCH" soak --url "$URL" --server-pid "$SERVER_PID" "${SOAK_DEFAULTS[@]}" "$@" || status=$?
    if [[ $status != 0 ]]; then
        echo "# soak failed; the server log's last lines:" >&2
        tail -n 20 "$TMP/soak/server.log" "$TMP"/soak/instance-*/server.log >&2 2>/dev/null || true
    fi
    stop_servers
    exit "$status"
fi

run_bench() { # one bench run per transport, each against a fresh server pair; args go to tether-bench
    local transport
    for transport in $TRANSPORTS; do
        start_servers "$transport"
        echo "# $transport: $(describe), fake upstream F=$F D=$D" >&2
        cpu0=$(cpu_sample)
        children_cpu >"$TMP/bench0"
        local out=()
        if [[ -n "${PLOT_OUT:-}" ]]; then
            out=(--json-out "$PLOT_OUT/$transport-$(date +%s%N).json")
        fi
        "$BENCH" --url "$URL" --server-pid "$SERVER_PID" --transport "$transport" \
            --first-ms "$F" --delay-ms "$D" "${DEFAULTS[@]}" "$@" "${out[@]}" \
            | tee "$TMP/$transport/bench.out" || status=$?
        children_cpu >"$TMP/bench1"
        cpu1=$(cpu_sample)
        cpu_report "$cpu0" "$cpu1" "$TMP/$transport/bench.out" \
            "$(awk '{ t[NR] = $1 } END { printf "%.2f", t[2] - t[1] }' "$TMP/bench0" "$TMP/bench1")" >&2
        if [[ -n "$PROXY_PID" ]]; then
            echo "# requests per instance (HAProxy's log): $(grep -o 'tether/tether-[0-9]*' \
                "$TMP/$transport/haproxy.log" | sort | uniq -c | tr -s ' ' | tr '\n' ',')" >&2
        fi
        stop_servers
    done
}

status=0
if [[ -n "$SWEEP" ]]; then
    PLOT_OUT=${PLOT_OUT:-$(mktemp -d -t tether-sweep.XXXXXX)}
    mkdir -p "$PLOT_OUT"
    DEFAULTS=(--messages 5 --idle 0 --ramp-ms 1000)
    for users in $SWEEP; do
        run_bench --users "$users" "$@"
    done
    # shellcheck disable=SC2086
    "$BENCH" plot --svg "${PLOT_SVG:-$PLOT_OUT/bench.svg}" \
        --title "tether-bench sweep: F=$F ms, D=$D ms, $(date -u +%Y-%m-%d)" \
        "$PLOT_OUT"/*.json ${PLOT_WITH:-} || status=$?
    echo "# reports in $PLOT_OUT" >&2
    exit "$status"
fi
run_bench "$@"
exit "$status"
