#!/usr/bin/env bash
# Installs what pgha's demo and tests need on Debian, when missing:
# PostgreSQL server binaries, iproute2 (ip), nftables (nft), util-linux
# (nsenter), iputils' arping (the seed's `arping_cmd`, run by pgha-vip's
# CommandMover tests). A Rust toolchain is assumed. Safe to run again.
set -euo pipefail

missing=()
have_pg_server() {
  [ -n "${PG_BINDIR:-}" ] && [ -x "$PG_BINDIR/postgres" ] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null
}
have_pg_server || missing+=(postgresql postgresql-contrib)
command -v ip >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v arping >/dev/null || missing+=(iputils-arping)

if ! command -v cargo >/dev/null; then
  echo "deps: cargo not found; install a Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
# The tests start their own servers; Debian's package would otherwise
# create and start a "main" cluster on port 5432 that nobody asked for.
"${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | "${sudo[@]}" tee /etc/postgresql-common/createcluster.d/pgha-no-main.conf >/dev/null
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done" >&2
