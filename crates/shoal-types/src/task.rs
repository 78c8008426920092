//! Tasks and their life cycle. A task's observed state only moves forward, in Swarm's order, so
//! every stage can apply a state change without a lock: an older report never undoes a newer one.

use std::collections::BTreeMap;

use crate::service::TaskSpec;
use crate::{Id, Meta, Timestamp};

/// Swarm's task states, in life-cycle order; the derived `Ord` is that order.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    #[default]
    New,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
}

impl TaskState {
    pub const ALL: [TaskState; 14] = [
        TaskState::New,
        TaskState::Pending,
        TaskState::Assigned,
        TaskState::Accepted,
        TaskState::Preparing,
        TaskState::Ready,
        TaskState::Starting,
        TaskState::Running,
        TaskState::Complete,
        TaskState::Shutdown,
        TaskState::Failed,
        TaskState::Rejected,
        TaskState::Remove,
        TaskState::Orphaned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        TaskState::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// The task's process has ended (or will never start).
    pub fn is_terminal(self) -> bool {
        self >= TaskState::Complete
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskStatus {
    pub state: TaskState,
    /// When the task entered `state`.
    pub timestamp: Timestamp,
    #[serde(default)]
    pub message: String,
    /// Why the task failed or cannot be scheduled; empty when all is well.
    #[serde(default)]
    pub err: String,
    #[serde(default)]
    pub runtime: Option<RuntimeStatus>,
}

/// What the node's runtime reports about the task's process.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeStatus {
    pub container_id: String,
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub exit_code: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub id: Id,
    pub meta: Meta,
    pub service_id: Id,
    /// The service's name when the task was made, for task names and log details.
    pub service_name: String,
    /// The service's labels when the task was made: templates in the spec (`{{.Service.Labels.K}}`)
    /// are expanded on the node, which knows nothing else of the service.
    #[serde(default)]
    pub service_labels: BTreeMap<String, String>,
    /// Replica slot (1-based) for replicated services; 0 for global ones.
    pub slot: u64,
    /// The node the task runs on: set by the scheduler, or at creation for global services.
    #[serde(default)]
    pub node_id: Option<Id>,
    pub spec: TaskSpec,
    pub desired_state: TaskState,
    pub status: TaskStatus,
    /// When earlier tasks of this slot were restarted, newest last, kept to count restart
    /// attempts within the restart window after older tasks are pruned.
    #[serde(default)]
    pub restart_history: Vec<Timestamp>,
    /// The generic resources the scheduler gave this task on its node: the specific named units
    /// (e.g. which GPUs) and discrete counts. Set with the node; the agent exposes them to the
    /// task as `DOCKER_RESOURCE_<KIND>` variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assigned_generic_resources: Vec<crate::GenericResource>,
    /// The task's address on each of its networks, given by the store when the task is made
    /// and taken back when the task ends (the record keeps it, for `inspect`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    /// Set on a network attachment: a standalone container's place on an attachable overlay
    /// (`docker run --network OVERLAY`, Swarm's attachment task). Such a task belongs to no
    /// service (`service_id` is empty), is made on its node (never scheduled), holds exactly
    /// one entry in `networks`, and is never run by an agent: the container it stands for is
    /// the node's engine's. It lives until the engine detaches it or its node is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<ContainerAttachment>,
}

/// The container a network attachment stands for: what its node wires it into (the
/// container's namespace is the one of the runtime task named after its ID) and the name the
/// overlay's DNS answers for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerAttachment {
    /// The container's full ID (64 hex digits).
    pub container_id: String,
    pub container_name: String,
}

/// A task on one network: `NetworksAttachments` in Docker's task.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkAttachment {
    pub network: Id,
    /// The address with the network's prefix length (`10.0.1.5/24`).
    pub addr: shoal_ipam::Ipv4Net,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl Task {
    /// Swarm's task name: `service.slot.id` for replicated, `service.node.id` for global.
    pub fn name(&self) -> String {
        if self.slot > 0 {
            format!("{}.{}.{}", self.service_name, self.slot, self.id)
        } else {
            let node = self.node_id.as_ref().map(Id::as_str).unwrap_or("");
            format!("{}.{}.{}", self.service_name, node, self.id)
        }
    }

    /// Whether this is a standalone container's network attachment, not a service's task.
    pub fn is_attachment(&self) -> bool {
        self.attachment.is_some()
    }

    /// Whether the task still holds (or is about to hold) its slot: not yet terminal and wanted.
    pub fn is_live(&self) -> bool {
        !self.status.state.is_terminal() && self.desired_state <= TaskState::Running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_as_swarm_and_round_trip() {
        for w in TaskState::ALL.windows(2) {
            assert!(w[0] < w[1]);
        }
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).expect("serialises");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert!(TaskState::Complete.is_terminal());
        assert!(!TaskState::Running.is_terminal());
    }
}
