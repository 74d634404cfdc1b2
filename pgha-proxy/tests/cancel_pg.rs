//! Cancel requests through the proxy when their server is unreachable:
//! the client's cancel connection is answered at once, and nothing is
//! forwarded to a node the topology holds down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pgha_core::testing::PgCluster;
use pgha_core::{NodeState, Role, Status, Topology};
use pgha_proxy::ProxyConfig;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

type R = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::start_proxy;

/// What the relay does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Relays them to the server.
    Pass,
    /// Accepts and counts them, forwards nothing.
    Hold,
    /// Does not accept them: with its accept queue full the kernel drops
    /// their SYNs, as for a host whose packets are dropped.
    Stall,
}

/// A TCP relay in front of a server, for the connections the proxy opens;
/// connections already relayed keep flowing whatever the mode.
struct Relay {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
    _filler: Option<std::net::TcpStream>,
}

impl Relay {
    async fn start(target: SocketAddr) -> std::io::Result<Relay> {
        let socket = TcpSocket::new_v4()?;
        socket.bind("127.0.0.1:0".parse().map_err(std::io::Error::other)?)?;
        // The smallest accept queue: one unaccepted connection fills it.
        let listener = Arc::new(socket.listen(0)?);
        let addr = listener.local_addr()?;
        let (mode, mut modes) = watch::channel(Mode::Pass);
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                if *modes.borrow_and_update() == Mode::Stall {
                    // Keep the listener open, accept nothing more.
                    let _keep = listener;
                    let _ = modes.changed().await;
                    return;
                }
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        count.fetch_add(1, Ordering::SeqCst);
                        if *modes.borrow() == Mode::Hold {
                            held.push(client);
                            continue;
                        }
                        tokio::spawn(async move {
                            if let Ok(mut server) = TcpStream::connect(target).await {
                                let mut client = client;
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                    changed = modes.changed() => if changed.is_err() { return },
                }
            }
        });
        Ok(Relay {
            addr,
            mode,
            accepted,
            _filler: None,
        })
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// New connections get no answer at all from now on.
    async fn stall(&mut self) -> std::io::Result<()> {
        self.set(Mode::Stall);
        // Let the accept loop see it, then fill the accept queue.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self._filler = Some(std::net::TcpStream::connect(self.addr)?);
        Ok(())
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The one-node cluster's primary, reached through `relay`.
fn through(relay: &Relay, status: Status) -> Arc<Topology> {
    let port = relay.addr.port();
    Arc::new(Topology::new([NodeState::new(
        "node0",
        Role::Primary,
        "127.0.0.1",
        port,
    )
    .with_status(status)]))
}

/// A client by hand, to know its cancel key: logs in through the proxy
/// and starts a long query. Returns the connection (kept open) and the
/// key.
async fn sleeping_client(port: u16) -> Result<(TcpStream, i32, i32), Box<dyn std::error::Error>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut buf = BytesMut::new();
    frontend::startup_message([("user", "postgres"), ("database", "postgres")], &mut buf)?;
    s.write_all(&buf).await?;
    let mut key = None;
    let mut input = BytesMut::new();
    'login: loop {
        if s.read_buf(&mut input).await? == 0 {
            return Err("the proxy closed the connection during login".into());
        }
        while input.len() >= 5 {
            let len = u32::from_be_bytes([input[1], input[2], input[3], input[4]]) as usize;
            if input.len() < len + 1 {
                break;
            }
            let mut msg = input.split_to(len + 1);
            let tag = msg[0];
            msg.advance(5);
            match tag {
                b'K' if msg.len() >= 8 => key = Some((msg.get_i32(), msg.get_i32())),
                b'E' => return Err("login refused".into()),
                b'Z' => break 'login,
                _ => {}
            }
        }
    }
    let (pid, secret) = key.ok_or("no BackendKeyData")?;
    let mut q = BytesMut::new();
    frontend::query("SELECT pg_sleep(60)", &mut q)?;
    s.write_all(&q).await?;
    Ok((s, pid, secret))
}

/// Waits until the sleeping client's query runs on `node` (so the proxy
/// knows where to send its cancel).
async fn running(node: &pgha_core::testing::PgNode) -> R {
    for _ in 0..200 {
        let sql = "SELECT count(*)::text FROM pg_stat_activity \
                   WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'";
        if node.query_one_text(sql).await?.as_deref() == Some("1") {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the query never started".into())
}

/// Sends a cancel request through the proxy and waits (up to a generous
/// 20 s) for the proxy to close that connection, as libpq's PQcancel does.
async fn cancel(port: u16, pid: i32, secret: i32) -> R {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut buf = BytesMut::new();
    frontend::cancel_request(pid, secret, &mut buf);
    s.write_all(&buf).await?;
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest))
        .await
        .map_err(|_| "the proxy held the cancel connection open")??;
    Ok(())
}

#[tokio::test]
async fn a_cancel_is_answered_at_once_when_its_server_takes_no_connection() -> R {
    let cluster = PgCluster::builder().start().await?;
    let primary = cluster.primary();
    let mut relay = Relay::start(SocketAddr::new(primary.host(), primary.port())).await?;
    let (_tx, topology) = watch::channel(through(&relay, Status::Up));
    // A forward held to the connect (or startup) timeout would hold the
    // client's cancel connection longer than the test waits.
    let config = ProxyConfig {
        connect_timeout: Duration::from_secs(120),
        startup_timeout: Duration::from_secs(120),
        ..ProxyConfig::default()
    };
    let proxy = start_proxy(config, topology).await;
    let (_session, pid, secret) = sleeping_client(proxy.port).await?;
    running(primary).await?;
    // The server's host drops packets now: a connect to it never completes.
    relay.stall().await?;
    cancel(proxy.port, pid, secret).await
}

#[tokio::test]
async fn a_cancel_is_never_forwarded_to_a_node_the_topology_holds_down() -> R {
    let cluster = PgCluster::builder().start().await?;
    let primary = cluster.primary();
    let relay = Relay::start(SocketAddr::new(primary.host(), primary.port())).await?;
    let (tx, topology) = watch::channel(through(&relay, Status::Up));
    let proxy = start_proxy(ProxyConfig::default(), topology).await;
    let (mut session, pid, secret) = sleeping_client(proxy.port).await?;
    running(primary).await?;
    relay.set(Mode::Hold);
    let before = relay.accepted();

    // The monitor takes the node down: the session drops its server
    // connection (its client gets an error), and the client's driver,
    // having timed out, sends a cancel.
    tx.send_replace(through(&relay, Status::Down));
    let mut answer = [0u8; 1];
    session.read_exact(&mut answer).await?;
    assert_eq!(&answer, b"E", "the running statement failed");
    cancel(proxy.port, pid, secret).await?;
    tx.send_replace(through(&relay, Status::Quarantined));
    cancel(proxy.port, pid, secret).await?;
    assert_eq!(relay.accepted(), before, "no cancel went to the down node");

    // Up again: a cancel is forwarded (so the count above would have seen
    // one). The first session ended with its server connection (its
    // statement's outcome was unknown), so a new one is cancelled.
    tx.send_replace(through(&relay, Status::Up));
    relay.set(Mode::Pass);
    // (Its statement still sleeps on the server, which has not noticed.)
    primary
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query = 'SELECT pg_sleep(60)' AND pid <> pg_backend_pid()",
        )
        .await?;
    let (_again, pid, secret) = sleeping_client(proxy.port).await?;
    running(primary).await?;
    let before = relay.accepted();
    cancel(proxy.port, pid, secret).await?;
    for _ in 0..200 {
        if relay.accepted() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(relay.accepted(), before + 1, "one cancel forwarded");
    Ok(())
}
