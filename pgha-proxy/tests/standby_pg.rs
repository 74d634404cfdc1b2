//! Reads and standbys that fall behind or stop answering, with real
//! servers behind the proxy and a real monitor probing them.

use std::time::Duration;

use pgha_core::testing::PgCluster;
use pgha_core::{
    ClusterMonitor, DefaultPolicy, Lsn, MonitorConfig, MonitorHandle, NodeId, Topology,
};
use pgha_proxy::ProxyConfig;
use tokio::sync::oneshot;

type R = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::{client, first_column, reads_to_standbys, start_proxy, start_proxy_hinting};

/// A monitor deciding by `policy` and probing `cluster` every 200 ms
/// (reads weighted to the standbys only, so a test sees where each read
/// lands); stops when the sender is dropped.
async fn monitor(
    cluster: &PgCluster,
    policy: DefaultPolicy,
) -> Result<(MonitorHandle, oneshot::Sender<()>), pgha_core::Error> {
    let (monitor, handle) = ClusterMonitor::builder(reads_to_standbys(cluster.topology()))
        .policy(policy)
        .config(MonitorConfig {
            probe_interval: Duration::from_millis(200),
            probe_timeout: Duration::from_millis(500),
            ..MonitorConfig::default()
        })
        .build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(monitor.run(async {
        let _ = stopped.await;
    }));
    // Reads need a probed standby with a known position.
    handle
        .wait_for(Duration::from_secs(30), |t| {
            t.nodes().iter().all(|n| n.in_recovery.is_some())
        })
        .await?;
    Ok((handle, stop))
}

/// Which server answered a read, and what it saw: (in recovery, rows of
/// `t`), from a fresh client each time (nothing pins it).
async fn read(port: u16) -> Result<(String, String), tokio_postgres::Error> {
    let c = client(port).await?;
    let rows = c
        .simple_query("SELECT pg_is_in_recovery()::text || ' ' || (SELECT count(*) FROM t)")
        .await?;
    let answer = first_column(rows).into_iter().next().unwrap_or_default();
    let (recovery, count) = answer.split_once(' ').unwrap_or(("?", "?"));
    Ok((recovery.to_string(), count.to_string()))
}

/// The monitor has probed both nodes after `at` was written and
/// received: what the proxy routes by now includes that write.
async fn probed_past(handle: &MonitorHandle, standby: &NodeId, at: Lsn) -> R {
    handle
        .wait_for(Duration::from_secs(30), |t: &Topology| {
            let primary = t.primary().and_then(|p| p.current_lsn);
            let received = t.node(standby).and_then(|s| s.received_lsn);
            primary >= Some(at) && received >= Some(at)
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_standby_with_replay_paused_gets_no_reads_past_the_lag_limits() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let (primary, standby) = (cluster.primary(), &cluster.standbys()[0]);
    let standby_id = NodeId::new(standby.name());
    primary.execute("CREATE TABLE t (v text)").await?;
    let (handle, _stop) = monitor(&cluster, DefaultPolicy::default()).await?;
    let by_bytes = start_proxy(ProxyConfig::default(), handle.topology()).await;
    let by_time = start_proxy(
        ProxyConfig {
            max_standby_lag_bytes: None,
            max_standby_lag_time: Some(Duration::from_secs(1)),
            ..ProxyConfig::default()
        },
        handle.topology(),
    )
    .await;
    // Caught up (and idle): the standby serves the reads.
    for port in [by_bytes.port, by_time.port] {
        let mut served = None;
        for _ in 0..150 {
            served = Some(read(port).await?);
            if served.as_ref().is_some_and(|(r, _)| r == "true") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(served, Some(("true".into(), "0".into())));
    }

    standby.execute("SELECT pg_wal_replay_pause()").await?;
    // A little WAL, well under the byte limit, that the standby receives
    // and does not replay; its last replayed commit is over a second old.
    primary.execute("INSERT INTO t VALUES ('small')").await?;
    let small = primary.current_wal_lsn().await?.parse::<Lsn>()?;
    probed_past(&handle, &standby_id, small).await?;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    handle
        .wait_for(Duration::from_secs(30), |t| {
            t.node(&standby_id)
                .and_then(|n| n.lag_time)
                .is_some_and(|l| l > Duration::from_secs(1))
        })
        .await?;
    for _ in 0..20 {
        assert_eq!(
            read(by_time.port).await?,
            ("false".into(), "1".into()),
            "a standby replaying later than max_standby_lag_time gets no reads"
        );
    }

    // 8 MB the standby receives and does not replay: far past 1 MiB.
    primary
        .execute("INSERT INTO t SELECT repeat('x', 1000) FROM generate_series(1, 8000)")
        .await?;
    let big = primary.current_wal_lsn().await?.parse::<Lsn>()?;
    probed_past(&handle, &standby_id, big).await?;
    let status = pgha_proxy::http::topology_json(&handle.topology().borrow());
    let node = status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == standby.name()))
        .cloned()
        .unwrap_or_default();
    assert!(
        node["lag_bytes"].as_u64().is_some_and(|b| b > 8 << 20),
        "/status shows the unreplayed WAL: {node}"
    );
    assert_eq!(node["receive_lag_bytes"], 0, "everything was received");
    for _ in 0..20 {
        assert_eq!(
            read(by_bytes.port).await?,
            ("false".into(), "8001".into()),
            "a standby with more than max_standby_lag_bytes unreplayed gets no reads"
        );
    }

    // Replay resumed: it catches up and serves reads again (the last
    // megabyte of replay may serve the older count: within the limits).
    standby.execute("SELECT pg_wal_replay_resume()").await?;
    let caught_up = ("true".to_string(), "8001".to_string());
    let mut served = None;
    for _ in 0..150 {
        served = Some(read(by_bytes.port).await?);
        if served.as_ref() == Some(&caught_up) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, Some(caught_up));
    Ok(())
}

/// The value of the counter `name` with label `node` (and `also`, when
/// given) in the proxy's metrics; 0 while it has no series.
fn counter(metrics: &pgha_proxy::ProxyMetrics, name: &str, node: &str, also: &str) -> u64 {
    let node = format!("node=\"{node}\"");
    metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&node) && l.contains(also))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn reads_avoid_a_frozen_standby_after_one_connect_timeout_and_return_when_it_answers() -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let standby = &cluster.standbys()[0];
    cluster.primary().execute("CREATE TABLE t (v text)").await?;
    // The monitor never takes the node down here: only the proxy's own
    // suspicion keeps reads away from it.
    let never_down = DefaultPolicy {
        failures_before_down: u32::MAX,
        ..DefaultPolicy::default()
    };
    let (handle, _stop) = monitor(&cluster, never_down).await?;
    let config = ProxyConfig {
        standby_connect_timeout: Duration::from_millis(500),
        ..ProxyConfig::default()
    };
    let limits = config.lag_limits();
    let proxy = start_proxy_hinting(config, &handle).await;
    handle
        .wait_for(Duration::from_secs(30), |t| {
            pgha_proxy::route::read_candidates(t, limits).any(|n| n.id.as_str() == standby.name())
        })
        .await?;

    // Frozen before any read reached it: no pooled connection, every read
    // it is picked for must connect.
    standby.freeze()?;
    let readers = 8;
    let reads_each = 10;
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let port = proxy.port;
        tasks.push(tokio::spawn(async move {
            let c = client(port).await?;
            let mut served_by = Vec::new();
            for _ in 0..reads_each {
                let rows = c.simple_query("SELECT pg_is_in_recovery()::text").await?;
                served_by.extend(first_column(rows));
            }
            Ok::<_, tokio_postgres::Error>(served_by)
        }));
    }
    for task in tasks {
        let served_by = task.await??;
        assert_eq!(
            served_by,
            vec!["false".to_string(); reads_each],
            "every read answered, by the primary"
        );
    }
    let failed_connects = counter(
        &proxy.metrics,
        "pgha_server_connects_total",
        standby.name(),
        "error",
    );
    assert!(
        (1..=readers as u64).contains(&failed_connects),
        "reads stopped trying the frozen standby after it was suspected: \
         {failed_connects} failed connects for {} reads",
        readers * reads_each
    );
    assert_eq!(
        counter(
            &proxy.metrics,
            "pgha_node_suspicions_total",
            standby.name(),
            ""
        ),
        1
    );

    // Answering again: the monitor's next healthy probe lifts the suspicion.
    standby.thaw()?;
    let c = client(proxy.port).await?;
    let mut served_by = Vec::new();
    for _ in 0..150 {
        served_by = first_column(c.simple_query("SELECT pg_is_in_recovery()::text").await?);
        if served_by == ["true"] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_by, ["true"], "the standby serves reads again");
    Ok(())
}

/// A standby that hangs while reads run on it (pooled connections already
/// open): each read in flight fails once it has heard nothing for
/// `standby_read_timeout` (08006, the session goes on), the standby is
/// suspected, and the next reads are served by the primary — long before
/// any probe could take the node down (here none ever does).
#[tokio::test]
async fn reads_in_flight_on_a_hung_standby_fail_after_the_read_deadline_and_later_reads_avoid_it(
) -> R {
    let cluster = PgCluster::builder().standbys(1).start().await?;
    cluster.wait_streaming().await?;
    let standby = &cluster.standbys()[0];
    let never_down = DefaultPolicy {
        failures_before_down: u32::MAX,
        ..DefaultPolicy::default()
    };
    let (handle, _stop) = monitor(&cluster, never_down).await?;
    let config = ProxyConfig {
        pool_mode: pgha_proxy::PoolMode::Transaction,
        standby_read_timeout: Duration::from_millis(500),
        ..ProxyConfig::default()
    };
    let limits = config.lag_limits();
    let proxy = start_proxy_hinting(config, &handle).await;
    handle
        .wait_for(Duration::from_secs(30), |t| {
            pgha_proxy::route::read_candidates(t, limits).any(|n| n.id.as_str() == standby.name())
        })
        .await?;
    let readers = 4;
    let mut clients = Vec::new();
    for _ in 0..readers {
        let c = client(proxy.port).await?;
        // Until the standby has served this client once (reads are shared
        // by weight): its pool then holds open connections.
        for _ in 0..100 {
            let rows = c.simple_query("SELECT pg_is_in_recovery()::text").await?;
            if first_column(rows) == ["true"] {
                break;
            }
        }
        clients.push(c);
    }
    standby.freeze()?;
    let mut tasks = Vec::new();
    for c in clients {
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for _ in 0..10 {
                match c.simple_query("SELECT pg_is_in_recovery()::text").await {
                    Ok(rows) => outcomes.extend(first_column(rows)),
                    Err(e) => outcomes.push(e.code().map_or("none", |c| c.code()).to_string()),
                }
            }
            outcomes
        }));
    }
    let mut failed = 0;
    for task in tasks {
        let outcomes = tokio::time::timeout(Duration::from_secs(60), task).await??;
        // At most the reads in flight when it hung fail, with 08006; then
        // the primary answers, on the same client connection.
        let errors: Vec<_> = outcomes.iter().filter(|o| *o != "false").collect();
        assert!(
            errors.iter().all(|e| *e == "08006") && errors.len() <= 1,
            "{outcomes:?}"
        );
        assert_eq!(outcomes.last().map(String::as_str), Some("false"));
        failed += errors.len();
    }
    assert!(failed >= 1, "a read was in flight on the hung standby");
    assert_eq!(
        counter(
            &proxy.metrics,
            "pgha_node_suspicions_total",
            standby.name(),
            ""
        ),
        1
    );
    standby.thaw()?;
    Ok(())
}
