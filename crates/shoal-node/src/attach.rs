//! The node's engine's way onto the swarm's attachable overlays: a standalone container gets
//! its address on an overlay from a manager (Swarm's network attachment), which records it so
//! that this node's network map carries the overlay and every node on it learns the
//! container's address and names. A manager asks its own control API; a worker asks the
//! managers over the node-to-node RPC ([`wire::ATTACH`], [`wire::DETACH`]), trying each it
//! knows, the leader first. The managers' refusals come back as Docker words them.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shoal_control::ControlError;
use shoal_control::engine::{ContainerNetwork, EngineError};
use shoal_rpc::RpcError;
use shoal_types::Id;
use shoal_types::dispatch::{AttachRequest, DetachRequest};
use shoal_types::error::chain;
use shoal_types::task::NetworkAttachment;

use crate::{Active, Daemon, wire};

/// The containers this daemon attached since it started: a detach for a container neither in
/// here nor in the network map is skipped, so removing a container that was never on an
/// overlay costs no call to the managers (and does not wait for unreachable ones).
#[derive(Default)]
pub(crate) struct Attached(std::sync::Mutex<BTreeSet<String>>);

impl Attached {
    fn set(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A manager's answer that was no success: its HTTP status and message, as every surface
/// carries control errors ([`ControlError::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Refusal {
    status: u16,
    message: String,
}

impl From<ControlError> for Refusal {
    fn from(e: ControlError) -> Self {
        Refusal {
            status: e.status().as_u16(),
            message: chain(&e),
        }
    }
}

/// An attach refusal as Docker words it for `docker run --network NAME`: an unknown network is
/// "network NAME not found"; one that is not attachable is swarmkit's PermissionDenied wrapped
/// by dockerd ("Could not attach to network NAME: rpc error: code = PermissionDenied desc =
/// ...").
fn attach_refused(network: &str, r: Refusal) -> EngineError {
    match r.status {
        404 if r.message.starts_with("network ") => EngineError::NoSuchNetwork(network.to_string()),
        403 => EngineError::Conflict(format!(
            "Could not attach to network {network}: rpc error: code = PermissionDenied desc = {}",
            r.message
        )),
        400 => EngineError::invalid("NetworkingConfig", r.message),
        409 => EngineError::Conflict(format!(
            "Could not attach to network {network}: {}",
            r.message
        )),
        _ => EngineError::Internal(format!(
            "could not attach to network {network}: {}",
            r.message
        )),
    }
}

fn not_in_swarm(network: &str) -> EngineError {
    EngineError::Unsupported(format!(
        "network {network} is not a local network, and this node is not part of a swarm, whose attachable overlay networks are the only others a container can join"
    ))
}

/// Asks the managers `active` knows, the leader first, until one answers. A manager that
/// cannot serve now (no leader, shutting down, not a manager any more) passes the call on to
/// the next; any other answer, success or refusal, is the answer.
async fn ask_managers<Q, R>(active: &Active, path: &str, req: &Q) -> Result<R, Refusal>
where
    Q: Serialize + Sync,
    R: DeserializeOwned + Send + 'static,
{
    let mut managers = active.remote.managers();
    for m in active.identity().managers {
        if !managers.contains(&m) {
            managers.push(m);
        }
    }
    let mut tried = Vec::new();
    for m in managers {
        match active.rpc.call::<_, R>(&m, path, req).await {
            Ok(r) => return Ok(r),
            Err(RpcError::Status { code, message }) if !matches!(code, 421 | 503) => {
                return Err(Refusal {
                    status: code,
                    message,
                });
            }
            Err(e) => tried.push(format!("{m}: {}", chain(&e))),
        }
    }
    Err(Refusal {
        status: 503,
        message: if tried.is_empty() {
            "no manager of the swarm is known to this node".into()
        } else {
            format!("no manager could serve it: {}", tried.join("; "))
        },
    })
}

impl Daemon {
    /// Gives the container `container_id` (named `name`, also answering to `aliases`) its
    /// address on the swarm's attachable overlay `network` (name, ID or ID prefix). Asking
    /// again for the same container and network answers with the same address.
    pub(crate) async fn attach_overlay(
        &self,
        network: &str,
        container_id: &str,
        name: &str,
        aliases: &[String],
    ) -> Result<NetworkAttachment, EngineError> {
        let req = AttachRequest {
            network: network.to_string(),
            container_id: container_id.to_string(),
            container_name: name.to_string(),
            aliases: aliases.to_vec(),
            check_only: false,
        };
        let a: Option<NetworkAttachment> = self.ask_to_attach(&req).await?;
        self.attached.set().insert(container_id.to_string());
        a.ok_or_else(|| {
            EngineError::Internal(format!(
                "attaching to network {network}: the manager answered without an address"
            ))
        })
    }

    /// Whether a container could join the swarm's overlay `network`: it exists and is
    /// attachable (the errors of [`Daemon::attach_overlay`]). Nothing is allocated.
    pub(crate) async fn check_overlay(&self, network: &str) -> Result<(), EngineError> {
        let req = AttachRequest {
            network: network.to_string(),
            // A stand-in: only the network is checked.
            container_id: "0".repeat(64),
            container_name: "check".into(),
            aliases: Vec::new(),
            check_only: true,
        };
        self.ask_to_attach(&req).await.map(|_| ())
    }

    /// The attachment, or `None` for a check only.
    async fn ask_to_attach(
        &self,
        req: &AttachRequest,
    ) -> Result<Option<NetworkAttachment>, EngineError> {
        let active = self.current().ok_or_else(|| not_in_swarm(&req.network))?;
        let node = active.identity().node_id;
        let r: Result<Option<NetworkAttachment>, Refusal> = match active.manager() {
            Some(m) if req.check_only => m
                .control
                .check_attach(&node, req)
                .map(|()| None)
                .map_err(Refusal::from),
            Some(m) => m
                .control
                .attach_network(&node, req)
                .await
                .map(Some)
                .map_err(Refusal::from),
            None => ask_managers(&active, wire::ATTACH, req).await,
        };
        r.map_err(|e| attach_refused(&req.network, e))
    }

    /// Gives back every overlay address of the container `container_id` (its removal).
    /// Nothing to give back, or no swarm, is no error.
    pub(crate) async fn detach_overlays(&self, container_id: &str) -> Result<(), EngineError> {
        let Some(active) = self.current() else {
            return Ok(());
        };
        let node = active.identity().node_id;
        let in_map = {
            let map = active.remote.network_map();
            let map = map.borrow();
            let holder = Id::from_raw(container_id);
            map.networks
                .iter()
                .flat_map(|p| &p.endpoints)
                .any(|e| e.task == holder && e.node == node)
        };
        if !in_map && !self.attached.set().contains(container_id) {
            return Ok(());
        }
        let req = DetachRequest {
            container_id: container_id.to_string(),
            network: None,
        };
        let r = match active.manager() {
            Some(m) => m
                .control
                .detach_network(&node, container_id, None)
                .await
                .map_err(Refusal::from),
            None => ask_managers::<_, serde_json::Value>(&active, wire::DETACH, &req)
                .await
                .map(|_| ()),
        };
        r.map_err(|e| {
            EngineError::Internal(format!(
                "could not give back container {container_id}'s overlay addresses: {}",
                e.message
            ))
        })?;
        self.attached.set().remove(container_id);
        Ok(())
    }
}

impl Daemon {
    /// The container's places on the swarm's overlays, as this node's network map has them
    /// now, for `docker inspect`.
    pub(crate) fn overlay_endpoints(&self, container_id: &str) -> Vec<ContainerNetwork> {
        let Some(active) = self.current() else {
            return Vec::new();
        };
        let node = active.identity().node_id;
        let holder = Id::from_raw(container_id);
        let map = active.remote.network_map().borrow().clone();
        let mut out = Vec::new();
        for plan in &map.networks {
            for e in plan
                .endpoints
                .iter()
                .filter(|e| e.task == holder && e.node == node)
            {
                let prefix = plan.network.addrs.subnet.prefix_len();
                let aliases = plan
                    .services
                    .iter()
                    .find(|s| s.vip.is_none() && s.ready == [e.addr])
                    .map(|s| s.aliases.clone())
                    .unwrap_or_default();
                out.push(ContainerNetwork {
                    id: plan.network.id.clone(),
                    name: plan.network.spec.name.clone(),
                    addr: format!("{}/{prefix}", e.addr),
                    aliases,
                    // Overlays have no gateway the container routes through.
                    gateway: String::new(),
                    mac: shoal_net::mac_for(e.addr)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, message: &str) -> EngineError {
        attach_refused(
            "appnet",
            Refusal {
                status,
                message: message.into(),
            },
        )
    }

    #[test]
    fn refusals_read_as_docker_words_them() {
        let e = refused(403, "network appnet not manually attachable");
        assert!(matches!(e, EngineError::Conflict(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Could not attach to network appnet: rpc error: code = PermissionDenied desc = network appnet not manually attachable"
        );
        let e = refused(404, "network appnet not found");
        assert!(matches!(e, EngineError::NoSuchNetwork(_)), "{e:?}");
        assert_eq!(e.to_string(), "network appnet not found");
        // A 404 about something else is not the network's.
        assert!(matches!(
            refused(404, "node x not found"),
            EngineError::Internal(_)
        ));
        let e = refused(
            503,
            "no manager could serve it: 192.0.2.1:2377: cannot reach",
        );
        assert_eq!(
            e.to_string(),
            "could not attach to network appnet: no manager could serve it: 192.0.2.1:2377: cannot reach"
        );
    }

    #[test]
    fn a_control_error_keeps_its_status_and_words() {
        let r = Refusal::from(ControlError::PermissionDenied(
            "network appnet not manually attachable".into(),
        ));
        assert_eq!(r.status, 403);
        assert_eq!(r.message, "network appnet not manually attachable");
        let r = Refusal::from(ControlError::NotFound {
            kind: "network",
            name: "nope".into(),
        });
        assert_eq!(
            (r.status, r.message.as_str()),
            (404, "network nope not found")
        );
    }
}
