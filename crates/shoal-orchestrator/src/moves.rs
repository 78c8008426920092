//! Moving a replicated service's tasks off drained nodes a few at a time.
//!
//! Swarm stops every task of a drained node at once, so a service with all its replicas there
//! goes dark until the replacements start. shoal moves them like a rolling update does: at most
//! the update `parallelism` slots of a service move at once (0 = all), in the update `order`.
//! Start-first makes the replacement first and stops the old task once it runs; stop-first
//! stops the old task first and makes the replacement once it has stopped. A replacement no
//! node can take does not hold the drain: the old task stops anyway (see `slot::choose_keeper`),
//! and such a slot does not count against the parallelism, so the node always empties.
//!
//! Rebalancing (the manager's, see `shoal-scheduler`'s `rebalance`) makes a replacement on a
//! chosen node; the slot then carries it as a start-first move, and it counts here as in flight.
//!
//! Level-triggered like the rest: a slot is moving while its kept task has a running companion
//! (start-first), or while its up-to-date task stops on a drained node (stop-first).

use shoal_types::service::UpdateOrder;
use shoal_types::{IdGen, TaskState};

use crate::plan::Plan;
use crate::slot::{Env, Summary};
use crate::{update, view};

/// Starts moves for slots whose task runs on a drained node, within the parallelism.
pub(crate) fn drive(plan: &mut Plan, env: &Env, summaries: &mut [Summary], ids: &mut IdGen) {
    let cfg = env.service.spec.update_config();
    let moving = summaries.iter().filter(|s| in_flight(env, s)).count();
    let mut available = update::free_workers(cfg.parallelism, moving);
    for s in summaries.iter_mut() {
        if available == 0 {
            break;
        }
        let Some(k) = s.keeper else { continue };
        let movable = env.nodes.loses(k)
            && s.companion.is_none()
            && s.created.is_none()
            && s.want.is_none()
            && s.stopping.is_empty()
            && !s.restart_pending;
        if !movable {
            continue;
        }
        available -= 1;
        match cfg.order {
            UpdateOrder::StartFirst => {
                plan.create(env.service, &s.place, k.restart_history.clone(), ids);
                s.created = Some(false);
            }
            UpdateOrder::StopFirst => {
                plan.set_desired(k, TaskState::Shutdown);
                s.stopping.push(k);
            }
        }
    }
}

/// A move under way in this slot: its replacement (which a node can still take) does not run
/// yet, next to a running companion (start-first) or after an earlier task of the slot on a
/// drained node (stop-first); or its up-to-date task is stopping on a drained node.
fn in_flight(env: &Env, s: &Summary) -> bool {
    let replacement_pending = match s.keeper {
        Some(k) => !env.dirty(k) && k.status.state != TaskState::Running && !view::unplaceable(k),
        None => s.created.is_some(),
    };
    let left_a_drained_node = s.tasks.iter().any(|t| {
        s.keeper.is_none_or(|k| !std::ptr::eq(k, *t)) && env.nodes.drained(t.node_id.as_ref())
    });
    let stopping = s
        .stopping
        .iter()
        .any(|t| !env.dirty(t) && env.nodes.drained(t.node_id.as_ref()));
    (replacement_pending && (s.companion.is_some() || left_a_drained_node)) || stopping
}
