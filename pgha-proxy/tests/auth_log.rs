//! Refused clients are visible at the default log level (WARN) with who
//! they said they were, never with their password, and are counted.
//! Its own test binary: it installs the process's tracing subscriber.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use pgha_core::{NodeState, Role, Topology};
use pgha_proxy::auth::{AuthFile, HbaRules, ScramVerifier};
use pgha_proxy::{ClientAuth, ProxyConfig};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_postgres::NoTls;

type R = Result<(), Box<dyn std::error::Error>>;

mod common;

const HBA: &str = "
host all mallory 127.0.0.1/32 reject
host all carol   127.0.0.1/32 password
host all all     127.0.0.1/32 scram-sha-256
";

/// What the proxy logged, every level, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        log.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        let log = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&log).into_owned()
    }

    /// The WARN lines.
    fn warnings(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(" WARN "))
            .map(str::to_string)
            .collect()
    }
}

async fn login(port: u16, user: &str, password: &str) -> Option<String> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={user} password={password} dbname=appdb connect_timeout=10"
    );
    match tokio_postgres::connect(&conninfo, NoTls).await {
        Ok(_) => None,
        Err(e) => e.code().map(|c| c.code().to_string()),
    }
}

/// Offers a SASL "mechanism" that is really a password, as a confused
/// client might; returns what the proxy answered, as text.
async fn sasl_with_a_password_for_mechanism(
    port: u16,
    secret: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut buf = BytesMut::new();
    frontend::startup_message([("user", "alice"), ("database", "appdb")], &mut buf)?;
    s.write_all(&buf).await?;
    // AuthenticationSASL: R, length, 10, mechanisms.
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    s.read_exact(&mut body).await?;
    let mut initial = secret.as_bytes().to_vec();
    initial.push(0);
    initial.extend_from_slice(&(-1i32).to_be_bytes());
    let mut msg = vec![b'p'];
    msg.extend_from_slice(&((initial.len() + 4) as u32).to_be_bytes());
    msg.extend_from_slice(&initial);
    s.write_all(&msg).await?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn failures(metrics: &pgha_proxy::ProxyMetrics, reason: &str) -> String {
    let series = format!("pgha_client_auth_failures_total{{reason=\"{reason}\"}} ");
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&series).map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test]
async fn refused_clients_are_logged_at_warn_with_who_they_claim_to_be_never_the_password() -> R {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("pgha_proxy=trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .map_err(|e| format!("{e}"))?;
    let verifier = ScramVerifier::from_password("alice-secret", b"0123456789abcdef");
    let users = format!("\"alice\" \"{verifier}\"\n\"carol\" \"carol-secret\"\n");
    let config = ProxyConfig {
        client_auth: Some(ClientAuth {
            hba: HbaRules::parse(HBA, "test-hba").map_err(|e| format!("{e:?}"))?,
            users: AuthFile::parse(&users, "test-users").map_err(|e| format!("{e:?}"))?,
        }),
        ..ProxyConfig::default()
    };
    // Nobody gets past authentication: no server is needed.
    let nowhere = Topology::new([NodeState::new("p", Role::Primary, "127.0.0.1", 1)]);
    let (_tx, topology) = watch::channel(Arc::new(nowhere));
    let proxy = common::start_proxy(config, topology).await;

    assert_eq!(
        login(proxy.port, "alice", "guess-scram-1").await.as_deref(),
        Some("28P01")
    );
    assert_eq!(
        login(proxy.port, "carol", "guess-clear-2").await.as_deref(),
        Some("28P01")
    );
    assert_eq!(
        login(proxy.port, "mallory", "guess-hba-3").await.as_deref(),
        Some("28000")
    );
    let answer = sasl_with_a_password_for_mechanism(proxy.port, "guess-mech-4").await?;
    assert!(answer.contains("28000"), "{answer:?}");
    assert!(
        !answer.contains("guess-mech-4"),
        "the mechanism is not echoed: {answer:?}"
    );
    // A startup packet of an unknown protocol version.
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
    s.write_all(&[0, 0, 0, 8, 0, 9, 0, 9]).await?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;

    let warnings = captured.warnings();
    let refused = |user: &str, reason: &str| {
        warnings.iter().any(|l| {
            l.contains("client refused")
                && l.contains("peer=127.0.0.1:")
                && l.contains(&format!("user=\"{user}\""))
                && l.contains("database=\"appdb\"")
                && l.contains(&format!("reason=\"{reason}\""))
        })
    };
    assert!(refused("alice", "password"), "{warnings:#?}");
    assert!(refused("carol", "password"), "{warnings:#?}");
    assert!(refused("mallory", "hba_reject"), "{warnings:#?}");
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("client refused") && l.contains("reason=\"protocol\"")),
        "{warnings:#?}"
    );
    let everything = captured.text();
    for secret in [
        "guess-scram-1",
        "guess-clear-2",
        "guess-hba-3",
        "guess-mech-4",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} logged:\n{everything}"
        );
    }
    // The unsupported SASL mechanism counts as a password failure (the
    // client gets the same class of answer).
    assert_eq!(failures(&proxy.metrics, "password"), "3");
    assert_eq!(failures(&proxy.metrics, "hba_reject"), "1");
    assert_eq!(failures(&proxy.metrics, "protocol"), "1");
    Ok(())
}
