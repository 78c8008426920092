//! The manager's loops are keyed: on a real one-member store with the loops running, a write to
//! one service reconciles that service (and schedules its tasks), not every service stored.

use std::sync::Arc;
use std::time::Duration;

use shoal_manager::{Manager, testing};
use shoal_store::{Op, Proposal, State, Store};
use shoal_types::clock::FakeClock;
use shoal_types::service::{Service, ServiceMode};
use shoal_types::task::TaskState;
use shoal_types::{Clock, Id, IdGen, Timestamp};

const SERVICES: usize = 300;

fn placed(view: &State, service: &Id) -> usize {
    view.tasks_of_service(service)
        .filter(|t| t.status.state == TaskState::Assigned && t.desired_state <= TaskState::Running)
        .count()
}

/// Polls until `done` holds for the newest state; panics with what it saw at the deadline.
async fn until(store: &Store, what: &str, done: impl Fn(&State) -> bool) {
    for _ in 0..600 {
        if done(&store.view()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = store.view();
    panic!(
        "{what}: not reached; {} services, {} tasks at version {}",
        view.services().count(),
        view.task_count(),
        view.version
    );
}

/// Waits until the loops' work counters stop moving, and returns them.
async fn quiet(m: &Manager) -> (u64, u64) {
    let read = || (m.stats().orchestrator.keys(), m.stats().scheduler.keys());
    let mut last = read();
    let mut still = 0;
    for _ in 0..400 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let now = read();
        if now == last {
            still += 1;
            if still >= 8 {
                return now;
            }
        } else {
            still = 0;
            last = now;
        }
    }
    panic!("the loops never went quiet: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_one_service_reconciles_that_service_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = testing::leading_store(dir.path()).await;
    // The clock stands still: no restart delay or resync comes due during the test.
    let clock = Arc::new(FakeClock::new(Timestamp(1_700_000_000_000_000_000)));
    let cluster = testing::agentless_cluster("c");
    let mut ops = vec![Op::PutCluster {
        cluster,
        expect_version: None,
    }];
    ops.extend((0..3).map(|i| {
        Op::CreateNode(testing::ready_node(
            format!("n{i}"),
            8_000_000_000,
            16 << 30,
        ))
    }));
    let mut ids = IdGen::seeded(3);
    let services: Vec<Id> = (0..SERVICES).map(|_| ids.next_id()).collect();
    ops.extend(services.iter().enumerate().map(|(i, id)| {
        Op::CreateService(Service {
            id: id.clone(),
            spec: testing::replicated(format!("s{i}"), "busybox", 1),
            ..Default::default()
        })
    }));
    testing::seed(&store, clock.now(), ops).await;

    let m = Manager::start(store.clone(), clock.clone(), IdGen::seeded(5));
    until(&store, "every service has its task placed", |v| {
        services.iter().all(|s| placed(v, s) == 1)
    })
    .await;
    let (orchestrated, scheduled) = quiet(&m).await;
    assert!(
        orchestrated >= SERVICES as u64,
        "the first pass looks at every service ({orchestrated} keys)"
    );
    let before = store.view();

    // Scale one service up: the loops must create and place its new task, and nothing else.
    let target = &services[SERVICES / 2];
    let mut next = (**before.service(target).expect("stored")).clone();
    next.spec.mode = ServiceMode::Replicated { replicas: 2 };
    let version = next.meta.version;
    store
        .propose(Proposal::atomic(
            clock.now(),
            vec![Op::UpdateService {
                service: next,
                expect_version: Some(version),
            }],
        ))
        .await
        .expect("scale");
    until(&store, "the scaled service has two tasks placed", |v| {
        placed(v, target) == 2
    })
    .await;
    let (orchestrated_after, scheduled_after) = quiet(&m).await;

    let o = orchestrated_after - orchestrated;
    let s = scheduled_after - scheduled;
    // The service is looked at after its update, after its task is created and after it is
    // placed; the scheduler sees the new task (and the service, for rebalancing) a few times.
    assert!(
        (1..=8).contains(&o),
        "one write reconciled {o} service keys (of {SERVICES} services)"
    );
    assert!(
        (1..=12).contains(&s),
        "one write made the scheduler look at {s} keys"
    );
    let after = store.view();
    for other in services.iter().filter(|s| *s != target) {
        let a: Vec<u64> = before
            .tasks_of_service(other)
            .map(|t| t.meta.version)
            .collect();
        let b: Vec<u64> = after
            .tasks_of_service(other)
            .map(|t| t.meta.version)
            .collect();
        assert_eq!(a, b, "service {other}'s tasks were rewritten");
    }
    m.stop().await;
}
