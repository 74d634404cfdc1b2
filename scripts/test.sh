#!/usr/bin/env bash
# Runs every test: unit, real-PostgreSQL and (as root) network-namespace
# tests. With CI=true, tests that cannot run fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo test --workspace "$@"
