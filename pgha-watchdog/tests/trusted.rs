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

#[tokio::test]
async fn a_leader_cut_off_from_its_upstream_steps_aside_for_one_that_is_not() {
    use std::collections::BTreeMap;

    use pgha_watchdog::network::tcp;

    // Each member's own upstream, open for now.
    let mut upstreams = Vec::new();
    let mut peers = Vec::new();
    let mut addrs = BTreeMap::new();
    for i in 1..=3u64 {
        upstreams.push(Some(TcpListener::bind("127.0.0.1:0").await.expect("bind")));
        let peer = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.insert(i, peer.local_addr().expect("addr").to_string());
        peers.push(peer);
    }
    let secret = || SharedSecret::new(*b"a secret all members share......");
    let mut members = Vec::new();
    let mut dirs = Vec::new();
    for ((i, peer), upstream) in (1..).zip(peers).zip(&upstreams) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = MemberConfig::new(i, addrs.clone(), dir.path().into());
        let upstream = upstream.as_ref().expect("open").local_addr().expect("addr");
        config.trusted = TrustedServers {
            addrs: vec![upstream.to_string()],
            every: Duration::from_millis(100),
            deadline: Duration::from_millis(500),
        };
        let network = TcpNetwork::new(i, secret(), config.timing.rpc_timeout);
        let member = Member::start(&config, network).await.expect("start");
        tokio::spawn(tcp::serve(
            peer,
            member.inbox(),
            i,
            secret(),
            Duration::from_secs(60),
            std::future::pending(),
        ));
        members.push(member);
        dirs.push(dir);
    }
    let holder = |members: &[Member]| members.iter().position(|m| m.lease().borrow().is_some());
    let first = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(i) = holder(&members) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a lease holder");

    // The leader's upstream goes away: another member leads and holds the
    // lease; the cut-off member holds none meanwhile and does not lead.
    upstreams[first] = None;
    let mut lease = members[first].lease();
    wait_for(&mut lease, "the cut-off leader's lease withheld", |l| {
        l.is_none()
    })
    .await;
    let next = tokio::time::timeout(PATIENCE, async {
        loop {
            assert!(
                members[first].lease().borrow().is_none(),
                "lease while cut off"
            );
            if let Some(i) = holder(&members) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("another member takes over");
    assert_ne!(next, first);
    let leader = members[next].raft().metrics().borrow().current_leader;
    assert_eq!(leader, Some(members[next].id()));
    assert_ne!(
        members[first].raft().metrics().borrow().state,
        openraft::ServerState::Leader
    );
    for member in members {
        member.shutdown().await;
    }
}
