//! What the state hands out from shared pools as it applies: a task's address on each of its
//! networks, a service's virtual IPs and published ports, a network's VXLAN ID. Given in the
//! same write that creates the holder and taken back in the one that ends it, so nothing leaks
//! (Swarm leaks addresses of tasks that died with their node: moby#31019).
//!
//! The index (`Book`) is derived: rebuilt from the stored objects on load, never stored itself.

use std::net::Ipv4Addr;
use std::sync::Arc;

use imbl::OrdMap;
use shoal_ipam::Ipv4Net;
use shoal_types::Id;
use shoal_types::network::{FIRST_VNI, Network};
use shoal_types::service::{
    DYNAMIC_PORTS, Endpoint, EndpointMode, Protocol, PublishMode, Service, VirtualIp,
};
use shoal_types::task::{NetworkAttachment, Task};

use super::State;
use crate::ops::{Kind, OpError};

/// Who holds what: addresses per network, and ingress-published ports.
#[derive(Debug, Clone, Default)]
pub(crate) struct Book {
    addrs: OrdMap<Id, OrdMap<Ipv4Addr, Id>>,
    ports: OrdMap<(Protocol, u16), Id>,
}

impl Book {
    fn take(&mut self, network: &Id, addr: Ipv4Addr, owner: &Id) {
        self.addrs
            .entry(network.clone())
            .or_default()
            .insert(addr, owner.clone());
    }

    fn release(&mut self, network: &Id, addr: Ipv4Addr, owner: &Id) {
        let now_empty = match self.addrs.get_mut(network) {
            Some(m) => {
                if m.get(&addr) == Some(owner) {
                    m.remove(&addr);
                }
                m.is_empty()
            }
            None => false,
        };
        if now_empty {
            self.addrs.remove(network);
        }
    }

    fn holder(&self, network: &Id, addr: Ipv4Addr) -> Option<&Id> {
        self.addrs.get(network).and_then(|m| m.get(&addr))
    }

    /// Records what a stored task holds: a task that has ended holds nothing.
    pub(crate) fn index_task(&mut self, t: &Task) {
        if holds_addresses(t) {
            for a in &t.networks {
                self.take(&a.network, a.addr.addr(), &t.id);
            }
        }
    }

    pub(crate) fn unindex_task(&mut self, t: &Task) {
        if holds_addresses(t) {
            for a in &t.networks {
                self.release(&a.network, a.addr.addr(), &t.id);
            }
        }
    }

    pub(crate) fn index_service(&mut self, s: &Service) {
        for v in &s.endpoint.virtual_ips {
            self.take(&v.network, v.addr.addr(), &s.id);
        }
        for p in ingress_ports(&s.endpoint) {
            self.ports.insert(p, s.id.clone());
        }
    }

    pub(crate) fn unindex_service(&mut self, s: &Service) {
        for v in &s.endpoint.virtual_ips {
            self.release(&v.network, v.addr.addr(), &s.id);
        }
        for p in ingress_ports(&s.endpoint) {
            if self.ports.get(&p) == Some(&s.id) {
                self.ports.remove(&p);
            }
        }
    }
}

/// A task holds its addresses until its process has ended (or never will run).
fn holds_addresses(t: &Task) -> bool {
    !t.status.state.is_terminal()
}

fn ingress_ports(e: &Endpoint) -> impl Iterator<Item = (Protocol, u16)> + '_ {
    e.ports
        .iter()
        .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0)
        .map(|p| (p.protocol, p.published_port))
}

impl State {
    fn network_or_err(&self, id: &Id) -> Result<&Arc<Network>, OpError> {
        self.networks.get(id).ok_or_else(|| OpError::NotFound {
            kind: Kind::Network,
            id: id.clone(),
        })
    }

    fn ingress_network(&self) -> Option<&Arc<Network>> {
        self.networks.values().find(|n| n.spec.ingress)
    }

    /// The networks a service's tasks join, in order, with their aliases: the spec's, and
    /// the ingress network first when the service publishes a port through the mesh.
    fn service_networks(&self, s: &Service) -> Result<Vec<(Id, Vec<String>)>, OpError> {
        let mut out: Vec<(Id, Vec<String>)> = Vec::new();
        if s.spec
            .endpoint
            .ports
            .iter()
            .any(|p| p.publish_mode == PublishMode::Ingress)
            && let Some(n) = self.ingress_network()
        {
            out.push((n.id.clone(), Vec::new()));
        }
        for c in &s.spec.task.networks {
            let id = Id::from_raw(&c.target);
            self.network_or_err(&id)?;
            if !out.iter().any(|(n, _)| *n == id) {
                out.push((id, c.aliases.clone()));
            }
        }
        Ok(out)
    }

    fn allocate(&self, network: &Id, owner: &Id) -> Result<Ipv4Net, OpError> {
        let n = self.network_or_err(network)?;
        let addr =
            shoal_ipam::allocate_address_by(&n.addrs, |a| self.book.holder(network, *a).is_some())
                .map_err(|_| OpError::AddressesExhausted {
                    network: n.spec.name.clone(),
                    range: n.addrs.range.to_string(),
                })?;
        tracing::trace!(%owner, network = %n.spec.name, %addr, "allocated an address");
        Ok(Ipv4Net::new(addr, n.addrs.subnet.prefix_len()).expect("the subnet's own prefix"))
    }

    /// Gives a new task its attachments before it is stored: an address on each network its
    /// service's tasks join. What a proposer wrote there is ignored: the store owns them.
    pub(crate) fn attach_new_task(&self, t: &mut Task) -> Result<(), OpError> {
        t.networks.clear();
        if !holds_addresses(t) {
            return Ok(());
        }
        if t.is_attachment() {
            self.check_new_attachment(t)?;
            for c in &t.spec.networks {
                let network = Id::from_raw(&c.target);
                let addr = self.allocate(&network, &t.id)?;
                t.networks.push(NetworkAttachment {
                    network,
                    addr,
                    aliases: c.aliases.clone(),
                });
            }
            return Ok(());
        }
        let service = self.services.get(&t.service_id);
        let wanted = match service {
            Some(s) if s.spec.task == t.spec => self.service_networks(s)?,
            // A task of another spec than its service's (one of the previous version, made
            // while an update rolls or rolls back) joins the networks its own spec names, and
            // the ingress network while its service publishes through the mesh: ports belong
            // to the service, not to a version of its tasks.
            _ => {
                let mut probe = Service::default();
                probe.spec.task = t.spec.clone();
                if let Some(s) = service {
                    probe.spec.endpoint = s.spec.endpoint.clone();
                }
                self.service_networks(&probe)?
            }
        };
        for (network, aliases) in wanted {
            let addr = self.allocate(&network, &t.id)?;
            t.networks.push(NetworkAttachment {
                network,
                addr,
                aliases,
            });
        }
        Ok(())
    }

    /// A container is attached to a network on its node once: a second attachment of the same
    /// container to the same network (two managers answering the same request from the same
    /// view) is refused, naming the one that holds it, so the proposer can answer with that
    /// one. Refused too on a node that is gone, which would never detach it.
    fn check_new_attachment(&self, t: &Task) -> Result<(), OpError> {
        let (Some(node), Some(of)) = (&t.node_id, &t.attachment) else {
            return Ok(());
        };
        if !self.nodes.contains_key(node) {
            return Err(OpError::NotFound {
                kind: Kind::Node,
                id: node.clone(),
            });
        }
        let targets: Vec<&str> = t.spec.networks.iter().map(|c| c.target.as_str()).collect();
        let held = self.tasks_on_node(node).find(|o| {
            holds_addresses(o)
                && o.attachment
                    .as_ref()
                    .is_some_and(|a| a.container_id == of.container_id)
                && o.spec
                    .networks
                    .iter()
                    .any(|c| targets.contains(&c.target.as_str()))
        });
        match held {
            Some(o) => Err(OpError::Exists {
                kind: Kind::Task,
                id: o.id.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Fills in the service's endpoint before it is stored: published ports (a dynamic one for
    /// each asked without a number, refused when another service has it) and a virtual IP on
    /// each network (endpoint mode `vip`), keeping what `current` already had.
    pub(crate) fn attach_service(
        &self,
        s: &mut Service,
        current: Option<&Service>,
    ) -> Result<(), OpError> {
        let before = current.map(|c| c.endpoint.clone()).unwrap_or_default();
        let mut ports = Vec::with_capacity(s.spec.endpoint.ports.len());
        for p in &s.spec.endpoint.ports {
            let mut p = p.clone();
            if p.published_port == 0 && p.publish_mode == PublishMode::Ingress {
                // The same dynamic port as before, when the service already had one for it.
                p.published_port = before
                    .ports
                    .iter()
                    .find(|b| {
                        b.target_port == p.target_port
                            && b.protocol == p.protocol
                            && b.publish_mode == p.publish_mode
                            && !s.spec.endpoint.ports.iter().any(|q| {
                                q.published_port == b.published_port && q.protocol == b.protocol
                            })
                    })
                    .map(|b| b.published_port)
                    .filter(|port| {
                        !ports.iter().any(|q: &shoal_types::service::PortConfig| {
                            q.published_port == *port && q.protocol == p.protocol
                        })
                    })
                    .unwrap_or(0);
                if p.published_port == 0 {
                    p.published_port = DYNAMIC_PORTS
                        .clone()
                        .find(|port| {
                            self.book
                                .ports
                                .get(&(p.protocol, *port))
                                .is_none_or(|o| *o == s.id)
                                && !ports.iter().any(|q: &shoal_types::service::PortConfig| {
                                    q.published_port == *port && q.protocol == p.protocol
                                })
                        })
                        .ok_or(OpError::PortsExhausted {
                            first: *DYNAMIC_PORTS.start(),
                            last: *DYNAMIC_PORTS.end(),
                        })?;
                }
            }
            if p.publish_mode == PublishMode::Ingress
                && let Some(owner) = self.book.ports.get(&(p.protocol, p.published_port))
                && *owner != s.id
            {
                return Err(OpError::PortInUse {
                    port: p.published_port,
                    protocol: p.protocol.as_str().into(),
                    service: self
                        .services
                        .get(owner)
                        .map_or_else(|| owner.to_string(), |o| o.spec.name.clone()),
                });
            }
            ports.push(p);
        }
        let mut vips = Vec::new();
        if s.spec.endpoint.mode == EndpointMode::Vip {
            for (network, _) in self.service_networks(s)? {
                let addr = match before.virtual_ips.iter().find(|v| v.network == network) {
                    Some(v) => v.addr,
                    None => self.allocate(&network, &s.id)?,
                };
                vips.push(VirtualIp { network, addr });
            }
        }
        s.endpoint = Endpoint {
            ports,
            virtual_ips: vips,
        };
        Ok(())
    }

    /// Refuses to remove a network a service names or a task still holds an address on. A
    /// task already told to stop, or whose service is gone, does not keep it (Swarm's rule):
    /// `docker stack rm` removes the networks right after the services, while their tasks
    /// wind down. Their addresses stay booked until they end; the network's ID is never used
    /// again, so nothing else can take them.
    ///
    /// A standalone container attached to it keeps it too, until the container is detached
    /// (Swarm: "network is in use by task"): its node's engine would otherwise hold an address
    /// on a network that no longer exists.
    pub(crate) fn check_network_unused(&self, n: &Network) -> Result<(), OpError> {
        let holds = self.book.addrs.get(&n.id).is_some_and(|m| {
            m.values().any(|owner| match self.tasks.get(owner) {
                Some(t) if t.is_attachment() => false,
                Some(t) => {
                    t.desired_state <= shoal_types::TaskState::Running
                        && self.services.contains_key(&t.service_id)
                }
                // A service's virtual IP.
                None => true,
            })
        });
        let services: Vec<String> = self
            .services
            .values()
            .filter(|s| {
                s.spec
                    .task
                    .networks
                    .iter()
                    .any(|c| c.target == n.id.as_str())
                    || s.endpoint.virtual_ips.iter().any(|v| v.network == n.id)
            })
            .map(|s| s.spec.name.clone())
            .collect();
        if !services.is_empty() || holds {
            let mut services = services;
            if services.is_empty() {
                // Only tasks still winding down hold it: name their services.
                services = self
                    .tasks
                    .values()
                    .filter(|t| {
                        !t.is_attachment()
                            && holds_addresses(t)
                            && t.networks.iter().any(|a| a.network == n.id)
                    })
                    .map(|t| t.service_name.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
            }
            return Err(OpError::NetworkInUse {
                name: n.spec.name.clone(),
                services,
            });
        }
        let containers: std::collections::BTreeSet<String> = self
            .book
            .addrs
            .get(&n.id)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|owner| self.tasks.get(owner)?.attachment.as_ref())
            .map(|a| a.container_name.clone())
            .collect();
        if !containers.is_empty() {
            return Err(OpError::NetworkInUseByContainers {
                name: n.spec.name.clone(),
                containers: containers.into_iter().collect(),
            });
        }
        Ok(())
    }

    /// The lowest VXLAN ID no other network has.
    pub(crate) fn free_vni(&self) -> u32 {
        let used: std::collections::BTreeSet<u32> = self.networks.values().map(|n| n.vni).collect();
        (FIRST_VNI..)
            .find(|v| !used.contains(v))
            .expect("fewer networks than IDs")
    }
}

#[cfg(test)]
#[path = "attach_tests.rs"]
mod tests;
