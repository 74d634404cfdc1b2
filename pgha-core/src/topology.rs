//! The immutable snapshot of a cluster that routers and policies read.

use serde::{Deserialize, Serialize};

use crate::{Lsn, NodeId, NodeState, Role, Status};

/// Whether the failover machinery may act right now.
///
/// pgha nodes with a watchdog act only while their coordinator says so
/// (leader with a quorum); a lone pgha needs no permission. The state lives
/// in the [`Topology`] so that "no action without permission" is a property
/// of plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// No coordinator is configured: act freely.
    NotRequired,
    /// A coordinator is configured and currently allows acting.
    Granted,
    /// A coordinator is configured and does not allow acting (yet).
    Denied,
}

impl Permission {
    /// Whether actions may be taken.
    pub fn allows_actions(self) -> bool {
        matches!(self, Permission::NotRequired | Permission::Granted)
    }
}

/// A snapshot of the cluster: the term, its primary and every node.
///
/// Published to readers as an `Arc<Topology>` and never changed in place;
/// [`ClusterState`](crate::ClusterState) builds the next one.
///
/// ```
/// use pgha_core::{NodeState, Role, Topology};
///
/// let topology = Topology::new([
///     NodeState::new("b", Role::Standby, "10.0.0.2", 5432),
///     NodeState::new("a", Role::Primary, "10.0.0.1", 5432),
/// ]);
/// assert_eq!(topology.term(), 1);
/// assert_eq!(topology.primary().map(|n| n.id.as_str()), Some("a"));
/// assert!(topology.is_writable(&"a".into()));
/// assert!(!topology.is_writable(&"b".into()));
/// assert_eq!(topology.readable_nodes().count(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    term: u64,
    primary: Option<NodeId>,
    /// Sorted by id, ids unique.
    nodes: Vec<NodeState>,
    permission: Permission,
    /// Why writes are held from every node (`None`: not held).
    #[serde(default)]
    held: Option<String>,
}

impl Topology {
    /// A cluster in term 1 whose primary is the (first, by id) node with
    /// [`Role::Primary`]; any other node claiming that role is demoted to
    /// [`Role::Unknown`]. Standbys without an upstream follow the primary.
    /// Later duplicates of an id replace earlier ones.
    pub fn new(nodes: impl IntoIterator<Item = NodeState>) -> Self {
        let mut by_id = std::collections::BTreeMap::new();
        for node in nodes {
            by_id.insert(node.id.clone(), node);
        }
        let mut nodes: Vec<NodeState> = by_id.into_values().collect();
        let primary = nodes
            .iter()
            .find(|n| n.role == Role::Primary)
            .map(|n| n.id.clone());
        for node in &mut nodes {
            if node.role == Role::Primary && Some(&node.id) != primary.as_ref() {
                node.role = Role::Unknown;
            }
            if node.role == Role::Standby && node.upstream.is_none() {
                node.upstream.clone_from(&primary);
            }
        }
        Topology {
            term: 1,
            primary,
            nodes,
            permission: Permission::NotRequired,
            held: None,
        }
    }

    /// The same topology with writes held from every node, saying why:
    /// no node is writable until the hold is lifted (by the evidence, see
    /// [`evidence`](crate::evidence), or by a promotion).
    pub fn with_writes_held(mut self, why: impl Into<String>) -> Self {
        self.held = Some(why.into());
        self
    }

    /// Why writes are held from every node, if they are: for the log, the
    /// console and `/status`.
    pub fn held(&self) -> Option<&str> {
        self.held.as_deref()
    }

    /// The same topology in another term (e.g. the durably stored one).
    pub fn with_term(mut self, term: u64) -> Self {
        self.term = term;
        self
    }

    /// The same nodes as they were durably recorded: `term`, with
    /// `primary` as the primary (any other node configured as primary
    /// becomes a standby, so a restarted monitor never forgets a failover).
    pub fn restored(self, term: u64, primary: Option<&NodeId>) -> Self {
        let permission = self.permission;
        let nodes = self.nodes.into_iter().map(|mut node| {
            if Some(&node.id) == primary {
                node.role = Role::Primary;
                node.upstream = None;
            } else if node.role == Role::Primary {
                node.role = Role::Standby;
                node.upstream = None;
            } else if node.role == Role::Standby {
                node.upstream = None;
            }
            node
        });
        let mut topology = Topology::new(nodes).with_term(term);
        topology.permission = permission;
        topology
    }

    /// The same topology behind a coordinator that has not yet granted
    /// permission to act ([`Permission::Denied`]).
    pub fn gated(mut self) -> Self {
        self.permission = Permission::Denied;
        self
    }

    /// The term: bumped by every promotion.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Whether the failover machinery may act.
    pub fn permission(&self) -> Permission {
        self.permission
    }

    /// The id of the primary of the current term, if there is one.
    pub fn primary_id(&self) -> Option<&NodeId> {
        self.primary.as_ref()
    }

    /// The primary of the current term, whatever its status.
    pub fn primary(&self) -> Option<&NodeState> {
        self.primary.as_ref().and_then(|id| self.node(id))
    }

    /// The primary of the current term if it is up: the node writes go to.
    pub fn usable_primary(&self) -> Option<&NodeState> {
        self.primary().filter(|n| self.is_writable(&n.id))
    }

    /// One node by id.
    pub fn node(&self, id: &NodeId) -> Option<&NodeState> {
        self.index(id).map(|i| &self.nodes[i])
    }

    /// Every node, ordered by id.
    pub fn nodes(&self) -> &[NodeState] {
        &self.nodes
    }

    /// Nodes the model intends to be standbys, whatever their status.
    pub fn standbys(&self) -> impl Iterator<Item = &NodeState> + '_ {
        self.nodes.iter().filter(|n| n.role == Role::Standby)
    }

    /// Whether writes may go to `id`: only the primary of the current term,
    /// only while it is up (term fencing), and not while writes are held.
    pub fn is_writable(&self, id: &NodeId) -> bool {
        self.held.is_none()
            && self.primary.as_ref() == Some(id)
            && self
                .node(id)
                .is_some_and(|n| n.role == Role::Primary && n.status == Status::Up)
    }

    /// Nodes reads may go to: the usable primary and standbys that are up.
    pub fn readable_nodes(&self) -> impl Iterator<Item = &NodeState> + '_ {
        self.nodes.iter().filter(move |n| {
            n.status == Status::Up
                && match n.role {
                    Role::Primary => self.is_writable(&n.id),
                    Role::Standby => true,
                    Role::Unknown => false,
                }
        })
    }

    /// The most advanced WAL position the current history is known to have
    /// reached: the maximum over nodes that are not fenced out
    /// ([`Role::Unknown`], quarantined or rejoining nodes may hold WAL of a
    /// diverged timeline).
    pub fn most_advanced_lsn(&self) -> Option<Lsn> {
        self.nodes
            .iter()
            .filter(|n| {
                n.role != Role::Unknown
                    && !matches!(n.status, Status::Quarantined | Status::Rejoining)
            })
            .filter_map(NodeState::known_lsn)
            .max()
    }

    /// How many bytes of WAL `id` lacks to reach
    /// [`most_advanced_lsn`](Self::most_advanced_lsn), from its own
    /// [`known_lsn`](NodeState::known_lsn); a node with no known position is
    /// counted from `0/0`. `None` for an unknown node.
    pub fn bytes_behind(&self, id: &NodeId) -> Option<u64> {
        let node = self.node(id)?;
        let reference = self.most_advanced_lsn().unwrap_or(Lsn::ZERO);
        let position = node.known_lsn().unwrap_or(Lsn::ZERO);
        Some(position.bytes_behind(reference))
    }

    fn index(&self, id: &NodeId) -> Option<usize> {
        self.nodes.binary_search_by(|n| n.id.cmp(id)).ok()
    }

    // ---- crate-private mutation, used only by `ClusterState` ----

    pub(crate) fn node_mut(&mut self, id: &NodeId) -> Option<&mut NodeState> {
        self.index(id).map(move |i| &mut self.nodes[i])
    }

    pub(crate) fn set_term(&mut self, term: u64) {
        self.term = term;
    }

    pub(crate) fn set_primary(&mut self, primary: Option<NodeId>) {
        self.primary = primary;
    }

    pub(crate) fn set_permission(&mut self, permission: Permission) {
        self.permission = permission;
    }

    pub(crate) fn nodes_mut(&mut self) -> &mut [NodeState] {
        &mut self.nodes
    }

    pub(crate) fn set_held(&mut self, held: Option<String>) {
        self.held = held;
    }
}
