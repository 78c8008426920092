//! The agent's way to the dispatcher when both live in one process. It is the only place where
//! agent and manager meet, through the agent's own `DispatcherClient` trait.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shoal_agent::{DispatchError, DispatcherClient, Session};
use shoal_manager::{ControlError, Dispatcher};
use shoal_types::Id;
use shoal_types::dispatch::{SessionRequest, TaskStatusReport};

pub struct LocalDispatcher {
    pub dispatcher: Arc<Dispatcher>,
    pub node_id: Id,
    pub addr: String,
}

fn map(e: ControlError) -> DispatchError {
    match e {
        ControlError::NotFound { name, .. } => DispatchError::UnknownNode(Id::from_raw(name)),
        other => DispatchError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl DispatcherClient for LocalDispatcher {
    async fn session(&self, req: SessionRequest) -> Result<Session, DispatchError> {
        let node_id = req.node_id.unwrap_or_else(|| self.node_id.clone());
        let assignments = self
            .dispatcher
            .open_session(&node_id, req.description, self.addr.clone())
            .await
            .map_err(map)?;
        Ok(Session {
            node_id,
            assignments,
        })
    }

    async fn report(
        &self,
        node_id: &Id,
        reports: Vec<TaskStatusReport>,
    ) -> Result<(), DispatchError> {
        self.dispatcher.report(node_id, reports).await.map_err(map)
    }

    async fn heartbeat(&self, node_id: &Id) -> Result<Duration, DispatchError> {
        self.dispatcher.heartbeat(node_id).map_err(map)
    }
}
