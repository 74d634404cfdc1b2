//! A group of `pgha run` processes in network namespaces, in front of a
//! real PostgreSQL primary (host `a`) and standby (host `b`), a VIP, and a
//! client that writes through it.

#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)] // test support

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgha_core::testing::{HarnessError, NetLab, PgCluster, CLIENT};

#[path = "writer.rs"]
mod writer;
pub use writer::Writer;

/// What the scenarios return.
pub type R = Result<(), Box<dyn std::error::Error>>;

/// The hosts that run pgha, with their watchdog member ids: `pgha run` on
/// `a` and `b`, `pgha witness` on `w`.
pub const MEMBERS: [(&str, u64); 3] = [("a", 1), ("b", 2), ("w", 3)];
/// The witness's host.
pub const WITNESS: &str = "w";
/// Where clients connect (on every host, and so on the VIP).
pub const PORT: u16 = 6432;
/// Each member's HTTP port (/metrics, /status).
pub const HTTP_PORT: u16 = 9930;
const PEER_PORT: u16 = 7400;

/// One `pgha run` process in a host's namespace; killed when dropped.
pub struct Daemon {
    pub host: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`"KILL"`, `"STOP"`, `"CONT"`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// Its log so far (for failure messages and lease records).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lab's hosts: `a`, `b` (PostgreSQL), `w` (a third member), client.
pub fn lab() -> Result<NetLab, HarnessError> {
    NetLab::builder().hosts(["a", "b", "w"]).build()
}

/// A `pgha.toml` for member `id` on `host`.
pub fn config(lab: &NetLab, cluster: &PgCluster, host: &str, id: u64, dir: &Path) -> String {
    let mut text = format!(
        r#"
[proxy]
listen = "0.0.0.0:{PORT}"
http = "0.0.0.0:{HTTP_PORT}"
pool_mode = "transaction"
no_primary_wait = "20s"
admin_users = ["postgres"]

[server]
user = "postgres"

[monitor]
user = "postgres"
probe_interval = "500ms"
probe_timeout = "500ms"
"#
    );
    for node in cluster.nodes() {
        text.push_str(&format!(
            "\n[[node]]\nname = \"{}\"\nhost = \"{}\"\nport = {}\n",
            node.name(),
            node.host(),
            node.port()
        ));
    }
    text.push_str(&format!(
        "\n[watchdog]\nid = {id}\nstate_dir = \"{}\"\nsecret = \"a-secret-the-three-members-share\"\n",
        dir.join(format!("watchdog-{host}")).display()
    ));
    for (member_host, member_id) in MEMBERS {
        text.push_str(&format!(
            "\n[[watchdog.member]]\nid = {member_id}\naddress = \"{}:{PEER_PORT}\"\n",
            lab.ip(member_host)
        ));
        if member_host == WITNESS {
            text.push_str("witness = true\n");
        }
    }
    text.push_str(&format!(
        "\n[vip]\naddress = \"{}/24\"\ninterface = \"eth0\"\n",
        lab.vip(0)
    ));
    if let Some(node) = cluster
        .nodes()
        .iter()
        .find(|n| n.netns() == Some(lab.netns(host)))
    {
        text.push_str(&local_section(node));
    }
    text
}

/// `[local]` for the harness's server on this host: started by pg_ctl with
/// the options the harness starts it with.
fn local_section(node: &pgha_core::testing::PgNode) -> String {
    let run_as = node.run_as();
    let mut text = format!(
        "\n[local]\nnode = \"{}\"\ndata_dir = \"{}\"\nbindir = \"{}\"\nrejoin_after = \"2s\"\n",
        node.name(),
        node.data_dir().display(),
        node.bins().dir().display(),
    );
    text.push_str(&format!(
        "pg_ctl_options = \"-p {} -c listen_addresses={} -c unix_socket_directories={} -c cluster_name={}\"\n",
        node.port(),
        node.host(),
        node.socket_dir().display(),
        node.name()
    ));
    if run_as.switch {
        text.push_str(&format!("run_as = \"{}\"\n", run_as.name));
    }
    text
}

/// Starts `pgha run` on every member host.
pub fn start_all(lab: &NetLab, cluster: &PgCluster, dir: &Path) -> Vec<Daemon> {
    MEMBERS
        .iter()
        .map(|(host, id)| start(lab, cluster, host, *id, dir))
        .collect()
}

/// Starts `pgha run` for member `id` on `host`.
pub fn start(lab: &NetLab, cluster: &PgCluster, host: &'static str, id: u64, dir: &Path) -> Daemon {
    let path = dir.join(format!("pgha-{host}.toml"));
    std::fs::write(&path, config(lab, cluster, host, id, dir)).unwrap();
    let log = dir.join(format!("pgha-{host}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = lab
        .command(host, env!("CARGO_BIN_EXE_pgha"))
        .args([if host == WITNESS { "witness" } else { "run" }, "--config"])
        .arg(&path)
        .env(
            "RUST_LOG",
            "warn,pgha_watchdog=info,pgha_vip=info,pgha_core::monitor=info",
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Daemon { host, child, log }
}

/// The member hosts that have the VIP on `eth0` now.
pub fn holders(lab: &NetLab) -> Vec<&'static str> {
    let vip = lab.vip(0).to_string();
    MEMBERS
        .iter()
        .filter(|(host, _)| {
            lab.run(host, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
                .is_ok_and(|out| {
                    out.split_whitespace()
                        .any(|w| w.starts_with(&format!("{vip}/")))
                })
        })
        .map(|(host, _)| *host)
        .collect()
}

/// Waits until exactly one host holds the VIP (other than `not`).
pub async fn wait_holder(lab: &NetLab, not: Option<&str>, within: Duration) -> &'static str {
    let deadline = Instant::now() + within;
    loop {
        let now = holders(lab);
        if let [one] = now[..] {
            if Some(one) != not {
                return one;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no single VIP holder (other than {not:?}) within {within:?}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A sample with more than one holder: when (since sampling began), who.
pub type Double = (Duration, Vec<&'static str>);

/// Samples the VIP's holders every 50 ms until dropped; remembers every
/// sample with more than one holder.
pub struct Sampler {
    doubles: Arc<Mutex<Vec<Double>>>,
    samples: Arc<Mutex<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(lab: Arc<NetLab>) -> Sampler {
        let doubles = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Mutex::new(0));
        let (d, s) = (doubles.clone(), samples.clone());
        let started = Instant::now();
        let task = tokio::spawn(async move {
            loop {
                let lab = lab.clone();
                let now = tokio::task::spawn_blocking(move || holders(&lab))
                    .await
                    .unwrap_or_default();
                *s.lock().unwrap() += 1;
                if now.len() > 1 {
                    d.lock().unwrap().push((started.elapsed(), now));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Sampler {
            doubles,
            samples,
            task,
        }
    }

    /// (samples taken, samples with two holders).
    pub fn finish(self) -> (u64, Vec<Double>) {
        self.task.abort();
        let samples = *self.samples.lock().unwrap();
        let doubles = self.doubles.lock().unwrap().clone();
        (samples, doubles)
    }
}

/// Everything a scenario needs, up and writing.
pub struct Deployment {
    pub lab: Arc<NetLab>,
    pub cluster: PgCluster,
    pub daemons: Vec<Daemon>,
    pub writer: Writer,
    pub holder: &'static str,
    /// Where the configuration files, logs and watchdog state live.
    pub dir: tempfile::TempDir,
}

impl Deployment {
    /// Fails, with the members' logs, on any sample with two VIP holders.
    pub fn never_two_holders(&self, doubles: &[Double]) {
        assert!(
            doubles.is_empty(),
            "two VIP holders: {doubles:?}\n{}",
            self.logs()
        );
    }

    pub async fn start() -> Result<Deployment, Box<dyn std::error::Error>> {
        Self::start_with(false).await
    }

    /// The same, with synchronous replication (`synchronous_standby_names`
    /// on the primary) when `synchronous`.
    pub async fn start_with(synchronous: bool) -> Result<Deployment, Box<dyn std::error::Error>> {
        let lab = Arc::new(lab()?);
        let cluster = PgCluster::builder()
            .standbys(1)
            .synchronous(synchronous)
            .on_hosts(&lab, &["a", "b"])
            .start()
            .await?;
        cluster.wait_streaming().await?;
        cluster
            .primary()
            .execute("CREATE TABLE writes (id bigint PRIMARY KEY)")
            .await?;
        let dir = tempfile::tempdir()?;
        let daemons = start_all(&lab, &cluster, dir.path());
        let holder = wait_holder(&lab, None, Duration::from_secs(60)).await;
        let writer = Writer::start(&lab)?;
        let deployment = Deployment {
            lab,
            cluster,
            daemons,
            writer,
            holder,
            dir,
        };
        deployment
            .writer
            .wait_acknowledged_after(Instant::now(), 10, Duration::from_secs(60))
            .await;
        Ok(deployment)
    }

    pub fn daemon(&self, host: &str) -> &Daemon {
        self.daemons.iter().find(|d| d.host == host).unwrap()
    }

    pub fn logs(&self) -> String {
        self.daemons
            .iter()
            .map(|d| format!("--- pgha on {} ---\n{}", d.host, d.log_text()))
            .collect()
    }

    /// PostgreSQL was not failed over: `a` is still the primary.
    pub async fn postgres_unchanged(&self) -> R {
        assert!(
            !self.cluster.nodes()[0].is_in_recovery().await?,
            "a pgha fault must not fail PostgreSQL over\n{}",
            self.logs()
        );
        assert!(self.cluster.nodes()[1].is_in_recovery().await?);
        Ok(())
    }

    /// The ids in the table on node `index`.
    async fn present_on(
        &self,
        index: usize,
    ) -> Result<std::collections::BTreeSet<i64>, Box<dyn std::error::Error>> {
        let ids = self.cluster.nodes()[index]
            .query_one_text("SELECT string_agg(id::text, ',') FROM writes")
            .await?
            .unwrap_or_default();
        Ok(ids.split(',').filter_map(|s| s.parse().ok()).collect())
    }

    /// Every acknowledged write is in the table.
    pub async fn nothing_acknowledged_is_missing(&self) -> R {
        self.nothing_acknowledged_is_missing_on(0).await
    }

    /// Every acknowledged write is in the table on node `index`.
    pub async fn nothing_acknowledged_is_missing_on(&self, index: usize) -> R {
        let acknowledged = self.writer.acknowledged();
        let present = self.present_on(index).await?;
        let missing: Vec<_> = acknowledged
            .iter()
            .filter(|id| !present.contains(id))
            .collect();
        assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
        self.nothing_told_failed_is_present_on(index).await
    }

    /// No write told failed with a definite error is in the table on node
    /// `index`.
    pub async fn nothing_told_failed_is_present_on(&self, index: usize) -> R {
        let present = self.present_on(index).await?;
        // The client's chair, the other way: a write told failed with a
        // definite error (any SQLSTATE but 08007, "outcome unknown") did not
        // run. `id` is the primary key, so an INSERT pgha sent twice would
        // show here too: a 23505 for a row that is present.
        let told_failed_yet_present: Vec<_> = self
            .writer
            .attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| !a.ok && a.sqlstate.as_deref().is_some_and(|c| c != "08007"))
            .filter(|a| present.contains(&a.id))
            .map(|a| (a.id, a.sqlstate.clone(), a.error.clone()))
            .collect();
        assert!(
            told_failed_yet_present.is_empty(),
            "told failed, yet in the table: {told_failed_yet_present:?}"
        );
        Ok(())
    }
}

/// Runs `pgha-ctl ARGS --json` from the client host against `host:PORT`;
/// its exit status and parsed answer.
pub fn ctl(lab: &NetLab, at: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let out = lab
        .command(CLIENT, env!("CARGO_BIN_EXE_pgha-ctl"))
        .args([
            "--host",
            at,
            "--port",
            &PORT.to_string(),
            "--user",
            "postgres",
            "--json",
        ])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "pgha-ctl {args:?}: not JSON ({e}): {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), value)
}

/// Waits until `node` is a standby streaming from `primary`.
pub async fn streams_from(
    d: &Deployment,
    node: &pgha_core::testing::PgNode,
    primary: &pgha_core::testing::PgNode,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let standby = node.is_in_recovery().await.unwrap_or(false);
        let seen = primary
            .query_one_text(&format!(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND client_addr = '{}'",
                node.host()
            ))
            .await
            .ok()
            .flatten();
        if standby && seen.as_deref() == Some("1") {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{} not streaming from {} within {within:?}\n{}",
            node.name(),
            primary.name(),
            d.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET path` on `host`'s HTTP port, from the client host; the whole
/// answer (empty if it could not be had).
pub async fn http_get(lab: &NetLab, host: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ip = lab.ip(host);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n");
    let task = lab.spawn(CLIENT, move || async move {
        let mut conn = tokio::net::TcpStream::connect((ip, HTTP_PORT)).await.ok()?;
        conn.write_all(request.as_bytes()).await.ok()?;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), conn.read_to_string(&mut answer))
            .await
            .ok()?
            .ok()?;
        Some(answer)
    });
    match task {
        Ok(task) => task.join().await.flatten().unwrap_or_default(),
        Err(_) => String::new(),
    }
}
