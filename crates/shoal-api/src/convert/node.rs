//! Nodes.

use bollard_stubs::models as w;
use shoal_control::RaftMembership;
use shoal_types::Node;
use shoal_types::node::{Availability, NodeRole, NodeSpec, NodeState};

use super::{labels_in, labels_out, time, version};
use crate::error::ApiError;

pub fn spec_in(s: w::NodeSpec) -> Result<NodeSpec, ApiError> {
    Ok(NodeSpec {
        name: s.name.unwrap_or_default(),
        labels: labels_in(s.labels),
        role: match s.role {
            Some(w::NodeSpecRoleEnum::MANAGER) => NodeRole::Manager,
            Some(w::NodeSpecRoleEnum::WORKER) => NodeRole::Worker,
            _ => {
                return Err(ApiError::invalid(
                    "Role",
                    "must be \"worker\" or \"manager\"",
                ));
            }
        },
        availability: match s.availability {
            Some(w::NodeSpecAvailabilityEnum::ACTIVE) => Availability::Active,
            Some(w::NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
            Some(w::NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
            _ => {
                return Err(ApiError::invalid(
                    "Availability",
                    "must be \"active\", \"pause\" or \"drain\"",
                ));
            }
        },
    })
}

/// What the API says of a node. A manager is reachable when it is a Raft voter whose node is up
/// (its agent keeps a session); `voters` are the current Raft voters.
pub fn node_out(
    n: &Node,
    raft: &RaftMembership,
    cluster: Option<&shoal_types::cluster::Cluster>,
) -> w::Node {
    let (leader_raft_id, voters) = (raft.leader, &raft.voters);
    let d = &n.description;
    w::Node {
        id: Some(n.id.to_string()),
        version: version(n.meta.version),
        created_at: time(n.meta.created_at),
        updated_at: time(n.meta.updated_at),
        spec: Some(w::NodeSpec {
            name: (!n.spec.name.is_empty()).then(|| n.spec.name.clone()),
            labels: labels_out(&n.spec.labels),
            role: Some(match n.spec.role {
                NodeRole::Manager => w::NodeSpecRoleEnum::MANAGER,
                NodeRole::Worker => w::NodeSpecRoleEnum::WORKER,
            }),
            availability: Some(match n.spec.availability {
                Availability::Active => w::NodeSpecAvailabilityEnum::ACTIVE,
                Availability::Pause => w::NodeSpecAvailabilityEnum::PAUSE,
                Availability::Drain => w::NodeSpecAvailabilityEnum::DRAIN,
            }),
        }),
        description: Some(w::NodeDescription {
            hostname: Some(d.hostname.clone()),
            platform: Some(w::Platform {
                architecture: Some(d.platform.arch.clone()),
                os: Some(d.platform.os.clone()),
            }),
            resources: Some(w::ResourceObject {
                nano_cpus: Some(d.resources.nano_cpus),
                memory_bytes: Some(d.resources.memory_bytes),
                generic_resources: super::generic::list_out(&d.generic_resources),
            }),
            engine: Some(w::EngineDescription {
                engine_version: Some(d.engine.version.clone()),
                labels: labels_out(&d.engine.labels),
                plugins: None,
            }),
            tls_info: super::swarm::node_tls_info(cluster, &n.tls.issuer_digest),
        }),
        status: Some(w::NodeStatus {
            state: Some(match n.status.state {
                NodeState::Unknown => w::NodeState::UNKNOWN,
                NodeState::Down => w::NodeState::DOWN,
                NodeState::Ready => w::NodeState::READY,
                NodeState::Disconnected => w::NodeState::DISCONNECTED,
            }),
            message: (!n.status.message.is_empty()).then(|| n.status.message.clone()),
            addr: Some(n.status.addr.clone()),
        }),
        manager_status: n.manager.as_ref().map(|m| {
            let leader = leader_raft_id == Some(m.raft_id);
            let reachable =
                leader || (voters.contains(&m.raft_id) && n.status.state == NodeState::Ready);
            w::ManagerStatus {
                leader: Some(leader),
                reachability: Some(if reachable {
                    w::Reachability::REACHABLE
                } else {
                    w::Reachability::UNREACHABLE
                }),
                addr: Some(m.addr.clone()),
            }
        }),
    }
}
