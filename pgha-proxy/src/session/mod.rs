//! One client session: startup, authentication, login, then the relay
//! ([`relay`]) until the client leaves.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::time::Instant;

use crate::auth::AuthError;
use crate::frame::FrameReader;
use crate::metrics::AuthFailure;
use crate::params::{self, Params};
use crate::stream::{Peer, Stream};
use crate::{messages, Error, Shared};

mod acquire;
mod admin;
mod hidden;
mod negotiate;
mod relay;

pub(crate) use relay::{Holdable, Written};

/// Who the client is and what its server connections must look like.
/// Immutable once built, and shared: the sessions of one login (the same
/// user, database, options and parameters asked for; usually thousands of
/// clients share a few) hold one copy (see [`Logins`]), which the admin
/// console's entry points to as well. An idle client costs a pointer here,
/// not its strings.
#[derive(Debug, Clone)]
pub(crate) struct Login(Arc<LoginParts>);

/// What a [`Login`] holds.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct LoginParts {
    /// The client's user name.
    pub(crate) user: String,
    pub(crate) database: String,
    /// User name on the servers.
    pub(crate) server_user: String,
    /// Startup options other than the tracked parameters (see
    /// [`crate::pool::PoolKey::options`]).
    pub(crate) options: String,
    /// Tracked parameters the client asked for in its startup packet.
    pub(crate) asked: Params,
}

impl std::ops::Deref for Login {
    type Target = LoginParts;

    fn deref(&self) -> &LoginParts {
        &self.0
    }
}

impl Login {
    fn new(shared: &Shared, startup: &[(String, String)]) -> Self {
        let get = |key: &str| {
            startup
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let user = get("user").unwrap_or_default();
        let database = get("database").unwrap_or_else(|| user.clone());
        let server_user = shared
            .config
            .server_auth
            .user
            .clone()
            .unwrap_or_else(|| user.clone());
        let mut asked = Params::default();
        let mut options: Vec<String> = startup
            .iter()
            .filter(|(k, _)| k != "user" && k != "database")
            .filter(|(k, v)| !asked.set(k, v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        options.sort();
        shared.logins.intern(LoginParts {
            user,
            database,
            server_user,
            options: options.join("\0"),
            asked,
        })
    }
}

/// The logins of connected clients, one copy of each.
#[derive(Debug, Default)]
pub(crate) struct Logins(Mutex<LoginSet>);

#[derive(Debug, Default)]
struct LoginSet {
    logins: HashSet<Arc<LoginParts>>,
    /// Logins no session holds any more are dropped when the set reaches
    /// this size: at most about twice the live ones are kept, and the
    /// sweep is paid for by the inserts before it.
    sweep_at: usize,
}

impl Logins {
    /// The shared copy of `parts`.
    fn intern(&self, parts: LoginParts) -> Login {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = set.logins.get(&parts) {
            return Login(found.clone());
        }
        if set.logins.len() >= set.sweep_at {
            // Only the set holds it: no session does, and none can clone
            // it but through this lock.
            set.logins.retain(|l| Arc::strong_count(l) > 1);
            set.sweep_at = (2 * set.logins.len()).max(64);
        }
        let login = Arc::new(parts);
        set.logins.insert(login.clone());
        Login(login)
    }
}

/// A connection just accepted: boxed, because an async fn keeps its
/// arguments for as long as it runs (besides the copies its body moves
/// on), and the session task runs as long as the client stays.
pub(crate) type Accepted = Box<(Stream, Peer)>;

pub(crate) async fn run(shared: Arc<Shared>, accepted: Accepted) {
    // Out of its box in a block of its own: moved out of in place, the box
    // would be freed only when the task ends.
    let (client, peer) = {
        let accepted = accepted;
        *accepted
    };
    // Two phases, so that what startup, authentication and login need is
    // freed before the session settles: the task keeps only the relay.
    let Some(mut session) = Box::pin(open(&shared, client, peer)).await else {
        return;
    };
    session.serve().await;
}

/// A client past login, ready for its relay.
struct Opened<'a> {
    relay: relay::Relay<'a>,
    shared: &'a Arc<Shared>,
    status: Arc<crate::clients::ClientStatus>,
    frames: FrameReader<crate::stream::ReadHalf>,
    /// Last: the client leaves the books after its relay is done.
    presence: Presence<'a>,
}

impl Opened<'_> {
    /// Where the client connected from (kept once, in its console entry).
    fn peer(&self) -> Peer {
        self.status.entry().peer()
    }

    /// Relays until the client leaves. By reference: the session's state
    /// is held once, in the task.
    ///
    /// When the proxy drains, the session ends between transactions (the
    /// relay is then waiting for the client's next message, or holds a
    /// session-mode server between transactions: dropping its future there
    /// loses nothing) with `FATAL 57P01`; when it terminates, at once.
    async fn serve(&mut self) {
        let _counted = self.shared.drain.enter();
        let drain = self.shared.drain.clone();
        let ended = tokio::select! {
            // The relay first: an answer that ends a transaction reaches
            // the client before the drain looks at the session.
            biased;
            ended = self.relay.run(&mut self.frames) => Some(ended),
            () = drain.ends(&self.status, self.presence.key.0) => None,
        };
        // Moved whole into the match: left in its binding (the `None` arm
        // moves nothing out), it would be kept in the task, as big as an
        // `Error`, across the awaits below, for the session's whole life.
        match std::convert::identity(ended) {
            Some(Err(e)) => tracing::debug!(peer = %self.peer(), error = %e, "session ended"),
            Some(Ok(())) => {}
            None => {
                tracing::info!(peer = %self.peer(), in_transaction = !self.status.runs_no_transaction(), "session ended: the proxy is shutting down");
                self.relay.fatal(&Error::AdminShutdown).await;
            }
        }
        Box::pin(self.relay.finish()).await;
    }
}

/// Startup, authentication and login; `None` when the session ends there
/// (refused, failed, or an admin console session, served here).
async fn open(shared: &Arc<Shared>, client: Stream, peer: Peer) -> Option<Opened<'_>> {
    let live = shared.live();
    let deadline = Instant::now() + live.startup_timeout;
    let (mut client, startup) =
        Box::pin(negotiate::startup(shared, client, peer, deadline)).await?;
    if shared.config.tls_required && matches!(client, Stream::Tcp(_)) {
        let e = Error::TlsRequired;
        refused(shared, peer, &startup, AuthFailure::HbaReject, &e);
        let _ = send_fatal(&mut client, &e).await;
        return None;
    }
    let (mut presence, over_limit) = Presence::enter(shared);
    if over_limit {
        let e = Error::TooManyClients {
            max: live.max_client_conn,
        };
        refused(shared, peer, &startup, AuthFailure::TooMany, &e);
        let _ = send_fatal(&mut client, &e).await;
        return None;
    }
    if let Some(auth) = &live.client_auth {
        let tls = client.is_tls();
        let user = startup
            .iter()
            .find(|(k, _)| k == "user")
            .map_or("", |(_, v)| v.as_str());
        let looked_up = if auth.users.lookup(user).is_none() {
            Box::pin(crate::auth_query::lookup(shared, user)).await
        } else {
            None
        };
        let exchange = Box::pin(crate::client_auth::authenticate(
            &mut client,
            auth,
            peer.ip(),
            tls,
            &startup,
            looked_up.as_ref(),
            &shared.mock_key,
        ));
        let done = tokio::time::timeout(live.startup_timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Protocol(
                    "authentication not finished in time".into(),
                ))
            });
        if let Err(e) = done {
            let reason = match &e {
                Error::Auth(AuthError::Rejected { .. }) => AuthFailure::HbaReject,
                Error::Auth(_) => AuthFailure::Password,
                Error::Protocol(message) if message.contains("in time") => AuthFailure::Timeout,
                _ => AuthFailure::Protocol,
            };
            refused(shared, peer, &startup, reason, &e);
            let _ = send_fatal(&mut client, &e).await;
            return None;
        }
    }
    let login = Login::new(shared, &startup);
    let (pid, secret) = shared.register_client();
    presence.key = (pid, secret);
    if login.database == crate::admin::ADMIN_DATABASE {
        if let Err(e) = Box::pin(admin::serve(shared, client, &login.user, (pid, secret))).await {
            tracing::debug!(%peer, error = %e, "admin session ended");
        }
        return None;
    }
    let status = Arc::new(crate::clients::ClientStatus::new(
        crate::clients::ClientEntry::new(login.clone(), peer.addr()),
    ));
    shared.clients.insert(pid, status.clone());
    let (client_read, client_write) = client.into_split();
    let mut relay = relay::Relay::new(shared, client_write, login, (pid, secret), status.clone());
    let greeting = match Box::pin(relay.login()).await {
        Ok(greeting) => greeting,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "login failed");
            if e.sqlstate() == "3D000" {
                shared.metrics.auth_failure(AuthFailure::UnknownDatabase);
            }
            relay.fatal(&e).await;
            return None;
        }
    };
    if let Err(e) = relay.greet(greeting).await {
        tracing::debug!(%peer, error = %e, "client gone before its greeting");
        Box::pin(relay.finish()).await;
        return None;
    }
    Some(Opened {
        relay,
        shared,
        status,
        frames: FrameReader::lean(client_read, shared.config.max_message)
            .streaming_over(crate::frame::CHUNK),
        presence,
    })
}

/// A client turned away before its session began: counted by `reason`, and
/// logged at WARN with its address and the user and database it asked for,
/// so that an operator (or fail2ban) sees a guesser at the default level.
/// Never a password: the errors name users, rules and message kinds only
/// (an unsupported SASL mechanism, where a confused client may put one, is
/// a fixed text). Client-chosen names are logged quoted and escaped, so a
/// user name cannot forge a log line.
fn refused(
    shared: &Shared,
    peer: Peer,
    startup: &[(String, String)],
    reason: AuthFailure,
    e: &Error,
) {
    shared.metrics.auth_failure(reason);
    let get = |key: &str| {
        startup
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let user = get("user").unwrap_or_default();
    let database = get("database").unwrap_or(user);
    tracing::warn!(
        %peer,
        ?user,
        ?database,
        reason = reason.as_str(),
        error = ?e.to_string(),
        "client refused"
    );
}

/// A client in the proxy's books while it is connected: counted (and in
/// the `pgha_clients` gauge) from its startup, and once it has a key, in
/// the cancel registry and the console's list. One guard rather than one
/// per book: every idle session holds it.
struct Presence<'a> {
    shared: &'a Shared,
    /// The (pid, secret) the client was given; pid 0 until then (the
    /// proxy's pids start at 1 << 24).
    key: (i32, i32),
}

impl<'a> Presence<'a> {
    /// Counts the client in; true when that puts it over the limit.
    fn enter(shared: &'a Shared) -> (Self, bool) {
        let before = shared.client_count.fetch_add(1, Ordering::Relaxed);
        shared.metrics.client_arrived();
        let over_limit = before >= shared.live().max_client_conn;
        (
            Self {
                shared,
                key: (0, 0),
            },
            over_limit,
        )
    }
}

impl Drop for Presence<'_> {
    fn drop(&mut self) {
        self.shared.client_count.fetch_sub(1, Ordering::Relaxed);
        self.shared.metrics.client_left();
        if self.key.0 != 0 {
            self.shared.forget_client(self.key);
        }
    }
}

async fn send_fatal(client: &mut Stream, e: &Error) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    messages::error(&mut out, "FATAL", e.sqlstate(), &e.client_message());
    client.write_all(&out).await
}

/// The first messages a client gets after authentication.
pub(crate) fn greeting(
    out: &mut BytesMut,
    reported: &[(String, String)],
    params: &Params,
    key: (i32, i32),
    notices: &[u8],
) {
    messages::auth_ok(out);
    for (name, value) in reported {
        if params::tracked(name).is_none() {
            messages::parameter_status(out, name, value);
        }
    }
    for (name, value) in params.iter() {
        messages::parameter_status(out, name, value);
    }
    messages::backend_key(out, key.0, key.1);
    out.extend_from_slice(notices);
    messages::ready(out, b'I');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(user: &str) -> LoginParts {
        LoginParts {
            user: user.into(),
            database: "db".into(),
            server_user: user.into(),
            options: String::new(),
            asked: Params::default(),
        }
    }

    fn held(logins: &Logins) -> usize {
        logins.0.lock().map(|s| s.logins.len()).unwrap_or(0)
    }

    #[test]
    fn equal_logins_share_one_copy_and_unheld_ones_are_swept() {
        let logins = Logins::default();
        let a = logins.intern(parts("a"));
        let b = logins.intern(parts("a"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        let kept = logins.intern(parts("kept"));
        drop((a, b));
        // 62 more that no session keeps: the set reaches 64, then the next
        // insert sweeps all but the one still held.
        for i in 0..62 {
            drop(logins.intern(parts(&i.to_string())));
        }
        assert_eq!(held(&logins), 64);
        let last = logins.intern(parts("last"));
        assert_eq!(held(&logins), 2);
        assert!(Arc::ptr_eq(&kept.0, &logins.intern(parts("kept")).0));
        drop(last);
    }
}

#[cfg(test)]
mod size {
    fn size_of_future<A, B, F: std::future::Future>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle client holds its session's task: the future plus about
    /// 100 bytes of tokio's, in a cell rounded up to 128 bytes. At most
    /// 768 bytes of future keep the cell at 896 (benches/README.md,
    /// "memory per idle client"); a field added to `Relay` or `Opened`
    /// that pushes it over costs every idle client 128 bytes.
    #[test]
    fn an_idle_sessions_task_stays_in_its_size_class() {
        let future = size_of_future(super::run);
        assert!(future <= 768, "the session future is {future} bytes");
    }
}
