#!/usr/bin/env bash
# A real driver's own test suite through pgha, with direct PostgreSQL as the
# control (issue #11): does a driver notice the proxy?
#
# Usage: scripts/driver-suite.sh
#   e.g. TARGETS="direct pgha-tx" SUITES=asyncpg scripts/driver-suite.sh
#
# Suites (env SUITES, space-separated; default "asyncpg"):
#   asyncpg         asyncpg's own unittest suite (tests/ of its sdist on PyPI,
#                   version ASYNCPG_VERSION, default 0.32.0) with the binary
#                   wheel of the same version, run by pytest against an
#                   existing server (PGHOST/PGPORT: asyncpg's "unmanaged
#                   cluster" mode; tests that need to start or reconfigure
#                   their own cluster skip themselves, a few error out as root
#                   — the same on every target). asyncpg prepares every
#                   statement by name (__asyncpg_stmt_N__) through the
#                   extended protocol and keeps a statement cache per
#                   connection, closes statements with Close, resets sessions
#                   with its own reset query, uses COPY, LISTEN/NOTIFY,
#                   cancellation and pools.
#   tokio-postgres  tokio-postgres's integration tests (tests/test/ of the
#                   crate on crates.io, version TOKIO_POSTGRES_VERSION,
#                   default 0.7.18), built with cargo in the work directory.
#                   They connect to 127.0.0.1:5433 and to
#                   /tmp/.s.PGSQL.5433 hard-coded, as users postgres,
#                   pass_user, md5_user and scram_user (password
#                   "password"): each target in turn listens there, so port
#                   5433 must be free. The server asks those users for their
#                   passwords (password, md5, scram-sha-256), and so does
#                   pgha, through an hba file and an auth file written for
#                   the run, with the shared password as its server
#                   password.
# Targets (env TARGETS, default "direct pgha-session pgha-tx"):
#   direct          PostgreSQL 15 itself
#   pgha-session    pgha run --pool-mode session --no-load-balance
#   pgha-tx         pgha run --pool-mode transaction --no-load-balance
# The targets run one after the other against the same server.
#
# Prints a progress line per suite and target (stderr), then (stdout) a
# markdown table (suite, target, passed, failed, skipped) and, per pgha
# target, the tests that fail through it but pass direct (and any that pass
# through it but fail direct). Each run's output stays in
# /tmp/pgha-driver-suite-logs/ (SUITE-TARGET.txt; pgha and server logs).
#
# Other env knobs:
#   PGHA=path           a pgha binary to use instead of building one
#   CARGO_TARGET_DIR    where cargo builds (default target/)
#   POOL_SIZE=40        pgha --pool-size
#   TEST_TIMEOUT=120    seconds one test may take (pytest-timeout) before it
#                       counts as failed
#   SUITE_TIMEOUT=1200  seconds one suite may take on one target
#
# Runs as root (PostgreSQL then runs as `postgres`) or as a user who can run
# PostgreSQL; installs PostgreSQL from Debian's packages when missing; the
# drivers come from PyPI / crates.io at run time (nothing is kept in this
# repository). Loopback only; everything it starts is stopped and its
# temporary directory removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
suites=${SUITES:-asyncpg}
targets=${TARGETS:-"direct pgha-session pgha-tx"}
asyncpg_version=${ASYNCPG_VERSION:-0.32.0}
tokio_postgres_version=${TOKIO_POSTGRES_VERSION:-0.7.18}
pool=${POOL_SIZE:-40}
test_timeout=${TEST_TIMEOUT:-120}
suite_timeout=${SUITE_TIMEOUT:-1200}
logs=/tmp/pgha-driver-suite-logs

for s in $suites; do
  case $s in asyncpg | tokio-postgres) ;; *) echo "unknown suite $s" >&2; exit 2 ;; esac
done
for t in $targets; do
  case $t in direct | pgha-session | pgha-tx) ;; *) echo "unknown target $t" >&2; exit 2 ;; esac
done

scripts/deps.sh
command -v python3 >/dev/null || { echo "driver-suite: python3 is needed" >&2; exit 1; }
if [ -n "${PGHA:-}" ]; then
  pgha_bin=$PGHA
elif [[ " $targets " == *" pgha-"* ]]; then
  cargo build --quiet --release -p pgha
  pgha_bin=${CARGO_TARGET_DIR:-target}/release/pgha
fi
case ${pgha_bin:-} in "" | /*) ;; *) pgha_bin=$repo/$pgha_bin ;; esac

bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
user=postgres
run_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
psql_at() { # host port sql → its output
  run_as env PGOPTIONS="-c client_min_messages=warning" "$bindir/psql" -h "$1" -p "$2" -U postgres -d postgres -XAtq -c "$3"
}

work=$(mktemp -d /tmp/pgha-driver-suite-XXXXXX)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown "$user" "$work"
pgha_pid=
stop_pgha() {
  if [ -n "$pgha_pid" ]; then
    kill "$pgha_pid" 2>/dev/null || true
    wait "$pgha_pid" 2>/dev/null || true
    pgha_pid=
  fi
}
cleanup() {
  stop_pgha
  run_as "$bindir/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  mkdir -p "$logs"
  cp "$work"/*.log "$work"/*.txt "$logs"/ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The server. tokio-postgres's tests need it (or pgha) on 5433; the others
# take free ports.
pg_port=$(free_port)
pg_opts="-c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c max_connections=300 -c fsync=off"
pg_opts+=" -c max_prepared_transactions=10 -c password_encryption=scram-sha-256"
run_as "$bindir/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
if [[ " $suites " == *" tokio-postgres "* ]]; then
  # tokio-postgres's tests log in as these users, by password (its docker
  # set-up's pg_hba.conf and sql_setup.sh), and use hstore, citext, ltree.
  cat >"$work/pg/pg_hba.conf" <<HBA
host all pass_user 127.0.0.1/32 password
host all md5_user 127.0.0.1/32 md5
host all scram_user 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
local all all trust
HBA
fi
run_as "$bindir/pg_ctl" -D "$work/pg" -l "$work/postgres.log" -w -o "-p $pg_port $pg_opts" start >/dev/null
if [[ " $suites " == *" tokio-postgres "* ]]; then
  psql_at 127.0.0.1 "$pg_port" "
    SET password_encryption = 'md5'; CREATE ROLE md5_user PASSWORD 'password' LOGIN;
    SET password_encryption = 'scram-sha-256'; CREATE ROLE pass_user PASSWORD 'password' LOGIN;
    CREATE ROLE scram_user PASSWORD 'password' LOGIN;" >/dev/null
fi

# A Unix socket nobody listens on any more (pgha leaves its socket file
# behind when stopped; PostgreSQL will not start over one).
remove_stale_socket() { # path
  [ -S "$1" ] || return 0
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)' "$1" && rm -f "$1"
  return 0
}

# pgha in front of it on HOST:PORT; waits until a write passes through it.
start_pgha() { # target port [extra args]
  local t=$1 port=$2 mode
  shift 2
  mode=session; [ "$t" = pgha-tx ] && mode=transaction
  "$pgha_bin" run --listen "127.0.0.1:$port" --node "primary=127.0.0.1:$pg_port" \
    --pool-mode "$mode" --no-load-balance --pool-size "$pool" "$@" 2>"$work/pgha-$t.log" &
  pgha_pid=$!
  for _ in $(seq 100); do
    psql_at 127.0.0.1 "$port" "CREATE TEMP TABLE pgha_ready ()" >/dev/null 2>&1 && return 0
    kill -0 "$pgha_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "pgha ($t) did not come up; its log:" >&2
  tail -20 "$work/pgha-$t.log" >&2
  exit 1
}

# --- asyncpg ---------------------------------------------------------------
asyncpg_setup() {
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q "asyncpg==$asyncpg_version" pytest pytest-timeout distro
  "$work/venv/bin/pip" download -q --no-deps --no-binary :all: "asyncpg==$asyncpg_version" -d "$work/sdist"
  mkdir -p "$work/asyncpg"
  # Only its tests: run outside the source tree, they import the wheel.
  tar xzf "$work/sdist/asyncpg-$asyncpg_version.tar.gz" -C "$work/asyncpg" --strip-components=1 \
    "asyncpg-$asyncpg_version/tests"
}
asyncpg_run() { # target host port → junit xml in $work/asyncpg-TARGET.xml
  (cd "$work/asyncpg" && env PGHOST="$2" PGPORT="$3" PGUSER=postgres PGDATABASE=postgres \
    timeout "$suite_timeout" "$work/venv/bin/python" -m pytest -q -p no:cacheprovider -rfE \
    --timeout "$test_timeout" --junitxml "$work/asyncpg-$1.xml" tests) >"$work/asyncpg-$1.txt" 2>&1 || true
}

# --- tokio-postgres --------------------------------------------------------
tokio_postgres_setup() {
  mkdir -p "$work/tp"
  # The crate's published source (with its tests) through cargo itself: a
  # throwaway package that depends on it, fetched, then copied.
  cat >"$work/tp/Cargo.toml" <<TOML
[package]
name = "fetch-tokio-postgres"
version = "0.0.0"
edition = "2021"
[dependencies]
tokio-postgres = "=$tokio_postgres_version"
TOML
  mkdir -p "$work/tp/src" && : >"$work/tp/src/lib.rs"
  local src
  src=$(cd "$work/tp" && cargo metadata --format-version 1 2>/dev/null |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="tokio-postgres"))')
  cp -r "$(dirname "$src")" "$work/tokio-postgres"
  chmod -R u+w "$work/tokio-postgres"
  # Its benches need criterion: not built here.
  python3 - "$work/tokio-postgres/Cargo.toml" <<'PY'
import re, sys
p = sys.argv[1]
t = open(p).read()
t = re.sub(r'\n\[\[bench\]\][^\[]*', '\n', t)
t = re.sub(r'\n\[dev-dependencies\.criterion\][^\[]*', '\n', t)
t = t.replace('autobenches = false', 'autobenches = false')
open(p, 'w').write(t + '\n[workspace]\n')
PY
  (cd "$work/tokio-postgres" && CARGO_TARGET_DIR="$work/tp-target" cargo test --quiet --no-run --test test \
    --all-features >"$work/tokio-postgres-build.txt" 2>&1) || {
    echo "tokio-postgres's tests did not build:" >&2
    tail -20 "$work/tokio-postgres-build.txt" >&2
    exit 1
  }
}
tokio_postgres_run() { # target → libtest output in $work/tokio-postgres-TARGET.txt
  # Before each run: asyncpg's tests drop hstore when they are done.
  psql_at 127.0.0.1 "$pg_port_now" "CREATE EXTENSION IF NOT EXISTS hstore;
    CREATE EXTENSION IF NOT EXISTS citext; CREATE EXTENSION IF NOT EXISTS ltree;" >/dev/null
  (cd "$work/tokio-postgres" && CARGO_TARGET_DIR="$work/tp-target" timeout "$suite_timeout" \
    cargo test --test test --all-features -- --test-threads 4 >"$work/tokio-postgres-$1.txt" 2>&1) || true
  # And gone again: asyncpg's tests create citext themselves and fail if it
  # is there.
  psql_at 127.0.0.1 "$pg_port_now" "DROP EXTENSION IF EXISTS hstore, citext, ltree CASCADE" >/dev/null
}

for s in $suites; do
  echo "setting up $s" >&2
  case $s in
    asyncpg) asyncpg_setup ;;
    tokio-postgres) tokio_postgres_setup ;;
  esac
done

for t in $targets; do
  for s in $suites; do
    port=$(free_port)
    [ "$s" = tokio-postgres ] && port=5433
    if [ "$t" = direct ]; then
      if [ "$s" = tokio-postgres ]; then
        # Its tests want the server itself on 5433 (TCP and /tmp socket).
        run_as "$bindir/pg_ctl" -D "$work/pg" -m fast stop >/dev/null
        remove_stale_socket /tmp/.s.PGSQL.5433
        run_as "$bindir/pg_ctl" -D "$work/pg" -l "$work/postgres.log" -w \
          -o "-p 5433 ${pg_opts/unix_socket_directories=$work/unix_socket_directories=/tmp}" start >/dev/null
      else
        port=$pg_port
      fi
    else
      extra=()
      if [ "$s" = tokio-postgres ]; then
        # pgha asks those users for their passwords as the server would, and
        # logs in to the server with the one they share.
        cat >"$work/pgha-hba.conf" <<HBA
host all pass_user 127.0.0.1/32 password
host all md5_user 127.0.0.1/32 md5
host all scram_user 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
local all all trust
HBA
        printf '"%s" "password"\n' pass_user md5_user scram_user >"$work/pgha-users.txt"
        cat >"$work/pgha.toml" <<TOML
[server]
password = "password"
[auth]
hba_file = "pgha-hba.conf"
auth_file = "pgha-users.txt"
TOML
        extra=(--unix-socket-dir /tmp --config "$work/pgha.toml")
      fi
      start_pgha "$t" "$port" "${extra[@]}"
    fi
    # Where the server itself listens now.
    pg_port_now=$pg_port
    [ "$t" = direct ] && [ "$s" = tokio-postgres ] && pg_port_now=5433
    echo "running $s against $t (127.0.0.1:$port)" >&2
    start=$(date +%s)
    "${s//-/_}_run" "$t" 127.0.0.1 "$port"
    echo "  $s on $t took $(( $(date +%s) - start )) s" >&2
    stop_pgha
    [ "$s" = tokio-postgres ] && remove_stale_socket /tmp/.s.PGSQL.5433
    if [ "$t" = direct ] && [ "$s" = tokio-postgres ]; then
      run_as "$bindir/pg_ctl" -D "$work/pg" -m fast stop >/dev/null
      run_as "$bindir/pg_ctl" -D "$work/pg" -l "$work/postgres.log" -w -o "-p $pg_port $pg_opts" start >/dev/null
    fi
  done
done

# The table and the differences, from the junit files / libtest json.
python3 - "$work" "$suites" "$targets" <<'PY'
import os, re, sys
import xml.etree.ElementTree as ET
work, suites, targets = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()

def junit(path):
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f'{case.get("classname")}::{case.get("name")}'
        kinds = {c.tag for c in case}
        if kinds & {"failure", "error"}:
            out[name] = "failed"
        elif "skipped" in kinds:
            out[name] = "skipped"
        else:
            out[name] = "passed"
    return out

def libtest(path):
    out = {}
    for line in open(path):
        m = re.match(r"^test (\S+) \.\.\. (ok|FAILED|ignored)", line)
        if m:
            out[m[1]] = {"ok": "passed", "ignored": "skipped"}.get(m[2], "failed")
    if not out:
        raise OSError("no test ran")
    return out

results = {}
for s in suites:
    for t in targets:
        path = os.path.join(work, f"{s}-{t}.xml" if s == "asyncpg" else f"{s}-{t}.txt")
        try:
            results[s, t] = junit(path) if s == "asyncpg" else libtest(path)
        except (OSError, ET.ParseError):
            results[s, t] = None

print("| suite | target | passed | failed | skipped | fail here, pass direct |")
print("|---|---|---:|---:|---:|---:|")
for s in suites:
    direct = results.get((s, "direct"))
    for t in targets:
        r = results[s, t]
        if r is None:
            print(f"| {s} | {t} | no result (see {s}-{t}.txt) | | | |")
            continue
        n = lambda k: sum(1 for v in r.values() if v == k)
        diff = "-"
        if t != "direct" and direct is not None:
            diff = str(sum(1 for k, v in r.items() if v == "failed" and direct.get(k) == "passed"))
        print(f"| {s} | {t} | {n('passed')} | {n('failed')} | {n('skipped')} | {diff} |")
for s in suites:
    direct = results.get((s, "direct"))
    if direct is None:
        continue
    for t in targets:
        r = results[s, t]
        if t == "direct" or r is None:
            continue
        worse = sorted(k for k, v in r.items() if v == "failed" and direct.get(k) == "passed")
        better = sorted(k for k, v in r.items() if v == "passed" and direct.get(k) == "failed")
        missing = sorted(k for k in direct if k not in r)
        print(f"\n{s} through {t}: {len(worse)} fail that pass direct")
        for k in worse:
            print(f"  - {k}")
        if better:
            print(f"  pass here but fail direct: {', '.join(better)}")
        if missing:
            print(f"  did not run here ({len(missing)}): {', '.join(missing[:20])}")
PY
