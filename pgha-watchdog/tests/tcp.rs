//! Members over real TCP on loopback: they elect one leader and commit the
//! record; frames not tagged with the cluster's secret never reach openraft
//! (a stray or forged peer cannot join, vote or append).

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::raft::VoteRequest;
use openraft::Vote;
use pgha_watchdog::network::frame::{self, Direction, Envelope};
use pgha_watchdog::network::tcp::{self, TcpNetwork};
use pgha_watchdog::network::{Rpc, RpcReply};
use pgha_watchdog::{Member, MemberConfig, MemberId, RecordChange, SharedSecret};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Generous: conditions are waited for, never timed.
const PATIENCE: Duration = Duration::from_secs(30);

struct Cluster {
    members: Vec<Member>,
    addrs: BTreeMap<MemberId, String>,
    _dirs: Vec<TempDir>,
}

fn secret(s: &str) -> SharedSecret {
    SharedSecret::new(s.as_bytes().to_vec())
}

/// Members 1..=n; member i uses `secrets[i-1]`.
async fn start(secrets: &[&str]) -> Cluster {
    let mut listeners = Vec::new();
    let mut addrs = BTreeMap::new();
    for i in 1..=secrets.len() as MemberId {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.insert(i, listener.local_addr().expect("addr").to_string());
        listeners.push(listener);
    }
    let mut members = Vec::new();
    let mut dirs = Vec::new();
    for (listener, (i, s)) in listeners.into_iter().zip((1..).zip(secrets)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = MemberConfig::new(i, addrs.clone(), dir.path().to_path_buf());
        let network = TcpNetwork::new(i, secret(s), config.timing.rpc_timeout);
        let member = Member::start(&config, network).await.expect("start");
        tokio::spawn(tcp::serve(
            listener,
            member.inbox(),
            i,
            secret(s),
            Duration::from_secs(60),
            std::future::pending(),
        ));
        members.push(member);
        dirs.push(dir);
    }
    Cluster {
        members,
        addrs,
        _dirs: dirs,
    }
}

async fn lease_holder(members: &[Member]) -> usize {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(i) = members.iter().position(|m| m.lease().borrow().is_some()) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a member holds the lease")
}

#[tokio::test]
async fn three_members_elect_a_lease_holder_and_all_apply_its_promotion() {
    let cluster = start(&["s3cret", "s3cret", "s3cret"]).await;
    let leader = lease_holder(&cluster.members).await;
    let change = RecordChange::promote(1, "node0");
    cluster.members[leader]
        .propose(change)
        .await
        .expect("leader commits");
    for member in &cluster.members {
        let mut record = member.record();
        tokio::time::timeout(PATIENCE, record.wait_for(|r| r.term == 1))
            .await
            .expect("record applied everywhere")
            .expect("member alive");
    }
    let others = (0..3).filter(|i| *i != leader);
    for i in others {
        assert!(cluster.members[i].lease().borrow().is_none());
        assert!(!*pgha_core::Coordinator::permission(&cluster.members[i].coordinator()).borrow());
    }
}

#[tokio::test]
async fn a_member_with_another_secret_cannot_join_vote_or_disturb() {
    let cluster = start(&["right", "right", "wrong"]).await;
    let leader = lease_holder(&cluster.members[..2]).await;
    let raft_term = |i: usize| cluster.members[i].raft().metrics().borrow().current_term;
    let term = raft_term(leader);
    cluster.members[leader]
        .propose(RecordChange::promote(7, "node1"))
        .await
        .expect("commit without member 3");
    // Member 3 campaigns over and over with rising terms; none of its vote
    // requests reach members 1 and 2.
    let mut stray = cluster.members[2].raft().metrics();
    tokio::time::timeout(PATIENCE, stray.wait_for(|m| m.current_term > term + 3))
        .await
        .expect("member 3 campaigned")
        .expect("member 3 alive");
    assert_eq!(
        raft_term(leader),
        term,
        "a forged vote request moved the term"
    );
    assert!(cluster.members[leader].lease().borrow().is_some());
    assert_eq!(
        cluster.members[2].record().borrow().term,
        0,
        "member 3 got entries"
    );
    assert_eq!(
        cluster.members[2].raft().metrics().borrow().current_leader,
        None
    );
}

/// Sends one frame and returns the answer frame's body, or `None` if the
/// server closed the connection without answering.
async fn send_raw(addr: &str, frame: &[u8]) -> Option<Vec<u8>> {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(frame).await.expect("write");
    let len = match tokio::time::timeout(PATIENCE, conn.read_u32()).await {
        Ok(Ok(len)) => len as usize,
        Ok(Err(_)) => return None,
        Err(_) => panic!("server neither answered nor closed"),
    };
    let mut body = vec![0; len];
    conn.read_exact(&mut body).await.expect("answer body");
    Some(body)
}

fn vote_call(to: MemberId, raft_term: u64) -> Envelope<Rpc> {
    Envelope {
        from: 9,
        to,
        direction: Direction::Call,
        id: 1,
        body: Rpc::Vote(VoteRequest::new(Vote::new(raft_term, 9), None)),
    }
}

#[tokio::test]
async fn forged_or_misaddressed_frames_are_dropped_unanswered() {
    let cluster = start(&["right", "right", "right"]).await;
    let leader = lease_holder(&cluster.members).await;
    let follower = (leader + 1) % 3;
    let id = cluster.members[follower].id();
    let addr = &cluster.addrs[&id];
    let term_before = cluster.members[follower]
        .raft()
        .metrics()
        .borrow()
        .current_term;

    // Control: an authentic call is answered (a stale vote, refused).
    let stale = frame::seal(&secret("right"), &vote_call(id, 0)).expect("seal");
    let answer = send_raw(addr, &stale)
        .await
        .expect("an authentic call is answered");
    let answer: Envelope<RpcReply> = frame::open(&secret("right"), &answer).expect("open");
    assert!(matches!(answer.body, RpcReply::Vote(Ok(ref v)) if !v.vote_granted));

    // A vote request for a far-future term: with the wrong secret, with
    // one flipped byte, and authentic but addressed to another member.
    let forged = frame::seal(&secret("wrong"), &vote_call(id, 1000)).expect("seal");
    let mut flipped = frame::seal(&secret("right"), &vote_call(id, 1000)).expect("seal");
    let n = flipped.len() - 5;
    flipped[n] ^= 0x20;
    let misaddressed = frame::seal(&secret("right"), &vote_call(id + 10, 1000)).expect("seal");
    for frame in [forged, flipped, misaddressed] {
        assert_eq!(send_raw(addr, &frame).await, None);
    }
    // An announced length beyond the limit is refused before allocation.
    assert_eq!(send_raw(addr, &u32::MAX.to_be_bytes()).await, None);

    let term_after = cluster.members[follower]
        .raft()
        .metrics()
        .borrow()
        .current_term;
    assert_eq!(term_after, term_before, "a dropped frame reached openraft");
    assert!(term_after < 1000);
}

#[tokio::test]
async fn probe_views_travel_over_tcp_and_outvote_one_broken_link() {
    use std::sync::Arc;

    use pgha_core::{FailureReason, Health, HealthProbe, Lsn, NodeState, Observation, Role};
    use pgha_watchdog::testing::ScriptedProbe;

    let cluster = start(&["s3cret", "s3cret", "s3cret"]).await;
    let node = NodeState::new("pg0", Role::Primary, "198.18.0.10", 5432);
    let failed = Observation::Failed {
        reason: FailureReason::Timeout,
    };
    let healthy = Observation::Healthy(Health::primary(Lsn(42)));
    let scripts: Vec<ScriptedProbe> = (0..3).map(|_| ScriptedProbe::default()).collect();
    scripts[0].set(&node.id, failed.clone());
    scripts[1].set(&node.id, healthy.clone());
    scripts[2].set(&node.id, healthy.clone());
    let window = Duration::from_secs(5);
    let probes: Vec<_> = (0..3)
        .map(|i| cluster.members[i].quorum_probe(Arc::new(scripts[i].clone()), window))
        .collect();
    let timeout = Duration::from_millis(500);
    // Member 1's link to the primary is broken; once its peers' views
    // have arrived over TCP, its monitor sees the primary healthy.
    tokio::time::timeout(PATIENCE, async {
        loop {
            probes[1].probe(&node, timeout).await;
            probes[2].probe(&node, timeout).await;
            if probes[0].probe(&node, timeout).await == healthy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("member 1 sees its peers' healthy view");
    // A second member loses the primary: now it is failed everywhere,
    // also for the member that still reaches it.
    scripts[1].set(&node.id, failed.clone());
    tokio::time::timeout(PATIENCE, async {
        loop {
            probes[0].probe(&node, timeout).await;
            probes[1].probe(&node, timeout).await;
            if probes[2].probe(&node, timeout).await == failed {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("member 3 is outvoted");
}

#[tokio::test]
async fn a_witness_over_tcp_votes_and_sends_its_views() {
    use std::sync::Arc;

    use pgha_core::{FailureReason, Health, HealthProbe, Lsn, NodeState, Observation, Role};
    use pgha_watchdog::testing::ScriptedProbe;
    use pgha_watchdog::witness::{self, Probing};

    let mut listeners = Vec::new();
    let mut addrs = BTreeMap::new();
    for i in 1..=3 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.insert(i, listener.local_addr().expect("addr").to_string());
        listeners.push(listener);
    }
    // witness::run listens itself: free its port (nothing else takes a
    // just-released loopback port in the meantime).
    drop(listeners.pop());
    let dirs: Vec<TempDir> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut hosts = Vec::new();
    for (i, listener) in (1..).zip(listeners) {
        let config = MemberConfig::new(i, addrs.clone(), dirs[i as usize - 1].path().into());
        let network = TcpNetwork::new(i, secret("s"), config.timing.rpc_timeout);
        let member = Member::start(&config, network).await.expect("start");
        tokio::spawn(tcp::serve(
            listener,
            member.inbox(),
            i,
            secret("s"),
            Duration::from_secs(60),
            std::future::pending(),
        ));
        hosts.push(member);
    }
    let node = NodeState::new("pg0", Role::Primary, "198.18.0.10", 5432);
    let healthy = Observation::Healthy(Health::primary(Lsn(7)));
    let seen_by_witness = ScriptedProbe::default();
    seen_by_witness.set(&node.id, healthy.clone());
    let probing = Probing {
        nodes: vec![node.clone()],
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
    };
    let config = MemberConfig::new(3, addrs.clone(), dirs[2].path().into());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let witness = tokio::spawn(witness::run(
        config,
        secret("s"),
        Arc::new(seen_by_witness),
        probing,
        async {
            let _ = stopped.await;
        },
    ));

    let leader = lease_holder(&hosts).await;
    let survivor = hosts.remove(1 - leader);
    hosts.remove(0).shutdown().await;
    // Two of three: the survivor leads only with the witness's vote.
    lease_holder(std::slice::from_ref(&survivor)).await;
    // Its own link to the primary is broken; the witness sees it healthy:
    // a tie, so its monitor sees the witness's healthy view.
    let broken = ScriptedProbe::default();
    broken.set(
        &node.id,
        Observation::Failed {
            reason: FailureReason::ConnectRefused,
        },
    );
    let probe = survivor.quorum_probe(Arc::new(broken), Duration::from_secs(2));
    tokio::time::timeout(PATIENCE, async {
        while probe.probe(&node, Duration::from_millis(100)).await != healthy {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the witness's view reaches the survivor");
    let _ = stop.send(());
    tokio::time::timeout(PATIENCE, witness)
        .await
        .expect("the witness stops")
        .expect("witness task")
        .expect("witness ran");
    survivor.shutdown().await;
}

/// A TCP relay to `target` that counts the connections it accepts and can
/// cut them all.
struct Relay {
    addr: String,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (count, tasks) = (accepted.clone(), links.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().expect("links").push(link);
            }
        });
        Relay {
            addr,
            accepted,
            links,
            acceptor,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Closes every relayed connection (both ends).
    fn cut_all(&self) {
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut_all();
        self.acceptor.abort();
    }
}

#[tokio::test]
async fn clients_reuse_one_connection_and_reconnect_when_it_was_closed() {
    use pgha_watchdog::network::{Connect, Transport};

    let cluster = start(&["s3cret"]).await;
    let relay = Relay::start(cluster.addrs[&1].clone()).await;
    // Member 2's network; like openraft's quorum check, a new client per
    // call, each dropped after it.
    let network = TcpNetwork::new(2, secret("s3cret"), Duration::from_secs(5));
    let views = || Rpc::Views {
        observations: Vec::new(),
    };
    for _ in 0..5 {
        let mut client = network.connect(1, &relay.addr);
        let reply = client.call(views(), PATIENCE).await.expect("answered");
        assert!(matches!(reply, RpcReply::Views));
    }
    assert_eq!(relay.accepted(), 1, "one connection for five clients");
    // The peer side closes it (an idle timeout, a restart): the next call
    // notices and connects again, without failing.
    relay.cut_all();
    let mut client = network.connect(1, &relay.addr);
    let reply = client
        .call(views(), PATIENCE)
        .await
        .expect("answered after reconnecting");
    assert!(matches!(reply, RpcReply::Views));
    assert_eq!(relay.accepted(), 2);
}
