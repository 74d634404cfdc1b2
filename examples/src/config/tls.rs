//! TLS as configured — `[tls]`, `[server_tls]` and their flags — and the
//! proxy's [`TlsConfig`]/[`ServerTls`] built from it. The settings are kept
//! beside the built values because those cannot be shown back (a rustls
//! configuration does not know the files it came from) and because flags
//! override the file one value at a time.

use std::path::{Path, PathBuf};

use pgha_proxy::{ServerTls, TlsError};
use serde::{Deserialize, Serialize};

/// `[server_tls] mode` and `--server-tls`: libpq's sslmode names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerTlsMode {
    /// Plain connections.
    #[default]
    Disable,
    /// TLS when the server offers it.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS with the certificate checked against a CA and the host name.
    VerifyFull,
}

/// The TLS settings `RunConfig.proxy.tls` and `.server_tls` were built
/// from (absolute paths when read from the file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// The certificate chain shown to clients.
    pub cert_file: Option<PathBuf>,
    /// Its private key.
    pub key_file: Option<PathBuf>,
    /// TLS to the servers.
    pub server_mode: ServerTlsMode,
    /// The CA the servers' certificates must chain to (verify-full only).
    pub server_ca_file: Option<PathBuf>,
}

/// Why server TLS settings cannot be used.
#[derive(Debug)]
pub(crate) enum ServerTlsProblem {
    /// verify-full without a CA file.
    NoCa,
    /// A CA file with a mode that checks no certificate.
    CaWithoutVerify,
    /// The CA file could not be used.
    Tls(TlsError),
}

/// The proxy's TLS to servers for `mode` (`None`: plain).
pub(crate) fn server_tls(
    mode: ServerTlsMode,
    ca_file: Option<&Path>,
) -> Result<Option<ServerTls>, ServerTlsProblem> {
    let built = match (mode, ca_file) {
        (ServerTlsMode::VerifyFull, Some(ca)) => ServerTls::verify_full(ca),
        (ServerTlsMode::VerifyFull, None) => return Err(ServerTlsProblem::NoCa),
        (_, Some(_)) => return Err(ServerTlsProblem::CaWithoutVerify),
        (ServerTlsMode::Disable, None) => return Ok(None),
        (ServerTlsMode::Prefer, None) => ServerTls::encrypt_only(false),
        (ServerTlsMode::Require, None) => ServerTls::encrypt_only(true),
    };
    built.map(Some).map_err(ServerTlsProblem::Tls)
}
