//! The cluster's identity and trust: creating a swarm (its root CA and join tokens), admitting
//! nodes that present a valid token, issuing and renewing their certificates, rotating tokens
//! and the root CA. Pure where it can be (`new_cluster`, `rotation_step`); the rest are control
//! calls that validate and write through the store.

use shoal_types::error::chain;
use std::time::Duration;

use shoal_pki::{JoinToken, RootCa};
use shoal_store::{Op, State};
use shoal_types::cluster::{
    Cluster, ClusterSpec, JoinTokens, RootCa as StoredCa, RootRotation, TUNNEL_KEY_ROTATION,
    TunnelKey,
};
use shoal_types::dispatch::{JoinRequest, JoinResponse, RenewRequest, RenewResponse};
use shoal_types::node::{
    ManagerStatus, NodeRole, NodeSpec, NodeState, NodeStatus, NodeTls, Reachability,
};
use shoal_types::{Id, IdGen, Node, Timestamp};

use crate::error::ControlError;

/// How long a root CA is valid (Swarm: 20 years).
const ROOT_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);

/// Docker's words for a token that does not admit.
const INVALID_TOKEN: &str = "A valid join token is necessary to join this cluster";

fn pki(what: &str, e: shoal_pki::PkiError) -> ControlError {
    // The wire carries text: the chain, built once here.
    ControlError::Internal(format!("{what}: {}", chain(&e)))
}

fn stored(ca: &RootCa) -> Result<StoredCa, ControlError> {
    Ok(StoredCa {
        cert_pem: ca.cert_pem.clone(),
        key_pem: ca
            .key_pem()
            .ok_or(ControlError::Internal("a new root CA has no key".into()))?
            .to_string(),
        digest: ca.digest(),
    })
}

fn signing(ca: &StoredCa) -> Result<RootCa, ControlError> {
    RootCa::from_pem(&ca.cert_pem, Some(&ca.key_pem)).map_err(|e| pki("the stored root CA", e))
}

/// A new swarm's cluster object: its root CA and join tokens.
pub fn new_cluster(
    spec: ClusterSpec,
    now: Timestamp,
    ids: &mut IdGen,
) -> Result<Cluster, ControlError> {
    let id = ids.next_id();
    let ca = RootCa::generate(id.as_str(), ROOT_VALIDITY, now)
        .map_err(|e| pki("creating the root CA", e))?;
    let join_tokens = JoinTokens {
        worker: JoinToken::generate(&ca, ids).to_string(),
        manager: JoinToken::generate(&ca, ids).to_string(),
    };
    let mut c = Cluster {
        id,
        meta: Default::default(),
        spec,
        join_tokens,
        root_ca: stored(&ca)?,
        ..Default::default()
    };
    // `swarm init --autolock`: the first manager locks its keys from the start.
    crate::autolock::unlock_key_step(None, &mut c, false)?;
    Ok(c)
}

/// The root that signs now (the new one during a rotation) and the intermediate to send along.
pub(crate) fn issuer(c: &Cluster) -> Result<(RootCa, Option<String>, String), ControlError> {
    match &c.root_rotation {
        Some(r) => Ok((
            signing(&r.next)?,
            Some(r.cross_signed_pem.clone()),
            r.next.digest.clone(),
        )),
        None => Ok((signing(&c.root_ca)?, None, c.root_ca.digest.clone())),
    }
}

/// Which role `token` admits to, if any. The digest must name this cluster's CA (or the one a
/// rotation is moving to); the secret is compared in constant time.
pub fn admits(c: &Cluster, token: &str) -> Result<NodeRole, ControlError> {
    let presented =
        JoinToken::parse(token).map_err(|e| ControlError::invalid("JoinToken", chain(&e)))?;
    let refuse = || ControlError::invalid("JoinToken", INVALID_TOKEN);
    let digest_ok = presented.ca_digest == c.root_ca.digest
        || c.root_rotation
            .as_ref()
            .is_some_and(|r| r.next.digest == presented.ca_digest);
    if !digest_ok {
        return Err(refuse());
    }
    for (stored, role) in [
        (&c.join_tokens.worker, NodeRole::Worker),
        (&c.join_tokens.manager, NodeRole::Manager),
    ] {
        if let Ok(t) = JoinToken::parse(stored)
            && t.same_secret(&presented)
        {
            return Ok(role);
        }
    }
    Err(refuse())
}

/// Admits a node: checks its token, creates its node object, signs its certificate. Returns
/// the ops to write and the answer to send once they are written.
pub fn join(
    view: &State,
    req: &JoinRequest,
    now: Timestamp,
    ids: &mut IdGen,
) -> Result<(Vec<Op>, JoinResponse), ControlError> {
    let c = view
        .cluster()
        .ok_or_else(|| ControlError::Unavailable("the swarm is not initialised".into()))?;
    let role = admits(c, &req.token)?;
    let node_id = ids.next_id();
    let (ca, intermediate, issuer_digest) = issuer(c)?;
    let cert_pem = ca
        .issue(
            &req.csr_pem,
            &node_id,
            role,
            c.id.as_str(),
            c.spec.node_cert_expiry,
            now,
        )
        .map_err(|e| ControlError::invalid("CSR", chain(&e)))?;
    let raft_id = (role == NodeRole::Manager).then(|| ids.next_u64().max(1));
    let host = req
        .advertise_addr
        .rsplit_once(':')
        .map_or(req.advertise_addr.as_str(), |(h, _)| h)
        .to_string();
    let node = Node {
        id: node_id.clone(),
        meta: Default::default(),
        spec: NodeSpec {
            role,
            availability: req.availability,
            ..Default::default()
        },
        description: req.description.clone(),
        status: NodeStatus {
            state: NodeState::Unknown,
            message: "joined; waiting for its agent".into(),
            addr: host,
            endpoint: req.advertise_addr.clone(),
            since: now,
        },
        manager: raft_id.map(|raft_id| ManagerStatus {
            raft_id,
            addr: req.advertise_addr.clone(),
            reachability: Reachability::Unknown,
        }),
        tls: NodeTls {
            issuer_digest,
            not_after: now.add(c.spec.node_cert_expiry),
        },
    };
    let resp = JoinResponse {
        node_id,
        cluster_id: c.id.clone(),
        role,
        raft_id,
        cert_pem,
        intermediate_pem: intermediate,
        trust: c.trust(),
        issuer_digest: node.tls.issuer_digest.clone(),
        managers: manager_endpoints(view),
    };
    Ok((vec![Op::CreateNode(node)], resp))
}

/// Issues a node a fresh certificate for the role the store gives it now.
pub fn renew(
    view: &State,
    node_id: &Id,
    req: &RenewRequest,
    now: Timestamp,
) -> Result<(Vec<Op>, RenewResponse), ControlError> {
    let c = view
        .cluster()
        .ok_or_else(|| ControlError::Unavailable("the swarm is not initialised".into()))?;
    let node = view
        .node(node_id)
        .filter(|_| !c.removed_nodes.contains(node_id))
        .ok_or_else(|| ControlError::NotFound {
            kind: "node",
            name: node_id.to_string(),
        })?;
    let role = node.spec.role;
    let (ca, intermediate, issuer_digest) = issuer(c)?;
    let cert_pem = ca
        .issue(
            &req.csr_pem,
            node_id,
            role,
            c.id.as_str(),
            c.spec.node_cert_expiry,
            now,
        )
        .map_err(|e| ControlError::invalid("CSR", chain(&e)))?;
    let mut next = (**node).clone();
    next.tls = NodeTls {
        issuer_digest: issuer_digest.clone(),
        not_after: now.add(c.spec.node_cert_expiry),
    };
    // Based on the version read: a manager whose view lags (a follower, or a leader that just
    // removed itself from the group) must not write back a node as it was before a demotion.
    let ops = vec![Op::UpdateNode {
        node: next,
        expect_version: Some(node.meta.version),
    }];
    Ok((
        ops,
        RenewResponse {
            role,
            cert_pem,
            intermediate_pem: intermediate,
            trust: c.trust(),
            issuer_digest,
        },
    ))
}

/// RPC endpoints of the managers.
pub fn manager_endpoints(view: &State) -> Vec<String> {
    view.nodes()
        .filter(|n| n.spec.role == NodeRole::Manager && !n.status.endpoint.is_empty())
        .map(|n| n.status.endpoint.clone())
        .collect()
}

/// Applies what `swarm update` asks beyond the spec: fresh join tokens, or a new root CA.
pub fn rotate(
    cur: &Cluster,
    next: &mut Cluster,
    rotate_worker: bool,
    rotate_manager: bool,
    now: Timestamp,
    ids: &mut IdGen,
) -> Result<(), ControlError> {
    let current = signing(&cur.root_ca)?;
    if rotate_worker {
        next.join_tokens.worker = JoinToken::generate(&current, ids).to_string();
    }
    if rotate_manager {
        next.join_tokens.manager = JoinToken::generate(&current, ids).to_string();
    }
    if next.spec.ca_force_rotate != cur.spec.ca_force_rotate {
        let new_root = RootCa::generate(cur.id.as_str(), ROOT_VALIDITY, now)
            .map_err(|e| pki("creating the new root CA", e))?;
        let cross_signed = current
            .cross_sign(&new_root, now)
            .map_err(|e| pki("cross-signing the new root", e))?;
        next.root_rotation = Some(RootRotation {
            next: stored(&new_root)?,
            cross_signed_pem: cross_signed,
        });
    }
    Ok(())
}

/// Finishes a root rotation once every node in the cluster holds a certificate from the new
/// root: the new root becomes the only one, and the join tokens name it.
/// A tunnel key for the cluster when it has none, or a new one when its key has served
/// [`TUNNEL_KEY_ROTATION`]. Nodes take it with their next network map and re-handshake;
/// traffic keeps flowing on the old sessions meanwhile.
pub fn tunnel_key_step(view: &State, now: Timestamp, ids: &mut IdGen) -> Option<Op> {
    let c = view.cluster()?;
    if c.tunnel_key
        .as_ref()
        .is_some_and(|k| now < k.since.add(TUNNEL_KEY_ROTATION))
    {
        return None;
    }
    let mut key = [0u8; 32];
    ids.fill(&mut key);
    let mut next = (**c).clone();
    next.tunnel_key = Some(TunnelKey {
        key: key.iter().map(|b| format!("{b:02x}")).collect(),
        since: now,
    });
    Some(Op::PutCluster {
        cluster: next,
        expect_version: Some(c.meta.version),
    })
}

pub fn rotation_step(view: &State, ids: &mut IdGen) -> Option<Op> {
    let c = view.cluster()?;
    let r = c.root_rotation.as_ref()?;
    let done = view.nodes().all(|n| n.tls.issuer_digest == r.next.digest);
    if !done {
        return None;
    }
    let new_root = signing(&r.next).ok()?;
    let mut next = (**c).clone();
    next.root_ca = r.next.clone();
    next.root_rotation = None;
    next.join_tokens = JoinTokens {
        worker: JoinToken::generate(&new_root, ids).to_string(),
        manager: JoinToken::generate(&new_root, ids).to_string(),
    };
    Some(Op::PutCluster {
        cluster: next,
        expect_version: Some(c.meta.version),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use shoal_store::Proposal;

    use super::*;

    fn apply(s: &mut State, op: Op) {
        let v = s.version + 1;
        let (a, _) = s.apply(v, &Proposal::atomic(Timestamp(v as i64), vec![op]));
        assert!(a.first_error().is_none(), "{a:?}");
    }

    #[test]
    fn the_tunnel_key_is_made_once_and_replaced_when_it_has_served() {
        let mut s = State::default();
        let mut ids = IdGen::seeded(7);
        let t0 = Timestamp::from_unix_nanos(1_000_000_000_000);
        assert!(
            tunnel_key_step(&s, t0, &mut ids).is_none(),
            "no cluster, no key"
        );
        apply(
            &mut s,
            Op::PutCluster {
                cluster: Cluster {
                    id: Id::from_raw("c"),
                    ..Default::default()
                },
                expect_version: None,
            },
        );
        let first = tunnel_key_step(&s, t0, &mut ids).expect("a first key");
        apply(&mut s, first);
        let key = s
            .cluster()
            .and_then(|c| c.tunnel_key.clone())
            .expect("kept");
        assert_eq!(key.key.len(), 64);
        assert!(key.key.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(key.since, t0);
        let later = t0.add(TUNNEL_KEY_ROTATION - Duration::from_secs(1));
        assert!(
            tunnel_key_step(&s, later, &mut ids).is_none(),
            "still fresh"
        );
        let due = t0.add(TUNNEL_KEY_ROTATION);
        let next = tunnel_key_step(&s, due, &mut ids).expect("rotated");
        apply(&mut s, next);
        let new = s
            .cluster()
            .and_then(|c| c.tunnel_key.clone())
            .expect("kept");
        assert_ne!(new.key, key.key);
        assert_eq!(new.since, due);
    }
}
