//! Rolling updates, failure actions, rollbacks and the update status.

use shoal_orchestrator::Change;
use shoal_types::service::{FailureAction, UpdateConfig, UpdateOrder, UpdateState};
use shoal_types::{Id, RestartCondition, ServiceMode, Task, TaskState};

use crate::common::*;

fn cfg(parallelism: u64, order: UpdateOrder, failure_action: FailureAction) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        order,
        failure_action,
        delay: secs(0),
        monitor: Some(secs(5)),
        max_failure_ratio: 0.0,
    }
}

fn world(replicas: u64, c: UpdateConfig) -> World {
    let mut w = World::new(replicated(replicas), &["n1", "n2"]);
    w.set_update_config(c);
    w.settle(20);
    assert_eq!(w.running().len() as u64, replicas);
    w
}

fn image(t: &Task) -> &str {
    &t.spec.container.image
}

fn run_cluster(w: &mut World) {
    w.advance(secs(1));
    w.schedule();
    w.agents();
}

fn new_image(w: &mut World) {
    w.update_spec(|s| s.task.container.image = "nginx:2".into());
}

/// [`world`], then the restart policy `condition` (5 s delay), settled.
fn world_restarting(replicas: u64, c: UpdateConfig, condition: RestartCondition) -> World {
    let mut w = world(replicas, c);
    w.restart_policy(condition, 5, 0, 0);
    w.settle(20);
    w
}

/// `n` rounds of the reconciler, then the scheduler and agents a second later.
fn rounds(w: &mut World, n: usize) {
    for _ in 0..n {
        w.step();
        run_cluster(w);
    }
}

/// The first of `tasks` that runs image `img`.
fn with_image(tasks: Vec<&Task>, img: &str) -> Id {
    let found = tasks.into_iter().find(|t| image(t) == img);
    found.expect("a task with that image").id.clone()
}

/// A start-first update (failure action `continue`, no restarts) whose first new task failed:
/// once settled, it has completed anyway.
fn continued_past_a_failure(replicas: u64) -> World {
    let c = cfg(1, UpdateOrder::StartFirst, FailureAction::Continue);
    let mut w = world_restarting(replicas, c, RestartCondition::None);
    new_image(&mut w);
    w.step();
    w.schedule();
    let new = with_image(w.live(), "nginx:2");
    w.set_state(&new, TaskState::Failed);
    w.settle(40);
    assert_eq!(w.update_state(), Some(UpdateState::Completed));
    w
}

/// The update status: its state and message.
fn status(w: &World) -> (UpdateState, String) {
    let s = w.service.update_status.clone().expect("an update status");
    (s.state, s.message)
}

#[test]
fn stop_first_one_at_a_time_then_completes_after_monitor() {
    let mut w = world(3, cfg(1, UpdateOrder::StopFirst, FailureAction::Pause));
    new_image(&mut w);
    let r = w.step();
    let started = w.service.update_status.as_ref().map(|s| s.started_at);
    assert_eq!(started, Some(w.now));
    assert_eq!(
        status(&w),
        (UpdateState::Updating, "update in progress".into())
    );
    assert_eq!(World::shutdowns(&r.changes).len(), 1);
    assert!(
        World::creates(&r.changes).is_empty(),
        "stop-first: nothing new before the old one stopped"
    );
    let old = World::shutdowns(&r.changes)[0].clone();
    assert_eq!(w.task(&old).map(|t| t.slot), Some(1));
    assert!(
        w.step().changes.is_empty(),
        "waits for the old task to stop"
    );

    w.set_state(&old, TaskState::Shutdown);
    let r = w.step();
    let created = World::creates(&r.changes);
    assert_eq!(created.len(), 1);
    assert_eq!((created[0].slot, image(created[0])), (1, "nginx:2"));
    assert!(
        World::shutdowns(&r.changes).is_empty(),
        "one slot in flight at a time"
    );
    assert!(
        w.step().changes.is_empty(),
        "in flight until the new task runs"
    );

    run_cluster(&mut w);
    let r = w.step();
    assert_eq!(
        World::shutdowns(&r.changes).len(),
        1,
        "next slot once the new task runs"
    );

    w.settle(50);
    assert!(w.running().iter().all(|t| image(t) == "nginx:2"));
    assert_eq!(w.running().len(), 3);
    assert_eq!(
        status(&w),
        (UpdateState::Completed, "update completed".into())
    );
    let completed_at = w.service.update_status.clone().unwrap().completed_at;
    let last_start = w
        .running()
        .iter()
        .map(|t| t.status.timestamp)
        .max()
        .unwrap();
    assert_eq!(
        completed_at,
        last_start.add(secs(5)),
        "completed once the monitor window passed"
    );
}

#[test]
fn completion_waits_for_the_monitor_window() {
    let mut w = world(1, cfg(1, UpdateOrder::StopFirst, FailureAction::Pause));
    new_image(&mut w);
    rounds(&mut w, 6);
    assert_eq!(w.running().len(), 1);
    let started = w.running()[0].status.timestamp;
    let r = w.step();
    assert!(r.changes.is_empty());
    assert_eq!(r.requeue_at, Some(started.add(secs(5))));
    w.now = started.add(secs(5));
    let r = w.step();
    assert!(
        matches!(&r.changes[..], [Change::SetUpdateStatus { status: Some(s), .. }]
            if s.state == UpdateState::Completed)
    );
}

#[test]
fn start_first_runs_new_before_stopping_old() {
    let mut w = world(3, cfg(2, UpdateOrder::StartFirst, FailureAction::Pause));
    new_image(&mut w);
    let r = w.step();
    let created: Vec<u64> = World::creates(&r.changes).iter().map(|t| t.slot).collect();
    assert_eq!(created, vec![1, 2], "parallelism 2");
    assert!(
        World::shutdowns(&r.changes).is_empty(),
        "start-first keeps the old tasks for now"
    );
    assert_eq!(w.live_in_slot(1).len(), 2);
    assert!(w.step().changes.is_empty());

    run_cluster(&mut w);
    let r = w.step();
    let shut: Vec<u64> = World::shutdowns(&r.changes)
        .iter()
        .map(|id| w.task(id).unwrap().slot)
        .collect();
    assert_eq!(shut, vec![1, 2], "old ones go once their replacements run");
    let created: Vec<u64> = World::creates(&r.changes).iter().map(|t| t.slot).collect();
    assert_eq!(created, vec![3]);
    w.settle(50);
    assert_eq!(w.update_state(), Some(UpdateState::Completed));
    assert_eq!(w.live().len(), 3);
    assert!(w.live().iter().all(|t| image(t) == "nginx:2"));
}

#[test]
fn delay_spaces_the_batches() {
    let mut c = cfg(1, UpdateOrder::StartFirst, FailureAction::Pause);
    c.delay = secs(10);
    let mut w = world(2, c);
    new_image(&mut w);
    w.step();
    run_cluster(&mut w);
    let started = w.now;
    let r = w.step();
    assert_eq!(
        World::shutdowns(&r.changes).len(),
        1,
        "old task of slot 1 goes"
    );
    assert!(
        World::creates(&r.changes).is_empty(),
        "slot 2 waits for the delay"
    );
    assert_eq!(r.requeue_at, Some(started.add(secs(10))));
    w.now = started.add(secs(10));
    let r = w.step();
    assert_eq!(World::creates(&r.changes).len(), 1);
}

#[test]
fn parallelism_zero_updates_everything_at_once() {
    let mut w = world(4, cfg(0, UpdateOrder::StopFirst, FailureAction::Pause));
    new_image(&mut w);
    let r = w.step();
    assert_eq!(World::shutdowns(&r.changes).len(), 4);
}

#[test]
fn scaling_is_not_an_update_but_force_is() {
    let mut w = world(2, cfg(1, UpdateOrder::StopFirst, FailureAction::Pause));
    w.service.spec.mode = ServiceMode::Replicated { replicas: 3 };
    w.settle(20);
    assert_eq!(w.service.update_status, None);
    w.update_spec(|s| s.task.force_update += 1);
    w.step();
    assert_eq!(w.update_state(), Some(UpdateState::Updating));
    w.settle(60);
    assert_eq!(w.update_state(), Some(UpdateState::Completed));
    assert!(w.live().iter().all(|t| t.spec.force_update == 1));
}

#[test]
fn constraint_change_alone_keeps_tasks_whose_node_still_fits() {
    let mut w = world(2, cfg(1, UpdateOrder::StopFirst, FailureAction::Pause));
    for n in &mut w.nodes {
        n.spec.labels.insert("zone".into(), "a".into());
    }
    w.update_spec(|s| s.task.placement.constraints = vec!["node.labels.zone==a".into()]);
    let r = w.step();
    assert!(r.changes.is_empty(), "{:?}", r.changes);
    w.update_spec(|s| s.task.placement.constraints = vec!["node.labels.zone==b".into()]);
    let r = w.step();
    assert_eq!(
        World::shutdowns(&r.changes).len(),
        1,
        "no longer fits: dirty"
    );
}

/// A spec whose client left the placement out, updated with one that gives constraints (the
/// Python SDK's `constraints=`): a placement change alone, as in Swarm.
#[test]
fn a_placement_given_where_none_was_keeps_tasks_whose_node_fits() {
    let mut unplaced = replicated(2);
    unplaced.spec.task.omitted.placement = true;
    let mut w = World::new(unplaced, &["n1", "n2"]);
    w.set_update_config(cfg(1, UpdateOrder::StopFirst, FailureAction::Pause));
    w.settle(20);
    assert_eq!(w.running().len(), 2);
    assert!(w.running().iter().all(|t| t.spec.omitted.placement));
    for n in &mut w.nodes {
        n.spec.labels.insert("zone".into(), "a".into());
    }
    w.update_spec(|s| {
        s.task.omitted.placement = false;
        s.task.placement.constraints = vec!["node.labels.zone==a".into()];
    });
    let r = w.step();
    assert!(r.changes.is_empty(), "{:?}", r.changes);
    // An empty placement given where none was: the same.
    w.update_spec(|s| s.task.placement.constraints.clear());
    let r = w.step();
    assert!(r.changes.is_empty(), "{:?}", r.changes);
}

#[test]
fn failure_pauses_the_update() {
    let mut w = world_restarting(
        3,
        cfg(1, UpdateOrder::StopFirst, FailureAction::Pause),
        RestartCondition::Any,
    );
    new_image(&mut w);
    rounds(&mut w, 4);
    let new = with_image(w.running(), "nginx:2");
    w.set_state(&new, TaskState::Failed);
    let r = w.step();
    let paused = format!("update paused due to failure or early termination of task {new}");
    assert_eq!(status(&w), (UpdateState::Paused, paused));
    assert!(World::creates(&r.changes).is_empty() && World::shutdowns(&r.changes).is_empty());

    // Paused: no more slots are replaced, but the failed one is restarted per policy.
    w.advance(secs(5));
    let r = w.step();
    let created = World::creates(&r.changes);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].restart_history.len(), 1);
    w.settle(40);
    assert_eq!(w.update_state(), Some(UpdateState::Paused));
    let images: Vec<&str> = {
        let mut v: Vec<_> = w.live().iter().map(|t| (t.slot, image(t))).collect();
        v.sort();
        v.into_iter().map(|(_, i)| i).collect()
    };
    assert_eq!(
        images,
        vec!["nginx:2", "nginx:2", "nginx:1"],
        "slot 3 was never replaced"
    );
}

#[test]
fn failure_ratio_tolerates_some_failures() {
    let mut c = cfg(0, UpdateOrder::StopFirst, FailureAction::Pause);
    c.max_failure_ratio = 0.5;
    let mut w = world_restarting(4, c, RestartCondition::None);
    new_image(&mut w);
    rounds(&mut w, 3);
    let new: Vec<_> = w
        .running()
        .iter()
        .filter(|t| image(t) == "nginx:2")
        .map(|t| t.id.clone())
        .collect();
    assert_eq!(new.len(), 4);
    w.set_state(&new[0], TaskState::Failed);
    w.set_state(&new[1], TaskState::Failed);
    w.step();
    assert_eq!(
        w.update_state(),
        Some(UpdateState::Updating),
        "2 of 4 is not above 0.5"
    );
    w.set_state(&new[2], TaskState::Complete);
    w.step();
    assert_eq!(
        w.update_state(),
        Some(UpdateState::Paused),
        "early termination counts too"
    );
}

#[test]
fn failure_continue_finishes_the_update() {
    let w = continued_past_a_failure(2);
    let mut images: Vec<_> = w
        .live()
        .iter()
        .map(|t| (t.slot, image(t).to_string()))
        .collect();
    images.sort();
    assert_eq!(
        images,
        vec![(1, "nginx:1".to_string()), (2, "nginx:2".to_string())],
        "slot 1 was tried once"
    );
}

#[test]
fn failure_rolls_back_and_rollback_completes() {
    let mut w = world(3, cfg(1, UpdateOrder::StopFirst, FailureAction::Rollback));
    new_image(&mut w);
    rounds(&mut w, 4);
    let new = with_image(w.running(), "nginx:2");
    w.set_state(&new, TaskState::Failed);
    let r = w.reconcile();
    assert_eq!(
        r.changes,
        vec![Change::RollbackService {
            service_id: w.service.id.clone(),
            message: format!(
                "update rolled back due to failure or early termination of task {new}"
            ),
        }]
    );
    w.apply(&r.changes);
    assert_eq!(w.update_state(), Some(UpdateState::RollbackStarted));
    assert_eq!(w.service.spec.task.container.image, "nginx:1");
    w.settle(80);
    assert_eq!(
        status(&w),
        (UpdateState::RollbackCompleted, "rollback completed".into())
    );
    assert_eq!(w.live().len(), 3);
    assert!(w.live().iter().all(|t| image(t) == "nginx:1"));
}

#[test]
fn a_failing_rollback_pauses_instead_of_rolling_back_again() {
    let mut w = world(2, cfg(1, UpdateOrder::StopFirst, FailureAction::Rollback));
    new_image(&mut w);
    w.settle(60);
    assert_eq!(w.update_state(), Some(UpdateState::Completed));
    // A manual rollback, whose first new task fails.
    w.advance(secs(1));
    let prev = w.service.previous_spec.take().unwrap();
    w.service.previous_spec = Some(std::mem::replace(&mut w.service.spec, prev));
    w.service.update_status = Some(shoal_types::service::UpdateStatus {
        state: UpdateState::RollbackStarted,
        started_at: w.now,
        completed_at: shoal_types::Timestamp::ZERO,
        message: "manually requested rollback".into(),
    });
    rounds(&mut w, 4);
    let back = with_image(w.running(), "nginx:1");
    w.set_state(&back, TaskState::Failed);
    w.step();
    let paused = format!("rollback paused due to failure or early termination of task {back}");
    assert_eq!(status(&w), (UpdateState::RollbackPaused, paused));
}

#[test]
fn rollback_without_previous_spec_pauses() {
    let mut w = world(1, cfg(1, UpdateOrder::StopFirst, FailureAction::Rollback));
    new_image(&mut w);
    w.service.previous_spec = None;
    rounds(&mut w, 4);
    let new = w.running()[0].id.clone();
    w.set_state(&new, TaskState::Failed);
    w.step();
    assert_eq!(w.update_state(), Some(UpdateState::Paused));
}

#[test]
fn done_slots_are_recreated_by_an_update() {
    let mut w = world_restarting(
        2,
        cfg(1, UpdateOrder::StopFirst, FailureAction::Pause),
        RestartCondition::None,
    );
    let ids: Vec<_> = w.live().iter().map(|t| t.id.clone()).collect();
    for id in &ids {
        w.set_state(id, TaskState::Complete);
    }
    w.settle(20);
    assert!(w.live().is_empty(), "restart none: the slots are done");
    new_image(&mut w);
    w.settle(40);
    assert_eq!(w.update_state(), Some(UpdateState::Completed));
    assert_eq!(w.running().len(), 2);
    assert!(w.running().iter().all(|t| image(t) == "nginx:2"));
}

#[test]
fn completed_update_with_a_failed_slot_does_not_restart_itself() {
    let mut w = continued_past_a_failure(1);
    w.advance(secs(3600));
    assert!(
        w.step().changes.is_empty(),
        "no new update without a spec change"
    );
}
