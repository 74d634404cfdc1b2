//! Where clients connect: TCP listeners and Unix-socket listeners named
//! like PostgreSQL's.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, UnixListener, UnixStream};

use crate::stream::{socket_path, Peer, Stream};

/// A socket the proxy accepts clients on.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// A Unix socket (see [`bind_unix`]).
    Unix(UnixListener),
}

impl Listener {
    /// The next client, if one is waiting.
    pub(crate) fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Stream, Peer)>> {
        match self {
            Listener::Tcp(l) => l.poll_accept(cx).map_ok(|(s, addr)| {
                // Small request/response messages: waiting to coalesce
                // only adds latency. A socket refusing it still works.
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), Peer::Tcp(addr))
            }),
            Listener::Unix(l) => l
                .poll_accept(cx)
                .map_ok(|(s, _)| (Stream::Unix(s), Peer::Unix)),
        }
    }
}

/// The next client on any of `listeners`. Each call starts from a
/// different listener, so a busy one cannot starve the others.
pub(crate) async fn accept(listeners: &[Listener], next: &mut usize) -> io::Result<(Stream, Peer)> {
    *next = (*next + 1) % listeners.len().max(1);
    let (head, tail) = listeners.split_at(*next);
    std::future::poll_fn(|cx| {
        tail.iter()
            .chain(head)
            .find_map(|l| match l.poll_accept(cx) {
                Poll::Ready(r) => Some(r),
                Poll::Pending => None,
            })
            .map_or(Poll::Pending, Poll::Ready)
    })
    .await
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Self {
        Listener::Unix(l)
    }
}

/// Listens on `<dir>/.s.PGSQL.<port>`, where libpq (`host=<dir>`) and
/// psql (`-h <dir>`) look for a server on `port`. A socket file left by
/// a process that is gone is replaced; one that still answers is an
/// `AddrInUse` error. Like PostgreSQL's default `unix_socket_permissions`
/// the socket is open to every local user (mode 0777): hba `local` rules
/// decide who gets in, and the directory's own mode can restrict more.
/// It is left behind when the process ends, as a crashed server's is.
pub async fn bind_unix(dir: impl AsRef<Path>, port: u16) -> io::Result<UnixListener> {
    let path = socket_path(dir, port);
    let listener = bind_replacing_stale(&path).await?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))?;
    Ok(listener)
}

async fn bind_replacing_stale(path: &Path) -> io::Result<UnixListener> {
    match UnixListener::bind(path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running server", path.display()),
                ));
            }
            tracing::info!(path = %path.display(), "replacing a stale Unix socket");
            std::fs::remove_file(path)?;
            UnixListener::bind(path)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_is_not() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let live = bind_unix(dir.path(), 5999).await?;
        let mode = std::fs::metadata(socket_path(dir.path(), 5999))?.permissions();
        assert_eq!(mode.mode() & 0o777, 0o777);
        let err = bind_unix(dir.path(), 5999).await.err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::AddrInUse));
        drop(live); // the file stays, nobody answers
        assert!(socket_path(dir.path(), 5999).exists());
        let again = bind_unix(dir.path(), 5999).await?;
        let client = UnixStream::connect(socket_path(dir.path(), 5999)).await;
        assert!(client.is_ok());
        drop(again);
        Ok(())
    }
}
