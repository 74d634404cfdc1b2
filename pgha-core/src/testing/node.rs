//! One PostgreSQL server under the harness's control.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use super::procs::{self, as_pg_user};
use super::{HarnessError, PgBinaries, RunAs};

/// How long a server may take to accept connections after a start (crash
/// recovery after `kill9` included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the harness kills the server.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL server started by the harness.
///
/// The server runs as a child process of the test; dropping the node (or
/// its [`PgCluster`](super::PgCluster)) kills it and every process it
/// forked. Faults are injected by process id, so they are exactly what the
/// operating system would do to a real server.
#[derive(Debug)]
pub struct PgNode {
    name: String,
    dir: PathBuf,
    listen: IpAddr,
    port: u16,
    netns: Option<String>,
    bins: Arc<PgBinaries>,
    run_as: Arc<RunAs>,
    child: Mutex<Option<Child>>,
}

impl PgNode {
    pub(crate) fn new(
        name: String,
        dir: PathBuf,
        listen: IpAddr,
        port: u16,
        netns: Option<String>,
        bins: Arc<PgBinaries>,
        run_as: Arc<RunAs>,
    ) -> Self {
        Self {
            name,
            dir,
            listen,
            port,
            netns,
            bins,
            run_as,
            child: Mutex::new(None),
        }
    }

    /// The node's name (`node0` is the first primary). Also its
    /// `application_name` and replication slot name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the server listens on.
    pub fn host(&self) -> IpAddr {
        self.listen
    }

    /// The server's TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The server log (its stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The network namespace the server runs in, if any.
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// A libpq connection string over TCP, as another host would use it.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.listen, self.port
        )
    }

    /// A connection string over the Unix socket: reachable from the test
    /// process even when the server lives in a network namespace.
    pub fn local_conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres connect_timeout=5",
            self.dir.display(),
            self.port
        )
    }

    /// The postmaster's process id while the harness believes it runs.
    pub fn pid(&self) -> Option<i32> {
        self.lock().as_ref().map(|c| c.id() as i32)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic elsewhere must not stop teardown: take the value anyway.
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start(&self) -> Result<(), HarnessError> {
        self.spawn()?;
        self.wait_ready().await
    }

    pub(crate) fn spawn(&self) -> Result<(), HarnessError> {
        procs::become_subreaper();
        let mut guard = self.lock();
        if let Some(child) = guard.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                return Ok(()); // already running
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(HarnessError::io(format!(
                "opening {}",
                self.log_path().display()
            )))?;
        let log2 = log
            .try_clone()
            .map_err(HarnessError::io("duplicating log handle"))?;
        let postgres = self.bins.bin("postgres");
        let mut cmd = match &self.netns {
            None => {
                let mut c = Command::new(&postgres);
                as_pg_user(&mut c, &self.run_as);
                c
            }
            Some(ns) => {
                // nsenter switches namespace and user, then execs postgres:
                // the pid we hold is the postmaster's.
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"));
                if self.run_as.switch {
                    c.arg(format!("--setuid={}", self.run_as.uid))
                        .arg(format!("--setgid={}", self.run_as.gid))
                        .env("HOME", "/tmp")
                        .env("USER", &self.run_as.name);
                }
                c.arg("--").arg(&postgres);
                c
            }
        };
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!("listen_addresses={}", self.listen))
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .arg("-c")
            .arg(format!("cluster_name={}", self.name))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd.spawn().map_err(HarnessError::io(format!(
            "starting postgres for {}",
            self.name
        )))?;
        tracing::debug!(node = %self.name, pid = child.id(), port = self.port, "postgres started");
        *guard = Some(child);
        Ok(())
    }

    /// Waits until the server accepts connections, or reports why not.
    pub(crate) async fn wait_ready(&self) -> Result<(), HarnessError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return Err(self.start_error(format!("postgres exited: {status}")));
            }
            if self.try_connect().await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.start_error(format!("not ready after {START_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn start_error(&self, reason: String) -> HarnessError {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        HarnessError::Start {
            node: self.name.clone(),
            reason,
            log: self.log_path().display().to_string(),
            tail: procs::tail(&log, 20),
        }
    }

    /// Whether the postmaster has exited (reaping it). Its status is
    /// unknown when another reaper took it (`NetLab::kill_host`).
    fn exited(&self) -> Option<String> {
        let mut guard = self.lock();
        let status = match guard.as_mut()?.try_wait() {
            Ok(None) => return None,
            Ok(Some(status)) => status.to_string(),
            Err(e) => format!("reaped elsewhere ({e})"),
        };
        *guard = None;
        Some(status)
    }

    async fn try_connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, conn) = tokio_postgres::connect(&self.local_conninfo(), NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// A new SQL connection over the Unix socket (bounded by a 5 s connect
    /// timeout, so a frozen server gives an error, not a hang).
    pub async fn connect(&self) -> Result<Client, HarnessError> {
        self.try_connect()
            .await
            .map_err(|source| HarnessError::Sql {
                node: self.name.clone(),
                source,
            })
    }

    /// Runs SQL statements (simple protocol), ignoring their results.
    pub async fn execute(&self, sql: &str) -> Result<(), HarnessError> {
        let client = self.connect().await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|source| HarnessError::Sql {
                node: self.name.clone(),
                source,
            })
    }

    /// Runs a query that returns one text value (first row, first column).
    pub async fn query_one_text(&self, sql: &str) -> Result<Option<String>, HarnessError> {
        let client = self.connect().await?;
        let rows = client
            .simple_query(sql)
            .await
            .map_err(|source| HarnessError::Sql {
                node: self.name.clone(),
                source,
            })?;
        Ok(rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
                _ => None,
            })
            .flatten())
    }

    /// `pg_is_in_recovery()`: true on a standby.
    pub async fn is_in_recovery(&self) -> Result<bool, HarnessError> {
        Ok(self
            .query_one_text("SELECT pg_is_in_recovery()")
            .await?
            .as_deref()
            == Some("t"))
    }

    /// The primary's current WAL write position (`pg_current_wal_lsn()`).
    pub async fn current_wal_lsn(&self) -> Result<String, HarnessError> {
        self.text_value("SELECT pg_current_wal_lsn()::text").await
    }

    /// The last WAL position a standby has replayed.
    pub async fn replay_lsn(&self) -> Result<String, HarnessError> {
        self.text_value("SELECT pg_last_wal_replay_lsn()::text")
            .await
    }

    /// The server's timeline (from `pg_control_checkpoint()`).
    pub async fn timeline(&self) -> Result<u32, HarnessError> {
        let text = self
            .text_value("SELECT timeline_id::text FROM pg_control_checkpoint()")
            .await?;
        text.parse().map_err(|_| HarnessError::Io {
            what: format!("node {}: timeline {text:?} is not a number", self.name),
            source: std::io::Error::other("bad timeline"),
        })
    }

    async fn text_value(&self, sql: &str) -> Result<String, HarnessError> {
        self.query_one_text(sql)
            .await?
            .ok_or_else(|| HarnessError::Io {
                what: format!("node {}: {sql} returned NULL", self.name),
                source: std::io::Error::other("null"),
            })
    }

    /// Kills the postmaster and all its children with SIGKILL — a crash.
    /// Afterwards connections are refused; [`PgNode::start`] recovers it.
    pub fn kill9(&self) -> Result<(), HarnessError> {
        let Some(mut child) = self.lock().take() else {
            return Ok(());
        };
        let postmaster = child.id() as i32;
        let killed = procs::kill_tree(postmaster);
        // An error here means someone else (NetLab::kill_host) reaped it.
        let _ = child.wait();
        if let Ok(children) = &killed {
            procs::reap(children);
        }
        // Also when it was killed by someone else: the segment outlives it.
        procs::remove_orphaned_shm(self.run_as.uid);
        killed?;
        tracing::debug!(node = %self.name, "killed (SIGKILL)");
        Ok(())
    }

    /// Fast shutdown (SIGINT), as `pg_ctl stop -m fast` does; waits for it.
    pub async fn stop(&self) -> Result<(), HarnessError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        procs::thaw_tree(pid)?;
        procs::signal(pid, nix::sys::signal::Signal::SIGINT)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.exited().is_none() {
            if Instant::now() > deadline {
                self.kill9()?;
                return Err(HarnessError::Timeout {
                    what: format!("fast shutdown of {}", self.name),
                    after: STOP_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops the server, then starts it again (after a `kill9` or `stop`
    /// just starts it).
    pub async fn restart(&self) -> Result<(), HarnessError> {
        self.stop().await?;
        self.start().await
    }

    /// SIGSTOPs the postmaster and its children: the kernel still accepts
    /// TCP connections, but nothing answers — a hung server.
    pub fn freeze(&self) -> Result<(), HarnessError> {
        match self.pid() {
            Some(pid) => procs::freeze_tree(pid),
            None => Ok(()),
        }
    }

    /// Undoes [`PgNode::freeze`].
    pub fn thaw(&self) -> Result<(), HarnessError> {
        match self.pid() {
            Some(pid) => procs::thaw_tree(pid),
            None => Ok(()),
        }
    }

    /// The PostgreSQL binaries this node runs.
    pub fn bins(&self) -> &PgBinaries {
        &self.bins
    }

    /// The user the server runs as.
    pub fn run_as(&self) -> &RunAs {
        &self.run_as
    }
}

impl Drop for PgNode {
    fn drop(&mut self) {
        if let Err(e) = self.kill9() {
            tracing::warn!(node = %self.name, error = %e, "could not kill postgres on drop");
        }
        // A server someone else started on this node's data directory (a
        // local agent's pg_ctl) was killed by the test's teardown too.
        procs::remove_orphaned_shm(self.run_as.uid);
    }
}
