//! A task's state never goes backwards. Each manager's view of a task only moves forward in
//! time (also across a restart of that manager: its applied state is durable), and across
//! managers the state is a non-decreasing function of the Raft index that last wrote the task
//! (`meta.version`): two managers that applied the same write agree, and a later write never
//! holds an earlier state. A follower that lags is not a regression; an apply that undoes one is.

use std::collections::BTreeMap;

use shoal_types::{Id, TaskState};

use super::{Invariant, Observation};

#[derive(Default)]
pub struct Monotonic {
    /// Per manager and task: the newest (version, state) seen.
    per_manager: BTreeMap<(usize, Id), (u64, TaskState)>,
    /// Per task: the state seen at each write's Raft index, from any manager.
    by_version: BTreeMap<Id, BTreeMap<u64, TaskState>>,
}

impl Invariant for Monotonic {
    fn name(&self) -> &'static str {
        "task state never goes backwards"
    }

    fn check(&mut self, obs: &Observation) -> Result<(), String> {
        for m in &obs.managers {
            for t in m.state.tasks() {
                let (v, s) = (t.meta.version, t.status.state);
                let key = (m.idx, t.id.clone());
                if let Some(&(pv, ps)) = self.per_manager.get(&key)
                    && (v < pv || s < ps)
                {
                    return Err(format!(
                        "manager m{}: task {} went from {} (version {pv}) back to {} (version {v})",
                        m.idx,
                        t.id,
                        ps.as_str(),
                        s.as_str()
                    ));
                }
                self.per_manager.insert(key, (v, s));
                let history = self.by_version.entry(t.id.clone()).or_default();
                if let Some(&same) = history.get(&v)
                    && same != s
                {
                    return Err(format!(
                        "task {} at version {v}: manager m{} has {}, another manager had {}",
                        t.id,
                        m.idx,
                        s.as_str(),
                        same.as_str()
                    ));
                }
                let before = history.range(..v).next_back();
                let after = history.range(v + 1..).next();
                if let Some((&bv, &bs)) = before
                    && bs > s
                {
                    return Err(format!(
                        "task {}: {} at version {v} (manager m{}) is behind {} at the earlier version {bv}",
                        t.id,
                        s.as_str(),
                        m.idx,
                        bs.as_str()
                    ));
                }
                if let Some((&av, &as_)) = after
                    && as_ < s
                {
                    return Err(format!(
                        "task {}: {} at version {av} is behind {} at the earlier version {v} (manager m{})",
                        t.id,
                        as_.as_str(),
                        s.as_str(),
                        m.idx
                    ));
                }
                history.insert(v, s);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::ManagerObs;
    use crate::invariants::fixtures::*;
    use shoal_store::Op;

    fn view(idx: usize, state: TaskState, version_bump: usize) -> ManagerObs {
        // Version = number of ops applied: pad with unrelated tasks to move it.
        let mut ops: Vec<Op> = (0..version_bump)
            .map(|i| Op::CreateTask(task(&format!("pad{i}"), "x", 1, "n9", TaskState::New)))
            .collect();
        ops.push(Op::CreateTask(task("t1", "s", 1, "n1", state)));
        manager(idx, state_of(ops))
    }

    fn state_of(ops: Vec<Op>) -> std::sync::Arc<shoal_store::State> {
        state(ops)
    }

    #[test]
    fn forward_is_fine_backward_fails() {
        let mut m = Monotonic::default();
        assert!(
            m.check(&obs(vec![view(0, TaskState::Assigned, 0)], vec![]))
                .is_ok()
        );
        assert!(
            m.check(&obs(vec![view(0, TaskState::Running, 3)], vec![]))
                .is_ok()
        );
        // A lagging follower showing the older state at the older version is fine.
        assert!(
            m.check(&obs(vec![view(1, TaskState::Assigned, 0)], vec![]))
                .is_ok()
        );
        let err = m
            .check(&obs(vec![view(0, TaskState::Starting, 5)], vec![]))
            .expect_err("running back to starting");
        assert!(err.contains("back to starting"), "{err}");
    }

    #[test]
    fn disagreement_across_managers_fails() {
        let mut m = Monotonic::default();
        assert!(
            m.check(&obs(vec![view(0, TaskState::Running, 3)], vec![]))
                .is_ok()
        );
        let err = m
            .check(&obs(vec![view(1, TaskState::Preparing, 3)], vec![]))
            .expect_err("same write, different state");
        assert!(err.contains("another manager had running"), "{err}");
        let mut m = Monotonic::default();
        assert!(
            m.check(&obs(vec![view(0, TaskState::Running, 3)], vec![]))
                .is_ok()
        );
        let err = m
            .check(&obs(vec![view(1, TaskState::Preparing, 6)], vec![]))
            .expect_err("later write, earlier state");
        assert!(err.contains("is behind"), "{err}");
    }
}
