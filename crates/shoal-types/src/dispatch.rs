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
