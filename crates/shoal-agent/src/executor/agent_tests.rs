//! The agent against a channel-based double of the dispatcher and the in-memory fake driver.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use shoal_types::clock::FakeClock;
use shoal_types::dispatch::TaskStatusReport;
use shoal_types::{ContainerSpec, Task, TaskState, TaskStatus, Timestamp};
use tokio::sync::mpsc;

use super::*;
use shoal_runtime::Health;
use shoal_runtime::fake::{FakeCall, FakeDriver};

type SessionScript = Result<mpsc::UnboundedReceiver<Assignments>, DispatchError>;

/// The manager side, reduced to channels: each `session` call takes the next scripted result;
/// reports are recorded; the first `fail_reports` report calls fail.
#[derive(Default)]
struct TestDispatcher {
    sessions: Mutex<VecDeque<SessionScript>>,
    reports: Mutex<Vec<TaskStatusReport>>,
    fail_reports: AtomicUsize,
    failed_reports: AtomicUsize,
    heartbeats: AtomicUsize,
}

impl TestDispatcher {
    fn with_session() -> (Arc<Self>, mpsc::UnboundedSender<Assignments>) {
        let d = Arc::new(TestDispatcher::default());
        let tx = d.add_session();
        (d, tx)
    }

    fn add_session(&self) -> mpsc::UnboundedSender<Assignments> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.sessions.lock().expect("lock").push_back(Ok(rx));
        tx
    }

    fn reports(&self) -> Vec<TaskStatusReport> {
        self.reports.lock().expect("lock").clone()
    }

    fn states(&self, id: &Id) -> Vec<TaskState> {
        self.reports()
            .into_iter()
            .filter(|r| &r.task_id == id)
            .map(|r| r.status.state)
            .collect()
    }

    fn last(&self, id: &Id) -> Option<TaskStatus> {
        self.reports()
            .into_iter()
            .filter(|r| &r.task_id == id)
            .map(|r| r.status)
            .next_back()
    }
}

#[async_trait]
impl DispatcherClient for TestDispatcher {
    async fn session(&self, _req: SessionRequest) -> Result<Session, DispatchError> {
        let next = self.sessions.lock().expect("lock").pop_front();
        match next {
            Some(Ok(rx)) => Ok(Session {
                node_id: Id::from_raw("node-1"),
                assignments: tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed(),
            }),
            Some(Err(e)) => Err(e),
            None => Err(DispatchError::Unavailable(
                "no more sessions scripted".into(),
            )),
        }
    }

    async fn report(
        &self,
        _node_id: &Id,
        reports: Vec<TaskStatusReport>,
    ) -> Result<(), DispatchError> {
        if self.fail_reports.load(Ordering::SeqCst) > self.failed_reports.load(Ordering::SeqCst) {
            self.failed_reports.fetch_add(1, Ordering::SeqCst);
            return Err(DispatchError::Unavailable("store busy".into()));
        }
        self.reports.lock().expect("lock").extend(reports);
        Ok(())
    }

    async fn heartbeat(&self, _node_id: &Id) -> Result<Duration, DispatchError> {
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        Ok(Duration::from_millis(20))
    }
}

struct Harness {
    agent: Arc<Agent>,
    driver: Arc<FakeDriver>,
    dispatcher: Arc<TestDispatcher>,
    assign: mpsc::UnboundedSender<Assignments>,
    shutdown: watch::Sender<bool>,
    run: JoinHandle<Result<(), AgentError>>,
    _dir: tempfile::TempDir,
}

fn harness_with(
    driver: Arc<FakeDriver>,
    dispatcher: Arc<TestDispatcher>,
    assign: mpsc::UnboundedSender<Assignments>,
    stop_tasks: bool,
) -> Harness {
    let node = describe_node("test", &["native"]);
    harness_on(node, driver, dispatcher, assign, stop_tasks)
}

fn harness_on(
    node: NodeDescription,
    driver: Arc<FakeDriver>,
    dispatcher: Arc<TestDispatcher>,
    assign: mpsc::UnboundedSender<Assignments>,
    stop_tasks: bool,
) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = AgentConfig::new(dir.path().join("agent"), node);
    cfg.report_interval = Duration::from_millis(5);
    let clock = Arc::new(FakeClock::new(Timestamp(1_000_000)));
    let agent = Agent::new(cfg, driver.clone(), dispatcher.clone(), clock);
    let (shutdown, rx) = watch::channel(false);
    let run = tokio::spawn(agent.clone().run(rx, stop_tasks));
    Harness {
        agent,
        driver,
        dispatcher,
        assign,
        shutdown,
        run,
        _dir: dir,
    }
}

fn harness(stop_tasks: bool) -> Harness {
    let (d, tx) = TestDispatcher::with_session();
    harness_with(Arc::new(FakeDriver::new()), d, tx, stop_tasks)
}

fn task(id: &str, state: TaskState, desired: TaskState) -> Task {
    Task {
        id: Id::from_raw(id),
        service_id: Id::from_raw("svc"),
        service_name: "web".into(),
        slot: 1,
        node_id: Some(Id::from_raw("node-1")),
        spec: shoal_types::TaskSpec {
            container: ContainerSpec {
                image: "host".into(),
                command: vec!["sleep".into(), "100".into()],
                ..Default::default()
            },
            ..Default::default()
        },
        desired_state: desired,
        status: TaskStatus {
            state,
            timestamp: Timestamp(1),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A task just assigned to this node, to run.
fn fresh(id: &str) -> Task {
    task(id, TaskState::Assigned, TaskState::Running)
}

fn assign(h: &Harness, version: u64, tasks: Vec<Task>) {
    h.assign
        .send(Assignments::complete(version, tasks))
        .expect("agent listens");
}

/// Polls `cond` every 10 ms for up to 10 s; on timeout fails with what was last observed.
async fn eventually(what: &str, h: &Harness, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "timed out waiting for {what}; reports: {:#?}; calls: {:?}",
        h.dispatcher.reports(),
        h.driver.calls()
    );
}

/// Waits until the agent has reported `state` for task `id`.
async fn reported(h: &Harness, id: &Id, state: TaskState) {
    eventually(&format!("{id} reported {state:?}"), h, || {
        h.dispatcher.states(id).contains(&state)
    })
    .await;
}

fn assert_forward_only(h: &Harness) {
    let mut by_task: BTreeMap<Id, Vec<TaskState>> = BTreeMap::new();
    for r in h.dispatcher.reports() {
        by_task.entry(r.task_id).or_default().push(r.status.state);
    }
    for (id, states) in by_task {
        assert!(
            states.windows(2).all(|w| w[0] < w[1]),
            "task {id} reported {states:?}"
        );
    }
}

async fn finish(h: Harness) -> Result<(), AgentError> {
    let _ = h.shutdown.send(true);
    tokio::time::timeout(Duration::from_secs(20), h.run)
        .await
        .expect("agent stops")
        .expect("agent task")
}

#[tokio::test]
async fn assignments_start_tasks_and_the_exit_is_reported_once() {
    let h = harness(false);
    let a = Id::from_raw("task-a");
    assign(&h, 1, vec![fresh("task-a")]);
    reported(&h, &a, TaskState::Running).await;
    let running = h.dispatcher.last(&a).expect("report");
    assert_eq!(
        running
            .runtime
            .as_ref()
            .map(|r| (r.container_id.as_str(), r.pid)),
        Some(("task-a", 100))
    );
    assert_eq!(
        running.timestamp,
        Timestamp(1_000_000),
        "timestamps come from the clock"
    );
    assert_eq!(h.driver.starts(&a), 1);
    assert!(h.dispatcher.heartbeats.load(Ordering::SeqCst) >= 1);

    h.driver.exit(&a, 0);
    reported(&h, &a, TaskState::Complete).await;
    // The manager echoes the new status back in the next assignments: nothing is re-reported.
    let mut echoed = task("task-a", TaskState::Complete, TaskState::Running);
    echoed.status = h.dispatcher.last(&a).expect("report");
    assign(&h, 2, vec![echoed]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.dispatcher
            .states(&a)
            .iter()
            .filter(|s| **s == TaskState::Complete)
            .count(),
        1
    );
    assert_eq!(h.driver.starts(&a), 1);
    assert_forward_only(&h);
    assert_eq!(h.agent.node_id(), Some(Id::from_raw("node-1")));
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn non_zero_exit_fails_and_errors_reject_or_fail() {
    let h = harness(false);
    let (a, b, c) = (Id::from_raw("a"), Id::from_raw("b"), Id::from_raw("c"));
    let mut missing = fresh("b");
    missing.spec.container.image = "missing:latest".into();
    let mut bad_cmd = fresh("c");
    bad_cmd.spec.container.command = vec!["fail-start".into()];
    assign(&h, 1, vec![fresh("a"), missing, bad_cmd]);
    reported(&h, &a, TaskState::Running).await;
    h.driver.exit(&a, 3);
    eventually("all terminal", &h, || {
        [&a, &b, &c]
            .iter()
            .all(|id| h.dispatcher.last(id).is_some_and(|s| s.state.is_terminal()))
    })
    .await;
    let (sa, sb, sc) = (
        h.dispatcher.last(&a),
        h.dispatcher.last(&b),
        h.dispatcher.last(&c),
    );
    assert_eq!(
        sa.map(|s| (s.state, s.err)),
        Some((TaskState::Failed, "task: non-zero exit (3)".into()))
    );
    assert_eq!(
        sb.map(|s| (s.state, s.err)),
        Some((TaskState::Rejected, "No such image: missing:latest".into()))
    );
    let sc = sc.expect("c reported");
    assert_eq!(sc.state, TaskState::Failed);
    assert!(sc.err.contains("fail-start"), "{}", sc.err);
    assert_forward_only(&h);
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn desired_shutdown_stops_with_the_specs_grace() {
    let h = harness(false);
    let a = Id::from_raw("a");
    let mut t = fresh("a");
    t.spec.container.stop_grace_period = Some(Duration::from_secs(3));
    assign(&h, 1, vec![t.clone()]);
    reported(&h, &a, TaskState::Running).await;
    t.desired_state = TaskState::Shutdown;
    assign(&h, 2, vec![t]);
    reported(&h, &a, TaskState::Shutdown).await;
    assert!(
        h.driver
            .calls()
            .contains(&FakeCall::Stop(a.clone(), Duration::from_secs(3)))
    );
    assert_eq!(
        h.dispatcher
            .last(&a)
            .and_then(|s| s.runtime)
            .and_then(|r| r.exit_code),
        Some(143)
    );
    assert_forward_only(&h);
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn agent_shutdown_stops_every_task_and_reports_it() {
    let h = harness(true);
    let (a, b) = (Id::from_raw("a"), Id::from_raw("b"));
    assign(&h, 1, vec![fresh("a"), fresh("b")]);
    eventually("both running", &h, || {
        [&a, &b]
            .iter()
            .all(|id| h.dispatcher.states(id).contains(&TaskState::Running))
    })
    .await;
    let (driver, dispatcher) = (h.driver.clone(), h.dispatcher.clone());
    finish(h).await.expect("clean stop");
    for id in [&a, &b] {
        assert_eq!(
            dispatcher.last(id).map(|s| s.state),
            Some(TaskState::Shutdown),
            "{id}"
        );
        assert!(matches!(
            driver.state(id),
            Some(RuntimeTaskState::Exited(_))
        ));
    }
}

#[tokio::test]
async fn agent_shutdown_without_stop_leaves_tasks_running() {
    let h = harness(false);
    let a = Id::from_raw("a");
    assign(&h, 1, vec![fresh("a")]);
    reported(&h, &a, TaskState::Running).await;
    let driver = h.driver.clone();
    finish(h).await.expect("clean stop");
    assert!(matches!(
        driver.state(&a),
        Some(RuntimeTaskState::Running { .. })
    ));
}

#[tokio::test]
async fn adopts_running_tasks_and_removes_strays() {
    let driver = Arc::new(FakeDriver::new());
    let (a, stray) = (Id::from_raw("a"), Id::from_raw("stray"));
    // A standalone container (`docker run` on this node) is the engine's, never a stray.
    let standalone = Id::from_raw("0123456789abcdef".repeat(4));
    driver.preload(&a, RuntimeTaskState::Running { pid: 7 });
    driver.preload(&stray, RuntimeTaskState::Running { pid: 8 });
    driver.preload(&standalone, RuntimeTaskState::Running { pid: 9 });
    let (d, tx) = TestDispatcher::with_session();
    let h = harness_with(driver, d, tx, false);
    // The store already has the task running (reported by the agent before it crashed).
    assign(
        &h,
        5,
        vec![task("a", TaskState::Running, TaskState::Running)],
    );
    eventually("stray removed", &h, || {
        h.driver.calls().contains(&FakeCall::Remove(stray.clone()))
    })
    .await;
    assert!(
        h.driver
            .calls()
            .contains(&FakeCall::Stop(stray.clone(), DEFAULT_STOP_GRACE))
    );
    assert_eq!(h.driver.state(&stray), None);
    assert_eq!(
        h.driver.state(&standalone),
        Some(RuntimeTaskState::Running { pid: 9 }),
        "the standalone container is left alone"
    );
    assert!(
        !h.driver.calls().iter().any(
            |c| matches!(c, FakeCall::Stop(id, _) | FakeCall::Remove(id) if *id == standalone)
        )
    );
    assert_eq!(h.driver.starts(&a), 0, "adopted, not started again");
    assert!(h.dispatcher.states(&a).is_empty(), "nothing new to say yet");
    h.driver.exit(&a, 0);
    eventually("complete", &h, || {
        h.dispatcher.states(&a) == vec![TaskState::Complete]
    })
    .await;
    assert_eq!(h.driver.starts(&a), 0);
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn a_task_leaving_the_assignments_is_stopped_and_removed() {
    let h = harness(false);
    let a = Id::from_raw("a");
    assign(&h, 1, vec![fresh("a")]);
    reported(&h, &a, TaskState::Running).await;
    assign(&h, 2, vec![]);
    eventually("removed", &h, || {
        h.driver.calls().contains(&FakeCall::Remove(a.clone()))
    })
    .await;
    assert!(
        h.driver
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::Stop(id, _) if id == &a))
    );
    assert_eq!(h.driver.state(&a), None);
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn changes_after_the_complete_set_touch_only_the_tasks_they_name() {
    // After the first complete set, the dispatcher sends only what changed: a task it does not
    // name keeps running, a removed one stops, a new one starts.
    let h = harness(false);
    let (a, b, c) = (Id::from_raw("a"), Id::from_raw("b"), Id::from_raw("c"));
    assign(
        &h,
        1,
        vec![
            task("a", TaskState::Assigned, TaskState::Running),
            task("b", TaskState::Assigned, TaskState::Running),
        ],
    );
    eventually("both running", &h, || {
        h.dispatcher.states(&a).contains(&TaskState::Running)
            && h.dispatcher.states(&b).contains(&TaskState::Running)
    })
    .await;
    h.assign
        .send(Assignments::changes(
            2,
            vec![task("c", TaskState::Assigned, TaskState::Running)],
            vec![a.clone()],
        ))
        .expect("agent listens");
    eventually("a removed, c running", &h, || {
        h.driver.calls().contains(&FakeCall::Remove(a.clone()))
            && h.dispatcher.states(&c).contains(&TaskState::Running)
    })
    .await;
    assert!(
        !h.driver
            .calls()
            .iter()
            .any(|call| matches!(call, FakeCall::Stop(id, _) | FakeCall::Remove(id) if id == &b)),
        "b was not named by the change and must keep running: {:?}",
        h.driver.calls()
    );
    assert!(matches!(
        h.driver.state(&b),
        Some(shoal_runtime::RuntimeTaskState::Running { .. })
    ));
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn failed_reports_are_retried_without_duplicates() {
    let (d, tx) = TestDispatcher::with_session();
    d.fail_reports.store(3, Ordering::SeqCst);
    let h = harness_with(Arc::new(FakeDriver::new()), d, tx, false);
    let a = Id::from_raw("a");
    assign(&h, 1, vec![fresh("a")]);
    reported(&h, &a, TaskState::Running).await;
    assert_eq!(h.dispatcher.failed_reports.load(Ordering::SeqCst), 3);
    h.driver.exit(&a, 0);
    reported(&h, &a, TaskState::Complete).await;
    assert_forward_only(&h);
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn reconnects_after_an_unavailable_dispatcher_and_a_lost_session() {
    let d = Arc::new(TestDispatcher::default());
    d.sessions
        .lock()
        .expect("lock")
        .push_back(Err(DispatchError::Unavailable("no leader".into())));
    let first = d.add_session();
    let second = d.add_session();
    let mut h = harness_with(Arc::new(FakeDriver::new()), d, first, false);
    let a = Id::from_raw("a");
    assign(&h, 1, vec![fresh("a")]);
    reported(&h, &a, TaskState::Running).await;
    // The first session's stream ends; the next session's complete set still has the task.
    drop(std::mem::replace(&mut h.assign, second));
    let mut t = task("a", TaskState::Running, TaskState::Running);
    t.status = h.dispatcher.last(&a).expect("status");
    assign(&h, 2, vec![t]);
    h.driver.exit(&a, 0);
    reported(&h, &a, TaskState::Complete).await;
    assert_eq!(h.driver.starts(&a), 1);
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn an_unknown_node_ends_the_agent_with_an_error() {
    let d = Arc::new(TestDispatcher::default());
    d.sessions
        .lock()
        .expect("lock")
        .push_back(Err(DispatchError::UnknownNode(Id::from_raw("gone"))));
    let (tx, _rx) = mpsc::unbounded_channel();
    let h = harness_with(Arc::new(FakeDriver::new()), d, tx, false);
    let r = tokio::time::timeout(Duration::from_secs(10), h.run)
        .await
        .expect("ends")
        .expect("task");
    assert!(matches!(r, Err(AgentError::UnknownNode(id)) if id.as_str() == "gone"));
}

#[tokio::test]
async fn the_node_id_survives_a_restart() {
    let h = harness(false);
    eventually("session", &h, || h.agent.node_id().is_some()).await;
    let state_dir = h.agent.cfg.state_dir.clone();
    let agent2 = Agent::new(
        AgentConfig::new(state_dir, NodeDescription::default()),
        Arc::new(FakeDriver::new()),
        h.dispatcher.clone(),
        Arc::new(FakeClock::default()),
    );
    assert_eq!(agent2.node_id(), Some(Id::from_raw("node-1")));
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn a_task_the_store_considers_ended_is_stopped_silently() {
    let driver = Arc::new(FakeDriver::new());
    let a = Id::from_raw("a");
    driver.preload(&a, RuntimeTaskState::Running { pid: 7 });
    let (d, tx) = TestDispatcher::with_session();
    let h = harness_with(driver, d, tx, false);
    // Marked orphaned while the node was away; a replacement runs elsewhere.
    assign(
        &h,
        3,
        vec![task("a", TaskState::Orphaned, TaskState::Shutdown)],
    );
    eventually("stopped", &h, || {
        matches!(h.driver.state(&a), Some(RuntimeTaskState::Exited(_)))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        h.dispatcher.states(&a).is_empty(),
        "a terminal state is never reported again"
    );
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn templates_are_expanded_on_the_node_and_bad_ones_reject_the_task() {
    let (d, tx) = TestDispatcher::with_session();
    let mut node = describe_node("test", &["native"]);
    node.hostname = "worker-7".into();
    node.platform.os = "linux".into();
    let h = harness_on(node, Arc::new(FakeDriver::new()), d, tx, false);
    let (good, bad) = (Id::from_raw("tpl-good"), Id::from_raw("tpl-bad"));
    let mut t = fresh("tpl-good");
    t.slot = 4;
    t.service_labels = [("tier".to_string(), "db".to_string())].into();
    t.spec.container.hostname = "{{.Service.Name}}-{{.Task.Slot}}".into();
    t.spec.container.env = vec![
        "NODE={{.Node.Hostname}}".into(),
        "WHO={{.Task.Name}}@{{.Node.Platform.OS}}/{{.Service.Labels.tier}}".into(),
    ];
    // Made before tasks carried labels: the label is unknown on the node.
    let mut b = fresh("tpl-bad");
    b.spec.container.env = vec!["T={{.Service.Labels.tier}}".into()];
    assign(&h, 1, vec![t.clone(), b]);
    eventually("both settled", &h, || {
        h.dispatcher.states(&good).contains(&TaskState::Running)
            && h.dispatcher
                .last(&bad)
                .is_some_and(|s| s.state.is_terminal())
    })
    .await;

    let run = h.driver.run(&good).expect("prepared");
    assert_eq!(run.hostname, "web-4");
    assert_eq!(run.container.hostname, "web-4");
    assert_eq!(
        run.container.env,
        vec![
            "NODE=worker-7".to_string(),
            "WHO=web.4.tpl-good@linux/db".into()
        ]
    );
    // The assignment (what the store holds) keeps the templates for up-to-date checks.
    assert_eq!(
        t.spec.container.hostname,
        "{{.Service.Name}}-{{.Task.Slot}}"
    );

    let rejected = h.dispatcher.last(&bad).expect("reported");
    assert_eq!(rejected.state, TaskState::Rejected);
    assert_eq!(
        rejected.err,
        "expanding the task's templates: template: Env[0]:1:20: the service has no label \"tier\" \
         (for a label that may be absent write {{index .Service.Labels \"tier\"}})"
    );
    assert!(h.driver.run(&bad).is_none(), "never handed to the driver");
    assert!(!h.driver.calls().contains(&FakeCall::Prepare(bad.clone())));
    finish(h).await.expect("clean stop");
}

#[tokio::test]
async fn a_checked_task_is_starting_until_healthy_and_replaced_when_unhealthy() {
    let h = harness(false);
    let a = Id::from_raw("checked");
    let mut t = fresh("checked");
    t.spec.container.healthcheck = Some(shoal_types::container::HealthConfig {
        test: vec!["CMD".into(), "probe".into()],
        ..Default::default()
    });
    assign(&h, 1, vec![t]);
    reported(&h, &a, TaskState::Starting).await;
    // Still starting while the check has not passed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!h.dispatcher.states(&a).contains(&TaskState::Running));

    h.driver.set_health(&a, Health::Healthy);
    reported(&h, &a, TaskState::Running).await;
    h.driver
        .set_health(&a, Health::Unhealthy("probe: no answer".into()));
    reported(&h, &a, TaskState::Failed).await;
    let failed = h.dispatcher.last(&a).expect("report");
    assert_eq!(failed.err, "task: unhealthy container: probe: no answer");
    assert!(
        h.driver
            .calls()
            .iter()
            .any(|c| matches!(c, FakeCall::Stop(id, _) if id == &a)),
        "the unhealthy task was stopped: {:?}",
        h.driver.calls()
    );
    assert_forward_only(&h);
    finish(h).await.expect("clean stop");
}
