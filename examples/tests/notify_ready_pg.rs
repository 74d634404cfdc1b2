//! `pgha run` under systemd's `Type=notify`: READY=1 arrives on
//! `$NOTIFY_SOCKET`, and by then clients get through the proxy to a real
//! PostgreSQL.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pgha_core::testing::PgCluster;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The daemon, killed when the test ends — also when it panics.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn pgha_run_tells_systemd_it_is_ready_once_clients_get_through() -> TestResult {
    let cluster = PgCluster::builder().start().await?;
    let primary = cluster.primary();
    let dir = tempfile::tempdir()?;
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    // Only so a daemon that never notifies fails the test instead of
    // hanging it; nothing is asserted about how long it took.
    socket.set_read_timeout(Some(Duration::from_secs(120)))?;

    let node = format!("pg0={}:{}", primary.host(), primary.port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgha"))
        .args(["run", "--listen", "127.0.0.1:0", "--node", &node])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let _daemon = Daemon(child);

    let mut buf = [0u8; 512];
    let received = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let n = socket.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .await??;
    assert_eq!(received, "READY=1");

    // The address it serves on (it chose the port).
    let addr = tokio::task::spawn_blocking(move || -> Option<String> {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("pgha: serving clients on ")
                    .map(str::to_owned)
            })
    })
    .await?
    .ok_or("pgha run printed no address")?;
    let (host, port) = addr.rsplit_once(':').ok_or("an address with a port")?;

    let conninfo = format!("host={host} port={port} user=postgres dbname=postgres");
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT pg_is_in_recovery(), 41 + 1", &[])
        .await?;
    assert!(!row.get::<_, bool>(0), "the proxy reached the primary");
    assert_eq!(row.get::<_, i32>(1), 42);
    Ok(())
}
