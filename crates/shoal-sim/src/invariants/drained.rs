//! Nothing runs on a drained or down node after the grace. In the leader's store, once a node
//! has been drained or down for [`GRACE`], each of its unfinished tasks is wanted stopped. In
//! the runtime, a node drained for the grace that has also been connected to the leader,
//! untouched by faults, for the grace runs nothing. (A node cut off from its managers cannot
//! learn it was drained, and keeps running its tasks, as in Swarm.)

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_types::node::{Availability, NodeState};
use shoal_types::{Id, TaskState};

use super::{GRACE, Invariant, Observation};

#[derive(Default)]
pub struct Drained {
    /// Since when (simulated time) the leader's store has had each node drained or down.
    since: BTreeMap<Id, (Duration, bool)>,
}

impl Invariant for Drained {
    fn name(&self) -> &'static str {
        "no task on a drained or down node after the grace"
    }

    fn check(&mut self, obs: &Observation) -> Result<(), String> {
        let Some(leader) = obs.leader() else {
            return Ok(());
        };
        let mut seen = BTreeMap::new();
        for n in leader.state.nodes() {
            let drained = n.spec.availability == Availability::Drain;
            let down = n.status.state == NodeState::Down;
            if !(drained || down) {
                continue;
            }
            // A change between drained and down starts the grace afresh.
            let since = match self.since.get(&n.id) {
                Some(&(s, was_drained)) if was_drained == drained => s,
                _ => obs.elapsed,
            };
            seen.insert(n.id.clone(), (since, drained));
            if obs.elapsed.saturating_sub(since) < GRACE {
                continue;
            }
            if let Some(t) = leader.state.tasks_on_node(&n.id).find(|t| {
                t.desired_state <= TaskState::Running
                    && !t.status.state.is_terminal()
                    && t.status.state >= TaskState::Assigned
            }) {
                return Err(format!(
                    "leader m{}: node {} has been {} for {:?} but task {} is still wanted {}",
                    leader.idx,
                    n.id,
                    if drained { "drained" } else { "down" },
                    obs.elapsed.saturating_sub(since),
                    t.id,
                    t.desired_state.as_str()
                ));
            }
            if !drained {
                continue;
            }
            if let Some(rt) = obs.nodes.iter().find(|r| r.id == n.id)
                && rt.up
                && rt.settled_for >= GRACE
                && !rt.running.is_empty()
            {
                return Err(format!(
                    "node {} (index {}) has been drained for {:?} and connected for {:?}, yet runs {:?}",
                    n.id,
                    rt.idx,
                    obs.elapsed.saturating_sub(since),
                    rt.settled_for,
                    rt.running
                ));
            }
        }
        // A node that is neither any more (it came back) starts its grace afresh next time.
        self.since = seen;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixtures::*;
    use shoal_store::Op;

    #[test]
    fn a_task_still_wanted_on_a_drained_node_fails_after_the_grace() {
        let s = state(vec![
            Op::CreateNode(node("n1", Availability::Drain, NodeState::Ready)),
            Op::CreateTask(task("t1", "s", 1, "n1", TaskState::Running)),
        ]);
        let mut d = Drained::default();
        let mut o = obs(vec![manager(0, s)], vec![]);
        o.elapsed = Duration::from_secs(10);
        assert!(d.check(&o).is_ok(), "within the grace");
        o.elapsed = Duration::from_secs(10) + GRACE;
        let err = d.check(&o).expect_err("past the grace");
        assert!(err.contains("drained"), "{err}");
    }

    #[test]
    fn a_down_node_with_wanted_tasks_fails_after_the_grace() {
        let s = state(vec![
            Op::CreateNode(node("n1", Availability::Active, NodeState::Down)),
            Op::CreateTask(task("t1", "s", 1, "n1", TaskState::Running)),
        ]);
        let mut d = Drained::default();
        let mut o = obs(vec![manager(0, s)], vec![]);
        o.elapsed = Duration::from_secs(1);
        assert!(d.check(&o).is_ok());
        o.elapsed = Duration::from_secs(1) + GRACE;
        assert!(d.check(&o).expect_err("down").contains("down"));
    }

    #[test]
    fn a_connected_drained_node_that_still_runs_fails() {
        let mut t = task("t1", "s", 1, "n1", TaskState::Running);
        t.desired_state = TaskState::Shutdown;
        let s = state(vec![
            Op::CreateNode(node("n1", Availability::Drain, NodeState::Ready)),
            Op::CreateTask(t),
        ]);
        let mut d = Drained::default();
        let mut rt = runtime(0, "n1", &["t1"]);
        let mut o = obs(vec![manager(0, s.clone())], vec![rt.clone()]);
        o.elapsed = Duration::from_secs(1);
        assert!(d.check(&o).is_ok());
        // Cut off from its managers: allowed to keep running.
        rt.settled_for = Duration::from_secs(2);
        let mut o = obs(vec![manager(0, s.clone())], vec![rt.clone()]);
        o.elapsed = Duration::from_secs(1) + GRACE;
        assert!(d.check(&o).is_ok());
        rt.settled_for = GRACE;
        let mut o = obs(vec![manager(0, s)], vec![rt]);
        o.elapsed = Duration::from_secs(1) + GRACE;
        assert!(d.check(&o).expect_err("still runs").contains("yet runs"));
    }
}
