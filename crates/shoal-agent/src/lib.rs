//! The node agent. It holds one session with the managers' dispatcher (through
//! [`DispatcherClient`], so it never imports a manager stage), runs the tasks assigned to its node
//! through a [`RuntimeDriver`](shoal_runtime::RuntimeDriver), and reports each task's status as it
//! moves forward.
//!
//! - [`executor`]: the [`Agent`] (session, heartbeats, assignments, adoption) and its pure task
//!   controller.
//!
//! The driver contract, the routing and fake drivers live in `shoal-runtime`; the runtimes
//! themselves in `shoal-native` and `shoal-docker`, which the agent never depends on.

pub mod executor;

pub use executor::{Agent, AgentConfig, AgentError, describe_node};

use async_trait::async_trait;
use futures::stream::BoxStream;
use shoal_types::Id;
use shoal_types::dispatch::{Assignments, SessionRequest, TaskStatusReport};

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The manager cannot serve sessions now (no leader, shutting down); retry later.
    #[error("dispatcher unavailable: {0}")]
    Unavailable(String),
    /// The manager does not know this node (removed from the cluster).
    #[error("node {0} is not part of the cluster")]
    UnknownNode(Id),
}

/// An open session: the node's ID and every change of its assignments, each one complete.
pub struct Session {
    pub node_id: Id,
    pub assignments: BoxStream<'static, Assignments>,
}

/// How an agent reaches the managers. In-process today; over mutual TLS once the cluster spans
/// machines. Implementations must make `report` idempotent: a status the store already has, or an
/// older one, is dropped, never applied backwards.
#[async_trait]
pub trait DispatcherClient: Send + Sync + 'static {
    async fn session(&self, req: SessionRequest) -> Result<Session, DispatchError>;
    async fn report(
        &self,
        node_id: &Id,
        reports: Vec<TaskStatusReport>,
    ) -> Result<(), DispatchError>;
    async fn heartbeat(&self, node_id: &Id) -> Result<std::time::Duration, DispatchError>;
}
