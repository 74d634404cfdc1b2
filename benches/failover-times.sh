#!/usr/bin/env bash
# Failover timings on real servers, with pgha's default settings (probe
# every 500 ms, 500 ms timeout, down after 2 failures or one crash): runs `pgha demo` N times
# per fault and reports, from the fault: failure confirmed (detection),
# new primary promoted, a client write through the pgha proxy (same
# connection, sent at the fault) committed, old primary streaming again.
# Usage: benches/failover-times.sh [runs per fault, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
scripts/deps.sh
cargo build --quiet --release -p pgha
for fault in kill freeze; do
  for _ in $(seq "$runs"); do
    RUST_BACKTRACE=0 target/release/pgha demo --fault "$fault" 2>/dev/null
  done | awk -v fault="$fault" '
    /failure confirmed/ { d[n_d++] = $1 + 0 }
    /promoted \(/       { p[n_p++] = $1 + 0 }
    /committed on/      { w[n_w++] = $1 + 0 }
    /streaming from/    { r[n_r++] = $1 - back }
    /node0 back/        { back = $1 + 0 }
    function stats(a, n,   i, s, lo, hi) {
      lo = a[0]; hi = a[0]; s = 0
      for (i = 0; i < n; i++) { s += a[i]; if (a[i] < lo) lo = a[i]; if (a[i] > hi) hi = a[i] }
      return sprintf("mean %.2fs  min %.2fs  max %.2fs  (n=%d)", s / n, lo, hi, n)
    }
    END {
      printf "%-7s detected:          %s\n", fault, stats(d, n_d)
      printf "%-7s promoted:          %s\n", fault, stats(p, n_p)
      printf "%-7s write committed:   %s\n", fault, stats(w, n_w)
      printf "%-7s rejoined (from back): %s\n", fault, stats(r, n_r)
    }'
done
