//! Shared code of the reference binaries (`pgha`, `pgha-ctl`).

pub mod args;
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod import;
pub mod notify;
