//! Client authentication through the proxy with a real driver: each
//! outcome and its SQLSTATE.

use std::sync::Arc;

use pgha_core::testing::PgCluster;
use pgha_proxy::auth::{AuthFile, HbaRules, ScramVerifier};
use pgha_proxy::{ClientAuth, Proxy, ProxyConfig, ServerAuth};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

type R = Result<(), Box<dyn std::error::Error>>;

const HBA: &str = "
host all mallory 0.0.0.0/0 reject
host all bob     0.0.0.0/0 md5
host all carol   0.0.0.0/0 password
host all all     0.0.0.0/0 scram-sha-256
";

async fn start(
    cluster: &PgCluster,
) -> Result<(u16, watch::Sender<Arc<pgha_core::Topology>>), Box<dyn std::error::Error>> {
    start_with(cluster, None).await
}

async fn start_with(
    cluster: &PgCluster,
    auth_query: Option<&str>,
) -> Result<(u16, watch::Sender<Arc<pgha_core::Topology>>), Box<dyn std::error::Error>> {
    let verifier = ScramVerifier::from_password("alice-secret", b"0123456789abcdef");
    let users =
        format!("\"alice\" \"{verifier}\"\n\"bob\" \"bob-secret\"\n\"carol\" \"carol-secret\"\n");
    let client_auth = ClientAuth {
        hba: HbaRules::parse(HBA, "test-hba").map_err(|e| format!("{e:?}"))?,
        users: AuthFile::parse(&users, "test-users").map_err(|e| format!("{e:?}"))?,
    };
    let config = ProxyConfig {
        client_auth: Some(client_auth),
        // The servers know only postgres (trust); clients are checked here.
        server_auth: ServerAuth {
            user: Some("postgres".into()),
            password: None,
        },
        auth_query: auth_query.map(str::to_string),
        ..ProxyConfig::default()
    };
    let (tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        Proxy::new(config, topology)
            .serve(listener, std::future::pending())
            .await
    });
    Ok((port, tx))
}

async fn login(port: u16, user: &str, password: &str) -> Result<(), tokio_postgres::Error> {
    let conninfo =
        format!("host=127.0.0.1 port={port} user={user} password={password} dbname=postgres");
    let (client, conn) = tokio_postgres::connect(&conninfo, NoTls).await?;
    tokio::spawn(conn);
    client.simple_query("SELECT 1").await.map(drop)
}

#[tokio::test]
async fn each_authentication_outcome_has_its_sqlstate() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (port, _keep) = start(&cluster).await?;
    // SCRAM-SHA-256 against a stored verifier (no plaintext needed).
    login(port, "alice", "alice-secret").await?;
    let wrong = login(port, "alice", "nope")
        .await
        .expect_err("wrong password");
    assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD));
    // An unknown user looks exactly like a wrong password.
    let unknown = login(port, "zed", "whatever")
        .await
        .expect_err("unknown user");
    assert_eq!(unknown.code(), Some(&SqlState::INVALID_PASSWORD));
    assert_eq!(
        unknown
            .as_db_error()
            .map(|e| e.message().replace("zed", "alice")),
        wrong.as_db_error().map(|e| e.message().to_string()),
    );
    // md5 and cleartext.
    login(port, "bob", "bob-secret").await?;
    let bad_md5 = login(port, "bob", "x")
        .await
        .expect_err("wrong md5 password");
    assert_eq!(bad_md5.code(), Some(&SqlState::INVALID_PASSWORD));
    login(port, "carol", "carol-secret").await?;
    // An hba reject.
    let rejected = login(port, "mallory", "x").await.expect_err("rejected");
    assert_eq!(
        rejected.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
    Ok(())
}

#[tokio::test]
async fn auth_query_finds_users_missing_from_the_auth_file_on_the_primary() -> R {
    let cluster = PgCluster::builder().start().await?;
    // PostgreSQL 15 stores a SCRAM verifier for this password.
    cluster
        .primary()
        .execute("CREATE ROLE dave LOGIN PASSWORD 'dave-secret'")
        .await?;
    let query = "SELECT rolpassword FROM pg_authid WHERE rolname = $1";
    let (port, _keep) = start_with(&cluster, Some(query)).await?;
    login(port, "dave", "dave-secret").await?;
    let wrong = login(port, "dave", "nope")
        .await
        .expect_err("wrong password");
    assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD));
    // Not in the file and not on the server: an unknown user, as before.
    let unknown = login(port, "nobody", "x").await.expect_err("unknown user");
    assert_eq!(unknown.code(), Some(&SqlState::INVALID_PASSWORD));
    // Users of the auth file are still checked against the file.
    login(port, "alice", "alice-secret").await?;
    // Without auth_query the same user is unknown.
    let (plain, _keep2) = start(&cluster).await?;
    let refused = login(plain, "dave", "dave-secret")
        .await
        .expect_err("not in the file");
    assert_eq!(refused.code(), Some(&SqlState::INVALID_PASSWORD));
    Ok(())
}
