//! The protocol between a node's agent and the managers' dispatcher. The agent only ever sees
//! these types, never a manager stage, so the same agent runs in-process or over the network.

use crate::Id;
use crate::node::NodeDescription;
use crate::task::{Task, TaskStatus};

/// What one node must run. A session's first message is the whole set (`complete`); each later
/// one holds only what changed since the message before: tasks added or changed, and the IDs of
/// tasks that left. A write to one task then costs that task on the wire and in the agent, not
/// the node's whole list (Swarm's dispatcher sends incremental assignments for the same reason).
/// Tasks whose desired state is past `running` stay assigned until the store drops them, so the
/// agent stops them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Assignments {
    /// Store version these assignments were computed at.
    pub version: u64,
    /// `tasks` is the whole set: a task the agent runs that is not in it is no longer assigned.
    #[serde(default)]
    pub complete: bool,
    pub tasks: Vec<Task>,
    /// Tasks no longer assigned (only in a message that is not `complete`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Id>,
    /// The secrets and configs this node's tasks use (and only those), whole, when they changed
    /// since the last message; `None`: unchanged. Carried in the same message as the tasks that
    /// need them, so a task never starts before its files arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payloads: Option<crate::payload::Delivery>,
}

impl Assignments {
    /// The whole set.
    pub fn complete(version: u64, tasks: Vec<Task>) -> Self {
        Assignments {
            version,
            complete: true,
            tasks,
            removed: Vec::new(),
            payloads: None,
        }
    }

    /// What changed since the previous message.
    pub fn changes(version: u64, tasks: Vec<Task>, removed: Vec<Id>) -> Self {
        Assignments {
            version,
            complete: false,
            tasks,
            removed,
            payloads: None,
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMessage {
    Node(NodeInfo),
    /// Sent before the assignments that need it, so a task never starts on a network the
    /// node has not heard of.
    Networks(NetworkMap),
    Assignments(Assignments),
}

/// What a node must know to wire its tasks' networks: each overlay one of its tasks is on,
/// where every task of that overlay runs, and the services reachable on it (names and
/// virtual IPs). Sent whole whenever it changes; small next to the assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkMap {
    /// This node's underlay address (the VXLAN source).
    pub local_addr: Option<std::net::Ipv4Addr>,
    /// The UDP port VXLAN runs on (`swarm init --data-path-port`).
    pub data_path_port: u16,
    pub networks: Vec<NetworkPlan>,
    /// Ports published through the routing mesh: every node answers them, the ingress
    /// network (then in `networks` for every node) carrying the connections to the tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<PublishedPort>,
    /// Ports published in host mode by this node's tasks: answered only here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_ports: Vec<HostPort>,
    /// The other nodes' tunnel keys, while this node is on an encrypted overlay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<NodeKey>,
    /// The cluster's current tunnel key (hex), while this node is on an encrypted overlay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_key: Option<String>,
}

/// A node's WireGuard public key (base64) and underlay address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeKey {
    pub addr: std::net::Ipv4Addr,
    pub key: String,
}

impl NetworkMap {
    /// Whether the task gets a namespace of its own even without networks: it publishes a
    /// port in host mode.
    pub fn publishes(&self, task: &Id) -> bool {
        self.host_ports.iter().any(|h| h.task == *task)
    }
}

/// A port published through the routing mesh and the tasks that serve it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub service: Id,
    pub protocol: crate::service::Protocol,
    pub published: u16,
    pub target: u16,
    /// The ready tasks' addresses on the ingress network.
    pub backends: Vec<std::net::Ipv4Addr>,
}

/// A port a task of this node publishes in host mode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostPort {
    pub task: Id,
    pub protocol: crate::service::Protocol,
    pub published: u16,
    pub target: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkPlan {
    pub network: crate::Network,
    /// Every live task's address on this network and the underlay address of its node.
    pub endpoints: Vec<Endpoint>,
    pub services: Vec<ServiceOnNetwork>,
    /// The ingress network only: the underlay address of every node that answers published
    /// ports, each joined to the network so that replies can go back through it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<std::net::Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub task: Id,
    pub addr: std::net::Ipv4Addr,
    pub node: Id,
    pub node_addr: Option<std::net::Ipv4Addr>,
}

/// A service as the tasks on one network see it. A standalone container attached to the
/// network is named here too, as a service without a virtual IP whose one task is ready: its
/// name and aliases then resolve to its address, as Docker's embedded DNS answers them (`id`
/// is its attachment task's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceOnNetwork {
    pub id: Id,
    pub name: String,
    /// Its virtual IP here (endpoint mode `vip`).
    pub vip: Option<std::net::Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Tasks that serve: running (and healthy, where checked) and still wanted.
    pub ready: Vec<std::net::Ipv4Addr>,
}

/// A node asking for a standalone container's place on an attachable overlay (`docker run
/// --network OVERLAY`; Swarm's `AttachNetwork`). The node is the caller: a node attaches only
/// its own containers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttachRequest {
    /// The network's name, ID or ID prefix, as the user wrote it.
    pub network: String,
    /// The container's full ID (64 hex digits).
    pub container_id: String,
    pub container_name: String,
    /// The names it answers to on the network besides its own name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Only check that it could be attached (the network exists and is attachable), writing
    /// nothing: `docker create` refuses early what `docker start` would.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check_only: bool,
}

/// A node giving back a container's places on overlays (Swarm's `DetachNetwork`): the one on
/// `network`, or with `None` every one it has.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DetachRequest {
    pub container_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
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
