//! Messages too long to hold are streamed through, not buffered: what
//! pgha holds stays bounded whatever its clients send.
//!
//! One test in its own binary: it reads this process's peak memory.

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_proxy::{PoolMode, ProxyConfig};
use tokio::sync::watch;

type R = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::start_proxy;
use common::wire::{error_field, message, Message, Wire};

/// Peak resident memory of this process so far, in bytes.
fn peak_rss() -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmHWM")?;
    Ok(kb * 1024)
}

/// Sends `SELECT length('x…x')` with `n` x's, written in 1 MiB pieces of
/// one buffer (the client holds little), and returns the answer.
async fn long_query(c: &mut Wire, n: usize) -> Result<Vec<Message>, Box<dyn std::error::Error>> {
    let (start, end) = (&b"SELECT length('"[..], &b"')\0"[..]);
    let len = 4 + start.len() + n + end.len();
    let mut head = vec![b'Q'];
    head.extend_from_slice(&(len as u32).to_be_bytes());
    head.extend_from_slice(start);
    c.send(&head).await?;
    let piece = vec![b'x'; 1 << 20];
    let mut left = n;
    while left > 0 {
        let k = left.min(piece.len());
        c.send(&piece[..k]).await?;
        left -= k;
    }
    c.send(end).await?;
    Ok(tokio::time::timeout(Duration::from_secs(120), c.until_ready()).await??)
}

fn data(got: &[Message]) -> Option<String> {
    let row = got.iter().find(|m| m.0 == b'D')?;
    Some(String::from_utf8_lossy(row.1.get(6..)?).into_owned())
}

#[tokio::test]
async fn large_messages_are_streamed_and_pgha_memory_stays_bounded() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let session = start_proxy(ProxyConfig::default(), topology.clone()).await;
    let pooled = start_proxy(
        ProxyConfig {
            pool_mode: PoolMode::Transaction,
            ..ProxyConfig::default()
        },
        topology,
    )
    .await;
    // Warm up (connections, pools), then the baseline.
    for port in [session.port, pooled.port] {
        let mut c = Wire::connect(port).await?;
        long_query(&mut c, 100_000).await?;
    }
    let before = peak_rss()?;
    let size = 40 << 20;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let port = if i % 2 == 0 {
            session.port
        } else {
            pooled.port
        };
        tasks.push(tokio::spawn(async move {
            let mut c = Wire::connect(port).await.map_err(|e| e.to_string())?;
            let got = long_query(&mut c, size).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(data(&got))
        }));
    }
    for task in tasks {
        assert_eq!(
            task.await??,
            Some(size.to_string()),
            "the server got it whole"
        );
    }
    // And as many rows that large coming back.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let port = if i % 2 == 0 {
            session.port
        } else {
            pooled.port
        };
        tasks.push(tokio::spawn(async move {
            let mut c = Wire::connect(port).await.map_err(|e| e.to_string())?;
            c.query(&format!("SELECT repeat('r', {size})"))
                .await
                .map_err(|e| e.to_string())?;
            let got = tokio::time::timeout(Duration::from_secs(120), c.until_ready_lean(64))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            let tags: Vec<(u8, usize)> = got.iter().map(|m| (m.0, m.1)).collect();
            Ok::<_, String>(tags)
        }));
    }
    for task in tasks {
        let tags = task.await??;
        let row = tags.iter().find(|t| t.0 == b'D').ok_or("no row")?;
        assert_eq!(
            row.1,
            size + 6,
            "the whole row: column count, length, value"
        );
        assert_eq!(tags.last().map(|t| t.0), Some(b'Z'));
    }
    let grew = peak_rss()?.saturating_sub(before);
    // 6 × 40 MiB went through each way; held whole they would be 240 MiB.
    assert!(
        grew < 48 << 20,
        "pgha's memory grew by {} MiB while streaming 2 × 240 MiB",
        grew >> 20
    );

    // A Bind with a big parameter, by name, in transaction pooling: the
    // statement name is translated in the streamed head.
    let mut c = Wire::connect(pooled.port).await?;
    c.send(&message(b'P', b"big\0SELECT length($1::text)\0\0\0"))
        .await?;
    c.send(&message(b'S', b"")).await?;
    let got = c.until_ready().await?;
    assert_eq!(got.iter().map(|m| m.0).collect::<Vec<_>>(), b"1Z");
    let value = vec![b'y'; 3 << 20];
    let mut bind = b"\0big\0\0\0\0\x01".to_vec();
    bind.extend_from_slice(&(value.len() as u32).to_be_bytes());
    bind.extend_from_slice(&value);
    bind.extend_from_slice(&[0, 0]);
    c.send(&message(b'B', &bind)).await?;
    c.send(&message(b'E', b"\0\0\0\0\0")).await?;
    c.send(&message(b'S', b"")).await?;
    let got = c.until_ready().await?;
    assert_eq!(
        data(&got),
        Some((3 << 20).to_string()),
        "{:?}",
        got.iter().map(|m| m.0).collect::<Vec<_>>()
    );

    // A named Parse too long to hold in transaction pooling: a clear error,
    // the session goes on.
    let mut text = b"huge\0SELECT '".to_vec();
    text.extend(std::iter::repeat_n(b'z', 1 << 20));
    text.extend_from_slice(b"'\0\0\0");
    c.send(&message(b'P', &text)).await?;
    c.send(&message(b'S', b"")).await?;
    let got = c.until_ready().await?;
    let error = got.iter().find(|m| m.0 == b'E').ok_or("no error")?;
    assert_eq!(error_field(&error.1, b'C').as_deref(), Some("54000"));
    assert_eq!(got.last().map(|m| m.0), Some(b'Z'));
    let got = long_query(&mut c, 10).await?;
    assert_eq!(data(&got).as_deref(), Some("10"));
    Ok(())
}
