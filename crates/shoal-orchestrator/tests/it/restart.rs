//! Restart policy: condition, delay (with requeue), attempts within a window, history.

use shoal_orchestrator::restart::{Decision, decide, restarted_history, should_restart};
use shoal_types::{Availability, RestartCondition, ServiceMode, TaskState};

use crate::common::*;

/// One running task in slot 1.
fn running_one(condition: RestartCondition, max_attempts: u64, window: u64) -> World {
    let mut w = World::new(replicated(1), &["n1"]);
    w.restart_policy(condition, 5, max_attempts, window);
    w.settle(20);
    assert_eq!(w.running().len(), 1);
    w
}

fn slot1(w: &World) -> shoal_types::Id {
    w.live_in_slot(1)[0].id.clone()
}

#[test]
fn none_never_replaces_and_marks_the_task_shut_down() {
    let mut w = running_one(RestartCondition::None, 0, 0);
    let id = slot1(&w);
    w.set_state(&id, TaskState::Failed);
    let r = w.step();
    assert!(World::creates(&r.changes).is_empty());
    assert_eq!(World::shutdowns(&r.changes), vec![&id]);
    assert_eq!(r.requeue_at, None);
    w.advance(secs(3600));
    assert!(w.step().changes.is_empty(), "the slot stays done");
    // Scaling up adds new slots but does not revive the done one.
    w.service.spec.mode = ServiceMode::Replicated { replicas: 2 };
    let r = w.step();
    let created = World::creates(&r.changes);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].slot, 2);
}

#[test]
fn on_failure_ignores_clean_exits() {
    let mut w = running_one(RestartCondition::OnFailure, 0, 0);
    let id = slot1(&w);
    w.set_state(&id, TaskState::Complete);
    let r = w.step();
    assert!(World::creates(&r.changes).is_empty());
    assert_eq!(World::shutdowns(&r.changes), vec![&id]);
}

#[test]
fn on_failure_restarts_failed_and_rejected_after_the_delay() {
    for end in [TaskState::Failed, TaskState::Rejected] {
        let mut w = running_one(RestartCondition::OnFailure, 0, 0);
        let id = slot1(&w);
        w.set_state(&id, end);
        let ended_at = w.now;
        w.advance(secs(2));
        let r = w.step();
        assert!(r.changes.is_empty(), "waits for the delay: {:?}", r.changes);
        assert_eq!(r.requeue_at, Some(ended_at.add(secs(5))));
        w.now = ended_at.add(secs(5));
        let r = w.step();
        let created = World::creates(&r.changes);
        assert_eq!(created.len(), 1, "{end:?}");
        assert_eq!(created[0].slot, 1);
        assert_eq!(created[0].restart_history, vec![w.now]);
        assert_eq!(
            World::shutdowns(&r.changes),
            vec![&id],
            "the ended task is shut down when replaced"
        );
        assert_eq!(
            w.task(&id).map(|t| (t.status.state, t.desired_state)),
            Some((end, TaskState::Shutdown))
        );
    }
}

#[test]
fn any_restarts_clean_exits_too() {
    let mut w = running_one(RestartCondition::Any, 0, 0);
    let id = slot1(&w);
    w.set_state(&id, TaskState::Complete);
    w.advance(secs(5));
    let r = w.step();
    assert_eq!(World::creates(&r.changes).len(), 1);
}

#[test]
fn requeue_is_the_earliest_pending_restart() {
    let mut w = World::new(replicated(2), &["n1"]);
    w.settle(20);
    let a = w.live_in_slot(1)[0].id.clone();
    let b = w.live_in_slot(2)[0].id.clone();
    w.set_state(&a, TaskState::Failed);
    w.advance(secs(2));
    w.set_state(&b, TaskState::Failed);
    let r = w.step();
    assert!(r.changes.is_empty());
    assert_eq!(r.requeue_at, Some(w.now.sub(secs(2)).add(secs(5))));
}

#[test]
fn max_attempts_without_window_counts_every_restart() {
    let mut w = running_one(RestartCondition::Any, 2, 0);
    for round in 0..3 {
        let id = slot1(&w);
        w.set_state(&id, TaskState::Failed);
        w.advance(secs(600));
        let r = w.step();
        let created = World::creates(&r.changes).len();
        if round < 2 {
            assert_eq!(created, 1, "restart {round} allowed");
            w.settle(20);
        } else {
            assert_eq!(created, 0, "third restart refused");
            assert_eq!(World::shutdowns(&r.changes), vec![&id]);
        }
    }
    w.advance(secs(3600));
    assert!(w.step().changes.is_empty(), "giving up is for good");
}

#[test]
fn max_attempts_within_window_forgets_old_restarts() {
    let mut w = running_one(RestartCondition::Any, 2, 60);
    // Two quick failures use both attempts...
    for _ in 0..2 {
        let id = slot1(&w);
        w.set_state(&id, TaskState::Failed);
        w.advance(secs(5));
        assert_eq!(World::creates(&w.step().changes).len(), 1);
        w.settle(20);
    }
    // ...so a third within the window is refused,
    let id = slot1(&w);
    w.set_state(&id, TaskState::Failed);
    w.advance(secs(5));
    assert!(World::creates(&w.step().changes).is_empty());

    // while failures spaced wider than the window restart forever.
    let mut w = running_one(RestartCondition::Any, 2, 60);
    for _ in 0..5 {
        w.advance(secs(61));
        let id = slot1(&w);
        w.set_state(&id, TaskState::Failed);
        w.advance(secs(5));
        assert_eq!(World::creates(&w.step().changes).len(), 1);
        w.settle(20);
        assert!(
            w.live_in_slot(1)[0].restart_history.len() <= 2,
            "history stays bounded"
        );
    }
}

#[test]
fn a_new_spec_starts_a_fresh_restart_count() {
    let mut w = running_one(RestartCondition::Any, 1, 0);
    let id = slot1(&w);
    w.set_state(&id, TaskState::Failed);
    w.advance(secs(5));
    w.settle(20);
    assert_eq!(w.live_in_slot(1)[0].restart_history.len(), 1);
    w.update_spec(|s| s.task.container.image = "nginx:2".into());
    w.settle(40);
    let t = w.live_in_slot(1)[0];
    assert_eq!(t.spec.container.image, "nginx:2");
    assert!(t.restart_history.is_empty());
    let id = t.id.clone();
    w.set_state(&id, TaskState::Failed);
    w.advance(secs(5));
    assert_eq!(
        World::creates(&w.step().changes).len(),
        1,
        "the attempt used under the old spec does not count"
    );
}

#[test]
fn restart_on_a_drained_node_skips_the_delay() {
    let mut w = running_one(RestartCondition::Any, 0, 0);
    let id = slot1(&w);
    w.set_state(&id, TaskState::Failed);
    w.node_mut("n1").spec.availability = Availability::Drain;
    let r = w.step();
    assert_eq!(World::creates(&r.changes).len(), 1);
}

#[test]
fn decisions_depend_only_on_the_task() {
    let mut w = running_one(RestartCondition::Any, 1, 30);
    let id = slot1(&w);
    w.set_state(&id, TaskState::Failed);
    let mut t = w.task(&id).cloned().unwrap_or_default();
    assert!(should_restart(&t, false));
    assert_eq!(
        decide(&t, false, false),
        Decision::RestartAt(t.status.timestamp.add(secs(5)))
    );
    assert_eq!(
        decide(&t, false, true),
        Decision::RestartAt(t.status.timestamp)
    );
    // One restart 10 s before the end is inside the 30 s window: attempts used up.
    t.restart_history = vec![t.status.timestamp.sub(secs(10))];
    assert_eq!(decide(&t, false, false), Decision::Never);
    // 40 s before: outside the window.
    t.restart_history = vec![t.status.timestamp.sub(secs(40))];
    assert!(should_restart(&t, false));
    // Jobs never restart a completed task, even under `any`.
    t.status.state = TaskState::Complete;
    t.restart_history.clear();
    assert!(should_restart(&t, false));
    assert!(!should_restart(&t, true));
    // Restarted history drops what fell out of the window and keeps at most max_attempts.
    let now = t.status.timestamp;
    t.restart_history = vec![now.sub(secs(100)), now.sub(secs(20)), now.sub(secs(10))];
    assert_eq!(restarted_history(&t, &t.spec.clone(), now), vec![now]);
}
