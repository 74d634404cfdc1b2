//! One type for every kind of connection the proxy holds — TCP, a Unix
//! socket, TLS over TCP (accepted from a client or opened to a server) —
//! and for its read and write halves.
//!
//! Enums rather than boxed trait objects: the plain TCP path costs one
//! `match` per poll and keeps tokio's lock-free owned halves. Only TLS
//! halves go through [`tokio::io::split`], whose lock is needed because a
//! TLS read may have to write (alerts, key updates) on the same session.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{tcp, unix, TcpStream, UnixStream};

type TlsAccepted = tokio_rustls::server::TlsStream<TcpStream>;
type TlsOpened = tokio_rustls::client::TlsStream<TcpStream>;

/// A connection to a client or a server.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// A Unix-domain socket.
    Unix(UnixStream),
    /// TLS the proxy accepted from a client.
    TlsAccepted(Box<TlsAccepted>),
    /// TLS the proxy opened to a server.
    TlsOpened(Box<TlsOpened>),
}

/// The read half of a [`Stream`].
#[derive(Debug)]
pub enum ReadHalf {
    /// Plain TCP.
    Tcp(tcp::OwnedReadHalf),
    /// A Unix-domain socket.
    Unix(unix::OwnedReadHalf),
    /// TLS accepted from a client.
    TlsAccepted(tokio::io::ReadHalf<TlsAccepted>),
    /// TLS opened to a server.
    TlsOpened(tokio::io::ReadHalf<TlsOpened>),
}

/// The write half of a [`Stream`].
#[derive(Debug)]
pub enum WriteHalf {
    /// Plain TCP.
    Tcp(tcp::OwnedWriteHalf),
    /// A Unix-domain socket.
    Unix(unix::OwnedWriteHalf),
    /// TLS accepted from a client.
    TlsAccepted(tokio::io::WriteHalf<TlsAccepted>),
    /// TLS opened to a server.
    TlsOpened(tokio::io::WriteHalf<TlsOpened>),
}

/// Runs `$e` with `$s` bound to whichever connection `$self` holds.
macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Self::Tcp($s) => $e,
            Self::Unix($s) => $e,
            Self::TlsAccepted($s) => $e,
            Self::TlsOpened($s) => $e,
        }
    };
}

impl Stream {
    /// Splits into halves that can be used by different tasks.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Stream::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
            Stream::TlsAccepted(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadHalf::TlsAccepted(r), WriteHalf::TlsAccepted(w))
            }
            Stream::TlsOpened(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadHalf::TlsOpened(r), WriteHalf::TlsOpened(w))
            }
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::TlsAccepted(_) | Stream::TlsOpened(_))
    }

    /// Reads what has already arrived without waiting: `WouldBlock` when
    /// nothing has.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
            other => poll_once(other, buf),
        }
    }
}

impl crate::frame::Readiness for ReadHalf {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>, confirm: bool) -> Poll<io::Result<()>> {
        match self {
            ReadHalf::Tcp(s) if !confirm => s.as_ref().poll_read_ready(cx),
            ReadHalf::Unix(s) if !confirm => s.as_ref().poll_read_ready(cx),
            // A peek, not the readiness flag. The waker goes in the socket's
            // own slot: no future to keep.
            ReadHalf::Tcp(s) => {
                let mut byte = [0u8; 1];
                let mut buf = ReadBuf::new(&mut byte);
                s.poll_peek(cx, &mut buf).map_ok(|_| ())
            }
            // tokio has no peek for Unix sockets: readiness, then a peek
            // through socket2 that clears it when nothing is there.
            ReadHalf::Unix(s) => loop {
                let s = s.as_ref();
                std::task::ready!(s.poll_read_ready(cx))?;
                let mut byte = [std::mem::MaybeUninit::uninit(); 1];
                let peeked = s.try_io(tokio::io::Interest::READABLE, || {
                    socket2::SockRef::from(s).peek(&mut byte)
                });
                match peeked {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return Poll::Ready(other.map(|_| ())),
                }
            },
            // A TLS session may hold decrypted bytes the socket no longer
            // shows: it is read, not waited on.
            ReadHalf::TlsAccepted(_) | ReadHalf::TlsOpened(_) => Poll::Ready(Ok(())),
        }
    }
}

/// `write_all` that also flushes TLS. Inherent, so it shadows
/// [`AsyncWriteExt::write_all`] at every call site: tokio-rustls accepts
/// bytes into its buffer and reports them written even when the socket is
/// full, and a caller that then waits for the peer would wait for ever for
/// an answer to bytes still in that buffer. Plain sockets buffer nothing
/// and skip the flush.
macro_rules! write_all_flushed {
    ($t:ty) => {
        impl $t {
            /// Writes all of `buf` and, over TLS, flushes it to the socket.
            pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
                AsyncWriteExt::write_all(self, buf).await?;
                if matches!(self, Self::TlsAccepted(_) | Self::TlsOpened(_)) {
                    AsyncWriteExt::flush(self).await?;
                }
                Ok(())
            }
        }
    };
}

write_all_flushed!(Stream);
write_all_flushed!(WriteHalf);

impl ReadHalf {
    /// Reads what has already arrived without waiting: `WouldBlock` when
    /// nothing has (for TLS: no whole record's plaintext yet).
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Tcp(s) => s.try_read(buf),
            ReadHalf::Unix(s) => s.try_read(buf),
            other => poll_once(other, buf),
        }
    }
}

/// One poll with a waker that does nothing: TLS streams have no `try_read`
/// of their own, and the next real poll registers the real waker.
fn poll_once(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> io::Result<usize> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut read = ReadBuf::new(buf);
    match Pin::new(r).poll_read(&mut cx, &mut read) {
        Poll::Ready(Ok(())) => Ok(read.filled().len()),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

macro_rules! delegate_io {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
            }
        }
    };
    ($t:ty, write) => {
        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
            }

            fn is_write_vectored(&self) -> bool {
                each!(self, s => s.is_write_vectored())
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
            }
        }
    };
}

delegate_io!(Stream);
delegate_io!(Stream, write);
delegate_io!(ReadHalf);
delegate_io!(WriteHalf, write);

/// Where a client connected from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client's address.
    Tcp(SocketAddr),
    /// A client on the proxy's Unix socket (hba `local` rules).
    Unix,
}

impl Peer {
    /// The client's IP address; `None` over a Unix socket.
    pub fn ip(self) -> Option<IpAddr> {
        self.addr().map(|a| a.ip())
    }

    /// The client's address and port; `None` over a Unix socket.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Peer::Tcp(addr) => Some(addr),
            Peer::Unix => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Unix => f.write_str("[local]"),
        }
    }
}

/// The socket PostgreSQL (and the proxy) listens on in directory `dir`
/// for `port`: `<dir>/.s.PGSQL.<port>`, as libpq looks for it.
pub fn socket_path(dir: impl AsRef<Path>, port: u16) -> PathBuf {
    dir.as_ref().join(format!(".s.PGSQL.{port}"))
}

/// Whether `host` names a Unix socket directory rather than a TCP host:
/// it starts with `/`, as libpq decides.
pub fn is_socket_dir(host: &str) -> bool {
    host.starts_with('/')
}

/// Connects to a server: over its Unix socket when `host` is a directory
/// (see [`is_socket_dir`]), else over TCP with Nagle off.
pub async fn connect(host: &str, port: u16) -> io::Result<Stream> {
    if is_socket_dir(host) {
        Ok(Stream::Unix(
            UnixStream::connect(socket_path(host, port)).await?,
        ))
    } else {
        let s = TcpStream::connect((host, port)).await?;
        // Small request/response messages: waiting to coalesce only adds
        // latency. A socket that refuses the option still works.
        let _ = s.set_nodelay(true);
        Ok(Stream::Tcp(s))
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tls_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_are_named_like_postgresql() {
        assert_eq!(
            socket_path("/run/postgresql", 5432),
            PathBuf::from("/run/postgresql/.s.PGSQL.5432")
        );
        assert!(is_socket_dir("/tmp"));
        assert!(!is_socket_dir("db1.example"));
        assert!(!is_socket_dir("::1"));
        assert_eq!(Peer::Unix.to_string(), "[local]");
        assert_eq!(Peer::Unix.ip(), None);
    }
}
