//! The store against openraft's storage conformance suite, and a single-member group end to end:
//! writes, restart on the same directory, snapshots with log purge.

use std::sync::Arc;
use std::time::Duration;

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use shoal_store::network::Network;
use shoal_store::storage::{LogStore, StateMachine, open_db};
use shoal_store::{Op, OpError, Proposal, RaftTiming, Store, TypeConfig};
use shoal_types::service::{Service, ServiceSpec};
use shoal_types::{Id, Timestamp};

struct Builder;

/// Every test member seals with the same fixed data key, so a reopened store reads its rows.
fn sealer() -> shoal_store::Sealer {
    shoal_store::Sealer::new(&shoal_store::seal::SecretKey::from_bytes([7; 32]))
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let db =
            open_db(&dir.path().join("s.redb")).map_err(|e| openraft::StorageIOError::write(&e))?;
        let (sm, _) = StateMachine::load(db.clone(), sealer())
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        let log = LogStore::new(db, sealer()).map_err(|e| openraft::StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn passes_openraft_storage_conformance_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("storage conformance: {e}");
    }
}

fn service(n: u64) -> Service {
    Service {
        id: Id::from_raw(format!("svc{n:022}")),
        spec: ServiceSpec {
            name: format!("web{n}"),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn open(dir: &std::path::Path, timing: RaftTiming) -> Store {
    let store = Store::open(dir, 1, timing, Network::default(), sealer())
        .await
        .expect("store opens");
    store.bootstrap("127.0.0.1:2377").await.expect("bootstraps");
    assert_eq!(
        store.wait_for_leader(Duration::from_secs(10)).await,
        Some(1),
        "single member leads"
    );
    store
}

/// A data directory that is a file: the store cannot create it, and says so with the
/// filesystem's error as the cause, not pasted into its message.
#[tokio::test]
async fn opening_a_store_where_a_file_is_keeps_the_io_error_as_its_source() {
    use std::error::Error;

    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let Err(err) = Store::open(
        &file,
        1,
        RaftTiming::default(),
        Network::default(),
        sealer(),
    )
    .await
    else {
        panic!("a file opened as a store directory");
    };
    assert!(
        matches!(err, shoal_store::StoreError::Open { .. }),
        "{err:?}"
    );
    let io = err
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the io error is the source");
    assert_eq!(io.kind(), std::io::ErrorKind::AlreadyExists);
    let path = file.join("state.redb");
    assert_eq!(
        err.to_string(),
        format!("opening the state store at {}", path.display())
    );
    assert_eq!(
        shoal_types::error::chain(&err),
        format!("opening the state store at {}: {io}", path.display())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_restart_and_versions_keep_growing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), RaftTiming::default()).await;
    let applied = store
        .propose(Proposal::atomic(
            Timestamp(5),
            vec![Op::CreateService(service(1))],
        ))
        .await
        .expect("proposes");
    assert_eq!(applied.results, vec![Ok(())]);
    let v1 = applied.version;
    let dup = store
        .propose(Proposal::atomic(
            Timestamp(6),
            vec![Op::CreateService(Service {
                id: Id::from_raw("other"),
                ..service(1)
            })],
        ))
        .await
        .expect("proposes");
    assert!(matches!(dup.first_error(), Some(OpError::NameInUse { .. })));
    assert_eq!(store.view().services().count(), 1);
    store.shutdown().await;
    drop(store);

    let store = open(dir.path(), RaftTiming::default()).await;
    let view = store.view();
    let svc = view
        .service_by_name("web1")
        .expect("service survived restart");
    assert_eq!(svc.meta.version, v1);
    assert_eq!(svc.meta.created_at, Timestamp(5));
    let next = store
        .propose(Proposal::atomic(
            Timestamp(7),
            vec![Op::CreateService(service(2))],
        ))
        .await
        .expect("proposes after restart");
    assert!(next.version > v1, "{} > {v1}", next.version);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_purge_the_log_and_restart_from_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let timing = RaftTiming {
        snapshot_every: 20,
        keep_after_snapshot: 0,
        ..Default::default()
    };
    let store = open(dir.path(), timing.clone()).await;
    for n in 0..120 {
        let a = store
            .propose(Proposal::atomic(
                Timestamp(n as i64),
                vec![Op::CreateService(service(n))],
            ))
            .await
            .expect("proposes");
        assert_eq!(a.results, vec![Ok(())]);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = store.raft().metrics().borrow().clone();
        // Wait for a snapshot of the last applied entry: an automatic one (every 20 entries)
        // may still be building, and openraft drops a trigger that arrives while one builds,
        // so ask again until it is there.
        if m.snapshot.is_some() && m.snapshot == m.last_applied && m.purged.is_some() {
            break;
        }
        store.trigger_snapshot().await.expect("snapshot");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot/purge: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A snapshot is the rows themselves: nothing beside the database.
    let files = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    };
    assert_eq!(files(), ["state.redb"]);
    // What a lagging member is sent: every service, under the log id applied up to when asked
    // (at or past the purge, so it covers every purged entry).
    let served = |s: &Store| {
        let s = s.clone();
        async move {
            let applied = s.raft().metrics().borrow().last_applied;
            let purged = s.raft().metrics().borrow().purged;
            let snap = s
                .raft()
                .get_snapshot()
                .await
                .expect("get_snapshot")
                .expect("a current snapshot");
            assert_eq!(snap.meta.last_log_id, applied);
            assert!(snap.meta.last_log_id >= purged, "{snap:?} {purged:?}");
            let v: serde_json::Value =
                serde_json::from_slice(&snap.snapshot.into_inner()).expect("snapshot is JSON");
            let objects = v["objects"].as_array().expect("objects");
            let names: std::collections::BTreeSet<String> = objects
                .iter()
                .filter(|o| o["kind"] == "service")
                .map(|o| {
                    o["object"]["spec"]["name"]
                        .as_str()
                        .expect("name")
                        .to_owned()
                })
                .collect();
            names
        }
    };
    let want: std::collections::BTreeSet<String> =
        (0..120).map(|n| service(n).spec.name.clone()).collect();
    assert_eq!(served(&store).await, want);
    store.shutdown().await;
    drop(store);
    let store = open(dir.path(), timing).await;
    let view: Arc<_> = store.view();
    assert_eq!(view.services().count(), 120);
    assert_eq!(served(&store).await, want);
    assert_eq!(files(), ["state.redb"]);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_follows_the_settings_it_is_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let timing = RaftTiming {
        snapshot_every: 0,
        ..Default::default()
    };
    let store = open(dir.path(), timing).await;
    for n in 0..30 {
        store
            .propose(Proposal::atomic(
                Timestamp(n as i64),
                vec![Op::CreateService(service(n))],
            ))
            .await
            .expect("proposes");
    }
    // Not due yet with a large interval: nothing happens.
    store.compact(1000, 5).await.expect("compact");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(store.raft().metrics().borrow().snapshot.is_none());
    // Due with a small one: a snapshot, then the log before it is purged down to `keep`.
    store.compact(10, 5).await.expect("compact");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = store.raft().metrics().borrow().clone();
        if let Some(snap) = m.snapshot {
            store.compact(10, 5).await.expect("compact");
            if m.purged
                .is_some_and(|p| p.index + 5 >= snap.index && p.index > 0)
            {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot and purge: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_state_is_waited_for_and_a_member_without_a_group_never_has_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lone = Store::open(
        dir.path(),
        1,
        RaftTiming::default(),
        Network::default(),
        sealer(),
    )
    .await
    .expect("store opens");
    // Not bootstrapped: no group, no leader, so the wait gives up and says so.
    assert!(!lone.wait_current_state(Duration::from_millis(300)).await);
    lone.bootstrap("127.0.0.1:2377").await.expect("bootstraps");
    assert!(lone.wait_current_state(Duration::from_secs(10)).await);
    assert!(lone.leads_with_current_state());
    lone.shutdown().await;
}
