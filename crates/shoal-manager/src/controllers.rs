//! The manager's loops as [`Controller`]s of the one loop skeleton (`driver`): what their keys
//! are, which keys a write touches, and which pure step (`loops`) they run.
//!
//! - [`Orchestrator`]: keyed by service. A service wakes when it or one of its tasks changes,
//!   when a node its tasks are on (or, for a global service, any node) changes, and on the
//!   cluster object; a task whose service is gone wakes its (missing) service, whose key then
//!   stands for the orphans.
//! - [`Scheduler`]: keyed by task (those waiting for a node) and, for the rebalancer, by service.
//!   A waiting task wakes when it changes; every waiting task wakes when a node changes or a
//!   placed task gives its node's resources back. Rebalancing runs only when the batch placed
//!   nothing (placements first), for the services whose tasks changed, or every replicated
//!   service when a node changed.
//! - [`ClusterUpkeep`] and [`Compactor`]: one key each, woken by node and cluster changes or by
//!   their own requeue time.
//!
//! Each controller owns its state (the scheduler's set of waiting tasks) and is driven by one
//! task: no locks besides the ID generator shared with the control API.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_scheduler::ClusterView;
use shoal_store::state::Delta;
use shoal_store::{Op, State, Store};
use shoal_types::node::NodeRole;
use shoal_types::{Id, IdGen, ServiceMode, Task, TaskState, Timestamp};

use crate::driver::{Action, Controller, Outcome};
use crate::loops;

/// How much work a loop has done: for tests and benchmarks that check a write costs what it
/// changes.
#[derive(Debug, Default)]
pub struct LoopStats {
    /// Batches reconciled.
    pub passes: AtomicU64,
    /// Keys reconciled, summed over batches.
    pub keys: AtomicU64,
}

impl LoopStats {
    fn count(&self, keys: usize) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.keys
            .fetch_add(u64::try_from(keys).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn keys(&self) -> u64 {
        self.keys.load(Ordering::Relaxed)
    }

    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }
}

fn lock(ids: &Mutex<IdGen>) -> std::sync::MutexGuard<'_, IdGen> {
    ids.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_global(mode: &ServiceMode) -> bool {
    matches!(mode, ServiceMode::Global | ServiceMode::GlobalJob)
}

/// The services with a task on one of `nodes`, in either snapshot.
fn services_on_nodes<'a>(old: &'a State, new: &'a State, nodes: &'a [Id], out: &mut BTreeSet<Id>) {
    for n in nodes {
        for view in [old, new] {
            out.extend(view.tasks_on_node(n).map(|t| t.service_id.clone()));
        }
    }
}

/// Drives the service reconcilers (`shoal-orchestrator`).
pub struct Orchestrator {
    ids: Arc<Mutex<IdGen>>,
    stats: Arc<LoopStats>,
}

impl Orchestrator {
    pub fn new(ids: Arc<Mutex<IdGen>>, stats: Arc<LoopStats>) -> Self {
        Orchestrator { ids, stats }
    }
}

impl Controller for Orchestrator {
    /// A service ID.
    type Key = Id;
    const NAME: &'static str = "orchestrator";

    fn touched(&mut self, old: &State, new: &State, delta: &Delta) -> Vec<Id> {
        if delta.cluster {
            // Restart, update and history settings live there: every service may be affected.
            return loops::service_keys(new);
        }
        let mut keys: BTreeSet<Id> = delta.services.iter().cloned().collect();
        for t in &delta.tasks {
            // A network attachment (no service: the empty ID) concerns no reconciler when it
            // is made or detached; a deleted node wakes its attachments below.
            keys.extend(t.services().filter(|s| !s.as_str().is_empty()).cloned());
        }
        if !delta.nodes.is_empty() {
            // A node's state decides the fate of the tasks on it, and a global service has (or
            // could have) a task on every node.
            services_on_nodes(old, new, &delta.nodes, &mut keys);
            keys.extend(
                new.services()
                    .filter(|s| is_global(&s.spec.mode))
                    .map(|s| s.id.clone()),
            );
        }
        // A dependency's tasks decide when its dependents may start; a new service may be the
        // dependency they wait for.
        let dependents = loops::dependents_of(new, &keys);
        keys.extend(dependents);
        keys.into_iter().collect()
    }

    fn every_key(&mut self, view: &State) -> Vec<Id> {
        loops::service_keys(view)
    }

    fn reconcile(&mut self, view: &State, now: Timestamp, keys: &[Id]) -> Outcome<Id> {
        self.stats.count(keys.len());
        let keyed = loops::reconcile_services(view, now, keys, &mut lock(&self.ids));
        Outcome {
            ops: loops::changes_to_ops(view, now, keyed.changes),
            requeue: keyed.requeue,
            actions: Vec::new(),
        }
    }
}

/// What the scheduler loop looks at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SchedKey {
    /// A task waiting for a node (or to be let go before it got one).
    Task(Id),
    /// A service whose running tasks may be spread more evenly.
    Rebalance(Id),
}

/// Whether a task holds resources on its node (the scheduler's accounting).
fn occupies(t: &Task) -> bool {
    t.node_id.is_some() && t.status.state >= TaskState::Assigned && !t.status.state.is_terminal()
}

/// Drives the scheduler and the rebalancer (`shoal-scheduler`).
pub struct Scheduler {
    ids: Arc<Mutex<IdGen>>,
    stats: Arc<LoopStats>,
    /// Tasks waiting for a node in the newest state seen, kept from the deltas (rebuilt on
    /// every resync), so a node change wakes them without a walk over every task.
    waiting: BTreeSet<Id>,
    /// The scheduler's view of the cluster, kept across versions.
    placements: Option<Placements>,
}

/// A scheduler's view (`cv`) of the snapshot `basis`. Building one walks every placed task; a
/// kept one is brought forward by the tasks that changed since, so a write that places one task
/// costs about that task.
struct Placements {
    basis: State,
    cv: ClusterView,
}

impl Scheduler {
    pub fn new(ids: Arc<Mutex<IdGen>>, stats: Arc<LoopStats>) -> Self {
        Scheduler {
            ids,
            stats,
            waiting: BTreeSet::new(),
            placements: None,
        }
    }

    /// The scheduler's view of `view`: the kept one brought forward (each changed task taken
    /// out in its old form and counted in its new one), or a fresh one when a node changed or a
    /// change cannot be taken out exactly.
    fn placements(&mut self, view: &State) -> &mut ClusterView {
        let kept = self.placements.take().and_then(|mut p| {
            let delta = view.delta_since(&p.basis);
            let exact = delta.nodes.is_empty()
                && delta.tasks.iter().all(|t| {
                    let out = p.basis.task(&t.id).is_none_or(|old| p.cv.remove_task(old));
                    if out && let Some(new) = view.task(&t.id) {
                        p.cv.add_task(new);
                    }
                    out
                });
            exact.then_some(p.cv)
        });
        let cv = kept.unwrap_or_else(|| loops::cluster_view(view));
        &mut self
            .placements
            .insert(Placements {
                basis: view.clone(),
                cv,
            })
            .cv
    }

    /// Takes the placements `schedule` made on the kept view back out, so it describes its
    /// basis again: they come back, as stored, with the write that records them.
    fn unplace(&mut self, view: &State, ops: &[Op]) {
        let Some(p) = &mut self.placements else {
            return;
        };
        for op in ops {
            let Op::AssignTask {
                id,
                node_id,
                status,
                generic_resources,
            } = op
            else {
                continue;
            };
            let Some(t) = view.task(id) else { continue };
            let mut placed = (**t).clone();
            placed.node_id = Some(node_id.clone());
            placed.status.state = status.state;
            placed.assigned_generic_resources = generic_resources.clone();
            if !p.cv.remove_task(&placed) {
                self.placements = None;
                return;
            }
        }
    }

    fn replicated(view: &State) -> impl Iterator<Item = SchedKey> + '_ {
        view.services()
            .filter(|s| matches!(s.spec.mode, ServiceMode::Replicated { .. }))
            .map(|s| SchedKey::Rebalance(s.id.clone()))
    }
}

impl Controller for Scheduler {
    type Key = SchedKey;
    const NAME: &'static str = "scheduler";

    fn leadership(&mut self, _leading: bool, _now: Timestamp) {
        self.placements = None;
    }

    fn touched(&mut self, old: &State, new: &State, delta: &Delta) -> Vec<SchedKey> {
        let mut keys = BTreeSet::new();
        let mut freed = !delta.nodes.is_empty() || delta.cluster;
        let rebalance = loops::rebalancing(new);
        for touch in &delta.tasks {
            let now = new.task(&touch.id);
            match now {
                Some(t) if t.status.state <= TaskState::Pending => {
                    self.waiting.insert(touch.id.clone());
                    keys.insert(SchedKey::Task(touch.id.clone()));
                }
                _ => {
                    self.waiting.remove(&touch.id);
                }
            }
            // Resources given back: a task that could not be placed may fit now.
            freed |= old.task(&touch.id).is_some_and(|t| occupies(t))
                && !now.is_some_and(|t| occupies(t));
            if rebalance {
                keys.extend(touch.services().cloned().map(SchedKey::Rebalance));
            }
        }
        if freed {
            keys.extend(self.waiting.iter().cloned().map(SchedKey::Task));
        }
        if rebalance {
            keys.extend(delta.services.iter().cloned().map(SchedKey::Rebalance));
            if !delta.nodes.is_empty() || delta.cluster {
                keys.extend(Self::replicated(new));
            }
        }
        keys.into_iter().collect()
    }

    fn every_key(&mut self, view: &State) -> Vec<SchedKey> {
        self.waiting = view
            .tasks()
            .filter(|t| t.status.state <= TaskState::Pending)
            .map(|t| t.id.clone())
            .collect();
        let mut keys: Vec<SchedKey> = self.waiting.iter().cloned().map(SchedKey::Task).collect();
        if loops::rebalancing(view) {
            keys.extend(Self::replicated(view));
        }
        keys
    }

    fn reconcile(&mut self, view: &State, now: Timestamp, keys: &[SchedKey]) -> Outcome<SchedKey> {
        self.stats.count(keys.len());
        let mut tasks = Vec::new();
        let mut services = Vec::new();
        for k in keys {
            match k {
                SchedKey::Task(id) => tasks.push(id.clone()),
                SchedKey::Rebalance(id) => services.push(id.clone()),
            }
        }
        let (mut ops, pending) = loops::waiting_tasks(view, now, &tasks);
        if !pending.is_empty() {
            let placed = loops::place(view, now, &pending, self.placements(view));
            self.unplace(view, &placed);
            ops.extend(placed);
        }
        if !ops.is_empty() {
            // Placements first: look at the spread again once they have landed.
            return Outcome {
                ops,
                requeue: services
                    .into_iter()
                    .map(|s| (SchedKey::Rebalance(s), now))
                    .collect(),
                actions: Vec::new(),
            };
        }
        services.sort();
        let ids = self.ids.clone();
        let ops = loops::rebalance_services_on(view, now, &services, &mut lock(&ids), || {
            &*self.placements(view)
        });
        Outcome {
            ops,
            ..Outcome::default()
        }
    }
}

/// The leader's upkeep of the cluster itself: Raft members whose node is no longer a manager
/// (demoted or removed) leave the group, and a root CA rotation completes once every node holds
/// a certificate from the new root.
pub struct ClusterUpkeep {
    store: Store,
    ids: Arc<Mutex<IdGen>>,
}

/// Raft membership is not in the state, so the upkeep also looks again this often.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

impl ClusterUpkeep {
    pub fn new(store: Store, ids: Arc<Mutex<IdGen>>) -> Self {
        ClusterUpkeep { store, ids }
    }
}

impl Controller for ClusterUpkeep {
    type Key = ();
    const NAME: &'static str = "cluster";

    fn touched(&mut self, _old: &State, _new: &State, delta: &Delta) -> Vec<()> {
        if delta.cluster || !delta.nodes.is_empty() {
            vec![()]
        } else {
            Vec::new()
        }
    }

    fn every_key(&mut self, _view: &State) -> Vec<()> {
        vec![()]
    }

    fn reconcile(&mut self, view: &State, now: Timestamp, _keys: &[()]) -> Outcome<()> {
        let wanted: BTreeSet<u64> = view
            .nodes()
            .filter(|n| n.spec.role == NodeRole::Manager)
            .filter_map(|n| n.manager.as_ref().map(|m| m.raft_id))
            .collect();
        let actions = self
            .store
            .members()
            .into_keys()
            .filter(|id| !wanted.contains(id))
            .map(Action::RemoveMember)
            .collect();
        let mut step = crate::cluster::rotation_step(view, &mut lock(&self.ids));
        if step.is_some() {
            tracing::info!(
                "every node holds a certificate from the new root: root CA rotation complete"
            );
        } else {
            // One write of the cluster object at a time: both expect its version.
            step = crate::cluster::tunnel_key_step(view, now, &mut lock(&self.ids));
            if step.is_some() {
                tracing::info!("new tunnel key for encrypted overlays");
            }
        }
        Outcome {
            ops: step.into_iter().collect(),
            requeue: vec![((), now.add(UPKEEP_EVERY))],
            actions,
        }
    }
}

/// Keeps this member's Raft log compact with the cluster's current snapshot settings. Runs on
/// every member, leader or not.
pub struct Compactor;

const COMPACT_EVERY: Duration = Duration::from_secs(1);

impl Controller for Compactor {
    type Key = ();
    const NAME: &'static str = "snapshot";

    fn leader_only(&self) -> bool {
        false
    }

    fn touched(&mut self, _old: &State, _new: &State, _delta: &Delta) -> Vec<()> {
        Vec::new()
    }

    fn every_key(&mut self, _view: &State) -> Vec<()> {
        vec![()]
    }

    fn reconcile(&mut self, view: &State, now: Timestamp, _keys: &[()]) -> Outcome<()> {
        let (interval, keep) = view.cluster().map_or((10_000, 500), |c| {
            (
                c.spec.snapshot_interval,
                c.spec.log_entries_for_slow_followers,
            )
        });
        Outcome {
            actions: vec![Action::Compact { interval, keep }],
            requeue: vec![((), now.add(COMPACT_EVERY))],
            ..Outcome::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use shoal_store::{Op, Proposal};
    use shoal_types::node::{NodeState, NodeStatus};
    use shoal_types::service::{Service, ServiceSpec};
    use shoal_types::task::TaskStatus;
    use shoal_types::{Node, Timestamp};

    use super::*;

    fn id(s: &str) -> Id {
        Id::from_raw(s)
    }

    fn service(i: &str, mode: ServiceMode) -> Op {
        Op::CreateService(Service {
            id: id(i),
            spec: ServiceSpec {
                name: i.into(),
                mode,
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn task(i: &str, svc: &str, node: Option<&str>, state: TaskState) -> Op {
        Op::CreateTask(crate::testing::task(i, svc, node, state))
    }

    fn node(i: &str, state: NodeState) -> Node {
        Node {
            id: id(i),
            status: NodeStatus {
                state,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn apply(s: &mut State, ops: Vec<Op>) {
        let v = s.version + 1;
        let (a, _) = s.apply(v, &Proposal::atomic(Timestamp(v as i64), ops));
        assert!(a.first_error().is_none(), "{a:?}");
    }

    /// Two nodes; `web` runs on n1, `api` on n2, `mon` is global, `gone`'s service is deleted.
    fn cluster() -> State {
        let mut s = State::default();
        apply(
            &mut s,
            vec![
                Op::CreateNode(node("n1", NodeState::Ready)),
                Op::CreateNode(node("n2", NodeState::Ready)),
                service("web", ServiceMode::Replicated { replicas: 1 }),
                service("api", ServiceMode::Replicated { replicas: 1 }),
                service("mon", ServiceMode::Global),
                task("t-web", "web", Some("n1"), TaskState::Running),
                task("t-api", "api", Some("n2"), TaskState::Running),
                task("t-api2", "api", None, TaskState::Pending),
                task("t-gone", "gone", Some("n2"), TaskState::Running),
            ],
        );
        s
    }

    fn orchestrator() -> Orchestrator {
        Orchestrator::new(
            Arc::new(Mutex::new(IdGen::seeded(1))),
            Arc::new(LoopStats::default()),
        )
    }

    fn touched<C: Controller>(c: &mut C, old: &State, new: &State) -> Vec<C::Key> {
        c.touched(old, new, &new.delta_since(old))
    }

    #[test]
    fn a_task_change_wakes_its_service_only() {
        let old = cluster();
        let mut new = old.clone();
        apply(
            &mut new,
            vec![Op::SetTaskDesired {
                id: id("t-web"),
                desired: TaskState::Shutdown,
            }],
        );
        assert_eq!(touched(&mut orchestrator(), &old, &new), vec![id("web")]);
    }

    #[test]
    fn a_node_change_wakes_the_services_on_it_and_the_global_ones() {
        let old = cluster();
        let mut new = old.clone();
        apply(
            &mut new,
            vec![Op::UpdateNode {
                node: node("n2", NodeState::Down),
                expect_version: None,
            }],
        );
        assert_eq!(
            touched(&mut orchestrator(), &old, &new),
            vec![id("api"), id("gone"), id("mon")]
        );
    }

    #[test]
    fn every_key_includes_the_services_left_only_in_their_tasks() {
        let view = cluster();
        assert_eq!(
            orchestrator().every_key(&view),
            vec![id("api"), id("mon"), id("web"), id("gone")]
        );
    }

    #[test]
    fn waiting_tasks_wake_when_a_node_changes_or_resources_come_back() {
        let mut sched = Scheduler::new(
            Arc::new(Mutex::new(IdGen::seeded(1))),
            Arc::new(LoopStats::default()),
        );
        let old = cluster();
        // No cluster object: no rebalancing keys.
        assert_eq!(sched.every_key(&old), vec![SchedKey::Task(id("t-api2"))]);

        // A running task elsewhere changes its desired state only: nothing to schedule.
        let mut new = old.clone();
        apply(
            &mut new,
            vec![Op::SetTaskDesired {
                id: id("t-web"),
                desired: TaskState::Shutdown,
            }],
        );
        assert!(touched(&mut sched, &old, &new).is_empty());

        // It stops: its node has room again, so the waiting task is looked at.
        let old = new.clone();
        apply(
            &mut new,
            vec![Op::SetTaskStatus {
                id: id("t-web"),
                status: TaskStatus {
                    state: TaskState::Shutdown,
                    ..Default::default()
                },
            }],
        );
        assert_eq!(
            touched(&mut sched, &old, &new),
            vec![SchedKey::Task(id("t-api2"))]
        );

        // A new pending task wakes itself; a placed one leaves the waiting set.
        let old = new.clone();
        apply(
            &mut new,
            vec![
                task("t-new", "web", None, TaskState::Pending),
                Op::AssignTask {
                    id: id("t-api2"),
                    node_id: id("n1"),
                    status: TaskStatus {
                        state: TaskState::Assigned,
                        ..Default::default()
                    },
                    generic_resources: Vec::new(),
                },
            ],
        );
        assert_eq!(
            touched(&mut sched, &old, &new),
            vec![SchedKey::Task(id("t-new"))]
        );
        let old = new.clone();
        apply(
            &mut new,
            vec![Op::UpdateNode {
                node: node("n1", NodeState::Down),
                expect_version: None,
            }],
        );
        assert_eq!(
            touched(&mut sched, &old, &new),
            vec![SchedKey::Task(id("t-new"))]
        );
    }
}
