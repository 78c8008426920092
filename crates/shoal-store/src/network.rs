//! How Raft members reach each other. The store does not know the wire: a [`RaftTransport`]
//! (mutual-TLS RPC between managers, provided by the node) carries openraft's messages and
//! forwarded proposals. Without one (a single manager) every peer is unreachable.

use std::sync::Arc;

use async_trait::async_trait;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::ops::{Applied, Proposal};
use crate::{ProposeError, TypeConfig};

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached (refused, timed out, TLS failed); the cause says how.
    #[error("raft member at {addr} is unreachable")]
    Unreachable {
        addr: String,
        #[source]
        source: shoal_types::error::Cause,
    },
    /// The peer answered with an error (its message, as it came over the wire).
    #[error("raft member at {addr}: {why}")]
    Remote { addr: String, why: String },
}

/// Carries Raft traffic to the member at `addr` (its advertise address).
#[async_trait]
pub trait RaftTransport: Send + Sync + 'static {
    async fn append_entries(
        &self,
        addr: &str,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<u64>, TransportError>;
    async fn vote(
        &self,
        addr: &str,
        req: VoteRequest<u64>,
    ) -> Result<VoteResponse<u64>, TransportError>;
    async fn install_snapshot(
        &self,
        addr: &str,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<u64>, TransportError>;
    /// Asks the leader at `addr` to apply a proposal (a follower forwarding a write).
    async fn propose(&self, addr: &str, p: Proposal) -> Result<Applied, ProposeError>;
}

#[derive(Clone, Default)]
pub struct Network {
    transport: Option<Arc<dyn RaftTransport>>,
}

impl Network {
    pub fn new(transport: Arc<dyn RaftTransport>) -> Self {
        Network {
            transport: Some(transport),
        }
    }

    pub fn transport(&self) -> Option<&Arc<dyn RaftTransport>> {
        self.transport.as_ref()
    }
}

pub struct Peer {
    target: u64,
    addr: String,
    transport: Option<Arc<dyn RaftTransport>>,
}

#[derive(Debug, thiserror::Error)]
#[error("no transport to raft member {0}: this manager runs without peers")]
struct NoTransport(u64);

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
        }
    }
}

fn rpc_error<E: std::error::Error>(e: TransportError) -> RPCError<u64, BasicNode, E> {
    match e {
        TransportError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        TransportError::Remote { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

impl Peer {
    #[allow(clippy::result_large_err)] // openraft's own error type, returned as is
    fn transport<E: std::error::Error>(
        &self,
    ) -> Result<&Arc<dyn RaftTransport>, RPCError<u64, BasicNode, E>> {
        self.transport
            .as_ref()
            .ok_or_else(|| RPCError::Unreachable(Unreachable::new(&NoTransport(self.target))))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.transport()?
            .append_entries(&self.addr, rpc)
            .await
            .map_err(rpc_error)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        self.transport()?
            .install_snapshot(&self.addr, rpc)
            .await
            .map_err(rpc_error)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.transport()?
            .vote(&self.addr, rpc)
            .await
            .map_err(rpc_error)
    }
}
