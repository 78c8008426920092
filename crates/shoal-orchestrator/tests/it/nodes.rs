//! Node loss, drain and pause for replicated services.

use shoal_types::{Availability, NodeState, RestartCondition, TaskState};

use crate::common::*;

fn two_on(node: &str) -> World {
    let mut w = World::new(replicated(2), &[node, "spare"]);
    w.restart_policy(RestartCondition::None, 5, 1, 0);
    // Put both tasks on `node`: the spare is paused while they are scheduled.
    w.node_mut("spare").spec.availability = Availability::Pause;
    w.settle(20);
    w.node_mut("spare").spec.availability = Availability::Active;
    assert_eq!(w.live_on(node).len(), 2);
    w
}

fn check_replaced_at_once(mut w: World, what: &str) {
    let old: Vec<_> = w
        .live_on("n1")
        .iter()
        .map(|t| (t.id.clone(), t.slot, t.restart_history.clone()))
        .collect();
    let r = w.step();
    assert_eq!(r.requeue_at, None, "{what}: no delay");
    let mut shut: Vec<_> = World::shutdowns(&r.changes).into_iter().cloned().collect();
    shut.sort();
    let mut old_ids: Vec<_> = old.iter().map(|o| o.0.clone()).collect();
    old_ids.sort();
    assert_eq!(
        shut, old_ids,
        "{what}: live tasks on the node are shut down"
    );
    let created = World::creates(&r.changes);
    let mut slots: Vec<u64> = created.iter().map(|t| t.slot).collect();
    slots.sort();
    assert_eq!(
        slots,
        vec![1, 2],
        "{what}: replaced in their slots, even under restart none"
    );
    for t in &created {
        let prev = old
            .iter()
            .find(|o| o.1 == t.slot)
            .map(|o| o.2.clone())
            .unwrap_or_default();
        assert_eq!(t.restart_history, prev, "{what}: not counted as a restart");
    }
    w.settle(20);
    assert_eq!(w.live().len(), 2);
    assert!(w.live_on("n1").is_empty(), "{what}");
}

#[test]
fn down_node_tasks_are_replaced_at_once() {
    let mut w = two_on("n1");
    w.node_mut("n1").status.state = NodeState::Down;
    check_replaced_at_once(w, "down");
}

#[test]
fn drained_node_tasks_are_replaced_at_once() {
    let mut w = two_on("n1");
    w.node_mut("n1").spec.availability = Availability::Drain;
    check_replaced_at_once(w, "drain");
}

#[test]
fn deleted_node_tasks_are_replaced_at_once() {
    let mut w = two_on("n1");
    w.nodes.retain(|n| n.id.as_str() != "n1");
    check_replaced_at_once(w, "deleted");
}

#[test]
fn node_no_longer_matching_constraints_loses_its_tasks() {
    let mut w = World::new(replicated(2), &["n1", "spare"]);
    w.service.spec.task.placement.constraints = vec!["node.labels.zone==a".into()];
    w.node_mut("n1")
        .spec
        .labels
        .insert("zone".into(), "a".into());
    w.settle(20);
    assert_eq!(w.live_on("n1").len(), 2);
    w.node_mut("spare")
        .spec
        .labels
        .insert("zone".into(), "a".into());
    w.node_mut("n1")
        .spec
        .labels
        .insert("zone".into(), "b".into());
    check_replaced_at_once(w, "constraints");
}

#[test]
fn paused_node_keeps_its_tasks() {
    let mut w = two_on("n1");
    w.node_mut("n1").spec.availability = Availability::Pause;
    assert!(w.step().changes.is_empty());
    w.node_mut("n1").status.state = NodeState::Disconnected;
    assert!(
        w.step().changes.is_empty(),
        "a disconnected node is not down"
    );
}

#[test]
fn replacement_waits_for_a_stopping_task() {
    let mut w = World::new(replicated(1), &["n1"]);
    w.settle(20);
    let id = w.live_in_slot(1)[0].id.clone();
    // Scale down then straight back up while the old task is still stopping.
    w.service.spec.mode = shoal_types::ServiceMode::Replicated { replicas: 0 };
    w.step();
    w.service.spec.mode = shoal_types::ServiceMode::Replicated { replicas: 1 };
    let r = w.step();
    assert!(r.changes.is_empty(), "waits: {:?}", r.changes);
    w.set_state(&id, TaskState::Shutdown);
    let r = w.step();
    assert_eq!(World::creates(&r.changes).len(), 1);
    assert_eq!(r.requeue_at, None);
}

#[test]
fn node_coming_back_does_not_double_a_slot() {
    let mut w = World::new(replicated(1), &["n1", "n2"]);
    w.node_mut("n2").spec.availability = Availability::Pause;
    w.settle(20);
    w.node_mut("n2").spec.availability = Availability::Active;
    w.node_mut("n1").status.state = NodeState::Down;
    w.settle(20);
    assert_eq!(w.live_on("n2").len(), 1);
    // n1 returns: its agent stops the old task (still `running` in the store).
    w.node_mut("n1").status.state = NodeState::Ready;
    assert!(w.step().changes.is_empty());
    w.settle(20);
    assert_eq!(w.live().len(), 1);
    assert_eq!(w.live_on("n2").len(), 1);
}
