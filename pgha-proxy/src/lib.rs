//! # pgha-proxy
//!
//! The PostgreSQL wire-protocol proxy of pgha: the one address clients
//! connect to. It
//!
//! * accepts clients over TCP and on a Unix socket named like PostgreSQL's
//!   (`<dir>/.s.PGSQL.<port>`, [`bind_unix`], [`Proxy::serve_listeners`]);
//! * handles the startup phase (SSLRequest answered `S` and the TLS
//!   handshake run when [`ProxyConfig::tls`] is set and the client is on
//!   TCP, `N` otherwise; GSSENCRequest `N`; CancelRequest; StartupMessage
//!   3.0, other versions get a clear error), with a deadline and a length
//!   check before any allocation. Bytes sent after an SSL or GSS request
//!   before its answer are refused (`08P01`), never taken as encrypted;
//!   [`ProxyConfig::tls_required`] refuses plain TCP clients (`28000`);
//! * authenticates clients: hba rules and an auth file ([`ClientAuth`]) with
//!   SCRAM-SHA-256, md5, cleartext, trust and reject; Unix-socket clients
//!   match `local` rules, TLS clients `hostssl`, plain TCP ones `hostnossl`;
//! * pools server connections per node, database, user and startup options
//!   ([`pool`]) in [`PoolMode::Session`] or [`PoolMode::Transaction`], with a
//!   queue and a timeout when a pool is full, over TCP (optionally TLS,
//!   [`ServerTls`]) or the server's Unix socket when the node's host is a
//!   directory (starts with `/`, as in libpq: cheaper for a PostgreSQL on
//!   the same host); relays whole messages as bytes (simple and extended
//!   protocol, COPY, notices, NOTIFY in session mode);
//! * carries a client's protocol-level prepared statements ([`prepared`])
//!   and reported parameters ([`params`]) to whichever server connection its
//!   transaction gets, hiding the proxy's own requests ([`tracker`]);
//! * sends transactions that need the primary to the primary of the current
//!   term, from a `watch` of [`pgha_core::Topology`]: a client between
//!   transactions keeps its connection across a failover and its next
//!   statement goes to the new primary (held up to
//!   [`ProxyConfig::no_primary_wait`] while there is none); a client whose
//!   statement was running gets `08006` and keeps its connection;
//! * balances reads (simple or extended protocol, classified by a real
//!   PostgreSQL lexer, [`classify`]; a simple query's route cached by its
//!   text, [`route_cache`]) over standbys within
//!   [`ProxyConfig::max_standby_lag_bytes`] and
//!   [`ProxyConfig::max_standby_lag_time`], with read-your-writes by
//!   pinning or by WAL position ([`Consistency`]);
//! * issues its own cancel keys and forwards a CancelRequest to the server
//!   connection the client uses at that moment;
//! * answers the [`admin`] console (database `pgha`) and holds new
//!   transactions on `PAUSE` or a planned switchover ([`PauseGate`]).
//!
//! Monitoring: [`ProxyMetrics`] counts clients, server connections, pool
//! waits, transactions by node and route decision, and follows the
//! topology (term, lag, up, primary) and how late the runtime runs
//! ([`stall`]); [`http::serve_http`] serves them on
//! `/metrics` (Prometheus) with a JSON `/status` beside them.
//!
//! ```no_run
//! use std::sync::Arc;
//! use pgha_core::{NodeState, Role, Topology};
//! use pgha_proxy::{Proxy, ProxyConfig};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let topology = Topology::new([NodeState::new("db1", Role::Primary, "127.0.0.1", 5432)]);
//! let (_publish, topology) = tokio::sync::watch::channel(Arc::new(topology));
//! let proxy = Proxy::new(ProxyConfig::default(), topology);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6432").await?;
//! proxy.serve(listener, std::future::pending()).await;
//! # Ok(()) }
//! ```
//!
//! Errors carry the SQLSTATE a client is sent:
//!
//! ```
//! let e = pgha_proxy::Error::Protocol("message length 3 is below 4".into());
//! assert_eq!(e.sqlstate(), "08P01");
//! ```

pub mod admin;
mod admin_view;
pub mod auth;
mod auth_query;
mod bell;
pub mod classify;
mod client_auth;
mod clients;
mod config;
mod control;
mod drain;
mod error;
pub mod frame;
pub mod fuzzing;
pub mod http;
mod listener;
mod live;
pub mod messages;
pub mod metrics;
pub mod params;
mod pause;
pub mod pool;
pub mod prepared;
mod prepared_sql;
mod proxy;
mod replay;
pub mod route;
pub mod route_cache;
pub mod server;
mod server_tls;
mod session;
mod spare;
pub mod stall;
pub mod startup;
pub mod stream;
mod suspects;
mod tls;
pub mod tracker;
mod upkeep;

pub use client_auth::ClientAuth;
pub use config::{Consistency, PoolMode, ProxyConfig};
pub use control::{ClusterControl, ReloadHook, ReloadResult};
pub use drain::{Drain, DrainOutcome, DrainPhase};
pub use error::Error;
pub use listener::{bind_unix, Listener};
pub use live::{plan as plan_reload, LIVE_SETTINGS};
pub use metrics::ProxyMetrics;
pub use pause::PauseGate;
pub(crate) use proxy::Shared;
pub use proxy::{CancelTarget, Proxy, ProxyHandle};
pub use server::ServerAuth;
pub use server_tls::ServerTls;
pub use tls::{TlsConfig, TlsError};
