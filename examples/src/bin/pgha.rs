//! `pgha`: the reference daemon.
//!
//! Today it has one subcommand, `demo`, which starts a local cluster of
//! real PostgreSQL servers (a primary and a streaming standby) and prints
//! its topology. Later issues grow it into the full failover demo and the
//! daemon proper.
#![allow(clippy::print_stdout)] // a command-line tool talks on stdout

use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pgha::demo;

#[derive(Parser)]
#[command(name = "pgha", version, about = "PostgreSQL high availability")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local demo cluster (primary + standbys) and show it.
    Demo {
        /// How many standbys to start.
        #[arg(long, default_value_t = 1)]
        standbys: usize,
        /// Keep the cluster running until Ctrl-C instead of stopping it.
        #[arg(long)]
        keep_running: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Demo {
            standbys,
            keep_running,
        } => {
            let started = Instant::now();
            println!("pgha demo: starting a local cluster (1 primary, {standbys} standby)…");
            let cluster = demo::start_cluster(standbys)
                .await
                .context("starting the demo cluster")?;
            println!("cluster up in {:.1?}\n", started.elapsed());
            print!("{}", demo::topology_table(&cluster).await?);
            if keep_running {
                println!("\nconnect with: psql \"{}\"", cluster.primary().conninfo());
                println!("Ctrl-C stops the cluster.");
                tokio::signal::ctrl_c().await?;
            }
            println!("\nstopping the cluster (every server and data directory is removed)");
        }
    }
    Ok(())
}
