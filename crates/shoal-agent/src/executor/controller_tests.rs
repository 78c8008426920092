use super::*;
use proptest::prelude::*;

const GRACE: Duration = Duration::from_secs(7);
const NOW: Timestamp = Timestamp(1_000);

fn st(state: TaskState) -> TaskStatus {
    TaskStatus {
        state,
        timestamp: Timestamp(1),
        ..Default::default()
    }
}

fn go(status: &TaskStatus, desired: TaskState, facts: &Facts) -> Step {
    step(status, desired, facts, GRACE, "cid", NOW)
}

fn exit(code: i64) -> ExitInfo {
    ExitInfo {
        code,
        signal: None,
        oom_killed: false,
        finished_at: Timestamp(5),
    }
}

fn reported(s: Step) -> TaskStatus {
    match s {
        Step::Report(st) => st,
        other => panic!("expected a report, got {other:?}"),
    }
}

/// Drives the controller with a scripted runtime until it idles; returns the reported statuses
/// and the runtime calls made.
fn drive(
    mut status: TaskStatus,
    desired: TaskState,
    mut facts: Facts,
    mut runtime: impl FnMut(&Op) -> Facts,
) -> (Vec<TaskStatus>, Vec<Op>) {
    let (mut reports, mut ops) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        match go(&status, desired, &facts) {
            Step::Report(next) => {
                // Exactly one step: each report is strictly after the previous state.
                assert!(
                    next.state > status.state,
                    "{:?} -> {:?}",
                    status.state,
                    next.state
                );
                status = next.clone();
                reports.push(next);
            }
            Step::Run(op) => {
                facts = runtime(&op);
                ops.push(op);
            }
            Step::Idle => return (reports, ops),
        }
    }
    panic!("controller did not settle: {reports:?} {ops:?}");
}

fn states(r: &[TaskStatus]) -> Vec<TaskState> {
    r.iter().map(|s| s.state).collect()
}

#[test]
fn happy_path_walks_every_state_once() {
    let (reports, ops) = drive(
        st(TaskState::Assigned),
        TaskState::Running,
        Facts::Absent,
        |op| match op {
            Op::Prepare => Facts::Created,
            Op::Start => Facts::running(42),
            Op::Wait => Facts::Exited(exit(0)),
            Op::Stop { .. } => panic!("no stop"),
            Op::Kill { .. } => panic!("no kill"),
        },
    );
    use TaskState::*;
    assert_eq!(
        states(&reports),
        vec![Accepted, Preparing, Ready, Starting, Running, Complete]
    );
    assert_eq!(ops, vec![Op::Prepare, Op::Start, Op::Wait]);
    let msgs: Vec<&str> = reports.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        msgs,
        vec![
            "accepted",
            "preparing",
            "prepared",
            "starting",
            "started",
            "finished"
        ]
    );
    assert!(
        reports
            .iter()
            .all(|r| r.timestamp == NOW && r.err.is_empty())
    );
    let running = &reports[4];
    assert_eq!(
        running.runtime,
        Some(RuntimeStatus {
            container_id: "cid".into(),
            pid: 42,
            exit_code: None
        })
    );
    assert_eq!(
        reports[5].runtime.as_ref().and_then(|r| r.exit_code),
        Some(0)
    );
    assert_eq!(
        reports[5].runtime.as_ref().map(|r| r.pid),
        Some(42),
        "pid kept after exit"
    );
    assert_eq!(
        reports[0].runtime, None,
        "no runtime status before the runtime has anything"
    );
}

#[test]
fn non_zero_exit_fails_with_swarms_error() {
    let (reports, _) = drive(
        st(TaskState::Running),
        TaskState::Running,
        Facts::running(1),
        |_| Facts::Exited(exit(3)),
    );
    let last = reports.last().expect("report");
    assert_eq!(last.state, TaskState::Failed);
    assert_eq!(last.err, "task: non-zero exit (3)");
    assert_eq!(last.runtime.as_ref().and_then(|r| r.exit_code), Some(3));

    let oom = ExitInfo {
        code: 137,
        signal: Some(9),
        oom_killed: true,
        finished_at: Timestamp(9),
    };
    let s = reported(go(
        &st(TaskState::Running),
        TaskState::Running,
        &Facts::Exited(oom),
    ));
    assert_eq!(
        (s.state, s.err.as_str()),
        (TaskState::Failed, "task: non-zero exit (137): OOM killed")
    );
}

#[test]
fn errors_before_starting_reject_and_after_fail() {
    let (reports, _) = drive(
        st(TaskState::Assigned),
        TaskState::Running,
        Facts::Absent,
        |op| match op {
            Op::Prepare => Facts::Error("No such image: busybox".into()),
            _ => panic!("nothing after a failed prepare"),
        },
    );
    let last = reports.last().expect("report");
    assert_eq!(
        (last.state, last.err.as_str()),
        (TaskState::Rejected, "No such image: busybox")
    );

    let (reports, _) = drive(
        st(TaskState::Ready),
        TaskState::Running,
        Facts::Created,
        |op| match op {
            Op::Start => Facts::Error("starting the task failed: exec: \"nope\"".into()),
            _ => panic!("unexpected {op:?}"),
        },
    );
    let last = reports.last().expect("report");
    assert_eq!(last.state, TaskState::Failed);
    assert!(last.err.contains("nope"));

    let s = reported(go(
        &st(TaskState::Running),
        TaskState::Running,
        &Facts::Error("wait broke".into()),
    ));
    assert_eq!((s.state, s.err.as_str()), (TaskState::Failed, "wait broke"));
}

#[test]
fn desired_shutdown_at_each_state() {
    use TaskState::*;
    // Before anything runs: straight to shutdown, no runtime call.
    for (state, facts) in [
        (Assigned, Facts::Absent),
        (Accepted, Facts::Absent),
        (Preparing, Facts::Absent),
        (Ready, Facts::Created),
        (Starting, Facts::Created),
    ] {
        let s = reported(go(&st(state), Shutdown, &facts));
        assert_eq!(
            (s.state, s.message.as_str()),
            (Shutdown, "shutdown"),
            "from {state:?}"
        );
    }
    // Running: stop with the spec's grace, then report shutdown with the exit code.
    assert_eq!(
        go(&st(Running), Shutdown, &Facts::running(3)),
        Step::Run(Op::Stop { grace: GRACE })
    );
    let s = reported(go(&st(Running), Shutdown, &Facts::Stopped(Some(exit(143)))));
    assert_eq!(s.state, Shutdown);
    assert_eq!(s.runtime.and_then(|r| r.exit_code), Some(143));
    assert_eq!(
        reported(go(&st(Running), Shutdown, &Facts::Stopped(None))).state,
        Shutdown
    );
    // Already ended on its own: report how it ended, not shutdown.
    assert_eq!(
        reported(go(&st(Running), Shutdown, &Facts::Exited(exit(0)))).state,
        Complete
    );
    assert_eq!(
        reported(go(&st(Running), Shutdown, &Facts::Exited(exit(1)))).state,
        Failed
    );
    // A stop that failed is a failure.
    assert_eq!(
        reported(go(&st(Running), Shutdown, &Facts::Error("stuck".into()))).state,
        Failed
    );
    // Remove is handled like shutdown.
    assert_eq!(
        go(&st(Running), Remove, &Facts::running(3)),
        Step::Run(Op::Stop { grace: GRACE })
    );
    assert_eq!(
        reported(go(&st(Ready), Remove, &Facts::Created)).state,
        Shutdown
    );
}

#[test]
fn terminal_states_are_final() {
    let all_facts = [
        Facts::Absent,
        Facts::Created,
        Facts::running(1),
        Facts::Exited(exit(0)),
        Facts::Stopped(None),
        Facts::Error("x".into()),
    ];
    for state in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
        for desired in TaskState::ALL {
            for f in &all_facts {
                let want = match f {
                    // The store says it ended but the process lives on: stop it, report nothing.
                    Facts::Running { .. } => Step::Run(Op::Stop { grace: GRACE }),
                    _ => Step::Idle,
                };
                assert_eq!(
                    go(&st(state), desired, f),
                    want,
                    "{state:?} {desired:?} {f:?}"
                );
            }
        }
    }
    // After that stop there is nothing more to say.
    assert_eq!(
        go(
            &st(TaskState::Orphaned),
            TaskState::Running,
            &Facts::Stopped(None)
        ),
        Step::Idle
    );
}

#[test]
fn desired_ready_prepares_but_does_not_start() {
    let (reports, ops) = drive(
        st(TaskState::Assigned),
        TaskState::Ready,
        Facts::Absent,
        |_| Facts::Created,
    );
    assert_eq!(states(&reports).last(), Some(&TaskState::Ready));
    assert_eq!(ops, vec![Op::Prepare]);
    // Once desired becomes running it starts.
    assert_eq!(
        reported(go(
            &st(TaskState::Ready),
            TaskState::Running,
            &Facts::Created
        ))
        .state,
        TaskState::Starting
    );
}

#[test]
fn adoption_never_starts_twice() {
    use TaskState::*;
    // The store says running and the runtime has it: just wait.
    assert_eq!(
        go(&st(Running), Running, &Facts::running(9)),
        Step::Run(Op::Wait)
    );
    // Crash after start, before "running" reached the store: report running with the pid.
    let s = reported(go(&st(Starting), Running, &Facts::running(9)));
    assert_eq!((s.state, s.runtime.map(|r| r.pid)), (Running, Some(9)));
    // Further back: walk forward one state per step without any start.
    let (reports, ops) = drive(st(Preparing), Running, Facts::running(9), |op| match op {
        Op::Wait => Facts::Exited(exit(0)),
        other => panic!("adopted task must not get {other:?}"),
    });
    assert_eq!(states(&reports), vec![Ready, Starting, Running, Complete]);
    assert_eq!(ops, vec![Op::Wait]);
    // It exited while the agent was down.
    let (reports, ops) = drive(st(Starting), Running, Facts::Exited(exit(2)), |op| {
        panic!("{op:?}")
    });
    assert_eq!(states(&reports), vec![Running, Failed]);
    assert!(ops.is_empty());
    // Adopted but now unwanted: stopped, whatever the store last heard.
    assert_eq!(
        go(&st(Assigned), Shutdown, &Facts::running(9)),
        Step::Run(Op::Stop { grace: GRACE })
    );
}

#[test]
fn crash_mid_way_recovers_or_fails_cleanly() {
    use TaskState::*;
    // Prepared state lost before start: prepare again (idempotent), then start.
    let (reports, ops) = drive(st(Starting), Running, Facts::Absent, |op| match op {
        Op::Prepare => Facts::Created,
        Op::Start => Facts::running(5),
        Op::Wait => Facts::Exited(exit(0)),
        Op::Stop { .. } => panic!("no stop"),
        Op::Kill { .. } => panic!("no kill"),
    });
    assert_eq!(ops, vec![Op::Prepare, Op::Start, Op::Wait]);
    assert_eq!(states(&reports), vec![Running, Complete]);
    // Running, but the runtime has nothing: failed, never restarted by the agent.
    let s = reported(go(&st(Running), Running, &Facts::Absent));
    assert_eq!(s.state, Failed);
    assert!(s.err.contains("no longer has"), "{}", s.err);
}

fn any_state() -> impl Strategy<Value = TaskState> {
    prop::sample::select(TaskState::ALL.to_vec())
}

fn any_facts() -> impl Strategy<Value = Facts> {
    prop_oneof![
        Just(Facts::Absent),
        Just(Facts::Created),
        (1i64..100).prop_map(Facts::running),
        (0i64..256).prop_map(|c| Facts::Exited(exit(c))),
        Just(Facts::Stopped(None)),
        Just(Facts::Error("boom".into())),
    ]
}

proptest! {
    #[test]
    fn never_moves_backwards(state in any_state(), desired in any_state(), facts in any_facts()) {
        match go(&st(state), desired, &facts) {
            Step::Report(next) => {
                prop_assert!(next.state > state);
                prop_assert!(!state.is_terminal());
                prop_assert_eq!(next.timestamp, NOW);
            }
            Step::Run(Op::Start) => prop_assert!(matches!(facts, Facts::Created) && desired < TaskState::Shutdown),
            Step::Run(_) | Step::Idle => {}
        }
    }
}

fn with_health(pid: i64, health: Health) -> Facts {
    Facts::Running { pid, health }
}

#[test]
fn a_task_with_a_health_check_is_starting_until_healthy() {
    use TaskState::*;
    // Checked but not yet healthy: wait for the check, stay starting.
    assert_eq!(
        go(&st(Starting), Running, &with_health(7, Health::Starting)),
        Step::Run(Op::Wait)
    );
    let s = reported(go(&st(Starting), Running, &with_health(7, Health::Healthy)));
    assert_eq!((s.state, s.message.as_str()), (Running, "started"));
    // Without a check it runs at once, as before.
    let s = reported(go(&st(Starting), Running, &Facts::running(7)));
    assert_eq!(s.state, Running);
}

#[test]
fn an_unhealthy_task_is_stopped_and_failed_with_the_check_output() {
    use TaskState::*;
    for from in [Starting, Running] {
        let step = go(
            &st(from),
            Running,
            &with_health(7, Health::Unhealthy("no /tmp/ok\n".into())),
        );
        let Step::Run(Op::Kill { grace, err }) = step else {
            panic!("expected a kill from {from:?}, got {step:?}");
        };
        assert_eq!(grace, GRACE);
        assert_eq!(err, "task: unhealthy container: no /tmp/ok");
        // What the runner feeds back after the kill: the task failed with that error.
        let s = reported(go(&st(from), Running, &Facts::Error(err.clone())));
        assert_eq!((s.state, s.err.as_str()), (Failed, err.as_str()));
    }
    // A running task whose health turns healthy again keeps waiting.
    assert_eq!(
        go(&st(Running), Running, &with_health(7, Health::Healthy)),
        Step::Run(Op::Wait)
    );
}
