//! The protocol between a node's agent and the managers' dispatcher. The agent only ever sees
//! these types, never a manager stage, so the same agent runs in-process or over the network.

use crate::Id;
use crate::node::NodeDescription;
use crate::task::{Task, TaskStatus};

/// Everything one node must run, sent whole whenever it changes. Tasks whose desired state is
/// past `running` are still listed until the store drops them, so the agent stops them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Assignments {
    /// Store version these assignments were computed at.
    pub version: u64,
    pub tasks: Vec<Task>,
}

/// One task's new observed status, from the agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskStatusReport {
    pub task_id: Id,
    pub status: TaskStatus,
}

/// What an agent says when it opens a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRequest {
    pub node_id: Option<Id>,
    pub description: NodeDescription,
}

/// What the dispatcher tells a node about itself, besides its tasks: its role and availability
/// as the managers see them, the managers to reach, and the roots to trust. A change of role or
/// trust makes the node renew its certificate (promotion, demotion, CA rotation).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeInfo {
    pub node_id: Id,
    pub role: crate::node::NodeRole,
    /// The Raft member ID a manager joins the group with.
    #[serde(default)]
    pub raft_id: Option<u64>,
    /// The node was removed from the cluster: it must leave.
    #[serde(default)]
    pub removed: bool,
    /// RPC endpoints (`ip:port`) of the managers, the leader first.
    #[serde(default)]
    pub managers: Vec<String>,
    /// Root certificates to trust (two during a root rotation).
    #[serde(default)]
    pub trust: Vec<String>,
    /// Digest of the root that issues certificates now; a node whose certificate comes from
    /// another root renews it.
    #[serde(default)]
    pub issuer_digest: String,
    /// How often to send heartbeats.
    #[serde(default)]
    pub heartbeat_period: std::time::Duration,
}

/// One message of a session stream.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMessage {
    Node(NodeInfo),
    Assignments(Assignments),
}

/// A node asking to join: its token, a CSR for its new key, and how to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JoinRequest {
    pub token: String,
    pub csr_pem: String,
    /// The address other nodes reach it on (`ip:port`).
    pub advertise_addr: String,
    pub availability: crate::node::Availability,
    pub description: NodeDescription,
}

/// A node's new identity and credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JoinResponse {
    pub node_id: Id,
    pub cluster_id: Id,
    pub role: crate::node::NodeRole,
    /// The Raft member ID a manager joins the group with.
    pub raft_id: Option<u64>,
    pub cert_pem: String,
    /// Present during a root rotation: the new root signed by the old.
    pub intermediate_pem: Option<String>,
    pub trust: Vec<String>,
    /// Digest of the root that issued `cert_pem`.
    pub issuer_digest: String,
    pub managers: Vec<String>,
}

/// A node renewing its certificate (expiry, role change, root rotation).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RenewRequest {
    pub csr_pem: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RenewResponse {
    pub role: crate::node::NodeRole,
    pub cert_pem: String,
    pub intermediate_pem: Option<String>,
    pub trust: Vec<String>,
    /// Digest of the root that issued `cert_pem`.
    pub issuer_digest: String,
}
