//! Replicated services: slots, scaling, duplicates, determinism.

use shoal_orchestrator::Change;
use shoal_types::{Id, ServiceMode, Task, TaskState};

use crate::common::*;

#[test]
fn creates_one_pending_task_per_slot() {
    let mut w = World::new(replicated(3), &["n1"]);
    let r = w.reconcile();
    let created = World::creates(&r.changes);
    assert_eq!(created.len(), 3);
    assert_eq!(r.changes.len(), 3, "only creates: {:?}", r.changes);
    assert_eq!(r.requeue_at, None);
    for (i, t) in created.iter().enumerate() {
        assert_eq!(t.slot, i as u64 + 1);
        assert_eq!(t.service_id, w.service.id);
        assert_eq!(t.service_name, "web");
        assert_eq!(t.spec, w.service.spec.task);
        assert_eq!(t.status.state, TaskState::Pending);
        assert_eq!(t.status.message, "pending task scheduling");
        assert_eq!(t.status.timestamp, w.now);
        assert_eq!(t.desired_state, TaskState::Running);
        assert_eq!(t.node_id, None);
        assert!(t.restart_history.is_empty());
        assert_eq!(t.meta, Default::default());
        assert!(Id::is_well_formed(t.id.as_str()));
    }
    w.apply(&r.changes);
    assert!(
        w.reconcile().changes.is_empty(),
        "a second call with the result applied changes nothing"
    );
}

#[test]
fn same_inputs_and_seed_give_same_output() {
    let a = World::new(replicated(4), &["n1"]).reconcile();
    let b = World::new(replicated(4), &["n1"]).reconcile();
    assert_eq!(a, b);
}

#[test]
fn scale_up_adds_missing_slots_only() {
    let mut w = World::new(replicated(2), &["n1", "n2"]);
    w.settle(20);
    assert_eq!(w.running().len(), 2);
    w.service.spec.mode = ServiceMode::Replicated { replicas: 5 };
    let r = w.step();
    let slots: Vec<u64> = World::creates(&r.changes).iter().map(|t| t.slot).collect();
    assert_eq!(slots, vec![3, 4, 5]);
    assert!(World::shutdowns(&r.changes).is_empty());
    assert_eq!(w.service.update_status, None, "scaling is not an update");
}

#[test]
fn scale_down_shuts_the_highest_slots() {
    let mut w = World::new(replicated(5), &["n1", "n2"]);
    w.settle(20);
    w.service.spec.mode = ServiceMode::Replicated { replicas: 2 };
    let r = w.step();
    assert!(World::creates(&r.changes).is_empty());
    let mut shut: Vec<u64> = World::shutdowns(&r.changes)
        .iter()
        .map(|id| w.task(id).map_or(0, |t| t.slot))
        .collect();
    shut.sort();
    assert_eq!(shut, vec![3, 4, 5]);
    assert!(r.changes.iter().all(|c| matches!(
        c,
        Change::SetDesiredState {
            desired: TaskState::Shutdown,
            ..
        }
    )));
    w.settle(20);
    assert_eq!(w.live().len(), 2);
    assert!(
        w.tasks.iter().all(|t| t.slot <= 2),
        "the reaper dropped the scaled-away slots once stopped"
    );
}

#[test]
fn scale_to_zero_and_back() {
    let mut w = World::new(replicated(2), &["n1"]);
    w.settle(20);
    w.service.spec.mode = ServiceMode::Replicated { replicas: 0 };
    w.settle(20);
    assert!(w.live().is_empty());
    w.service.spec.mode = ServiceMode::Replicated { replicas: 2 };
    w.settle(20);
    assert_eq!(w.running().len(), 2);
}

#[test]
fn duplicate_live_tasks_keep_the_newest_up_to_date_one() {
    let mut w = World::new(replicated(1), &["n1"]);
    w.settle(20);
    // Someone (a stale manager) created a second task in slot 1.
    let mut dup = w.tasks[0].clone();
    dup.id = Id::from_raw("dup");
    w.advance(secs(1));
    dup.meta.created_at = w.now;
    w.tasks.push(dup);
    // An out-of-date third one, even newer.
    let mut stale = w.tasks[0].clone();
    stale.id = Id::from_raw("stale");
    stale.spec.container.image = "nginx:0".into();
    w.advance(secs(1));
    stale.meta.created_at = w.now;
    w.tasks.push(stale);

    let r = w.step();
    let mut shut: Vec<&str> = World::shutdowns(&r.changes)
        .iter()
        .map(|i| i.as_str())
        .collect();
    shut.sort();
    let first = w.tasks[0].id.clone();
    assert_eq!(shut.len(), 2);
    assert!(
        shut.contains(&"stale") && shut.contains(&first.as_str()),
        "{shut:?}"
    );
    assert_eq!(w.live_in_slot(1).len(), 1);
    assert_eq!(w.live_in_slot(1)[0].id.as_str(), "dup");
}

#[test]
fn tasks_of_slot_zero_are_retired() {
    let mut w = World::new(replicated(1), &["n1"]);
    w.settle(20);
    let mut odd = w.tasks[0].clone();
    odd.id = Id::from_raw("odd");
    odd.slot = 0;
    w.tasks.push(odd);
    let r = w.step();
    assert_eq!(World::shutdowns(&r.changes), vec![&Id::from_raw("odd")]);
}

#[test]
fn other_services_tasks_are_ignored() {
    let mut w = World::new(replicated(1), &["n1"]);
    w.settle(20);
    let mut other: Task = w.tasks[0].clone();
    other.id = Id::from_raw("other");
    other.service_id = Id::from_raw("svc2");
    w.tasks.push(other);
    assert!(w.reconcile().changes.is_empty());
}

#[test]
fn unscheduled_task_is_not_replaced() {
    // No node accepts tasks: the slot holds a pending task, and nothing churns.
    let mut w = World::new(replicated(2), &[]);
    w.settle(10);
    assert_eq!(w.live().len(), 2);
    assert!(w.tasks.iter().all(|t| t.status.state == TaskState::Pending));
    assert!(w.reconcile().changes.is_empty());
}
