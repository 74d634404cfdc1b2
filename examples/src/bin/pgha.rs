//! `pgha`: the reference daemon.
//!
//! `pgha run` watches the nodes, fails over and serves clients on one
//! address; its settings come from `--config pgha.toml` and flags.
//! `pgha check-config` checks such a file and prints the effective
//! settings. `pgha demo` starts a local cluster of real PostgreSQL servers
//! (a primary and a streaming standby) watched by pgha's cluster monitor;
//! the primary is killed (or frozen), the standby promoted, and the old
//! primary rewound and re-attached — each step timed.
#![allow(clippy::print_stdout)] // a command-line tool talks on stdout

use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pgha::args::RunArgs;
use pgha::config::RunConfig;
use pgha::demo::{self, Fault};

#[derive(Parser)]
#[command(name = "pgha", version, about = "PostgreSQL high availability")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const CONFIG_HELP: &str = "\
Settings come from the libraries' defaults, then the configuration file
(--config), then the flags: a flag given wins over the file.

The file is TOML with sections [proxy] (listen, http, unix_socket_dir,
pool_mode, pool_size, min_pool_size, pool_timeout, max_client_conn,
load_balance, max_standby_lag, max_standby_lag_time, shutdown_timeout, …), [tls] (cert_file, key_file, required),
[server] (user, password or password_env), [server_tls] (mode, ca_file),
[auth] (hba_file, auth_file, auth_query), [monitor]
(probe_interval, probe_timeout, failures_before_down, maximum_lag,
auto_rejoin, state_file, user, …) and one [[node]] per backend (name, host,
port, weight, priority). Durations take a unit (\"1s\", \"500ms\"), sizes
are bytes or \"16MB\". Unknown keys are errors. See examples/pgha.toml.

Signals: SIGTERM or SIGINT stops gracefully (no new clients; idle
sessions end with 57P01; running transactions get shutdown_timeout, then
exit 0; a second signal stops at once, exit 1). SIGHUP reads the file
again: what can change live does, what needs a restart is named in the
log. See docs/operations.md.";

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: monitor the nodes, fail over, and serve clients on
    /// one address that always reaches the primary.
    #[command(after_help = CONFIG_HELP)]
    Run(RunArgs),
    /// Check a configuration file (with any flags laid over it) and print
    /// the effective settings; exit status 2 and `file:line:column: what is
    /// wrong` when it is not valid.
    #[command(after_help = CONFIG_HELP)]
    CheckConfig(RunArgs),
    /// Run a witness: a watchdog member that votes and probes the
    /// PostgreSQL nodes but never leads (no proxy, no VIP) — the third
    /// member of the two-host deployment, on any other machine. Reads the
    /// same file as `run`; its [watchdog] id must be marked `witness = true`.
    #[command(after_help = CONFIG_HELP)]
    Witness(RunArgs),
    /// Write a commented pgha.toml from a pgpool-II configuration
    /// (pgpool.conf, and optionally pool_hba.conf and pool_passwd); exit
    /// status 2 and `file:line: what is wrong` when an input is malformed.
    ImportPgpool(pgha::import::ImportArgs),
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One thread by default, like PgBouncer: next to PostgreSQL on few
    // cores, tokio's multi-thread runtime cost ~10 % more proxy CPU per
    // transaction in benches/pgbench-compare.sh (27.6–32 vs 22.5–31 µs/tx
    // on 2 cores). `[proxy] threads` spreads the proxy over more cores.
    let threads = match &cli.command {
        Command::Run(args) => settings(args).threads,
        _ => 1,
    };
    let runtime = if threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .context("starting the runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // The daemon logs its phases (stopping, reloading) and refused clients
    // at WARN; the demo tells its own story on stdout.
    let default = match cli.command {
        Command::Run(_) => "warn",
        _ => "error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: not in a journal or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let (standbys, fault, no_failover, keep_running) = match cli.command {
        Command::Run(args) => {
            let config = settings(&args);
            let signals =
                pgha::lifecycle::Signals::install().context("installing signal handlers")?;
            let daemon = pgha::daemon::start(&config).await?;
            tracing::warn!(addr = %daemon.addr, "pgha serving");
            eprintln!("pgha: serving clients on {}", daemon.addr);
            pgha::notify::ready();
            let reloader = pgha::reload::Reloader::new(args, config, &daemon.proxy);
            let status = pgha::lifecycle::run(daemon, signals, reloader).await;
            std::process::exit(status);
        }
        Command::Witness(args) => {
            let config = settings(&args);
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("installing the SIGTERM handler")?;
            pgha::notify::ready();
            pgha::witness::run_witness(&config, async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                pgha::notify::stopping();
            })
            .await?;
            return Ok(());
        }
        Command::CheckConfig(args) => {
            if args.config.is_none() {
                eprintln!("pgha check-config: give the file to check with --config FILE");
                std::process::exit(2);
            }
            let config = settings(&args);
            print!("{}", config.render());
            for remark in config.remarks() {
                eprintln!("note: {remark}");
            }
            return Ok(());
        }
        Command::ImportPgpool(args) => {
            import_pgpool(&args);
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
        println!("\nfailover ({fault:?}; probes every 0.5 s, 0.5 s timeout, down after 2 failures or one crash):");
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

/// The settings `args` describe; a mistake ends the process with status 2
/// and one `file:line:column: what is wrong` line per mistake.
fn settings(args: &RunArgs) -> RunConfig {
    match args.resolve() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}

/// `pgha import-pgpool`: the TOML on stdout (or the files written), the
/// warnings on stderr; status 2 when an input cannot be read or is
/// malformed.
fn import_pgpool(args: &pgha::import::ImportArgs) {
    match args.run() {
        Ok(outcome) => {
            if let Some(toml) = &outcome.stdout {
                print!("{toml}");
            }
            for path in &outcome.written {
                eprintln!("pgha import-pgpool: wrote {}", path.display());
            }
            for warning in &outcome.warnings {
                eprintln!("warning: {warning}");
            }
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
}
