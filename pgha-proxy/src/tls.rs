//! TLS settings: the certificate the proxy shows its clients
//! ([`TlsConfig`]), loaded from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS setting that could not be used; names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{}: {what}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// rustls refused the certificate, key or settings.
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

/// TLS for clients: the proxy answers `S` to an SSLRequest and runs the
/// handshake with this certificate.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    server_config: Arc<rustls::ServerConfig>,
}

impl TlsConfig {
    /// From a PEM certificate chain (the proxy's certificate first) and
    /// a PEM private key (PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3, with
    /// the `ring` provider; no client certificates.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = read_certificates(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(Self::new(Arc::new(config)))
    }

    /// From a rustls configuration built by the embedder.
    pub fn new(server_config: Arc<rustls::ServerConfig>) -> Self {
        Self { server_config }
    }

    /// The acceptor sessions run their handshakes with.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server_config.clone())
    }
}

/// The crypto provider, named rather than taken from the process default:
/// another crate enabling a second provider must not change (or, with no
/// default installed, break) the proxy's.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file; at least one.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if chain.is_empty() {
        return Err(TlsError::File {
            path: path.to_path_buf(),
            what: "no certificate in the file".into(),
        });
    }
    Ok(chain)
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        what: e.to_string(),
    }
}
