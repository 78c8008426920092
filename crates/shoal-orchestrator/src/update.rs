//! Rolling updates and rollbacks: replacing out-of-date ("dirty") tasks a few slots at a time,
//! watching the new tasks for failures, and keeping the service's `UpdateStatus`.
//!
//! The updater keeps no state of its own; every call reads the progress back from the store:
//! - an update runs while the status is `Updating` (or `RollbackStarted`); it starts, with
//!   `started_at = now`, when the status is absent or completed and a slot is dirty;
//! - tasks *created by the update* have the current spec, were created at or after
//!   `started_at` and carry no restart history (restarts always carry some);
//! - a slot is *in flight* while its dirty task is stopping (stop-first) or its update-created
//!   task has not reached `Running` yet, and it keeps its worker busy for `delay` after that
//!   (Swarm's worker model): at most `parallelism` slots (0 = all) are busy at once;
//! - a slot is attempted once per update: once a task with the new spec made since the update
//!   started has failed in it, further tries are the restart policy's;
//! - the update completes when no slot is dirty or in flight (so every update-created task
//!   runs) and `max(monitor, delay)` has passed since the last of them started running.
//!
//! Jobs have no rolling updates (a new spec is a new run, see `jobs`).

use shoal_types::service::{FailureAction, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus};
use shoal_types::{IdGen, Task, TaskState, Timestamp};

use crate::Change;
use crate::plan::Plan;
use crate::slot::{Env, Summary};
use crate::view;

pub const UPDATE_IN_PROGRESS: &str = "update in progress";
pub const UPDATE_COMPLETED: &str = "update completed";
pub const ROLLBACK_COMPLETED: &str = "rollback completed";

/// Where the update stands for this call.
struct Run {
    started_at: Timestamp,
    rollback: bool,
}

/// Advances the service's rolling update (or rollback) over the slots the mode reconciled.
pub(crate) fn drive(plan: &mut Plan, env: &Env, summaries: &mut [Summary], ids: &mut IdGen) {
    let Some(run) = current_run(plan, env, summaries) else {
        return;
    };
    let service = env.service;
    let cfg = if run.rollback {
        service.spec.rollback_config()
    } else {
        service.spec.update_config()
    };
    if failure_action_taken(plan, env, summaries, &run, &cfg) {
        return;
    }

    let (busy, last_start) = busy_workers(plan, env, summaries, &run, &cfg);
    let available = free_workers(cfg.parallelism, busy);
    let mut started = 0usize;
    for s in summaries.iter_mut() {
        if started >= available {
            break;
        }
        if updatable(env, s, Some(run.started_at), run.rollback) {
            replace(plan, env, s, cfg.order, ids);
            started += 1;
        }
    }
    if started > 0 {
        return;
    }

    let remaining = summaries
        .iter()
        .any(|s| updatable(env, s, Some(run.started_at), run.rollback));
    // Every task the update made runs (an update task not running is in flight). Other tasks
    // (a restart waiting for its delay, a paused node's task) do not hold the update open.
    let settled = summaries
        .iter()
        .all(|s| !in_flight(env, s, &run) && s.stopping.is_empty() && s.created.is_none());
    if remaining || !settled {
        return;
    }
    if let Some(start) = last_start {
        let until = start.add(cfg.effective_monitor().max(cfg.delay));
        if until > plan.now {
            return plan.requeue_at(until);
        }
    }
    let (state, message) = if run.rollback {
        (UpdateState::RollbackCompleted, ROLLBACK_COMPLETED)
    } else {
        (UpdateState::Completed, UPDATE_COMPLETED)
    };
    let status = UpdateStatus {
        state,
        started_at: run.started_at,
        completed_at: plan.now,
        message: message.into(),
    };
    set_status(plan, env, status);
}

/// How many more slots may start now with `busy` already in flight; parallelism 0 means all.
pub(crate) fn free_workers(parallelism: u64, busy: usize) -> usize {
    match usize::try_from(parallelism) {
        Ok(0) => usize::MAX,
        Ok(p) => p.saturating_sub(busy),
        Err(_) => usize::MAX,
    }
}

/// The update in progress, if any; starts one (status `Updating`) when the service has none
/// running or paused and a slot is dirty.
fn current_run(plan: &mut Plan, env: &Env, summaries: &[Summary]) -> Option<Run> {
    let status = env.service.update_status.as_ref();
    let started_at = status.map_or(Timestamp::ZERO, |s| s.started_at);
    match status.map(|s| s.state) {
        Some(UpdateState::Paused | UpdateState::RollbackPaused) => None,
        Some(UpdateState::Updating) => Some(Run {
            started_at,
            rollback: false,
        }),
        Some(UpdateState::RollbackStarted) => Some(Run {
            started_at,
            rollback: true,
        }),
        Some(UpdateState::Completed | UpdateState::RollbackCompleted) | None => {
            // Slots the finished update already tried (their new task failed and the update
            // went on) do not start another one: only a spec change does.
            let attempted_since = status.map(|s| s.started_at);
            if !summaries
                .iter()
                .any(|s| updatable(env, s, attempted_since, false))
            {
                return None;
            }
            let status = UpdateStatus {
                state: UpdateState::Updating,
                started_at: plan.now,
                completed_at: Timestamp::ZERO,
                message: UPDATE_IN_PROGRESS.into(),
            };
            set_status(plan, env, status);
            Some(Run {
                started_at: plan.now,
                rollback: false,
            })
        }
    }
}

/// Applies `failure_action` once failures exceed `max_failure_ratio`; true when the update
/// must not go on in this call (paused, or rolling back).
fn failure_action_taken(
    plan: &mut Plan,
    env: &Env,
    summaries: &[Summary],
    run: &Run,
    cfg: &UpdateConfig,
) -> bool {
    let Some(culprit) = failure_threshold_crossed(env, summaries, run, cfg.max_failure_ratio)
    else {
        return false;
    };
    let service = env.service;
    let (what, paused) = if run.rollback {
        ("rollback", UpdateState::RollbackPaused)
    } else {
        ("update", UpdateState::Paused)
    };
    let pause = UpdateStatus {
        state: paused,
        started_at: run.started_at,
        completed_at: Timestamp::ZERO,
        message: format!(
            "{what} paused due to failure or early termination of task {}",
            culprit.id
        ),
    };
    match cfg.failure_action {
        FailureAction::Continue => false,
        FailureAction::Pause => {
            set_status(plan, env, pause);
            true
        }
        // Never roll back a rollback; and without a previous spec there is nothing to go to.
        FailureAction::Rollback if run.rollback || service.previous_spec.is_none() => {
            set_status(plan, env, pause);
            true
        }
        FailureAction::Rollback => {
            let message = format!(
                "update rolled back due to failure or early termination of task {}",
                culprit.id
            );
            plan.push(Change::RollbackService {
                service_id: service.id.clone(),
                message,
            });
            true
        }
    }
}

/// How many workers are busy (slots in flight, and slots whose new task started running less
/// than `delay` ago), and when the last update-created task started running.
fn busy_workers(
    plan: &mut Plan,
    env: &Env,
    summaries: &[Summary],
    run: &Run,
    cfg: &UpdateConfig,
) -> (usize, Option<Timestamp>) {
    let mut busy = 0usize;
    let mut last_start: Option<Timestamp> = None;
    for s in summaries {
        if in_flight(env, s, run) {
            busy += 1;
            continue;
        }
        let started = s
            .keeper
            .filter(|k| is_update_task(env, k, run) && k.status.state == TaskState::Running);
        if let Some(k) = started {
            last_start = last_start.max(Some(k.status.timestamp));
            let free_at = k.status.timestamp.add(cfg.delay);
            if free_at > plan.now {
                busy += 1;
                plan.requeue_at(free_at);
            }
        }
    }
    (busy, last_start)
}

fn set_status(plan: &mut Plan, env: &Env, status: UpdateStatus) {
    plan.push(Change::SetUpdateStatus {
        service_id: env.service.id.clone(),
        status: Some(status),
    });
}

/// Made by this update: current spec, created since it started, not a restart.
fn is_update_task(env: &Env, t: &Task, run: &Run) -> bool {
    t.spec == *env.target && view::created(t) >= run.started_at && t.restart_history.is_empty()
}

/// The update-created task that ended last, when failures exceed the ratio. Only tasks that
/// ended by themselves count (failed, rejected, or completed early), not ones the orchestrator
/// stopped.
fn failure_threshold_crossed<'a>(
    env: &Env,
    summaries: &[Summary<'a>],
    run: &Run,
    ratio: f64,
) -> Option<&'a Task> {
    let failures: Vec<&Task> = summaries
        .iter()
        .flat_map(|s| s.tasks.iter().copied())
        .filter(|t| view::self_ended(t) && is_update_task(env, t, run))
        .collect();
    let slots = summaries.len().max(1);
    if failures.is_empty() || (failures.len() as f64 / slots as f64) <= ratio {
        return None;
    }
    failures
        .into_iter()
        .max_by_key(|t| (t.status.timestamp, t.id.clone()))
}

fn in_flight(env: &Env, s: &Summary, run: &Run) -> bool {
    s.created == Some(true)
        || s.stopping.iter().any(|t| env.dirty(t))
        || s.keeper
            .is_some_and(|k| is_update_task(env, k, run) && k.status.state != TaskState::Running)
}

/// Whether the updater may replace this slot now: its kept task is dirty (or, outside a
/// rollback, it is done with a dirty last task, as Swarm's `UpdatableTasksInSlot`), nothing else
/// is going on in it, and the update that started at `attempted_since` has not tried it yet.
fn updatable(env: &Env, s: &Summary, attempted_since: Option<Timestamp>, rollback: bool) -> bool {
    if !s.can_create
        || s.created.is_some()
        || s.restart_pending
        || !s.stopping.is_empty()
        || s.want.is_some()
    {
        return false;
    }
    // Tried and failed by itself; a new task lost with its node does not count.
    let attempted = attempted_since.is_some_and(|since| {
        s.tasks
            .iter()
            .any(|t| view::self_ended(t) && t.spec == *env.target && view::created(t) >= since)
    });
    if attempted {
        return false;
    }
    match (s.keeper, s.done) {
        (Some(k), _) => env.dirty(k),
        // A slot whose task gave up under the spec being rolled back comes back with the
        // rollback: the failure was the update's, not the slot's. Outside a rollback, any slot
        // that gave up with an older spec is recreated by the next update (Swarm's
        // `UpdatableTasksInSlot`).
        (None, Some(d)) => env.dirty(d) && (!rollback || rolled_back_from(env, d)),
        (None, None) => false,
    }
}

/// The task ran the spec a rollback is leaving (the service's previous spec, now).
fn rolled_back_from(env: &Env, t: &Task) -> bool {
    env.service
        .previous_spec
        .as_ref()
        .is_some_and(|p| p.task == t.spec)
}

/// Starts replacing one slot.
fn replace(plan: &mut Plan, env: &Env, s: &mut Summary, order: UpdateOrder, ids: &mut IdGen) {
    let create_now = match (s.keeper, order) {
        (Some(k), UpdateOrder::StopFirst) => {
            plan.set_desired(k, TaskState::Shutdown);
            // A task that never reached a node has nothing to stop: replace it at once.
            let never_assigned = k.status.state < TaskState::Assigned || k.node_id.is_none();
            if !never_assigned {
                s.stopping.push(k);
            }
            never_assigned
        }
        (Some(_), UpdateOrder::StartFirst) | (None, _) => true,
    };
    if create_now {
        plan.create(env.service, &s.place, Vec::new(), ids);
        s.created = Some(true);
    }
}
