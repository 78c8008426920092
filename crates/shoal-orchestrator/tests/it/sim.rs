//! Property tests: a tiny cluster (the `World` of `common`) driven by random faults — tasks
//! failing, completing and being rejected, nodes going down and coming back, drains and pauses,
//! scaling, spec updates — with the reconciler, the reaper, a scheduler and the agents running
//! after every fault. Safety is checked after every round, convergence after the faults stop.

use std::collections::BTreeMap;

use proptest::prelude::*;
use shoal_orchestrator::Change;
use shoal_types::service::{FailureAction, UpdateConfig, UpdateOrder, UpdateState};
use shoal_types::{Availability, Id, NodeState, RestartCondition, ServiceMode, TaskState};

use crate::common::*;

#[derive(Debug, Clone)]
enum Fault {
    Advance(u64),
    Fail(usize),
    Complete(usize),
    Reject(usize),
    NodeDown(usize),
    NodeUp(usize),
    Availability(usize, Availability),
    Scale(u64),
    NewImage,
    Quiet,
}

fn availability() -> impl Strategy<Value = Availability> {
    prop_oneof![
        Just(Availability::Active),
        Just(Availability::Pause),
        Just(Availability::Drain)
    ]
}

fn condition() -> impl Strategy<Value = RestartCondition> {
    prop_oneof![
        Just(RestartCondition::None),
        Just(RestartCondition::OnFailure),
        Just(RestartCondition::Any)
    ]
}

fn faults(max: usize) -> impl Strategy<Value = Vec<Fault>> {
    proptest::collection::vec(fault(), 1..max)
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => (0u64..15).prop_map(Fault::Advance),
        3 => any::<usize>().prop_map(Fault::Fail),
        1 => any::<usize>().prop_map(Fault::Complete),
        1 => any::<usize>().prop_map(Fault::Reject),
        1 => any::<usize>().prop_map(Fault::NodeDown),
        1 => any::<usize>().prop_map(Fault::NodeUp),
        1 => (any::<usize>(), availability()).prop_map(|(n, a)| Fault::Availability(n, a)),
        1 => (0u64..6).prop_map(Fault::Scale),
        2 => Just(Fault::NewImage),
        2 => Just(Fault::Quiet),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    nodes: usize,
    replicas: u64,
    update: UpdateConfig,
    restart_delay: u64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        1usize..5,
        1u64..5,
        0u64..3,
        prop_oneof![Just(UpdateOrder::StopFirst), Just(UpdateOrder::StartFirst)],
        prop_oneof![
            Just(FailureAction::Pause),
            Just(FailureAction::Continue),
            Just(FailureAction::Rollback)
        ],
        0u64..8,
        0u64..8,
        0u64..6,
    )
        .prop_map(
            |(
                nodes,
                replicas,
                parallelism,
                order,
                failure_action,
                delay,
                monitor,
                restart_delay,
            )| Setup {
                nodes,
                replicas,
                update: UpdateConfig {
                    parallelism,
                    delay: secs(delay),
                    failure_action,
                    monitor: Some(secs(monitor)),
                    max_failure_ratio: 0.0,
                    order,
                },
                restart_delay,
            },
        )
}

fn world(setup: &Setup, mode: ServiceMode) -> World {
    let names: Vec<String> = (0..setup.nodes).map(|i| format!("n{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut w = World::new(service(mode), &refs);
    w.set_update_config(setup.update.clone());
    w.restart_policy(RestartCondition::Any, setup.restart_delay, 0, 0);
    w.cluster.task_history_limit = 3;
    w
}

/// Picks the `i`-th (modulo) task in `state`, in ID order.
fn pick(w: &World, i: usize, pred: impl Fn(TaskState) -> bool) -> Option<Id> {
    let mut ids: Vec<Id> = w
        .tasks
        .iter()
        .filter(|t| pred(t.status.state))
        .map(|t| t.id.clone())
        .collect();
    ids.sort();
    (!ids.is_empty()).then(|| ids[i % ids.len()].clone())
}

fn apply_fault(w: &mut World, f: &Fault, images: &mut u32) {
    let n = w.nodes.len();
    match *f {
        Fault::Advance(s) => w.advance(secs(s)),
        Fault::Fail(i) => {
            if let Some(id) = pick(w, i, |s| s == TaskState::Running) {
                w.set_state(&id, TaskState::Failed);
            }
        }
        Fault::Complete(i) => {
            if let Some(id) = pick(w, i, |s| s == TaskState::Running) {
                w.set_state(&id, TaskState::Complete);
            }
        }
        Fault::Reject(i) => {
            if let Some(id) = pick(w, i, |s| s == TaskState::Assigned) {
                w.set_state(&id, TaskState::Rejected);
            }
        }
        Fault::NodeDown(i) => w.nodes[i % n].status.state = NodeState::Down,
        Fault::NodeUp(i) => w.nodes[i % n].status.state = NodeState::Ready,
        Fault::Availability(i, a) => w.nodes[i % n].spec.availability = a,
        Fault::Scale(r) => {
            if let ServiceMode::Replicated { .. } = w.service.spec.mode {
                w.service.spec.mode = ServiceMode::Replicated { replicas: r };
            }
        }
        Fault::NewImage => {
            *images += 1;
            let image = format!("img:{images}");
            w.update_spec(|s| s.task.container.image = image);
        }
        Fault::Quiet => {}
    }
}

/// Observed and desired state of every task, to check that neither ever moves back.
type Snapshot = BTreeMap<Id, (TaskState, TaskState)>;

fn snapshot(w: &World) -> Snapshot {
    w.tasks
        .iter()
        .map(|t| (t.id.clone(), (t.status.state, t.desired_state)))
        .collect()
}

fn check_monotonic(before: &Snapshot, w: &World) -> Result<(), TestCaseError> {
    for t in &w.tasks {
        if let Some(&(state, desired)) = before.get(&t.id) {
            prop_assert!(
                t.status.state >= state,
                "state of {} went back: {:?} -> {:?}",
                t.id,
                state,
                t.status.state
            );
            prop_assert!(t.desired_state >= desired, "desired of {} went back", t.id);
        }
    }
    Ok(())
}

fn node_unfit(w: &World, t: &shoal_types::Task) -> bool {
    t.node_id.as_ref().is_some_and(|id| {
        w.nodes.iter().find(|n| &n.id == id).is_none_or(|n| {
            n.status.state == NodeState::Down || n.spec.availability == Availability::Drain
        })
    })
}

fn on_drained(w: &World, t: &shoal_types::Task) -> bool {
    t.node_id.as_ref().is_some_and(|id| {
        w.nodes.iter().any(|n| {
            &n.id == id
                && n.status.state != NodeState::Down
                && n.spec.availability == Availability::Drain
        })
    })
}

/// What must hold right after the reconciler's changes are applied. A replicated service's
/// running task may stay on a drained node while its slot waits to be moved (bounded by the
/// update parallelism); nothing else stays on a drained or down node.
fn check_safety(w: &World) -> Result<(), TestCaseError> {
    let gentle = matches!(w.service.spec.mode, ServiceMode::Replicated { .. });
    for t in w.live() {
        let moving = gentle && on_drained(w, t) && t.status.state == TaskState::Running;
        prop_assert!(
            moving || !node_unfit(w, t),
            "live task {} on a down or drained node",
            t.id
        );
    }
    if let ServiceMode::Replicated { replicas } = w.service.spec.mode {
        let mut by_slot: BTreeMap<u64, Vec<&shoal_types::Task>> = BTreeMap::new();
        for t in w.live() {
            by_slot.entry(t.slot).or_default().push(t);
        }
        for (slot, live) in by_slot {
            prop_assert!(
                slot >= 1 && slot <= replicas,
                "live task in slot {slot} of {replicas}"
            );
            match live.as_slice() {
                [_] => {}
                // Start-first (an update, or a move off a drained node): the new task, not yet
                // running, next to the running old one.
                [a, b] => {
                    let target = &w.service.spec.task;
                    let transition = |new: &shoal_types::Task, old: &shoal_types::Task| {
                        new.spec == *target
                            && new.status.state != TaskState::Running
                            && (old.spec != *target
                                || (old.status.state == TaskState::Running && on_drained(w, old)))
                    };
                    prop_assert!(
                        transition(a, b) || transition(b, a),
                        "two live tasks in slot {slot}: {live:#?}"
                    );
                }
                _ => prop_assert!(false, "{} live tasks in slot {slot}", live.len()),
            }
        }
    }
    Ok(())
}

/// One round: reconcile, reap, schedule, run. Returns whether anything moved, and the requeue.
fn round(w: &mut World) -> Result<(bool, Option<shoal_types::Timestamp>), TestCaseError> {
    let before = snapshot(w);
    let mut r = w.step();
    // An automatic rollback swaps the spec (replicas too): the next call acts on it.
    while r
        .changes
        .iter()
        .any(|c| matches!(c, Change::RollbackService { .. }))
    {
        r = w.step();
    }
    check_safety(w)?;
    let reaped = w.reap();
    w.apply(&reaped);
    let scheduled = w.schedule();
    let ran = w.agents();
    check_monotonic(&before, w)?;
    Ok((
        !r.changes.is_empty() || !reaped.is_empty() || scheduled || ran,
        r.requeue_at,
    ))
}

fn converge(w: &mut World) -> Result<(), TestCaseError> {
    for _ in 0..400 {
        let (moved, requeue) = round(w)?;
        if moved {
            continue;
        }
        match requeue {
            Some(at) => w.now = w.now.max(at),
            None => {
                // Settled: every move off a drained node is done.
                for t in w.live() {
                    prop_assert!(
                        !node_unfit(w, t),
                        "live task {} left on a down or drained node",
                        t.id
                    );
                }
                return Ok(());
            }
        }
    }
    prop_assert!(false, "no fixed point; tasks: {:#?}", w.tasks);
    Ok(())
}

/// Faults stop: the first node is healthy again (so every task can be placed); the others stay
/// as the faults left them.
fn heal_one(w: &mut World) {
    if let Some(n) = w.nodes.first_mut() {
        n.status.state = NodeState::Ready;
        n.spec.availability = Availability::Active;
    }
}

fn check_update_settled(w: &World, action: FailureAction) -> Result<(), TestCaseError> {
    let state = w.update_state();
    prop_assert!(
        !matches!(
            state,
            Some(UpdateState::Updating | UpdateState::RollbackStarted)
        ),
        "update still in progress at the fixed point: {:?}",
        w.service.update_status
    );
    let finished = matches!(
        state,
        None | Some(UpdateState::Completed | UpdateState::RollbackCompleted)
    );
    if finished && action != FailureAction::Continue {
        // A global service does not update paused nodes (as Swarm).
        let global = w.service.spec.mode == ServiceMode::Global;
        let paused = |t: &&shoal_types::Task| {
            global
                && w.nodes.iter().any(|n| {
                    Some(&n.id) == t.node_id.as_ref() && n.spec.availability == Availability::Pause
                })
        };
        for t in w.live().iter().filter(|t| !paused(t)) {
            prop_assert!(
                t.spec == w.service.spec.task,
                "finished update left {} out of date",
                t.id
            );
        }
    }
    Ok(())
}

/// Each fault in turn with a round after it; then one node heals and the world converges.
fn weather(w: &mut World, faults: &[Fault]) -> Result<(), TestCaseError> {
    let mut images = 1;
    for f in faults {
        apply_fault(w, f, &mut images);
        round(w)?;
    }
    heal_one(w);
    converge(w)
}

fn replicated_case(setup: &Setup, faults: &[Fault]) -> Result<World, TestCaseError> {
    let mut w = world(
        setup,
        ServiceMode::Replicated {
            replicas: setup.replicas,
        },
    );
    weather(&mut w, faults)?;

    let ServiceMode::Replicated { replicas } = w.service.spec.mode else {
        unreachable!()
    };
    for slot in 1..=replicas {
        let live = w.live_in_slot(slot);
        prop_assert_eq!(
            live.len(),
            1,
            "slot {} holds {} live tasks",
            slot,
            live.len()
        );
        prop_assert_eq!(live[0].status.state, TaskState::Running);
    }
    prop_assert_eq!(w.live().len() as u64, replicas);
    check_update_settled(&w, setup.update.failure_action)?;
    Ok(w)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn replicated_converges_safely(setup in setup(), faults in faults(50)) {
        replicated_case(&setup, &faults)?;
    }

    #[test]
    fn same_inputs_give_the_same_changes(setup in setup(), faults in faults(30)) {
        let a = replicated_case(&setup, &faults)?;
        let b = replicated_case(&setup, &faults)?;
        prop_assert_eq!(a.log, b.log);
        prop_assert_eq!(a.tasks, b.tasks);
    }

    #[test]
    fn replicated_with_any_restart_policy_stays_safe(
        setup in setup(),
        condition in condition(),
        max_attempts in 0u64..3,
        window in 0u64..30,
        faults in faults(50),
    ) {
        let mut w = world(&setup, ServiceMode::Replicated { replicas: setup.replicas });
        w.restart_policy(condition, setup.restart_delay, max_attempts, window);
        weather(&mut w, &faults)?;
        // Slots may have given up; none holds more than one task, and all that live run.
        let ServiceMode::Replicated { replicas } = w.service.spec.mode else { unreachable!() };
        for slot in 1..=replicas {
            prop_assert!(w.live_in_slot(slot).len() <= 1);
        }
        for t in w.live() {
            prop_assert!(t.status.state == TaskState::Running && (1..=replicas).contains(&t.slot));
        }
        let state = w.update_state();
        prop_assert!(!matches!(state, Some(UpdateState::Updating | UpdateState::RollbackStarted)));
        if condition == RestartCondition::Any && max_attempts == 0 {
            prop_assert_eq!(w.live().len() as u64, replicas);
        }
    }

    #[test]
    fn global_converges_safely(setup in setup(), faults in faults(50)) {
        let mut w = world(&setup, ServiceMode::Global);
        weather(&mut w, &faults)?;

        for n in &w.nodes {
            let live = w.live_on(n.id.as_str()).len();
            let down = n.status.state == NodeState::Down;
            match n.spec.availability {
                Availability::Active if !down => prop_assert_eq!(live, 1, "node {}", n.id),
                Availability::Pause if !down => prop_assert!(live <= 1, "node {}", n.id),
                _ => prop_assert_eq!(live, 0, "node {}", n.id),
            }
        }
        prop_assert!(w.live().iter().all(|t| t.node_id.is_some() && t.slot == 0));
        check_update_settled(&w, setup.update.failure_action)?;
    }

    #[test]
    fn replicated_job_completes_within_concurrency(
        nodes in 1usize..4,
        max_concurrent in 1u64..4,
        total in 0u64..7,
        faults in faults(40),
    ) {
        let setup = Setup { nodes, replicas: 0, update: UpdateConfig::default(), restart_delay: 1 };
        let mode = ServiceMode::ReplicatedJob { max_concurrent, total_completions: total };
        let mut w = world(&setup, mode);
        w.restart_policy(RestartCondition::OnFailure, 1, 0, 0);
        let mut images = 1;
        for f in faults.iter().filter(|f| !matches!(f, Fault::NewImage | Fault::Scale(_))) {
            apply_fault(&mut w, f, &mut images);
            round(&mut w)?;
            let live = w.live().len() as u64;
            prop_assert!(live <= max_concurrent, "{} live, max {}", live, max_concurrent);
        }
        heal_one(&mut w);
        for _ in 0..100 {
            converge(&mut w)?;
            prop_assert!(w.live().len() as u64 <= max_concurrent);
            let running: Vec<Id> = w.running().iter().map(|t| t.id.clone()).collect();
            if running.is_empty() {
                break;
            }
            for id in running {
                w.set_state(&id, TaskState::Complete);
            }
        }
        let complete = w.tasks.iter().filter(|t| t.status.state == TaskState::Complete);
        let mut done: Vec<u64> = complete.map(|t| t.slot).collect();
        done.sort();
        // A task on a lost node may still finish after its replacement did (at-least-once), so
        // a slot can hold more than one completion; every slot must hold one.
        done.dedup();
        prop_assert_eq!(done, (1..=total).collect::<Vec<_>>(), "every slot completed");
        prop_assert!(w.live().is_empty());
    }
}

/// Found by the simulation: a start-first replacement lost with its node (not a failure) must
/// not count as the slot's one attempt, or the update completes leaving the slot out of date.
#[test]
fn regression_lost_start_first_task_is_retried() {
    let setup = Setup {
        nodes: 2,
        replicas: 2,
        update: UpdateConfig {
            parallelism: 1,
            delay: secs(1),
            failure_action: FailureAction::Rollback,
            monitor: Some(secs(0)),
            max_failure_ratio: 0.0,
            order: UpdateOrder::StartFirst,
        },
        restart_delay: 0,
    };
    let faults = [
        Fault::Advance(0),
        Fault::NewImage,
        Fault::Advance(1),
        Fault::NodeDown(0),
    ];
    let w = replicated_case(&setup, &faults).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.update_state(), Some(UpdateState::Completed));
}
