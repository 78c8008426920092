//! The change list one reconcile builds: it keeps desired states moving only forward (also
//! across several decisions about the same task in one call), remembers the earliest requeue
//! time, and builds new tasks the same way for every mode.

use std::collections::BTreeMap;

use shoal_types::{Id, IdGen, Service, Task, TaskState, TaskStatus, Timestamp};

use crate::{Change, Reconciled};

/// Where a new task goes: a replica slot, or a node (global services and global jobs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Place {
    Slot(u64),
    Node(Id),
}

/// Message Swarm shows for a task waiting for the scheduler.
pub(crate) const PENDING_MESSAGE: &str = "pending task scheduling";

pub(crate) struct Plan {
    pub now: Timestamp,
    changes: Vec<Change>,
    requeue: Option<Timestamp>,
    /// Desired states already decided in this call, so a later decision never moves one back
    /// and the same change is not emitted twice.
    desired: BTreeMap<Id, TaskState>,
}

impl Plan {
    pub fn new(now: Timestamp) -> Self {
        Plan {
            now,
            changes: Vec::new(),
            requeue: None,
            desired: BTreeMap::new(),
        }
    }

    /// The task's desired state as this call has left it so far.
    pub fn desired_of(&self, t: &Task) -> TaskState {
        self.desired
            .get(&t.id)
            .copied()
            .unwrap_or(t.desired_state)
            .max(t.desired_state)
    }

    /// Moves `t`'s desired state to `desired` if that is forward; otherwise does nothing.
    pub fn set_desired(&mut self, t: &Task, desired: TaskState) {
        if desired > self.desired_of(t) {
            self.desired.insert(t.id.clone(), desired);
            self.changes.push(Change::SetDesiredState {
                task_id: t.id.clone(),
                desired,
            });
        }
    }

    pub fn push(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// Creates a task for `service` at `place` carrying `restart_history`.
    pub fn create(
        &mut self,
        service: &Service,
        place: &Place,
        restart_history: Vec<Timestamp>,
        ids: &mut IdGen,
    ) {
        let task = new_task(service, place, restart_history, self.now, ids);
        self.changes.push(Change::CreateTask(task));
    }

    /// Asks to be called again at `at` if that is in the future.
    pub fn requeue_at(&mut self, at: Timestamp) {
        if at > self.now {
            self.requeue = Some(self.requeue.map_or(at, |r| r.min(at)));
        }
    }

    pub fn finish(self) -> Reconciled {
        Reconciled {
            changes: self.changes,
            requeue_at: self.requeue,
        }
    }
}

/// A new task copying the service's current template: pending, desired running, `meta` left for
/// the store to fill.
pub(crate) fn new_task(
    service: &Service,
    place: &Place,
    restart_history: Vec<Timestamp>,
    now: Timestamp,
    ids: &mut IdGen,
) -> Task {
    let (slot, node_id) = match place {
        Place::Slot(s) => (*s, None),
        Place::Node(n) => (0, Some(n.clone())),
    };
    Task {
        id: ids.next_id(),
        meta: Default::default(),
        service_id: service.id.clone(),
        service_name: service.spec.name.clone(),
        service_labels: service.spec.labels.clone(),
        slot,
        node_id,
        spec: service.spec.task.clone(),
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Pending,
            timestamp: now,
            message: PENDING_MESSAGE.to_string(),
            ..Default::default()
        },
        restart_history,
        // The scheduler gives units when it places the task.
        assigned_generic_resources: Vec::new(),
        // The store gives addresses as it applies the task's creation.
        networks: Vec::new(),
        attachment: None,
    }
}
