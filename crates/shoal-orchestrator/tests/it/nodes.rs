//! Node loss, drain and pause for replicated services.

use shoal_types::service::{UpdateConfig, UpdateOrder};
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

fn policy(parallelism: u64, order: UpdateOrder) -> UpdateConfig {
    UpdateConfig {
        parallelism,
        order,
        ..Default::default()
    }
}

/// Runs the scheduler and agents, without the reconciler.
fn nodes_act(w: &mut World) {
    w.schedule();
    w.agents();
}

#[test]
fn drain_stops_one_slot_at_a_time_by_default() {
    let mut w = two_on("n1");
    w.node_mut("n1").spec.availability = Availability::Drain;
    let r = w.step();
    assert_eq!(World::shutdowns(&r.changes).len(), 1, "{:?}", r.changes);
    assert!(World::creates(&r.changes).is_empty(), "stop-first");
    assert_eq!(w.live_on("n1").len(), 1, "the other slot still serves");
    // Nothing more until the old task has stopped.
    assert!(w.step().changes.is_empty());
    nodes_act(&mut w);
    let r = w.step();
    let created = World::creates(&r.changes);
    assert_eq!(created.len(), 1);
    assert!(
        World::shutdowns(&r.changes).is_empty(),
        "one slot at a time"
    );
    nodes_act(&mut w);
    // The replacement runs: the second slot moves.
    let r = w.step();
    assert_eq!(World::shutdowns(&r.changes).len(), 1);
    w.settle(20);
    assert_eq!(w.live_on("spare").len(), 2);
    assert!(w.live_on("n1").is_empty());
}

#[test]
fn drain_start_first_keeps_serving_until_the_replacement_runs() {
    let mut w = two_on("n1");
    w.set_update_config(policy(1, UpdateOrder::StartFirst));
    w.node_mut("n1").spec.availability = Availability::Drain;
    let r = w.step();
    assert_eq!(World::creates(&r.changes).len(), 1);
    assert!(World::shutdowns(&r.changes).is_empty());
    assert_eq!(w.live_on("n1").len(), 2);
    assert!(w.step().changes.is_empty(), "one move at a time");
    nodes_act(&mut w);
    assert_eq!(w.running().len(), 3, "old and new both run for a moment");
    let r = w.step();
    assert_eq!(World::shutdowns(&r.changes).len(), 1, "the old one stops");
    assert_eq!(World::creates(&r.changes).len(), 1, "the next slot moves");
    w.settle(20);
    assert_eq!(w.live_on("spare").len(), 2);
    assert!(w.live_on("n1").is_empty());
}

#[test]
fn drain_with_parallelism_zero_moves_every_slot_at_once() {
    let mut w = two_on("n1");
    w.set_update_config(policy(0, UpdateOrder::StopFirst));
    w.node_mut("n1").spec.availability = Availability::Drain;
    let r = w.step();
    assert_eq!(World::shutdowns(&r.changes).len(), 2);
}

#[test]
fn drain_empties_the_node_even_when_no_other_node_can_take_the_tasks() {
    let mut w = World::new(replicated(2), &["n1"]);
    w.set_update_config(policy(1, UpdateOrder::StartFirst));
    w.settle(20);
    w.node_mut("n1").spec.availability = Availability::Drain;
    w.settle(40);
    assert!(w.live_on("n1").is_empty(), "{:#?}", w.tasks);
    assert_eq!(w.live().len(), 2, "both slots wait, pending, for a node");
}

#[test]
fn a_task_not_yet_running_on_a_drained_node_moves_at_once() {
    let mut w = World::new(replicated(2), &["n1", "n2"]);
    w.node_mut("n2").spec.availability = Availability::Pause;
    w.step();
    w.schedule();
    assert_eq!(w.live_on("n1").len(), 2, "assigned, not running");
    w.node_mut("n2").spec.availability = Availability::Active;
    w.node_mut("n1").spec.availability = Availability::Drain;
    let r = w.step();
    assert_eq!(World::shutdowns(&r.changes).len(), 2);
    assert_eq!(World::creates(&r.changes).len(), 2);
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
