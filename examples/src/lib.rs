//! Shared code of the reference binaries (`pgha`, `pgha-ctl`).

pub mod demo;
