#!/usr/bin/env bash
# Builds tether-bench, starts the fake upstream and a tether server on free
# ports (temp data dir, high limits), runs the bench, prints the table, and
# stops both processes. One fresh server pair per transport.
#
#   bench/run.sh [--smoke] [tether-bench args...]
#   bench/run.sh --soak SECONDS [tether-bench soak args...]
#
# Defaults: 100 users x 10 messages, idle 1000, WebSocket. Environment:
#   F=100 D=20            fake upstream first-token / inter-token delay (ms)
#   TRANSPORTS="ws"       transports to run, e.g. "ws sse"
#   TETHER_BIN            server binary (default: the newer of release/debug in ~/.cache/tether/target)
#   FAKE_BIN              fake upstream binary (default: crates/fake-upstream, built here in
#                         the profile of the server binary, into the same target dir)
#   BENCH_TARGET_DIR      cargo target dir of the bench (default ~/.cache/tether/bench-target)
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
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TETHER_TARGET=${TETHER_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/tether/target}}
export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$HOME/.cache/tether/bench-target}
F=${F:-100}
D=${D:-20}
TRANSPORTS=${TRANSPORTS:-ws}

SMOKE=0
SOAK_SECS=""
if [[ "${1:-}" == "--smoke" ]]; then
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
stop_servers() {
    for p in $SERVER_PID $FAKE_PID; do
        kill "$p" 2>/dev/null || true
    done
    for p in $SERVER_PID $FAKE_PID; do
        wait "$p" 2>/dev/null || true
    done
    SERVER_PID=""
    FAKE_PID=""
}
cleanup() {
    stop_servers
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_servers() { # $1: run name
    local fake_port server_port data
    fake_port=$(free_port)
    server_port=$(free_port)
    data="$TMP/$1"
    mkdir -p "$data"
    FAKE_ADDR="127.0.0.1:$fake_port" FAKE_FIRST_MS="$F" FAKE_DELAY_MS="$D" \
        "$FAKE_BIN" >"$data/fake.log" 2>&1 &
    FAKE_PID=$!
    # Run from the temp dir so that no ./tether.toml is picked up.
    (cd "$data" && exec env \
        LISTEN_ADDR="127.0.0.1:$server_port" TETHER_DATA_DIR="$data" \
        OPENAI_BASE_URL="http://127.0.0.1:$fake_port/v1" OPENAI_MODEL=fake OPENAI_API_KEY= \
        LEPTOS_SITE_ROOT="$ROOT/target/site" RUST_LOG=warn \
        RATE_BURST=1000000 RATE_PER_SEC=1000000 MAX_CONNECTIONS=200000 \
        MAX_SOCKETS_PER_USER=1000 MAX_CONCURRENT_UPSTREAM=100000 \
        MAX_STREAMS_PER_ADDR=200000 ADDR_RATE_BURST=1000000 ADDR_RATE_PER_SEC=1000000 \
        IDENTITY_BURST=1000000 IDENTITY_PER_SEC=1000000 \
        "$TETHER_BIN" >"$data/server.log" 2>&1) &
    SERVER_PID=$!
    URL="http://127.0.0.1:$server_port"
    for _ in $(seq 1 300); do
        if curl -sf -o /dev/null "$URL/api/session"; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "server did not start; log:" >&2
    cat "$data/server.log" >&2
    exit 2
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
    echo "# soak: server $URL (pid $SERVER_PID, $(basename "$(dirname "$TETHER_BIN")") build), fake upstream F=$F D=$D, ${SOAK_SECS} s" >&2
    status=0
    "$BENCH" soak --url "$URL" --server-pid "$SERVER_PID" "${SOAK_DEFAULTS[@]}" "$@" || status=$?
    if [[ $status != 0 ]]; then
        echo "# soak failed; the server log's last lines:" >&2
        tail -n 20 "$TMP/soak/server.log" >&2 || true
    fi
    stop_servers
    exit "$status"
fi

status=0
for transport in $TRANSPORTS; do
    start_servers "$transport"
    echo "# $transport: server $URL (pid $SERVER_PID, $(basename "$(dirname "$TETHER_BIN")") build), fake upstream F=$F D=$D" >&2
    "$BENCH" --url "$URL" --server-pid "$SERVER_PID" --transport "$transport" \
        --first-ms "$F" --delay-ms "$D" "${DEFAULTS[@]}" "$@" || status=$?
    stop_servers
done
exit "$status"
