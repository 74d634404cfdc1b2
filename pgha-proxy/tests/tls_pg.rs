//! TLS between clients and the proxy, with real clients (psql, and
//! tokio-postgres over rustls) and a self-signed certificate from rcgen.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgha_core::testing::PgCluster;
use pgha_proxy::auth::{AuthFile, HbaRules};
use pgha_proxy::{ClientAuth, ProxyConfig, TlsConfig};
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;

type R = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::{client, start_proxy, start_proxy_with_unix};

/// A certificate for 127.0.0.1 and its key, as PEM files in `dir`.
struct TestCert {
    cert: PathBuf,
    key: PathBuf,
}

fn make_cert(dir: &Path) -> Result<TestCert, Box<dyn std::error::Error>> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
    let cert = dir.join("proxy.crt");
    let key = dir.join("proxy.key");
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.signing_key.serialize_pem())?;
    Ok(TestCert { cert, key })
}

fn tls_config(cert: &TestCert) -> Result<TlsConfig, pgha_proxy::TlsError> {
    TlsConfig::from_pem_files(&cert.cert, &cert.key)
}

/// A tokio-postgres client over rustls that trusts only `cert` and
/// checks the proxy's name against it (like libpq's verify-full).
async fn tls_client(
    port: u16,
    cert: &TestCert,
) -> Result<tokio_postgres::Client, Box<dyn std::error::Error>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert.cert)? {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=require connect_timeout=10"),
        tokio_postgres_rustls::MakeRustlsConnect::new(config),
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

/// psql's output for `commands`, with libpq's `PGSSLMODE` set.
async fn psql(
    cluster: &PgCluster,
    port: u16,
    env: &[(&str, &str)],
    commands: &[&str],
) -> Result<std::process::Output, std::io::Error> {
    let mut cmd = tokio::process::Command::new(cluster.primary().bins().bin("psql"));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-At"])
        .envs(env.iter().copied());
    for c in commands {
        cmd.args(["-c", c]);
    }
    cmd.output().await
}

#[tokio::test]
async fn clients_get_tls_when_they_ask_and_plain_text_when_they_do_not() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let dir = tempfile::tempdir()?;
    let cert = make_cert(dir.path())?;
    let config = ProxyConfig {
        tls: Some(tls_config(&cert)?),
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;

    // psql checks the certificate and the name in it, then reports TLS.
    let cert_path = cert.cert.display().to_string();
    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", cert_path.as_str()),
    ];
    let out = psql(&cluster, proxy.port, &env, &["\\conninfo", "SELECT 40 + 2"]).await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("SSL connection (protocol: TLSv1."),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l == "42"), "{stdout}");

    // tokio-postgres over rustls, both protocols.
    let c = tls_client(proxy.port, &cert).await?;
    let n: i32 = c.query_one("SELECT $1::int + 1", &[&41i32]).await?.get(0);
    assert_eq!(n, 42);

    // Plain clients are still served: TLS is optional.
    let plain = client(proxy.port).await?;
    let n: i32 = plain.query_one("SELECT 7", &[]).await?.get(0);
    assert_eq!(n, 7);
    let out = psql(
        &cluster,
        proxy.port,
        &[("PGSSLMODE", "disable")],
        &["\\conninfo"],
    )
    .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("SSL connection"), "{stdout}");
    Ok(())
}

#[tokio::test]
async fn without_tls_configured_sslmode_require_is_refused_by_the_client() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(ProxyConfig::default(), topology).await;
    let out = psql(
        &cluster,
        proxy.port,
        &[("PGSSLMODE", "require")],
        &["SELECT 1"],
    )
    .await?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server does not support SSL"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn hostssl_and_hostnossl_rules_see_whether_the_client_uses_tls() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let dir = tempfile::tempdir()?;
    let cert = make_cert(dir.path())?;
    let hba = HbaRules::parse(
        "hostnossl all all all reject\nhostssl all all all trust\n",
        "hba",
    )
    .map_err(|e| format!("{e:?}"))?;
    let config = ProxyConfig {
        tls: Some(tls_config(&cert)?),
        client_auth: Some(ClientAuth {
            hba,
            users: AuthFile::default(),
        }),
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;
    let err = client(proxy.port)
        .await
        .err()
        .ok_or("plain client let in")?;
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
    let c = tls_client(proxy.port, &cert).await?;
    assert_eq!(c.query_one("SELECT 1", &[]).await?.get::<_, i32>(0), 1);
    Ok(())
}

#[tokio::test]
async fn tls_required_refuses_plain_tcp_clients_but_not_local_ones() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let dir = tempfile::tempdir()?;
    let cert = make_cert(dir.path())?;
    let config = ProxyConfig {
        tls: Some(tls_config(&cert)?),
        tls_required: true,
        ..ProxyConfig::default()
    };
    let proxy = start_proxy_with_unix(config, topology).await;
    let err = client(proxy.port)
        .await
        .err()
        .ok_or("plain client let in")?;
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert!(message.is_some_and(|m| m.contains("tls_required")));

    let c = tls_client(proxy.port, &cert).await?;
    assert_eq!(c.query_one("SELECT 1", &[]).await?.get::<_, i32>(0), 1);

    let socket_dir = proxy.socket_dir.clone().ok_or("no socket directory")?;
    let (local, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=postgres dbname=postgres",
            socket_dir.display(),
            proxy.port
        ),
        tokio_postgres::NoTls,
    )
    .await?;
    tokio::spawn(conn);
    assert_eq!(local.query_one("SELECT 1", &[]).await?.get::<_, i32>(0), 1);
    Ok(())
}

/// An SSLRequest: length 8, code 1234.5679.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A StartupMessage for user postgres.
fn startup_message() -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    body.extend_from_slice(b"user\0postgres\0\0");
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

#[tokio::test]
async fn plain_text_sent_after_an_ssl_request_is_refused() -> R {
    let dir = tempfile::tempdir()?;
    let cert = make_cert(dir.path())?;
    let topology = pgha_core::Topology::new(Vec::new());
    let (_tx, topology) = watch::channel(Arc::new(topology));
    let config = ProxyConfig {
        tls: Some(tls_config(&cert)?),
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;

    // Without waiting for the answer, a StartupMessage in the same write:
    // it must not be taken as if it had come over TLS.
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
    let mut both = SSL_REQUEST.to_vec();
    both.extend_from_slice(&startup_message());
    s.write_all(&both).await?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await?;
    assert_eq!(reply.first(), Some(&b'E'), "{reply:?}");
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("08P01"), "{text}");
    assert!(
        text.contains("received unencrypted data after SSL request"),
        "{text}"
    );

    // The same request alone is accepted; garbage instead of a TLS
    // handshake closes that connection, and the proxy goes on serving.
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
    s.write_all(&SSL_REQUEST).await?;
    assert_eq!(s.read_u8().await?, b'S');
    s.write_all(&startup_message()).await?;
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest).await;
    assert!(!String::from_utf8_lossy(&rest).contains("postgres"));
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await?;
    s.write_all(&SSL_REQUEST).await?;
    assert_eq!(s.read_u8().await?, b'S');
    Ok(())
}

#[test]
fn unusable_tls_files_are_reported_by_name() -> R {
    let dir = tempfile::tempdir()?;
    let cert = make_cert(dir.path())?;
    let missing = dir.path().join("missing.crt");
    let err = TlsConfig::from_pem_files(&missing, &cert.key)
        .err()
        .ok_or("no error")?;
    assert!(err.to_string().contains("missing.crt"), "{err}");
    // A key file given as the certificate holds no certificate.
    let err = TlsConfig::from_pem_files(&cert.key, &cert.key)
        .err()
        .ok_or("no error")?;
    assert!(err.to_string().contains("proxy.key"), "{err}");
    // A certificate given as the key holds no key.
    let err = TlsConfig::from_pem_files(&cert.cert, &cert.cert)
        .err()
        .ok_or("no error")?;
    assert!(err.to_string().contains("proxy.crt"), "{err}");
    Ok(())
}
