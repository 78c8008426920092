//! Task history retention.

use shoal_types::{Id, RestartCondition, ServiceMode, TaskState};

use crate::common::*;

/// Fails slot 1's task `n` times, letting each restart run.
fn churn(w: &mut World, n: usize) {
    for _ in 0..n {
        let id = w.live_in_slot(1)[0].id.clone();
        w.set_state(&id, TaskState::Failed);
        w.advance(secs(5));
        w.step();
        w.schedule();
        w.agents();
    }
}

#[test]
fn keeps_the_limit_per_slot_and_never_live_tasks() {
    let mut w = World::new(replicated(2), &["n1"]);
    w.cluster.task_history_limit = 2;
    w.settle(20);
    churn(&mut w, 5);
    assert_eq!(w.tasks.iter().filter(|t| t.slot == 1).count(), 6);
    let live = w.live_in_slot(1)[0].id.clone();
    let deleted: Vec<Id> = World::deletes(&w.reap()).into_iter().cloned().collect();
    assert_eq!(deleted.len(), 3);
    assert!(!deleted.contains(&live));
    // The oldest went.
    let mut slot1: Vec<_> = w.tasks.iter().filter(|t| t.slot == 1).collect();
    slot1.sort_by_key(|t| t.meta.created_at);
    let oldest: Vec<Id> = slot1.iter().take(3).map(|t| t.id.clone()).collect();
    assert_eq!(deleted, oldest);
    let r = w.reap();
    w.apply(&r);
    assert!(w.reap().is_empty(), "idempotent once applied");
    assert_eq!(w.tasks.iter().filter(|t| t.slot == 2).count(), 1);
}

#[test]
fn a_pending_restart_is_never_reaped() {
    let mut w = World::new(replicated(1), &["n1"]);
    w.cluster.task_history_limit = 0;
    w.settle(20);
    let id = w.live_in_slot(1)[0].id.clone();
    w.set_state(&id, TaskState::Failed);
    assert!(
        w.reap().is_empty(),
        "its restart is undecided (desired still running)"
    );
}

#[test]
fn limit_zero_keeps_the_record_of_a_done_slot() {
    let mut w = World::new(replicated(1), &["n1"]);
    w.cluster.task_history_limit = 0;
    w.restart_policy(RestartCondition::Any, 5, 2, 0);
    w.settle(20);
    churn(&mut w, 3);
    w.settle(20);
    assert!(w.live().is_empty(), "gave up after two restarts");
    assert_eq!(w.tasks.len(), 1, "only the last task, which records why");
    assert!(w.step().changes.is_empty(), "and so the slot stays done");
}

#[test]
fn negative_limit_keeps_everything() {
    let mut w = World::new(replicated(1), &["n1"]);
    w.cluster.task_history_limit = -1;
    w.settle(20);
    churn(&mut w, 4);
    assert!(w.reap().is_empty());
}

#[test]
fn scaled_away_slots_are_emptied_once_stopped() {
    let mut w = World::new(replicated(3), &["n1"]);
    w.settle(20);
    w.service.spec.mode = ServiceMode::Replicated { replicas: 1 };
    w.step();
    assert!(w.reap().is_empty(), "still stopping");
    w.agents();
    let deleted = World::deletes(&w.reap()).len();
    assert_eq!(deleted, 2);
}

#[test]
fn global_history_is_per_node() {
    let mut w = World::new(service(ServiceMode::Global), &["n1", "n2"]);
    w.cluster.task_history_limit = 1;
    w.settle(20);
    for _ in 0..3 {
        let id = w.live_on("n1")[0].id.clone();
        w.set_state(&id, TaskState::Failed);
        w.advance(secs(5));
        w.settle(20);
    }
    let on_n1 = w
        .tasks
        .iter()
        .filter(|t| t.node_id.as_ref().is_some_and(|n| n.as_str() == "n1"))
        .count();
    assert_eq!(on_n1, 2, "one live, one in history");
    // The node is deleted: its stopped tasks go.
    w.nodes.retain(|n| n.id.as_str() != "n1");
    w.settle(20);
    assert!(
        w.tasks
            .iter()
            .all(|t| t.node_id.as_ref().is_some_and(|n| n.as_str() == "n2"))
    );
}
