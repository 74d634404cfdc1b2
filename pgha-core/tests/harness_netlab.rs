//! Network-namespace labs: hosts on a private bridge, partitions, dead
//! hosts. Needs root; skips loudly outside CI, fails in CI.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use pgha_core::testing::{require_root_or_skip, HarnessError, NetLab, NetnsTask, PgCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type R = Result<(), HarnessError>;

/// An echo server on `ip:7000` inside the host's namespace; returns once
/// it listens.
async fn echo_server(
    lab: &NetLab,
    host: &str,
    ip: Ipv4Addr,
) -> Result<NetnsTask<()>, HarnessError> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = lab.spawn(host, move || async move {
        let listener = TcpListener::bind((ip, 7000))
            .await
            .expect("bind in namespace");
        let _ = ready_tx.send(());
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })?;
    ready_rx.await.expect("echo server listening");
    Ok(task)
}

/// From `host`, can we reach `target:7000` and get an echo within 1 s?
async fn reaches(lab: &NetLab, host: &str, target: Ipv4Addr) -> bool {
    let task = lab
        .spawn(host, move || async move {
            let attempt = async {
                let mut s = TcpStream::connect(SocketAddr::from((target, 7000)))
                    .await
                    .ok()?;
                s.write_all(b"ping").await.ok()?;
                let mut buf = [0u8; 4];
                s.read_exact(&mut buf).await.ok()?;
                Some(&buf == b"ping")
            };
            tokio::time::timeout(Duration::from_secs(1), attempt)
                .await
                .ok()
                .flatten()
                .unwrap_or(false)
        })
        .expect("spawn in namespace");
    task.join().await.unwrap_or(false)
}

#[tokio::test]
async fn partition_blocks_traffic_between_two_hosts_and_heal_restores_it() -> R {
    if !require_root_or_skip("partition_blocks_traffic_between_two_hosts_and_heal_restores_it") {
        return Ok(());
    }
    let lab = NetLab::builder().hosts(["a", "b"]).build()?;
    let _server = echo_server(&lab, "a", lab.ip("a")).await?;
    assert!(
        reaches(&lab, "b", lab.ip("a")).await,
        "b reaches a before the partition"
    );
    lab.partition("a", "b")?;
    assert!(
        !reaches(&lab, "b", lab.ip("a")).await,
        "the partition blocks b → a"
    );
    assert!(
        reaches(&lab, "client", lab.ip("a")).await,
        "the client still reaches a"
    );
    lab.heal()?;
    assert!(reaches(&lab, "b", lab.ip("a")).await, "heal restores b → a");
    lab.isolate("a")?;
    assert!(
        !reaches(&lab, "client", lab.ip("a")).await,
        "isolate cuts the client too"
    );
    Ok(())
}

#[tokio::test]
async fn a_partition_covers_addresses_added_later_like_a_virtual_ip() -> R {
    if !require_root_or_skip("a_partition_covers_addresses_added_later_like_a_virtual_ip") {
        return Ok(());
    }
    let lab = NetLab::builder().hosts(["a", "b"]).build()?;
    let vip = lab.vip(0);
    lab.run(
        "a",
        &["ip", "addr", "add", &format!("{vip}/24"), "dev", "eth0"],
    )?;
    let _server = echo_server(&lab, "a", vip).await?;
    assert!(reaches(&lab, "b", vip).await);
    lab.partition("a", "b")?;
    assert!(
        !reaches(&lab, "b", vip).await,
        "the VIP on a is cut off from b too"
    );
    assert!(reaches(&lab, "client", vip).await);
    Ok(())
}

#[tokio::test]
async fn hosts_have_no_route_out_and_the_root_namespace_is_untouched() -> R {
    if !require_root_or_skip("hosts_have_no_route_out_and_the_root_namespace_is_untouched") {
        return Ok(());
    }
    let root_links = || {
        let out = Command::new("ip")
            .args(["-o", "link"])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = root_links();
    let lab = NetLab::builder().hosts(["a"]).build()?;
    let routes = lab.run("a", &["ip", "route"])?;
    assert!(!routes.contains("default"), "no default route: {routes}");
    assert!(routes.contains("198.18.0.0/24"), "{routes}");
    assert_eq!(root_links(), before, "the root namespace's links changed");
    drop(lab);
    assert_eq!(root_links(), before);
    Ok(())
}

#[tokio::test]
async fn kill_host_ends_its_processes_and_tasks_and_drop_removes_namespaces() -> R {
    if !require_root_or_skip("kill_host_ends_its_processes_and_tasks_and_drop_removes_namespaces") {
        return Ok(());
    }
    let lab = NetLab::builder().hosts(["a", "b"]).build()?;
    let mut sleeper =
        lab.command("a", "sleep")
            .arg("600")
            .spawn()
            .map_err(|e| HarnessError::Io {
                what: "spawn sleep".into(),
                source: e,
            })?;
    let server = echo_server(&lab, "a", lab.ip("a")).await?;
    assert!(reaches(&lab, "b", lab.ip("a")).await);
    lab.kill_host("a")?;
    // The sleeper was killed (and reaped by the lab, or by us here).
    let gone = !std::path::Path::new(&format!("/proc/{}", sleeper.id())).exists()
        || sleeper.try_wait().map(|s| s.is_some()).unwrap_or(true);
    assert!(gone, "a process of the killed host still runs");
    assert_eq!(server.join().await, None, "the host's task ended");
    assert!(!reaches(&lab, "b", lab.ip("a")).await);
    let names: Vec<String> = [lab.netns("a"), lab.netns("b"), lab.netns("client")]
        .iter()
        .map(|s| s.to_string())
        .collect();
    drop(lab);
    let list = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns")
            .stdout,
    )
    .into_owned();
    for name in names {
        assert!(!list.contains(&name), "{name} left behind: {list}");
    }
    Ok(())
}

#[tokio::test]
async fn a_cluster_streams_across_hosts_and_dies_with_its_host() -> R {
    if !require_root_or_skip("a_cluster_streams_across_hosts_and_dies_with_its_host") {
        return Ok(());
    }
    let lab = NetLab::builder().hosts(["a", "b"]).build()?;
    let cluster = PgCluster::builder()
        .standbys(1)
        .on_hosts(&lab, &["a", "b"])
        .start()
        .await?;
    cluster.wait_streaming().await?;
    let from = cluster
        .primary()
        .query_one_text("SELECT host(client_addr) FROM pg_stat_replication")
        .await?;
    assert_eq!(from.as_deref(), Some(lab.ip("b").to_string().as_str()));
    let pid = cluster.primary().pid().expect("running");
    lab.kill_host("a")?;
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the primary died with its host"
    );
    assert!(
        cluster.standbys()[0].is_in_recovery().await?,
        "the standby on b lives on"
    );
    Ok(())
}
