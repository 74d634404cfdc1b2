//! `pgha-ctl`: operate a running pgha (status, promote, switchover,
//! attach, detach, pause, resume, reload) through its admin console. See
//! `pgha-ctl --help` and docs/operations.md.

use std::process::ExitCode;

use clap::Parser;
use pgha::ctl::{self, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // clap exits with 2 on a usage mistake, as documented.
    let cli = Cli::parse();
    ctl::run(cli).await.into()
}
