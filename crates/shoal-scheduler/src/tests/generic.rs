//! Generic resources end to end through `schedule`: which units a task gets, what running tasks
//! already hold, and how a refusal reads.

use shoal_types::GenericResource;

use super::*;

fn with_gpus(id: &str, gpus: &[&str]) -> Node {
    let mut n = node(id);
    n.description.generic_resources = gpus
        .iter()
        .map(|g| GenericResource::named("gpu", *g))
        .collect();
    n
}

fn with_count(id: &str, kind: &str, count: i64) -> Node {
    let mut n = node(id);
    n.description.generic_resources = vec![GenericResource::discrete(kind, count)];
    n
}

fn wanting(kind: &str, count: i64) -> TaskSpec {
    let mut s = TaskSpec::default();
    s.resources.generic_reservations = vec![GenericResource::discrete(kind, count)];
    s
}

fn held(plan: &Plan) -> Vec<(String, Vec<GenericResource>)> {
    plan.assignments
        .iter()
        .map(|a| (a.node_id.to_string(), a.generic_resources.clone()))
        .collect()
}

#[test]
fn each_task_gets_its_own_gpu_and_the_third_waits_with_a_reason() {
    let spec = wanting("gpu", 1);
    let (view, plan) = run(
        &[with_gpus("a", &["GPU-a", "GPU-b"])],
        &[],
        &tasks("t", "s", 3, &spec),
    );
    assert_eq!(
        held(&plan),
        vec![
            ("a".into(), vec![GenericResource::named("gpu", "GPU-a")]),
            ("a".into(), vec![GenericResource::named("gpu", "GPU-b")]),
        ]
    );
    assert_eq!(
        reasons(&plan),
        vec!["no suitable node (insufficient generic resources on 1 node)"]
    );
    assert_eq!(view.generic_available("a", "gpu"), Some(0));
}

#[test]
fn units_held_by_running_tasks_are_not_given_again() {
    let spec = wanting("gpu", 1);
    let mut holder = running_on("x", "s", "a", &spec);
    holder.assigned_generic_resources = vec![GenericResource::named("gpu", "GPU-a")];
    // A finished task held GPU-b: it is free again.
    let mut done = running_on("y", "s", "a", &spec);
    done.status.state = TaskState::Complete;
    done.assigned_generic_resources = vec![GenericResource::named("gpu", "GPU-b")];
    let (_, plan) = run(
        &[with_gpus("a", &["GPU-a", "GPU-b", "GPU-c"])],
        &[holder, done],
        &tasks("t", "s", 3, &spec),
    );
    assert_eq!(
        held(&plan),
        vec![
            ("a".into(), vec![GenericResource::named("gpu", "GPU-b")]),
            ("a".into(), vec![GenericResource::named("gpu", "GPU-c")]),
        ]
    );
    assert_eq!(plan.unassigned.len(), 1);
}

#[test]
fn a_task_that_reserved_but_records_nothing_still_counts() {
    let spec = wanting("gpu", 1);
    let (_, plan) = run(
        &[with_gpus("a", &["GPU-a", "GPU-b"])],
        &[running_on("x", "s", "a", &spec)],
        &tasks("t", "s", 2, &spec),
    );
    assert_eq!(plan.assignments.len(), 1);
}

#[test]
fn discrete_counts_go_down_per_task_and_spread_over_nodes() {
    let spec = wanting("ssd", 2);
    let (view, plan) = run(
        &[with_count("a", "ssd", 3), with_count("b", "ssd", 4)],
        &[],
        &tasks("t", "s", 4, &spec),
    );
    assert_eq!(
        held(&plan),
        vec![
            ("a".into(), vec![GenericResource::discrete("ssd", 2)]),
            ("b".into(), vec![GenericResource::discrete("ssd", 2)]),
            ("b".into(), vec![GenericResource::discrete("ssd", 2)]),
        ]
    );
    assert_eq!(view.generic_available("a", "ssd"), Some(1));
    assert_eq!(view.generic_available("b", "ssd"), Some(0));
    assert_eq!(
        reasons(&plan),
        vec!["no suitable node (insufficient generic resources on 2 nodes)"]
    );
}

#[test]
fn nodes_without_the_kind_are_counted_under_the_generic_filter_after_the_others() {
    let mut drained = with_gpus("a", &["g"]);
    drained.spec.availability = Availability::Drain;
    let mut full = with_gpus("b", &["g"]);
    full.description.resources.nano_cpus = 0;
    let mut spec = wanting("gpu", 1);
    spec.resources.reservations.nano_cpus = CPU;
    let (_, plan) = run(
        &[drained, full, node("c"), node("d")],
        &[],
        &tasks("t", "s", 1, &spec),
    );
    assert_eq!(
        reasons(&plan),
        vec![
            "no suitable node (insufficient generic resources on 2 nodes; \
             1 node not available for new tasks; insufficient resources on 1 node)"
        ]
    );
}

#[test]
fn preassigned_tasks_claim_units_on_their_node_or_are_refused() {
    let spec = wanting("gpu", 2);
    let mut pending = Vec::new();
    for (id, on) in [("g1", "a"), ("g2", "b"), ("g3", "a")] {
        let mut t = task(id, "global", &spec);
        t.node_id = Some(Id::from_raw(on));
        pending.push(t);
    }
    let (_, plan) = run(
        &[with_gpus("a", &["0", "1"]), with_gpus("b", &["0"])],
        &[],
        &pending,
    );
    assert_eq!(
        held(&plan),
        vec![(
            "a".into(),
            vec![
                GenericResource::named("gpu", "0"),
                GenericResource::named("gpu", "1")
            ]
        )]
    );
    assert_eq!(
        reasons(&plan),
        vec![
            "no suitable node (insufficient generic resources on 1 node)",
            "no suitable node (insufficient generic resources on 1 node)",
        ]
    );
}

#[test]
fn services_with_different_reservations_are_placed_apart() {
    let gpu = wanting("gpu", 1);
    let plain = TaskSpec::default();
    let mut pending = tasks("p", "s", 2, &plain);
    pending.extend(tasks("g", "s", 1, &gpu));
    let (_, plan) = run(&[with_gpus("a", &["only"]), node("b")], &[], &pending);
    // The GPU task must go to a, and the plain ones spread as usual, holding nothing.
    let got = held(&plan);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[2],
        ("a".into(), vec![GenericResource::named("gpu", "only")])
    );
    assert!(got[..2].iter().all(|(_, g)| g.is_empty()));
}
