//! TLS from the proxy to its servers ([`ServerTls`]): the SSLRequest
//! exchange and the handshake, before the StartupMessage.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stream::Stream;
use crate::tls::{provider, read_certificates, TlsError};

/// TLS to the servers over TCP (a Unix socket is local and stays plain,
/// as with libpq).
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<rustls::ClientConfig>,
    required: bool,
}

impl ServerTls {
    /// Encrypts without checking who the server is, like libpq's
    /// `sslmode=require` (`required`) or `prefer` (not `required`: a
    /// server that declines TLS is used in plain text). Protects against
    /// eavesdropping, not against an impostor.
    pub fn encrypt_only(required: bool) -> Result<Self, TlsError> {
        let provider = provider();
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Self::new(Arc::new(config), required))
    }

    /// Requires TLS and checks the server's certificate against the CA
    /// certificates in a PEM file and its name against the node's host,
    /// like libpq's `sslmode=verify-full`.
    pub fn verify_full(ca_file: &Path) -> Result<Self, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in read_certificates(ca_file)? {
            roots.add(cert).map_err(|e| TlsError::File {
                path: ca_file.to_path_buf(),
                what: e.to_string(),
            })?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self::new(Arc::new(config), true))
    }

    /// From a rustls configuration built by the embedder; `required`
    /// makes a server that declines TLS an error.
    pub fn new(config: Arc<rustls::ClientConfig>, required: bool) -> Self {
        Self { config, required }
    }

    /// Whether a server that declines TLS is an error.
    pub fn required(&self) -> bool {
        self.required
    }
}

/// Asks a TCP server for TLS and runs the handshake if it agrees; an
/// `Err` carries what went wrong, for the caller to name the server.
pub(crate) async fn start(stream: Stream, host: &str, tls: &ServerTls) -> Result<Stream, String> {
    let Stream::Tcp(mut tcp) = stream else {
        return Ok(stream);
    };
    let mut request = BytesMut::new();
    postgres_protocol::message::frontend::ssl_request(&mut request);
    tcp.write_all(&request)
        .await
        .map_err(|e| format!("SSLRequest: {e}"))?;
    let answer = tcp
        .read_u8()
        .await
        .map_err(|e| format!("SSLRequest: {e}"))?;
    match answer {
        b'S' => {}
        b'N' if !tls.required => return Ok(Stream::Tcp(tcp)),
        b'N' => return Err("the server does not accept TLS, and it is required".into()),
        other => {
            return Err(format!(
                "unexpected answer {:?} to SSLRequest",
                char::from(other)
            ))
        }
    }
    // The server sends nothing more until the handshake: anything already
    // here would be plaintext posing as part of the TLS session.
    if tcp.try_read(&mut [0u8; 1]).is_ok_and(|n| n > 0) {
        return Err("received unencrypted data after SSL request".into());
    }
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("host {host:?} is no TLS server name: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(Stream::TlsOpened(Box::new(tls)))
}

/// Takes any certificate, yet checks the handshake's signatures with it:
/// the session is encrypted to whoever holds that certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
