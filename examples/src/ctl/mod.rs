//! `pgha-ctl`: operate a running `pgha` from a shell or a script.
//!
//! It talks to the admin console (database `pgha`) over the PostgreSQL
//! protocol, with simple queries — not to the HTTP port. The console
//! already has what an operator's command needs: the `admin_users` check
//! after the hba rules and the auth file (SCRAM, md5), the Unix socket for
//! local use, and the same answers a `psql` user sees. The HTTP port has
//! no authentication (it serves metrics to scrapers), so it takes no
//! commands.
//!
//! Every command answers on stdout: text for people, or with `--json` one
//! JSON object whose field names are stable (see [`report`]). The exit
//! status says what happened ([`Exit`]).

pub mod console;
pub mod report;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use console::{Console, CtlError};

/// What the exit status means, for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Ok = 0,
    /// 1: pgha answered and refused the command, or it failed there.
    Refused = 1,
    /// 2: a usage or configuration mistake (bad arguments, a login the
    /// console refuses).
    Usage = 2,
    /// 3: pgha could not be reached.
    Unreachable = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

const AFTER_HELP: &str = "\
Exit status: 0 done; 1 pgha refused the command or it failed (the reason
is printed, with its SQLSTATE); 2 usage or configuration mistake (bad
arguments, login refused by the console); 3 pgha could not be reached.

The password, when the console asks for one, comes from PGPASSWORD.
--json prints one JSON object per command; its fields are documented in
docs/operations.md (\"pgha-ctl\").";

/// `pgha-ctl`'s command line.
#[derive(Debug, Parser)]
#[command(
    name = "pgha-ctl",
    version,
    about = "Operate a running pgha through its admin console (database pgha)",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// pgha's host, or the directory of its Unix socket (unix_socket_dir).
    #[arg(
        long,
        short = 'H',
        env = "PGHA_HOST",
        default_value = "127.0.0.1",
        global = true
    )]
    pub host: String,
    /// pgha's client port ([proxy] listen).
    #[arg(long, short, env = "PGHA_PORT", default_value_t = 6432, global = true)]
    pub port: u16,
    /// A user of [proxy] admin_users.
    #[arg(
        long,
        short = 'U',
        env = "PGHA_USER",
        default_value = "postgres",
        global = true
    )]
    pub user: String,
    /// Give up connecting after this many seconds.
    #[arg(long, default_value_t = 5, global = true)]
    pub connect_timeout: u64,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// A `pgha-ctl` command.
#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// The cluster: each node's role, status and lag, the term, held
    /// writes, paused, leader, lease, VIP holder.
    Status,
    /// Make the up standby NODE the primary now (the old primary is fenced).
    Promote {
        /// The standby to promote.
        node: String,
    },
    /// Planned hand-over: pause, promote, re-point, resume.
    Switchover {
        /// The standby to hand over to (default: the best one).
        #[arg(long)]
        to: Option<String>,
    },
    /// Put NODE back into routing.
    Attach {
        /// The node.
        node: String,
    },
    /// Take NODE out of routing (detaching the primary fails over).
    Detach {
        /// The node.
        node: String,
    },
    /// Hold new transactions (running ones finish first).
    Pause,
    /// Let held transactions go.
    Resume,
    /// Read the configuration file again (as SIGHUP): prints each changed
    /// setting, applied or not.
    Reload,
}

impl CtlCommand {
    /// The console statement for this command; node names are sent as
    /// string literals, so any name works.
    pub fn statement(&self) -> String {
        let quoted = |name: &str| format!("'{}'", name.replace('\'', "''"));
        match self {
            CtlCommand::Status => "SHOW STATUS".into(),
            CtlCommand::Promote { node } => format!("PROMOTE {}", quoted(node)),
            CtlCommand::Switchover { to: None } => "SWITCHOVER".into(),
            CtlCommand::Switchover { to: Some(node) } => format!("SWITCHOVER {}", quoted(node)),
            CtlCommand::Attach { node } => format!("ATTACH {}", quoted(node)),
            CtlCommand::Detach { node } => format!("DETACH {}", quoted(node)),
            CtlCommand::Pause => "PAUSE".into(),
            CtlCommand::Resume => "RESUME".into(),
            CtlCommand::Reload => "RELOAD".into(),
        }
    }
}

/// Runs `cli`, prints the answer, returns the exit status.
pub async fn run(cli: Cli) -> Exit {
    let target = console::Target {
        host: cli.host.clone(),
        port: cli.port,
        user: cli.user.clone(),
        password: std::env::var("PGPASSWORD").ok(),
        connect_timeout: Duration::from_secs(cli.connect_timeout.max(1)),
    };
    let answer = match Console::connect(&target).await {
        Ok(console) => console.query(&cli.command.statement()).await,
        Err(e) => Err(e),
    };
    let (text, exit) = match answer {
        Ok(rows) => (report::answer(&cli.command, &rows, cli.json), Exit::Ok),
        Err(e) => (report::error(&e, cli.json), e.exit()),
    };
    print(&text, exit);
    exit
}

#[allow(clippy::print_stdout)] // the answer is the program's output
fn print(text: &str, exit: Exit) {
    if exit == Exit::Ok || text.starts_with('{') {
        println!("{text}");
    } else {
        eprintln!("{text}");
    }
}

impl CtlError {
    /// The exit status for this error.
    pub fn exit(&self) -> Exit {
        match self {
            CtlError::Unreachable(_) => Exit::Unreachable,
            CtlError::Login { .. } => Exit::Usage,
            CtlError::Refused { .. } => Exit::Refused,
        }
    }
}
