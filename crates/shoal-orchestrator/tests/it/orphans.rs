//! Tasks whose service is gone.

use shoal_orchestrator::Change;
use shoal_types::{Id, TaskState};

use crate::common::*;

#[test]
fn orphans_are_told_to_go_then_deleted_once_stopped() {
    let mut w = World::new(replicated(3), &["n1"]);
    w.settle(20);
    // One never got scheduled.
    let mut pending = w.tasks[0].clone();
    pending.id = Id::from_raw("pending");
    pending.node_id = None;
    pending.status.state = TaskState::Pending;
    w.tasks.push(pending);
    // One is on a node that was deleted.
    let mut lost = w.tasks[0].clone();
    lost.id = Id::from_raw("lost");
    lost.node_id = Some(Id::from_raw("gone"));
    w.tasks.push(lost);

    let r = w.orphans();
    assert_eq!(r.requeue_at, None);
    let removes: Vec<&Id> = r
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::SetDesiredState {
                task_id,
                desired: TaskState::Remove,
            } => Some(task_id),
            _ => None,
        })
        .collect();
    assert_eq!(removes.len(), 3, "running ones are told to stop");
    let mut deleted: Vec<&str> = World::deletes(&r.changes)
        .iter()
        .map(|i| i.as_str())
        .collect();
    deleted.sort();
    assert_eq!(deleted, vec!["lost", "pending"]);
    w.apply(&r.changes);
    w.agents();
    let r = w.orphans();
    assert_eq!(World::deletes(&r.changes).len(), 3);
    assert!(
        World::shutdowns(&r.changes).is_empty(),
        "nothing moves backwards or twice"
    );
}
