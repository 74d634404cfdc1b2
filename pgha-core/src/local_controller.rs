//! Control of data directories on this host: fencing by stopping the
//! server, and the automatic rejoin of a former primary (pg_rewind).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::sql_controller::{slot_name, sql_literal};
use crate::{Error, Fenced, NodeController, NodeId, NodeState, SqlNodeController};

/// Starts and stops the PostgreSQL server of a node on this host.
///
/// # Contract
///
/// `stop` of a server that is not running is `Ok`; both return once the
/// server is down (or accepts connections), or fail within their deadline.
#[async_trait]
pub trait LocalService: Send + Sync {
    /// Stops the node's server (fast shutdown).
    async fn stop(&self, node: &NodeState) -> Result<(), Error>;
    /// Starts the node's server and waits until it accepts connections.
    async fn start(&self, node: &NodeState) -> Result<(), Error>;
}

/// Settings of [`LocalNodeController`].
#[derive(Debug, Clone)]
pub struct LocalControllerConfig {
    /// PostgreSQL's programs (`pg_rewind`, `pg_basebackup`).
    pub bindir: PathBuf,
    /// Data directory of each node on this host.
    pub data_dirs: BTreeMap<NodeId, PathBuf>,
    /// Run the tools as this (uid, gid) — for a pgha running as root.
    pub run_as: Option<(u32, u32)>,
    /// When pg_rewind fails, re-clone the node with pg_basebackup
    /// (default true). This replaces the node's data directory.
    pub basebackup_fallback: bool,
    /// Deadline for pg_rewind or pg_basebackup (default 10 min).
    pub tool_timeout: Duration,
}

impl LocalControllerConfig {
    /// Settings for these data directories, defaults otherwise.
    pub fn new(bindir: impl Into<PathBuf>, data_dirs: BTreeMap<NodeId, PathBuf>) -> Self {
        Self {
            bindir: bindir.into(),
            data_dirs,
            run_as: None,
            basebackup_fallback: true,
            tool_timeout: Duration::from_secs(600),
        }
    }
}

/// Promotes and re-points over SQL (an inner [`SqlNodeController`]), and
/// for nodes whose data directory is on this host:
/// * **fences** by stopping the server — the only fence that holds even
///   against a superuser that connects to the node directly (confirmed
///   only when the server was reachable before the stop; a node whose
///   data directory is elsewhere, or that cannot be stopped, gets the SQL
///   fence: read-only by default, ordinary users' logins refused, sessions
///   terminated);
/// * **rejoins** a former primary: stop it, `pg_rewind` it against the new
///   primary (falling back to `pg_basebackup`), write `standby.signal`,
///   `primary_conninfo` and `primary_slot_name`, start it, and return once
///   it streams.
pub struct LocalNodeController {
    sql: SqlNodeController,
    service: Arc<dyn LocalService>,
    config: LocalControllerConfig,
}

impl std::fmt::Debug for LocalNodeController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNodeController")
            .field("sql", &self.sql)
            .field("config", &self.config)
            .finish()
    }
}

impl LocalNodeController {
    /// A controller using `sql` for promote/follow and `service` to start
    /// and stop local servers.
    pub fn new(
        sql: SqlNodeController,
        service: Arc<dyn LocalService>,
        config: LocalControllerConfig,
    ) -> Self {
        Self {
            sql,
            service,
            config,
        }
    }

    fn data_dir(&self, node: &NodeState) -> Option<&Path> {
        self.config.data_dirs.get(&node.id).map(PathBuf::as_path)
    }

    fn source_conninfo(&self, primary: &NodeState) -> String {
        let c = &self.sql.config().connect;
        let mut s = format!(
            "host={} port={} user={} dbname={} connect_timeout=10",
            primary.host, primary.port, c.user, c.dbname
        );
        if let Some(p) = &c.password {
            s.push_str(&format!(" password={}", sql_literal(p)));
        }
        s
    }

    async fn tool(&self, program: &str, args: &[String]) -> Result<(), Error> {
        let path = self.config.bindir.join(program);
        let mut cmd = tokio::process::Command::new(&path);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some((uid, gid)) = self.config.run_as {
            cmd.uid(uid).gid(gid).env("HOME", "/tmp");
        }
        let shown = format!("{} {}", path.display(), args.join(" "));
        crate::local_service::run(cmd, shown, self.config.tool_timeout).await
    }

    fn owned_write(&self, path: &Path, text: &str, append: bool) -> Result<(), Error> {
        use std::io::Write;
        let io = |source| Error::Io {
            what: format!("writing {}", path.display()),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(path)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        if let Some((uid, gid)) = self.config.run_as {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io)?;
        }
        Ok(())
    }

    async fn reclone(&self, data: &Path, primary: &NodeState) -> Result<(), Error> {
        tracing::warn!(data = %data.display(), "pg_rewind failed; re-cloning with pg_basebackup");
        let io = |source| Error::Io {
            what: format!("emptying {}", data.display()),
            source,
        };
        for entry in std::fs::read_dir(data).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io)?;
            } else {
                std::fs::remove_file(&path).map_err(io)?;
            }
        }
        let args = [
            "-D".to_string(),
            data.display().to_string(),
            "-d".to_string(),
            self.source_conninfo(primary),
            "-X".into(),
            "stream".into(),
            "-c".into(),
            "fast".into(),
        ];
        self.tool("pg_basebackup", &args).await
    }
}

#[async_trait]
impl NodeController for LocalNodeController {
    async fn promote(&self, node: &NodeState, term: u64) -> Result<(), Error> {
        self.sql.promote(node, term).await
    }

    async fn follow(&self, node: &NodeState, primary: &NodeState) -> Result<(), Error> {
        self.sql.follow(node, primary).await
    }

    async fn fence(&self, node: &NodeState) -> Result<Fenced, Error> {
        if self.data_dir(node).is_none() {
            return self.sql.fence(node).await;
        }
        // Stopping a server that is already down proves nothing: it may be
        // restarted by a service manager, or be another host's. Only a stop
        // of a server we could reach confirms the fence.
        let reachable = self
            .sql
            .config()
            .connect
            .connect(node, self.sql.config().connect_timeout)
            .await
            .is_ok();
        match self.service.stop(node).await {
            Ok(()) if reachable => {
                tracing::warn!(node = %node.id, "fenced: server stopped");
                Ok(Fenced::Confirmed)
            }
            Ok(()) => Ok(Fenced::NotConfirmed {
                why: "unreachable before the stop; stopped locally if it was running".into(),
            }),
            Err(e) => {
                tracing::error!(node = %node.id, error = %e, "could not stop; fencing over SQL");
                self.sql.fence(node).await
            }
        }
    }

    async fn rejoin(&self, node: &NodeState, primary: &NodeState) -> Result<(), Error> {
        let Some(data) = self.data_dir(node).map(Path::to_path_buf) else {
            return Err(self.unsupported("rejoin a node whose data directory is not local"));
        };
        tracing::warn!(node = %node.id, primary = %primary.id, "rejoining as a standby");
        self.service.stop(node).await?;
        // pg_rewind reads the timeline from the source's control file.
        self.sql.checkpoint(primary).await;
        if self.sql.config().manage_slots {
            self.sql.ensure_slot(primary, node).await?;
        }
        let rewind = [
            format!("--target-pgdata={}", data.display()),
            format!("--source-server={}", self.source_conninfo(primary)),
            "--progress".to_string(),
        ];
        if let Err(e) = self.tool("pg_rewind", &rewind).await {
            if !self.config.basebackup_fallback {
                return Err(e);
            }
            tracing::warn!(node = %node.id, error = %e, "pg_rewind failed");
            self.reclone(&data, primary).await?;
        }
        self.owned_write(&data.join("standby.signal"), "", false)?;
        let slot = if self.sql.config().manage_slots {
            slot_name(node)
        } else {
            String::new()
        };
        let conninfo = self
            .sql
            .config()
            .connect
            .primary_conninfo(primary, node.id.as_str());
        // Later lines win: this overrides what pg_rewind copied from the
        // new primary's own configuration.
        let settings = format!(
            "\n# pgha rejoin\nprimary_conninfo = {}\nprimary_slot_name = {}\ndefault_transaction_read_only = off\n",
            sql_literal(&conninfo),
            sql_literal(&slot)
        );
        self.owned_write(&data.join("postgresql.auto.conf"), &settings, true)?;
        self.service.start(node).await?;
        self.sql.wait_streaming(node, primary).await
    }

    fn name(&self) -> &str {
        "local controller"
    }
}
