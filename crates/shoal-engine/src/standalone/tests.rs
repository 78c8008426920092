//! Standalone containers over the fake runtime on a paused clock: create, start, restart
//! policies, `--rm`, waits, names, and what a new daemon takes up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_control::engine::{ContainerCreate, EngineError, RestartPolicy, WaitCondition};
use shoal_runtime::RuntimeTaskState;
use shoal_runtime::fake::{FakeCall, FakeDriver};
use shoal_types::clock::FakeClock;
use shoal_types::id::IdGen;
use shoal_types::{Id, Timestamp};

use super::{NoNets, Standalone};

struct H {
    s: Arc<Standalone>,
    driver: Arc<FakeDriver>,
    _dir: tempfile::TempDir,
}

fn harness_in(dir: tempfile::TempDir, driver: Arc<FakeDriver>) -> H {
    let s = Arc::new(Standalone::new(
        dir.path().join("containers"),
        driver.clone(),
        Arc::new(NoNets),
        Arc::new(FakeClock::new(Timestamp(1_000_000_000))),
        Arc::new(Mutex::new(IdGen::seeded(7))),
    ));
    H {
        s,
        driver,
        _dir: dir,
    }
}

fn harness() -> H {
    harness_in(
        tempfile::tempdir().expect("tempdir"),
        Arc::new(FakeDriver::new()),
    )
}

fn spec(restart: RestartPolicy, auto_remove: bool) -> ContainerCreate {
    let mut c = ContainerCreate::default();
    // The fake runs `host` tasks without an image store.
    c.spec.image = "host".into();
    c.spec.args = vec!["sleep".into(), "100".into()];
    c.restart = restart;
    c.auto_remove = auto_remove;
    c
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn running(d: &FakeDriver, id: &str) -> bool {
    matches!(
        d.state(&Id::from_raw(id)),
        Some(RuntimeTaskState::Running { .. })
    )
}

#[tokio::test(start_paused = true)]
async fn create_then_start_runs_it_once_and_a_second_start_is_a_no_op() {
    let h = harness();
    let (id, warnings) =
        h.s.create(Some("web"), spec(RestartPolicy::No, false), &[])
            .await
            .expect("create");
    assert!(warnings.is_empty());
    assert_eq!(id.len(), 64);
    assert!(shoal_runtime::is_standalone(&Id::from_raw(&id)));
    assert!(
        h.driver.state(&Id::from_raw(&id)).is_none(),
        "not made before it is needed"
    );
    assert!(h.s.start(&id).await.expect("start"));
    assert!(running(&h.driver, &id));
    assert!(
        !h.s.start(&id).await.expect("second start"),
        "already running"
    );
    assert_eq!(h.driver.starts(&Id::from_raw(&id)), 1);
    let run = h.driver.run(&Id::from_raw(&id)).expect("prepared");
    assert_eq!(run.hostname, &id[..12], "Docker's default hostname");
}

#[tokio::test(start_paused = true)]
async fn names_are_checked_unique_and_generated_when_missing() {
    let h = harness();
    h.s.create(Some("web"), spec(RestartPolicy::No, false), &[])
        .await
        .expect("create");
    let e =
        h.s.create(Some("/web"), spec(RestartPolicy::No, false), &[])
            .await
            .expect_err("taken");
    assert!(
        matches!(e, EngineError::Conflict(ref m) if m.contains("\"/web\" is already in use")),
        "{e}"
    );
    let e =
        h.s.create(Some("db"), spec(RestartPolicy::No, false), &["db".into()])
            .await
            .expect_err("taken by a task's container");
    assert!(matches!(e, EngineError::Conflict(_)));
    let (id, _) =
        h.s.create(None, spec(RestartPolicy::No, false), &[])
            .await
            .expect("generated");
    let name = h.s.record(&id).expect("record").name;
    assert!(name.contains('_'), "{name}");
    h.s.rename(&id, "renamed", &[]).expect("rename");
    assert!(
        h.s.rename(&id, "web", &[]).is_err(),
        "rename onto a taken name"
    );
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_with_back_off_until_its_retries_are_spent() {
    let h = harness();
    let (id, _) =
        h.s.create(
            None,
            spec(RestartPolicy::OnFailure { max_retries: 2 }, false),
            &[],
        )
        .await
        .expect("create");
    let task = Id::from_raw(&id);
    h.s.start(&id).await.expect("start");
    for restart in 1..=2 {
        h.driver.exit(&task, 1);
        settle().await;
        assert!(!running(&h.driver, &id), "not before its delay");
        tokio::time::sleep(Duration::from_millis(100 * (1 << (restart - 1)) + 1)).await;
        settle().await;
        assert!(running(&h.driver, &id), "restart {restart}");
        assert_eq!(h.s.record(&id).expect("record").restart_count, restart);
    }
    h.driver.exit(&task, 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    settle().await;
    assert!(
        !running(&h.driver, &id),
        "two retries, then it stays exited"
    );
    assert_eq!(h.driver.starts(&task), 3);
}

#[tokio::test(start_paused = true)]
async fn a_manual_stop_is_never_undone_by_the_policy() {
    let h = harness();
    let (id, _) =
        h.s.create(None, spec(RestartPolicy::Always, false), &[])
            .await
            .expect("create");
    h.s.start(&id).await.expect("start");
    h.s.stop(&id, Duration::from_secs(1)).await.expect("stop");
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;
    assert!(!running(&h.driver, &id));
    assert_eq!(h.driver.starts(&Id::from_raw(&id)), 1);
    // A user start clears it: the policy applies again.
    h.s.start(&id).await.expect("start again");
    h.driver.exit(&Id::from_raw(&id), 0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    settle().await;
    assert!(
        running(&h.driver, &id),
        "always restarts after a clean exit too"
    );
}

#[tokio::test(start_paused = true)]
async fn auto_remove_removes_it_after_its_exit_and_wakes_removed_waiters() {
    let h = harness();
    let (id, _) =
        h.s.create(None, spec(RestartPolicy::No, true), &[])
            .await
            .expect("create");
    let s = h.s.clone();
    let waiter = {
        let id = id.clone();
        tokio::spawn(async move { s.wait(&id, WaitCondition::Removed, false).await })
    };
    let s = h.s.clone();
    let next_exit = {
        let id = id.clone();
        tokio::spawn(async move { s.wait(&id, WaitCondition::NextExit, false).await })
    };
    settle().await;
    h.s.start(&id).await.expect("start");
    h.driver.exit(&Id::from_raw(&id), 7);
    let code = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .expect("joined")
        .expect("wait");
    assert_eq!(code, 7);
    assert_eq!(next_exit.await.expect("joined").expect("next exit"), 7);
    assert!(!h.s.contains(&id));
    assert!(
        h.driver
            .calls()
            .contains(&FakeCall::Remove(Id::from_raw(&id)))
    );
    assert!(matches!(
        h.s.wait(&id, WaitCondition::NotRunning, false).await,
        Err(EngineError::NoSuchContainer(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_new_daemon_supervises_running_ones_and_starts_exited_ones_by_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = Arc::new(FakeDriver::new());
    let path = dir.path().to_path_buf();
    let (keep, always, stopped, rm) = {
        let s = Arc::new(Standalone::new(
            path.join("containers"),
            driver.clone(),
            Arc::new(NoNets),
            Arc::new(FakeClock::new(Timestamp(1))),
            Arc::new(Mutex::new(IdGen::seeded(9))),
        ));
        let mut ids = Vec::new();
        for (policy, auto_remove) in [
            (RestartPolicy::No, false),
            (RestartPolicy::Always, false),
            (RestartPolicy::UnlessStopped, false),
            (RestartPolicy::No, true),
        ] {
            let (id, _) = s
                .create(None, spec(policy, auto_remove), &[])
                .await
                .expect("create");
            s.start(&id).await.expect("start");
            ids.push(id);
        }
        s.stop(&ids[2], Duration::ZERO).await.expect("stop");
        // The daemon stops: its containers keep running, but for the ones that end meanwhile.
        s.shutdown();
        settle().await;
        driver.exit(&Id::from_raw(&ids[1]), 0);
        driver.exit(&Id::from_raw(&ids[3]), 0);
        (
            ids[0].clone(),
            ids[1].clone(),
            ids[2].clone(),
            ids[3].clone(),
        )
    };
    let h = harness_in(dir, driver.clone());
    h.s.resume().await;
    settle().await;
    assert!(running(&driver, &keep), "still running, supervised again");
    assert!(
        running(&driver, &always),
        "always: started at the daemon's start"
    );
    assert!(
        !running(&driver, &stopped),
        "unless-stopped and stopped: left"
    );
    assert!(!h.s.contains(&rm), "--rm and exited: removed");
    driver.exit(&Id::from_raw(&keep), 4);
    settle().await;
    let code =
        h.s.wait(&keep, WaitCondition::NotRunning, false)
            .await
            .expect("wait");
    assert_eq!(code, 4, "its exit was seen by the new daemon's supervisor");
    assert!(!running(&driver, &keep));
}
