//! Encryption at rest, end to end on a real data directory: a marker written into an object is
//! found in no file of the directory (log, object rows, snapshot, after `force_new_cluster`),
//! the store reopens with its key, and refuses with a clear error under another key.

use std::time::Duration;

use shoal_store::network::Network;
use shoal_store::seal::SecretKey;
use shoal_store::{Op, Proposal, RaftTiming, Sealer, Store};
use shoal_types::service::{Service, ServiceSpec};
use shoal_types::{Id, Timestamp};

/// Unlikely anywhere by chance, and long enough that a partial match means nothing.
const MARKER: &str = "shoal-at-rest-marker-7f3a91c2e4d8b6";

fn sealer(b: u8) -> Sealer {
    Sealer::new(&SecretKey::from_bytes([b; 32]))
}

fn service(n: u64) -> Service {
    let mut spec = ServiceSpec {
        name: format!("web{n}"),
        ..Default::default()
    };
    spec.labels
        .insert("secretish".into(), format!("{MARKER}-{n}"));
    Service {
        id: Id::from_raw(format!("svc{n:022}")),
        spec,
        ..Default::default()
    }
}

async fn open(dir: &std::path::Path, key: u8) -> Result<Store, shoal_store::StoreError> {
    let store = Store::open(
        dir,
        1,
        RaftTiming::default(),
        Network::default(),
        sealer(key),
    )
    .await?;
    store.bootstrap("127.0.0.1:2377").await?;
    assert_eq!(
        store.wait_for_leader(Duration::from_secs(10)).await,
        Some(1),
        "single member leads"
    );
    Ok(store)
}

/// Every file under `dir`, raw bytes, searched for `needle`: the paths that hold it.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_object_bytes_reach_the_data_dir_in_plaintext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), 1).await.expect("opens");
    for n in 0..20 {
        store
            .propose(Proposal::atomic(
                Timestamp(5),
                vec![Op::CreateService(service(n))],
            ))
            .await
            .expect("proposes");
    }
    // Rows made durable by a snapshot, and the log purged up to it: both paths write.
    store.trigger_snapshot().await.expect("snapshot");
    store.compact(1, 0).await.expect("compact");
    store.shutdown().await;
    drop(store);
    // The search itself works: IDs are in row keys, which are not sealed (values are).
    assert!(!files_holding(dir.path(), b"service/svc0000").is_empty());
    assert_eq!(
        files_holding(dir.path(), MARKER.as_bytes()),
        Vec::<String>::new(),
        "the marker is in plaintext on disk"
    );

    // Reopened with its key, everything is there.
    let store = open(dir.path(), 1).await.expect("reopens");
    assert_eq!(store.view().services().count(), 20);
    let svc = store.view().service_by_name("web3").cloned().expect("web3");
    assert_eq!(svc.spec.labels["secretish"], format!("{MARKER}-3"));
    store.shutdown().await;
    drop(store);

    // force_new_cluster rewrites every row: sealed too, and nothing lost.
    let path = dir.path().join("state.redb");
    shoal_store::storage::force_new_cluster(&path, 1, "127.0.0.1:2377", &sealer(1))
        .expect("force new cluster");
    assert_eq!(
        files_holding(dir.path(), MARKER.as_bytes()),
        Vec::<String>::new()
    );
    let store = open(dir.path(), 1).await.expect("reopens after recovery");
    assert_eq!(store.view().services().count(), 20);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_cannot_open_the_store_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), 1).await.expect("opens");
    store
        .propose(Proposal::atomic(
            Timestamp(5),
            vec![Op::CreateService(service(1))],
        ))
        .await
        .expect("proposes");
    store.shutdown().await;
    drop(store);
    let Err(err) = Store::open(
        dir.path(),
        1,
        RaftTiming::default(),
        Network::default(),
        sealer(2),
    )
    .await
    else {
        panic!("a store opened under another data key");
    };
    let chain = shoal_types::error::chain(&err);
    assert!(chain.contains("the key is wrong"), "{chain}");
    // Nothing was rewritten by the failed attempt: the right key still opens it.
    let store = open(dir.path(), 1).await.expect("reopens");
    assert_eq!(store.view().services().count(), 1);
    store.shutdown().await;

    let path = dir.path().join("state.redb");
    let err = shoal_store::storage::force_new_cluster(&path, 1, "x:1", &sealer(3))
        .expect_err("recovery under another key");
    assert!(
        shoal_types::error::chain(&err).contains("the key is wrong"),
        "{err}"
    );
}
