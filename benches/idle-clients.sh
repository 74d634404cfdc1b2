#!/usr/bin/env bash
# Memory per idle client: starts PostgreSQL and pgha (transaction pooling),
# opens N client connections with the `idle-clients` tool
# (benches/src/bin/idle-clients.rs), each through startup and
# authentication to its first ReadyForQuery, keeps them open and idle, and
# reports pgha's resident memory (VmRSS, /proc/PID/status) before and with
# them, divided by N: bytes per idle client. A few of the idle clients then
# run `SELECT 1`, to show they are live sessions.
#
# Usage: benches/idle-clients.sh [N, default 50000]
#
# Transaction pooling, because in session pooling each client holds a
# server connection and idle clients are bounded by PostgreSQL's
# max_connections; a session-mode client costs the same in pgha plus a
# PostgreSQL backend.
#
# Needs an open file limit above N + 1000 for pgha and for the client tool
# (the script raises the soft limit; the hard limit, `ulimit -Hn`, must
# allow it: as root with CAP_SYS_RESOURCE it is raised too). Clients come
# from 127.0.0.1, 127.0.0.2, … so that no source address runs out of
# ephemeral ports (/proc/sys/net/ipv4/ip_local_port_range).
#
# Env: PGHA=path, IDLE_CLIENTS=path  binaries to use instead of building
#      CARGO_TARGET_DIR             where cargo builds (default target/)
#      POOL_SIZE=10                 pgha --pool-size
#      CONCURRENCY=256              connections being opened at once
#      PER_SOURCE_IP                clients per source address (default 3/4
#                                   of the ephemeral port range)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50000}
pool=${POOL_SIZE:-10}
concurrency=${CONCURRENCY:-256}

fds=$(( n + 1000 ))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$fds" ]; then
  if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$fds" ]; then
    ulimit -Hn "$fds" 2>/dev/null || {
      echo "idle-clients: $n clients need $fds open files; the hard limit is $(ulimit -Hn) and cannot be raised here" >&2
      exit 1
    }
  fi
  ulimit -n "$fds"
fi
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
per_ip=${PER_SOURCE_IP:-$(( (port_hi - port_lo + 1) * 3 / 4 ))}

scripts/deps.sh
target_dir=${CARGO_TARGET_DIR:-target}
if [ -z "${PGHA:-}" ] || [ -z "${IDLE_CLIENTS:-}" ]; then
  cargo build --quiet --release -p pgha -p pgha-benches --bin pgha --bin idle-clients
fi
pgha_bin=${PGHA:-$target_dir/release/pgha}
client_bin=${IDLE_CLIENTS:-$target_dir/release/idle-clients}

bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
user=postgres
run_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/pgha-idle-XXXXXX)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown "$user" "$work"
pgha_pid=
cleanup() {
  if [ -n "$pgha_pid" ]; then
    kill "$pgha_pid" 2>/dev/null || true
    wait "$pgha_pid" 2>/dev/null || true
  fi
  run_as "$bindir/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_port=$(free_port)
run_as "$bindir/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
run_as "$bindir/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c fsync=off" start >/dev/null

pgha_port=$(free_port)
"$pgha_bin" run --listen "127.0.0.1:$pgha_port" --node "primary=127.0.0.1:$pg_port" \
  --pool-mode transaction --pool-size "$pool" --max-client-conn $(( n + 100 )) 2>"$work/pgha.log" &
pgha_pid=$!
for _ in $(seq 60); do
  [ "$(run_as "$bindir/psql" -h 127.0.0.1 -p "$pgha_port" -U postgres -d postgres -XAtqc 'SELECT 1' 2>/dev/null)" = 1 ] && break
  sleep 0.5
done

echo "pgha $(grep -m1 VmRSS /proc/$pgha_pid/status | awk '{print $2, $3}') at start; $n idle clients, pool size $pool, open file limit $(ulimit -n)"
"$client_bin" --addr "127.0.0.1:$pgha_port" --pid "$pgha_pid" -n "$n" \
  --concurrency "$concurrency" --per-source-ip "$per_ip"
