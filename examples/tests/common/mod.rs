//! The real `pgha` binary in front of a real PostgreSQL, for tests that
//! drive it from outside: a config file the test writes, signals, clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pgha_core::testing::PgCluster;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub type R = Result<(), Box<dyn std::error::Error>>;

/// A free loopback port (bound then released: the daemon binds it next).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `[[node]]` sections for every node of `cluster`, the primary first.
pub fn nodes_toml(cluster: &PgCluster) -> String {
    cluster
        .nodes()
        .iter()
        .map(|n| {
            format!(
                "[[node]]\nname = \"{}\"\nhost = \"{}\"\nport = {}\n\n",
                n.name(),
                n.host(),
                n.port()
            )
        })
        .collect()
}

/// A running `pgha run --config FILE`; killed (SIGKILL) when dropped, so a
/// failing test never leaves it behind.
pub struct Pgha {
    child: Option<Child>,
    /// Its port for clients.
    pub port: u16,
    /// Every line it wrote to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
    /// The configuration file.
    pub config: PathBuf,
}

impl Pgha {
    /// `pgha run` in front of `cluster` with the admin console open to
    /// `postgres` and a 200 ms probe interval, its file in `dir`.
    pub fn with_console(
        dir: &Path,
        cluster: &PgCluster,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let port = free_port()?;
        let toml = format!(
            "[proxy]\nlisten = \"127.0.0.1:{port}\"\nadmin_users = [\"postgres\"]\n\n\
             [monitor]\nuser = \"postgres\"\nprobe_interval = \"200ms\"\n\n{}",
            nodes_toml(cluster)
        );
        Self::start(dir, &toml, port)
    }

    /// Writes `toml` to `dir/pgha.toml` and starts the daemon with it;
    /// returns once it says it serves clients. `port` is the `listen` port
    /// the file gives.
    pub fn start(dir: &Path, toml: &str, port: u16) -> Result<Self, Box<dyn std::error::Error>> {
        let config = dir.join("pgha.toml");
        std::fs::write(&config, toml)?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_pgha"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready, serving) = std::sync::mpsc::channel();
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("pgha| {line}");
                    if line.contains("serving clients on") {
                        let _ = ready.send(());
                    }
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            }
        });
        let mut pgha = Self {
            child: Some(child),
            port,
            log,
            config,
        };
        // Generous: a loaded CI machine; the daemon says so once it serves.
        if serving.recv_timeout(Duration::from_secs(60)).is_err() {
            let status = pgha.child.as_mut().map(|c| c.try_wait());
            return Err(
                format!("pgha did not start serving ({status:?}): {:?}", pgha.log()).into(),
            );
        }
        Ok(pgha)
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: Signal) -> Result<(), Box<dyn std::error::Error>> {
        let child = self.child.as_ref().ok_or("pgha is not running")?;
        kill(Pid::from_raw(child.id() as i32), signal)?;
        Ok(())
    }

    /// Waits (off the runtime's thread) for the daemon to exit.
    pub async fn wait(&mut self) -> Result<ExitStatus, Box<dyn std::error::Error>> {
        let mut child = self.child.take().ok_or("pgha is not running")?;
        let status = tokio::task::spawn_blocking(move || child.wait()).await??;
        Ok(status)
    }

    /// Lines logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until a logged line contains `text` (a step the daemon
    /// reports, not a timing: the deadline only keeps a broken daemon from
    /// hanging the test).
    pub async fn wait_for_log(&self, text: &str) -> Result<String, Box<dyn std::error::Error>> {
        for _ in 0..600 {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(text)) {
                return Ok(line);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("pgha never logged {text:?}: {:?}", self.log()).into())
    }

    /// A client connection through the daemon.
    pub async fn client(&self, user: &str, db: &str) -> Result<Client, tokio_postgres::Error> {
        connect(self.port, user, db).await
    }
}

impl Drop for Pgha {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client connection on `port`.
pub async fn connect(port: u16, user: &str, db: &str) -> Result<Client, tokio_postgres::Error> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} dbname={db} connect_timeout=10"),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(c)
}

/// The first column of a simple query's rows, as text.
pub async fn column(c: &Client, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(c.simple_query(sql)
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect())
}

/// The SQLSTATE of a driver error, if the server (or pgha) sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_string())
}

/// A client connection on `port` whose connection task is kept: its result
/// says how the server (or pgha) ended the session, e.g. a `FATAL` sent
/// while no query was running.
pub async fn connect_watched(
    port: u16,
    user: &str,
) -> Result<
    (
        Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ),
    tokio_postgres::Error,
> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} dbname=postgres connect_timeout=10"),
        NoTls,
    )
    .await?;
    Ok((c, tokio::spawn(conn)))
}

/// How a watched connection ended (see [`connect_watched`]): the SQLSTATE
/// of the error that ended it, `None` for a clean end.
pub async fn ended_with(
    conn: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    // Bounded only so that a daemon that never ends the session fails the
    // test instead of hanging it.
    let ended = tokio::time::timeout(Duration::from_secs(60), conn).await??;
    Ok(ended
        .err()
        .map(|e| sqlstate(&e).unwrap_or_else(|| e.to_string())))
}

/// What `pgha-ctl ARGS` printed on stdout, and its exit status.
pub async fn ctl(args: &[&str]) -> Result<(String, Option<i32>), Box<dyn std::error::Error>> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pgha-ctl"))
            .args(&args)
            .env_remove("PGHA_HOST")
            .env_remove("PGHA_PORT")
            .env_remove("PGHA_USER")
            .stdin(Stdio::null())
            .output()
    })
    .await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stderr.is_empty() {
        eprintln!("pgha-ctl stderr: {stderr}");
    }
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.status.code(),
    ))
}
