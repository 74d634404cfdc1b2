//! pgpool's `trusted_servers` over real loopback TCP: a leader that can
//! reach none of them gives up its lease until one answers again.

use std::time::Duration;

use pgha_core::Coordinator;
use pgha_watchdog::network::tcp::TcpNetwork;
use pgha_watchdog::{Member, MemberConfig, SharedSecret, TrustedServers};
use tokio::net::TcpListener;

/// Generous: conditions are waited for, never timed.
const PATIENCE: Duration = Duration::from_secs(30);

async fn wait_for<T>(
    rx: &mut tokio::sync::watch::Receiver<T>,
    what: &str,
    f: impl FnMut(&T) -> bool,
) {
    tokio::time::timeout(PATIENCE, rx.wait_for(f))
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {PATIENCE:?}"))
        .unwrap_or_else(|_| panic!("{what}: member stopped"));
}

#[tokio::test]
async fn a_leader_that_reaches_no_trusted_server_holds_no_lease_until_one_answers() {
    // A loopback port nothing listens on yet.
    let reserved = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = reserved.local_addr().expect("addr");
    drop(reserved);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = MemberConfig::new(
        1,
        [(1, "127.0.0.1:1".to_string())].into(),
        dir.path().into(),
    );
    config.trusted = TrustedServers {
        addrs: vec![upstream.to_string()],
        every: Duration::from_millis(100),
        deadline: Duration::from_millis(500),
    };
    let secret = SharedSecret::new(*b"a secret all members share......");
    let network = TcpNetwork::new(1, secret, config.timing.rpc_timeout);
    let member = Member::start(&config, network).await.expect("start");
    let mut reachable = member.upstream_reachable();
    let mut lease = member.lease();
    let permission = member.coordinator().permission();

    // The only member leads at once, but its upstream is closed.
    let mut metrics = member.raft().metrics();
    wait_for(&mut metrics, "leading", |m| m.current_leader == Some(1)).await;
    wait_for(&mut reachable, "upstream seen closed", |r| !*r).await;
    wait_for(&mut lease, "lease given up", |l| l.is_none()).await;
    assert!(!*permission.borrow());
    assert!(
        member.raft().metrics().borrow().current_leader == Some(1),
        "still the Raft leader, only the lease is withheld"
    );
    // While the upstream stays closed, no lease comes back (the check
    // runs every 100 ms; this spans several).
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            lease.borrow().is_none(),
            "a lease while no trusted server answers"
        );
    }

    // The upstream answers again: the lease returns.
    let listener = TcpListener::bind(upstream)
        .await
        .expect("rebind the upstream port");
    wait_for(&mut reachable, "upstream seen open", |r| *r).await;
    wait_for(&mut lease, "lease back", |l| l.is_some()).await;
    assert!(*member.coordinator().permission().borrow());
    drop(listener);
    member.shutdown().await;
}
