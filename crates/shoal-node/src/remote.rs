//! The agent's way to the dispatcher over the network: a session with the leader (found by
//! asking any known manager), failing over to another manager when it goes away. What the
//! session says about the node itself (role, trust, removal) is published for the node's own
//! lifecycle; tasks go to the agent.
//!
//! Generic over its [`Transport`]: real nodes use [`RpcClient`] (mutual TLS, HTTP/2), the
//! simulation its in-memory network, so the failover logic here is what the simulation tests.

use shoal_types::error::chain;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use shoal_agent::{DispatchError, DispatcherClient, Session};
use shoal_rpc::{RpcClient, RpcError, Transport, TransportExt};
use shoal_types::Id;
use shoal_types::dispatch::{
    NetworkMap, NodeInfo, SessionMessage, SessionRequest, TaskStatusReport,
};
use tokio::sync::watch;

use crate::wire;

/// The prefix of a 421 answer's message naming the leader.
pub const LEADER_HINT: &str = "not the leader; the leader is at ";

pub struct RemoteDispatcher<T = RpcClient> {
    client: T,
    node_id: Id,
    endpoint: String,
    /// Known manager endpoints, the leader first; the session keeps it current.
    managers: Arc<Mutex<Vec<String>>>,
    current: Mutex<Option<String>>,
    info: watch::Sender<Option<NodeInfo>>,
    networks: watch::Sender<Arc<NetworkMap>>,
}

impl<T: Transport> RemoteDispatcher<T> {
    pub fn new(client: T, node_id: Id, endpoint: String, managers: Vec<String>) -> Self {
        let (info, _) = watch::channel(None);
        let (networks, _) = watch::channel(Arc::default());
        RemoteDispatcher {
            client,
            node_id,
            endpoint,
            managers: Arc::new(Mutex::new(managers)),
            current: Mutex::new(None),
            info,
            networks,
        }
    }

    /// The networks this node's tasks are on, as the managers last described them.
    pub fn network_map(&self) -> watch::Receiver<Arc<NetworkMap>> {
        self.networks.subscribe()
    }

    /// What the managers last said about this node.
    pub fn node_info(&self) -> watch::Receiver<Option<NodeInfo>> {
        self.info.subscribe()
    }

    pub fn managers(&self) -> Vec<String> {
        self.managers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn current(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn unavailable(e: RpcError) -> DispatchError {
        DispatchError::Unavailable(chain(&e))
    }
}

#[async_trait]
impl<T: Transport> DispatcherClient for RemoteDispatcher<T> {
    async fn session(&self, req: SessionRequest) -> Result<Session, DispatchError> {
        let open = wire::SessionOpen {
            description: req.description,
            endpoint: self.endpoint.clone(),
        };
        let mut candidates = self.managers();
        let mut tried = Vec::new();
        let mut errors = Vec::new();
        while let Some(addr) = candidates.first().cloned() {
            candidates.remove(0);
            if tried.contains(&addr) {
                continue;
            }
            tried.push(addr.clone());
            match self
                .client
                .stream::<_, SessionMessage>(&addr, wire::SESSION, &open)
                .await
            {
                Ok(mut stream) => {
                    *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr.clone());
                    let (tx, rx) = tokio::sync::mpsc::channel(4);
                    let (info, managers) = (self.info.clone(), self.managers.clone());
                    let networks = self.networks.clone();
                    tokio::spawn(async move {
                        while let Some(msg) = stream.next().await {
                            match msg {
                                Ok(SessionMessage::Node(n)) => {
                                    if !n.managers.is_empty() {
                                        *managers.lock().unwrap_or_else(|p| p.into_inner()) =
                                            n.managers.clone();
                                    }
                                    info.send_replace(Some(n));
                                }
                                // Published before the assignments that follow it are
                                // passed on, so a task's networks are known when it starts.
                                Ok(SessionMessage::Networks(m)) => {
                                    networks.send_replace(Arc::new(m));
                                }
                                Ok(SessionMessage::Assignments(a)) => {
                                    if tx.send(a).await.is_err() {
                                        return;
                                    }
                                }
                                Err(e) => {
                                    tracing::info!(error = %shoal_types::error::Chain(&e), "dispatcher session ended");
                                    return;
                                }
                            }
                        }
                        tracing::info!("dispatcher session closed by the manager");
                    });
                    return Ok(Session {
                        node_id: self.node_id.clone(),
                        assignments: Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)),
                    });
                }
                Err(RpcError::Status { code: 421, message }) => {
                    if let Some(leader) = message.strip_prefix(LEADER_HINT) {
                        candidates.insert(0, leader.trim().to_string());
                    }
                    errors.push(format!("{addr}: {message}"));
                }
                Err(RpcError::Status { code: 404, .. }) => {
                    return Err(DispatchError::UnknownNode(self.node_id.clone()));
                }
                Err(e) => errors.push(format!("{addr}: {}", chain(&e))),
            }
        }
        Err(DispatchError::Unavailable(format!(
            "no manager serves a session: {}",
            errors.join("; ")
        )))
    }

    async fn report(
        &self,
        node_id: &Id,
        reports: Vec<TaskStatusReport>,
    ) -> Result<(), DispatchError> {
        let _ = node_id;
        let addr = self
            .current()
            .ok_or_else(|| DispatchError::Unavailable("no session".into()))?;
        self.client
            .call::<_, serde_json::Value>(&addr, wire::REPORT, &reports)
            .await
            .map(|_| ())
            .map_err(Self::unavailable)
    }

    async fn heartbeat(&self, node_id: &Id) -> Result<Duration, DispatchError> {
        let _ = node_id;
        let addr = self
            .current()
            .ok_or_else(|| DispatchError::Unavailable("no session".into()))?;
        match self
            .client
            .call::<_, wire::HeartbeatReply>(&addr, wire::HEARTBEAT, &())
            .await
        {
            Ok(r) => Ok(r.period),
            Err(RpcError::Status { code: 404, .. }) => {
                Err(DispatchError::Unavailable("the session is gone".into()))
            }
            Err(e) => Err(Self::unavailable(e)),
        }
    }
}
