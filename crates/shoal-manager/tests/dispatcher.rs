//! The dispatcher on a real one-member store and a fake clock: sessions record the node,
//! assignments follow the store, reports only speak for the reporting node, silence is noticed.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shoal_manager::{Dispatcher, testing};
use shoal_store::network::Network;
use shoal_store::{Op, Proposal, RaftTiming, Store};
use shoal_types::clock::FakeClock;
use shoal_types::dispatch::{SessionMessage, TaskStatusReport};
use shoal_types::node::{NodeDescription, NodeState, NodeStatus};
use shoal_types::task::{Task, TaskState, TaskStatus};
use shoal_types::{Clock, Id, Node, Timestamp};

fn node(id: &str) -> Node {
    Node {
        id: Id::from_raw(id),
        status: NodeStatus {
            state: NodeState::Ready,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn task(id: &str, node: &str) -> Task {
    Task {
        id: Id::from_raw(id),
        service_id: Id::from_raw("svc"),
        service_name: "web".into(),
        slot: 1,
        node_id: Some(Id::from_raw(node)),
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Assigned,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The dispatcher serves agents once the leader's metrics say it has applied its own term.
async fn serving(store: &Store) {
    for _ in 0..200 {
        if store.leads_with_current_state() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the only member never led with a current state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_assignments_reports_and_silence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = testing::leading_store(dir.path()).await;
    let clock = Arc::new(FakeClock::new(Timestamp(1_000_000_000_000)));
    let ops = vec![
        Op::CreateNode(node("n1")),
        Op::CreateNode(node("n2")),
        Op::CreateTask(task("t1", "n1")),
        Op::CreateTask(task("t2", "n2")),
    ];
    testing::seed(&store, clock.now(), ops).await;
    let d = Dispatcher::new(store.clone(), clock.clone(), Duration::from_secs(5));
    serving(&store).await;

    let desc = NodeDescription {
        hostname: "box1".into(),
        ..Default::default()
    };
    let mut stream = d
        .open_session(
            &Id::from_raw("n1"),
            desc,
            "10.0.0.1".into(),
            "10.0.0.1:2377".into(),
        )
        .await
        .expect("session");
    let n1 = store.view().node(&Id::from_raw("n1")).cloned().expect("n1");
    assert_eq!(
        (n1.description.hostname.as_str(), n1.status.addr.as_str()),
        ("box1", "10.0.0.1")
    );
    let Some(SessionMessage::Node(info)) = stream.next().await else {
        panic!("node info comes first")
    };
    assert_eq!(
        (info.role, info.removed),
        (shoal_types::node::NodeRole::Worker, false)
    );
    let Some(SessionMessage::Assignments(first)) = stream.next().await else {
        panic!("then the assignments")
    };
    assert_eq!(
        first
            .tasks
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["t1"]
    );

    // An agent reports for its own tasks only.
    let running = TaskStatus {
        state: TaskState::Running,
        timestamp: clock.now(),
        ..Default::default()
    };
    let reports = vec![
        TaskStatusReport {
            task_id: Id::from_raw("t1"),
            status: running.clone(),
        },
        TaskStatusReport {
            task_id: Id::from_raw("t2"),
            status: running,
        },
    ];
    d.report(&Id::from_raw("n1"), reports)
        .await
        .expect("report");
    let view = store.view();
    assert_eq!(
        view.task(&Id::from_raw("t1")).map(|t| t.status.state),
        Some(TaskState::Running)
    );
    assert_eq!(
        view.task(&Id::from_raw("t2")).map(|t| t.status.state),
        Some(TaskState::Assigned)
    );

    // The first set is complete; the store's change reaches the session as that change only.
    assert!(first.complete);
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("in time");
    let Some(SessionMessage::Assignments(next)) = next else {
        panic!("new assignments")
    };
    assert!(!next.complete);
    assert_eq!(
        next.tasks
            .iter()
            .map(|t| (t.id.as_str(), t.status.state))
            .collect::<Vec<_>>(),
        [("t1", TaskState::Running)]
    );
    assert!(next.removed.is_empty());

    // Silence: n2 never opened a session, n1 heartbeats until t=10s.
    clock.advance(Duration::from_secs(10));
    d.heartbeat(&Id::from_raw("n1")).expect("heartbeat");
    assert!(
        d.overdue_nodes(&store.view(), clock.now()).is_empty(),
        "grace is 3 periods from start"
    );
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        d.overdue_nodes(&store.view(), clock.now()),
        vec![Id::from_raw("n2")]
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        d.overdue_nodes(&store.view(), clock.now()),
        vec![Id::from_raw("n1"), Id::from_raw("n2")]
    );
    assert!(
        d.heartbeat(&Id::from_raw("n9")).is_err(),
        "no session, no heartbeat"
    );
    store.shutdown().await;
}

/// Found by shoal-sim (seed 0): the leader marks a silent node Down; before that write applies,
/// the agent reconnects, and `open_session` skips its Ready write because its view still says
/// Ready. The Down then lands and the node stayed Down while heartbeating. The dispatcher must
/// notice a live session on a node that is not Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_revives_a_node_marked_down_behind_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = testing::leading_store(dir.path()).await;
    let clock = Arc::new(FakeClock::new(Timestamp(1_000_000_000_000)));
    testing::seed(&store, clock.now(), vec![Op::CreateNode(node("n1"))]).await;
    let d = Dispatcher::new(store.clone(), clock.clone(), Duration::from_secs(5));
    serving(&store).await;
    let _stream = d
        .open_session(
            &Id::from_raw("n1"),
            NodeDescription::default(),
            "10.0.0.1".into(),
            "10.0.0.1:2377".into(),
        )
        .await
        .expect("session");
    assert!(d.revived_nodes(&store.view(), clock.now()).is_empty());
    // The late Down from the previous session's expiry.
    let mut down = (**store.view().node(&Id::from_raw("n1")).expect("n1")).clone();
    down.status.state = NodeState::Down;
    store
        .propose(Proposal::atomic(
            clock.now(),
            vec![Op::UpdateNode {
                node: down,
                expect_version: None,
            }],
        ))
        .await
        .expect("down");
    clock.advance(Duration::from_secs(1));
    d.heartbeat(&Id::from_raw("n1")).expect("heartbeat");
    assert_eq!(
        d.revived_nodes(&store.view(), clock.now()),
        vec![Id::from_raw("n1")]
    );
    // A session gone silent past the grace is not revived.
    clock.advance(Duration::from_secs(16));
    assert!(d.revived_nodes(&store.view(), clock.now()).is_empty());
    store.shutdown().await;
}

/// Found by shoal-sim (seed 0): a manager restarted with its old leader vote leads for a moment
/// and accepts a session; once it learns of the newer term it must stop serving that session's
/// heartbeats, so the agent moves to the real leader instead of being marked Down there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_that_does_not_lead_refuses_heartbeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Never bootstrapped: it leads nothing.
    let sealer = shoal_store::Sealer::new(&shoal_store::seal::SecretKey::from_bytes([7; 32]));
    let store = Store::open(
        dir.path(),
        1,
        RaftTiming::default(),
        Network::default(),
        sealer,
    )
    .await
    .expect("store");
    let clock = Arc::new(FakeClock::new(Timestamp(1_000_000_000_000)));
    let d = Dispatcher::new(store.clone(), clock, Duration::from_secs(5));
    assert!(matches!(
        d.heartbeat(&Id::from_raw("n1")),
        Err(shoal_manager::ControlError::Unavailable(_))
    ));
    store.shutdown().await;
}
