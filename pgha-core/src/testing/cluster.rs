//! A primary and its streaming standbys, started from the template.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::procs::{append_as, as_pg_user, chown, run, write_as};
use super::template::{copy_tree, template};
use super::{sweep, HarnessError, NetLab, PgBinaries, PgNode, RunAs};

const STREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// A port picked as free may be taken before postgres binds it.
const BIND_ATTEMPTS: usize = 5;

/// Builds a [`PgCluster`].
#[derive(Debug, Default)]
pub struct PgClusterBuilder {
    standbys: usize,
    synchronous: bool,
    hosts: Option<Vec<(String, IpAddr)>>,
}

impl PgClusterBuilder {
    /// How many streaming standbys to create (default 0).
    pub fn standbys(mut self, n: usize) -> Self {
        self.standbys = n;
        self
    }

    /// Synchronous replication (`synchronous_standby_names = '*'`); the
    /// default is asynchronous.
    pub fn synchronous(mut self, on: bool) -> Self {
        self.synchronous = on;
        self
    }

    /// Places node *i* on host `hosts[i]` of a [`NetLab`] (its namespace and
    /// address, port 5432) instead of on loopback. Needs as many hosts as
    /// nodes.
    pub fn on_hosts(mut self, lab: &NetLab, hosts: &[&str]) -> Self {
        self.hosts = Some(
            hosts
                .iter()
                .map(|h| (lab.netns(h).to_string(), IpAddr::V4(lab.ip(h))))
                .collect(),
        );
        self
    }

    /// Starts the primary and the standbys; returns once every server
    /// accepts connections (standbys may still be catching up: see
    /// [`PgCluster::wait_streaming`]).
    pub async fn start(self) -> Result<PgCluster, HarnessError> {
        sweep::stale_once();
        let bins = Arc::new(PgBinaries::find()?);
        let run_as = Arc::new(RunAs::choose()?);
        let template = template(&bins, &run_as).await?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}{}-", sweep::CLUSTER_PREFIX, std::process::id()))
            .tempdir()
            .map_err(HarnessError::io("creating cluster directory"))?;
        chown(dir.path(), &run_as)?;
        let total = 1 + self.standbys;
        if let Some(hosts) = &self.hosts {
            if hosts.len() < total {
                return Err(HarnessError::Io {
                    what: format!("{total} nodes but only {} hosts given", hosts.len()),
                    source: std::io::Error::other("not enough hosts"),
                });
            }
        }
        let mut cluster = PgCluster {
            nodes: Vec::with_capacity(total),
            synchronous: self.synchronous,
            dir,
        };
        for i in 0..total {
            let node = self
                .start_node(&cluster, i, &template, &bins, &run_as)
                .await?;
            cluster.nodes.push(node);
        }
        if self.synchronous && self.standbys > 0 {
            cluster.wait_streaming().await?;
            let primary = cluster.primary();
            primary
                .execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
                .await?;
            primary.execute("SELECT pg_reload_conf()").await?;
            cluster.wait_sync().await?;
        }
        Ok(cluster)
    }

    async fn start_node(
        &self,
        cluster: &PgCluster,
        i: usize,
        template: &Path,
        bins: &Arc<PgBinaries>,
        run_as: &Arc<RunAs>,
    ) -> Result<PgNode, HarnessError> {
        let name = format!("node{i}");
        let node_dir = cluster.dir.path().join(&name);
        std::fs::create_dir(&node_dir)
            .map_err(HarnessError::io(format!("creating {}", node_dir.display())))?;
        chown(&node_dir, run_as)?;
        let data = node_dir.join("data");
        match cluster.nodes.first() {
            None => copy_tree(template, &data)?,
            Some(primary) => {
                base_backup(primary, &name, &data, bins, run_as)?;
                write_as(&data.join("standby.signal"), "", run_as)?;
                append_as(
                    &data.join("postgresql.auto.conf"),
                    &format!(
                        "primary_conninfo = 'host={} port={} user=postgres application_name={name}'\nprimary_slot_name = '{name}'\n{}",
                        primary.host(),
                        primary.port(),
                        // Real deployments share one configuration: a
                        // promoted standby would wait for a sync partner.
                        if self.synchronous { "synchronous_standby_names = '*'\n" } else { "" }
                    ),
                    run_as,
                )?;
            }
        }
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            let (netns, listen, port) = match &self.hosts {
                Some(hosts) => (Some(hosts[i].0.clone()), hosts[i].1, 5432),
                None => (None, IpAddr::V4(Ipv4Addr::LOCALHOST), free_port()?),
            };
            let node = PgNode::new(
                name.clone(),
                node_dir.clone(),
                listen,
                port,
                netns,
                bins.clone(),
                run_as.clone(),
            );
            match node.start().await {
                Ok(()) => return Ok(node),
                Err(HarnessError::Start { tail, .. })
                    if self.hosts.is_none() && tail.contains("could not bind") =>
                {
                    tracing::debug!(node = %name, port, "port taken; retrying with another");
                    last_error = Some(node.start_error(format!("port {port} taken")));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| HarnessError::Timeout {
            what: format!("a free port for {name}"),
            after: Duration::ZERO,
        }))
    }
}

fn base_backup(
    primary: &PgNode,
    name: &str,
    data: &Path,
    bins: &PgBinaries,
    run_as: &RunAs,
) -> Result<(), HarnessError> {
    let mut cmd = Command::new(bins.bin("pg_basebackup"));
    cmd.arg("-d")
        .arg(primary.local_conninfo())
        .arg("-D")
        .arg(data)
        .args(["-X", "stream", "-c", "fast", "--no-sync", "-C", "-S", name]);
    as_pg_user(&mut cmd, run_as);
    run(&mut cmd).map(drop)
}

/// Asks the kernel for a free loopback port.
fn free_port() -> Result<u16, HarnessError> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(HarnessError::io("binding a probe socket for a free port"))?;
    let port = listener
        .local_addr()
        .map_err(HarnessError::io("reading the probe socket's port"))?
        .port();
    Ok(port)
}

/// Real PostgreSQL servers: `node0` starts as the primary, `node1…` as its
/// streaming standbys (replication slots named after the nodes).
///
/// Everything — servers, their children, data directories — is removed
/// when the cluster is dropped, also when a test panics.
#[derive(Debug)]
pub struct PgCluster {
    // Field order matters: nodes are dropped (killed) before their
    // directory is removed.
    nodes: Vec<PgNode>,
    synchronous: bool,
    dir: tempfile::TempDir,
}

impl PgCluster {
    /// A builder with no standbys and asynchronous replication.
    pub fn builder() -> PgClusterBuilder {
        PgClusterBuilder::default()
    }

    /// The node started as primary (`node0`). After a failover this is
    /// still `node0`, whatever its role is now.
    pub fn primary(&self) -> &PgNode {
        &self.nodes[0]
    }

    /// The nodes started as standbys.
    pub fn standbys(&self) -> &[PgNode] {
        &self.nodes[1..]
    }

    /// Every node, `node0` first.
    pub fn nodes(&self) -> &[PgNode] {
        &self.nodes
    }

    /// The node called `name`, if any.
    pub fn node(&self, name: &str) -> Option<&PgNode> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// Whether the cluster was built with synchronous replication.
    pub fn is_synchronous(&self) -> bool {
        self.synchronous
    }

    /// The directory holding every node's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until every standby streams from `node0`.
    pub async fn wait_streaming(&self) -> Result<(), HarnessError> {
        self.wait_replication("state = 'streaming'", "every standby streaming")
            .await
    }

    async fn wait_sync(&self) -> Result<(), HarnessError> {
        self.wait_replication(
            "state = 'streaming' AND sync_state IN ('sync', 'quorum')",
            "a synchronous standby",
        )
        .await
    }

    async fn wait_replication(&self, condition: &str, what: &str) -> Result<(), HarnessError> {
        let names: Vec<String> = self
            .standbys()
            .iter()
            .map(|n| format!("'{}'", n.name()))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let want = if condition.contains("sync_state") {
            1
        } else {
            names.len()
        };
        let sql = format!(
            "SELECT count(*)::text FROM pg_stat_replication WHERE application_name IN ({}) AND {condition}",
            names.join(",")
        );
        let deadline = Instant::now() + STREAM_TIMEOUT;
        loop {
            let seen: usize = self
                .primary()
                .query_one_text(&sql)
                .await?
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if seen >= want {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(HarnessError::Timeout {
                    what: what.to_string(),
                    after: STREAM_TIMEOUT,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
