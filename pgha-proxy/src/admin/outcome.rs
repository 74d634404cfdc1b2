//! The commands that act — `PROMOTE`, `SWITCHOVER`, `ATTACH`, `DETACH`,
//! `RELOAD` — checked before they run and answered once they are done.
//!
//! A command the topology already says cannot work (an unknown node, a
//! standby that is down, a node already attached) is refused by
//! [`check`] before anything runs, with a SQLSTATE a script can test. One
//! the monitor's policy declines (a candidate too far behind) runs no
//! action and is refused by [`judge`] the same way.

use bytes::BytesMut;
use pgha_core::{Action, Command, NodeState, Role, Status, Topology};

use super::table::{int8, text, Column, Table, Value};
use crate::messages;

/// Why an acting command was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No node has that name.
    #[error("node \"{node}\" does not exist")]
    UnknownNode {
        /// The name given.
        node: String,
    },
    /// The cluster is not in a state where the command makes sense;
    /// nothing ran.
    #[error("{0}")]
    Refused(String),
    /// The command ran and an action failed (what ran before it stays
    /// done; `SHOW STATUS` tells the state now).
    #[error("{0}")]
    Failed(String),
    /// This proxy was built without what the command needs (a cluster
    /// monitor, a configuration file to reload).
    #[error("{0} is not available in this proxy")]
    Unsupported(&'static str),
    /// The configuration file has mistakes: nothing of it was applied.
    #[error("configuration not reloaded: {} mistake(s); the running settings stay", .0.len())]
    ConfigInvalid(Vec<String>),
}

impl ControlError {
    /// The SQLSTATE the client is sent.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            // undefined_object
            ControlError::UnknownNode { .. } => "42704",
            // object_not_in_prerequisite_state
            ControlError::Refused(_) => "55000",
            // system_error: outside the proxy, in a node or the monitor
            ControlError::Failed(_) => "58000",
            ControlError::Unsupported(_) => "0A000",
            // config_file_error
            ControlError::ConfigInvalid(_) => "F0000",
        }
    }

    /// Details for the error's DETAIL field (one mistake per line).
    pub fn detail(&self) -> Option<String> {
        match self {
            ControlError::ConfigInvalid(problems) => Some(problems.join("\n")),
            _ => None,
        }
    }
}

/// One setting looked at by a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadLine {
    /// The setting (`pool_size`, `hba_file`, `listen`…).
    pub setting: String,
    /// Whether the new value is in effect now.
    pub applied: bool,
    /// The new value, and for what is not applied, why (needs a restart).
    pub detail: String,
}

/// What a reload changed: only settings whose value changed are listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// One line per changed setting.
    pub lines: Vec<ReloadLine>,
}

/// One action the monitor took for a command, and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acted {
    /// The action.
    pub action: Action,
    /// Why it failed; `None` when it was carried out.
    pub failed: Option<String>,
}

/// How an acting command went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The monitor carried the command out with these actions, in order
    /// (one that is not what the command is for may have failed, e.g. the
    /// rejoin after a switchover: its row says so).
    Cluster {
        /// The command.
        command: Command,
        /// What the monitor did.
        actions: Vec<Acted>,
    },
    /// The configuration was read again.
    Reloaded(ReloadReport),
}

/// Refuses a command the topology says cannot work, before it runs.
pub fn check(topology: &Topology, command: &Command) -> Result<(), ControlError> {
    let named = |node: &pgha_core::NodeId| {
        topology
            .node(node)
            .ok_or_else(|| ControlError::UnknownNode {
                node: node.to_string(),
            })
    };
    let refused = |what: String| Err(ControlError::Refused(what));
    match command {
        Command::Promote { node } => {
            let n = named(node)?;
            let adopt = topology.held().is_some() && n.in_recovery == Some(false);
            if !adopt && !up_standby(n) {
                return refused(format!(
                    "node \"{node}\" cannot be promoted: it is {} (only an up standby can be)",
                    describe(n)
                ));
            }
        }
        Command::Switchover { target } => {
            if topology.usable_primary().is_none() {
                return refused(
                    "no primary to switch over from (PROMOTE a standby instead)".to_string(),
                );
            }
            match target {
                Some(node) => {
                    let n = named(node)?;
                    if !up_standby(n) {
                        return refused(format!(
                            "node \"{node}\" cannot take over: it is {} (only an up standby can)",
                            describe(n)
                        ));
                    }
                }
                None if !topology.nodes().iter().any(up_standby) => {
                    return refused("no up standby to switch over to".to_string());
                }
                None => {}
            }
        }
        Command::Attach { node } => {
            let n = named(node)?;
            if n.status == Status::Up {
                return refused(format!("node \"{node}\" is already attached (up)"));
            }
        }
        Command::Detach { node } => {
            let n = named(node)?;
            if n.status == Status::Detached {
                return refused(format!("node \"{node}\" is already detached"));
            }
        }
        Command::Maintenance { node, .. } => {
            named(node)?;
        }
    }
    Ok(())
}

fn up_standby(n: &NodeState) -> bool {
    n.role == Role::Standby && n.status == Status::Up
}

fn describe(n: &NodeState) -> String {
    format!(
        "{} and {}",
        super::nodes::role_name(n.role),
        super::nodes::status_name(n.status)
    )
}

/// Judges what the monitor did: a command that led to no action (the
/// policy declined it) is refused, with the policy's reason when it gave
/// one; one whose own action failed (the promotion of a `PROMOTE`) failed,
/// every action and its fate in the error's detail.
pub fn judge(command: Command, actions: Vec<Acted>) -> Result<Outcome, ControlError> {
    let acted = actions.iter().any(|a| {
        !matches!(
            a.action,
            Action::RefusePromotion { .. } | Action::NoPromotionCandidate { .. }
        )
    });
    if acted {
        if let Some(failed) = actions
            .iter()
            .find(|a| a.failed.is_some() && essential(&command, &a.action))
        {
            let (name, _, _) = describe_action(&failed.action);
            let node = failed.action.node().map_or("", |n| n.as_str());
            return Err(ControlError::Failed(format!(
                "{} failed: {name} {node}: {}",
                super::cluster_tag(&command),
                failed.failed.as_deref().unwrap_or_default()
            )));
        }
        return Ok(Outcome::Cluster { command, actions });
    }
    let why = actions.iter().map(|a| &a.action).find_map(|a| match a {
        Action::RefusePromotion {
            candidate,
            behind_bytes: behind,
            limit,
        } => Some(format!(
            "node \"{candidate}\" is {behind} bytes behind the primary, over maximum_lag ({limit})"
        )),
        Action::NoPromotionCandidate { .. } => Some("no standby can be promoted".to_string()),
        _ => None,
    });
    Err(ControlError::Refused(why.unwrap_or_else(|| {
        format!("{}: nothing to do", super::cluster_tag(&command))
    })))
}

/// Whether `action` is what `command` is for (its failure fails the
/// command), not a step around it.
fn essential(command: &Command, action: &Action) -> bool {
    match command {
        Command::Promote { .. } | Command::Switchover { .. } => {
            matches!(action, Action::Promote { .. })
        }
        Command::Attach { .. } => matches!(action, Action::Attach { .. } | Action::Rejoin { .. }),
        // Detaching the primary fails over: the promotion is the point.
        Command::Detach { .. } => matches!(action, Action::Detach { .. } | Action::Promote { .. }),
        Command::Maintenance { .. } => matches!(action, Action::Maintenance { .. }),
    }
}

const ACTIONS: &[Column] = &[
    text("action"),
    text("node"),
    int8("term"),
    text("status"),
    text("detail"),
];
const RELOADED: &[Column] = &[text("setting"), text("status"), text("detail")];

/// Writes the answer to an acting command: its result set and
/// `CommandComplete`, or an `ErrorResponse`. No `ReadyForQuery`.
pub fn respond_outcome(tag: &str, result: &Result<Outcome, ControlError>, out: &mut BytesMut) {
    match result {
        Ok(Outcome::Cluster { actions, .. }) => {
            let mut table = Table::new(ACTIONS);
            for acted in actions {
                let action = &acted.action;
                let (name, term, detail) = describe_action(action);
                let (status, detail) = match &acted.failed {
                    None => ("done", detail),
                    Some(why) => ("failed", why.clone()),
                };
                table.push(vec![
                    Value::text(name),
                    Value::opt_text(action.node().map(|n| n.as_str())),
                    Value::opt_int(term),
                    Value::text(status),
                    Value::text(detail),
                ]);
            }
            table.write(tag, out);
        }
        Ok(Outcome::Reloaded(report)) => {
            let mut table = Table::new(RELOADED);
            for line in &report.lines {
                table.push(vec![
                    Value::text(line.setting.as_str()),
                    Value::text(if line.applied {
                        "applied"
                    } else {
                        "not applied"
                    }),
                    Value::text(line.detail.as_str()),
                ]);
            }
            table.write(tag, out);
        }
        Err(e) => messages::error_with_detail(
            out,
            "ERROR",
            e.sqlstate(),
            &e.to_string(),
            e.detail().as_deref(),
        ),
    }
}

/// An action as (name, term, detail) for its row.
fn describe_action(action: &Action) -> (&'static str, Option<u64>, String) {
    match action {
        Action::Promote { term, .. } => ("promote", Some(*term), String::new()),
        Action::Follow { primary, term, .. } => {
            ("follow", Some(*term), format!("now follows {primary}"))
        }
        Action::Fence { term, .. } => ("fence", Some(*term), String::new()),
        Action::Detach { .. } => ("detach", None, String::new()),
        Action::Attach { .. } => ("attach", None, String::new()),
        Action::Quarantine { reason, .. } => ("quarantine", None, format!("{reason:?}")),
        Action::Probe { .. } => ("probe", None, String::new()),
        Action::Rejoin { primary, .. } => ("rejoin", None, format!("as a standby of {primary}")),
        Action::Maintenance { enabled, .. } => (
            "maintenance",
            None,
            if *enabled { "started" } else { "ended" }.to_string(),
        ),
        Action::RefusePromotion {
            behind_bytes: behind,
            limit,
            ..
        } => (
            "refuse_promotion",
            None,
            format!("{behind} bytes behind, limit {limit}"),
        ),
        Action::NoPromotionCandidate { .. } => ("no_promotion_candidate", None, String::new()),
    }
}
