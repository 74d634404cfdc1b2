//! Connections from the proxy to PostgreSQL: startup and authentication
//! with the configured credentials.

use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::ErrorResponseBody;
use postgres_protocol::message::backend::{ErrorFields, Message};
use postgres_protocol::message::frontend;
use tokio::io::AsyncReadExt;

use crate::stream::{self, Stream};
use crate::{Error, ServerTls};

/// Credentials the proxy logs in to servers with.
#[derive(Debug, Clone, Default)]
pub struct ServerAuth {
    /// User name on the servers; `None` uses the client's.
    pub user: Option<String>,
    /// Password for SCRAM, md5 or cleartext requests.
    pub password: Option<String>,
}

/// An authenticated server connection, ready for queries.
#[derive(Debug)]
pub struct ServerConn {
    /// The connection.
    pub stream: Stream,
    /// `ParameterStatus` values the server reported.
    pub params: Vec<(String, String)>,
    /// The server's own cancel key (pid, secret).
    pub key: (i32, i32),
    /// Bytes read past ReadyForQuery (normally none).
    pub leftover: BytesMut,
}

/// Connects to `host:port` and logs in as the client's user and database.
/// A `host` starting with `/` is a directory holding the server's Unix
/// socket (`<host>/.s.PGSQL.<port>`), as in libpq. With `tls`, a TCP
/// connection asks for TLS before its StartupMessage.
pub async fn connect(
    host: &str,
    port: u16,
    startup: &[(String, String)],
    auth: &ServerAuth,
    tls: Option<&ServerTls>,
    timeout: Duration,
) -> Result<ServerConn, Error> {
    let node = format!("{host}:{port}");
    tokio::time::timeout(timeout, connect_inner(host, port, startup, auth, tls))
        .await
        .map_err(|_| Error::Server {
            node: node.clone(),
            what: format!("no connection within {timeout:?}"),
        })?
}

async fn connect_inner(
    host: &str,
    port: u16,
    startup: &[(String, String)],
    auth: &ServerAuth,
    tls: Option<&ServerTls>,
) -> Result<ServerConn, Error> {
    let node = format!("{host}:{port}");
    let fail = |what: String| Error::Server {
        node: node.clone(),
        what,
    };
    let mut stream = stream::connect(host, port)
        .await
        .map_err(|e| fail(format!("connect: {e}")))?;
    if let Some(tls) = tls {
        stream = crate::server_tls::start(stream, host, tls)
            .await
            .map_err(fail)?;
    }
    let user = auth
        .user
        .clone()
        .or_else(|| {
            startup
                .iter()
                .find(|(k, _)| k == "user")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_default();
    let params: Vec<(&str, &str)> = startup
        .iter()
        .filter(|(k, _)| k != "user")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(std::iter::once(("user", user.as_str())))
        .collect();
    let mut out = BytesMut::new();
    frontend::startup_message(params.iter().copied(), &mut out).map_err(Error::Io)?;
    stream.write_all(&out).await.map_err(Error::Io)?;

    let password = auth.password.clone().unwrap_or_default();
    let mut buf = BytesMut::with_capacity(4096);
    let mut scram: Option<ScramSha256> = None;
    let mut server_params = Vec::new();
    let mut key = (0, 0);
    loop {
        let message = loop {
            if let Some(m) = Message::parse(&mut buf).map_err(Error::Io)? {
                break m;
            }
            if stream.read_buf(&mut buf).await.map_err(Error::Io)? == 0 {
                return Err(fail("closed during startup".into()));
            }
        };
        out.clear();
        match message {
            Message::AuthenticationOk => {}
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(password.as_bytes(), &mut out).map_err(Error::Io)?;
            }
            Message::AuthenticationMd5Password(body) => {
                let hash = postgres_protocol::authentication::md5_hash(
                    user.as_bytes(),
                    password.as_bytes(),
                    body.salt(),
                );
                frontend::password_message(hash.as_bytes(), &mut out).map_err(Error::Io)?;
            }
            Message::AuthenticationSasl(body) => {
                let mut mechanisms = body.mechanisms();
                let mut found = false;
                while let Some(m) = mechanisms.next().map_err(Error::Io)? {
                    found |= m == SCRAM_SHA_256;
                }
                if !found {
                    return Err(fail("server offers no SCRAM-SHA-256".into()));
                }
                let client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, client.message(), &mut out)
                    .map_err(Error::Io)?;
                scram = Some(client);
            }
            Message::AuthenticationSaslContinue(body) => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| fail("SASL out of order".into()))?;
                client
                    .update(body.data())
                    .map_err(|e| fail(format!("SCRAM: {e}")))?;
                frontend::sasl_response(client.message(), &mut out).map_err(Error::Io)?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let client = scram
                    .as_mut()
                    .ok_or_else(|| fail("SASL out of order".into()))?;
                client
                    .finish(body.data())
                    .map_err(|e| fail(format!("SCRAM server signature: {e}")))?;
            }
            Message::ParameterStatus(body) => {
                let name = body.name().map_err(Error::Io)?.to_string();
                let value = body.value().map_err(Error::Io)?.to_string();
                server_params.push((name, value));
            }
            Message::BackendKeyData(body) => key = (body.process_id(), body.secret_key()),
            Message::ReadyForQuery(_) => {
                return Ok(ServerConn {
                    stream,
                    params: server_params,
                    key,
                    leftover: buf,
                })
            }
            Message::ErrorResponse(body) => return Err(server_error(&node, &body)),
            Message::NoticeResponse(_) => {}
            _ => return Err(fail("unexpected message during startup".into())),
        }
        if !out.is_empty() {
            stream.write_all(&out).await.map_err(Error::Io)?;
        }
    }
}

/// The error in a whole ErrorResponse message from a server.
pub(crate) fn error_message(node: &str, message: &[u8]) -> Error {
    match Message::parse(&mut BytesMut::from(message)) {
        Ok(Some(Message::ErrorResponse(body))) => server_error(node, &body),
        _ => Error::Protocol(format!("server {node} sent a malformed error")),
    }
}

fn server_error(node: &str, body: &ErrorResponseBody) -> Error {
    let mut code = String::new();
    let mut message = String::new();
    let mut fields: ErrorFields<'_> = body.fields();
    while let Ok(Some(field)) = fields.next() {
        match field.type_() {
            b'C' => code = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            _ => {}
        }
    }
    Error::ServerRefused {
        node: node.to_string(),
        code,
        message,
    }
}
