//! Rebalancing: which running tasks to move so a replicated service's spread evens out after a
//! node joins or comes back. Neither Swarm nor Kubernetes does this (their users run
//! `service update --force` or a descheduler); shoal does it gradually and safely:
//! - only services that are settled (the caller checks: every slot runs one up-to-date task, no
//!   update in progress), have no placement preferences (their spread is over labels, not
//!   nodes) and reserve no generic resources (a move would hand the task other units);
//! - a task moves only from a node that carries at least two more of the service's tasks than
//!   the node it goes to, so every move strictly evens the spread and moves never chase each
//!   other;
//! - the target passes every filter (ready and active, constraints, resources, max replicas),
//!   with the moves already planned counted, so a move never lands where the scheduler would
//!   refuse it;
//! - at most `budget` moves per service per call (the service's update parallelism): the caller
//!   makes each replacement start first, and plans again only once the service is settled.
//!
//! Pure and deterministic: ties go to the highest node index for the source and the lowest for
//! the target, and the highest slot moves first.

use std::collections::HashMap;

use shoal_types::{Id, Resources, Task, TaskSpec};

use crate::constraint;
use crate::filter::{self, Demand};
use crate::view::{ClusterView, NodeEntry, reservation};

/// A settled replicated service the caller wants evened out.
pub struct Candidate<'a> {
    pub service_id: &'a Id,
    /// The service's task template (its running tasks all match it).
    pub spec: &'a TaskSpec,
    /// The service's running tasks.
    pub tasks: Vec<&'a Task>,
    /// Moves allowed in this call.
    pub budget: usize,
}

/// Replace `task_id` (slot `slot` of `service_id`) with a new task on `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub service_id: Id,
    pub task_id: Id,
    pub slot: u64,
    pub from: Id,
    pub to: Id,
}

/// Plans the moves for every candidate. Moves of earlier candidates count against the nodes
/// for later ones.
pub fn plan(view: &ClusterView, candidates: &[Candidate]) -> Vec<Move> {
    let mut booked: HashMap<u32, Resources> = HashMap::new();
    let mut moves = Vec::new();
    for c in candidates {
        plan_one(view, c, &mut booked, &mut moves);
    }
    moves
}

fn plan_one(
    view: &ClusterView,
    c: &Candidate,
    booked: &mut HashMap<u32, Resources>,
    moves: &mut Vec<Move>,
) {
    // Generic resources (GPUs) are left where they are: a move would give the task other
    // units, which is not what a rebalance should do behind a user's back.
    if c.budget == 0
        || !c.spec.placement.preferences.is_empty()
        || !c.spec.resources.generic_reservations.is_empty()
    {
        return;
    }
    let Ok(constraints) = constraint::parse_all(&c.spec.placement.constraints) else {
        return;
    };
    let demand = Demand {
        reservation: reservation(c.spec.resources.reservations),
        generic: Vec::new(),
        max_replicas: c.spec.placement.max_replicas,
    };
    // The service's tasks on each eligible node; tasks elsewhere (a paused node, a node that
    // no longer fits) are left where they are.
    let mut on: HashMap<u32, Vec<&Task>> = HashMap::new();
    let mut eligible: Vec<u32> = Vec::new();
    for (i, e) in (0u32..).zip(&view.nodes) {
        if filter::check_static(e, &constraints, &c.spec.placement.platforms).is_ok() {
            eligible.push(i);
            on.insert(i, Vec::new());
        }
    }
    if eligible.len() < 2 {
        return;
    }
    for &t in &c.tasks {
        let Some(&i) = t.node_id.as_ref().and_then(|id| view.index.get(id)) else {
            continue;
        };
        if let Some(list) = on.get_mut(&i) {
            list.push(t);
        }
    }
    for list in on.values_mut() {
        list.sort_by(|a, b| (a.slot, &a.id).cmp(&(b.slot, &b.id)));
    }
    let count = |on: &HashMap<u32, Vec<&Task>>, i: u32| on.get(&i).map_or(0, Vec::len);

    for _ in 0..c.budget {
        let Some(src) = eligible.iter().copied().max_by_key(|&i| (count(&on, i), i)) else {
            return;
        };
        let src_count = count(&on, src);
        // The emptiest node that takes one more task, as the filters see it after the moves
        // planned so far.
        let dst = eligible
            .iter()
            .copied()
            .filter(|&i| i != src && count(&on, i) + 2 <= src_count)
            .filter(|&i| {
                fits(
                    &view.nodes[i as usize],
                    booked.get(&i),
                    &demand,
                    count(&on, i),
                )
            })
            .min_by_key(|&i| (count(&on, i), view.nodes[i as usize].tasks, i));
        let Some(dst) = dst else { return };
        let Some(task) = on.get_mut(&src).and_then(Vec::pop) else {
            return;
        };
        let b = booked.entry(dst).or_default();
        b.nano_cpus = b.nano_cpus.saturating_add(demand.reservation.nano_cpus);
        b.memory_bytes = b
            .memory_bytes
            .saturating_add(demand.reservation.memory_bytes);
        on.entry(dst).or_default().push(task);
        moves.push(Move {
            service_id: c.service_id.clone(),
            task_id: task.id.clone(),
            slot: task.slot,
            from: view.nodes[src as usize].node.id.clone(),
            to: view.nodes[dst as usize].node.id.clone(),
        });
    }
}

/// The dynamic filters on a node, with what earlier moves booked there taken off.
fn fits(e: &NodeEntry, booked: Option<&Resources>, demand: &Demand, service_tasks: usize) -> bool {
    let n = u32::try_from(service_tasks).unwrap_or(u32::MAX);
    match booked {
        None => demand.check(e, n).is_ok(),
        Some(b) => {
            let mut e = e.clone();
            e.available.nano_cpus = e.available.nano_cpus.saturating_sub(b.nano_cpus);
            e.available.memory_bytes = e.available.memory_bytes.saturating_sub(b.memory_bytes);
            demand.check(&e, n).is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use shoal_types::service::SpreadPreference;
    use shoal_types::{Availability, Node, NodeState, TaskState};

    use super::*;

    const GIB: i64 = 1 << 30;

    fn node(id: &str) -> Node {
        let mut n = Node {
            id: Id::from_raw(id),
            ..Node::default()
        };
        n.status.state = NodeState::Ready;
        n.description.resources = Resources {
            nano_cpus: 4_000_000_000,
            memory_bytes: 4 * GIB,
        };
        n
    }

    fn running(id: &str, slot: u64, node: &str, spec: &TaskSpec) -> Task {
        let mut t = Task {
            id: Id::from_raw(id),
            service_id: Id::from_raw("s"),
            slot,
            node_id: Some(Id::from_raw(node)),
            spec: spec.clone(),
            desired_state: TaskState::Running,
            ..Task::default()
        };
        t.status.state = TaskState::Running;
        t
    }

    /// `per_node[i]` tasks on node `n{i}`, slots numbered in order.
    fn spread(per_node: &[usize], spec: &TaskSpec) -> Vec<Task> {
        let mut out = Vec::new();
        for (i, &k) in per_node.iter().enumerate() {
            for _ in 0..k {
                let slot = out.len() as u64 + 1;
                out.push(running(&format!("t{slot}"), slot, &format!("n{i}"), spec));
            }
        }
        out
    }

    fn moves(nodes: &[Node], tasks: &[Task], spec: &TaskSpec, budget: usize) -> Vec<Move> {
        let view = ClusterView::new(nodes, tasks);
        let sid = Id::from_raw("s");
        let c = Candidate {
            service_id: &sid,
            spec,
            tasks: tasks.iter().collect(),
            budget,
        };
        plan(&view, &[c])
    }

    fn nodes(n: usize) -> Vec<Node> {
        (0..n).map(|i| node(&format!("n{i}"))).collect()
    }

    fn to_counts(ms: &[Move]) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for mv in ms {
            *m.entry(mv.to.to_string()).or_default() += 1;
        }
        m
    }

    #[test]
    fn a_returning_node_gets_its_share_and_no_more() {
        let spec = TaskSpec::default();
        let tasks = spread(&[3, 3, 0], &spec);
        let ms = moves(&nodes(3), &tasks, &spec, 10);
        assert_eq!(ms.len(), 2, "{ms:?}");
        assert_eq!(to_counts(&ms).get("n2"), Some(&2));
        // One from each full node, highest slot first.
        let from: Vec<String> = ms.iter().map(|m| m.from.to_string()).collect();
        assert_eq!(from, ["n1", "n0"]);
        assert_eq!(ms[0].slot, 6);
    }

    #[test]
    fn the_budget_bounds_the_moves() {
        let spec = TaskSpec::default();
        let tasks = spread(&[6, 0], &spec);
        assert_eq!(moves(&nodes(2), &tasks, &spec, 1).len(), 1);
        assert_eq!(moves(&nodes(2), &tasks, &spec, 10).len(), 3);
        assert!(moves(&nodes(2), &tasks, &spec, 0).is_empty());
    }

    #[test]
    fn a_difference_of_one_is_even_enough() {
        let spec = TaskSpec::default();
        assert!(moves(&nodes(2), &spread(&[4, 3], &spec), &spec, 10).is_empty());
        assert!(moves(&nodes(3), &spread(&[1, 1, 0], &spec), &spec, 10).is_empty());
    }

    #[test]
    fn targets_pass_every_filter() {
        let mut spec = TaskSpec::default();
        spec.resources.reservations.memory_bytes = 2 * GIB;
        let mut ns = nodes(3);
        // n1 has room for one more such task; n2 for none.
        ns[1].description.resources.memory_bytes = 2 * GIB;
        ns[2].description.resources.memory_bytes = GIB;
        let tasks = spread(&[2, 0, 0], &spec);
        let ms = moves(&ns, &tasks, &spec, 10);
        assert_eq!(to_counts(&ms), [("n1".to_string(), 1)].into());

        let spec = TaskSpec::default();
        let mut ns = nodes(4);
        ns[1].spec.availability = Availability::Pause;
        ns[2].spec.availability = Availability::Drain;
        ns[3].status.state = NodeState::Down;
        assert!(moves(&ns, &spread(&[4, 0, 0, 0], &spec), &spec, 10).is_empty());

        let mut spec = TaskSpec::default();
        spec.placement.constraints = vec!["node.labels.tier==web".into()];
        let mut ns = nodes(3);
        for n in &mut ns[..2] {
            n.spec.labels.insert("tier".into(), "web".into());
        }
        let ms = moves(&ns, &spread(&[4, 0, 0], &spec), &spec, 10);
        assert_eq!(to_counts(&ms), [("n1".to_string(), 2)].into());

        let mut spec = TaskSpec::default();
        spec.placement.max_replicas = 3;
        let ns = nodes(2);
        let ms = moves(&ns, &spread(&[3, 0], &spec), &spec, 10);
        assert_eq!(ms.len(), 1);
    }

    #[test]
    fn moves_of_one_service_count_against_the_next() {
        let mut spec = TaskSpec::default();
        spec.resources.reservations.memory_bytes = GIB;
        let mut ns = nodes(2);
        ns[1].description.resources.memory_bytes = GIB;
        let a = spread(&[2, 0], &spec);
        let mut b = spread(&[2, 0], &spec);
        for t in &mut b {
            t.id = Id::from_raw(format!("b{}", t.id));
            t.service_id = Id::from_raw("s2");
        }
        let all: Vec<Task> = a.iter().chain(&b).cloned().collect();
        let view = ClusterView::new(&ns, &all);
        let (s1, s2) = (Id::from_raw("s"), Id::from_raw("s2"));
        let cs = [
            Candidate {
                service_id: &s1,
                spec: &spec,
                tasks: a.iter().collect(),
                budget: 5,
            },
            Candidate {
                service_id: &s2,
                spec: &spec,
                tasks: b.iter().collect(),
                budget: 5,
            },
        ];
        let ms = plan(&view, &cs);
        assert_eq!(ms.len(), 1, "n1 has room for one task only: {ms:?}");
    }

    #[test]
    fn services_spread_over_labels_are_left_alone() {
        let mut spec = TaskSpec::default();
        spec.placement.preferences = vec![SpreadPreference {
            spread: "node.labels.zone".into(),
        }];
        assert!(moves(&nodes(2), &spread(&[4, 0], &spec), &spec, 10).is_empty());
    }

    proptest::proptest! {
        /// Any layout: after the planned moves every node holds between the old minimum and
        /// the old maximum, the spread is never wider, and no task moves twice.
        #[test]
        fn moves_only_even_the_spread(per_node in proptest::collection::vec(0usize..8, 2..7), budget in 0usize..20) {
            let spec = TaskSpec::default();
            let tasks = spread(&per_node, &spec);
            let ms = moves(&nodes(per_node.len()), &tasks, &spec, budget);
            proptest::prop_assert!(ms.len() <= budget);
            let mut after: Vec<i64> = per_node.iter().map(|&k| k as i64).collect();
            let mut seen = std::collections::BTreeSet::new();
            for m in &ms {
                proptest::prop_assert!(seen.insert(m.task_id.clone()), "moved twice");
                let idx = |id: &Id| id.as_str()[1..].parse::<usize>().unwrap_or(usize::MAX);
                after[idx(&m.from)] -= 1;
                after[idx(&m.to)] += 1;
            }
            let (lo, hi) = (*per_node.iter().min().unwrap_or(&0) as i64, *per_node.iter().max().unwrap_or(&0) as i64);
            for &a in &after {
                proptest::prop_assert!(a >= lo && a <= hi, "{per_node:?} -> {after:?}");
            }
            let spread_after = after.iter().max().unwrap_or(&0) - after.iter().min().unwrap_or(&0);
            proptest::prop_assert!(spread_after <= hi - lo);
            if budget >= tasks.len() {
                proptest::prop_assert!(spread_after <= 1, "{per_node:?} -> {after:?}");
            }
        }
    }
}
