//! Shared code of the reference binaries (`pgha`, `pgha-ctl`).

pub mod args;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod demo;
pub mod import;
pub mod lifecycle;
pub mod notify;
pub mod reload;
pub mod witness;
