//! The object model every shoal stage shares: nodes, services, tasks and the cluster, with their
//! IDs, timestamps and the task life cycle. It does no IO and imports no other shoal crate, so the
//! store, the scheduler, the reconcilers, the agent and every front end agree on one vocabulary.
//!
//! The shapes follow the Docker Engine swarm API (so the Docker front end is a thin mapping) but
//! use plain Rust types: durations are `Duration`, times are [`Timestamp`], absent means default.

pub mod clock;
pub mod cluster;
pub mod constraint;
pub mod container;
pub mod dispatch;
pub mod dns;
pub mod endpoint;
pub mod error;
pub mod generic;
pub mod id;
pub mod image_ref;
pub mod local_net;
pub mod network;
pub mod node;
pub mod payload;
pub mod service;
pub mod stack;
pub mod task;
pub mod template;

pub use clock::{Clock, Timestamp};
pub use cluster::{Cluster, ClusterSpec};
pub use generic::GenericResource;
pub use id::{Id, IdGen};
pub use local_net::{LocalAttachment, LocalEndpoint, LocalNetwork, LocalNetworkSpec};
pub use network::{Network, NetworkSpec};
pub use node::{Availability, Node, NodeDescription, NodeRole, NodeSpec, NodeState, Resources};
pub use payload::{FileRef, Payload, PayloadKind, PayloadSpec};
pub use service::{ContainerSpec, RestartCondition, Service, ServiceMode, ServiceSpec, TaskSpec};
pub use task::{Task, TaskState, TaskStatus};

/// Object metadata kept by the store. `version` is the Raft log index of the write that last
/// changed the object: it orders changes cluster-wide and is the optimistic lock clients send back.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
