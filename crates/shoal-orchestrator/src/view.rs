//! Read-only views over the observed state shared by every mode: the node index, the order of
//! tasks within a slot, what a task's state means for its slot, and whether a task is out of
//! date.

use std::collections::BTreeMap;

use shoal_types::{Availability, Id, Node, NodeState, Task, TaskSpec, TaskState, Timestamp};

use crate::constraint;

/// The nodes by ID.
pub(crate) struct Nodes<'a> {
    by_id: BTreeMap<&'a str, &'a Node>,
}

impl<'a> Nodes<'a> {
    pub fn new(nodes: &[&'a Node]) -> Self {
        Nodes {
            by_id: nodes.iter().map(|n| (n.id.as_str(), *n)).collect(),
        }
    }

    pub fn get(&self, id: &Id) -> Option<&'a Node> {
        self.by_id.get(id.as_str()).copied()
    }

    pub fn all(&self) -> impl Iterator<Item = &'a Node> + '_ {
        self.by_id.values().copied()
    }

    /// The node cannot (or must not) run anything: deleted, down or drained.
    pub fn unusable(&self, id: &Id) -> bool {
        self.get(id).is_none_or(|n| {
            n.status.state == NodeState::Down || n.spec.availability == Availability::Drain
        })
    }

    /// The node will never stop a task it holds: deleted or down. A drained node is still
    /// there and stops what it is told to, so a slot waits for its task to stop.
    pub fn gone(&self, id: &Id) -> bool {
        self.get(id)
            .is_none_or(|n| n.status.state == NodeState::Down)
    }

    /// The node is drained (restarts there skip their delay, as in Swarm: the task ended
    /// because the node is being emptied, not because it crashed).
    pub fn drained(&self, id: Option<&Id>) -> bool {
        id.and_then(|id| self.get(id))
            .is_some_and(|n| n.spec.availability == Availability::Drain)
    }

    /// A live task whose node is lost: deleted, down, drained, or no longer satisfying the
    /// task's own placement constraints (Swarm's constraint enforcer). Unassigned tasks are
    /// never lost. Constraints that do not parse are not enforced here: the task got placed.
    pub fn loses(&self, t: &Task) -> bool {
        let Some(id) = &t.node_id else { return false };
        if self.unusable(id) {
            return true;
        }
        self.get(id).is_some_and(|n| {
            constraint::node_matches(&t.spec.placement.constraints, n) == Some(false)
        })
    }
}

/// When the task was created: the store's `meta.created_at`, or its status time when the store
/// has not filled that in.
pub(crate) fn created(t: &Task) -> Timestamp {
    if t.meta.created_at.is_zero() {
        t.status.timestamp
    } else {
        t.meta.created_at
    }
}

/// Sorts oldest first. Two tasks of one slot are created in different transactions, so their
/// creation times differ unless the store's clock stood still (a fake clock); then a task that
/// is still wanted is taken as newer than one that was let go, and the ID settles the rest, so
/// the order is total and stable.
pub(crate) fn sort_by_age(tasks: &mut [&Task]) {
    let key = |t: &Task| {
        let stage = match (
            t.desired_state <= TaskState::Running,
            t.status.state.is_terminal(),
        ) {
            (false, true) => 0,
            (false, false) => 1,
            (true, true) => 2,
            (true, false) => 3,
        };
        (created(t), stage, t.id.clone())
    };
    tasks.sort_by_cached_key(|t| key(t));
}

/// What a task means for its slot right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Wanted and not ended, on a node that is fine (or not yet on one).
    Live,
    /// Wanted and not ended, but its node is lost: to be shut down and replaced at once.
    Lost,
    /// Running on a drained node that is still up: it keeps serving until its slot's move
    /// (bounded by the update parallelism) replaces it elsewhere.
    Evicted,
    /// Told to stop, still running on a node that will stop it: wait for it.
    Stopping,
    /// Told to stop and will never report it (never assigned, or its node is gone): treat as
    /// stopped.
    Gone,
    /// Ended while still wanted: the restart policy has yet to decide.
    EndedUnhandled,
    /// Ended after it was told to stop, or after the restart policy decided.
    Ended,
}

/// `gentle`: the mode moves tasks off drained nodes a few at a time (replicated services);
/// otherwise a drained node's tasks are lost at once.
pub(crate) fn classify(t: &Task, desired: TaskState, nodes: &Nodes, gentle: bool) -> Kind {
    let wanted = desired <= TaskState::Running;
    if t.status.state.is_terminal() {
        return if wanted {
            Kind::EndedUnhandled
        } else {
            Kind::Ended
        };
    }
    if wanted {
        return if !nodes.loses(t) {
            Kind::Live
        } else if gentle && evictable(t, nodes) {
            Kind::Evicted
        } else {
            Kind::Lost
        };
    }
    let never_assigned = t.status.state < TaskState::Assigned;
    match &t.node_id {
        Some(id) if !never_assigned && !nodes.gone(id) => Kind::Stopping,
        _ => Kind::Gone,
    }
}

/// A running task lost only because its node is drained: the node is up and still satisfies
/// the task's constraints. A task not yet running serves nobody and moves at once.
fn evictable(t: &Task, nodes: &Nodes) -> bool {
    t.status.state == TaskState::Running
        && t.node_id
            .as_ref()
            .and_then(|id| nodes.get(id))
            .is_some_and(|n| {
                n.status.state != NodeState::Down
                    && n.spec.availability == Availability::Drain
                    && constraint::node_matches(&t.spec.placement.constraints, n) != Some(false)
            })
}

/// A pending task the scheduler has tried and could not place (it wrote why).
pub(crate) fn unplaceable(t: &Task) -> bool {
    t.status.state == TaskState::Pending && !t.status.err.is_empty()
}

/// The task ended by itself (as opposed to being stopped on request).
pub(crate) fn self_ended(t: &Task) -> bool {
    matches!(
        t.status.state,
        TaskState::Complete | TaskState::Failed | TaskState::Rejected
    )
}

/// Whether `t` must be replaced to match `target`. Like Swarm, a change to the placement
/// constraints alone does not make a task dirty while its node still satisfies them; nor does
/// giving a placement where none was given (Swarm compares the placement objects as a whole).
pub(crate) fn is_dirty(t: &Task, target: &TaskSpec, nodes: &Nodes) -> bool {
    if t.spec == *target {
        return false;
    }
    if t.spec.placement.constraints != target.placement.constraints
        || t.spec.omitted.placement != target.omitted.placement
    {
        let mut only_constraints = t.spec.clone();
        only_constraints.placement.constraints = target.placement.constraints.clone();
        only_constraints.omitted.placement = target.omitted.placement;
        if only_constraints == *target {
            let node = t.node_id.as_ref().and_then(|id| nodes.get(id));
            let still_fits = node.is_some_and(|n| {
                constraint::node_matches(&target.placement.constraints, n) == Some(true)
            });
            return !still_fits;
        }
    }
    true
}
