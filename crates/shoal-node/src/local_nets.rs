//! The node's engine's view of its network layer: local `bridge` networks and what each
//! standalone container joins and publishes, over [`shoal_netagent::NetAgent`]; and the swarm's
//! attachable overlays, on which the managers give a container its address (see `attach`).

use std::sync::{Arc, Weak};

use shoal_control::engine::{ContainerCreate, ContainerNetwork, EndpointRequest, EngineError};
use shoal_net::NetError;
use shoal_netagent::NetAgent;
use shoal_runtime::TaskRun;
use shoal_types::Id;
use shoal_types::endpoint::PortBinding;
use shoal_types::local_net::{DEFAULT_NETWORK, LocalAttachment, LocalNetwork, LocalNetworkSpec};

/// The node's network agent, and its daemon for the swarm's overlays (weak: the daemon owns
/// the engine that owns this).
pub(crate) struct NodeNets(pub(crate) Arc<NetAgent>, pub(crate) Weak<crate::Daemon>);

fn net_err(e: NetError) -> EngineError {
    match e {
        NetError::Conflict(m) => EngineError::Conflict(m),
        NetError::NotFound(m) => EngineError::NoSuchNetwork(m),
        NetError::InvalidArgument { field, why } => EngineError::Invalid { field, why },
        other => EngineError::Internal(shoal_types::error::chain(&other)),
    }
}

/// The names a container answers to on a user-defined network: its own name, its aliases,
/// its short ID (Docker adds the last at start; compose looks for it).
fn aliases(name: &str, short: &str, asked: &[String]) -> Vec<String> {
    let mut out = vec![name.to_string()];
    for a in asked.iter().map(String::as_str).chain([short]) {
        if !a.is_empty() && !out.iter().any(|o| o == a) {
            out.push(a.to_string());
        }
    }
    out
}

impl NodeNets {
    fn daemon(&self) -> Result<Arc<crate::Daemon>, EngineError> {
        self.1
            .upgrade()
            .ok_or_else(|| EngineError::Internal("the node is shutting down".into()))
    }

    fn resolve(&self, key: &str) -> Result<LocalNetwork, EngineError> {
        self.0
            .local_network(key)
            .ok_or_else(|| EngineError::NoSuchNetwork(key.to_string()))
    }
}

#[async_trait::async_trait]
impl shoal_engine::standalone::LocalNets for NodeNets {
    async fn plan(
        &self,
        name: &str,
        create: &ContainerCreate,
        run: &mut TaskRun,
        check_only: bool,
    ) -> Result<(), EngineError> {
        let short = run.task_id.short().to_string();
        match create.network_mode.as_str() {
            // The node's own network: nothing to join, and nothing to publish (Docker discards
            // published ports in host mode too).
            "host" => return Ok(()),
            "none" => {
                return Err(EngineError::Unsupported(
                    "--network none is not supported by shoal yet".into(),
                ));
            }
            _ => {}
        }
        let mut attachments = Vec::new();
        let mut overlays: Vec<shoal_types::task::NetworkAttachment> = Vec::new();
        let mut on_overlay = false;
        for e in &create.endpoints {
            if matches!(e.network.as_str(), "default") {
                continue;
            }
            if self.0.local_network(&e.network).is_none() {
                // Not one of the node's: one of the swarm's attachable overlays, where a
                // manager gives the container its address. Outside a swarm there is none of
                // those either, which Docker words as an unknown network.
                let daemon = self.daemon()?;
                let key = e.network.clone();
                let outside = move |err: EngineError| match err {
                    EngineError::Unsupported(_) => EngineError::NoSuchNetwork(key.clone()),
                    other => other,
                };
                if check_only {
                    daemon.check_overlay(&e.network).await.map_err(outside)?;
                } else {
                    let a = daemon
                        .attach_overlay(
                            &e.network,
                            run.task_id.as_str(),
                            name,
                            &aliases(name, &short, &e.aliases),
                        )
                        .await
                        .map_err(outside)?;
                    if !overlays.iter().any(|o| o.network == a.network) {
                        overlays.push(a);
                    }
                }
                on_overlay = true;
                continue;
            }
            let n = self.resolve(&e.network)?;
            if attachments
                .iter()
                .any(|a: &LocalAttachment| a.network == n.id)
            {
                continue;
            }
            attachments.push(LocalAttachment {
                network: n.id.clone(),
                aliases: if n.is_default() {
                    Vec::new()
                } else {
                    aliases(name, &short, &e.aliases)
                },
            });
        }
        // A container on an overlay only joins no bridge: the node's gateway network takes
        // its traffic out, as Docker's docker_gwbridge does.
        if attachments.is_empty() && !on_overlay {
            let n = self.resolve(DEFAULT_NETWORK)?;
            attachments.push(LocalAttachment {
                network: n.id,
                aliases: Vec::new(),
            });
        }
        let mut publish = create.publish.clone();
        if create.publish_all {
            for p in &create.exposed_ports {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let (Ok(port), Some(protocol)) = (
                    port.parse::<u16>(),
                    shoal_types::endpoint::Protocol::parse(proto),
                ) else {
                    continue;
                };
                if !publish
                    .iter()
                    .any(|b| b.container_port == port && b.protocol == protocol)
                {
                    publish.push(PortBinding {
                        host_ip: None,
                        host_port: 0,
                        container_port: port,
                        protocol,
                    });
                }
            }
        }
        run.networks = overlays;
        run.local_networks = attachments;
        run.publish = publish;
        Ok(())
    }

    async fn release(&self, task: &Id) -> Result<(), EngineError> {
        match self.1.upgrade() {
            Some(d) => d.detach_overlays(task.as_str()).await,
            // The daemon is going: its managers learn of removed containers no more.
            None => Ok(()),
        }
    }

    fn endpoints(&self, task: &Id) -> Vec<ContainerNetwork> {
        let nets = self.0.local_networks();
        let mut out: Vec<ContainerNetwork> = self
            .0
            .local_endpoints(task)
            .into_iter()
            .map(|e| ContainerNetwork {
                id: Id::from_raw(&e.network_id),
                name: nets
                    .iter()
                    .find(|n| n.id == e.network_id)
                    .map_or_else(|| e.network_id.clone(), |n| n.name.clone()),
                addr: e.addr.to_string(),
                aliases: e.aliases,
                gateway: e.gateway.to_string(),
                mac: e.mac,
            })
            .collect();
        if let Some(d) = self.1.upgrade() {
            out.extend(d.overlay_endpoints(task.as_str()));
        }
        out
    }

    fn published(&self, task: &Id) -> Vec<PortBinding> {
        self.0.published(task)
    }

    fn networks(&self) -> Vec<LocalNetwork> {
        self.0.local_networks()
    }

    async fn create_network(&self, spec: LocalNetworkSpec) -> Result<LocalNetwork, EngineError> {
        self.0.create_local_network(spec).await.map_err(net_err)
    }

    async fn remove_network(&self, key: &str) -> Result<(), EngineError> {
        let n = self.resolve(key)?;
        if n.is_default() {
            return Err(EngineError::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        self.0.remove_local_network(&n.id).await.map_err(net_err)
    }

    async fn connect(
        &self,
        task: &Id,
        name: &str,
        endpoint: &EndpointRequest,
    ) -> Result<(), EngineError> {
        let n = self.resolve(&endpoint.network)?;
        let attachment = LocalAttachment {
            network: n.id.clone(),
            aliases: if n.is_default() {
                Vec::new()
            } else {
                aliases(name, task.short(), &endpoint.aliases)
            },
        };
        self.0
            .connect_local(task, attachment)
            .await
            .map(|_| ())
            .map_err(net_err)
    }

    async fn disconnect(&self, task: &Id, network: &str) -> Result<(), EngineError> {
        let n = self.resolve(network)?;
        self.0.disconnect_local(task, &n.id).await.map_err(net_err)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_container_answers_to_its_name_aliases_and_short_id_once_each() {
        assert_eq!(
            super::aliases(
                "proj_web_1",
                "abc123def456",
                &["web".into(), "proj_web_1".into()]
            ),
            vec!["proj_web_1", "web", "abc123def456"]
        );
    }
}
