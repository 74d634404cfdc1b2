//! A session on the admin console (database `pgha`): simple queries
//! answered from the proxy's own state.

use std::sync::Arc;

use bytes::BytesMut;

use crate::admin::{handle_query, AdminAction};
use crate::frame::{self, FrameReader};
use crate::stream::Stream;
use crate::{admin_view, messages, Error, Shared};

/// Serves an authenticated client of the admin database until it leaves.
pub(crate) async fn serve(
    shared: &Arc<Shared>,
    client: Stream,
    user: &str,
    key: (i32, i32),
) -> Result<(), Error> {
    let (read, mut write) = client.into_split();
    let mut out = BytesMut::with_capacity(1024);
    if !shared.config.admin_users.iter().any(|u| u == user) {
        tracing::warn!(user, "refused on the admin console: not in admin_users");
        messages::error(
            &mut out,
            "FATAL",
            "28000",
            &format!("pgha: user \"{user}\" may not use the admin console (admin_users)"),
        );
        return write.write_all(&out).await.map_err(Error::Io);
    }
    messages::auth_ok(&mut out);
    for (name, value) in [
        ("server_version", "15.0 (pgha admin console)"),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
    ] {
        messages::parameter_status(&mut out, name, value);
    }
    messages::backend_key(&mut out, key.0, key.1);
    messages::ready(&mut out, b'I');
    write.write_all(&out).await.map_err(Error::Io)?;
    let mut frames = FrameReader::new(read, 1 << 20);
    // After an extended-protocol message: skip to Sync, as a server does.
    let mut discarding = false;
    while let Some(message) = frames.next().await? {
        out.clear();
        match message[0] {
            b'Q' => {
                let body = frame::body(&message);
                let sql = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(body));
                let snapshot = admin_view::snapshot(shared);
                for action in handle_query(&sql, &snapshot, &mut out) {
                    perform(shared, action).await;
                }
                messages::ready(&mut out, b'I');
            }
            b'X' => return Ok(()),
            b'S' => {
                discarding = false;
                messages::ready(&mut out, b'I');
            }
            _ if discarding => {}
            _ => {
                discarding = true;
                messages::error(
                    &mut out,
                    "ERROR",
                    "0A000",
                    "pgha: the admin console takes simple queries only",
                );
            }
        }
        if !out.is_empty() {
            write.write_all(&out).await.map_err(Error::Io)?;
        }
    }
    Ok(())
}

async fn perform(shared: &Shared, action: AdminAction) {
    match action {
        AdminAction::Pause => {
            tracing::warn!("PAUSE from the admin console");
            shared.gate.pause().await;
        }
        AdminAction::Resume => {
            tracing::warn!("RESUME from the admin console");
            shared.gate.resume();
        }
        AdminAction::Reload => match &shared.reload {
            Some(reload) => reload(),
            None => tracing::info!("RELOAD: nothing to reload in this embedding"),
        },
    }
}
