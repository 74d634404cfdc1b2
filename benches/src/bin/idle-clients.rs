//! `idle-clients`: opens N client connections to a PostgreSQL-protocol
//! server (pgha), takes each through startup and authentication to its
//! first ReadyForQuery, keeps them all open and idle, and reports how much
//! the server process's resident memory (`VmRSS` in `/proc/PID/status`)
//! grew per idle client.
//!
//! Authentication must be trust (the proxy's default, no `client_auth`):
//! a client asked for a password stops with an error.
//!
//! `benches/idle-clients.sh` starts PostgreSQL and pgha and runs this; run
//! by hand:
//!
//! ```text
//! idle-clients --addr 127.0.0.1:6432 --pid $(pgrep -n pgha) -n 50000
//! ```
//!
//! The open file limit (`ulimit -n`) of this process and of the server
//! must exceed N. More than `--per-source-ip` clients are spread over the
//! source addresses 127.0.0.1, 127.0.0.2, … so that no source address runs
//! out of ephemeral ports.
#![allow(clippy::print_stdout)] // a command-line tool talks on stdout

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Parser, Debug)]
#[command(
    name = "idle-clients",
    about = "Idle client connections and the server's memory per client"
)]
struct Args {
    /// Where the server (pgha) listens.
    #[arg(long, default_value = "127.0.0.1:6432")]
    addr: SocketAddr,
    /// How many idle clients to open.
    #[arg(short = 'n', long, default_value_t = 50_000)]
    clients: usize,
    /// The server's process id, whose VmRSS is read before and after.
    #[arg(long)]
    pid: Option<u32>,
    /// User name in the startup packet.
    #[arg(long, default_value = "postgres")]
    user: String,
    /// Database name in the startup packet.
    #[arg(long, default_value = "postgres")]
    database: String,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Clients per source address 127.0.0.x (the ephemeral port range of
    /// one address holds about 28,000).
    #[arg(long, default_value_t = 20_000)]
    per_source_ip: usize,
    /// Seconds to wait, all clients idle, before reading the RSS.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds one client may take from connect to ReadyForQuery.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

/// The startup packet (protocol 3.0).
fn startup_packet(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (k, v) in [
        ("user", user),
        ("database", database),
        ("application_name", "idle-clients"),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// Reads messages until ReadyForQuery; fails on an error or a request for
/// a password.
async fn until_ready(stream: &mut TcpStream) -> anyhow::Result<()> {
    loop {
        let tag = stream.read_u8().await.context("reading a message type")?;
        let len = stream
            .read_u32()
            .await
            .context("reading a message length")? as usize;
        if !(4..=1 << 20).contains(&len) {
            bail!("message {:?} of length {len}", tag as char);
        }
        let mut body = vec![0u8; len - 4];
        stream
            .read_exact(&mut body)
            .await
            .context("reading a message")?;
        match tag {
            b'Z' => return Ok(()),
            b'R' => {
                let code = body
                    .get(..4)
                    .map_or(-1, |c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                if code != 0 {
                    bail!("the server asks for authentication (code {code}); idle-clients needs trust");
                }
            }
            b'E' => {
                let text: Vec<String> = body
                    .split(|b| *b == 0)
                    .filter(|f| f.len() > 1 && matches!(f[0], b'M' | b'C'))
                    .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
                    .collect();
                bail!("server error: {}", text.join(" "));
            }
            _ => {} // ParameterStatus, BackendKeyData, NoticeResponse
        }
    }
}

async fn open_client(
    addr: SocketAddr,
    source: Option<Ipv4Addr>,
    packet: Arc<Vec<u8>>,
    timeout: Duration,
) -> anyhow::Result<TcpStream> {
    let connect = async {
        let socket = TcpSocket::new_v4().context("socket")?;
        if let Some(ip) = source {
            socket
                .bind(SocketAddrV4::new(ip, 0).into())
                .with_context(|| format!("binding to {ip}"))?;
        }
        let mut stream = socket
            .connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.write_all(&packet).await.context("sending startup")?;
        until_ready(&mut stream).await?;
        anyhow::Ok(stream)
    };
    tokio::time::timeout(timeout, connect)
        .await
        .context("no ReadyForQuery in time")?
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// A simple query on an open idle client, answered up to ReadyForQuery.
async fn ping(stream: &mut TcpStream) -> anyhow::Result<()> {
    let sql = b"SELECT 1\0";
    let mut m = vec![b'Q'];
    m.extend_from_slice(&((sql.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(sql);
    stream.write_all(&m).await?;
    until_ready(stream).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let packet = Arc::new(startup_packet(&args.user, &args.database));
    let timeout = Duration::from_secs_f64(args.timeout);
    let per_ip = args.per_source_ip.max(1);
    let source = |i: usize| -> Option<Ipv4Addr> {
        // One source address needs no bind; more are 127.0.0.1, .2, …
        (args.clients > per_ip).then(|| Ipv4Addr::new(127, 0, 0, 1 + (i / per_ip) as u8))
    };
    if args.clients.div_ceil(per_ip) > 250 {
        bail!("too many clients for the source addresses 127.0.0.1-250");
    }

    // Warm up: the server's pools, buffers and allocator arenas take
    // their first memory; what is measured is what idle clients add.
    let mut warm = Vec::new();
    for _ in 0..8 {
        warm.push(open_client(args.addr, None, packet.clone(), timeout).await?);
    }
    for s in &mut warm {
        ping(s).await?;
    }
    drop(warm);
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let before = args.pid.map(rss_kib).transpose()?;

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..args.clients {
        let permit = gate.clone().acquire_owned().await?;
        let packet = packet.clone();
        let src = source(i);
        let addr = args.addr;
        tasks.spawn(async move {
            let r = open_client(addr, src, packet, timeout).await;
            drop(permit);
            r
        });
    }
    let mut open = Vec::with_capacity(args.clients);
    let mut failed = 0usize;
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok(s) => open.push(s),
            Err(e) => {
                failed += 1;
                if failed <= 5 {
                    eprintln!("idle-clients: a client failed: {e:#}");
                }
            }
        }
    }
    let took = started.elapsed();
    println!(
        "clients ready: {} of {} in {:.1} s ({:.0}/s), {} failed",
        open.len(),
        args.clients,
        took.as_secs_f64(),
        open.len() as f64 / took.as_secs_f64(),
        failed
    );
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    if let (Some(pid), Some(before)) = (args.pid, before) {
        let after = rss_kib(pid)?;
        let per = (after.saturating_sub(before) * 1024) as f64 / open.len().max(1) as f64;
        println!(
            "server RSS: {before} KiB before, {after} KiB with {} idle clients",
            open.len()
        );
        println!("bytes per idle client: {per:.0}");
    }
    // They are real sessions: the first, a middle and the last answer.
    let n = open.len();
    for i in [0, n / 2, n.saturating_sub(1)] {
        if let Some(s) = open.get_mut(i) {
            ping(s)
                .await
                .with_context(|| format!("client {i} no longer answers"))?;
        }
    }
    drop(open);
    if failed > 0 {
        bail!(
            "{failed} of {} clients did not get ReadyForQuery",
            args.clients
        );
    }
    Ok(())
}
