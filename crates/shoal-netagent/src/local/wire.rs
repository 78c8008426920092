//! Wiring tasks into the node's local networks and keeping the node in step: a task's
//! endpoints and ports at prepare, its release at remove, the adoption of what a previous run
//! left, and the firewall table and names that follow each change. The locks are `super`'s.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use shoal_ipam::Ipv4Net;
use shoal_net::nat::{BridgeNet, BridgePort};
use shoal_net::{Attachment, HeldPort, NetError};
use shoal_runtime::{RuntimeError, TaskRun};
use shoal_types::Id;
use shoal_types::dispatch::{NetworkMap, NetworkPlan};
use shoal_types::local_net::{LocalAttachment, LocalEndpoint, LocalNetwork, PortBinding};
use tokio::sync::watch;

use super::store::{TaskFile, Wired};
use super::{LocalPlan, Ops};
use crate::{
    GATEWAY_BRIDGE, NetAgent, Served, bind_dns, forward_accept, host_veth, is_mounted_netns,
    join_error, proto, view_of,
};

impl NetAgent {
    /// Allocates and records the task's local endpoints and binds its published ports; `None`
    /// when it has neither. Errors are the task's: a network not found, a port taken.
    pub(crate) async fn plan_local(
        &self,
        run: &TaskRun,
    ) -> Result<Option<LocalPlan<'_>>, RuntimeError> {
        if run.local_networks.is_empty() && run.publish.is_empty() {
            return Ok(None);
        }
        if run.local_networks.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                field: "publish",
                why: "published ports need a local network (the default bridge or another)".into(),
            });
        }
        if let Some(b) = run.publish.iter().find(|b| b.container_port == 0) {
            return Err(RuntimeError::InvalidSpec {
                field: "publish",
                why: format!("{}: 0 is not a container port", b.host_port),
            });
        }
        let mut ops = self.local.ops.lock().await;
        self.restore_locked(&mut ops).await;
        let task = &run.task_id;
        let mut nets: Vec<(LocalNetwork, &LocalAttachment)> = Vec::new();
        {
            let st = self.local.state();
            for a in &run.local_networks {
                let net =
                    st.resolve(&a.network)
                        .cloned()
                        .ok_or_else(|| RuntimeError::InvalidSpec {
                            field: "local_networks",
                            why: format!("network {} not found", a.network),
                        })?;
                if nets.iter().any(|(n, _)| n.id == net.id) {
                    return Err(RuntimeError::InvalidSpec {
                        field: "local_networks",
                        why: format!("network {} is listed twice", net.name),
                    });
                }
                nets.push((net, a));
            }
        }
        let all: Vec<LocalNetwork> = nets.iter().map(|(n, _)| n.clone()).collect();
        self.ensure_bridges(&mut ops, &all)
            .await
            .map_err(|e| RuntimeError::failed("making the task's bridge networks", e))?;
        // What a prepare that never finished left: given back first.
        let stale = self.local.state().forget_task(task);
        if let Some(stale) = stale {
            ops.held.remove(task);
            for w in &stale.endpoints {
                self.drop_link(&w.host_veth, false).await;
            }
        }
        let base = run.networks.len();
        let mut file = TaskFile::default();
        for (i, (net, a)) in nets.iter().enumerate() {
            // Not recorded yet: addresses taken meanwhile are the other networks'.
            let wired = self
                .endpoint_on(task, net, base + i, a.aliases.clone())
                .map_err(|e| RuntimeError::failed("giving the task an address", e))?;
            file.endpoints.push(wired);
        }
        let (held, published) = self.hold_ports(&run.publish).await?;
        file.published = published;
        self.local
            .state()
            .save_task(task, file.clone())
            .map_err(|e| RuntimeError::failed("recording the task's local endpoints", e))?;
        ops.held.insert(task.clone(), held);
        let links = file
            .endpoints
            .iter()
            .zip(&nets)
            .map(|(w, (n, _))| (n.bridge.clone(), attachment_of(w)))
            .collect();
        let route = file
            .endpoints
            .iter()
            .zip(&nets)
            .find(|(_, (n, _))| !n.internal)
            .map(|(w, (n, _))| (w.ifname.clone(), n.gateway));
        Ok(Some(LocalPlan {
            _ops: ops,
            links,
            route,
        }))
    }

    /// After the task's interfaces are in: its ports forwarded, its names served.
    pub(crate) async fn finish_local(
        &self,
        plan: LocalPlan<'_>,
        task: &Id,
    ) -> Result<(), RuntimeError> {
        self.program_local()
            .await
            .map_err(|e| RuntimeError::failed("forwarding the task's published ports", e))?;
        drop(plan);
        self.refresh_local_views().await;
        self.serve_local(task)
            .await
            .map_err(|e| RuntimeError::failed("serving the task's names", e))
    }

    /// Gives back what [`NetAgent::plan_local`] took when wiring failed.
    pub(crate) async fn abandon_local(&self, plan: LocalPlan<'_>, task: &Id) {
        drop(plan);
        self.unwire_local(task).await;
    }

    /// Releases the task's local endpoints and ports. Its interfaces go with its namespace;
    /// their node ends are removed here too, so no address given back stays on a bridge
    /// while something still holds that namespace.
    pub(crate) async fn unwire_local(&self, task: &Id) {
        if !self.local.state().tasks.contains_key(task) {
            return;
        }
        let mut ops = self.local.ops.lock().await;
        let file = self.local.state().forget_task(task);
        ops.held.remove(task);
        for w in file.iter().flat_map(|f| &f.endpoints) {
            self.drop_link(&w.host_veth, false).await;
        }
        if let Err(e) = self.program_local().await {
            tracing::warn!(task.id = %task, error = %shoal_types::error::Chain(&e), "network: removing the task's published ports failed");
        }
        drop(ops);
        self.refresh_local_views().await;
    }

    /// Tasks with local endpoints or ports recorded.
    pub(crate) fn local_task_ids(&self) -> BTreeSet<Id> {
        self.local.state().tasks.keys().cloned().collect()
    }

    /// `view` with the names of the task's user-defined local networks added.
    pub(crate) fn with_local_names(&self, task: &Id, mut view: shoal_dns::View) -> shoal_dns::View {
        for (name, addrs) in self.local.state().names_of(task) {
            let v = view.names.entry(name).or_default();
            v.extend(addrs);
            v.sort();
            v.dedup();
        }
        view
    }

    /// Adopts what a previous run left, once: the bridges and rules put back, the wired
    /// tasks' ports bound again and their names served.
    pub(crate) async fn restore_local(&self) {
        if self.local.restored.load(Ordering::Acquire) {
            return;
        }
        let mut ops = self.local.ops.lock().await;
        self.restore_locked(&mut ops).await;
    }

    pub(super) async fn restore_locked(&self, ops: &mut Ops) {
        if ops.restored {
            return;
        }
        ops.restored = true;
        self.local.restored.store(true, Ordering::Release);
        let (nets, tasks) = {
            let st = self.local.state();
            (
                st.networks.values().cloned().collect::<Vec<_>>(),
                st.tasks.clone(),
            )
        };
        // A node that never used its local networks has nothing of them in its kernel.
        if tasks.is_empty() && nets.iter().all(LocalNetwork::is_default) {
            return;
        }
        if let Err(e) = self.ensure_bridges(ops, &nets).await {
            tracing::warn!(error = %shoal_types::error::Chain(&e), "network: putting the local networks' bridges back failed");
        }
        let mut serve = Vec::new();
        for (task, file) in &tasks {
            if !is_mounted_netns(&self.task_netns(task)) {
                continue;
            }
            serve.push(task.clone());
            match self.hold_ports(&file.published).await {
                Ok((held, _)) => {
                    ops.held.insert(task.clone(), held);
                }
                Err(e) => {
                    tracing::warn!(task.id = %task, error = %shoal_types::error::Chain(&e), "network: binding an adopted task's published ports again failed; they stay forwarded")
                }
            }
        }
        if let Err(e) = self.program_local().await {
            tracing::warn!(error = %shoal_types::error::Chain(&e), "network: programming the local networks' rules failed");
        }
        for task in serve {
            if let Err(e) = self.serve_local(&task).await {
                tracing::warn!(task.id = %task, error = %shoal_types::error::Chain(&e), "network: serving an adopted task's names failed");
            }
        }
        tracing::info!(
            networks = nets.len(),
            tasks = tasks.len(),
            "network: local networks adopted"
        );
    }

    /// A new endpoint of `task` on `net` as interface `eth<index>`, its address free now.
    pub(super) fn endpoint_on(
        &self,
        task: &Id,
        net: &LocalNetwork,
        index: usize,
        aliases: Vec<String>,
    ) -> Result<Wired, NetError> {
        let addr = self.local.state().free_addr(net)?;
        Ok(Wired {
            endpoint: LocalEndpoint {
                network_id: net.id.clone(),
                endpoint_id: self.local.new_id(),
                addr: Ipv4Net::new(addr, net.subnet.prefix_len()).unwrap_or(net.subnet),
                gateway: net.gateway,
                mac: mac_text(shoal_net::mac_for(addr)),
                aliases,
            },
            ifname: format!("eth{index}"),
            host_veth: host_veth(task, index),
        })
    }

    /// Binds each port on the node; the bindings as bound (port 0 replaced by the pick).
    /// A port something has already (a process, another container, a service of the swarm)
    /// is refused with Docker's words.
    pub(super) async fn hold_ports(
        &self,
        wanted: &[PortBinding],
    ) -> Result<(Vec<HeldPort>, Vec<PortBinding>), RuntimeError> {
        let map = self.maps.borrow().clone();
        let node = self.node_netns.clone();
        let wanted = wanted.to_vec();
        tokio::task::spawn_blocking(move || {
            let (mut held, mut bound) = (Vec::new(), Vec::new());
            for b in wanted {
                let ip = b.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
                let taken = || {
                    RuntimeError::Conflict(format!(
                        "Bind for {ip}:{} failed: port is already allocated",
                        b.host_port
                    ))
                };
                let swarm = b.host_port != 0
                    && (map
                        .published
                        .iter()
                        .any(|p| p.published == b.host_port && p.protocol == b.protocol)
                        || map
                            .host_ports
                            .iter()
                            .any(|h| h.published == b.host_port && h.protocol == b.protocol));
                if swarm {
                    return Err(taken());
                }
                let h = match shoal_net::hold_port(&node, proto(b.protocol), ip, b.host_port) {
                    Ok(Ok(h)) => h,
                    Ok(Err(e)) if e.kind() == std::io::ErrorKind::AddrInUse => {
                        return Err(taken());
                    }
                    Ok(Err(e)) => {
                        return Err(RuntimeError::StartFailed(format!(
                            "Bind for {ip}:{} failed: {e}",
                            b.host_port
                        )));
                    }
                    Err(e) => return Err(RuntimeError::failed("binding a published port", e)),
                };
                bound.push(PortBinding {
                    host_port: h.port(),
                    ..b
                });
                held.push(h);
            }
            Ok((held, bound))
        })
        .await
        .map_err(|e| RuntimeError::failed("binding published ports", join_error(e)))?
    }

    /// Makes sure each network's bridge is up with its gateway address, the node forwards,
    /// and iptables lets its traffic through (dockerd's FORWARD policy is DROP).
    pub(super) async fn ensure_bridges(
        &self,
        ops: &mut Ops,
        nets: &[LocalNetwork],
    ) -> Result<(), NetError> {
        for net in nets {
            if ops.made.contains(&net.bridge) {
                continue;
            }
            let node = self.node_netns.clone();
            let (bridge, addr) = (
                net.bridge.clone(),
                Ipv4Net::new(net.gateway, net.subnet.prefix_len())
                    .map_err(|e| NetError::Missing(format!("network {}: {e}", net.name)))?,
            );
            tokio::task::spawn_blocking(move || {
                shoal_net::ensure_bridge(&node, &bridge, addr)?;
                shoal_net::enable_forwarding(&node)?;
                forward_accept(&node, &bridge);
                Ok::<_, NetError>(())
            })
            .await
            .map_err(join_error)??;
            ops.made.insert(net.bridge.clone());
        }
        Ok(())
    }

    /// Removes a network's bridge and the iptables accepts naming it; absent is fine,
    /// failures are only logged.
    pub(super) async fn drop_bridge(&self, name: &str) {
        self.drop_link(name, true).await
    }

    /// Removes a link of the node (`accepts`: and the iptables accepts naming it); absent is
    /// fine, failures are only logged.
    pub(super) async fn drop_link(&self, name: &str, accepts: bool) {
        let (node, link) = (self.node_netns.clone(), name.to_string());
        let done = tokio::task::spawn_blocking(move || {
            shoal_net::delete_link(&node, &link)?;
            if accepts {
                shoal_net::nat::remove_iptables_forward_accept(&node, &link)?;
            }
            Ok::<_, NetError>(())
        })
        .await
        .map_err(join_error);
        if let Err(e) | Ok(Err(e)) = done {
            tracing::warn!(link = name, error = %shoal_types::error::Chain(&e), "network: removing a local network's link failed");
        }
    }

    /// Rewrites the node's bridge networks table from the state.
    pub(super) async fn program_local(&self) -> Result<(), NetError> {
        let (nets, ports) = {
            let st = self.local.state();
            let nets: Vec<BridgeNet> = st
                .networks
                .values()
                .map(|n| BridgeNet {
                    bridge: n.bridge.clone(),
                    subnet: n.subnet,
                    internal: n.internal,
                })
                .collect();
            let ports: Vec<BridgePort> = st
                .tasks
                .values()
                .filter_map(|f| Some((f.endpoints.first()?, &f.published)))
                .flat_map(|(first, published)| {
                    published.iter().map(|b| BridgePort {
                        proto: proto(b.protocol),
                        host_ip: b.host_ip,
                        port: b.host_port,
                        to: (first.endpoint.addr.addr(), b.container_port),
                    })
                })
                .collect();
            (nets, ports)
        };
        let node = self.node_netns.clone();
        tokio::task::spawn_blocking(move || {
            shoal_net::nat::program_bridges(&node, &nets, &[GATEWAY_BRIDGE.to_string()], &ports)
        })
        .await
        .map_err(join_error)?
    }

    /// Serves DNS at 127.0.0.11 in the task's namespace, or refreshes what it serves.
    pub(super) async fn serve_local(&self, task: &Id) -> Result<(), NetError> {
        let netns = self.task_netns(task);
        if !is_mounted_netns(&netns) {
            return Ok(());
        }
        let view = self.view_now(task);
        let mut served = self.served.lock().await;
        if let Some(s) = served.get(task) {
            if **s.view.borrow() != view {
                s.view.send_replace(Arc::new(view));
            }
            return Ok(());
        }
        let (udp, tcp) = bind_dns(&netns).await?;
        let (tx, rx) = watch::channel(Arc::new(view));
        let dns = self
            .resolver
            .serve(udp, tcp, rx, self.task_upstreams(task))
            .map_err(|e| NetError::Missing(format!("serving DNS to task {task}: {e}")))?;
        served.insert(
            task.clone(),
            Served {
                view: tx,
                _dns: dns,
                vips: None,
                paths: None,
            },
        );
        Ok(())
    }

    /// What the task resolves now: its overlays' names and its local networks'.
    pub(super) fn view_now(&self, task: &Id) -> shoal_dns::View {
        let map = self.maps.borrow().clone();
        self.with_local_names(task, view_of(&plans_here(&map, task)))
    }

    /// Gives every served task the names of now (a container joined or left a network).
    pub(super) async fn refresh_local_views(&self) {
        let served = self.served.lock().await;
        for (task, s) in served.iter() {
            let view = self.view_now(task);
            if **s.view.borrow() != view {
                s.view.send_replace(Arc::new(view));
            }
        }
    }
}

/// The overlays the task is on at this node, as the map says.
fn plans_here<'a>(map: &'a NetworkMap, task: &Id) -> Vec<&'a NetworkPlan> {
    let Some(local) = map.local_addr else {
        return Vec::new();
    };
    map.networks
        .iter()
        .filter(|p| {
            p.endpoints
                .iter()
                .any(|e| e.task == *task && e.node_addr == Some(local))
        })
        .collect()
}

pub(super) fn attachment_of(w: &Wired) -> Attachment {
    Attachment {
        addr: w.endpoint.addr,
        mac: shoal_net::mac_for(w.endpoint.addr.addr()),
        name: w.ifname.clone(),
        host_name: w.host_veth.clone(),
    }
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
