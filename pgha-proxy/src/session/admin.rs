//! A session on the admin console (database `pgha`): simple queries
//! answered from the proxy's own state.

use std::sync::Arc;

use bytes::BytesMut;

use crate::admin::{
    check, cluster_tag, handle_query, judge, respond_outcome, AdminAction, ControlError, Outcome,
};
use crate::frame::{self, FrameReader};
use crate::stream::Stream;
use crate::{admin_view, messages, Error, Shared};
use pgha_core::Command;

/// Serves an authenticated client of the admin database until it leaves.
pub(crate) async fn serve(
    shared: &Arc<Shared>,
    client: Stream,
    user: &str,
    key: (i32, i32),
) -> Result<(), Error> {
    let (read, mut write) = client.into_split();
    let mut out = BytesMut::with_capacity(1024);
    if !shared.live().admin_users.iter().any(|u| u == user) {
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
                    perform(shared, action, user, &mut out).await;
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

/// Carries out what a statement asked for; the commands that act write
/// their answer into `out` once done.
async fn perform(shared: &Shared, action: AdminAction, user: &str, out: &mut BytesMut) {
    match action {
        AdminAction::Pause => {
            tracing::warn!(user, "PAUSE from the admin console");
            shared.gate.pause().await;
        }
        AdminAction::Resume => {
            tracing::warn!(user, "RESUME from the admin console");
            shared.gate.resume();
        }
        AdminAction::Reload => {
            tracing::warn!(user, "RELOAD from the admin console");
            let hook = shared
                .reload
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let result = match hook {
                Some(hook) => hook().await.map(Outcome::Reloaded),
                None => Err(ControlError::Unsupported("RELOAD (no configuration file)")),
            };
            respond_outcome("RELOAD", &result, out);
        }
        AdminAction::Cluster(command) => {
            let tag = cluster_tag(&command);
            tracing::warn!(user, command = ?command, "{tag} from the admin console");
            let result = run_cluster_command(shared, command).await;
            match &result {
                Ok(Outcome::Cluster { actions, .. }) => {
                    for acted in actions {
                        match &acted.failed {
                            None => tracing::warn!(action = ?acted.action, "{tag}: done"),
                            Some(why) => {
                                tracing::warn!(action = ?acted.action, error = %why, "{tag}: failed")
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "{tag} not done"),
            }
            respond_outcome(tag, &result, out);
        }
    }
}

/// Checks a cluster command against the topology, runs it on the monitor,
/// judges what it did.
async fn run_cluster_command(shared: &Shared, command: Command) -> Result<Outcome, ControlError> {
    let Some(control) = &shared.control else {
        return Err(ControlError::Unsupported(
            "a cluster command (no cluster monitor)",
        ));
    };
    let topology = shared.topology.borrow().clone();
    check(&topology, &command)?;
    let actions = control
        .command(command.clone())
        .await
        .map_err(|e| match e {
            // Nothing ran: a follower refuses and names the leader.
            pgha_core::Error::NotLeader { .. } => ControlError::Refused(e.to_string()),
            e => ControlError::Failed(e.to_string()),
        })?;
    judge(command, actions)
}
