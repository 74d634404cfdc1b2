#!/usr/bin/env bash
# User-space instructions per transaction: pgha and PgBouncer, each under
# valgrind's callgrind, pgbench through each. Instructions are counted, not
# timed: the same binary, workload and client count give the same count
# whatever else the machine is doing, so a change of a few percent in the
# proxy's own work shows here where CPU-time runs on a shared machine
# drown it (issue 15). System calls are not in the count (the kernel's
# work): compare system calls per transaction with `strace -c` (both
# proxies make 2 sendto + 2 recvfrom per select-only transaction).
#
# Usage: benches/instructions.sh [transactions per client, default 4000]
#   CLIENTS="1 8"                       pgbench -c (-j min(c, 2))
#   WORKLOADS="select-simple select-extended"   pgbench -S -M simple|extended
#   TARGETS="pgha-tx pgbouncer-tx"      also pgha-session, pgbouncer-session
#   PGHA=path                           a pgha binary (default: cargo build --release)
#
# Under callgrind a proxy runs ~50 times slower, so it finds more work per
# wake than at full speed: 1 client (every transaction a whole wake-up
# cycle: client socket → proxy → server → proxy → client) is the fair
# comparison of per-transaction work; more clients show the batched case.
# Counting is switched on after a warm-up (pools filled, caches built) and
# covers only the measured pgbench run; pgha's monitor probes during it are
# included (a few per run, well under 1 % at the default count).
set -euo pipefail
cd "$(dirname "$0")/.."
per_client=${1:-4000}
clients=${CLIENTS:-"1 8"}
workloads=${WORKLOADS:-"select-simple select-extended"}
targets=${TARGETS:-"pgha-tx pgbouncer-tx"}

scripts/deps.sh
command -v valgrind >/dev/null || {
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
}
[[ " $targets " == *" pgbouncer"* ]] && ! command -v pgbouncer >/dev/null && {
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
}
if [ -z "${PGHA:-}" ]; then
  cargo build --quiet --release -p pgha
fi
pgha_bin=$(realpath "${PGHA:-${CARGO_TARGET_DIR:-target}/release/pgha}")

bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
user=postgres
run_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
max_clients=$(printf '%s\n' $clients | sort -n | tail -1)

work=$(mktemp -d /tmp/pgha-instr-XXXXXX)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown "$user" "$work"
proxy=
cleanup() {
  pkill -f "callgrind-out-file=$work/" 2>/dev/null || true
  sleep 0.5
  run_as "$bindir/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_port=$(free_port)
run_as "$bindir/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
run_as "$bindir/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c fsync=off" start >/dev/null
run_as "$bindir/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -i -s 1 -q postgres >/dev/null 2>&1
echo '"postgres" ""' >"$work/userlist.txt"

# The valgrind process of target $1 listening on $2; its pid in $proxy.
start() {
  local t=$1 port=$2 out=$work/$1.callgrind
  local vg=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" --trace-children=no)
  case $t in
    pgha-*)
      local mode=transaction; [ "$t" = pgha-session ] && mode=session
      "${vg[@]}" "$pgha_bin" run --listen "127.0.0.1:$port" --node "primary=127.0.0.1:$pg_port" \
        --pool-size "$max_clients" --pool-mode "$mode" --no-load-balance 2>"$work/$t.log" &
      proxy=$!
      ;;
    pgbouncer-*)
      local mode=transaction; [ "$t" = pgbouncer-session ] && mode=session
      cat >"$work/$t.ini" <<INI
[databases]
postgres = host=127.0.0.1 port=$pg_port dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = $mode
default_pool_size = $max_clients
logfile = $work/$t.log
INI
      chown -R "$user" "$work"
      run_as "${vg[@]}" pgbouncer "$work/$t.ini" >/dev/null 2>&1 &
      proxy=$!
      ;;
  esac
  for _ in $(seq 240); do
    run_as "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -XAtqc 'SELECT 1' >/dev/null 2>&1 && return
    sleep 0.5
  done
  echo "$t did not start; its log: $work/$t.log" >&2
  exit 1
}

# Total instructions counted so far in target $1's dump files.
counted() {
  cat "$work/$1".callgrind* 2>/dev/null | awk '/^(summary|totals):/ {s += $2} END {print s + 0}'
}

declare -A ir
for t in $targets; do
  port=$(free_port)
  start "$t" "$port"
  # valgrind's own process (for PgBouncer, runuser's child).
  vg_pid=$proxy
  # vgdb reaches a valgrind of its own user only.
  ctl() { callgrind_control "$@"; }
  [[ $t == pgbouncer-* ]] && ctl() { run_as callgrind_control "$@"; }
  [[ $t == pgbouncer-* ]] && vg_pid=$(pgrep -u "$user" -f "callgrind-out-file=$work/$t.callgrind" | head -1)
  for w in $workloads; do
    for c in $clients; do
      bench=(run_as "$bindir/pgbench" -h 127.0.0.1 -p "$port" -U postgres -S -M "${w#select-}" -c "$c" -j $((c < 2 ? c : 2)) -n postgres)
      "${bench[@]}" -t 200 >/dev/null 2>&1
      before=$(counted "$t")
      ctl -i on "$vg_pid" >/dev/null
      "${bench[@]}" -t "$per_client" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
      ctl -i off "$vg_pid" >/dev/null
      dumps=$(ls "$work/$t".callgrind* 2>/dev/null | wc -l)
      ctl -d "$vg_pid" >/dev/null
      # The dump is written by the proxy's process when valgrind next
      # schedules it: wait for the file.
      for _ in $(seq 100); do
        [ "$(ls "$work/$t".callgrind* 2>/dev/null | wc -l)" -gt "$dumps" ] && break
        sleep 0.2
      done
      sleep 0.5
      tx=$(awk '/number of transactions actually processed/ {split($NF, a, "/"); print a[1]}' "$work/out")
      ir[$t,$w,$c]=$(( ($(counted "$t") - before) / tx ))
      echo "$t $w -c $c: $tx transactions, ${ir[$t,$w,$c]} instructions each" >&2
    done
  done
  pkill -f "callgrind-out-file=$work/" 2>/dev/null || true
  wait "$proxy" 2>/dev/null || true
  proxy=
done

# pgha against PgBouncer in the same pool mode, where both ran.
ratio() {
  local a=${ir[pgha-$1,$2,$3]:-} b=${ir[pgbouncer-$1,$2,$3]:-}
  if [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt 0 ]; then
    awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}'
  fi
}
modes=()
[[ " $targets " == *" pgha-tx "* && " $targets " == *" pgbouncer-tx "* ]] && modes+=(tx)
[[ " $targets " == *" pgha-session "* && " $targets " == *" pgbouncer-session "* ]] && modes+=(session)
head="| workload | clients | $(printf '%s | ' $targets)" rule="|---|---:|$(printf -- '---:|%.0s' $targets)"
for m in "${modes[@]}"; do head+="pgha/PgBouncer ($m) | "; rule+="---:|"; done
echo "$head"
echo "$rule"
for w in $workloads; do
  for c in $clients; do
    row="| $w | $c |"
    for t in $targets; do row+=" ${ir[$t,$w,$c]} |"; done
    for m in "${modes[@]}"; do row+=" $(ratio "$m" "$w" "$c") |"; done
    echo "$row"
  done
done
