//! Safety of generic resources over random clusters and batches: a named unit is never held by
//! two live tasks of a node, only advertised units are handed out, discrete counts never go over
//! what the node advertises, each placed task gets exactly what it reserved, and a task refused
//! for want of generic resources really had no node with enough free.

use std::collections::{BTreeMap, BTreeSet};

mod common;

use common::{Scenario, holds, pending, run, task};
use proptest::prelude::*;
use shoal_scheduler::{ClusterView, schedule};
use shoal_types::{GenericResource, Id, Node, NodeState, Task, TaskSpec, TaskState};

const KINDS_NAMED: [&str; 2] = ["gpu", "fpga"];

/// Per node: how many GPUs, FPGAs (named) and SSD units (discrete) it advertises.
type RawNode = (usize, usize, Option<i64>);

fn make_nodes(raw: &[RawNode]) -> Vec<Node> {
    raw.iter()
        .enumerate()
        .map(|(i, &(gpus, fpgas, ssd))| {
            let mut n = Node {
                id: Id::from_raw(format!("n{i:02}")),
                ..Node::default()
            };
            n.status.state = NodeState::Ready;
            for (kind, count) in KINDS_NAMED.iter().zip([gpus, fpgas]) {
                for u in 0..count {
                    n.description
                        .generic_resources
                        .push(GenericResource::named(*kind, format!("{kind}-{i}-{u}")));
                }
            }
            if let Some(c) = ssd {
                n.description
                    .generic_resources
                    .push(GenericResource::discrete("ssd", c));
            }
            n
        })
        .collect()
}

/// A service's reservation: GPUs, FPGAs, SSD units.
type RawSpec = (i64, i64, i64);

fn make_spec(&(gpu, fpga, ssd): &RawSpec) -> TaskSpec {
    let mut s = TaskSpec::default();
    for (kind, n) in [("gpu", gpu), ("fpga", fpga), ("ssd", ssd)] {
        if n > 0 {
            s.resources
                .generic_reservations
                .push(GenericResource::discrete(kind, n));
        }
    }
    s
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec((0usize..4, 0usize..3, prop::option::of(0i64..5)), 0..8),
        prop::collection::vec((0i64..3, 0i64..2, 0i64..3), 1..4),
        // Existing tasks come from a first scheduling round (so they hold real assignments),
        // then some of them end: (service, ends).
        prop::collection::vec((0usize..3, any::<bool>()), 0..12),
        // pending: (service, pre-assigned node)
        prop::collection::vec((0usize..3, prop::option::weighted(0.15, 0usize..9)), 0..30),
    )
        .prop_map(|(raw_nodes, raw_specs, raw_first, raw_pending)| {
            let nodes = make_nodes(&raw_nodes);
            let specs: Vec<TaskSpec> = raw_specs.iter().map(make_spec).collect();
            let spec_of = |s: usize| specs[s % specs.len()].clone();
            let first: Vec<Task> = raw_first
                .iter()
                .enumerate()
                .map(|(i, &(s, _))| task(&format!("x{i:03}"), s, spec_of(s)))
                .collect();
            let mut view = ClusterView::new(&nodes, &[]);
            let refs: Vec<&Task> = first.iter().collect();
            let plan = schedule(&mut view, &refs);
            let mut existing = Vec::new();
            for a in plan.assignments {
                let Some(i) = first.iter().position(|t| t.id == a.task_id) else {
                    continue;
                };
                let mut t = first[i].clone();
                t.node_id = Some(a.node_id);
                t.assigned_generic_resources = a.generic_resources;
                t.status.state = if raw_first[i].1 {
                    TaskState::Complete
                } else {
                    TaskState::Running
                };
                existing.push(t);
            }
            let pending = pending(&raw_pending, spec_of);
            Scenario {
                nodes,
                existing,
                pending,
            }
        })
}

/// What a task reserved, as (kind, count), kinds sorted.
fn reserved(t: &Task) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for r in &t.spec.resources.generic_reservations {
        if let GenericResource::Discrete { kind, value } = r {
            *m.entry(kind.clone()).or_default() += value;
        }
    }
    m
}

/// What a task got, as (kind, count), kinds sorted.
fn got(assigned: &[GenericResource]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for r in assigned {
        let n = match r {
            GenericResource::Named { .. } => 1,
            GenericResource::Discrete { value, .. } => *value,
        };
        *m.entry(r.kind().to_owned()).or_default() += n;
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn named_units_are_unique_per_node_and_counts_never_overcommit(s in scenario()) {
        let (view, plan) = run(&s);
        let nodes: BTreeMap<&Id, &Node> = s.nodes.iter().map(|n| (&n.id, n)).collect();
        // Every live holding on each node: existing live tasks plus this plan's placements.
        let mut holdings: BTreeMap<Id, Vec<GenericResource>> = BTreeMap::new();
        for t in s.existing.iter().filter(|t| holds(t)) {
            if let Some(n) = &t.node_id {
                holdings.entry(n.clone()).or_default().extend(t.assigned_generic_resources.iter().cloned());
            }
        }
        for a in &plan.assignments {
            holdings.entry(a.node_id.clone()).or_default().extend(a.generic_resources.iter().cloned());
        }
        for (node_id, held) in &holdings {
            let node = nodes[node_id];
            let advertised = &node.description.generic_resources;
            let mut seen = BTreeSet::new();
            let mut ssd = 0;
            for r in held {
                match r {
                    GenericResource::Named { .. } => {
                        prop_assert!(advertised.contains(r), "{node_id} handed out {r:?} it does not have");
                        prop_assert!(seen.insert(r.clone()), "{node_id}: {r:?} held twice");
                    }
                    GenericResource::Discrete { value, .. } => ssd += value,
                }
            }
            let cap = advertised.iter().find_map(|r| match r {
                GenericResource::Discrete { value, .. } => Some(*value),
                GenericResource::Named { .. } => None,
            }).unwrap_or(0);
            prop_assert!(ssd <= cap, "{node_id}: {ssd} ssd held of {cap}");
            prop_assert_eq!(view.generic_available(node_id.as_str(), "ssd"), Some(cap - ssd));
            let gpus_free = advertised.iter().filter(|r| r.kind() == "gpu").count() as i64
                - held.iter().filter(|r| r.kind() == "gpu").count() as i64;
            prop_assert_eq!(view.generic_available(node_id.as_str(), "gpu"), Some(gpus_free));
        }
    }

    #[test]
    fn placed_tasks_get_exactly_what_they_reserved(s in scenario()) {
        let (_, plan) = run(&s);
        let by_id: BTreeMap<&Id, &Task> = s.pending.iter().map(|t| (&t.id, t)).collect();
        for a in &plan.assignments {
            prop_assert_eq!(got(&a.generic_resources), reserved(by_id[&a.task_id]), "{}", a.task_id);
        }
    }

    #[test]
    fn a_generic_refusal_means_no_node_had_enough(s in scenario()) {
        let (view, plan) = run(&s);
        let by_id: BTreeMap<&Id, &Task> = s.pending.iter().map(|t| (&t.id, t)).collect();
        for u in &plan.unassigned {
            let t = by_id[&u.task_id];
            if t.node_id.is_some() || !u.reason.contains("insufficient generic resources") {
                continue;
            }
            // After the whole batch, no node can hold this task's reservation (a later task of
            // the same group could only have made things fuller).
            for n in &s.nodes {
                let fits = reserved(t).iter().all(|(k, c)| view.generic_available(n.id.as_str(), k).unwrap_or(0) >= *c);
                prop_assert!(!fits, "{} refused ({}) but {} has room", t.id, u.reason, n.id);
            }
        }
    }
}
