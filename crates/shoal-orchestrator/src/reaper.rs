//! Task history: how many ended tasks a slot keeps for `service ps`.
//!
//! Per slot (replica number, or node for global modes) at most `task_history_limit` terminated
//! tasks are kept (negative keeps all); older ones are deleted, oldest first. Never deleted:
//! live tasks, tasks still stopping, tasks that ended but whose restart is undecided (desired
//! still `Running`), a slot's newest task, which records why the slot is empty (completed job,
//! restart policy gave up) and carries the restart history, and a job slot's completed task.
//! Slots that no longer exist (scaled away, a deleted node, no node at all) keep nothing once
//! their tasks have stopped.

use std::collections::BTreeMap;

use shoal_types::{Id, Service, ServiceMode, Task, TaskState};

use crate::view::{self, Nodes};
use crate::{Change, Context};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Slot(u64),
    Node(Option<Id>),
}

/// Task history: keep at most `cluster.task_history_limit` terminated tasks per slot (per
/// service+node for global), delete older ones (never a live task).
pub fn reap_history(ctx: &Context, service: &Service, tasks: &[&Task]) -> Vec<Change> {
    let Ok(limit) = usize::try_from(ctx.cluster.task_history_limit) else {
        return Vec::new();
    };
    let nodes = Nodes::new(ctx.nodes);
    let job = service.spec.mode.is_job();
    let (by_node, slots) = match service.spec.mode {
        ServiceMode::Replicated { replicas } => (false, replicas),
        ServiceMode::ReplicatedJob {
            total_completions, ..
        } => (false, total_completions),
        ServiceMode::Global | ServiceMode::GlobalJob => (true, 0),
    };
    let mut groups: BTreeMap<Key, Vec<&Task>> = BTreeMap::new();
    for &t in tasks.iter().filter(|t| t.service_id == service.id) {
        let key = if by_node {
            Key::Node(t.node_id.clone())
        } else {
            Key::Slot(t.slot)
        };
        groups.entry(key).or_default().push(t);
    }

    // Stopped for good: ended after being told to stop (or after the restart decision), or
    // told to stop where it will never report back.
    let stopped = |t: &Task| {
        t.desired_state > TaskState::Running
            && (t.status.state.is_terminal()
                || t.status.state < TaskState::Assigned
                || t.node_id.as_ref().is_none_or(|id| nodes.get(id).is_none()))
    };

    let mut changes = Vec::new();
    for (key, mut group) in groups {
        view::sort_by_age(&mut group);
        let exists = match &key {
            Key::Slot(s) => (1..=slots).contains(s),
            Key::Node(id) => id.as_ref().is_some_and(|id| nodes.get(id).is_some()),
        };
        let newest = group.last().copied();
        // A job slot is done once it has a completed task: that record stays too.
        let completion = group
            .iter()
            .rev()
            .copied()
            .find(|t| job && t.status.state == TaskState::Complete);
        let keep = |t: &Task| {
            [newest, completion]
                .iter()
                .flatten()
                .any(|k| std::ptr::eq(*k, t))
        };
        let candidates: Vec<&Task> = group.iter().copied().filter(|t| stopped(t)).collect();
        let excess = if exists {
            candidates.len().saturating_sub(limit)
        } else {
            candidates.len()
        };
        for t in candidates.into_iter().take(excess) {
            if exists && keep(t) {
                continue;
            }
            changes.push(Change::DeleteTask {
                task_id: t.id.clone(),
            });
        }
    }
    changes
}
