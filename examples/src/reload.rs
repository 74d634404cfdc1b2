//! Reloading `pgha run`'s configuration: SIGHUP and the console's
//! `RELOAD` (and so `pgha-ctl reload`) do the same.
//!
//! The file given at start is read again, with the flags given at start
//! laid over it, exactly as at start. A file with mistakes is refused
//! whole: nothing changes, and each mistake is logged and answered as
//! `file:line:column: what is wrong`. Otherwise what can change while
//! serving does ([`pgha_proxy::LIVE_SETTINGS`]: pool sizes, timeouts, the
//! hba and auth files, …), and every other changed setting (the listen
//! address, the pool mode, the nodes, the monitor's timing, TLS files, …)
//! is named, in the log and in the reply, as needing a restart.

use pgha_proxy::admin::{ControlError, ReloadLine, ReloadReport};
use pgha_proxy::{ProxyHandle, ReloadResult};
use tokio::sync::{mpsc, oneshot};

use crate::args::RunArgs;
use crate::config::RunConfig;

/// A console `RELOAD` waiting for its answer.
pub type Request = oneshot::Sender<ReloadResult>;

/// Who asked for a reload.
#[derive(Debug)]
pub enum Origin {
    /// SIGHUP.
    Signal,
    /// The admin console (`RELOAD`, `pgha-ctl reload`), waiting for the
    /// answer.
    Console(Request),
}

/// Reads the configuration again on request and applies it to the proxy.
#[derive(Debug)]
pub struct Reloader {
    args: RunArgs,
    running: RunConfig,
    requests: mpsc::Receiver<Request>,
}

impl Reloader {
    /// A reloader for a daemon started from `args` (which gave `running`);
    /// the console's `RELOAD` on `proxy` comes here.
    pub fn new(args: RunArgs, running: RunConfig, proxy: &ProxyHandle) -> Self {
        let (tx, requests) = mpsc::channel::<Request>(4);
        proxy.on_reload(std::sync::Arc::new(move || {
            let tx = tx.clone();
            Box::pin(async move {
                let (reply, answer) = oneshot::channel();
                let stopping =
                    || ControlError::Refused("pgha is stopping: not reloaded".to_string());
                if tx.send(reply).await.is_err() {
                    return Err(stopping());
                }
                answer.await.unwrap_or_else(|_| Err(stopping()))
            })
        }));
        Self {
            args,
            running,
            requests,
        }
    }

    /// The next console request.
    pub async fn request(&mut self) -> Option<Request> {
        self.requests.recv().await
    }

    /// Reloads, logs every line of the outcome, answers the console if it
    /// asked.
    pub fn reload(&mut self, proxy: &ProxyHandle, origin: Origin) {
        let from = match &origin {
            Origin::Signal => "SIGHUP",
            Origin::Console(_) => "RELOAD",
        };
        let result = self.reload_now(proxy);
        match &result {
            Err(e) => {
                let problems = match e {
                    ControlError::ConfigInvalid(problems) => problems.clone(),
                    other => vec![other.to_string()],
                };
                for problem in problems {
                    tracing::error!(from, "reload refused: {problem}");
                }
                tracing::error!(
                    from,
                    "configuration not reloaded: the running settings stay"
                );
            }
            Ok(report) => {
                for line in &report.lines {
                    if line.applied {
                        tracing::warn!(from, setting = %line.setting, "reload: applied: {}", line.detail);
                    } else {
                        tracing::warn!(from, setting = %line.setting, "reload: NOT applied: {}", line.detail);
                    }
                }
                tracing::warn!(from, changed = report.lines.len(), "configuration reloaded");
            }
        }
        if let Origin::Console(reply) = origin {
            let _ = reply.send(result);
        }
    }

    fn reload_now(&mut self, proxy: &ProxyHandle) -> ReloadResult {
        let wanted = self.args.resolve().map_err(|e| {
            ControlError::ConfigInvalid(e.problems.iter().map(ToString::to_string).collect())
        })?;
        let mut lines = restart_lines(&self.running, &wanted);
        lines.extend(proxy.apply(&wanted.proxy));
        // What runs now: the applied settings, the rest as before.
        self.running.proxy = (*proxy.settings()).clone();
        self.running.hba_file = wanted.hba_file;
        self.running.auth_file = wanted.auth_file;
        Ok(ReloadReport { lines })
    }
}

/// The daemon's settings outside the proxy's: none changes while serving.
pub fn restart_lines(running: &RunConfig, wanted: &RunConfig) -> Vec<ReloadLine> {
    let mut lines = Vec::new();
    let mut differ = |setting: &str, before: String, after: String, show: bool| {
        if before != after {
            let change = if show {
                format!("{before} -> {after}")
            } else {
                "changed".to_string()
            };
            lines.push(ReloadLine {
                setting: setting.to_string(),
                applied: false,
                detail: format!("{change}; needs a restart"),
            });
        }
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    differ(
        "listen",
        running.listen.to_string(),
        wanted.listen.to_string(),
        true,
    );
    differ(
        "http",
        opt(running.http.map(|a| a.to_string())),
        opt(wanted.http.map(|a| a.to_string())),
        true,
    );
    differ(
        "threads",
        running.threads.to_string(),
        wanted.threads.to_string(),
        true,
    );
    differ(
        "unix_socket_dir",
        opt(running
            .unix_socket_dir
            .as_ref()
            .map(|d| d.display().to_string())),
        opt(wanted
            .unix_socket_dir
            .as_ref()
            .map(|d| d.display().to_string())),
        true,
    );
    let nodes = |c: &RunConfig| {
        c.nodes
            .iter()
            .map(|n| {
                format!(
                    "{}={}:{} weight {} priority {}",
                    n.id, n.host, n.port, n.weight, n.priority
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    differ("node", nodes(running), nodes(wanted), true);
    // Debug text: compared, never shown (it may hold passwords).
    differ(
        "monitor",
        format!("{:?}", running.monitor),
        format!("{:?}", wanted.monitor),
        false,
    );
    differ(
        "failover policy",
        format!("{:?}", running.policy),
        format!("{:?}", wanted.policy),
        false,
    );
    differ(
        "monitor connections",
        format!("{:?}", running.controller),
        format!("{:?}", wanted.controller),
        false,
    );
    differ(
        "tls",
        format!("{:?}", running.tls),
        format!("{:?}", wanted.tls),
        false,
    );
    lines
}
