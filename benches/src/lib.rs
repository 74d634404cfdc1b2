//! pgha's benchmarks: criterion micro-benchmarks live in `benches/`, the
//! end-to-end scripts (`pgbench-compare.sh`, `failover-times.sh`,
//! `idle-clients.sh`) next to this crate's `Cargo.toml`, and the
//! `idle-clients` tool in `src/bin`. See `benches/README.md`. This library
//! is empty on purpose; it exists so cargo builds the benches as a
//! workspace member.
