//! A tiny in-memory cluster for driving the reconcilers: the store (tasks, nodes, one service),
//! a fake clock, and crude scheduler and agent steps. It applies `Change`s the way the manager
//! will, and checks on the way that desired states only move forward.

#![allow(dead_code)]

use std::time::Duration;

use shoal_orchestrator::{
    Change, Context, Reconciled, constraint, reap_history, reconcile_orphans, reconcile_service,
};
use shoal_types::service::{UpdateConfig, UpdateState, UpdateStatus};
use shoal_types::{
    ClusterSpec, Id, IdGen, Node, NodeState, RestartCondition, Service, ServiceMode, ServiceSpec,
    Task, TaskState, Timestamp,
};

pub const T0: Timestamp = Timestamp(1_700_000_000_000_000_000);

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn node(id: &str) -> Node {
    let mut n = Node {
        id: Id::from_raw(id),
        ..Default::default()
    };
    n.status.state = NodeState::Ready;
    n.description.hostname = id.to_string();
    n
}

pub fn service(mode: ServiceMode) -> Service {
    let mut spec = ServiceSpec {
        name: "web".into(),
        mode,
        ..Default::default()
    };
    spec.task.container.image = "nginx:1".into();
    spec.task.restart.delay = Some(secs(5));
    Service {
        id: Id::from_raw("svc"),
        spec,
        ..Default::default()
    }
}

pub fn replicated(replicas: u64) -> Service {
    service(ServiceMode::Replicated { replicas })
}

/// Runs `f` with the reconcilers' view of this world: a [`Context`] and the tasks.
fn in_context<R>(
    now: Timestamp,
    cluster: &ClusterSpec,
    nodes: &[Node],
    tasks: &[Task],
    f: impl FnOnce(&Context, &[&Task]) -> R,
) -> R {
    let nodes: Vec<&Node> = nodes.iter().collect();
    let ctx = Context {
        now,
        cluster,
        nodes: &nodes,
    };
    let tasks: Vec<&Task> = tasks.iter().collect();
    f(&ctx, &tasks)
}

pub struct World {
    pub now: Timestamp,
    pub cluster: ClusterSpec,
    pub nodes: Vec<Node>,
    pub service: Service,
    pub tasks: Vec<Task>,
    pub ids: IdGen,
    /// Every change applied so far, oldest first.
    pub log: Vec<Change>,
}

impl World {
    pub fn new(service: Service, nodes: &[&str]) -> World {
        World {
            now: T0,
            cluster: ClusterSpec::default(),
            nodes: nodes.iter().map(|n| node(n)).collect(),
            service,
            tasks: Vec::new(),
            ids: IdGen::seeded(42),
            log: Vec::new(),
        }
    }

    pub fn reconcile(&mut self) -> Reconciled {
        let (service, ids) = (&self.service, &mut self.ids);
        in_context(
            self.now,
            &self.cluster,
            &self.nodes,
            &self.tasks,
            |ctx, tasks| reconcile_service(ctx, service, tasks, ids),
        )
    }

    pub fn reap(&self) -> Vec<Change> {
        in_context(
            self.now,
            &self.cluster,
            &self.nodes,
            &self.tasks,
            |ctx, tasks| reap_history(ctx, &self.service, tasks),
        )
    }

    pub fn orphans(&self) -> Reconciled {
        in_context(
            self.now,
            &self.cluster,
            &self.nodes,
            &self.tasks,
            reconcile_orphans,
        )
    }

    /// Reconciles and applies the result.
    pub fn step(&mut self) -> Reconciled {
        let r = self.reconcile();
        self.apply(&r.changes);
        r
    }

    pub fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            self.log.push(c.clone());
            match c {
                Change::CreateTask(t) => {
                    assert!(self.task(&t.id).is_none(), "task {} created twice", t.id);
                    let mut t = t.clone();
                    // What the store does on create: a creation time that orders creations.
                    let last = self
                        .tasks
                        .iter()
                        .map(|t| t.meta.created_at)
                        .max()
                        .unwrap_or_default();
                    t.meta.created_at = self.now.max(Timestamp(last.0 + 1));
                    t.meta.updated_at = t.meta.created_at;
                    self.tasks.push(t);
                }
                Change::SetDesiredState { task_id, desired } => {
                    let t = self
                        .task_mut(task_id)
                        .unwrap_or_else(|| panic!("no task {task_id}"));
                    assert!(
                        *desired > t.desired_state,
                        "desired state of {task_id} moved back: {:?} -> {desired:?}",
                        t.desired_state
                    );
                    t.desired_state = *desired;
                }
                Change::DeleteTask { task_id } => {
                    let before = self.tasks.len();
                    self.tasks.retain(|t| &t.id != task_id);
                    assert_eq!(
                        before,
                        self.tasks.len() + 1,
                        "deleted a task that is not there: {task_id}"
                    );
                }
                Change::SetUpdateStatus { service_id, status } => {
                    assert_eq!(service_id, &self.service.id);
                    self.service.update_status = status.clone();
                }
                Change::RollbackService {
                    service_id,
                    message,
                } => {
                    assert_eq!(service_id, &self.service.id);
                    let Some(prev) = self.service.previous_spec.take() else {
                        panic!("rollback without previous spec")
                    };
                    let cur = std::mem::replace(&mut self.service.spec, prev);
                    self.service.previous_spec = Some(cur);
                    self.service.update_status = Some(UpdateStatus {
                        state: UpdateState::RollbackStarted,
                        started_at: self.now,
                        completed_at: Timestamp::ZERO,
                        message: message.clone(),
                    });
                }
            }
        }
    }

    /// What the manager's control API does on `service update` (a second after whatever
    /// happened last, so the update starts after the tasks it replaces were made).
    pub fn update_spec(&mut self, f: impl FnOnce(&mut ServiceSpec)) {
        self.advance(secs(1));
        let prev = self.service.spec.clone();
        f(&mut self.service.spec);
        self.service.previous_spec = Some(prev);
        self.service.update_status = None;
    }

    pub fn set_update_config(&mut self, cfg: UpdateConfig) {
        self.service.spec.update = Some(cfg.clone());
        self.service.spec.rollback = Some(cfg);
    }

    pub fn restart_policy(
        &mut self,
        condition: RestartCondition,
        delay: u64,
        max_attempts: u64,
        window: u64,
    ) {
        let r = &mut self.service.spec.task.restart;
        r.condition = condition;
        r.delay = Some(secs(delay));
        r.max_attempts = max_attempts;
        r.window = Some(secs(window));
    }

    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.add(d);
    }

    pub fn task(&self, id: &Id) -> Option<&Task> {
        self.tasks.iter().find(|t| &t.id == id)
    }

    pub fn task_mut(&mut self, id: &Id) -> Option<&mut Task> {
        self.tasks.iter_mut().find(|t| &t.id == id)
    }

    pub fn node_mut(&mut self, id: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id.as_str() == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn set_state(&mut self, id: &Id, state: TaskState) {
        let now = self.now;
        let t = self.task_mut(id).unwrap_or_else(|| panic!("no task {id}"));
        assert!(state >= t.status.state, "state of {id} moved back");
        t.status.state = state;
        t.status.timestamp = now;
    }

    pub fn live(&self) -> Vec<&Task> {
        self.tasks.iter().filter(|t| t.is_live()).collect()
    }

    pub fn live_in_slot(&self, slot: u64) -> Vec<&Task> {
        self.tasks
            .iter()
            .filter(|t| t.is_live() && t.slot == slot)
            .collect()
    }

    pub fn live_on(&self, node: &str) -> Vec<&Task> {
        self.tasks
            .iter()
            .filter(|t| t.is_live() && t.node_id.as_ref().is_some_and(|n| n.as_str() == node))
            .collect()
    }

    pub fn running(&self) -> Vec<&Task> {
        self.live()
            .into_iter()
            .filter(|t| t.status.state == TaskState::Running)
            .collect()
    }

    fn accepts(&self, node: &Id, t: &Task) -> bool {
        self.nodes.iter().any(|n| &n.id == node && self.fits(n, t))
    }

    fn fits(&self, n: &Node, t: &Task) -> bool {
        n.accepts_new_tasks()
            && constraint::node_matches(&t.spec.placement.constraints, n) == Some(true)
    }

    /// The scheduler: pending wanted tasks go to the accepting node with the fewest live tasks.
    pub fn schedule(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.tasks.len() {
            let t = &self.tasks[i];
            if t.status.state != TaskState::Pending || t.desired_state > TaskState::Running {
                continue;
            }
            let target = match &t.node_id {
                Some(n) => self.accepts(n, t).then(|| n.clone()),
                None => self
                    .nodes
                    .iter()
                    .filter(|n| self.fits(n, t))
                    .min_by_key(|n| (self.live_on(n.id.as_str()).len(), n.id.clone()))
                    .map(|n| n.id.clone()),
            };
            if let Some(n) = target {
                let now = self.now;
                let t = &mut self.tasks[i];
                t.node_id = Some(n);
                t.status.state = TaskState::Assigned;
                t.status.err.clear();
                t.status.timestamp = now;
                moved = true;
            } else if t.status.err.is_empty() {
                // As the real scheduler, say why: the orchestrator reads it (a move whose
                // replacement cannot be placed does not hold a drain).
                self.tasks[i].status.err = "no suitable node".into();
                moved = true;
            }
        }
        moved
    }

    /// Agents on reachable nodes: stop what is no longer wanted, start what is assigned.
    pub fn agents(&mut self) -> bool {
        let now = self.now;
        let up: Vec<Id> = self
            .nodes
            .iter()
            .filter(|n| n.status.state != NodeState::Down)
            .map(|n| n.id.clone())
            .collect();
        let mut moved = false;
        for t in &mut self.tasks {
            let on_up = t.node_id.as_ref().is_some_and(|n| up.contains(n));
            if !on_up || t.status.state.is_terminal() || t.status.state < TaskState::Assigned {
                continue;
            }
            let next = if t.desired_state > TaskState::Running {
                TaskState::Shutdown
            } else if t.status.state < TaskState::Running {
                TaskState::Running
            } else {
                continue;
            };
            t.status.state = next;
            t.status.timestamp = now;
            moved = true;
        }
        moved
    }

    /// Reconcile, reap, schedule and run until nothing moves; jumps the clock to each requeue
    /// time. Panics if it does not settle within `max_rounds`.
    pub fn settle(&mut self, max_rounds: usize) {
        for _ in 0..max_rounds {
            let r = self.step();
            let reaped = self.reap();
            self.apply(&reaped);
            let scheduled = self.schedule();
            let ran = self.agents();
            if !r.changes.is_empty() || !reaped.is_empty() || scheduled || ran {
                continue;
            }
            match r.requeue_at {
                Some(at) => self.now = self.now.max(at),
                None => return,
            }
        }
        panic!(
            "did not settle in {max_rounds} rounds; tasks: {:#?}",
            self.tasks
        );
    }

    pub fn creates(changes: &[Change]) -> Vec<&Task> {
        changes
            .iter()
            .filter_map(|c| {
                if let Change::CreateTask(t) = c {
                    Some(t)
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn shutdowns(changes: &[Change]) -> Vec<&Id> {
        changes
            .iter()
            .filter_map(|c| match c {
                Change::SetDesiredState { task_id, desired } if *desired >= TaskState::Shutdown => {
                    Some(task_id)
                }
                _ => None,
            })
            .collect()
    }

    pub fn deletes(changes: &[Change]) -> Vec<&Id> {
        changes
            .iter()
            .filter_map(|c| {
                if let Change::DeleteTask { task_id } = c {
                    Some(task_id)
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn update_state(&self) -> Option<UpdateState> {
        self.service.update_status.as_ref().map(|s| s.state)
    }
}
