#!/usr/bin/env bash
# A throw-away PostgreSQL for the tests, on 127.0.0.1 (scripts/test.sh starts
# one for the whole run and exports its URL as TETHER_TEST_POSTGRES; the test
# harness, tests/common/postgres.rs, creates a fresh database per test on it):
#
#   scripts/test-postgres.sh start DIR   initdb + start in DIR; prints its URL
#   scripts/test-postgres.sh stop DIR    stops it by its pidfile; removes DIR
#
# PostgreSQL refuses to run as root: as root it runs as the `postgres` user
# (DIR is made theirs). Binaries: TETHER_PG_BIN, else the newest
# /usr/lib/postgresql/*/bin, else PATH.
set -euo pipefail
cmd=${1:?usage: $0 start|stop DIR}
dir=${2:?usage: $0 start|stop DIR}
bin=${TETHER_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
bin=${bin:+$bin/}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
  start)
    mkdir -p "$dir"
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    as_postgres "${bin}initdb" -D "$dir/data" -A trust -U tether --no-sync \
      --encoding UTF8 --locale C >"$dir/initdb.log"
    # A random free port; another one if it is taken after all.
    for port in $(shuf -i 20000-60000 -n 10); do
      if as_postgres "${bin}pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start -o \
        "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
        >/dev/null; then
        echo "postgres://tether@127.0.0.1:$port/postgres"
        exit 0
      fi
    done
    echo "PostgreSQL did not start; see $dir/server.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_postgres "${bin}pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
