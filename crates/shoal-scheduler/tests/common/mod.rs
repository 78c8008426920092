//! What the scheduler's property tests share: a scenario (nodes, tasks already placed, a batch
//! to place), how its tasks are made, and one scheduling run over it.
#![allow(dead_code)]

use shoal_scheduler::{ClusterView, Plan, schedule};
use shoal_types::{Id, Node, Task, TaskSpec, TaskState};

#[derive(Debug, Clone)]
pub struct Scenario {
    pub nodes: Vec<Node>,
    pub existing: Vec<Task>,
    pub pending: Vec<Task>,
}

/// A pending task of service `s{service}` with `spec`, desired running.
pub fn task(id: &str, service: usize, spec: TaskSpec) -> Task {
    let mut t = Task {
        id: Id::from_raw(id),
        service_id: Id::from_raw(format!("s{service}")),
        spec,
        desired_state: TaskState::Running,
        ..Task::default()
    };
    t.status.state = TaskState::Pending;
    t
}

/// The batch to place, from (service, pre-assigned node number): tasks `t000`, `t001`...
pub fn pending(raw: &[(usize, Option<usize>)], spec_of: impl Fn(usize) -> TaskSpec) -> Vec<Task> {
    raw.iter()
        .enumerate()
        .map(|(i, &(s, pre))| {
            let mut t = task(&format!("t{i:03}"), s, spec_of(s));
            t.node_id = pre.map(|n| Id::from_raw(format!("n{n:02}")));
            t
        })
        .collect()
}

/// Whether a task holds its node's resources: placed, and not ended.
pub fn holds(t: &Task) -> bool {
    t.node_id.is_some() && t.status.state >= TaskState::Assigned && !t.status.state.is_terminal()
}

/// Schedules the scenario's batch; returns the view after it and the plan.
pub fn run(s: &Scenario) -> (ClusterView, Plan) {
    let mut view = ClusterView::new(&s.nodes, &s.existing);
    let refs: Vec<&Task> = s.pending.iter().collect();
    let plan = schedule(&mut view, &refs);
    (view, plan)
}
