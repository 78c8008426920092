//! Task placement for shoal: decides which node each pending task goes to and, when no node fits,
//! says why in Swarm's words (`no suitable node (1 node not available for new tasks; insufficient
//! resources on 1 node)`).
//!
//! The crate is pure: it reads a [`ClusterView`] built from a store snapshot and returns a
//! [`Plan`]; it does no IO, reads no clock and draws no randomness, so the same view and pending
//! tasks always give the same plan. The manager applies the plan in one store transaction.
//!
//! Modules:
//! - [`constraint`]: the placement-constraint grammar and matching;
//! - [`filter`]: the filters (ready, constraints, platform, resources, generic resources, max
//!   replicas) and their explanations;
//! - `view`: [`ClusterView`], the per-node counters that placements keep up to date;
//! - `generic`: each node's free generic resources, and which named units a placed task takes;
//! - `tree`: the scorer, Swarm's placement-preference tree with spread over the service's tasks;
//! - [`rebalance`]: which running tasks to move so a service's spread evens out.
//!
//! How a batch is placed (`schedule`):
//! 1. Tasks that already carry a node ID (global services) go first, as in swarmkit, each checked
//!    against its node only.
//! 2. The other tasks are grouped by service and by what the filters and scorers read from the
//!    spec (placement, reservations and generic reservations). Groups run in the order their
//!    first task appears; tasks within a group keep the given order.
//! 3. Per group, the static filters (ready, constraints, platform) run once per node, cached
//!    across groups that share a constraint and platform list, as is the preference tree's
//!    structure per preference list;
//!    the dynamic filters (resources, generic resources, max replicas) are re-checked only on the
//!    node that just took a task, which also hands the task its generic units. The best node
//!    comes off a heap, never a rescan: a group of k tasks on n nodes costs O(n + k log n).
//! 4. When a group runs out of nodes, every node is counted under the first filter that rejects it
//!    and the rest of the group gets that one reason.

pub use shoal_types::constraint;
pub mod filter;
mod generic;
pub mod rebalance;
mod tree;
mod view;

use std::collections::HashMap;

use shoal_types::node::Platform;
use shoal_types::service::{Placement, SpreadPreference};
use shoal_types::{GenericResource, Id, Resources, Task};

pub use constraint::{Constraint, ConstraintError, ConstraintErrorKind};
pub use filter::Filter;
pub use view::ClusterView;

use filter::{Demand, Rejections};
use tree::{Shape, Tree};
use view::reservation;

/// What the scheduler decided for one batch of pending tasks. Both lists follow the order of the
/// tasks given to [`schedule`]; every task given appears in exactly one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub assignments: Vec<Assignment>,
    pub unassigned: Vec<Unassigned>,
}

/// Run task `task_id` on node `node_id`, holding `generic_resources` there (the named units and
/// counts it reserved; empty when it reserved none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub task_id: Id,
    pub node_id: Id,
    pub generic_resources: Vec<GenericResource>,
}

/// No node can take task `task_id` now; `reason` is the full text for the task's status error,
/// e.g. `no suitable node (2 nodes not available for new tasks)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unassigned {
    pub task_id: Id,
    pub reason: String,
}

/// Places `pending` tasks (state Pending, in the order given). Tasks that already carry a node_id
/// (global services) are only checked against that node. Each placement updates the view, so a
/// batch never oversubscribes a node and a later batch sees this one.
pub fn schedule(view: &mut ClusterView, pending: &[&Task]) -> Plan {
    let mut outcomes: Vec<Option<Outcome>> = (0..pending.len()).map(|_| None).collect();
    let mut caches = Caches::default();

    for (i, task) in pending.iter().enumerate() {
        if let Some(node_id) = &task.node_id {
            outcomes[i] = Some(place_preassigned(view, &mut caches.statics, task, node_id));
        }
    }

    for group in group_tasks(pending) {
        place_group(view, &mut caches, &group, &mut outcomes);
    }

    let mut plan = Plan::default();
    for (task, outcome) in pending.iter().zip(outcomes) {
        match outcome {
            Some(Outcome::Placed(i, generic_resources)) => plan.assignments.push(Assignment {
                task_id: task.id.clone(),
                node_id: view.nodes[i as usize].node.id.clone(),
                generic_resources,
            }),
            Some(Outcome::Refused(reason)) => plan.unassigned.push(Unassigned {
                task_id: task.id.clone(),
                reason,
            }),
            // Every task lands in a group or is pre-assigned; this arm is unreachable but a task
            // must never vanish from the plan.
            None => plan.unassigned.push(Unassigned {
                task_id: task.id.clone(),
                reason: "no suitable node".to_owned(),
            }),
        }
    }
    plan
}

enum Outcome {
    /// On node `.0`, holding `.1`.
    Placed(u32, Vec<GenericResource>),
    Refused(String),
}

/// Tasks that the filters and scorers cannot tell apart: same service, same placement, same
/// reservations. Keying on those fields rather than the whole spec also lets the old and new
/// specs of a rolling update share one group.
struct Group<'p> {
    service_id: &'p Id,
    placement: &'p Placement,
    reservation: Resources,
    generic: &'p [GenericResource],
    /// Positions in `pending`.
    tasks: Vec<usize>,
}

fn group_tasks<'p>(pending: &[&'p Task]) -> Vec<Group<'p>> {
    let mut groups: Vec<Group<'p>> = Vec::new();
    type Key<'p> = (&'p Id, &'p Placement, Resources, &'p [GenericResource]);
    let mut by_key: HashMap<Key<'p>, usize> = HashMap::new();
    let mut last: Option<(&'p Task, usize)> = None;
    for (i, &task) in pending.iter().enumerate() {
        if task.node_id.is_some() {
            continue;
        }
        let res = reservation(task.spec.resources.reservations);
        // Batches come mostly as runs of one service's tasks; comparing with the previous task's
        // group is cheaper than hashing its placement again.
        if let Some((prev, g)) = last
            && prev.service_id == task.service_id
            && groups[g].reservation == res
            && groups[g].generic == task.spec.resources.generic_reservations.as_slice()
            && prev.spec.placement == task.spec.placement
        {
            groups[g].tasks.push(i);
            continue;
        }
        let generic = task.spec.resources.generic_reservations.as_slice();
        let key = (&task.service_id, &task.spec.placement, res, generic);
        let g = *by_key.entry(key).or_insert_with(|| {
            groups.push(Group {
                service_id: &task.service_id,
                placement: &task.spec.placement,
                reservation: res,
                generic,
                tasks: Vec::new(),
            });
            groups.len() - 1
        });
        groups[g].tasks.push(i);
        last = Some((task, g));
    }
    groups
}

/// What depends only on the nodes and a spec, never on counters, so it is worked out once per
/// [`schedule`] call and shared by every group (and pre-assigned task) that asks the same.
#[derive(Default)]
struct Caches<'p> {
    statics: StaticCache<'p>,
    /// The preference tree's structure per preference list.
    shapes: HashMap<&'p [SpreadPreference], Shape>,
}

/// The static filters' verdict per node (`None`: passes), per constraint and platform list. An
/// invalid constraint list yields the refusal text instead.
#[derive(Default)]
struct StaticCache<'p> {
    verdicts: HashMap<(&'p [String], &'p [Platform]), Verdicts>,
}

/// Per node, the static filter that rejects it (`None`: it passes), or why no node can pass.
type Verdicts = Result<Vec<Option<Filter>>, String>;

impl<'p> StaticCache<'p> {
    fn get(&mut self, view: &ClusterView, placement: &'p Placement) -> &Verdicts {
        let (exprs, platforms) = (&placement.constraints[..], &placement.platforms[..]);
        self.verdicts.entry((exprs, platforms)).or_insert_with(|| {
            // The API validates constraints, so this only trips on a spec stored by an older or
            // buggy writer. Swarm then ignores the constraints; refusing is the safe choice, since
            // ignoring them could run the task where the operator forbade it.
            let constraints = constraint::parse_all(exprs)
                .map_err(|e| format!("no suitable node (invalid placement constraint: {e})"))?;
            Ok(view
                .nodes
                .iter()
                .map(|n| filter::check_static(n, &constraints, platforms).err())
                .collect())
        })
    }
}

fn place_preassigned<'p>(
    view: &mut ClusterView,
    statics: &mut StaticCache<'p>,
    task: &'p Task,
    node_id: &Id,
) -> Outcome {
    let Some(&i) = view.index.get(node_id) else {
        return Outcome::Refused(format!(
            "no suitable node (node {node_id} is not in the cluster)"
        ));
    };
    let verdict = match statics.get(view, &task.spec.placement) {
        Ok(v) => v[i as usize],
        Err(reason) => return Outcome::Refused(reason.clone()),
    };
    let demand = Demand {
        reservation: reservation(task.spec.resources.reservations),
        generic: generic::demand(&task.spec.resources.generic_reservations),
        max_replicas: task.spec.placement.max_replicas,
    };
    let service_tasks = view.service_count(&task.service_id, i);
    let check = verdict.map_or_else(|| demand.check(&view.nodes[i as usize], service_tasks), Err);
    if let Err(f) = check {
        let mut r = Rejections::default();
        r.add(f);
        return Outcome::Refused(r.reason());
    }
    view.charge(i, demand.reservation);
    view.count_service(&task.service_id, i);
    Outcome::Placed(i, view.claim_generic(i, &demand.generic))
}

fn place_group<'p>(
    view: &mut ClusterView,
    caches: &mut Caches<'p>,
    group: &Group<'p>,
    outcomes: &mut [Option<Outcome>],
) {
    let verdicts = match caches.statics.get(view, group.placement) {
        Ok(v) => v.as_slice(),
        Err(reason) => {
            for &t in &group.tasks {
                outcomes[t] = Some(Outcome::Refused(reason.clone()));
            }
            return;
        }
    };
    let demand = Demand {
        reservation: group.reservation,
        generic: generic::demand(group.generic),
        max_replicas: group.placement.max_replicas,
    };

    // Dense per-node counts of this service while the group is placed; written back at the end.
    let mut service_tasks = vec![0u32; view.nodes.len()];
    if let Some(counts) = view.by_service.get(group.service_id) {
        for (&i, &c) in counts {
            service_tasks[i as usize] = c;
        }
    }

    let shape = caches
        .shapes
        .entry(&group.placement.preferences)
        .or_insert_with(|| {
            let levels = tree::spread_levels(&group.placement.preferences);
            Shape::new(&levels, view.nodes.iter().map(|e| &e.node))
        });
    let mut tree = Tree::build(
        shape,
        view.nodes
            .iter()
            .zip(verdicts)
            .zip(&service_tasks)
            .zip(0u32..)
            .map(|(((e, verdict), &s), i)| {
                let eligible = verdict.is_none() && demand.check(e, s).is_ok();
                (s, eligible.then_some((s, e.tasks, i)))
            }),
    );

    let mut touched: Vec<u32> = Vec::new();
    let mut refusal: Option<String> = None;
    for &t in &group.tasks {
        let mut held = Vec::new();
        let placed = tree.place(|i| {
            view.charge(i, demand.reservation);
            held = view.claim_generic(i, &demand.generic);
            let s = &mut service_tasks[i as usize];
            *s += 1;
            touched.push(i);
            let e = &view.nodes[i as usize];
            demand.check(e, *s).ok().map(|()| (*s, e.tasks, i))
        });
        outcomes[t] = Some(match placed {
            Some(i) => Outcome::Placed(i, held),
            None => {
                // Nothing changes between the group's refused tasks, so they share one reason.
                let reason =
                    refusal.get_or_insert_with(|| explain(view, verdicts, &demand, &service_tasks));
                Outcome::Refused(reason.clone())
            }
        });
    }

    if !touched.is_empty() {
        let counts = view.by_service.entry(group.service_id.clone()).or_default();
        for i in touched {
            counts.insert(i, service_tasks[i as usize]);
        }
    }
}

/// Counts every node under the first filter that rejects it, as it stands now.
fn explain(
    view: &ClusterView,
    verdicts: &[Option<Filter>],
    demand: &Demand,
    service_tasks: &[u32],
) -> String {
    let mut r = Rejections::default();
    for ((e, verdict), &s) in view.nodes.iter().zip(verdicts).zip(service_tasks) {
        if let Err(f) = verdict.map_or_else(|| demand.check(e, s), Err) {
            r.add(f);
        }
    }
    r.reason()
}

#[cfg(test)]
mod tests;
