# Sourced by the set-up, start and test scripts: step headers that say how
# long the run has taken, and long commands that show their progress.
#
#   step "Building Tether"                  ==> Building Tether   [2 min 05 s]
#   long "cargo-leptos" "12 min" LOG cmd…   runs cmd, output to LOG; on a
#       terminal one line updates every second (elapsed, estimate, the log's
#       last line: the crate being compiled), else a line every 30 s; on
#       failure the log's last lines are shown.
#   since START                             "3 min 20 s" since START (epoch
#                                           seconds; default: when the first
#                                           script of this run started)

export TETHER_T0=${TETHER_T0:-$(date +%s)}

since() {
  local s=$(($(date +%s) - ${1:-$TETHER_T0}))
  if [ "$s" -ge 60 ]; then printf '%d min %02d s' $((s / 60)) $((s % 60)); else printf '%d s' "$s"; fi
}

# Each step's header; the time each step took (wall clock, and CPU of the
# processes it ran, which does not depend on what else the machine does) is
# kept for `step_summary`.
STEPS_TAKEN=()
STEP_NAME=""
STEP_START=0
STEP_CPU=0
# CPU seconds of this shell's finished children (bash `times`, second line;
# written to a file, as a `$(…)` subshell would report its own children).
TIMES_FILE=$(mktemp -t tether-times.XXXXXX)
cpu_now() { # sets CPU_NOW without a subshell
  times >"$TIMES_FILE"
  CPU_NOW=$(awk 'NR == 2 {
    t = 0
    for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); t += p[1] * 60 + p[2] }
    printf "%d", t
  }' "$TIMES_FILE")
}
end_step() {
  if [ -n "$STEP_NAME" ]; then
    cpu_now
    STEPS_TAKEN+=("$(($(date +%s) - STEP_START))|$((CPU_NOW - STEP_CPU))|$STEP_NAME")
  fi
  STEP_NAME=""
}
step() {
  end_step
  STEP_NAME="$*"
  STEP_START=$(date +%s)
  cpu_now
  STEP_CPU=$CPU_NOW
  printf '\n\033[1m==> %s\033[0m   [%s]\n' "$*" "$(since)"
}
# How long each step took, and the whole run.
step_summary() {
  end_step
  local entry wall cpu name
  printf '\n%s\n' "Time per step (wall clock, CPU):"
  for entry in "${STEPS_TAKEN[@]}"; do
    IFS='|' read -r wall cpu name <<<"$entry"
    printf '%7s %8s  %s\n' "$wall s" "$cpu s" "$name"
  done
  cpu_now
  printf '%7s %8s  %s\n' "" "$CPU_NOW s" "total $(since)"
  rm -f "$TIMES_FILE"
}

have() { command -v "$1" >/dev/null 2>&1; }

# The log's last line, shortened (cargo's "Compiling serde v1.0.219").
last_line() { tail -n 1 "$1" 2>/dev/null | tr -d '\r' | sed 's/^ *//' | cut -c1-70; }

long() {
  local label=$1 estimate=$2 log=$3
  shift 3
  local start
  start=$(date +%s)
  echo "$label: about $estimate on 2 cores (log: $log)"
  "$@" >"$log" 2>&1 &
  local pid=$! tick=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1 # a progress display's refresh, not a wait for an event
    tick=$((tick + 1))
    if [ -t 1 ]; then
      printf '\r\033[K  %s so far: %s' "$(since "$start")" "$(last_line "$log")"
    elif [ $((tick % 30)) = 0 ]; then
      printf '  %s so far: %s\n' "$(since "$start")" "$(last_line "$log")"
    fi
  done
  [ -t 1 ] && printf '\r\033[K'
  if wait "$pid"; then
    echo "  done in $(since "$start")"
  else
    echo "  FAILED after $(since "$start"); the end of $log:" >&2
    tail -n 30 "$log" >&2
    return 1
  fi
}
