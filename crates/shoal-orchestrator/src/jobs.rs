//! Jobs: services whose tasks run to completion.
//!
//! - A *replicated job* runs `total_completions` successful tasks, in slots
//!   `1..=total_completions`, with at most `max_concurrent` slots busy at once (0: no limit). A
//!   slot is busy while it has a live or stopping task or a restart pending; it is done once its
//!   task completed, or failed for good under the restart policy.
//! - A *global job* runs one task to completion on every eligible node (see `global`), nodes
//!   that join later included.
//!
//! Completed tasks are never restarted (restart condition `any` acts as `on-failure`) and get
//! desired `Complete`; failed ones follow the restart policy like any task. shoal-types has no
//! job iteration, so a run is identified by its task spec: tasks with another spec belong to an
//! earlier run (the spec changed, or `--force` bumped it) and are shut down; the new run starts
//! from zero. Jobs have no rolling update and no update status.

use shoal_types::{IdGen, Service, Task, TaskState};

use crate::global;
use crate::plan::Plan;
use crate::slot::{self, Env, Summary};
use crate::view;
use crate::{Context, Reconciled};

/// Splits tasks into this run's and earlier runs'; retires the latter.
fn current_run<'a>(plan: &mut Plan, env: &Env, tasks: &[&'a Task]) -> Vec<&'a Task> {
    let (current, earlier): (Vec<&Task>, Vec<&Task>) =
        tasks.iter().partition(|t| t.spec == *env.target);
    slot::retire(plan, env, &earlier);
    current
}

/// A slot that has a completed task of this run is done, whatever came after it.
fn completed(group: &[&Task]) -> bool {
    group.iter().any(|t| t.status.state == TaskState::Complete)
}

pub(crate) fn reconcile_replicated(
    ctx: &Context,
    service: &Service,
    max_concurrent: u64,
    total_completions: u64,
    tasks: &[&Task],
    ids: &mut IdGen,
) -> Reconciled {
    slot::plan_service(ctx, service, true, |plan, env| {
        let current = current_run(plan, env, tasks);
        let mut busy = 0usize;
        let mut free: Vec<Summary> = Vec::new();
        for (number, mut group) in slot::by_number(total_completions, current) {
            view::sort_by_age(&mut group);
            if number == 0 || number > total_completions || completed(&group) {
                slot::retire(plan, env, &group);
                continue;
            }
            let mut s = slot::reconcile_numbered(plan, env, number, group);
            let restart_due = s.want.as_ref().is_some_and(|w| w.restart_of.is_some());
            if restart_due {
                // A restart keeps the concurrency unit its slot already held.
                s.fulfil(plan, env, ids);
                busy += 1;
            } else if s.want.is_some() {
                free.push(s);
            } else if s.keeper.is_some() || !s.stopping.is_empty() || s.restart_pending {
                busy += 1;
            }
        }

        let limit = if max_concurrent == 0 {
            usize::MAX
        } else {
            usize::try_from(max_concurrent).unwrap_or(usize::MAX)
        };
        for mut s in free.into_iter().take(limit.saturating_sub(busy)) {
            s.fulfil(plan, env, ids);
        }
    })
}

pub(crate) fn reconcile_global(
    ctx: &Context,
    service: &Service,
    tasks: &[&Task],
    ids: &mut IdGen,
) -> Reconciled {
    slot::plan_service(ctx, service, true, |plan, env| {
        let current = current_run(plan, env, tasks);
        let (by_node, nodeless) = global::group_by_node(service, env.nodes, &current);
        slot::retire(plan, env, &nodeless);
        for (node_id, mut group) in by_node {
            view::sort_by_age(&mut group);
            if completed(&group) {
                slot::retire(plan, env, &group);
                continue;
            }
            global::reconcile_node(plan, env, node_id, group, ids);
        }
    })
}
