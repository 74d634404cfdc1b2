#!/usr/bin/env bash
# False failovers under load: a primary and a streaming standby behind
# `pgha run` with its default monitor settings (probes every 500 ms, 500 ms
# timeout, down after 2 failures 500 ms apart, or one crash), pgbench at
# full load through pgha, nothing injected. Every promotion is a false
# failover. pgha, PostgreSQL and pgbench share the machine's cores, as the
# issue asks (#10 item 7: 0 in 30 minutes on a 2-core machine).
#
# Usage: benches/false-failovers.sh [seconds, default 1800]
#   CLIENTS=16  pgbench -c (default 4 per core); -j is 2
#   SCALE=10    pgbench -i -s
#   PGHA=path   a pgha binary to use instead of building one (release)
# Prints the term before and after (each promotion raises it), the monitor's
# failover decisions from pgha's log, and pgbench's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-1800}
cores=$(nproc)
clients=${CLIENTS:-$((4 * cores))}
scale=${SCALE:-10}

scripts/deps.sh
if [ -n "${PGHA:-}" ]; then
  pgha_bin=$PGHA
else
  cargo build --quiet --release -p pgha
  pgha_bin=${CARGO_TARGET_DIR:-target}/release/pgha
fi
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
user=postgres
run_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
status() { # the term from pgha's /status, or "?"
  python3 -c 'import json,sys,urllib.request
try: print(json.load(urllib.request.urlopen(sys.argv[1], timeout=2))["term"])
except Exception: print("?")' "http://127.0.0.1:$http_port/status"
}

work=$(mktemp -d /tmp/pgha-bench-XXXXXX)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown "$user" "$work"
pgha_pid=
cleanup() {
  [ -n "$pgha_pid" ] && kill "$pgha_pid" 2>/dev/null || true
  run_as "$bindir/pg_ctl" -D "$work/standby" -m immediate stop >/dev/null 2>&1 || true
  run_as "$bindir/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  mkdir -p /tmp/pgha-bench-logs
  cp "$work"/*.log /tmp/pgha-bench-logs/ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_opts="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c max_connections=$((clients + 40)) \
-c shared_buffers=128MB -c max_wal_size=4GB"
pg_port=$(free_port)
run_as "$bindir/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
run_as "$bindir/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o "-p $pg_port $pg_opts" start >/dev/null
run_as "$bindir/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -i -s "$scale" -q postgres >/dev/null 2>&1
sb_port=$(free_port)
run_as "$bindir/pg_basebackup" -h 127.0.0.1 -p "$pg_port" -U postgres -D "$work/standby" -R -X stream -c fast --no-sync
run_as "$bindir/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w -o "-p $sb_port $pg_opts" start >/dev/null

port=$(free_port)
http_port=$(free_port)
"$pgha_bin" run --listen "127.0.0.1:$port" --node "primary=127.0.0.1:$pg_port" \
  --node "standby=127.0.0.1:$sb_port" --state-file "$work/state.json" --pool-size "$clients" \
  --http "127.0.0.1:$http_port" 2>"$work/pgha.log" &
pgha_pid=$!
for _ in $(seq 100); do [ "$(status)" != "?" ] && break; sleep 0.1; done
before=$(status)
echo "pgha up (term $before); pgbench -c $clients -j 2 -T $secs (tpcb-like) through it on $cores cores" >&2
run_as "$bindir/pgbench" -h 127.0.0.1 -p "$port" -U postgres -c "$clients" -j 2 -T "$secs" \
  -n -P 60 postgres 2>&1 | grep -E '^(progress|tps|number of (transactions|failed)|latency)' || true
after=$(status)
decisions=$(grep -c 'failover decision' "$work/pgha.log" || true)
echo
echo "term before: $before, after: $after"
echo "monitor decisions (failover decision lines): $decisions"
grep 'failover decision' "$work/pgha.log" | head -20 || true
if [ "$before" = "$after" ] && [ "$before" != "?" ]; then
  echo "false failovers: 0 in ${secs}s"
else
  echo "false failovers: $(( ${after//\?/0} - ${before//\?/0} )) in ${secs}s (see /tmp/pgha-bench-logs/pgha.log)"
  exit 1
fi
