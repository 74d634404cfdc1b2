//! TLS streams over real sockets: a write into a full socket must still
//! reach the peer without a later write behind it.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

use super::{Stream, WriteHalf};

/// A TLS pair over loopback TCP with socket buffers far smaller than the
/// data written: (the proxy's side, accepted; a rustls client).
async fn tiny_tls_pair() -> Result<
    (
        Stream,
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    ),
    Box<dyn std::error::Error>,
> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(made.signing_key.serialize_der())?;
    let server = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone())?;
    let client = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listen = TcpSocket::new_v4()?;
    listen.set_send_buffer_size(4096)?; // accepted sockets inherit it
    listen.bind("127.0.0.1:0".parse()?)?;
    let listener = listen.listen(1)?;
    let connect = TcpSocket::new_v4()?;
    connect.set_recv_buffer_size(4096)?;
    let (tcp, accepted) = tokio::join!(connect.connect(listener.local_addr()?), listener.accept());
    let (tcp, (accepted, _)) = (tcp?, accepted?);
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
    let (client, server) = tokio::join!(
        tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp),
        tokio_rustls::TlsAcceptor::from(Arc::new(server)).accept(accepted),
    );
    Ok((Stream::TlsAccepted(Box::new(server?)), client?))
}

#[tokio::test]
async fn everything_written_over_tls_reaches_a_slow_reader(
) -> Result<(), Box<dyn std::error::Error>> {
    let (server, mut client) = tiny_tls_pair().await?;
    let (_read, write) = server.into_split();
    const TOTAL: usize = 300 * 1024;
    // The writer, like a session, writes one reply and then waits for
    // the peer: nothing polls the write half again.
    let writer = tokio::spawn(async move {
        let mut write: WriteHalf = write;
        write.write_all(&vec![7u8; TOTAL]).await?;
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(write)
    });
    let mut got = 0;
    let mut buf = vec![0u8; 1024];
    let read_all = async {
        while got < TOTAL {
            // A slow reader: the socket stays full while the writer runs.
            tokio::time::sleep(Duration::from_micros(200)).await;
            match client.read(&mut buf).await? {
                0 => break,
                n => got += n,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let finished = tokio::time::timeout(Duration::from_secs(10), read_all).await;
    writer.abort();
    assert!(finished.is_ok(), "only {got} of {TOTAL} bytes arrived");
    assert_eq!(got, TOTAL);
    Ok(())
}
