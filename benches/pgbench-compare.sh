#!/usr/bin/env bash
# End-to-end proxy comparison: pgbench through direct PostgreSQL, pgha
# (session and transaction pooling, load balancing on and off), PgBouncer
# (session and transaction pooling) and pgpool-II, in interleaved rounds in
# one run. Machines differ: only ratios from the same run carry over.
#
# Usage: benches/pgbench-compare.sh [seconds per run, default 10] [rounds, default 3]
#   e.g. CLIENTS=8 WORKLOADS=select-simple TARGETS="direct pgha-tx pgbouncer-tx" \
#        benches/pgbench-compare.sh 2 1
# The defaults make 62 runs per round (8 targets × 4 workloads × 2 client
# counts, less pgbouncer-tx with -M prepared before PgBouncer 1.21): about
# 35 minutes for 3 rounds of 10 s, plus set-up. Run it on a quiet machine.
# Progress lines go to stderr; the markdown tables to stdout.
#
# Measures, per workload, client count and target (medians over rounds):
#   TPS              pgbench's tps (without initial connection time)
#   TPS/direct       against PostgreSQL without a proxy (the primary)
#   TPS/pgb          against PgBouncer in the same pool mode: pgbouncer-session
#                    for the *-session targets, pgbouncer-tx for all others
#   CPU µs/tx        the proxy's user+system CPU time over the run (utime +
#                    stime from /proc/PID/stat, all threads; pgpool: the main
#                    process and all its children) per transaction
#   CPU/pgb          the same against PgBouncer
#   p50/p99/p99.9 ms, worst ms
#                    latency percentiles and the slowest single transaction,
#                    from pgbench's per-transaction log (-l); p99.9/pgb and
#                    worst/pgb against PgBouncer
#   >20 ms           transactions slower than 20 ms (from the same log): a
#                    stall shows as a bunch of them ending at one instant;
#                    their log lines are kept in
#                    /tmp/pgha-bench-logs/slow-TARGET-WORKLOAD-cCLIENTS.log
#   stalls           pgha only: the proxy's runtime woke a timer more than
#                    20 ms late during the run (pgha_runtime_stalls_total on
#                    /metrics, pgha-proxy/src/stall.rs): every client of that
#                    proxy waited as long. Slow transactions without stalls
#                    were held elsewhere (the server, the client, the kernel)
#   standby %        pgha with load balancing: share of transactions sent to
#                    the standby (pgha's /metrics, pgha_transactions_total)
# and, under each table, what load balancing costs pgha (lb / no lb).
#
# Targets (env TARGETS, space-separated, in this order by default):
#   direct             the primary itself
#   pgha-session       pgha --pool-mode session     --no-load-balance
#   pgha-session-lb    pgha --pool-mode session     (load balancing on)
#   pgha-tx            pgha --pool-mode transaction --no-load-balance
#   pgha-tx-lb         pgha --pool-mode transaction (load balancing on)
#   pgha-tx-2t         as pgha-tx with --threads 2 (the proxy on two worker
#                      threads; not in the default list)
#   pgha-tx-lsn-lb     as pgha-tx-lb with --consistency lsn (read-your-writes by
#                      WAL position: one hidden query per write transaction;
#                      not in the default list)
#   pgbouncer-session  PgBouncer pool_mode = session
#   pgbouncer-tx       PgBouncer pool_mode = transaction
#   pgha-tx-unix, pgbouncer-tx-unix
#                      as pgha-tx and pgbouncer-tx, but connecting to
#                      PostgreSQL over its Unix socket (the seed's layout:
#                      the pooler on the database host); not in the default
#                      list. A *-unix target is compared with
#                      pgbouncer-tx-unix when that ran, else pgbouncer-tx.
#   pgpool             pgpool-II 4.x, streaming-replication mode, the primary
#                      only, load_balance_mode = off
# When any *-lb target is selected a streaming standby is started
# (pg_basebackup -R from the primary) and every pgha instance gets it as a
# second --node, so lb and no-lb differ by --no-load-balance alone; "direct"
# stays the primary. pgha sends a session's lone reads to the standby until
# the session first writes or opens a transaction; from then on everything
# goes to the primary (in the mix, soon after each client's first
# tpcb-like transaction). The "standby %" column shows where transactions
# went. Before the rounds, each lb target must send a lone
# `SELECT pg_is_in_recovery()` to the standby, or a warning is printed.
#
# Workloads (env WORKLOADS, space-separated; KIND-PROTOCOL, the protocol is
# pgbench's -M: simple, extended or prepared):
#   select-simple select-extended select-prepared
#                      pgbench -S (builtin select-only): one primary-key SELECT
#   mix-simple         -b select-only@9 -b tpcb-like@1: 90 % select-only,
#                      10 % tpcb-like read/write transactions
#   tpcb-simple        -b tpcb-like (the builtin read/write transaction)
# Default: "select-simple select-extended select-prepared mix-simple".
# PgBouncer supports protocol-level prepared statements in transaction mode
# only from 1.21 (max_prepared_statements); with an older one (Debian 12
# ships 1.18) pgbouncer-tx is skipped for -M prepared and the tx targets are
# compared with pgbouncer-session there (marked * in the table).
#
# Pool sizes and pgbench threads: pgbench -j is min(clients, 2). In
# transaction pooling with fewer server connections than clients, pgbench
# -M prepared can deadlock (a thread waits for the answer to a synchronous
# PREPARE of one client while the server connection it needs is held by
# another client of the same thread, idle until that thread gets to it), so
# every pool is at least as large as the most clients run: pgha
# --pool-size, PgBouncer default_pool_size and pgpool num_init_children
# are all POOL_SIZE (default: the largest of CLIENTS).
#
# Other env knobs:
#   CLIENTS="8 32"     client counts (pgbench -c)
#   SCALE=10           pgbench -i scale (10: 1M accounts, ~150 MB)
#   WARMUP=2           seconds of unmeasured pgbench -S with the most clients
#                      through each target before the rounds (0: none), so
#                      the pools hold their server connections
#   POOL_SIZE          see above
#   PGHA=path          a pgha binary to use instead of building one
#   CARGO_TARGET_DIR   where cargo builds (default target/)
#   MODES              older knob: "simple extended" selects select-MODE
#                      workloads (plus mix-simple) when WORKLOADS is unset
#
# pgbench's per-transaction logs go to a directory on tmpfs (/dev/shm) when
# there is one: a pgbench thread writes its log from the thread that runs
# its clients, and on a disk busy with writeback (other builds) that
# write() blocks for up to hundreds of ms — every client of that thread
# then "finishes at the same instant after the same wait", which looks like
# a proxy stall but is the client's. On this machine, under the same
# background writes, 10 s runs of 16 clients had 3–21 transactions over
# 50 ms with the logs on disk and 0–3 with them on tmpfs (issue 15).
#
# Runs as root (PostgreSQL, PgBouncer and pgpool then run as `postgres`) or
# as a user who can run PostgreSQL; installs PostgreSQL, PgBouncer and
# pgpool-II from Debian's packages when missing. Loopback only; everything
# it starts is stopped and its temporary directory removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
clients=${CLIENTS:-"8 32"}
if [ -z "${WORKLOADS:-}" ] && [ -n "${MODES:-}" ]; then
  WORKLOADS="$(for m in $MODES; do printf 'select-%s ' "$m"; done)mix-simple"
fi
workloads=${WORKLOADS:-"select-simple select-extended select-prepared mix-simple"}
targets=${TARGETS:-"direct pgha-session pgha-session-lb pgha-tx pgha-tx-lb pgbouncer-session pgbouncer-tx pgpool"}
scale=${SCALE:-10}
warmup=${WARMUP:-2}
max_clients=$(printf '%s\n' $clients | sort -n | tail -1)
pool=${POOL_SIZE:-$max_clients}

has_target() { [[ " $targets " == *" $1 "* ]]; }
any_target() { [[ " $targets " == *" $1"* ]]; } # a prefix
for t in $targets; do
  case $t in
    direct | pgha-session | pgha-session-lb | pgha-tx | pgha-tx-lb | pgha-tx-lsn-lb | pgha-tx-unix | pgha-tx-2t) ;;
    pgbouncer-session | pgbouncer-tx | pgbouncer-tx-unix | pgpool) ;;
    *) echo "unknown target $t" >&2; exit 2 ;;
  esac
done
for w in $workloads; do
  case $w in
    select-simple | select-extended | select-prepared | mix-simple | mix-extended | mix-prepared | tpcb-simple | tpcb-extended | tpcb-prepared) ;;
    *) echo "unknown workload $w" >&2; exit 2 ;;
  esac
done

scripts/deps.sh
need=()
any_target pgbouncer && ! command -v pgbouncer >/dev/null && need+=(pgbouncer)
has_target pgpool && ! command -v pgpool >/dev/null && need+=(pgpool2)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -n "${PGHA:-}" ]; then
  pgha_bin=$PGHA
elif any_target pgha; then
  cargo build --quiet --release -p pgha
  pgha_bin=${CARGO_TARGET_DIR:-target}/release/pgha
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
user=postgres
run_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sql() { # port sql: one value
  run_as "$bindir/psql" -h 127.0.0.1 -p "$1" -U postgres -d postgres -XAtq -c "$2" 2>/dev/null
}

bouncer_prepared=0
if any_target pgbouncer; then
  bouncer_version=$(pgbouncer --version | awk 'NR == 1 {print $2}')
  if [ "$(printf '%s\n' 1.21 "$bouncer_version" | sort -V | head -1)" = 1.21 ]; then
    bouncer_prepared=1
  fi
fi

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
  local all=() p
  for p in "${pids[@]}"; do all+=($(proc_tree "$p")); done
  [ ${#all[@]} -gt 0 ] && kill "${all[@]}" 2>/dev/null || true
  sleep 0.5
  [ ${#all[@]} -gt 0 ] && kill -9 "${all[@]}" 2>/dev/null || true
  run_as "$bindir/pg_ctl" -D "$work/standby" -m immediate stop >/dev/null 2>&1 || true
  run_as "$bindir/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  sleep 0.5
  [ "${logs:-$work}" != "$work" ] && rm -rf "$logs"
  # The servers' and proxies' logs outlive the run, for a failed one.
  mkdir -p /tmp/pgha-bench-logs
  cp "$work"/*.log /tmp/pgha-bench-logs/ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# pgbench -l logs (see above): tmpfs when there is one.
logs=$work
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  logs=$(mktemp -d /dev/shm/pgha-bench-XXXXXX)
  chmod 777 "$logs"
fi
trap 'exit 130' INT TERM

# Server connections: direct, a pool per pgha and PgBouncer instance (pgha
# with load balancing also on the standby, which must allow at least as
# many as the primary), pgpool's children, the monitors, some spare.
max_conn=$(( max_clients + 8 * pool + pool + 8 + 40 ))
pg_opts="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c max_connections=$max_conn \
-c shared_buffers=128MB -c fsync=off -c max_wal_size=4GB -c checkpoint_timeout=1h"
pg_port=$(free_port)
run_as "$bindir/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
run_as "$bindir/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o "-p $pg_port $pg_opts" start >/dev/null
run_as "$bindir/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -i -s "$scale" -q postgres >/dev/null 2>&1

standby=()
if any_target pgha && [[ "$targets" == *-lb* ]]; then
  sb_port=$(free_port)
  run_as "$bindir/pg_basebackup" -h 127.0.0.1 -p "$pg_port" -U postgres -D "$work/standby" -R -X stream -c fast --no-sync
  run_as "$bindir/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w -o "-p $sb_port $pg_opts" start >/dev/null
  for _ in $(seq 60); do
    [ "$(sql "$pg_port" "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" = 1 ] && break
    sleep 0.5
  done
  [ "$(sql "$sb_port" 'SELECT pg_is_in_recovery()')" = t ] || { echo "the standby is not in recovery" >&2; exit 1; }
  standby=(--node "standby=127.0.0.1:$sb_port")
fi

declare -A port procs http
for t in $targets; do port[$t]=$(free_port); done
[ -n "${port[direct]:-}" ] && port[direct]=$pg_port

# pgha: the daemon (monitor + proxy) in front of the primary (+ standby).
for t in $targets; do
  case $t in
    pgha-session) args=(--pool-mode session --no-load-balance) ;;
    pgha-session-lb) args=(--pool-mode session) ;;
    pgha-tx) args=(--pool-mode transaction --no-load-balance) ;;
    pgha-tx-lb) args=(--pool-mode transaction) ;;
    pgha-tx-lsn-lb) args=(--pool-mode transaction --consistency lsn) ;;
    pgha-tx-unix) args=(--pool-mode transaction --no-load-balance) ;;
    pgha-tx-2t) args=(--pool-mode transaction --no-load-balance --threads 2) ;;
    *) continue ;;
  esac
  primary=127.0.0.1; [[ $t == *-unix ]] && primary=$work
  http[$t]=$(free_port)
  "$pgha_bin" run --listen "127.0.0.1:${port[$t]}" --node "primary=$primary:$pg_port" "${standby[@]}" \
    --pool-size "$pool" --http "127.0.0.1:${http[$t]}" "${args[@]}" 2>"$work/$t.log" &
  pids+=($!); procs[$t]=$!
done

# PgBouncer, one instance per pool mode.
for t in pgbouncer-session pgbouncer-tx pgbouncer-tx-unix; do
  has_target "$t" || continue
  mode=session; [[ $t == pgbouncer-tx* ]] && mode=transaction
  host=127.0.0.1; [[ $t == *-unix ]] && host=$work
  cat >"$work/$t.ini" <<INI
[databases]
postgres = host=$host port=$pg_port dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port[$t]}
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = $mode
max_client_conn = 1000
default_pool_size = $pool
logfile = $work/$t.log
pidfile = $work/$t.pid
INI
  [ "$bouncer_prepared" = 1 ] && echo "max_prepared_statements = 200" >>"$work/$t.ini"
  echo '"postgres" ""' >"$work/userlist.txt"
  [ "$(id -u)" -eq 0 ] && chown "$user" "$work/$t.ini" "$work/userlist.txt"
  run_as pgbouncer "$work/$t.ini" >/dev/null 2>&1 &
  pids+=($!); procs[$t]=$!
done

# pgpool-II in streaming-replication mode, the primary only, no load
# balancing, no health or replication checks: a connection pooler.
if has_target pgpool; then
  mkdir -p "$work/pgpool"
  cat >"$work/pgpool/pgpool.conf" <<CONF
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = ${port[pgpool]}
unix_socket_directories = '$work/pgpool'
pcp_listen_addresses = ''
pcp_socket_dir = '$work/pgpool'
backend_hostname0 = '127.0.0.1'
backend_port0 = $pg_port
backend_weight0 = 1
backend_flag0 = 'ALWAYS_PRIMARY'
num_init_children = $(( pool > max_clients ? pool : max_clients ))
max_pool = 1
child_life_time = 0
connection_life_time = 0
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
  pids+=($!); procs[pgpool]=$!
fi

for t in $targets; do
  ok=
  for _ in $(seq 60); do
    [ "$(sql "${port[$t]}" 'SELECT 1')" = 1 ] && { ok=1; break; }
    sleep 0.5
  done
  if [ -z "$ok" ]; then
    echo "$t does not answer on port ${port[$t]}" >&2
    tail -5 "$work/$t.log" "$work/pgpool.log" 2>/dev/null >&2 || true
    exit 1
  fi
done
# Load balancing is active once pgha's monitor has seen the standby in
# recovery: a lone read then lands there.
for t in $targets; do
  [[ $t == pgha-*-lb ]] || continue
  ok=
  for _ in $(seq 40); do
    [ "$(sql "${port[$t]}" 'SELECT pg_is_in_recovery()')" = t ] && { ok=1; break; }
    sleep 0.5
  done
  [ -n "$ok" ] || echo "warning: $t sends no read to the standby; load balancing is not active" >&2
done

# Warm-up, unmeasured: every pool (pgpool: every child) opens its server
# connections before the first measured run.
if [ "$warmup" -gt 0 ]; then
  for t in $targets; do
    run_as "$bindir/pgbench" -h 127.0.0.1 -p "${port[$t]}" -U postgres -S -c "$max_clients" -j 2 \
      -T "$warmup" postgres >/dev/null 2>&1 || echo "warning: warm-up through $t failed" >&2
  done
fi

cpu_ticks() { # utime + stime of these processes (all threads), in clock ticks
  local total=0 p t
  for p in "$@"; do
    t=$(awk '{sub(/.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null) || continue
    total=$(( total + ${t:-0} ))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
# pgha transactions sent to the standby and in all.
lb_counts() {
  curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null | awk '
    /^pgha_transactions_total/ || /^transactions_total/ {
      all += $NF; if ($0 ~ /route="standby"/) sb += $NF
    }
    END { printf "%d %d\n", sb, all }'
}

workload_args() { # workload → pgbench arguments
  local kind=${1%%-*} proto=${1#*-}
  case $kind in
    select) echo "-S -M $proto" ;;
    mix) echo "-b select-only@9 -b tpcb-like@1 -M $proto" ;;
    tpcb) echo "-b tpcb-like -M $proto" ;;
  esac
}
skipped() { # target workload → why it is not run, or nothing
  if [[ $1 == pgbouncer-tx* ]] && [[ $2 == *-prepared ]] && [ "$bouncer_prepared" = 0 ]; then
    echo "PgBouncer $bouncer_version has no prepared statements in transaction mode (1.21+)"
  fi
}

# pgha's runtime stalls so far (pgha_runtime_stalls_total), or nothing.
stalls() {
  curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null | awk '/^pgha_runtime_stalls_total/ {print $NF}'
}

declare -A r_tps r_us r_p50 r_p99 r_p999 r_max r_slow r_stall r_sb
read -ra target_list <<<"$targets"
n_targets=${#target_list[@]}
declare -A noted
echo "# $rounds round(s) of ${secs} s per run; targets: $targets" >&2
printf "%-18s %-16s %-4s %-5s %9s %9s %7s %7s %8s %9s %6s %6s %8s\n" target workload c round tps cpu_us/tx p50_ms p99_ms p99.9_ms max_ms '>20ms' stalls standby >&2
for round in $(seq "$rounds"); do
  for w in $workloads; do
    for c in $clients; do
      j=$(( c < 2 ? c : 2 ))
      # Round-robin over the targets, starting one further each round.
      for k in $(seq 0 $(( n_targets - 1 ))); do
        t=${target_list[$(( (k + round - 1) % n_targets ))]}
        why=$(skipped "$t" "$w")
        if [ -n "$why" ]; then
          [ -z "${noted[$t$w]:-}" ] && echo "skipping $t for $w: $why" >&2
          noted[$t$w]=1
          continue
        fi
        proc=()
        [ -n "${procs[$t]:-}" ] && proc=($(proc_tree "${procs[$t]}"))
        lb_before=
        [[ $t == pgha-*-lb ]] && lb_before=$(lb_counts "${http[$t]}")
        stalls_before=
        [ -n "${http[$t]:-}" ] && stalls_before=$(stalls "${http[$t]}")
        before=$(cpu_ticks "${proc[@]}")
        # shellcheck disable=SC2046
        out=$(run_as "$bindir/pgbench" -h 127.0.0.1 -p "${port[$t]}" -U postgres $(workload_args "$w") \
              -c "$c" -j "$j" -T "$secs" -l --log-prefix="$logs/log-$t" postgres 2>&1) || {
          echo "$t $w -c $c failed: $(echo "$out" | grep -iE 'error|abort|fatal' | head -3 | grep . || echo "$out" | tail -3)" >&2
          rm -f "$logs"/log-"$t"*
          continue
        }
        after=$(cpu_ticks "${proc[@]}")
        tps=$(echo "$out" | awk '/^tps/ {print $3; exit}')
        tx=$(echo "$out" | awk '/number of transactions actually processed/ {print $NF}' | cut -d/ -f1)
        # Field 3: the transaction's latency in µs.
        read -r p50 p99 p999 max slow < <(cat "$logs"/log-"$t"* | awk '{print $3}' | sort -n | awk '
          function at(q,  i) { i = int(NR * q); if (i < 1) i = 1; return a[i] / 1000 }
          {a[NR] = $1; if ($1 > 20000) slow++}
          END {printf "%.2f %.2f %.2f %.2f %d\n", at(0.5), at(0.99), at(0.999), a[NR] / 1000, slow}')
        # Kept for reading bunches afterwards (client id, tx, µs, script, epoch s, µs).
        cat "$logs"/log-"$t"* | awk -v r="$round" '$3 > 20000 {print "round " r ": " $0}' >>"$work/slow-$t-$w-c$c.log"
        rm -f "$logs"/log-"$t"*
        stall=-
        if [ -n "$stalls_before" ]; then
          stall=$(( $(stalls "${http[$t]}") - stalls_before ))
          r_stall[$w|$c|$t]+="$stall "
        fi
        us=-
        if [ ${#proc[@]} -gt 0 ] && [ "${tx:-0}" -gt 0 ]; then
          us=$(awk -v d="$(( after - before ))" -v hz="$hz" -v tx="$tx" 'BEGIN {printf "%.1f", d / hz * 1e6 / tx}')
          r_us[$w|$c|$t]+="$us "
        fi
        sb=-
        if [ -n "$lb_before" ]; then
          sb=$(lb_counts "${http[$t]}" | awk -v b="$lb_before" '{split(b, o, " "); d = $2 - o[2];
            if (d > 0) printf "%.1f", 100 * ($1 - o[1]) / d; else print "-"}')
          [ "$sb" != - ] && r_sb[$w|$c|$t]+="$sb "
        fi
        r_tps[$w|$c|$t]+="$tps "
        r_p50[$w|$c|$t]+="$p50 "
        r_p99[$w|$c|$t]+="$p99 "
        r_p999[$w|$c|$t]+="$p999 "
        r_max[$w|$c|$t]+="$max "
        r_slow[$w|$c|$t]+="$slow "
        printf "%-18s %-16s %-4s %-5s %9.0f %9s %7s %7s %8s %9s %6s %6s %8s\n" "$t" "$w" "$c" "$round" "$tps" "$us" \
          "$p50" "$p99" "$p999" "$max" "$slow" "$stall" "$sb$([ "$sb" = - ] || echo %)" >&2
      done
    done
  done
done

median() { # numbers → their median, or nothing
  printf '%s\n' $1 | sort -g | awk '{a[NR] = $1} END {
    if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { # a b → a/b with 2 decimals, or -
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
marked() { # a b → ratio, with $mark appended when there is one
  local r
  r=$(ratio "$1" "$2")
  if [ "$r" = - ]; then echo -; else echo "$r$mark"; fi
}
fmt() { # format value: printf format or -
  if [ -n "$2" ]; then printf "$1" "$2"; else echo -; fi
}

echo
echo "Medians of $rounds round(s), ${secs} s per run, pgbench -j min(clients, 2), pool size $pool, scale $scale."
echo "Latencies from pgbench -l; >20 ms: transactions slower than 20 ms; stalls: pgha's runtime woke >20 ms late."
echo "TPS/pgb, CPU/pgb, p99.9/pgb, worst/pgb: against PgBouncer in the same pool mode (pgbouncer-session for"
echo "*-session targets, pgbouncer-tx for the others; * = that one did not run, compared with the other)."
for w in $workloads; do
  for c in $clients; do
    echo
    echo "### $w, $c clients (pgbench $(workload_args "$w"))"
    echo
    echo "| target | TPS | TPS/direct | TPS/pgb | CPU µs/tx | CPU/pgb | p50 ms | p99 ms | p99.9 ms | p99.9/pgb | worst ms | worst/pgb | >20 ms | stalls | standby % |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    d_tps=$(median "${r_tps[$w|$c|direct]:-}")
    for t in $targets; do
      tps=$(median "${r_tps[$w|$c|$t]:-}")
      if [ -z "$tps" ]; then
        why=$(skipped "$t" "$w")
        echo "| $t | ${why:-failed} | | | | | | | | | | | | | |"
        continue
      fi
      us=$(median "${r_us[$w|$c|$t]:-}")
      p50=$(median "${r_p50[$w|$c|$t]:-}")
      p99=$(median "${r_p99[$w|$c|$t]:-}")
      p999=$(median "${r_p999[$w|$c|$t]:-}")
      max=$(median "${r_max[$w|$c|$t]:-}")
      slow=$(median "${r_slow[$w|$c|$t]:-}")
      stall=$(median "${r_stall[$w|$c|$t]:-}")
      sb=$(median "${r_sb[$w|$c|$t]:-}")
      ref=pgbouncer-tx; other=pgbouncer-session
      [[ $t == *-session* ]] && { ref=pgbouncer-session; other=pgbouncer-tx; }
      [[ $t == *-unix ]] && [ -n "${r_tps[$w|$c|pgbouncer-tx-unix]:-}" ] && ref=pgbouncer-tx-unix
      mark=
      if [ -z "${r_tps[$w|$c|$ref]:-}" ] && [ -n "${r_tps[$w|$c|$other]:-}" ]; then ref=$other; mark='*'; fi
      b_tps=$(median "${r_tps[$w|$c|$ref]:-}")
      b_us=$(median "${r_us[$w|$c|$ref]:-}")
      b_max=$(median "${r_max[$w|$c|$ref]:-}")
      b_p999=$(median "${r_p999[$w|$c|$ref]:-}")
      printf "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" \
        "$t" "$tps" "$(ratio "$tps" "$d_tps")" "$(marked "$tps" "$b_tps")" \
        "$(fmt %.1f "$us")" "$(marked "$us" "$b_us")" "$(fmt %.2f "$p50")" "$(fmt %.2f "$p99")" \
        "$(fmt %.2f "$p999")" "$(marked "$p999" "$b_p999")" "$(fmt %.2f "$max")" \
        "$(marked "$max" "$b_max")" "$(fmt %.0f "$slow")" "$(fmt %.0f "$stall")" "$(fmt %.1f "$sb")"
    done
    for m in session tx; do
      has_target "pgha-$m" && has_target "pgha-$m-lb" || continue
      a=$(median "${r_tps[$w|$c|pgha-$m-lb]:-}"); b=$(median "${r_tps[$w|$c|pgha-$m]:-}")
      ua=$(median "${r_us[$w|$c|pgha-$m-lb]:-}"); ub=$(median "${r_us[$w|$c|pgha-$m]:-}")
      echo
      echo "Load balancing, pgha $m mode (lb / no lb): TPS $(ratio "$a" "$b"), CPU µs/tx $(ratio "$ua" "$ub")"
    done
  done
done
