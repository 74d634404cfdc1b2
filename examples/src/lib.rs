//! Shared code of the reference binaries (`pgha`, `pgha-ctl`).

pub mod daemon;
pub mod demo;
