//! Raft between managers over the node-to-node RPC: mutual TLS and HTTP/2 on real nodes
//! ([`RpcClient`]), the in-memory network in the simulation (any [`Transport`]).

use async_trait::async_trait;
use base64::Engine;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use shoal_rpc::{RpcClient, RpcError, Transport, TransportExt};
use shoal_store::network::{RaftTransport, TransportError};
use shoal_store::{Applied, Proposal, ProposeError, TypeConfig};

use crate::wire;

pub struct RpcRaft<T = RpcClient> {
    pub client: T,
}

fn map(addr: &str, e: RpcError) -> TransportError {
    match e {
        RpcError::Status { code, message } => TransportError::Remote {
            addr: addr.into(),
            why: format!("{code}: {message}"),
        },
        other => TransportError::Unreachable {
            addr: addr.into(),
            source: shoal_types::error::Cause::new(other),
        },
    }
}

#[async_trait]
impl<T: Transport> RaftTransport for RpcRaft<T> {
    async fn append_entries(
        &self,
        addr: &str,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<u64>, TransportError> {
        self.client
            .call(addr, wire::RAFT_APPEND, &req)
            .await
            .map_err(|e| map(addr, e))
    }

    async fn vote(
        &self,
        addr: &str,
        req: VoteRequest<u64>,
    ) -> Result<VoteResponse<u64>, TransportError> {
        self.client
            .call(addr, wire::RAFT_VOTE, &req)
            .await
            .map_err(|e| map(addr, e))
    }

    async fn install_snapshot(
        &self,
        addr: &str,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<u64>, TransportError> {
        let chunk = wire::SnapshotChunk {
            vote: req.vote,
            meta: req.meta,
            offset: req.offset,
            data: base64::engine::general_purpose::STANDARD.encode(&req.data),
            done: req.done,
        };
        self.client
            .call(addr, wire::RAFT_SNAPSHOT, &chunk)
            .await
            .map_err(|e| map(addr, e))
    }

    async fn propose(&self, addr: &str, p: Proposal) -> Result<Applied, ProposeError> {
        match self
            .client
            .call::<_, wire::ProposeReply>(addr, wire::RAFT_PROPOSE, &p)
            .await
        {
            Ok(reply) => reply.into(),
            // NoQuorum's reason is text (it crosses the wire in Docker's message): the RPC
            // error's whole chain goes in it.
            Err(e) => Err(ProposeError::NoQuorum(format!(
                "the leader at {addr} did not answer: {}",
                shoal_types::error::chain(&e)
            ))),
        }
    }
}
