//! The pure steps of the manager's loops: from one immutable snapshot and `now`, what the
//! orchestrator, the scheduler and the rebalancer want written, for a given set of keys (the
//! services or tasks a write touched) or for everything (`reconcile_all`, `schedule_ops`,
//! `rebalance_ops`: tests, and the resync). No IO, no clock, no locks: the loops that drive
//! these (see `controllers` and `driver`) decide which keys to look at and when.

use std::collections::BTreeSet;

use shoal_orchestrator::{Change, Context, Reconciled};
use shoal_scheduler::ClusterView;
use shoal_store::{Op, State};
use shoal_types::service::UpdateState;
use shoal_types::service::UpdateStatus;
use shoal_types::task::{Task, TaskState, TaskStatus};
use shoal_types::{Id, IdGen, Service, ServiceMode, Timestamp};

/// What the reconcilers want for some services: the changes, and when each service wants to be
/// looked at again.
#[derive(Debug, Clone, Default)]
pub struct Keyed {
    pub changes: Vec<Change>,
    pub requeue: Vec<(Id, Timestamp)>,
}

/// The context every reconciler reads besides its service: the cluster spec and the nodes.
fn with_context<R>(view: &State, now: Timestamp, f: impl FnOnce(&Context) -> R) -> R {
    let default_cluster = Default::default();
    let cluster = view.cluster().map_or(&default_cluster, |c| &c.spec);
    let nodes: Vec<_> = view.nodes().map(|n| &**n).collect();
    f(&Context {
        now,
        cluster,
        nodes: &nodes,
    })
}

/// Everything the reconcilers want changed for the services `keys`, computed from `view`. A
/// key whose service is gone stands for its leftover tasks (orphans), if any.
pub fn reconcile_services(view: &State, now: Timestamp, keys: &[Id], ids: &mut IdGen) -> Keyed {
    with_context(view, now, |ctx| {
        let mut out = Keyed::default();
        for key in keys {
            let tasks: Vec<&Task> = view.tasks_of_service(key).map(|t| &**t).collect();
            let r = match view.service(key) {
                Some(service) if held_back(view, service, &tasks) => None,
                Some(service) => {
                    let r = shoal_orchestrator::reconcile_service(ctx, service, &tasks, ids);
                    out.changes.extend(r.changes);
                    out.changes
                        .extend(shoal_orchestrator::reap_history(ctx, service, &tasks));
                    r.requeue_at
                }
                None if !tasks.is_empty() => {
                    // Network attachments have no service (their key is the empty ID): only
                    // those of deleted nodes go; the rest are the nodes' engines' business.
                    out.changes
                        .extend(shoal_orchestrator::reconcile_attachments(ctx.nodes, &tasks));
                    let r = shoal_orchestrator::reconcile_orphans(ctx, &tasks);
                    out.changes.extend(r.changes);
                    r.requeue_at
                }
                None => None,
            };
            if let Some(at) = r {
                out.requeue.push((key.clone(), at));
            }
        }
        out
    })
}

/// Whether `service` must wait for the services it depends on before it gets its first tasks
/// (see `shoal_orchestrator::depends`).
pub fn held_back(view: &State, service: &Service, tasks: &[&Task]) -> bool {
    waiting_on(view, service, tasks).is_some()
}

/// What `service` waits for before it gets its first tasks, if anything.
pub fn waiting_on(view: &State, service: &Service, tasks: &[&Task]) -> Option<String> {
    shoal_orchestrator::depends::pending_dependencies(service, tasks)
        .into_iter()
        .find_map(|d| {
            let dep = view.service_by_name(&d.service).map(|s| &**s);
            let dep_tasks: Vec<&Task> = dep
                .map(|s| view.tasks_of_service(&s.id).map(|t| &**t).collect())
                .unwrap_or_default();
            shoal_orchestrator::depends::met(dep, &dep_tasks, d.condition, &d.service).err()
        })
}

/// The services waiting to start on any of the services `keys` (see [`held_back`]), so a
/// change to a dependency wakes its dependents.
pub fn dependents_of(view: &State, keys: &BTreeSet<Id>) -> Vec<Id> {
    let names: BTreeSet<&str> = keys
        .iter()
        .filter_map(|k| view.service(k))
        .map(|s| s.spec.name.as_str())
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    view.services()
        .filter(|s| {
            s.spec
                .labels
                .contains_key(shoal_types::stack::DEPENDS_ON_LABEL)
        })
        .filter(|s| view.tasks_of_service(&s.id).next().is_none())
        .filter(|s| {
            shoal_types::stack::depends_on(&s.spec.labels)
                .unwrap_or_default()
                .iter()
                .any(|d| names.contains(d.service.as_str()))
        })
        .map(|s| s.id.clone())
        .collect()
}

/// Every key the orchestrator has in `view`: each service, and each missing service that still
/// has tasks. Network attachments count only once their node is gone (see
/// [`reconcile_services`]).
pub fn service_keys(view: &State) -> Vec<Id> {
    let mut keys: Vec<Id> = view.services().map(|s| s.id.clone()).collect();
    let orphans: BTreeSet<&Id> = view
        .tasks()
        .filter(|t| view.service(&t.service_id).is_none())
        .filter(|t| !t.is_attachment() || t.node_id.as_ref().is_none_or(|n| view.node(n).is_none()))
        .map(|t| &t.service_id)
        .collect();
    keys.extend(orphans.into_iter().cloned());
    keys
}

/// Everything the reconcilers want changed in `view`, and when to look again: every service
/// reconciled at once (tests, and the measure of what a keyed loop saves).
pub fn reconcile_all(view: &State, now: Timestamp, ids: &mut IdGen) -> Reconciled {
    let keyed = reconcile_services(view, now, &service_keys(view), ids);
    Reconciled {
        changes: keyed.changes,
        requeue_at: keyed.requeue.iter().map(|(_, t)| *t).min(),
    }
}

/// Turns reconciler changes into store ops against the snapshot they were computed from.
pub fn changes_to_ops(view: &State, now: Timestamp, changes: Vec<Change>) -> Vec<Op> {
    let mut ops = Vec::with_capacity(changes.len());
    for c in changes {
        match c {
            Change::CreateTask(t) => ops.push(Op::CreateTask(t)),
            Change::SetDesiredState { task_id, desired } => ops.push(Op::SetTaskDesired {
                id: task_id,
                desired,
            }),
            Change::DeleteTask { task_id } => ops.push(Op::DeleteTask { id: task_id }),
            Change::SetUpdateStatus { service_id, status } => {
                if let Some(s) = view.service(&service_id) {
                    let mut next = (**s).clone();
                    next.update_status = status;
                    ops.push(Op::UpdateService {
                        service: next,
                        expect_version: Some(s.meta.version),
                    });
                }
            }
            Change::RollbackService {
                service_id,
                message,
            } => {
                if let Some(s) = view.service(&service_id)
                    && let Some(prev) = s.previous_spec.clone()
                {
                    let mut next = (**s).clone();
                    next.previous_spec = Some(s.spec.clone());
                    next.spec = prev;
                    next.update_status = Some(UpdateStatus {
                        state: UpdateState::RollbackStarted,
                        started_at: now,
                        completed_at: Timestamp::ZERO,
                        message,
                    });
                    ops.push(Op::UpdateService {
                        service: next,
                        expect_version: Some(s.meta.version),
                    });
                }
            }
        }
    }
    ops
}

/// What the scheduler wants written for `view`: placements, refreshed pending reasons, and
/// never-placed tasks that are no longer wanted (moved to shutdown so they leave the queue).
pub fn schedule_ops(view: &State, now: Timestamp) -> Vec<Op> {
    let waiting: Vec<Id> = view
        .tasks()
        .filter(|t| t.status.state <= TaskState::Pending)
        .map(|t| t.id.clone())
        .collect();
    schedule_tasks(view, now, &waiting)
}

/// The scheduler's picture of `view`: every node, and the tasks placed on them (the only ones
/// that hold resources there), without walking the tasks that are on no node.
pub fn cluster_view(view: &State) -> ClusterView {
    ClusterView::new(
        view.nodes().map(|n| &**n),
        view.nodes()
            .flat_map(|n| view.tasks_on_node(&n.id))
            .map(|t| &**t),
    )
}

/// [`schedule_ops`] for the tasks `keys` only (the ones a write touched); keys that are not
/// (or no longer) waiting for a node are skipped.
pub fn schedule_tasks(view: &State, now: Timestamp, keys: &[Id]) -> Vec<Op> {
    let (mut ops, pending) = waiting_tasks(view, now, keys);
    if !pending.is_empty() {
        ops.extend(place(view, now, &pending, &mut cluster_view(view)));
    }
    ops
}

/// Of the tasks `keys`: the ops that let go of those no longer wanted before they were placed,
/// and those to place, oldest first (so a burst of new tasks cannot starve older ones).
pub fn waiting_tasks<'a>(view: &'a State, now: Timestamp, keys: &[Id]) -> (Vec<Op>, Vec<&'a Task>) {
    let mut ops = Vec::new();
    let mut pending: Vec<&Task> = Vec::new();
    for t in keys.iter().filter_map(|id| view.task(id)) {
        if t.status.state > TaskState::Pending {
            continue;
        }
        if t.desired_state > TaskState::Running {
            ops.push(Op::SetTaskStatus {
                id: t.id.clone(),
                status: TaskStatus {
                    state: TaskState::Shutdown,
                    timestamp: now,
                    message: "shutdown before it was scheduled".into(),
                    ..Default::default()
                },
            });
        } else if t.status.state == TaskState::Pending {
            pending.push(t);
        }
    }
    pending.sort_by(|a, b| {
        (a.meta.created_at, &a.service_id, a.slot).cmp(&(b.meta.created_at, &b.service_id, b.slot))
    });
    (ops, pending)
}

/// Places `pending` on `cv` (the scheduler's view of `view`, which `schedule` updates with
/// every placement) and returns the assignments and refreshed pending reasons to write.
pub fn place(view: &State, now: Timestamp, pending: &[&Task], cv: &mut ClusterView) -> Vec<Op> {
    let mut ops = Vec::new();
    let plan = shoal_scheduler::schedule(cv, pending);
    for a in plan.assignments {
        ops.push(Op::AssignTask {
            id: a.task_id,
            node_id: a.node_id,
            generic_resources: a.generic_resources,
            status: TaskStatus {
                state: TaskState::Assigned,
                timestamp: now,
                message: "scheduler assigned task to node".into(),
                ..Default::default()
            },
        });
    }
    for u in plan.unassigned {
        if view
            .task(&u.task_id)
            .is_some_and(|t| t.status.err != u.reason)
        {
            ops.push(Op::SetTaskStatus {
                id: u.task_id,
                status: TaskStatus {
                    state: TaskState::Pending,
                    timestamp: now,
                    message: "pending task scheduling".into(),
                    err: u.reason,
                    ..Default::default()
                },
            });
        }
    }
    ops
}

/// Replacements that move running tasks toward an even spread (see
/// `shoal_scheduler::rebalance`), when the cluster allows it. Only settled replicated services
/// take part: every slot runs exactly one task of the current spec and no update or rollback
/// is under way, so a move never races an update and never leaves a slot short (each
/// replacement starts first; the old task stops once it runs). At most the service's update
/// parallelism (all its replicas when 0) move at a time.
pub fn rebalance_ops(view: &State, now: Timestamp, ids: &mut IdGen) -> Vec<Op> {
    let keys: Vec<Id> = view.services().map(|s| s.id.clone()).collect();
    rebalance_services(view, now, &keys, ids)
}

/// Whether the cluster moves tasks toward an even spread.
pub fn rebalancing(view: &State) -> bool {
    view.cluster().is_some_and(|c| c.spec.rebalance)
}

/// [`rebalance_ops`] for the services `keys` only. Builds the scheduler's picture of the
/// cluster only when one of them is settled and could move.
pub fn rebalance_services(view: &State, now: Timestamp, keys: &[Id], ids: &mut IdGen) -> Vec<Op> {
    let mut cv = None;
    rebalance_services_on(view, now, keys, ids, || &*cv.insert(cluster_view(view)))
}

/// [`rebalance_services`] on a scheduler's view of `view` that the caller keeps, asked for only
/// when some service could move.
pub fn rebalance_services_on<'c>(
    view: &State,
    now: Timestamp,
    keys: &[Id],
    ids: &mut IdGen,
    placements: impl FnOnce() -> &'c ClusterView,
) -> Vec<Op> {
    if !rebalancing(view) {
        return Vec::new();
    }
    let mut candidates = Vec::new();
    for s in keys.iter().filter_map(|id| view.service(id)) {
        let ServiceMode::Replicated { replicas } = s.spec.mode else {
            continue;
        };
        let busy = s.update_status.as_ref().is_some_and(|u| {
            !matches!(
                u.state,
                UpdateState::Completed | UpdateState::RollbackCompleted
            )
        });
        if replicas < 2 || busy {
            continue;
        }
        let mut live: Vec<&Task> = Vec::new();
        let mut settled = true;
        for t in view.tasks_of_service(&s.id) {
            if t.is_live() {
                settled &= t.status.state == TaskState::Running && t.spec == s.spec.task;
                live.push(t);
            } else if !t.status.state.is_terminal() {
                // Told to stop and still stopping: a move or an update is finishing.
                settled = false;
            }
        }
        let mut slots: Vec<u64> = live.iter().map(|t| t.slot).collect();
        slots.sort_unstable();
        slots.dedup();
        let one_per_slot = slots.len() == live.len() && live.len() as u64 == replicas;
        if !settled || !one_per_slot {
            continue;
        }
        let parallelism = s.spec.update_config().parallelism;
        let budget = if parallelism == 0 {
            replicas
        } else {
            parallelism
        };
        candidates.push(shoal_scheduler::rebalance::Candidate {
            service_id: &s.id,
            spec: &s.spec.task,
            tasks: live,
            budget: usize::try_from(budget).unwrap_or(usize::MAX),
        });
    }
    if candidates.is_empty() {
        return Vec::new();
    }
    let mut ops = Vec::new();
    for m in shoal_scheduler::rebalance::plan(placements(), &candidates) {
        let (Some(service), Some(from)) = (view.service(&m.service_id), view.task(&m.task_id))
        else {
            continue;
        };
        tracing::info!(
            service = %service.spec.name,
            slot = m.slot,
            from = %m.from,
            to = %m.to,
            "rebalancing: moving a task toward an even spread"
        );
        let t = shoal_orchestrator::move_replacement(service, from, &m.to, now, ids);
        ops.push(Op::CreateTask(t));
    }
    ops
}
