//! Shared code of the reference binaries (`pgha`, `pgha-ctl`).

pub mod args;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod demo;
pub mod lifecycle;
pub mod reload;
