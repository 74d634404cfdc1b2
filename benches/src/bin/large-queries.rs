//! `large-queries`: pgha's memory while clients send very large queries.
//!
//! Starts a PostgreSQL server (the test harness's; as root it runs as
//! `postgres`) and the built `pgha run` binary in front of it, then
//! `--clients` clients at once each send `SELECT length('x…x')` with a
//! `--mib` MiB literal (written in 1 MiB pieces: the clients hold little).
//! Reports pgha's peak resident memory (VmHWM) before and after, and checks
//! every answer.
//!
//! ```text
//! cargo build --release -p pgha
//! cargo run --release -p pgha-benches --bin large-queries -- --pgha target/release/pgha
//! ```
#![allow(clippy::print_stdout)] // a command-line tool talks on stdout

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use pgha_core::testing::PgCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(
    name = "large-queries",
    about = "pgha's memory under very large queries"
)]
struct Args {
    /// The pgha binary to run.
    #[arg(long, default_value = "target/release/pgha")]
    pgha: PathBuf,
    /// Clients sending at once.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Size of each query's literal, in MiB.
    #[arg(long, default_value_t = 250)]
    mib: usize,
    /// pgha's pool mode.
    #[arg(long, default_value = "session")]
    pool_mode: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = PgCluster::builder().start().await?;
    let primary = cluster.primary();
    let port = free_port()?;
    let mut pgha = tokio::process::Command::new(&args.pgha)
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--node",
            &format!("db1={}:{}", primary.host(), primary.port()),
        ])
        .args(["--pool-mode", &args.pool_mode])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.pgha.display()))?;
    let pid = pgha.id().context("pgha's pid")?;
    let mut ready = false;
    for _ in 0..100 {
        if connect(port).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !ready {
        bail!("pgha did not accept clients");
    }
    let before = peak_rss(pid)?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.clients {
        let n = args.mib << 20;
        tasks.spawn(async move { long_query(port, n).await });
    }
    let mut ok = 0;
    while let Some(done) = tasks.join_next().await {
        let answer = done??;
        if answer != (args.mib << 20).to_string() {
            bail!("wrong answer: {answer}");
        }
        ok += 1;
    }
    let after = peak_rss(pid)?;
    println!(
        "{} clients × {} MiB queries through pgha ({}): {ok} answered right in {:.1?}; pgha peak RSS {:.1} MiB before, {:.1} MiB after",
        args.clients,
        args.mib,
        args.pool_mode,
        started.elapsed(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    let _ = pgha.kill().await;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmHWM")?;
    Ok(kb * 1024)
}

/// A logged-in raw connection (trust authentication).
async fn connect(port: u16) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut body = 196608u32.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0postgres\0database\0postgres\0\0");
    let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(&body);
    s.write_all(&startup).await?;
    loop {
        let (tag, _) = read_message(&mut s).await?;
        match tag {
            b'Z' => return Ok(s),
            b'E' => bail!("login refused"),
            _ => {}
        }
    }
}

async fn read_message(s: &mut TcpStream) -> anyhow::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    s.read_exact(&mut body).await?;
    Ok((head[0], body))
}

/// Sends `SELECT length('x…x')` with `n` x's in 1 MiB writes; the answer.
async fn long_query(port: u16, n: usize) -> anyhow::Result<String> {
    let mut s = connect(port).await?;
    let (start, end) = (&b"SELECT length('"[..], &b"')\0"[..]);
    let mut head = vec![b'Q'];
    head.extend_from_slice(&((4 + start.len() + n + end.len()) as u32).to_be_bytes());
    head.extend_from_slice(start);
    s.write_all(&head).await?;
    let piece = vec![b'x'; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(piece.len());
        s.write_all(&piece[..k]).await?;
        left -= k;
    }
    s.write_all(end).await?;
    let mut answer = None;
    loop {
        let (tag, body) = read_message(&mut s).await?;
        match tag {
            b'D' => {
                answer = body
                    .get(6..)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            }
            b'E' => bail!("error: {}", String::from_utf8_lossy(&body)),
            b'Z' => return answer.context("no row"),
            _ => {}
        }
    }
}
