#!/usr/bin/env bash
# End-to-end: pgbench through direct PostgreSQL, pgha, PgBouncer and
# pgpool-II, in interleaved rounds in one run (machines differ; only ratios
# from the same run carry over). Reports TPS, TPS relative to direct, the
# proxy's CPU microseconds per transaction (from /proc/PID/stat) and the
# worst transaction latency.
#
# Usage: benches/pgbench-compare.sh [seconds per run, default 10] [rounds, default 3]
# Env: CLIENTS="8 32" MODES="simple extended" — what to run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
clients=${CLIENTS:-"8 32"}
modes=${MODES:-"simple extended"}

scripts/deps.sh
need=()
command -v pgbouncer >/dev/null || need+=(pgbouncer)
command -v pgpool >/dev/null || need+=(pgpool2)
if [ ${#need[@]} -gt 0 ]; then
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --quiet --release -p pgha

bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
user=postgres
run_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/pgha-bench-XXXXXX)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown "$user" "$work"
# A process and all its descendants (runuser → pgbouncer; pgpool's children).
proc_tree() {
  local p
  echo "$1"
  for p in $(pgrep -P "$1" || true); do proc_tree "$p"; done
}
pids=()
cleanup() {
  # Whole trees: killing runuser alone leaves pgbouncer or pgpool (and
  # pgpool's children, which spin once their backend is gone) running.
  local all=()
  for p in "${pids[@]}"; do all+=($(proc_tree "$p")); done
  [ ${#all[@]} -gt 0 ] && kill "${all[@]}" 2>/dev/null || true
  sleep 0.5
  [ ${#all[@]} -gt 0 ] && kill -9 "${all[@]}" 2>/dev/null || true
  run_as "$bindir/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

pg_port=$(free_port)
run_as "$bindir/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
run_as "$bindir/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c max_connections=200 -c shared_buffers=128MB -c fsync=off" start >/dev/null
run_as "$bindir/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -i -s 10 -q postgres >/dev/null 2>&1

# pgha: the daemon (monitor + proxy) in front of the one server.
pgha_port=$(free_port)
target/release/pgha run --listen "127.0.0.1:$pgha_port" --node "n0=127.0.0.1:$pg_port" 2>"$work/pgha.log" &
pgha_pid=$!; pids+=("$pgha_pid")

# PgBouncer, session and transaction pooling (pgbench holds its session).
bouncer_port=$(free_port)
cat >"$work/pgbouncer.ini" <<INI
[databases]
postgres = host=127.0.0.1 port=$pg_port dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
INI
echo '"postgres" ""' >"$work/userlist.txt"
[ "$(id -u)" -eq 0 ] && chown "$user" "$work"/pgbouncer.ini "$work"/userlist.txt
run_as pgbouncer "$work/pgbouncer.ini" >/dev/null 2>&1 &
bouncer_pid=$!; pids+=("$bouncer_pid")

# pgpool-II in streaming-replication mode, one backend, no load balancing.
pool_port=$(free_port)
mkdir -p "$work/pgpool"
cat >"$work/pgpool/pgpool.conf" <<CONF
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = $pool_port
unix_socket_directories = '$work/pgpool'
pcp_listen_addresses = ''
pcp_socket_dir = '$work/pgpool'
backend_hostname0 = '127.0.0.1'
backend_port0 = $pg_port
backend_weight0 = 1
backend_flag0 = 'ALWAYS_PRIMARY'
num_init_children = 40
max_pool = 1
enable_pool_hba = off
load_balance_mode = off
sr_check_period = 0
health_check_period = 0
pid_file_name = '$work/pgpool/pgpool.pid'
logdir = '$work/pgpool'
wd_ipc_socket_dir = '$work/pgpool'
CONF
touch "$work/pgpool/pcp.conf" "$work/pgpool/pool_hba.conf"
[ "$(id -u)" -eq 0 ] && chown -R "$user" "$work/pgpool"
run_as pgpool -n -f "$work/pgpool/pgpool.conf" -F "$work/pgpool/pcp.conf" -a "$work/pgpool/pool_hba.conf" >"$work/pgpool.log" 2>&1 &
pool_pid=$!; pids+=("$pool_pid")

sleep 2
cpu_ticks() { # utime+stime of a process and its children threads, in clock ticks
  local total=0
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

printf "%-9s %-8s %-4s %-5s %10s %8s %12s %12s\n" target mode c round tps vs_direct proxy_us/tx max_lat_ms
declare -A sum_tps
for round in $(seq "$rounds"); do
  for mode in $modes; do
    for c in $clients; do
      direct_tps=
      for target in direct pgha pgbouncer pgpool; do
        case $target in
          direct) port=$pg_port; proc=() ;;
          pgha) port=$pgha_port; proc=("$pgha_pid") ;;
          pgbouncer) port=$bouncer_port; proc=($(proc_tree "$bouncer_pid")) ;;
          pgpool) port=$pool_port; proc=($(proc_tree "$pool_pid")) ;;
        esac
        before=$(cpu_ticks "${proc[@]}")
        out=$(run_as "$bindir/pgbench" -h 127.0.0.1 -p "$port" -U postgres -S -M "$mode" -c "$c" -j 2 -T "$secs" \
              -l --log-prefix="$work/log-$target" postgres 2>&1) || { echo "$target failed: $out" | tail -3; continue; }
        after=$(cpu_ticks "${proc[@]}")
        tps=$(echo "$out" | awk '/^tps/ {print int($3)}' | head -1)
        tx=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF}' | cut -d/ -f1)
        max=$(cat "$work"/log-"$target"* 2>/dev/null | awk 'BEGIN{m=0} {if ($3>m) m=$3} END{printf "%.1f", m/1000}')
        rm -f "$work"/log-"$target"*
        [ "$target" = direct ] && direct_tps=$tps
        ratio=$(awk -v a="$tps" -v b="$direct_tps" 'BEGIN{printf "%.2f", a/b}')
        us="-"
        if [ ${#proc[@]} -gt 0 ] && [ "${tx:-0}" -gt 0 ]; then
          us=$(awk -v d="$(( after - before ))" -v hz="$hz" -v tx="$tx" 'BEGIN{printf "%.1f", d/hz*1e6/tx}')
        fi
        printf "%-9s %-8s %-4s %-5s %10s %8s %12s %12s\n" "$target" "$mode" "$c" "$round" "$tps" "$ratio" "$us" "$max"
      done
    done
  done
done
