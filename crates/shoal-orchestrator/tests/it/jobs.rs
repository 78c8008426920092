//! Replicated and global jobs.

use shoal_types::{Availability, RestartCondition, ServiceMode, TaskState};

use crate::common::*;

fn job(max_concurrent: u64, total_completions: u64) -> World {
    World::new(
        service(ServiceMode::ReplicatedJob {
            max_concurrent,
            total_completions,
        }),
        &["n1", "n2"],
    )
}

fn complete_running(w: &mut World) -> usize {
    let ids: Vec<_> = w.running().iter().map(|t| t.id.clone()).collect();
    for id in &ids {
        w.set_state(id, TaskState::Complete);
    }
    ids.len()
}

#[test]
fn replicated_job_runs_total_completions_at_most_max_concurrent_at_once() {
    let mut w = job(2, 5);
    let r = w.step();
    let slots: Vec<u64> = World::creates(&r.changes).iter().map(|t| t.slot).collect();
    assert_eq!(slots, vec![1, 2]);
    assert!(
        World::creates(&r.changes)
            .iter()
            .all(|t| t.desired_state == TaskState::Running)
    );
    let mut completed = 0;
    for _ in 0..10 {
        w.settle(20);
        assert!(w.live().len() <= 2, "never more than max_concurrent");
        completed += complete_running(&mut w);
    }
    assert_eq!(completed, 5);
    w.settle(20);
    assert!(w.live().is_empty());
    let done: Vec<_> = w
        .tasks
        .iter()
        .filter(|t| t.status.state == TaskState::Complete)
        .collect();
    assert_eq!(done.len(), 5);
    assert!(
        done.iter().all(|t| t.desired_state == TaskState::Complete),
        "completed job tasks show desired complete"
    );
    assert!(w.reconcile().changes.is_empty());
}

#[test]
fn completed_job_tasks_are_not_restarted_even_under_any() {
    let mut w = job(1, 1);
    w.restart_policy(RestartCondition::Any, 0, 0, 0);
    w.settle(20);
    complete_running(&mut w);
    w.advance(secs(60));
    let r = w.step();
    assert!(World::creates(&r.changes).is_empty());
}

#[test]
fn failed_job_tasks_follow_the_restart_policy() {
    let mut w = job(1, 1);
    w.restart_policy(RestartCondition::OnFailure, 5, 1, 0);
    w.settle(20);
    let id = w.running()[0].id.clone();
    w.set_state(&id, TaskState::Failed);
    let r = w.step();
    assert!(r.changes.is_empty(), "restart delay");
    assert_eq!(r.requeue_at, Some(w.now.add(secs(5))));
    w.advance(secs(5));
    let r = w.step();
    let created = World::creates(&r.changes);
    assert_eq!(
        (created.len(), created.first().map(|t| t.slot)),
        (1, Some(1))
    );
    w.settle(20);
    let id = w.running()[0].id.clone();
    w.set_state(&id, TaskState::Failed);
    w.advance(secs(5));
    let r = w.step();
    assert!(
        World::creates(&r.changes).is_empty(),
        "max attempts used: the slot failed for good"
    );
    w.settle(20);
    assert!(w.live().is_empty());
}

#[test]
fn a_new_job_spec_is_a_new_run() {
    let mut w = job(0, 2);
    w.settle(20);
    assert_eq!(w.running().len(), 2, "max_concurrent 0: no limit");
    complete_running(&mut w);
    w.settle(20);
    w.update_spec(|s| s.task.force_update += 1);
    let r = w.step();
    assert_eq!(World::creates(&r.changes).len(), 2);
    assert_eq!(w.service.update_status, None, "jobs have no rolling update");
}

#[test]
fn job_task_on_a_lost_node_is_replaced() {
    let mut w = job(1, 1);
    w.settle(20);
    let t = w.running()[0].clone();
    let node = t.node_id.clone().unwrap();
    w.node_mut(node.as_str()).spec.availability = Availability::Drain;
    let r = w.step();
    assert_eq!(World::shutdowns(&r.changes), vec![&t.id]);
    assert_eq!(World::creates(&r.changes).len(), 1);
}

#[test]
fn global_job_completes_once_per_node_including_late_joiners() {
    let mut w = World::new(service(ServiceMode::GlobalJob), &["n1", "n2"]);
    w.settle(20);
    assert_eq!(w.running().len(), 2);
    complete_running(&mut w);
    w.settle(20);
    assert!(w.live().is_empty());
    w.nodes.push(node("n3"));
    let r = w.step();
    let created = World::creates(&r.changes);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].node_id.as_ref().map(|n| n.as_str()), Some("n3"));
    w.settle(20);
    complete_running(&mut w);
    w.settle(20);
    assert_eq!(
        w.tasks
            .iter()
            .filter(|t| t.status.state == TaskState::Complete)
            .count(),
        3
    );
}
