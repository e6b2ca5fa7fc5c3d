#!/usr/bin/env bash
# Sign-in cost on this box: a fresh server (AUTH_MODE=accounts, its own data
# directory and port), one account, then N password sign-ins one after
# another and N more P at a time, timed by curl. Prints the median, p95
# and min of the time to an answer, and sign-ins per second when P run at
# once (each is one argon2id verification: 19 MiB, t=2, p=1).
#
#   bench/signin.sh [TETHER_BIN]        N=50 P=2 PORT=3197
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/tether}
N=${N:-50}
P=${P:-2}
PORT=${PORT:-3197}
URL="http://127.0.0.1:$PORT"
DATA=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$DATA"' EXIT

AUTH_MODE=accounts LISTEN_ADDR="127.0.0.1:$PORT" TETHER_DATA_DIR="$DATA" \
  OPENAI_BASE_URL=http://127.0.0.1:9/v1 LOGIN_FAILURES=1000 RUST_LOG=off "$BIN" &
pid=$!
for _ in $(seq 200); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.05; done

body='{"username":"bench","password":"correct horse battery"}'
post() {
  curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -X POST "$URL$1" \
    -H "origin: $URL" -H 'content-type: application/json' -d "$body"
}
read -r code _ < <(post /api/auth/signup)
[ "$code" = 200 ] || { echo "sign-up answered $code" >&2; exit 1; }

stats() { # seconds on stdin -> "median p95 min" in ms
  sort -n | awk '{ t[NR] = $1 * 1000 } END {
    printf "median %.1f ms, p95 %.1f ms, min %.1f ms (n=%d)\n", t[int((NR + 1) / 2)], t[int(NR * 0.95 + 0.5)], t[1], NR }'
}

echo "one at a time:"
for _ in $(seq "$N"); do post /api/auth/signin; done | awk '$1 == 200 { print $2 }' | stats
echo "$P at a time:"
start=$(date +%s.%N)
seq "$N" | xargs -P "$P" -I{} bash -c "$(declare -f post); URL=$URL body='$body' post /api/auth/signin" \
  | awk '$1 == 200 { print $2 }' > "$DATA/times"
end=$(date +%s.%N)
stats < "$DATA/times"
awk -v n="$(wc -l < "$DATA/times")" -v s="$start" -v e="$end" \
  'BEGIN { printf "%.1f sign-ins/s\n", n / (e - s) }'
