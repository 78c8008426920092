//! Global services: one task per eligible node.

use shoal_types::{Availability, NodeState, RestartCondition, ServiceMode, TaskState};

use crate::common::*;

fn global_world(nodes: &[&str]) -> World {
    World::new(service(ServiceMode::Global), nodes)
}

#[test]
fn one_task_per_node_created_with_its_node() {
    let mut w = global_world(&["n1", "n2", "n3"]);
    let r = w.step();
    let created = World::creates(&r.changes);
    let nodes: Vec<&str> = created
        .iter()
        .filter_map(|t| t.node_id.as_ref().map(|n| n.as_str()))
        .collect();
    assert_eq!(nodes, vec!["n1", "n2", "n3"]);
    assert!(
        created
            .iter()
            .all(|t| t.slot == 0 && t.status.state == TaskState::Pending)
    );
    w.settle(20);
    assert_eq!(w.running().len(), 3);
    assert!(w.reconcile().changes.is_empty());
}

#[test]
fn joining_node_gets_a_task() {
    let mut w = global_world(&["n1"]);
    w.settle(20);
    w.nodes.push(node("n2"));
    let r = w.step();
    let created = World::creates(&r.changes);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].node_id.as_ref().map(|n| n.as_str()), Some("n2"));
}

#[test]
fn unknown_state_node_is_eligible() {
    let mut w = global_world(&["n1"]);
    w.node_mut("n1").status.state = NodeState::Unknown;
    assert_eq!(World::creates(&w.step().changes).len(), 1);
}

#[test]
fn drained_or_down_node_loses_its_task_without_replacement() {
    for drain in [true, false] {
        let mut w = global_world(&["n1", "n2"]);
        w.settle(20);
        let on_n1 = w.live_on("n1")[0].id.clone();
        if drain {
            w.node_mut("n1").spec.availability = Availability::Drain;
        } else {
            w.node_mut("n1").status.state = NodeState::Down;
        }
        let r = w.step();
        assert_eq!(World::shutdowns(&r.changes), vec![&on_n1]);
        assert!(World::creates(&r.changes).is_empty());
        w.settle(20);
        assert_eq!(w.live().len(), 1);
        assert!(w.live_on("n1").is_empty());
        // Back to active: it gets a task again (once the old one stopped, if the node was down).
        w.node_mut("n1").spec.availability = Availability::Active;
        w.node_mut("n1").status.state = NodeState::Ready;
        w.settle(20);
        assert_eq!(w.live_on("n1").len(), 1);
        assert_eq!(w.live().len(), 2);
    }
}

#[test]
fn paused_node_keeps_its_task_and_gets_none_new() {
    let mut w = global_world(&["n1", "n2"]);
    w.restart_policy(RestartCondition::Any, 0, 0, 0);
    w.settle(20);
    w.node_mut("n1").spec.availability = Availability::Pause;
    assert!(w.step().changes.is_empty());
    // Its task fails: no restart while paused.
    let id = w.live_on("n1")[0].id.clone();
    w.set_state(&id, TaskState::Failed);
    w.advance(secs(10));
    assert!(World::creates(&w.step().changes).is_empty());
    // A paused node that joins gets nothing.
    let mut n3 = node("n3");
    n3.spec.availability = Availability::Pause;
    w.nodes.push(n3);
    assert!(World::creates(&w.step().changes).is_empty());
    // Reactivated: the failed task is restarted.
    w.node_mut("n1").spec.availability = Availability::Active;
    let created: Vec<_> = World::creates(&w.step().changes)
        .iter()
        .map(|t| t.node_id.clone())
        .collect();
    assert_eq!(created.len(), 1);
}

#[test]
fn task_made_for_a_node_paused_before_it_was_assigned_is_dropped() {
    let mut w = global_world(&["n1"]);
    let first = w.step();
    let created = World::creates(&first.changes);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].status.state, TaskState::Pending);
    let pending = created[0].id.clone();
    w.node_mut("n1").spec.availability = Availability::Pause;
    let r = w.step();
    assert_eq!(World::shutdowns(&r.changes), vec![&pending]);
    assert!(World::creates(&r.changes).is_empty());
    assert!(w.step().changes.is_empty());
    w.node_mut("n1").spec.availability = Availability::Active;
    assert_eq!(World::creates(&w.step().changes).len(), 1);
    w.settle(20);
    assert_eq!(w.live_on("n1").len(), 1);
}

#[test]
fn constraints_pick_the_nodes() {
    let mut w = global_world(&["n1", "n2", "n3"]);
    w.node_mut("n2")
        .spec
        .labels
        .insert("gpu".into(), "yes".into());
    w.service.spec.task.placement.constraints = vec!["node.labels.gpu==yes".into()];
    w.settle(20);
    assert_eq!(w.live().len(), 1);
    assert_eq!(w.live_on("n2").len(), 1);
    // The label moves: the task follows.
    w.node_mut("n2").spec.labels.clear();
    w.node_mut("n3")
        .spec
        .labels
        .insert("gpu".into(), "yes".into());
    w.settle(20);
    assert_eq!(w.live().len(), 1);
    assert_eq!(w.live_on("n3").len(), 1);
    // Constraints that do not parse match nowhere.
    w.service.spec.task.placement.constraints = vec!["gpu".into()];
    w.settle(20);
    assert!(w.live().is_empty());
}

#[test]
fn failed_global_task_restarts_on_its_node() {
    let mut w = global_world(&["n1", "n2"]);
    w.settle(20);
    let id = w.live_on("n2")[0].id.clone();
    w.set_state(&id, TaskState::Failed);
    let r = w.step();
    assert!(r.changes.is_empty());
    assert_eq!(r.requeue_at, Some(w.now.add(secs(5))));
    w.advance(secs(5));
    let r = w.step();
    let created = World::creates(&r.changes);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].node_id.as_ref().map(|n| n.as_str()), Some("n2"));
    assert_eq!(created[0].restart_history.len(), 1);
}

#[test]
fn rolling_update_of_a_global_service() {
    let mut w = global_world(&["n1", "n2", "n3"]);
    w.settle(20);
    w.update_spec(|s| s.task.container.image = "nginx:2".into());
    let r = w.step();
    assert_eq!(
        w.update_state(),
        Some(shoal_types::service::UpdateState::Updating)
    );
    assert_eq!(World::shutdowns(&r.changes).len(), 1, "parallelism 1");
    w.settle(60);
    assert_eq!(
        w.update_state(),
        Some(shoal_types::service::UpdateState::Completed)
    );
    assert_eq!(w.running().len(), 3);
    assert!(
        w.running()
            .iter()
            .all(|t| t.spec.container.image == "nginx:2")
    );
}
