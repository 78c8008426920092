//! The protocol of entering a swarm, apart from the daemon that runs it: founding one
//! (`swarm init`: the cluster with its root CA and join tokens, the first manager's record and
//! certificate, the Raft group's first entries) and joining one (`swarm join`: asking a manager
//! who the swarm is and checking the answer against the CA digest the token names, presenting
//! the token and a CSR for a certificate, and, for a manager, asking the leader for a Raft
//! seat). Calls go over any [`Transport`], so the daemon (mutual TLS) and the simulation (its
//! in-memory network) form clusters through this same code. Time and IDs come in as arguments.
//!
//! Concurrency: free functions; nothing is shared between calls.

use shoal_types::error::chain;
use std::time::Duration;

use shoal_manager::ControlError;
use shoal_pki::{Credentials, JoinToken, RootCa};
use shoal_rpc::{RpcError, Transport, TransportExt};
use shoal_store::{Op, Proposal, Store};
use shoal_types::cluster::{Cluster, ClusterSpec};
use shoal_types::dispatch::{JoinRequest, JoinResponse};
use shoal_types::node::{
    Availability, ManagerStatus, NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus,
    NodeTls, Reachability,
};
use shoal_types::{IdGen, Node, Timestamp};

use crate::remote::LEADER_HINT;
use crate::{NodeError, host_of, wire};

fn pki(what: &str, e: shoal_pki::PkiError) -> NodeError {
    // The wire carries text: the chain, built once here.
    NodeError::Internal(format!("{what}: {}", chain(&e)))
}

/// What `swarm init` makes before anything runs: the cluster object, the first manager's node
/// record, its credentials and its Raft member ID.
pub struct Founding {
    pub cluster: Cluster,
    pub node: Node,
    pub creds: Credentials,
    pub raft_id: u64,
}

/// A new swarm with one manager, advertised at `advertise_addr` (`ip:port`), described by
/// `description`. IDs, secrets and the Raft member ID come from `ids`.
pub fn found(
    spec: ClusterSpec,
    availability: Availability,
    description: NodeDescription,
    advertise_addr: &str,
    now: Timestamp,
    ids: &mut IdGen,
) -> Result<Founding, NodeError> {
    let cluster = shoal_manager::cluster::new_cluster(spec, now, ids)
        .map_err(|e| NodeError::Internal(chain(&e)))?;
    let node_id = ids.next_id();
    let raft_id = ids.next_u64().max(1);
    let ca = RootCa::from_pem(&cluster.root_ca.cert_pem, Some(&cluster.root_ca.key_pem))
        .map_err(|e| pki("the new root CA", e))?;
    let (key_pem, csr) = shoal_pki::new_key_and_csr().map_err(|e| pki("a key for this node", e))?;
    let cert_pem = ca
        .issue(
            &csr,
            &node_id,
            NodeRole::Manager,
            cluster.id.as_str(),
            cluster.spec.node_cert_expiry,
            now,
        )
        .map_err(|e| pki("this node's certificate", e))?;
    let creds = Credentials {
        key_pem,
        cert_pem,
        intermediate_pem: None,
        trust: vec![cluster.root_ca.cert_pem.clone()],
    };
    let node = Node {
        id: node_id,
        meta: Default::default(),
        spec: NodeSpec {
            role: NodeRole::Manager,
            availability,
            ..Default::default()
        },
        description,
        status: NodeStatus {
            state: NodeState::Ready,
            message: String::new(),
            addr: host_of(advertise_addr),
            endpoint: advertise_addr.to_string(),
            since: now,
        },
        manager: Some(ManagerStatus {
            raft_id,
            addr: advertise_addr.to_string(),
            reachability: Reachability::Reachable,
        }),
        tls: NodeTls {
            issuer_digest: cluster.root_ca.digest.clone(),
            not_after: now.add(cluster.spec.node_cert_expiry),
        },
    };
    Ok(Founding {
        cluster,
        node,
        creds,
        raft_id,
    })
}

/// Founds the Raft group on `store` (this member alone, at `addr`), waits for it to lead, and
/// writes the swarm's first objects.
pub async fn bootstrap_store(
    store: &Store,
    addr: &str,
    cluster: Cluster,
    node: Node,
    now: Timestamp,
) -> Result<(), NodeError> {
    store
        .bootstrap(addr)
        .await
        .map_err(|e| NodeError::Internal(chain(&e)))?;
    if store
        .wait_for_leader(Duration::from_secs(10))
        .await
        .is_none()
    {
        return Err(NodeError::Internal(
            "the new raft group elected no leader".into(),
        ));
    }
    let ops = vec![
        Op::PutCluster {
            cluster,
            expect_version: None,
        },
        Op::CreateNode(node),
    ];
    let applied = store
        .propose(Proposal::atomic(now, ops))
        .await
        .map_err(|e| NodeError::Internal(chain(&e)))?;
    if let Some(e) = applied.first_error() {
        return Err(NodeError::Internal(format!(
            "creating the swarm: {}",
            chain(e)
        )));
    }
    Ok(())
}

/// Asks the managers at `remotes`, in order, who the swarm is (its trusted roots), and checks
/// that one of those roots is the CA the token names. Returns the manager that answered and the
/// roots. Over an unverified transport: the digest check is what makes the answer trustworthy.
pub async fn find_swarm<T: Transport>(
    unverified: &T,
    remotes: &[String],
    token: &JoinToken,
) -> Result<(String, Vec<String>), NodeError> {
    let mut errors = Vec::new();
    let mut found = None;
    for r in remotes {
        match unverified.call::<_, wire::CaReply>(r, wire::CA, &()).await {
            Ok(ca) => {
                found = Some((r.clone(), ca.trust));
                break;
            }
            Err(e) => errors.push(format!("{r}: {}", chain(&e))),
        }
    }
    let Some((remote, trust)) = found else {
        return Err(NodeError::Unavailable(format!(
            "could not reach a manager: {}",
            errors.join("; ")
        )));
    };
    let named = trust
        .iter()
        .any(|pem| RootCa::from_pem(pem, None).is_ok_and(|ca| ca.digest() == token.ca_digest));
    if !named {
        return Err(NodeError::invalid(
            "JoinToken",
            format!(
                "the manager at {remote} does not serve the swarm this token is for (the token names another root CA)"
            ),
        ));
    }
    Ok((remote, trust))
}

/// Presents the token and a CSR to the manager at `remote`; its answer is this node's identity
/// and certificate.
pub async fn request_join<T: Transport>(
    verified: &T,
    remote: &str,
    req: &JoinRequest,
) -> Result<JoinResponse, NodeError> {
    verified
        .call(remote, wire::JOIN, req)
        .await
        .map_err(|e| match e {
            // The manager refused: its status and message, as its own caller would get them. A
            // refused request names its field already ("JoinToken: ...").
            RpcError::Status { code: 400, message } => {
                ControlError::from_status(400, message).into()
            }
            RpcError::Status { code, message } => {
                ControlError::from_status(code, format!("joining through {remote}: {message}"))
                    .into()
            }
            other => NodeError::Unavailable(format!("joining through {remote}: {other}")),
        })
}

/// Asks for a seat among the Raft voters, following "not the leader" hints, until the leader
/// has added this member (after it caught up): `rounds` passes over `candidates()` (asked anew
/// each round, since what the node knows of the managers changes), `pause` apart.
pub async fn take_raft_seat<T: Transport>(
    t: &T,
    candidates: impl Fn() -> Vec<String>,
    req: &wire::RaftJoin,
    rounds: usize,
    pause: Duration,
) -> Result<(), NodeError> {
    let mut last = String::new();
    for _ in 0..rounds {
        let mut candidates = candidates();
        candidates.retain(|m| *m != req.addr);
        let mut i = 0;
        while i < candidates.len() {
            let m = candidates[i].clone();
            i += 1;
            match t
                .call::<_, serde_json::Value>(&m, wire::RAFT_JOIN, req)
                .await
            {
                Ok(_) => return Ok(()),
                Err(RpcError::Status { code: 421, message }) => {
                    if let Some(l) = message.strip_prefix(LEADER_HINT) {
                        candidates.insert(i, l.trim().to_string());
                    }
                    last = message;
                }
                Err(e) => last = format!("{m}: {}", chain(&e)),
            }
        }
        tokio::time::sleep(pause).await;
    }
    Err(NodeError::Unavailable(format!(
        "no leader added this manager to the raft group: {last}"
    )))
}
