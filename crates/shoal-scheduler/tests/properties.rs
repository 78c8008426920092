//! Safety properties of `schedule` over random clusters and batches: no node is oversubscribed,
//! no task lands on a node that is not ready+active or that violates its constraints, max replicas
//! hold, every pending task is accounted for exactly once, spread is even, results are
//! deterministic.

use std::collections::{BTreeMap, BTreeSet};

mod common;

use common::{Scenario, holds, pending, run, task};
use proptest::prelude::*;
use shoal_scheduler::constraint;
use shoal_types::service::SpreadPreference;
use shoal_types::{
    Availability, Id, Node, NodeRole, NodeState, Resources, Task, TaskSpec, TaskState,
};

const CPU: i64 = 1_000_000_000;
const GIB: i64 = 1 << 30;
const CONSTRAINTS: [&str; 5] = [
    "node.role==worker",
    "node.labels.zone!=c",
    "node.labels.disk==ssd",
    "node.labels.zone==a",
    "node.role!=worker",
];

/// A node's random parts: state, availability, is manager, zone label, has ssd label, half CPUs,
/// half GiB.
type RawNode = (
    NodeState,
    Availability,
    bool,
    Option<&'static str>,
    bool,
    i64,
    i64,
);

fn node_strategy() -> impl Strategy<Value = RawNode> {
    (
        prop::sample::select(vec![
            NodeState::Ready,
            NodeState::Ready,
            NodeState::Ready,
            NodeState::Down,
            NodeState::Unknown,
        ]),
        prop::sample::select(vec![
            Availability::Active,
            Availability::Active,
            Availability::Pause,
            Availability::Drain,
        ]),
        any::<bool>(),
        prop::sample::select(vec![None, Some("a"), Some("b"), Some("c")]),
        any::<bool>(),
        0i64..=8,
        0i64..=8,
    )
}

fn make_nodes(raw: &[RawNode]) -> Vec<Node> {
    raw.iter()
        .enumerate()
        .map(
            |(i, &(state, availability, manager, zone, ssd, half_cpus, half_gibs))| {
                let mut n = Node {
                    id: Id::from_raw(format!("n{i:02}")),
                    ..Node::default()
                };
                n.status.state = state;
                n.spec.availability = availability;
                n.spec.role = if manager {
                    NodeRole::Manager
                } else {
                    NodeRole::Worker
                };
                if let Some(z) = zone {
                    n.spec.labels.insert("zone".into(), z.into());
                }
                if ssd {
                    n.spec.labels.insert("disk".into(), "ssd".into());
                }
                n.description.resources = Resources {
                    nano_cpus: half_cpus * CPU / 2,
                    memory_bytes: half_gibs * GIB / 2,
                };
                n
            },
        )
        .collect()
}

/// Per service: constraint picks, reservation in half CPUs / quarter GiB, max replicas, spread.
type SpecParts = (Vec<usize>, i64, i64, u64, bool);

fn spec_strategy() -> impl Strategy<Value = SpecParts> {
    (
        prop::collection::vec(0..CONSTRAINTS.len(), 0..3),
        0i64..=3,
        0i64..=3,
        0u64..=3,
        any::<bool>(),
    )
}

fn make_spec(&(ref picks, cpu, mem, max_replicas, spread): &SpecParts) -> TaskSpec {
    let mut s = TaskSpec::default();
    s.placement.constraints = picks.iter().map(|&p| CONSTRAINTS[p].to_owned()).collect();
    s.placement.max_replicas = max_replicas;
    if spread {
        s.placement.preferences = vec![SpreadPreference {
            spread: "node.labels.zone".into(),
        }];
    }
    s.resources.reservations = Resources {
        nano_cpus: cpu * CPU / 2,
        memory_bytes: mem * GIB / 4,
    };
    s
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(node_strategy(), 0..10),
        prop::collection::vec(spec_strategy(), 1..4),
        // existing: (node, service, state pick, half cpus)
        prop::collection::vec((0usize..12, 0usize..3, 0usize..4, 0i64..=2), 0..12),
        // pending: (service, pre-assigned node)
        prop::collection::vec((0usize..3, prop::option::weighted(0.15, 0usize..12)), 0..40),
    )
        .prop_map(|(raw_nodes, specs, raw_existing, raw_pending)| {
            let nodes = make_nodes(&raw_nodes);
            let specs: Vec<TaskSpec> = specs.iter().map(make_spec).collect();
            let spec_of = |s: usize| specs[s % specs.len()].clone();
            let states = [
                TaskState::Assigned,
                TaskState::Running,
                TaskState::Complete,
                TaskState::Failed,
            ];
            let existing = raw_existing
                .iter()
                .enumerate()
                .map(|(i, &(n, s, st, cpu))| {
                    let mut t = task(&format!("x{i:03}"), s, spec_of(s));
                    t.spec.resources.reservations.nano_cpus = cpu * CPU / 2;
                    t.node_id = Some(Id::from_raw(format!("n{n:02}")));
                    t.status.state = states[st];
                    t
                })
                .collect();
            let pending = pending(&raw_pending, spec_of);
            Scenario {
                nodes,
                existing,
                pending,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_node_is_ever_oversubscribed(s in scenario()) {
        let (view, plan) = run(&s);
        let by_id: BTreeMap<&str, &Task> = s.pending.iter().map(|t| (t.id.as_str(), t)).collect();
        for n in &s.nodes {
            let id = n.id.as_str();
            let existing = s.existing.iter().filter(|t| holds(t) && t.node_id.as_ref() == Some(&n.id));
            let new: Vec<&Task> = plan.assignments.iter().filter(|a| a.node_id == n.id).map(|a| by_id[a.task_id.as_str()]).collect();
            let used = existing.chain(new.iter().copied()).fold((0i64, 0i64), |(c, m), t| {
                let r = t.spec.resources.reservations;
                (c + r.nano_cpus, m + r.memory_bytes)
            });
            let cap = n.description.resources;
            // The view's bookkeeping is exactly capacity minus what is on the node.
            prop_assert_eq!(view.available(id), Some(Resources { nano_cpus: cap.nano_cpus - used.0, memory_bytes: cap.memory_bytes - used.1 }));
            if new.iter().any(|t| !t.spec.resources.reservations.is_zero()) {
                prop_assert!(used.0 <= cap.nano_cpus && used.1 <= cap.memory_bytes, "node {id}: used {used:?} of {cap:?}");
            }
        }
    }

    #[test]
    fn placements_respect_readiness_constraints_and_max_replicas(s in scenario()) {
        let (_, plan) = run(&s);
        let nodes: BTreeMap<&Id, &Node> = s.nodes.iter().map(|n| (&n.id, n)).collect();
        let by_id: BTreeMap<&Id, &Task> = s.pending.iter().map(|t| (&t.id, t)).collect();
        let mut per_node_service: BTreeMap<(&Id, &Id), u64> = BTreeMap::new();
        for t in s.existing.iter().filter(|t| holds(t)) {
            if let Some(n) = &t.node_id {
                *per_node_service.entry((n, &t.service_id)).or_default() += 1;
            }
        }
        for a in &plan.assignments {
            let node = nodes[&a.node_id];
            let t = by_id[&a.task_id];
            prop_assert!(node.accepts_new_tasks(), "{} placed on {} which is not ready+active", a.task_id, a.node_id);
            let cs = constraint::parse_all(&t.spec.placement.constraints);
            prop_assert!(cs.is_ok_and(|cs| constraint::all_match(&cs, node)), "{} violates constraints on {}", a.task_id, a.node_id);
            if let Some(pre) = &t.node_id {
                prop_assert_eq!(pre, &a.node_id);
            }
            let c = per_node_service.entry((&a.node_id, &t.service_id)).or_default();
            *c += 1;
            let max = t.spec.placement.max_replicas;
            prop_assert!(max == 0 || *c <= max, "{} tasks of {} on {} (max {})", c, t.service_id, a.node_id, max);
        }
    }

    #[test]
    fn every_pending_task_is_assigned_or_refused_with_a_reason(s in scenario()) {
        let (_, plan) = run(&s);
        let given: Vec<&Id> = s.pending.iter().map(|t| &t.id).collect();
        let assigned: Vec<&Id> = plan.assignments.iter().map(|a| &a.task_id).collect();
        let refused: Vec<&Id> = plan.unassigned.iter().map(|u| &u.task_id).collect();
        prop_assert_eq!(assigned.len() + refused.len(), given.len());
        let all: BTreeSet<&Id> = assigned.iter().chain(&refused).copied().collect();
        prop_assert_eq!(all, given.iter().copied().collect::<BTreeSet<_>>());
        // Both lists keep the given order.
        let pos = |id: &Id| given.iter().position(|g| *g == id);
        prop_assert!(assigned.windows(2).all(|w| pos(w[0]) < pos(w[1])));
        prop_assert!(refused.windows(2).all(|w| pos(w[0]) < pos(w[1])));
        for u in &plan.unassigned {
            prop_assert!(u.reason.starts_with("no suitable node"), "{}", u.reason);
        }
    }

    #[test]
    fn same_scenario_same_plan_in_any_node_order(s in scenario(), rotate in 0usize..10) {
        let (_, first) = run(&s);
        let mut shuffled = s.clone();
        shuffled.nodes.reverse();
        let k = rotate % shuffled.nodes.len().max(1);
        shuffled.nodes.rotate_left(k);
        let (_, second) = run(&shuffled);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn spread_is_even_across_eligible_nodes(raw in prop::collection::vec(node_strategy(), 1..12), n in 0usize..60, by_zone in any::<bool>()) {
        let nodes = make_nodes(&raw);
        let mut spec = TaskSpec::default();
        if by_zone {
            spec.placement.preferences = vec![SpreadPreference { spread: "node.labels.zone".into() }];
        }
        let pending: Vec<Task> = (0..n).map(|i| task(&format!("t{i:03}"), 0, spec.clone())).collect();
        let (view, plan) = run(&Scenario { nodes: nodes.clone(), existing: vec![], pending });
        let eligible: Vec<&Node> = nodes.iter().filter(|n| n.accepts_new_tasks()).collect();
        if eligible.is_empty() {
            prop_assert!(plan.assignments.is_empty());
            return Ok(());
        }
        prop_assert_eq!(plan.assignments.len(), n);
        let per_zone = |n: &Node| n.spec.labels.get("zone").cloned().unwrap_or_default();
        let zones: BTreeSet<String> = eligible.iter().map(|n| per_zone(n)).collect();
        let mut zone_counts: BTreeMap<String, u32> = zones.iter().map(|z| (z.clone(), 0)).collect();
        for n in &eligible {
            *zone_counts.entry(per_zone(n)).or_default() += view.service_task_count(n.id.as_str(), "s0");
        }
        if by_zone {
            let (lo, hi) = (zone_counts.values().min(), zone_counts.values().max());
            prop_assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "zones {zone_counts:?}");
            // Within a zone, nodes are even too.
            for z in &zones {
                let c: Vec<u32> = eligible.iter().filter(|n| &per_zone(n) == z).map(|n| view.service_task_count(n.id.as_str(), "s0")).collect();
                let spread = c.iter().max().zip(c.iter().min()).map_or(0, |(h, l)| h - l);
                prop_assert!(spread <= 1, "zone {z}: {c:?}");
            }
        } else {
            let c: Vec<u32> = eligible.iter().map(|n| view.service_task_count(n.id.as_str(), "s0")).collect();
            let spread = c.iter().max().zip(c.iter().min()).map_or(0, |(h, l)| h - l);
            prop_assert!(spread <= 1, "per node {c:?}");
        }
    }
}
