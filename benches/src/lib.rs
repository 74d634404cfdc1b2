//! pgha's benchmarks: criterion micro-benchmarks live in `benches/`, the
//! end-to-end pgbench scripts in `scripts/`. This library is empty on
//! purpose; it exists so cargo builds the benches as a workspace member.
