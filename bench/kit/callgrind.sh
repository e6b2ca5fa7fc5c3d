#!/usr/bin/env bash
# Server instructions per message, repeatable on a busy box: the server
# under callgrind, instrumented only while USERS x MSGS (100 x 10) messages
# run after a 10 x 2 warm-up, the fake model at F=5 ms, D=0, TOKENS per reply.
#
#   bench/kit/callgrind.sh TETHER_BINARY TOKENS NAME
#   KIT=/tmp/bench (a copy of /work/shared/bench with bin/ built), OUT=/tmp/tether-cpu
# Prints user-space instructions per completed message; OUT/cg-NAME.* keep
# the profile (callgrind_annotate).
set -uo pipefail
BIN=$1; N=$2; NAME=$3
KIT=${KIT:-/tmp/bench}; OUT=${OUT:-/tmp/tether-cpu}
mkdir -p "$OUT"
cd "$KIT" || exit 2
. lib/procs.sh
raise_nofile >/dev/null 2>&1
HOST=${HOST:-127.0.0.1:3182}; UP=${UP:-127.0.0.1:9182}
data=$(mktemp -d /tmp/cpu-data.XXXX)
out=$OUT/cg-$NAME
rm -f "$out".*
start_bg fake0 env FAKE_ADDR="$UP" FAKE_FIRST_MS=5 FAKE_DELAY_MS=0 FAKE_TOKENS="$N" FAKE_STAMP=1 bin/fake-upstream
wait_port "$UP"
start_bg server env OPENAI_BASE_URL="http://$UP/v1" OPENAI_API_KEY=bench OPENAI_MODEL=fake \
  ALLOWED_ORIGINS="http://$HOST" LISTEN_ADDR="$HOST" LEPTOS_SITE_ADDR="$HOST" \
  RATE_BURST=1000000 RATE_PER_SEC=1000000 MAX_CONNECTIONS=200000 MAX_SOCKETS_PER_USER=1000 \
  MAX_CONCURRENT_UPSTREAM=100000 MAX_STREAMS_PER_ADDR=200000 ADDR_RATE_BURST=1000000 \
  ADDR_RATE_PER_SEC=1000000 IDENTITY_BURST=1000000 IDENTITY_PER_SEC=1000000 \
  RUST_LOG=warn TETHER_DATA_DIR="$data" \
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" "$BIN"
wait_port "$HOST" 120
bin/loadgen -mode tether -host "$HOST" -users 10 -msgs 2 -upstream "http://$UP" -ramp 100ms \
  -duration 120s -msg-timeout 60s -q -out /dev/null >/dev/null 2>&1
callgrind_control -i on "$PID_server" >/dev/null
bin/loadgen -mode tether -host "$HOST" -users "${USERS:-100}" -msgs "${MSGS:-10}" -upstream "http://$UP" \
  -ramp 1s -duration 300s -msg-timeout 120s -label "$NAME" -out "$out.json" >"$out.log" 2>&1
callgrind_control -d "$PID_server" >/dev/null
callgrind_control -i off "$PID_server" >/dev/null
stop_all
rm -rf "$data"
python3 - "$out" <<'PY'
import glob, json, re, sys
out = sys.argv[1]
m = json.load(open(out + ".json"))["messages"]
total = 0
for f in glob.glob(out + ".*"):
    if not f.endswith((".json", ".log")):
        total += sum(int(x.group(1)) for x in re.finditer(r"^totals: (\d+)", open(f, errors="replace").read(), re.M))
print(f"{out.split('/')[-1]}: completed {m['completed']} failed {m['failed']}; "
      f"{total / 1e6:.1f} M instructions = {total / max(m['completed'], 1) / 1e3:.0f} k instructions per message")
PY
