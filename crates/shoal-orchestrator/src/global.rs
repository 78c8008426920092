//! Global services: one live task on every eligible node.
//!
//! A node is eligible when it is not `Down`, not drained, and satisfies the service's placement
//! constraints (constraints that do not parse match no node). A paused node keeps the tasks it
//! has but gets no new ones, no restarts and no rolling-update replacements (as Swarm); a task
//! made for it but not yet assigned is shut down, where Swarm leaves it pending. Tasks on
//! ineligible or deleted nodes, or with no node, are shut down and not replaced. Each node is a
//! slot (see `slot`): restarts, duplicates and rolling updates work as for replicas.

use std::collections::BTreeMap;

use shoal_types::{Availability, Id, IdGen, Node, NodeState, Service, Task, TaskState};

use crate::constraint;
use crate::plan::{Place, Plan};
use crate::slot::{self, Env, Slot, Summary};
use crate::view::{self, Nodes};
use crate::{Context, Reconciled, update};

/// What a node may hold for a global service or global job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eligibility {
    /// Keep one task there, creating it when missing.
    Active,
    /// Paused: keep what is there, add nothing.
    Keep,
    /// Shut everything there down.
    No,
}

pub(crate) fn eligibility(service: &Service, node: &Node) -> Eligibility {
    let fits =
        constraint::node_matches(&service.spec.task.placement.constraints, node) == Some(true);
    if !fits || node.status.state == NodeState::Down {
        return Eligibility::No;
    }
    match node.spec.availability {
        Availability::Active => Eligibility::Active,
        Availability::Pause => Eligibility::Keep,
        Availability::Drain => Eligibility::No,
    }
}

/// The service's tasks by node, with an entry for every eligible node; tasks without a node
/// come back separately.
pub(crate) fn group_by_node<'a>(
    service: &Service,
    nodes: &Nodes,
    tasks: &[&'a Task],
) -> (BTreeMap<Id, Vec<&'a Task>>, Vec<&'a Task>) {
    let mut by_node: BTreeMap<Id, Vec<&Task>> = nodes
        .all()
        .filter(|n| eligibility(service, n) != Eligibility::No)
        .map(|n| (n.id.clone(), Vec::new()))
        .collect();
    let mut nodeless = Vec::new();
    for &t in tasks {
        match &t.node_id {
            Some(id) => by_node.entry(id.clone()).or_default().push(t),
            None => nodeless.push(t),
        }
    }
    (by_node, nodeless)
}

/// One node's slot of a global service or global job: shut down where the service may not run,
/// kept as it is on a paused node, filled where the node is active.
pub(crate) fn reconcile_node<'a>(
    plan: &mut Plan,
    env: &Env,
    node_id: Id,
    group: Vec<&'a Task>,
    ids: &mut IdGen,
) -> Option<Summary<'a>> {
    let mut group = group;
    let can_create = match env.nodes.get(&node_id).map(|n| eligibility(env.service, n)) {
        Some(Eligibility::Active) => true,
        Some(Eligibility::Keep) => {
            // The scheduler never assigns to a paused node, so a task made for it before the
            // pause would wait forever; it is dropped and made again once the node is active.
            let (unplaced, kept): (Vec<_>, Vec<_>) = group
                .into_iter()
                .partition(|t| t.status.state < TaskState::Assigned);
            slot::retire(plan, env, &unplaced);
            group = kept;
            false
        }
        Some(Eligibility::No) | None => {
            slot::retire(plan, env, &group);
            return None;
        }
    };
    let slot = Slot {
        place: Place::Node(node_id),
        tasks: group,
        can_create,
    };
    let mut s = slot::reconcile(plan, env, slot);
    s.fulfil(plan, env, ids);
    Some(s)
}

pub(crate) fn reconcile(
    ctx: &Context,
    service: &Service,
    tasks: &[&Task],
    ids: &mut IdGen,
) -> Reconciled {
    slot::plan_service(ctx, service, false, |plan, env| {
        let (by_node, nodeless) = group_by_node(service, env.nodes, tasks);
        slot::retire(plan, env, &nodeless);
        let mut summaries = Vec::new();
        for (node_id, mut group) in by_node {
            view::sort_by_age(&mut group);
            summaries.extend(reconcile_node(plan, env, node_id, group, ids));
        }
        update::drive(plan, env, &mut summaries, ids);
    })
}
