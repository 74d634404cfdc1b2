//! Queries the proxy runs on a server connection for itself (restoring
//! parameters at login, the session-mode reset): answers read and hidden.

use bytes::{BufMut, BytesMut};

use crate::params::parse_status;
use crate::pool::ServerConnection;
use crate::{frame, Error};

/// Runs `sql` and reads up to its ReadyForQuery, keeping reported
/// parameters; the server's error, if any, is returned.
pub(crate) async fn run(
    conn: &mut ServerConnection,
    sql: &str,
    timeout: std::time::Duration,
) -> Result<(), Error> {
    tokio::time::timeout(timeout, run_inner(conn, sql))
        .await
        .unwrap_or_else(|_| {
            Err(Error::Server {
                node: conn.node.to_string(),
                what: format!("no answer to the proxy's own query within {timeout:?}"),
            })
        })
}

async fn run_inner(conn: &mut ServerConnection, sql: &str) -> Result<(), Error> {
    let mut out = BytesMut::with_capacity(sql.len() + 6);
    out.put_u8(b'Q');
    out.put_u32((sql.len() + 5) as u32);
    out.put_slice(sql.as_bytes());
    out.put_u8(0);
    conn.writer.write_all(&out).await.map_err(Error::Io)?;
    let mut failure = None;
    loop {
        let Some(message) = conn.reader.next().await? else {
            return Err(Error::ServerLost);
        };
        let body = frame::body(&message);
        match message[0] {
            b'S' => {
                if let Some((name, value)) = parse_status(body) {
                    conn.params.set(name, value);
                }
            }
            b'E' => failure = Some(crate::server::error_message(conn.node.as_str(), &message)),
            b'Z' => return failure.map_or(Ok(()), Err),
            _ => {}
        }
    }
}
