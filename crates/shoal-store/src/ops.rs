//! What a write is: a [`Proposal`] of [`Op`]s, replicated as one Raft log entry and applied by every
//! manager in the same order with the same result. Everything an op needs (new objects, IDs, the
//! time) is decided by the proposer, so applying is deterministic. The one exception is what is
//! handed out from a shared pool — task addresses, virtual IPs, published ports, VXLAN IDs: the
//! state gives those as it applies (a pure function of the state before), so two proposers
//! working from the same view can never hand out the same address, and an address is taken back
//! in the same write that ends its holder.

use shoal_types::cluster::Cluster;
use shoal_types::network::Network;
use shoal_types::payload::{Payload, PayloadKind};
use shoal_types::service::Service;
use shoal_types::task::{Task, TaskState, TaskStatus};
use shoal_types::{Id, Node, Timestamp};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    CreateNode(Node),
    /// Replaces the node; with `expect_version`, only if the stored version matches.
    UpdateNode {
        node: Node,
        expect_version: Option<u64>,
    },
    DeleteNode {
        id: Id,
    },
    CreateService(Service),
    UpdateService {
        service: Service,
        expect_version: Option<u64>,
    },
    DeleteService {
        id: Id,
    },
    CreateTask(Task),
    UpdateTask {
        task: Task,
        expect_version: Option<u64>,
    },
    /// Moves a task's observed status forward. An older state is ignored (not an error), so
    /// reports can be retried and reordered; the same state refreshes message and error only.
    SetTaskStatus {
        id: Id,
        status: TaskStatus,
    },
    /// Moves a task's desired state forward; an older one is ignored.
    SetTaskDesired {
        id: Id,
        desired: TaskState,
    },
    /// Gives a pending task its node, moving it to `assigned`. Fails with Conflict if the task is
    /// no longer pending, so two schedulers can never both place it.
    AssignTask {
        id: Id,
        node_id: Id,
        status: TaskStatus,
        /// The generic resource units the task holds on the node (the scheduler's choice).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        generic_resources: Vec<shoal_types::GenericResource>,
    },
    DeleteTask {
        id: Id,
    },
    PutCluster {
        cluster: Cluster,
        expect_version: Option<u64>,
    },
    /// Adds a network whose subnet the proposer allocated; refused if the name is taken or the
    /// subnet overlaps another network's (two managers allocating from the same view).
    CreateNetwork(Network),
    DeleteNetwork {
        id: Id,
    },
    /// Adds a secret or config; refused if its kind already has the name.
    CreatePayload(Payload),
    /// Replaces one (its labels, or a rotation's new version and the versions it drops);
    /// refused if a version a service spec still uses would go.
    UpdatePayload {
        payload: Payload,
        expect_version: Option<u64>,
    },
    /// Refused while a service's spec uses it.
    DeletePayload {
        kind: PayloadKind,
        id: Id,
    },
}

/// One replicated write. With `atomic`, either every op applies or none does; otherwise each op
/// applies on its own and fails on its own (status batches from many tasks).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Proposal {
    pub now: Timestamp,
    pub ops: Vec<Op>,
    pub atomic: bool,
}

impl Proposal {
    pub fn atomic(now: Timestamp, ops: Vec<Op>) -> Self {
        Proposal {
            now,
            ops,
            atomic: true,
        }
    }

    pub fn each(now: Timestamp, ops: Vec<Op>) -> Self {
        Proposal {
            now,
            ops,
            atomic: false,
        }
    }
}

impl std::fmt::Display for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proposal({} ops)", self.ops.len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Node,
    Service,
    Task,
    Cluster,
    Network,
    Secret,
    Config,
}

impl From<PayloadKind> for Kind {
    fn from(k: PayloadKind) -> Kind {
        match k {
            PayloadKind::Secret => Kind::Secret,
            PayloadKind::Config => Kind::Config,
        }
    }
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Cluster => "cluster",
            Kind::Network => "network",
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum OpError {
    #[error("{kind} {id} not found")]
    NotFound { kind: Kind, id: Id },
    #[error("{kind} {id} already exists")]
    Exists { kind: Kind, id: Id },
    #[error("{kind} name {name:?} is already in use")]
    NameInUse { kind: Kind, name: String },
    #[error(
        "update out of sequence: {kind} {id} is at version {current}, the change was based on version {expected}"
    )]
    VersionConflict {
        kind: Kind,
        id: Id,
        current: u64,
        expected: u64,
    },
    #[error("subnet {subnet} overlaps network {other:?}'s subnet {theirs}")]
    SubnetInUse {
        subnet: String,
        other: String,
        theirs: String,
    },
    #[error("{kind} {name:?} is in use by the following service(s): {}", services.join(", "))]
    InUse {
        kind: Kind,
        name: String,
        services: Vec<String>,
    },
    #[error("{kind} {name:?} cannot be renamed")]
    Renamed { kind: Kind, name: String },
    #[error("{kind} {name:?} has no version {version}")]
    NoSuchVersion {
        kind: Kind,
        name: String,
        version: u64,
    },
    #[error("task {id} is no longer pending (it is {state})")]
    NotPending { id: Id, state: String },
    #[error("network {network:?} has no free address left in {range}")]
    AddressesExhausted { network: String, range: String },
    #[error("address {addr} on network {network:?} is already held by {owner}")]
    AddressInUse {
        network: String,
        addr: String,
        owner: Id,
    },
    #[error("port {port}/{protocol} is already published by service {service:?}")]
    PortInUse {
        port: u16,
        protocol: String,
        service: String,
    },
    #[error("no port is left to publish in {first}-{last}")]
    PortsExhausted { first: u16, last: u16 },
    #[error("network {name:?} is in use by service(s) {services:?}")]
    NetworkInUse { name: String, services: Vec<String> },
    /// Standalone containers are attached to it (by name).
    #[error("network {name:?} is in use by container(s) {containers:?}")]
    NetworkInUseByContainers {
        name: String,
        containers: Vec<String>,
    },
    #[error("not applied: another change in the same atomic proposal failed")]
    Aborted,
}

/// The outcome of one applied log entry, returned to its proposer.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// The store version (Raft log index) of this entry.
    pub version: u64,
    /// One result per op, in order.
    pub results: Vec<Result<(), OpError>>,
}

impl Applied {
    /// The first failure, for atomic proposals where one failure means none applied.
    pub fn first_error(&self) -> Option<&OpError> {
        self.results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .find(|e| !matches!(e, OpError::Aborted))
    }
}

/// What changed, for watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub id: Id,
    pub deleted: bool,
}
