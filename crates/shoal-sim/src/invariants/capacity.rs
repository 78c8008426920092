//! No node above its capacity. In every manager's store, the reservations of the tasks that hold
//! a place on a node (assigned or later, not ended: the scheduler's own accounting) fit in what
//! the node reports. In every runtime, the reservations of the processes actually running fit
//! too: a task the store has let go of must have stopped before its place is given away.

use shoal_types::{Resources, TaskState};

use super::{Invariant, Observation};

pub struct Capacity;

fn over(used: Resources, cap: Resources) -> bool {
    used.nano_cpus > cap.nano_cpus || used.memory_bytes > cap.memory_bytes
}

fn add(a: &mut Resources, b: Resources) {
    a.nano_cpus += b.nano_cpus.max(0);
    a.memory_bytes += b.memory_bytes.max(0);
}

impl Invariant for Capacity {
    fn name(&self) -> &'static str {
        "no node above its capacity"
    }

    fn check(&mut self, obs: &Observation) -> Result<(), String> {
        for m in &obs.managers {
            for n in m.state.nodes() {
                let mut used = Resources::default();
                for t in m.state.tasks_on_node(&n.id) {
                    if t.status.state >= TaskState::Assigned && !t.status.state.is_terminal() {
                        add(&mut used, t.spec.resources.reservations);
                    }
                }
                if over(used, n.description.resources) {
                    return Err(format!(
                        "manager m{}: node {} holds reservations {used:?} above its capacity {:?}",
                        m.idx, n.id, n.description.resources
                    ));
                }
            }
        }
        let tasks = obs.tasks();
        for n in &obs.nodes {
            let mut used = Resources::default();
            for id in &n.running {
                if let Some(t) = tasks.get(id) {
                    add(&mut used, t.spec.resources.reservations);
                }
            }
            if over(used, n.capacity) {
                return Err(format!(
                    "node {} (index {}) runs {:?} whose reservations {used:?} exceed its capacity {:?}",
                    n.id, n.idx, n.running, n.capacity
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::fixtures::*;
    use shoal_store::Op;
    use shoal_types::node::{Availability, NodeState};

    fn heavy(id: &str, state: TaskState) -> shoal_types::Task {
        let mut t = task(id, "s", 1, "n1", state);
        t.spec.resources.reservations.nano_cpus = 3_000_000_000;
        t
    }

    #[test]
    fn overbooked_store_fails() {
        let n = || Op::CreateNode(node("n1", Availability::Active, NodeState::Ready));
        // A failed task holds nothing.
        let ok = state(vec![
            n(),
            Op::CreateTask(heavy("a", TaskState::Running)),
            Op::CreateTask(heavy("b", TaskState::Failed)),
        ]);
        assert!(Capacity.check(&obs(vec![manager(0, ok)], vec![])).is_ok());
        let bad = state(vec![
            n(),
            Op::CreateTask(heavy("a", TaskState::Running)),
            Op::CreateTask(heavy("b", TaskState::Assigned)),
        ]);
        let err = Capacity
            .check(&obs(vec![manager(0, bad)], vec![]))
            .expect_err("6 CPUs on a 4 CPU node");
        assert!(err.contains("above its capacity"), "{err}");
    }

    #[test]
    fn overbooked_runtime_fails() {
        // The store let go of "a" (failed) but its process still runs next to "b".
        let s = state(vec![
            Op::CreateNode(node("n1", Availability::Active, NodeState::Ready)),
            Op::CreateTask(heavy("a", TaskState::Failed)),
            Op::CreateTask(heavy("b", TaskState::Running)),
        ]);
        let o = obs(vec![manager(0, s)], vec![runtime(0, "n1", &["a", "b"])]);
        let err = Capacity.check(&o).expect_err("runtime overbooked");
        assert!(err.contains("exceed its capacity"), "{err}");
    }
}
