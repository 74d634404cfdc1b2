//! An in-process TCP relay that breaks on command: stage a backend that
//! vanishes mid-query, hangs with its TCP still open, or answers slowly.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::HarnessError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    Delay(Duration),
    Blackhole,
    Cut,
    Shutdown,
}

/// A TCP relay between clients and one target address.
///
/// ```no_run
/// # async fn demo(target: std::net::SocketAddr) -> Result<(), pgha_core::testing::HarnessError> {
/// use pgha_core::testing::FaultProxy;
/// let proxy = FaultProxy::start(target).await?;
/// // clients connect to proxy.addr() instead of target …
/// proxy.blackhole(); // … and now hang: bytes are held, sockets stay open
/// proxy.heal();      // held bytes flow again
/// proxy.cut();       // every connection is closed, new ones too
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    open: Arc<AtomicUsize>,
}

impl FaultProxy {
    /// Listens on a free loopback port and relays to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self, HarnessError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(HarnessError::io("binding the fault proxy"))?;
        let addr = listener
            .local_addr()
            .map_err(HarnessError::io("reading the fault proxy's address"))?;
        let (mode, rx) = watch::channel(Mode::Pass);
        let open = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept_loop(listener, target, rx, open.clone()));
        Ok(Self { addr, mode, open })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many client connections are open through the relay.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Closes every connection; new ones are closed at once until
    /// [`FaultProxy::heal`].
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Stops forwarding but keeps every socket open: bytes are held (as TCP
    /// would retransmit them) and delivered after [`FaultProxy::heal`]. New
    /// connections are accepted but not forwarded.
    pub fn blackhole(&self) {
        self.mode.send_replace(Mode::Blackhole);
    }

    /// Delays every chunk of bytes by `d` in each direction.
    pub fn delay(&self, d: Duration) {
        self.mode.send_replace(Mode::Delay(d));
    }

    /// Back to forwarding everything at once.
    pub fn heal(&self) {
        self.mode.send_replace(Mode::Pass);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Shutdown);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    open: Arc<AtomicUsize>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let mode = mode.clone();
                let open = open.clone();
                tokio::spawn(async move {
                    open.fetch_add(1, Ordering::SeqCst);
                    relay(client, target, mode).await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
            changed = mode.changed() => {
                if changed.is_err() || *mode.borrow() == Mode::Shutdown {
                    return;
                }
            }
        }
    }
}

/// Waits while the relay is black-holed; false when the connection must
/// close instead.
async fn wait_passable(mode: &mut watch::Receiver<Mode>) -> bool {
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Pass | Mode::Delay(_) => return true,
            Mode::Cut | Mode::Shutdown => return false,
            Mode::Blackhole => {
                if mode.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

async fn relay(client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if !wait_passable(&mut mode).await {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // When either direction ends, the other is dropped: both sockets close.
    tokio::select! {
        _ = pump(cr, sw, mode.clone()) => {}
        _ = pump(sr, cw, mode) => {}
    }
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() || matches!(*mode.borrow(), Mode::Cut | Mode::Shutdown) {
                    return;
                }
                continue;
            }
        };
        if !wait_passable(&mut mode).await {
            return;
        }
        let current = *mode.borrow();
        if let Mode::Delay(d) = current {
            tokio::time::sleep(d).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
