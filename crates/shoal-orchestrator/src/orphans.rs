//! Tasks whose service no longer exists: they get desired `Remove` so their agents stop them,
//! and are deleted once they can no longer run (as Swarm's task reaper does for removed
//! services).

use shoal_types::{Task, TaskState};

use crate::plan::Plan;
use crate::view::{self, Nodes};
use crate::{Change, Context, Reconciled};

/// Tasks whose service no longer exists: desired `Remove`; once terminal (or never assigned, or
/// on a node that was deleted, which will never report again), `DeleteTask`. Network
/// attachments never had a service and are not orphans: they are left alone (see
/// [`crate::attachments`]).
pub fn reconcile_orphans(ctx: &Context, tasks: &[&Task]) -> Reconciled {
    let nodes = Nodes::new(ctx.nodes);
    let mut plan = Plan::new(ctx.now);
    let mut ordered: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| !t.is_attachment())
        .collect();
    view::sort_by_age(&mut ordered);
    for t in ordered {
        let node_gone = t.node_id.as_ref().is_none_or(|id| nodes.get(id).is_none());
        let finished =
            t.status.state.is_terminal() || t.status.state < TaskState::Assigned || node_gone;
        if finished {
            plan.push(Change::DeleteTask {
                task_id: t.id.clone(),
            });
        } else {
            plan.set_desired(t, TaskState::Remove);
        }
    }
    plan.finish()
}
