//! Carrying out what the policy decided, and feeding back what failed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{ClusterMonitor, MonitorEventKind};
use crate::{Action, Error, Event, Fenced, NodeId, Observation};

impl ClusterMonitor {
    /// Feeds one event, executes what it decided, and feeds back failures
    /// until nothing is left to do.
    pub(super) async fn feed_planned(
        &mut self,
        event: Event,
        planned: bool,
    ) -> Result<Vec<Action>, Error> {
        let mut queue = VecDeque::from([event]);
        let mut all = Vec::new();
        while let Some(event) = queue.pop_front() {
            let before = self.state.snapshot();
            let actions = self.state.handle(event.clone());
            if actions.is_empty() {
                self.publish();
                continue;
            }
            if self.must_record(&before) {
                // Record the decision before acting on it; one that cannot
                // be recorded (a member that no longer leads) is not kept.
                if let Err(e) = self.record_decision().await {
                    self.state.rewind(before, &event);
                    return Err(e);
                }
            }
            self.emit(MonitorEventKind::Decided {
                event,
                actions: actions.clone(),
                term: self.state.topology().term(),
            });
            let mut fenced_old = None;
            for action in &actions {
                if planned {
                    if let (Action::Promote { node, .. }, Some(old)) = (action, &fenced_old) {
                        self.wait_caught_up(old, node).await;
                    }
                }
                match self.execute(action).await {
                    Some(next) => queue.push_back(next),
                    // The new primary takes writes now: say so before the
                    // slower follow/fence/rejoin steps.
                    None if matches!(action, Action::Promote { .. }) => self.publish(),
                    None => {}
                }
                if let Action::Fence { node, .. } = action {
                    fenced_old = Some(node.clone());
                }
            }
            // Published once carried out: a proxy must not send writes to a
            // node that the model calls primary before it really is one.
            // (A failed action was fed back above and repairs the model
            // before anyone sees it.)
            if !queue
                .iter()
                .any(|e| matches!(e, Event::ActionFailed { .. }))
            {
                self.publish();
            }
            all.extend(actions);
        }
        Ok(all)
    }

    /// Carries out one action; returns the event to feed back, if any.
    async fn execute(&mut self, action: &Action) -> Option<Event> {
        let started = Instant::now();
        let topology = self.state.snapshot();
        let node = |id: &NodeId| topology.node(id).cloned();
        let result: Result<(), Error> = match action {
            Action::Promote { node: id, term } => match node(id) {
                Some(n) => self.controller.promote(&n, *term).await,
                None => Ok(()),
            },
            Action::Follow {
                node: id, primary, ..
            }
            | Action::Rejoin { node: id, primary } => match (node(id), node(primary)) {
                (Some(n), Some(p)) if matches!(action, Action::Follow { .. }) => {
                    self.controller.follow(&n, &p).await
                }
                (Some(n), Some(p)) => self.controller.rejoin(&n, &p).await,
                _ => Ok(()),
            },
            Action::Fence { node: id, .. } => match node(id) {
                Some(n) => {
                    // The fence ends every session on the node, the
                    // monitoring connection's too: that end is no news.
                    self.probe.release(id);
                    match self.controller.fence(&n).await {
                        Ok(Fenced::Confirmed) => Ok(()),
                        Ok(Fenced::NotConfirmed { why }) => {
                            tracing::warn!(node = %id, %why, "fence not confirmed; the node stays quarantined");
                            self.emit(MonitorEventKind::FenceNotConfirmed {
                                node: id.to_string(),
                                why: why.clone(),
                            });
                            // The model must not count it fenced: it is
                            // fenced again when it is next seen.
                            return Some(Event::ActionFailed {
                                at: self.now(),
                                action: action.clone(),
                                error: format!("fence not confirmed: {why}"),
                            });
                        }
                        Err(e) => Err(e),
                    }
                }
                None => Ok(()),
            },
            Action::Probe { node: id } => {
                let node = id.clone();
                let timeout = self.config.probe_timeout;
                let seen = match topology.node(&node) {
                    Some(n) => self.probe.probe(n, timeout).await,
                    None => return None,
                };
                return Some(Event::Observed {
                    node,
                    at: self.now(),
                    observation: seen,
                });
            }
            // The rest only change the model, which already records them.
            Action::Attach { node } => {
                tracing::info!(node = %node, "attached: routed again");
                return None;
            }
            Action::Detach { node } => {
                tracing::info!(node = %node, "detached: no longer routed");
                return None;
            }
            _ => return None,
        };
        match result {
            Ok(()) => {
                tracing::info!(?action, took = ?started.elapsed(), "action done");
                self.emit(MonitorEventKind::Executed {
                    action: action.clone(),
                    took: started.elapsed(),
                });
                None
            }
            Err(e) => {
                tracing::error!(?action, error = %e, "action failed");
                self.emit(MonitorEventKind::ActionFailed {
                    action: action.clone(),
                    error: e.to_string(),
                });
                Some(Event::ActionFailed {
                    at: self.now(),
                    action: action.clone(),
                    error: e.to_string(),
                })
            }
        }
    }

    /// Before a planned promotion: wait until `target` has replayed the
    /// fenced primary's last WAL position, so the switchover loses nothing.
    async fn wait_caught_up(&self, old: &NodeId, target: &NodeId) {
        let topology = self.state.snapshot();
        let (Some(old), Some(target)) = (topology.node(old), topology.node(target)) else {
            return;
        };
        let timeout = self.config.probe_timeout;
        let goal = match self.probe.probe(old, timeout).await {
            Observation::Healthy(h) => h.current_lsn,
            // A stopped primary shipped its WAL on the way down.
            Observation::Failed { .. } => None,
        };
        let Some(goal) = goal else { return };
        let deadline = Instant::now() + self.config.catch_up_timeout;
        while Instant::now() < deadline {
            if let Observation::Healthy(h) = self.probe.probe(target, timeout).await {
                if h.replayed_lsn.is_some_and(|l| l >= goal) {
                    tracing::info!(target = %target.id, %goal, "switchover target caught up");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(target = %target.id, %goal, "switchover target did not catch up in time; promoting anyway");
    }
}
