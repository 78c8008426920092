//! One replica slot, one container. In every manager's store, a replicated (or job) slot and a
//! global service's node never have more than two live tasks wanted running: two only during a
//! start-first hand-over (moves off drained nodes and rebalancing moves are start-first), when
//! the old task serves until its replacement runs. Once the cluster has converged, one, and the
//! runtimes agree: no slot has two processes anywhere.
//!
//! Before convergence two processes of one slot are allowed: a node cut off from its managers
//! keeps running its task while the managers replace it elsewhere, as in Swarm.

use std::collections::BTreeMap;

use shoal_types::{Id, TaskState};

use super::{Invariant, Observation};

pub struct Slots;

/// A slot's key: (service, replica number) or, for global services, (service, node).
fn slot_key(t: &shoal_types::Task) -> (Id, String) {
    let which = if t.slot > 0 {
        format!("slot {}", t.slot)
    } else {
        format!(
            "node {}",
            t.node_id.as_ref().map(Id::as_str).unwrap_or("(none)")
        )
    };
    (t.service_id.clone(), which)
}

impl Invariant for Slots {
    fn name(&self) -> &'static str {
        "no replica slot runs twice"
    }

    fn check(&mut self, obs: &Observation) -> Result<(), String> {
        for m in &obs.managers {
            let mut wanted: BTreeMap<(Id, String), Vec<&Id>> = BTreeMap::new();
            for t in m.state.tasks() {
                // A global task not yet placed has no node: it claims nothing yet.
                if t.slot == 0 && t.node_id.is_none() {
                    continue;
                }
                if t.desired_state == TaskState::Running && !t.status.state.is_terminal() {
                    wanted.entry(slot_key(t)).or_default().push(&t.id);
                }
            }
            // A start-first hand-over (an update with `--update-order start-first`, a move off a
            // drained node, a rebalancing move) keeps the old task next to its replacement
            // until the replacement runs: two, never more, and only one once converged.
            let most = if obs.converged { 1 } else { 2 };
            if let Some(((svc, which), ids)) = wanted.iter().find(|(_, ids)| ids.len() > most) {
                return Err(format!(
                    "manager m{}: service {svc} {which} has {} live tasks wanted running: {ids:?}",
                    m.idx,
                    ids.len()
                ));
            }
        }
        if !obs.converged {
            return Ok(());
        }
        let tasks = obs.tasks();
        let mut running: BTreeMap<(Id, String), Vec<(usize, &Id)>> = BTreeMap::new();
        for n in &obs.nodes {
            for id in &n.running {
                if let Some(t) = tasks.get(id) {
                    running.entry(slot_key(t)).or_default().push((n.idx, id));
                }
            }
        }
        match running.iter().find(|(_, r)| r.len() > 1) {
            Some(((svc, which), r)) => {
                let states: Vec<String> = r
                    .iter()
                    .filter_map(|(_, id)| tasks.get(*id))
                    .map(|t| {
                        format!(
                            "{} {}/wanted {} version {}",
                            t.id,
                            t.status.state.as_str(),
                            t.desired_state.as_str(),
                            t.meta.version
                        )
                    })
                    .collect();
                Err(format!(
                    "after convergence, service {svc} {which} runs {} processes (node index, task): {r:?}; the store has {states:?}",
                    r.len()
                ))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixtures::*;
    use shoal_store::Op;
    use shoal_types::node::{Availability, NodeState};
    use shoal_types::service::ServiceMode;

    #[test]
    fn two_live_tasks_wanted_in_one_slot_fail() {
        let ok = state(vec![
            Op::CreateNode(node("n1", Availability::Active, NodeState::Ready)),
            Op::CreateTask(task("t1", "s", 1, "n1", TaskState::Running)),
            Op::CreateTask(task("t2", "s", 2, "n1", TaskState::Running)),
            Op::CreateTask(task("t0", "s", 1, "n1", TaskState::Failed)),
        ]);
        assert!(Slots.check(&obs(vec![manager(0, ok)], vec![])).is_ok());
        // A start-first hand-over: two, while it lasts.
        let handover = state(vec![
            Op::CreateTask(task("t1", "s", 1, "n1", TaskState::Running)),
            Op::CreateTask(task("t2", "s", 1, "n2", TaskState::Pending)),
        ]);
        assert!(
            Slots
                .check(&obs(vec![manager(0, handover.clone())], vec![]))
                .is_ok()
        );
        let mut settled = obs(vec![manager(0, handover)], vec![]);
        settled.converged = true;
        let err = Slots
            .check(&settled)
            .expect_err("two tasks in slot 1 once converged");
        assert!(err.contains("slot 1"), "{err}");
        let bad = state(vec![
            Op::CreateTask(task("t1", "s", 1, "n1", TaskState::Running)),
            Op::CreateTask(task("t2", "s", 1, "n2", TaskState::Pending)),
            Op::CreateTask(task("t3", "s", 1, "n1", TaskState::Assigned)),
        ]);
        let err = Slots
            .check(&obs(vec![manager(0, bad)], vec![]))
            .expect_err("three tasks in slot 1");
        assert!(err.contains("slot 1"), "{err}");
        // Global: three on one node.
        let bad = state(vec![
            Op::CreateTask(task("g1", "g", 0, "n1", TaskState::Running)),
            Op::CreateTask(task("g2", "g", 0, "n1", TaskState::Assigned)),
            Op::CreateTask(task("g3", "g", 0, "n1", TaskState::Pending)),
        ]);
        assert!(Slots.check(&obs(vec![manager(0, bad)], vec![])).is_err());
    }

    #[test]
    fn two_processes_of_one_slot_fail_once_converged() {
        let mut old = task("t1", "s", 1, "n1", TaskState::Running);
        old.desired_state = TaskState::Shutdown;
        let s = state(vec![
            Op::CreateService(service("s", ServiceMode::Replicated { replicas: 1 })),
            Op::CreateTask(old),
            Op::CreateTask(task("t2", "s", 1, "n2", TaskState::Running)),
        ]);
        let nodes = vec![runtime(0, "n1", &["t1"]), runtime(1, "n2", &["t2"])];
        let mut o = obs(vec![manager(0, s)], nodes);
        assert!(Slots.check(&o).is_ok(), "allowed while faults run");
        o.converged = true;
        let err = Slots.check(&o).expect_err("two processes");
        assert!(err.contains("runs 2 processes"), "{err}");
    }
}
