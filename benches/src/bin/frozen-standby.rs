//! `frozen-standby`: what readers see through pgha when a standby hangs.
//!
//! Each run starts a primary and a standby (PostgreSQL from the test
//! harness, as root the servers run as `postgres`), a monitor and a proxy
//! with default settings (reads shared 1:1 between the primary and the
//! standby, as pgpool's default weights), and `--readers` clients each
//! sending lone `SELECT`s in a loop. After `--warmup` seconds the standby
//! is frozen (SIGSTOP of the postmaster and its children: TCP still
//! accepted, nothing answered) for `--seconds`. Reported per run, and the
//! median over the runs: the longest read, the reads that failed (an error
//! to the client, counted per read; the client reconnects), and the reads
//! served while frozen.
//!
//! ```text
//! cargo run -p pgha-benches --bin frozen-standby -- --runs 3
//! ```
#![allow(clippy::print_stdout)] // a command-line tool talks on stdout

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use pgha_core::testing::PgCluster;
use pgha_core::{ClusterMonitor, MonitorConfig};
use pgha_proxy::{Proxy, ProxyConfig};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_postgres::NoTls;

#[derive(Parser, Debug)]
#[command(
    name = "frozen-standby",
    about = "Reads through pgha while a standby is frozen"
)]
struct Args {
    /// Clients reading at once.
    #[arg(long, default_value_t = 8)]
    readers: usize,
    /// Runs (each with its own cluster).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of reads before the freeze.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Seconds of reads while the standby is frozen.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// What the readers saw from the freeze on.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    longest: Duration,
    errors: u64,
    reads: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    for run in 1..=args.runs {
        let seen = one_run(&args).await?;
        println!(
            "run {run}: longest read {:.0} ms, {} client errors, {} reads served while frozen",
            seen.longest.as_secs_f64() * 1e3,
            seen.errors,
            seen.reads
        );
        runs.push(seen);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    println!(
        "median of {} runs, {} readers: longest read {:.0} ms, {} client errors",
        runs.len(),
        args.readers,
        median(runs.iter().map(|s| s.longest.as_secs_f64() * 1e3).collect()),
        median(runs.iter().map(|s| s.errors as f64).collect()),
    );
    Ok(())
}

async fn one_run(args: &Args) -> anyhow::Result<Seen> {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let (monitor, handle) = ClusterMonitor::builder(cluster.topology())
        .config(MonitorConfig::default())
        .build()?;
    let (_stop_monitor, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    handle
        .wait_for(Duration::from_secs(30), |t| {
            t.nodes().iter().all(|n| n.in_recovery.is_some())
        })
        .await?;
    let hints = handle.clone();
    let proxy = Proxy::with_hint(ProxyConfig::default(), handle.topology(), move |n, s| {
        hints.hint(n, s)
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (_stop_proxy, proxy_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        proxy
            .serve(listener, async {
                let _ = proxy_stopped.await;
            })
            .await
    });

    let frozen = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = JoinSet::new();
    for _ in 0..args.readers {
        readers.spawn(reader(port, frozen.clone(), done.clone()));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    cluster.standbys()[0]
        .freeze()
        .context("freezing the standby")?;
    frozen.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    done.store(true, Ordering::SeqCst);
    let mut seen = Seen::default();
    while let Some(reader) = readers.join_next().await {
        let s = reader?;
        seen.longest = seen.longest.max(s.longest);
        seen.errors += s.errors;
        seen.reads += s.reads;
    }
    // Killed with the cluster (SIGKILL reaches a stopped process).
    Ok(seen)
}

/// One client reading until `done`; counts only what started after the
/// freeze, and the reads in flight when it came (their time counts from
/// their start).
async fn reader(port: u16, frozen: Arc<AtomicBool>, done: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let mut client = None;
    while !done.load(Ordering::SeqCst) {
        let started = Instant::now();
        let c = match client.take() {
            Some(c) => c,
            None => match tokio_postgres::connect(&conninfo, NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    c
                }
                Err(_) => {
                    if frozen.load(Ordering::SeqCst) {
                        seen.errors += 1;
                    }
                    continue;
                }
            },
        };
        let result = c.simple_query("SELECT 1").await;
        let took = started.elapsed();
        // A read in flight at the freeze counts too.
        if frozen.load(Ordering::SeqCst) {
            seen.longest = seen.longest.max(took);
            match result {
                Ok(_) => seen.reads += 1,
                Err(_) => seen.errors += 1,
            }
        }
        if !c.is_closed() {
            client = Some(c);
        }
    }
    seen
}
