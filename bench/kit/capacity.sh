#!/usr/bin/env bash
# One capacity row of the shared kit (1,000 users x 20, the fake model at
# F=5 ms, D=0, TOKENS per reply) against one server, on private ports, with a
# fresh data directory; prints the server's CPU per completed message
# (the kit's server.active_cpu_s / messages.completed) and keeps the row's
# JSON in OUT. Issue 18's measure (docs/performance.md, "Server CPU per message").
#
#   bench/kit/capacity.sh SERVER TOKENS NAME
#     SERVER: a tether binary, KIT/bin/stand-in, or KIT/bin/seed-go (the Go
#             prototype: MODE=seed)
#   KIT=/tmp/bench (a copy of /work/shared/bench with bin/ built), OUT=/tmp/tether-cpu,
#   SERIES (the row's series in plots, default NAME), USERS=1000 MSGS=20,
#   PERF="-g" to `perf record` the server during the row (OUT/NAME.data).
set -uo pipefail
BIN=$1; N=$2; NAME=$3
KIT=${KIT:-/tmp/bench}; OUT=${OUT:-/tmp/tether-cpu}; PERF=${PERF:-}
mkdir -p "$OUT"
cd "$KIT" || exit 2
. lib/procs.sh
raise_nofile >/dev/null 2>&1
HOST=${HOST:-127.0.0.1:3181}; UP=${UP:-127.0.0.1:9181}
data=$(mktemp -d /tmp/cpu-data.XXXX)
start_bg fake0 env FAKE_ADDR="$UP" FAKE_FIRST_MS=5 FAKE_DELAY_MS=0 FAKE_TOKENS="$N" FAKE_STAMP=1 bin/fake-upstream
wait_port "$UP"
start_bg server env OPENAI_BASE_URL="http://$UP/v1" OPENAI_API_KEY=bench OPENAI_MODEL=fake \
  ALLOWED_ORIGINS="http://$HOST" LISTEN_ADDR="$HOST" LEPTOS_SITE_ADDR="$HOST" \
  RATE_BURST=1000000 RATE_PER_SEC=1000000 MAX_CONNECTIONS=200000 MAX_SOCKETS_PER_USER=1000 \
  MAX_CONCURRENT_UPSTREAM=100000 MAX_STREAMS_PER_ADDR=200000 ADDR_RATE_BURST=1000000 \
  ADDR_RATE_PER_SEC=1000000 IDENTITY_BURST=1000000 IDENTITY_PER_SEC=1000000 \
  RUST_LOG=warn TETHER_DATA_DIR="$data" "$BIN"
wait_port "$HOST" 60
if [ -n "$PERF" ]; then
  # shellcheck disable=SC2086
  perf record -F 999 $PERF -p "$PID_server" -o "$OUT/$NAME.data" >"$OUT/$NAME.perf.log" 2>&1 &
  perf_pid=$!
fi
bin/loadgen -mode "${MODE:-tether}" -host "$HOST" -users "${USERS:-1000}" -msgs "${MSGS:-20}" \
  -pid "$PID_server" -upstream "http://$UP" -ramp 1s -duration 120s \
  -label "${SERIES:-$NAME} capacity $NAME" -out "$OUT/$NAME.json" >"$OUT/$NAME.log" 2>&1
if [ -n "$PERF" ]; then kill -INT "$perf_pid"; wait "$perf_pid"; fi
stop_all
rm -rf "$data"
python3 - "$OUT/$NAME.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m, s, mach = r["messages"], r["server"], r["machine"]
per = s["active_cpu_s"] / max(m["completed"], 1) * 1e6
print(f"{r['label']}: completed {m['completed']} failed {m['failed']} msgs/s {m['msgs_per_s']:.0f} "
      f"server cpu {s['active_cpu_s']:.2f}s = {per:.0f} us/msg; "
      f"other processes {mach['other_processes_cores_active']:.2f} cores")
PY
