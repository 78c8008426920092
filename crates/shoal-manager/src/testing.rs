//! What the manager's tests and benchmarks set up the same way (feature `testing`): a durable
//! one-member store that leads, and the cluster, node and service records they seed it with.
//! Setup that fails panics with what failed: these are test fixtures, not a product path.

use std::path::Path;
use std::time::Duration;

use shoal_store::network::Network;
use shoal_store::{Op, Proposal, RaftTiming, Store};
use shoal_types::cluster::{Cluster, ClusterSpec};
use shoal_types::node::{NodeDescription, NodeState, NodeStatus, Resources};
use shoal_types::service::{ContainerSpec, ServiceMode, ServiceSpec, TaskSpec};
use shoal_types::{Id, Node, Timestamp};

/// A store in `dir` that is its own single member, bootstrapped and leading.
pub async fn leading_store(dir: &Path) -> Store {
    // A fixed data key: a fixture reopened on the same dir reads its rows again.
    let sealer = shoal_store::Sealer::new(&shoal_store::seal::SecretKey::from_bytes([7; 32]));
    let store = Store::open(dir, 1, RaftTiming::default(), Network::default(), sealer)
        .await
        .expect("store");
    store.bootstrap("127.0.0.1:2377").await.expect("bootstrap");
    store
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("leader");
    store
}

/// Writes `ops` in one atomic proposal stamped `now`.
pub async fn seed(store: &Store, now: Timestamp, ops: Vec<Op>) {
    store
        .propose(Proposal::atomic(now, ops))
        .await
        .expect("seed");
}

/// A cluster record whose heartbeats are an hour apart: nodes without agents are not marked
/// down while a test or benchmark runs.
pub fn agentless_cluster(id: &str) -> Cluster {
    Cluster {
        id: Id::from_raw(id),
        spec: ClusterSpec {
            heartbeat_period: Duration::from_secs(3600),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A Ready node with these resources; everything else default.
pub fn ready_node(id: impl Into<String>, nano_cpus: i64, memory_bytes: i64) -> Node {
    Node {
        id: Id::from_raw(id.into()),
        description: NodeDescription {
            resources: Resources {
                nano_cpus,
                memory_bytes,
            },
            ..Default::default()
        },
        status: NodeStatus {
            state: NodeState::Ready,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A replicated service of one container running `image`; everything else default.
pub fn replicated(name: impl Into<String>, image: &str, replicas: u64) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        mode: ServiceMode::Replicated { replicas },
        task: TaskSpec {
            container: ContainerSpec {
                image: image.into(),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A task of `service` in `state`, on `node` when it has one, desired running.
pub fn task(
    id: &str,
    service: &str,
    node: Option<&str>,
    state: shoal_types::task::TaskState,
) -> shoal_types::Task {
    shoal_types::Task {
        id: Id::from_raw(id),
        service_id: Id::from_raw(service),
        slot: 1,
        node_id: node.map(Id::from_raw),
        desired_state: shoal_types::task::TaskState::Running,
        status: shoal_types::task::TaskStatus {
            state,
            ..Default::default()
        },
        ..Default::default()
    }
}
