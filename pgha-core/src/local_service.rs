//! The default [`LocalService`]s: `pg_ctl`, or a systemd unit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Error, LocalService, NodeId, NodeState};

/// Starts and stops servers with `pg_ctl` (`start -w`, `stop -m fast
/// -w`), as the data directory's owner when pgha runs as root.
#[derive(Debug, Clone)]
pub struct PgCtlService {
    /// Where `pg_ctl` is.
    pub bindir: PathBuf,
    /// Each local node's data directory.
    pub data_dirs: BTreeMap<NodeId, PathBuf>,
    /// Options passed to the server (`pg_ctl -o`), e.g. a `config_file`.
    pub options: Option<String>,
    /// The server's log file (`pg_ctl -l`); default: beside the data
    /// directory, `<data_dir>-server.log`. (Always a file: without one the
    /// server would keep `pg_ctl`'s output pipe open, and its own logging
    /// settings may still send everything elsewhere.)
    pub log_file: Option<PathBuf>,
    /// Run as this (uid, gid).
    pub run_as: Option<(u32, u32)>,
    /// How long a start or stop may take. Default 60 s.
    pub timeout: Duration,
}

impl PgCtlService {
    /// `pg_ctl` from `bindir` for these data directories.
    pub fn new(bindir: impl Into<PathBuf>, data_dirs: BTreeMap<NodeId, PathBuf>) -> Self {
        PgCtlService {
            bindir: bindir.into(),
            data_dirs,
            options: None,
            log_file: None,
            run_as: None,
            timeout: Duration::from_secs(60),
        }
    }

    async fn pg_ctl(&self, node: &NodeState, action: &str) -> Result<(), Error> {
        let data = self
            .data_dirs
            .get(&node.id)
            .ok_or_else(|| Error::Unsupported {
                controller: "pg_ctl service".into(),
                operation: "control a node whose data directory is not on this host",
            })?;
        let mut args: Vec<String> = vec![
            action.into(),
            "-D".into(),
            data.display().to_string(),
            "-w".into(),
            "-t".into(),
            self.timeout.as_secs().max(1).to_string(),
        ];
        if action == "stop" {
            args.extend(["-m".into(), "fast".into()]);
        } else {
            if let Some(options) = &self.options {
                args.extend(["-o".into(), options.clone()]);
            }
            let log = self.log_file.clone().unwrap_or_else(|| {
                let mut name = data.as_os_str().to_os_string();
                name.push("-server.log");
                PathBuf::from(name)
            });
            args.extend(["-l".into(), log.display().to_string()]);
        }
        let program = self.bindir.join("pg_ctl");
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid).env("HOME", "/tmp");
        }
        run(
            cmd,
            format!("{} {}", program.display(), args.join(" ")),
            self.timeout,
        )
        .await
    }
}

#[async_trait]
impl LocalService for PgCtlService {
    async fn stop(&self, node: &NodeState) -> Result<(), Error> {
        match self.pg_ctl(node, "stop").await {
            // pg_ctl stop of a server that is not running exits 1 and says
            // so (no postmaster.pid; or one left by a killed server whose
            // process is gone); the contract calls that a success.
            Err(Error::Command { output, .. })
                if output.contains("Is server running?")
                    || output.contains("is not running")
                    || output.contains("No such process") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn start(&self, node: &NodeState) -> Result<(), Error> {
        self.pg_ctl(node, "start").await
    }
}

/// Starts and stops servers through systemd units (Debian's
/// `postgresql@15-main`, for instance).
#[derive(Debug, Clone)]
pub struct SystemdService {
    /// Each local node's unit.
    pub units: BTreeMap<NodeId, String>,
    /// How long `systemctl` may take. Default 120 s.
    pub timeout: Duration,
}

impl SystemdService {
    /// These units.
    pub fn new(units: BTreeMap<NodeId, String>) -> Self {
        SystemdService {
            units,
            timeout: Duration::from_secs(120),
        }
    }

    async fn systemctl(&self, node: &NodeState, action: &str) -> Result<(), Error> {
        let unit = self.units.get(&node.id).ok_or_else(|| Error::Unsupported {
            controller: "systemd service".into(),
            operation: "control a node without a unit on this host",
        })?;
        let mut cmd = tokio::process::Command::new("systemctl");
        cmd.args([action, unit.as_str()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        run(cmd, format!("systemctl {action} {unit}"), self.timeout).await
    }
}

#[async_trait]
impl LocalService for SystemdService {
    async fn stop(&self, node: &NodeState) -> Result<(), Error> {
        self.systemctl(node, "stop").await
    }

    async fn start(&self, node: &NodeState) -> Result<(), Error> {
        self.systemctl(node, "start").await
    }
}

/// Runs `cmd` (shown as `shown`) under `timeout`: its output logged, a
/// failure with the tail of what it printed.
pub(crate) async fn run(
    mut cmd: tokio::process::Command,
    shown: String,
    timeout: Duration,
) -> Result<(), Error> {
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| Error::Command {
            command: shown.clone(),
            status: format!("timed out after {timeout:?}"),
            output: String::new(),
        })?
        .map_err(|source| Error::Io {
            what: format!("running {shown}"),
            source,
        })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    tracing::info!(command = %shown, status = %out.status, output = %text.trim(), "ran");
    if out.status.success() {
        Ok(())
    } else {
        let lines: Vec<&str> = text.lines().collect();
        Err(Error::Command {
            command: shown,
            status: out.status.to_string(),
            output: lines[lines.len().saturating_sub(20)..].join("\n"),
        })
    }
}
