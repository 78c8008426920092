//! Unit tests of `schedule`: filters end to end, accounting across a batch, pre-assigned tasks,
//! spread and preferences, determinism.

use std::collections::BTreeMap;

use shoal_types::service::SpreadPreference;
use shoal_types::{Availability, Id, Node, NodeState, Resources, Task, TaskSpec, TaskState};

use super::*;

const CPU: i64 = 1_000_000_000;

fn node(id: &str) -> Node {
    let mut n = Node {
        id: Id::from_raw(id),
        ..Node::default()
    };
    n.status.state = NodeState::Ready;
    n.description.hostname = format!("host-{id}");
    n.description.resources = Resources {
        nano_cpus: 4 * CPU,
        memory_bytes: 8 << 30,
    };
    n
}

fn labelled(id: &str, labels: &[(&str, &str)]) -> Node {
    let mut n = node(id);
    n.spec.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    n
}

fn task(id: &str, service: &str, spec: &TaskSpec) -> Task {
    let mut t = Task {
        id: Id::from_raw(id),
        service_id: Id::from_raw(service),
        service_name: service.to_owned(),
        spec: spec.clone(),
        desired_state: TaskState::Running,
        ..Task::default()
    };
    t.status.state = TaskState::Pending;
    t
}

fn running_on(id: &str, service: &str, node: &str, spec: &TaskSpec) -> Task {
    let mut t = task(id, service, spec);
    t.node_id = Some(Id::from_raw(node));
    t.status.state = TaskState::Running;
    t
}

fn tasks(prefix: &str, service: &str, n: usize, spec: &TaskSpec) -> Vec<Task> {
    (0..n)
        .map(|i| task(&format!("{prefix}{i:03}"), service, spec))
        .collect()
}

fn reserving(nano_cpus: i64, memory_bytes: i64) -> TaskSpec {
    let mut s = TaskSpec::default();
    s.resources.reservations = Resources {
        nano_cpus,
        memory_bytes,
    };
    s
}

fn constrained(exprs: &[&str]) -> TaskSpec {
    let mut s = TaskSpec::default();
    s.placement.constraints = exprs.iter().map(|e| (*e).to_owned()).collect();
    s
}

fn spread(labels: &[&str]) -> TaskSpec {
    let mut s = TaskSpec::default();
    s.placement.preferences = labels
        .iter()
        .map(|l| SpreadPreference {
            spread: format!("node.labels.{l}"),
        })
        .collect();
    s
}

fn run(nodes: &[Node], existing: &[Task], pending: &[Task]) -> (ClusterView, Plan) {
    let mut view = ClusterView::new(nodes, existing);
    let refs: Vec<&Task> = pending.iter().collect();
    let plan = schedule(&mut view, &refs);
    (view, plan)
}

fn placed_on(plan: &Plan) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in &plan.assignments {
        *m.entry(a.node_id.to_string()).or_insert(0) += 1;
    }
    m
}

fn reasons(plan: &Plan) -> Vec<&str> {
    plan.unassigned.iter().map(|u| u.reason.as_str()).collect()
}

mod generic;

#[test]
fn places_a_task_on_a_ready_active_node() {
    let mut drained = node("a");
    drained.spec.availability = Availability::Drain;
    let (view, plan) = run(
        &[drained, node("b")],
        &[],
        &tasks("t", "s", 1, &TaskSpec::default()),
    );
    assert_eq!(
        plan.assignments,
        vec![Assignment {
            task_id: Id::from_raw("t000"),
            node_id: Id::from_raw("b"),
            generic_resources: vec![],
        }]
    );
    assert!(plan.unassigned.is_empty());
    assert_eq!(view.task_count("b"), Some(1));
    assert_eq!(view.service_task_count("b", "s"), 1);
}

#[test]
fn explains_each_rejected_node_under_its_first_failing_filter() {
    let mut drained = node("a");
    drained.spec.availability = Availability::Drain;
    let mut down = node("b");
    down.status.state = NodeState::Down;
    let mut small = node("c");
    small.description.resources.memory_bytes = 1 << 20;
    let mut paused = node("d");
    paused.spec.availability = Availability::Pause;
    let (_, plan) = run(
        &[drained, down, small, paused],
        &[],
        &tasks("t", "s", 2, &reserving(0, 1 << 30)),
    );
    assert!(plan.assignments.is_empty());
    let want =
        "no suitable node (3 nodes not available for new tasks; insufficient resources on 1 node)";
    assert_eq!(reasons(&plan), vec![want, want]);
}

#[test]
fn explains_in_swarms_singular_form() {
    let mut drained = node("a");
    drained.spec.availability = Availability::Drain;
    let mut small = node("b");
    small.description.resources.nano_cpus = CPU / 2;
    let (_, plan) = run(
        &[drained, small],
        &[],
        &tasks("t", "s", 1, &reserving(CPU, 0)),
    );
    assert_eq!(
        reasons(&plan),
        vec![
            "no suitable node (1 node not available for new tasks; insufficient resources on 1 node)"
        ]
    );
}

#[test]
fn constraint_filter_refuses_nodes_that_do_not_match() {
    let nodes = [
        labelled("a", &[("zone", "east")]),
        labelled("b", &[("zone", "west")]),
        node("c"),
    ];
    let (_, plan) = run(
        &nodes,
        &[],
        &tasks("t", "s", 3, &constrained(&["node.labels.zone==east"])),
    );
    assert_eq!(placed_on(&plan), BTreeMap::from([("a".to_owned(), 3)]));

    let (_, plan) = run(
        &nodes,
        &[],
        &tasks("t", "s", 1, &constrained(&["node.labels.zone==north"])),
    );
    assert_eq!(
        reasons(&plan),
        vec!["no suitable node (scheduling constraints not satisfied on 3 nodes)"]
    );

    // `!=` on a missing label is satisfied: c has no zone.
    let (_, plan) = run(
        &nodes,
        &[],
        &tasks(
            "t",
            "s",
            2,
            &constrained(&["node.labels.zone!=east", "node.labels.zone!=west"]),
        ),
    );
    assert_eq!(placed_on(&plan), BTreeMap::from([("c".to_owned(), 2)]));
}

#[test]
fn a_batch_never_oversubscribes_a_node() {
    // Each task fits the node alone, not both together.
    let mut n = node("a");
    n.description.resources = Resources {
        nano_cpus: CPU,
        memory_bytes: 1 << 30,
    };
    let (view, plan) = run(
        &[n],
        &[],
        &tasks("t", "s", 2, &reserving(CPU * 6 / 10, 1 << 20)),
    );
    assert_eq!(plan.assignments.len(), 1);
    assert_eq!(
        reasons(&plan),
        vec!["no suitable node (insufficient resources on 1 node)"]
    );
    assert_eq!(
        view.available("a"),
        Some(Resources {
            nano_cpus: CPU * 4 / 10,
            memory_bytes: (1 << 30) - (1 << 20)
        })
    );

    // Across groups and across calls too.
    let mut view = view;
    let other = tasks("u", "other", 1, &reserving(CPU / 2, 0));
    let refs: Vec<&Task> = other.iter().collect();
    let plan = schedule(&mut view, &refs);
    assert_eq!(
        reasons(&plan),
        vec!["no suitable node (insufficient resources on 1 node)"]
    );
}

#[test]
fn memory_is_accounted_like_cpu() {
    let mut n = node("a");
    n.description.resources = Resources {
        nano_cpus: 0,
        memory_bytes: 3 << 30,
    };
    let (_, plan) = run(&[n], &[], &tasks("t", "s", 4, &reserving(0, 1 << 30)));
    assert_eq!(plan.assignments.len(), 3);
    assert_eq!(plan.unassigned.len(), 1);
}

#[test]
fn only_assigned_non_terminal_tasks_count_against_their_node() {
    let big = reserving(3 * CPU, 0);
    let mut done = running_on("x1", "old", "a", &big);
    done.status.state = TaskState::Complete;
    let mut waiting = running_on("x2", "old", "a", &big);
    waiting.status.state = TaskState::Pending; // pre-assigned, not confirmed yet: placed by schedule
    let unplaced = task("x3", "old", &big);
    let existing = [done, waiting, unplaced, running_on("x4", "old", "b", &big)];
    let (view, _) = run(&[node("a"), node("b")], &existing, &[]);
    assert_eq!(view.available("a").map(|r| r.nano_cpus), Some(4 * CPU));
    assert_eq!(view.available("b").map(|r| r.nano_cpus), Some(CPU));
    assert_eq!(view.task_count("a"), Some(0));
    assert_eq!(view.service_task_count("b", "old"), 1);

    let (_, plan) = run(
        &[node("a"), node("b")],
        &existing,
        &tasks("t", "s", 2, &reserving(2 * CPU, 0)),
    );
    assert_eq!(placed_on(&plan), BTreeMap::from([("a".to_owned(), 2)]));
}

#[test]
fn max_replicas_caps_tasks_of_the_service_per_node() {
    let mut spec = TaskSpec::default();
    spec.placement.max_replicas = 2;
    let existing = [running_on("x", "s", "a", &spec)];
    let (_, plan) = run(
        &[node("a"), node("b")],
        &existing,
        &tasks("t", "s", 4, &spec),
    );
    assert_eq!(
        placed_on(&plan),
        BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)])
    );
    assert_eq!(
        reasons(&plan),
        vec!["no suitable node (max replicas per node limit exceed)"]
    );
}

#[test]
fn preassigned_tasks_are_checked_against_their_node_only() {
    let mut drained = node("b");
    drained.spec.availability = Availability::Drain;
    let mut full = node("c");
    full.description.resources.nano_cpus = CPU;
    let spec = reserving(2 * CPU, 0);
    let mut pending = Vec::new();
    for (id, on) in [("g1", "a"), ("g2", "b"), ("g3", "c"), ("g4", "gone")] {
        let mut t = task(id, "global", &spec);
        t.node_id = Some(Id::from_raw(on));
        pending.push(t);
    }
    // Node a is busier than d but g1 still goes to a: pre-assigned tasks are not scored.
    let existing = [running_on("x", "other", "a", &TaskSpec::default())];
    let (view, plan) = run(&[node("a"), drained, full, node("d")], &existing, &pending);
    assert_eq!(
        plan.assignments,
        vec![Assignment {
            task_id: Id::from_raw("g1"),
            node_id: Id::from_raw("a"),
            generic_resources: vec![],
        }]
    );
    assert_eq!(
        reasons(&plan),
        vec![
            "no suitable node (1 node not available for new tasks)",
            "no suitable node (insufficient resources on 1 node)",
            "no suitable node (node gone is not in the cluster)",
        ]
    );
    assert_eq!(view.available("a").map(|r| r.nano_cpus), Some(2 * CPU));
}

#[test]
fn preassigned_tasks_go_first_and_the_rest_see_them() {
    let spec = reserving(3 * CPU, 0);
    let replicated = task("r1", "web", &spec);
    let mut global = task("g1", "agent", &spec);
    global.node_id = Some(Id::from_raw("a"));
    // The replicated task comes first in the batch, yet the global task keeps its node.
    let (_, plan) = run(&[node("a"), node("b")], &[], &[replicated, global]);
    assert_eq!(
        plan.assignments,
        vec![
            Assignment {
                task_id: Id::from_raw("r1"),
                node_id: Id::from_raw("b"),
                generic_resources: vec![],
            },
            Assignment {
                task_id: Id::from_raw("g1"),
                node_id: Id::from_raw("a"),
                generic_resources: vec![],
            },
        ]
    );
}

#[test]
fn spreads_by_service_then_total_then_node_id() {
    let spec = TaskSpec::default();
    // a: 1 task of s; b: 2 other tasks; c: 1 other task; d: nothing.
    let existing = [
        running_on("x1", "s", "a", &spec),
        running_on("x2", "o", "b", &spec),
        running_on("x3", "o", "b", &spec),
        running_on("x4", "o", "c", &spec),
    ];
    let nodes = [node("d"), node("c"), node("b"), node("a")];
    let (_, plan) = run(&nodes, &existing, &tasks("t", "s", 4, &spec));
    let order: Vec<&str> = plan
        .assignments
        .iter()
        .map(|a| a.node_id.as_str())
        .collect();
    // d (0 tasks), c (1 total), b (2 total), then a, b, c, d all hold 1 of s: a has the fewest in all.
    assert_eq!(order, vec!["d", "c", "b", "a"]);
}

#[test]
fn spread_preference_evens_out_label_values() {
    let nodes = [
        labelled("a1", &[("zone", "a")]),
        labelled("b1", &[("zone", "b")]),
        labelled("b2", &[("zone", "b")]),
        labelled("c1", &[("zone", "c")]),
        labelled("c2", &[("zone", "c")]),
        labelled("c3", &[("zone", "c")]),
    ];
    let (view, plan) = run(&nodes, &[], &tasks("t", "s", 6, &spread(&["zone"])));
    let on = placed_on(&plan);
    let per_zone = |z: &str| {
        on.iter()
            .filter(|(n, _)| n.starts_with(z))
            .map(|(_, c)| c)
            .sum::<usize>()
    };
    assert_eq!((per_zone("a"), per_zone("b"), per_zone("c")), (2, 2, 2));
    assert_eq!(view.service_task_count("a1", "s"), 2);

    // Existing tasks count for their zone: zone a already has 3, so new tasks go to b and c.
    let existing: Vec<Task> = (0..3)
        .map(|i| running_on(&format!("x{i}"), "s", "a1", &TaskSpec::default()))
        .collect();
    let (_, plan) = run(&nodes, &existing, &tasks("t", "s", 4, &spread(&["zone"])));
    let on = placed_on(&plan);
    assert_eq!(on.get("a1"), None);
    assert_eq!(on.values().sum::<usize>(), 4);
}

#[test]
fn spread_preference_skips_values_whose_nodes_cannot_take_tasks() {
    let mut east = labelled("e1", &[("zone", "east")]);
    east.spec.availability = Availability::Drain;
    let nodes = [east, labelled("w1", &[("zone", "west")]), node("n1")];
    let (_, plan) = run(&nodes, &[], &tasks("t", "s", 4, &spread(&["zone"])));
    // A node without the label sits under the empty value, a branch of its own.
    assert_eq!(
        placed_on(&plan),
        BTreeMap::from([("n1".to_owned(), 2), ("w1".to_owned(), 2)])
    );
}

/// `spread=engine.labels.*` and `spread=node.platform.*` as well as node labels: the engine's
/// labels and the platforms of the nodes split the tasks as node labels do.
#[test]
fn spread_preference_over_engine_labels_and_platforms() {
    let with = |id: &str, storage: &str, os: &str| {
        let mut n = node(id);
        n.description
            .engine
            .labels
            .insert("storage".into(), storage.into());
        n.description.platform.os = os.into();
        n
    };
    let nodes = [
        with("a1", "ssd", "linux"),
        with("b1", "hdd", "linux"),
        with("b2", "hdd", "linux"),
        with("b3", "hdd", "windows"),
    ];
    let by = |descriptor: &str| {
        let mut s = TaskSpec::default();
        s.placement.preferences = vec![SpreadPreference {
            spread: descriptor.into(),
        }];
        s
    };
    let (_, plan) = run(
        &nodes,
        &[],
        &tasks("t", "s", 4, &by("engine.labels.storage")),
    );
    let on = placed_on(&plan);
    assert_eq!(on.get("a1"), Some(&2), "{on:?}");
    let (_, plan) = run(&nodes, &[], &tasks("t", "s", 4, &by("node.platform.os")));
    let on = placed_on(&plan);
    assert_eq!(on.get("b3"), Some(&2), "{on:?}");
    // Without a preference, plain spread: one task per node.
    let (_, plan) = run(&nodes, &[], &tasks("t", "s", 4, &TaskSpec::default()));
    assert!(placed_on(&plan).values().all(|&c| c == 1));
}

/// `Placement.Platforms`: only nodes whose platform is listed take the tasks; when none is,
/// the task stays pending with Swarm's reason.
#[test]
fn platforms_keep_tasks_off_nodes_of_other_platforms() {
    use shoal_types::node::Platform;
    let on = |id: &str, os: &str, arch: &str| {
        let mut n = node(id);
        n.description.platform = Platform {
            os: os.into(),
            arch: arch.into(),
        };
        n
    };
    let nodes = [
        on("arm", "linux", "aarch64"),
        on("x86", "linux", "x86_64"),
        on("win", "windows", "x86_64"),
    ];
    let wants = |platforms: &[(&str, &str)]| {
        let mut s = TaskSpec::default();
        s.placement.platforms = platforms
            .iter()
            .map(|(os, arch)| Platform {
                os: (*os).into(),
                arch: (*arch).into(),
            })
            .collect();
        s
    };
    let (_, plan) = run(
        &nodes,
        &[],
        &tasks("t", "s", 3, &wants(&[("linux", "amd64")])),
    );
    assert_eq!(placed_on(&plan), BTreeMap::from([("x86".to_owned(), 3)]));
    let (_, plan) = run(
        &nodes,
        &[],
        &tasks(
            "t",
            "s",
            2,
            &wants(&[("linux", "amd64"), ("linux", "arm64")]),
        ),
    );
    assert_eq!(
        placed_on(&plan),
        BTreeMap::from([("arm".to_owned(), 1), ("x86".to_owned(), 1)])
    );
    let (_, plan) = run(
        &nodes,
        &[],
        &tasks("t", "s", 1, &wants(&[("linux", "s390x")])),
    );
    assert_eq!(
        reasons(&plan),
        ["no suitable node (unsupported platform on 3 nodes)"]
    );
    // A pre-assigned (global) task on a node of another platform is refused the same way.
    let mut global = task("g", "s", &wants(&[("windows", "")]));
    global.node_id = Some(Id::from_raw("arm"));
    let (_, plan) = run(&nodes, &[], &[global]);
    assert_eq!(
        reasons(&plan),
        ["no suitable node (unsupported platform on 1 node)"]
    );
}

#[test]
fn nested_spread_preferences_split_level_by_level() {
    let mut nodes = Vec::new();
    for (dc, racks) in [("dc1", 1), ("dc2", 2)] {
        for r in 0..racks {
            for k in 0..2 {
                nodes.push(labelled(
                    &format!("{dc}-r{r}-{k}"),
                    &[("dc", dc), ("rack", &format!("r{r}"))],
                ));
            }
        }
    }
    let (_, plan) = run(&nodes, &[], &tasks("t", "s", 8, &spread(&["dc", "rack"])));
    let on = placed_on(&plan);
    let count = |p: &str| {
        on.iter()
            .filter(|(n, _)| n.starts_with(p))
            .map(|(_, c)| c)
            .sum::<usize>()
    };
    assert_eq!((count("dc1"), count("dc2")), (4, 4));
    assert_eq!((count("dc2-r0"), count("dc2-r1")), (2, 2));
    assert!(on.values().all(|&c| c == 2 || c == 1), "{on:?}");
}

#[test]
fn invalid_constraints_refuse_the_task_and_say_why() {
    let (_, plan) = run(
        &[node("a")],
        &[],
        &tasks(
            "t",
            "s",
            1,
            &constrained(&["node.role==worker", "node.foo==x"]),
        ),
    );
    assert_eq!(plan.unassigned.len(), 1);
    let r = &plan.unassigned[0].reason;
    assert!(
        r.starts_with(r#"no suitable node (invalid placement constraint: constraints[1] "node.foo==x": unknown key"#),
        "{r}"
    );
}

#[test]
fn no_nodes_means_no_suitable_node() {
    let (_, plan) = run(&[], &[], &tasks("t", "s", 2, &TaskSpec::default()));
    assert_eq!(reasons(&plan), vec!["no suitable node", "no suitable node"]);
}

#[test]
fn plan_follows_the_given_order_across_groups() {
    let a = tasks("a", "s1", 2, &TaskSpec::default());
    let b = tasks("b", "s2", 2, &reserving(CPU, 0));
    let pending = [a[0].clone(), b[0].clone(), a[1].clone(), b[1].clone()];
    let (_, plan) = run(&[node("n1"), node("n2")], &[], &pending);
    let ids: Vec<&str> = plan
        .assignments
        .iter()
        .map(|x| x.task_id.as_str())
        .collect();
    assert_eq!(ids, vec!["a000", "b000", "a001", "b001"]);
}

#[test]
fn same_input_same_plan_whatever_the_node_order() {
    let nodes: Vec<Node> = (0..7)
        .map(|i| labelled(&format!("n{i}"), &[("zone", ["x", "y"][i % 2])]))
        .collect();
    let existing = [running_on("x", "s", "n3", &TaskSpec::default())];
    let mut spec = spread(&["zone"]);
    spec.resources.reservations = Resources {
        nano_cpus: CPU,
        memory_bytes: 0,
    };
    let pending = tasks("t", "s", 20, &spec);
    let (_, first) = run(&nodes, &existing, &pending);
    let mut reversed = nodes.clone();
    reversed.reverse();
    let (_, second) = run(&reversed, &existing, &pending);
    assert_eq!(first, second);
    assert_eq!(first.assignments.len() + first.unassigned.len(), 20);
}

/// Every counter the filters and scorers read, for comparing two views.
fn counters(v: &ClusterView, nodes: &[Node], services: &[&str]) -> Vec<(Resources, u32, u32)> {
    let mut out = Vec::new();
    for n in nodes {
        for s in services {
            out.push((
                v.available(n.id.as_str()).unwrap_or_default(),
                v.task_count(n.id.as_str()).unwrap_or_default(),
                v.service_task_count(n.id.as_str(), s),
            ));
        }
    }
    out
}

#[test]
fn a_view_kept_across_versions_equals_one_built_afresh() {
    let nodes = [node("n1"), node("n2")];
    let spec = reserving(CPU / 2, 1 << 30);
    let kept = [
        running_on("a1", "web", "n1", &spec),
        running_on("a2", "web", "n2", &spec),
        running_on("a3", "api", "n1", &spec),
    ];
    let changed = [
        running_on("b1", "web", "n1", &spec),
        running_on("b2", "db", "n2", &spec),
        task("b3", "db", &spec), // pending: holds nothing
    ];
    let services = ["web", "api", "db"];
    let fresh = ClusterView::new(&nodes, &kept);

    let mut v = ClusterView::new(&nodes, kept.iter().chain(&changed));
    assert_ne!(
        counters(&v, &nodes, &services),
        counters(&fresh, &nodes, &services)
    );
    for t in &changed {
        assert!(v.remove_task(t));
    }
    assert_eq!(
        counters(&v, &nodes, &services),
        counters(&fresh, &nodes, &services)
    );
    for t in &changed {
        v.add_task(t);
    }
    let all = ClusterView::new(&nodes, kept.iter().chain(&changed));
    assert_eq!(
        counters(&v, &nodes, &services),
        counters(&all, &nodes, &services)
    );
}

#[test]
fn a_task_holding_generic_resources_is_not_taken_out_by_hand() {
    let mut n = node("gpu");
    n.description.generic_resources = vec![GenericResource::discrete("gpu", 2)];
    let mut spec = reserving(0, 0);
    spec.resources.generic_reservations = vec![GenericResource::discrete("gpu", 1)];
    let t = running_on("t1", "ml", "gpu", &spec);
    let mut v = ClusterView::new([&n], [&t]);
    assert!(!v.remove_task(&t));
    assert_eq!(v.task_count("gpu"), Some(1), "the view is left as it was");
}

#[test]
fn a_network_attachment_holds_nothing_on_its_node() {
    let big = reserving(3 * CPU, 0);
    let mut attached = running_on("a1", "", "a", &big);
    attached.attachment = Some(shoal_types::task::ContainerAttachment {
        container_id: "c".repeat(64),
        container_name: "probe".into(),
    });
    let mut v = ClusterView::new([&node("a")], [&attached]);
    assert_eq!(v.task_count("a"), Some(0));
    assert_eq!(v.available("a").map(|r| r.nano_cpus), Some(4 * CPU));
    v.add_task(&attached);
    assert_eq!(v.task_count("a"), Some(0), "nor when added to a kept view");
    assert!(v.remove_task(&attached));
    assert_eq!(v.task_count("a"), Some(0));
}
