//! TLS from the proxy to PostgreSQL, against a real server with `ssl = on`
//! and a certificate from rcgen.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::{PgCluster, PgNode};
use pgha_proxy::{ProxyConfig, ServerTls};
use tokio::sync::watch;

type R = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::{client, start_proxy};

/// Gives `node` a certificate for 127.0.0.1 and turns `ssl` on; returns
/// the certificate's PEM file, to trust.
async fn enable_ssl(node: &PgNode, dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
    let data = node.data_dir();
    let (cert, key) = (data.join("server.crt"), data.join("server.key"));
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.signing_key.serialize_pem())?;
    // PostgreSQL reads them as its own user and wants a private key.
    let user = node.run_as();
    for file in [&cert, &key] {
        std::os::unix::fs::chown(file, Some(user.uid), Some(user.gid))?;
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    node.execute("ALTER SYSTEM SET ssl = on").await?;
    node.execute("SELECT pg_reload_conf()").await?;
    // The reload is asynchronous: wait until new sessions see it.
    for _ in 0..100 {
        let row = node.connect().await?.query_one("SHOW ssl", &[]).await?;
        if row.get::<_, String>(0) == "on" {
            let trusted = dir.join("server-ca.crt");
            std::fs::write(&trusted, made.cert.pem())?;
            return Ok(trusted);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("ssl stayed off".into())
}

/// Whether the session the proxy gave `c` reaches its server over TLS.
async fn server_side_ssl(c: &tokio_postgres::Client) -> Result<bool, tokio_postgres::Error> {
    let row = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

fn config(server_tls: ServerTls) -> ProxyConfig {
    ProxyConfig {
        server_tls: Some(server_tls),
        no_primary_wait: Duration::from_millis(300),
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn the_proxy_reaches_postgresql_over_verified_tls() -> R {
    let cluster = PgCluster::builder().start().await?;
    let dir = tempfile::tempdir()?;
    let ca = enable_ssl(cluster.primary(), dir.path()).await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));

    let proxy = start_proxy(config(ServerTls::verify_full(&ca)?), topology.clone()).await;
    let c = client(proxy.port).await?;
    assert!(server_side_ssl(&c).await?, "the server connection is plain");

    // Without TLS to the servers the same check says so: it can fail.
    let plain = start_proxy(ProxyConfig::default(), topology).await;
    let c = client(plain.port).await?;
    assert!(!server_side_ssl(&c).await?);
    Ok(())
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused_unless_only_encryption_is_asked() -> R {
    let cluster = PgCluster::builder().start().await?;
    let dir = tempfile::tempdir()?;
    enable_ssl(cluster.primary(), dir.path()).await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));

    // Trusting another certificate: the server is not who it should be.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
    let other_ca = dir.path().join("other.crt");
    std::fs::write(&other_ca, other.cert.pem())?;
    let proxy = start_proxy(config(ServerTls::verify_full(&other_ca)?), topology.clone()).await;
    assert!(
        client(proxy.port).await.is_err(),
        "an unverified server was used"
    );

    // sslmode=require-like: encrypted, whoever the certificate names.
    let proxy = start_proxy(config(ServerTls::encrypt_only(true)?), topology).await;
    let c = client(proxy.port).await?;
    assert!(server_side_ssl(&c).await?);
    Ok(())
}

#[tokio::test]
async fn a_server_without_tls_is_refused_when_required_and_used_when_preferred() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));

    let proxy = start_proxy(config(ServerTls::encrypt_only(true)?), topology.clone()).await;
    assert!(client(proxy.port).await.is_err(), "a plain server was used");

    let proxy = start_proxy(config(ServerTls::encrypt_only(false)?), topology).await;
    let c = client(proxy.port).await?;
    assert!(!server_side_ssl(&c).await?);
    Ok(())
}
