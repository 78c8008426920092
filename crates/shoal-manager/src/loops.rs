//! The manager's control loops. Each one is level-triggered: it wakes on any store change (or a
//! requeue time a reconciler asked for), computes from one immutable snapshot with a pure
//! function, proposes the result, and waits for that write to land before computing again, so
//! it never acts twice on the same observation. Only the Raft leader's loops write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_orchestrator::{Change, Context, Reconciled};
use shoal_store::{Op, Proposal, State, Store};
use shoal_types::service::UpdateState;
use shoal_types::service::UpdateStatus;
use shoal_types::task::{Task, TaskState, TaskStatus};
use shoal_types::{Clock, IdGen, ServiceMode, Timestamp};
use tokio::sync::watch;

/// Waits for the next store change, the requeue time, or shutdown. Returns false on shutdown.
async fn wait(
    states: &mut watch::Receiver<Arc<State>>,
    shutdown: &mut watch::Receiver<bool>,
    clock: &dyn Clock,
    requeue_at: Option<Timestamp>,
) -> bool {
    let sleep = match requeue_at {
        Some(t) => t.since(clock.now()),
        None => Duration::from_secs(3600),
    };
    tokio::select! {
        r = states.changed() => r.is_ok(),
        _ = tokio::time::sleep(sleep) => true,
        _ = shutdown.changed() => false,
    }
}

async fn propose(store: &Store, now: Timestamp, ops: Vec<Op>, what: &str) -> bool {
    let n = ops.len();
    match store.propose(Proposal::each(now, ops)).await {
        Ok(applied) => {
            let failed = applied.results.iter().filter(|r| r.is_err()).count();
            if failed > 0 {
                tracing::debug!(what, failed, of = n, error = ?applied.first_error(), "some changes did not apply");
            }
            failed < n
        }
        Err(e) => {
            tracing::warn!(what, error = %e, "could not write changes");
            false
        }
    }
}

/// Everything the reconcilers want changed in `view`, and when to look again.
pub fn reconcile_all(view: &State, now: Timestamp, ids: &mut IdGen) -> Reconciled {
    let default_cluster = Default::default();
    let cluster = view.cluster().map_or(&default_cluster, |c| &c.spec);
    let nodes: Vec<_> = view.nodes().map(|n| &**n).collect();
    let ctx = Context {
        now,
        cluster,
        nodes: &nodes,
    };
    let mut out = Reconciled {
        changes: Vec::new(),
        requeue_at: None,
    };
    let merge = |r: Reconciled, out: &mut Reconciled| {
        out.changes.extend(r.changes);
        out.requeue_at = match (out.requeue_at, r.requeue_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    };
    for service in view.services() {
        let tasks: Vec<&Task> = view.tasks_of_service(&service.id).map(|t| &**t).collect();
        let r = shoal_orchestrator::reconcile_service(&ctx, service, &tasks, ids);
        merge(r, &mut out);
        out.changes
            .extend(shoal_orchestrator::reap_history(&ctx, service, &tasks));
    }
    let orphans: Vec<&Task> = view
        .tasks()
        .filter(|t| view.service(&t.service_id).is_none())
        .map(|t| &**t)
        .collect();
    if !orphans.is_empty() {
        merge(
            shoal_orchestrator::reconcile_orphans(&ctx, &orphans),
            &mut out,
        );
    }
    out
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

pub async fn orchestrator_loop(
    store: Store,
    clock: Arc<dyn Clock>,
    ids: Arc<Mutex<IdGen>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut states = store.subscribe();
    loop {
        let view = states.borrow_and_update().clone();
        let mut requeue_at;
        if store.is_leader() {
            let now = clock.now();
            let r = {
                let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
                reconcile_all(&view, now, &mut ids)
            };
            requeue_at = r.requeue_at;
            if !r.changes.is_empty() {
                let ops = changes_to_ops(&view, now, r.changes);
                if !propose(&store, now, ops, "orchestrator").await {
                    // Nothing applied: the same observation would give the same answer, so wait
                    // for the world to change rather than spin.
                    requeue_at = Some(clock.now().add(Duration::from_millis(500)));
                } else {
                    continue;
                }
            }
        } else {
            requeue_at = Some(clock.now().add(Duration::from_millis(500)));
        }
        if !wait(&mut states, &mut shutdown, &*clock, requeue_at).await {
            return;
        }
    }
}

/// What the scheduler wants written for `view`: placements, refreshed pending reasons, and
/// never-placed tasks that are no longer wanted (moved to shutdown so they leave the queue).
pub fn schedule_ops(view: &State, now: Timestamp) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut pending: Vec<&Task> = Vec::new();
    for t in view.tasks() {
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
    if pending.is_empty() {
        return ops;
    }
    // Oldest first, so a burst of new tasks cannot starve older ones.
    pending.sort_by(|a, b| {
        (a.meta.created_at, &a.service_id, a.slot).cmp(&(b.meta.created_at, &b.service_id, b.slot))
    });
    let mut cv =
        shoal_scheduler::ClusterView::new(view.nodes().map(|n| &**n), view.tasks().map(|t| &**t));
    let plan = shoal_scheduler::schedule(&mut cv, &pending);
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
    if !view.cluster().is_some_and(|c| c.spec.rebalance) {
        return Vec::new();
    }
    let mut candidates = Vec::new();
    for s in view.services() {
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
    let cv =
        shoal_scheduler::ClusterView::new(view.nodes().map(|n| &**n), view.tasks().map(|t| &**t));
    let mut ops = Vec::new();
    for m in shoal_scheduler::rebalance::plan(&cv, &candidates) {
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

pub async fn scheduler_loop(
    store: Store,
    clock: Arc<dyn Clock>,
    ids: Arc<Mutex<IdGen>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut states = store.subscribe();
    loop {
        let view = states.borrow_and_update().clone();
        let requeue_at;
        if store.is_leader() {
            let now = clock.now();
            let mut ops = schedule_ops(&view, now);
            if ops.is_empty() {
                let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
                ops = rebalance_ops(&view, now, &mut ids);
            }
            if !ops.is_empty() {
                if propose(&store, now, ops, "scheduler").await {
                    continue;
                }
                requeue_at = Some(clock.now().add(Duration::from_millis(500)));
            } else {
                requeue_at = None;
            }
        } else {
            requeue_at = Some(clock.now().add(Duration::from_millis(500)));
        }
        if !wait(&mut states, &mut shutdown, &*clock, requeue_at).await {
            return;
        }
    }
}

/// The leader's upkeep of the cluster itself: Raft members whose node is no longer a manager
/// (demoted or removed) leave the group, and a root CA rotation completes once every node holds
/// a certificate from the new root.
pub async fn cluster_loop(
    store: Store,
    clock: Arc<dyn Clock>,
    ids: Arc<Mutex<IdGen>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut states = store.subscribe();
    loop {
        let view = states.borrow_and_update().clone();
        if store.is_leader() {
            let wanted: std::collections::BTreeSet<u64> = view
                .nodes()
                .filter(|n| n.spec.role == shoal_types::node::NodeRole::Manager)
                .filter_map(|n| n.manager.as_ref().map(|m| m.raft_id))
                .collect();
            for (raft_id, _) in store.members() {
                if !wanted.contains(&raft_id) {
                    tracing::info!(
                        raft.id = raft_id,
                        "removing a raft member whose node is no longer a manager"
                    );
                    if let Err(e) = store.remove_member(raft_id).await {
                        tracing::warn!(raft.id = raft_id, error = %e, "could not remove raft member");
                    }
                }
            }
            let step = {
                let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
                crate::cluster::rotation_step(&view, &mut ids)
            };
            if let Some(op) = step {
                tracing::info!(
                    "every node holds a certificate from the new root: root CA rotation complete"
                );
                propose(&store, clock.now(), vec![op], "root rotation").await;
            }
        }
        let requeue = Some(clock.now().add(Duration::from_secs(1)));
        if !wait(&mut states, &mut shutdown, &*clock, requeue).await {
            return;
        }
    }
}

/// Keeps this member's Raft log compact with the cluster's current snapshot settings.
pub async fn snapshot_loop(store: Store, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.changed() => return,
        }
        let (interval, keep) = store.view().cluster().map_or((10_000, 500), |c| {
            (
                c.spec.snapshot_interval,
                c.spec.log_entries_for_slow_followers,
            )
        });
        if let Err(e) = store.compact(interval, keep).await {
            tracing::warn!(error = %e, "raft log compaction failed");
        }
    }
}
