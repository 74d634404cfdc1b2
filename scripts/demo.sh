#!/usr/bin/env bash
# The main job: a local cluster of real PostgreSQL servers with pgha.
# Extra arguments go to `pgha demo` (e.g. --standbys 2, --keep-running).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec cargo run --quiet -p pgha -- demo "$@"
