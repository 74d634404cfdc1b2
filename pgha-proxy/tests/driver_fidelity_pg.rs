//! What a driver relies on through pooled server connections, as the
//! client sees it: its statement names in SQL, a new Parse after a schema
//! change, COPY in both directions, a cancel that reaches only its own
//! query, and nothing of one client's session reaching the next.

use std::sync::Arc;
use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_proxy::ProxyConfig;
use tokio::sync::watch;

mod common;
use common::{client, first_column, start_proxy, transaction_mode};

type R = Result<(), Box<dyn std::error::Error>>;

/// Transaction pooling: a client's cancel reaches only a request of its
/// own, never the query of the client that took its server connection
/// after it.
#[tokio::test]
async fn a_cancel_never_reaches_another_clients_query_on_a_shared_connection() -> R {
    use common::wire::Wire;
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(transaction_mode(1), topology).await;
    let mut a = Wire::connect(proxy.port).await?;
    a.query("SELECT 1").await?;
    a.until_ready().await?;
    let (a_pid, a_secret) = a.key.ok_or("no key")?;
    // B now runs on the one server connection A used.
    let mut b = Wire::connect(proxy.port).await?;
    b.query("SELECT 'b done' FROM pg_sleep(1)").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut cancel = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port)).await?;
    let mut request = 16u32.to_be_bytes().to_vec();
    request.extend_from_slice(&80877102u32.to_be_bytes());
    request.extend_from_slice(&a_pid.to_be_bytes());
    request.extend_from_slice(&a_secret.to_be_bytes());
    tokio::io::AsyncWriteExt::write_all(&mut cancel, &request).await?;
    let got = tokio::time::timeout(Duration::from_secs(20), b.until_ready()).await??;
    let tags: Vec<u8> = got.iter().map(|m| m.0).collect();
    assert_eq!(tags, b"TDCZ", "B's query ran to its end: {got:?}");
    Ok(())
}

/// After a schema change, a statement's cached plan fails (as on
/// PostgreSQL); the client's new Parse of the same text recovers, as on
/// PostgreSQL, though the proxy shares statements by their text.
#[tokio::test]
async fn a_new_parse_after_a_schema_change_is_prepared_again_on_the_server() -> R {
    use common::wire::{message, Wire};
    let cluster = PgCluster::builder().start().await?;
    cluster
        .primary()
        .execute("CREATE TABLE tab1 (a int, b int); INSERT INTO tab1 VALUES (1, 2)")
        .await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(transaction_mode(1), topology).await;
    let mut c = Wire::connect(proxy.port).await?;
    let run = |name: &str| {
        let mut out = message(b'B', format!("\0{name}\0\0\0\0\0\0\0").as_bytes());
        out.extend(message(b'E', b"\0\0\0\0\0"));
        out.extend(message(b'S', b""));
        out
    };
    let tags = |got: &[common::wire::Message]| got.iter().map(|m| m.0).collect::<Vec<u8>>();
    c.send(&message(b'P', b"s1\0SELECT * FROM tab1\0\0\0"))
        .await?;
    c.send(&run("s1")).await?;
    assert_eq!(tags(&c.until_ready().await?), b"12DCZ");
    cluster
        .primary()
        .execute("ALTER TABLE tab1 ALTER b TYPE text")
        .await?;
    c.send(&run("s1")).await?;
    assert_eq!(tags(&c.until_ready().await?), b"EZ", "as on PostgreSQL");
    c.send(&message(b'P', b"s2\0SELECT * FROM tab1\0\0\0"))
        .await?;
    c.send(&run("s2")).await?;
    let got = c.until_ready().await?;
    assert_eq!(tags(&got), b"12DCZ", "{got:?}");
    Ok(())
}

/// Transaction pooling: what one client's transaction leaves in the server
/// session (a temp table with its rows, a SET) never reaches the client
/// that gets the connection next.
#[tokio::test]
async fn a_clients_temp_table_and_settings_never_reach_the_next_client() -> R {
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let proxy = start_proxy(transaction_mode(1), topology).await;
    let a = client(proxy.port).await?;
    a.batch_execute("CREATE TEMP TABLE leak (v text); INSERT INTO leak VALUES ('secret')")
        .await?;
    a.batch_execute("SET search_path TO nowhere").await?;
    let b = client(proxy.port).await?;
    let seen = b.simple_query("SELECT v FROM leak").await;
    let e = seen.expect_err("another client's temp table is not there");
    assert_eq!(e.code().map(|c| c.code()), Some("42P01"));
    assert_eq!(
        first_column(b.simple_query("SHOW search_path").await?),
        ["\"$user\", public"]
    );
    // Plain transactions keep their connection's cached statements.
    let s = b.prepare("SELECT 1").await?;
    for _ in 0..3 {
        assert_eq!(b.query_one(&s, &[]).await?.get::<_, i32>(0), 1);
    }
    Ok(())
}

/// A driver's COPY in both directions (tokio-postgres: prepared by name,
/// then Bind/Execute/Sync before the data), in both pool modes, and the
/// statements after it.
#[tokio::test]
async fn a_drivers_copy_in_and_out_work_in_both_modes() -> R {
    use futures_util::SinkExt;
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    for (i, config) in [ProxyConfig::default(), transaction_mode(2)]
        .into_iter()
        .enumerate()
    {
        let proxy = start_proxy(config, topology.clone()).await;
        let c = client(proxy.port).await?;
        let table = format!("copied{i}");
        c.batch_execute(&format!("CREATE TABLE {table} (id int, name text)"))
            .await?;
        let sink = c.copy_in(&format!("COPY {table} FROM STDIN")).await?;
        let mut sink = std::pin::pin!(sink);
        for line in ["1\tjim\n", "2\tjoe\n"] {
            sink.send(bytes::Bytes::from(line)).await?;
        }
        assert_eq!(sink.as_mut().finish().await?, 2);
        let rows = c
            .query(&format!("SELECT count(*) FROM {table}"), &[])
            .await?;
        assert_eq!(rows[0].get::<_, i64>(0), 2);
        let out = c.copy_out(&format!("COPY {table} TO STDOUT")).await?;
        let mut out = std::pin::pin!(out);
        let mut text = Vec::new();
        while let Some(chunk) =
            std::future::poll_fn(|cx| futures_util::Stream::poll_next(out.as_mut(), cx)).await
        {
            text.extend_from_slice(&chunk?);
        }
        assert_eq!(String::from_utf8_lossy(&text), "1\tjim\n2\tjoe\n");
        assert_eq!(first_column(c.simple_query("SELECT 1").await?), ["1"]);
    }
    Ok(())
}

/// The SQL a driver sends about the statements it prepared through the
/// protocol works as on PostgreSQL: in session mode by the client's own
/// names on the server; in transaction mode `DEALLOCATE` is answered by the
/// proxy, and `PREPARE`/`EXECUTE` are refused with a clear error.
#[tokio::test]
async fn statement_names_work_in_sql_as_the_client_gave_them() -> R {
    use common::wire::{error_field, message, Wire};
    let cluster = PgCluster::builder().start().await?;
    let (_tx, topology) = watch::channel(Arc::new(cluster.topology()));
    let parse = message(b'P', b"drv1\0SELECT 41 + 1\0\0\0");
    let bind = message(b'B', b"\0drv1\0\0\0\0\0\0\0");
    let execute = message(b'E', b"\0\0\0\0\0");
    let sync = message(b'S', b"");
    let run = [bind.clone(), execute.clone(), sync.clone()].concat();
    let tags = |got: &[common::wire::Message]| got.iter().map(|m| m.0).collect::<Vec<u8>>();
    let code = |got: &[common::wire::Message]| {
        got.iter()
            .find(|m| m.0 == b'E')
            .and_then(|m| error_field(&m.1, b'C'))
    };

    let session = start_proxy(ProxyConfig::default(), topology.clone()).await;
    let mut c = Wire::connect(session.port).await?;
    c.send(&[parse.clone(), sync.clone()].concat()).await?;
    assert_eq!(tags(&c.until_ready().await?), b"1Z");
    c.query("EXECUTE drv1").await?;
    let got = c.until_ready().await?;
    assert_eq!(
        tags(&got),
        b"TDCZ",
        "the server knows the client's name: {got:?}"
    );
    c.query("DEALLOCATE drv1").await?;
    assert_eq!(tags(&c.until_ready().await?), b"CZ");
    c.send(&run).await?;
    assert_eq!(code(&c.until_ready().await?).as_deref(), Some("26000"));

    let pooled = start_proxy(transaction_mode(2), topology).await;
    let mut c = Wire::connect(pooled.port).await?;
    c.send(&[parse.clone(), run.clone()].concat()).await?;
    assert_eq!(tags(&c.until_ready().await?), b"12DCZ");
    c.query("DEALLOCATE drv1").await?;
    let got = c.until_ready().await?;
    assert_eq!(tags(&got), b"CZ", "answered by the proxy");
    assert_eq!(&got[0].1[..], b"DEALLOCATE\0");
    c.send(&run).await?;
    assert_eq!(
        code(&c.until_ready().await?).as_deref(),
        Some("26000"),
        "gone"
    );
    c.query("DEALLOCATE never_prepared").await?;
    assert_eq!(code(&c.until_ready().await?).as_deref(), Some("26000"));
    c.query("DEALLOCATE ALL").await?;
    assert_eq!(tags(&c.until_ready().await?), b"CZ");
    for sql in ["PREPARE p AS SELECT 1", "EXECUTE p"] {
        c.query(sql).await?;
        assert_eq!(
            code(&c.until_ready().await?).as_deref(),
            Some("0A000"),
            "{sql}"
        );
    }
    // The session goes on.
    c.query("SELECT 1").await?;
    assert_eq!(tags(&c.until_ready().await?), b"TDCZ");
    Ok(())
}
