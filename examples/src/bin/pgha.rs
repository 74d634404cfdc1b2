//! `pgha`: the reference daemon.
//!
//! Today it has one subcommand, `demo`: a local cluster of real PostgreSQL
//! servers (a primary and a streaming standby) watched by pgha's cluster
//! monitor; the primary is killed (or frozen), the standby promoted, and
//! the old primary rewound and re-attached — each step timed.
#![allow(clippy::print_stdout)] // a command-line tool talks on stdout

use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pgha::demo::{self, Fault};

#[derive(Parser)]
#[command(name = "pgha", version, about = "PostgreSQL high availability")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: monitor the nodes, fail over, and serve clients on
    /// one address that always reaches the primary.
    Run {
        /// Address clients connect to.
        #[arg(long, default_value = "127.0.0.1:6432")]
        listen: std::net::SocketAddr,
        /// A backend as NAME=HOST:PORT; repeat. The first is the primary
        /// until the state file or the probes say otherwise. A HOST
        /// starting with / is the directory of the server's Unix socket.
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
        /// Where the term and primary are kept across restarts.
        #[arg(long)]
        state_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        proxy: Box<pgha::daemon::ProxyArgs>,
    },
    /// Start a local demo cluster, fail its primary over, rejoin it.
    Demo {
        /// How many standbys to start.
        #[arg(long, default_value_t = 1)]
        standbys: usize,
        /// The fault injected into the primary.
        #[arg(long, value_enum, default_value_t = Fault::Kill)]
        fault: Fault,
        /// Only start the cluster and show it; no fault.
        #[arg(long)]
        no_failover: bool,
        /// Keep the cluster running until Ctrl-C instead of stopping it.
        #[arg(long)]
        keep_running: bool,
    },
}

// One thread, like PgBouncer: next to PostgreSQL on few cores, tokio's
// multi-thread runtime cost ~10 % more proxy CPU per transaction in
// benches/pgbench-compare.sh (27.6–32 vs 22.5–31 µs/tx on 2 cores).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let (standbys, fault, no_failover, keep_running) = match Cli::parse().command {
        Command::Run {
            listen,
            nodes,
            state_file,
            proxy,
        } => {
            let nodes = nodes
                .iter()
                .map(|n| pgha::daemon::parse_node(n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let (_handle, addr) =
                pgha::daemon::start(listen, pgha::daemon::topology(&nodes), state_file, &proxy)
                    .await?;
            tracing::warn!(%addr, "pgha serving");
            eprintln!("pgha: serving clients on {addr}");
            tokio::signal::ctrl_c().await?;
            return Ok(());
        }
        Command::Demo {
            standbys,
            fault,
            no_failover,
            keep_running,
        } => (standbys, fault, no_failover, keep_running),
    };
    let started = Instant::now();
    println!("pgha demo: starting a local cluster (1 primary, {standbys} standby)…");
    let cluster = demo::start_cluster(standbys)
        .await
        .context("starting the demo cluster")?;
    let monitor = demo::start_monitor(&cluster).await?;
    let topology = demo::wait_healthy(&monitor.handle).await?;
    println!(
        "cluster up and monitored in {:.1?}; pgha serves clients on {}\n",
        started.elapsed(),
        monitor.proxy
    );
    print!("{}", demo::topology_table(&topology)?);
    if !no_failover {
        println!("\nfailover ({fault:?}; probes every 1 s, 1 s timeout, down after 2 failures):");
        demo::failover(&cluster, &monitor, fault, |line| println!("{line}")).await?;
        println!();
        print!("{}", demo::topology_table(&monitor.handle.current())?);
    }
    if keep_running {
        let primary = monitor
            .handle
            .current()
            .primary()
            .map(|p| format!("host={} port={} user=postgres", p.host, p.port));
        println!("\nprimary: psql \"{}\"", primary.unwrap_or_default());
        println!("Ctrl-C stops the cluster.");
        tokio::signal::ctrl_c().await?;
    }
    drop(monitor);
    println!("\nstopping the cluster (every server and data directory is removed)");
    Ok(())
}
