//! Nodes: what the operator sets (spec), what the node reports (description) and what the
//! managers observe (status).

use std::collections::BTreeMap;

use crate::{Id, Meta, Timestamp};

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    #[default]
    Worker,
    Manager,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Worker => "worker",
            NodeRole::Manager => "manager",
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Some(Availability::Active),
            "pause" => Some(Availability::Pause),
            "drain" => Some(Availability::Drain),
            _ => None,
        }
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Unknown,
    Down,
    Ready,
    Disconnected,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Unknown => "unknown",
            NodeState::Down => "down",
            NodeState::Ready => "ready",
            NodeState::Disconnected => "disconnected",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeSpec {
    /// Operator-given name; empty means "use the hostname".
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub role: NodeRole,
    #[serde(default)]
    pub availability: Availability,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub arch: String,
}

/// CPU in billionths of a CPU (Docker's NanoCPUs) and memory in bytes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Resources {
    #[serde(default)]
    pub nano_cpus: i64,
    #[serde(default)]
    pub memory_bytes: i64,
}

impl Resources {
    pub fn is_zero(&self) -> bool {
        self.nano_cpus == 0 && self.memory_bytes == 0
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineDescription {
    pub version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Runtime drivers this node can run tasks with (`native`, `docker`).
    #[serde(default)]
    pub runtimes: Vec<String>,
}

/// What a node reports about itself when its agent opens a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeDescription {
    pub hostname: String,
    pub platform: Platform,
    pub resources: Resources,
    /// What the node advertises beyond CPU and memory (dockerd's `--node-generic-resource`); on
    /// the wire, `Description.Resources.GenericResources`. Kept beside `resources` rather than in
    /// it so that `Resources` (also the type of limits, which have no generic part in Docker's
    /// API) stays a `Copy` pair the scheduler can move around for free.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<crate::GenericResource>,
    pub engine: EngineDescription,
    /// The public key (base64) of the node's WireGuard tunnel for encrypted overlays: made
    /// anew by each daemon run, held only in its memory, and known to other nodes only through
    /// the managers, over sessions the cluster's certificates authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeStatus {
    pub state: NodeState,
    #[serde(default)]
    pub message: String,
    /// The node's IP as other nodes reach it (what `docker node inspect` shows).
    #[serde(default)]
    pub addr: String,
    /// Where the node serves node-to-node RPC (`ip:port`): managers reach workers' agents there
    /// (logs), and everyone reaches managers there.
    #[serde(default)]
    pub endpoint: String,
    /// When the state last changed.
    #[serde(default)]
    pub since: Timestamp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    #[default]
    Unknown,
    Unreachable,
    Reachable,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManagerStatus {
    /// This manager's member ID in the Raft group.
    pub raft_id: u64,
    pub addr: String,
    #[serde(default)]
    pub reachability: Reachability,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub id: Id,
    pub meta: Meta,
    pub spec: NodeSpec,
    #[serde(default)]
    pub description: NodeDescription,
    #[serde(default)]
    pub status: NodeStatus,
    #[serde(default)]
    pub manager: Option<ManagerStatus>,
    /// The node's current certificate, as last issued.
    #[serde(default)]
    pub tls: NodeTls,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeTls {
    /// Digest of the root CA that issued the certificate.
    pub issuer_digest: String,
    pub not_after: crate::Timestamp,
}

impl Node {
    /// The name shown to users: the operator's name if set, else the hostname.
    pub fn display_name(&self) -> &str {
        if self.spec.name.is_empty() {
            &self.description.hostname
        } else {
            &self.spec.name
        }
    }

    /// Whether the scheduler may place new tasks here.
    pub fn accepts_new_tasks(&self) -> bool {
        self.status.state == NodeState::Ready && self.spec.availability == Availability::Active
    }
}
