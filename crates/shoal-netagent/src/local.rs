//! Node-local networks: Docker's `bridge` driver, for standalone containers. Each network is a
//! Linux bridge in the node's namespace holding the network's gateway address; a container
//! joins with one veth per network into its namespace (the one overlays use,
//! `<dir>/task/<ID>`), addressed from the network's subnet, its default route via its first
//! network's gateway. The firewall side (masquerade out, isolation between networks, published
//! ports) is one nftables table, `shoal-bridges`, rewritten whole from this module's state
//! after every change (`shoal_net::nat::program_bridges`). The predefined network `bridge`
//! (device `shoal0`) always exists; names are served on the others only, as Docker serves them.
//!
//! Published ports are DNAT in the kernel, also for the node's own loopback (`route_localnet`
//! and a masquerade of 127.0.0.0/8), where Docker would run a userland proxy: no process per
//! port, remote clients' addresses reach the container, and the forwarding survives a daemon
//! restart. Each published port is also bound by the daemon (a listening socket never accepted
//! from), as Docker holds them: nothing else on the node can take a port a container has, and
//! binding is how a port already taken by anything is found.
//!
//! Persisted under `<dir>/local/` (see `store`), so a restarted daemon keeps its networks and
//! adopts its wired containers: it binds their ports again, reprograms the table and serves
//! their names (`NetAgent::restore_local`, on first use).
//!
//! Concurrency: `state` (a std mutex, never held across an await) is what readers see;
//! `ops` (a tokio mutex) serialises every change, kernel work included, and holds the bound
//! ports. Lock order: `ops`, then the agent's `overlays`, then `served`; `state` last and alone.

mod store;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use shoal_ipam::Ipv4Net;
use shoal_net::{Attachment, HeldPort, NetError};
use shoal_types::local_net::{
    BRIDGE_DRIVER, DEFAULT_NETWORK, LocalAttachment, LocalEndpoint, LocalNetwork, LocalNetworkSpec,
    OPT_BRIDGE_NAME, PortBinding,
};
use shoal_types::{Clock, Id, IdGen};
use tokio::sync::{Mutex, MutexGuard};

use crate::{GATEWAY_BRIDGE, NetAgent, is_mounted_netns, join_error};
use store::{LocalState, bridge_name};
use wire::attachment_of;

/// The default network's bridge device (Docker's `docker0`).
pub const DEFAULT_BRIDGE: &str = "shoal0";

/// The node's local networks: what is known, and the lock every change takes.
pub(crate) struct LocalNets {
    state: std::sync::Mutex<LocalState>,
    ops: Mutex<Ops>,
    /// Set once a restarted daemon has adopted what its disk holds (a fast path for
    /// `NetDriver::list`, which runs often).
    restored: AtomicBool,
    clock: Arc<dyn Clock>,
    ids: std::sync::Mutex<IdGen>,
}

/// What changes hold: the bridges known to be in place in this run, and each task's ports
/// bound on the node (closed when dropped).
#[derive(Default)]
pub(crate) struct Ops {
    made: BTreeSet<String>,
    held: BTreeMap<Id, Vec<HeldPort>>,
    restored: bool,
}

/// A task's local endpoints, allocated and recorded, for `NetAgent::wire` to plug in. Holds
/// the change lock until the task is served or given up.
pub(crate) struct LocalPlan<'a> {
    _ops: MutexGuard<'a, Ops>,
    /// (bridge, the task's interface on it), in the task's order.
    pub links: Vec<(String, Attachment)>,
    /// The task's default route: (its interface, the gateway).
    pub route: Option<(String, Ipv4Addr)>,
}

impl LocalNets {
    /// The networks on the node's disk, with the default network's record made now if it is
    /// missing (its subnet clear of `used`, the node's gateway network, and of what
    /// `node_netns` routes).
    pub(crate) fn load(
        dir: &Path,
        node_netns: &Path,
        used: Ipv4Net,
        clock: Arc<dyn Clock>,
        ids: IdGen,
    ) -> LocalNets {
        let nets = LocalNets {
            state: std::sync::Mutex::new(LocalState::load(dir)),
            ops: Mutex::new(Ops::default()),
            restored: AtomicBool::new(false),
            clock,
            ids: std::sync::Mutex::new(ids),
        };
        let missing = nets.state().by_name(DEFAULT_NETWORK).is_none();
        if missing {
            let mut routed = shoal_net::ipv4_in_use(node_netns).unwrap_or_else(|e| {
                tracing::warn!(error = %shoal_types::error::Chain(&e), "network: reading the node's routes failed; picking the default bridge network's subnet blind");
                Vec::new()
            });
            routed.push(used);
            let picked = nets.state().pick_subnet(&routed);
            let subnet = picked.unwrap_or_else(|| {
                tracing::warn!("network: no free subnet for the default bridge network; taking the first of the pool");
                store::candidates().next().unwrap_or_default()
            });
            let gateway = subnet.hosts().next().unwrap_or(subnet.network());
            let options = BTreeMap::from([
                (
                    "com.docker.network.bridge.default_bridge".to_string(),
                    "true".to_string(),
                ),
                ("com.docker.network.bridge.enable_icc".into(), "true".into()),
                (
                    "com.docker.network.bridge.enable_ip_masquerade".into(),
                    "true".into(),
                ),
                (
                    "com.docker.network.bridge.host_binding_ipv4".into(),
                    "0.0.0.0".into(),
                ),
                (OPT_BRIDGE_NAME.into(), DEFAULT_BRIDGE.into()),
            ]);
            let net = LocalNetwork {
                id: nets.new_id(),
                name: DEFAULT_NETWORK.into(),
                driver: BRIDGE_DRIVER.into(),
                labels: BTreeMap::new(),
                options,
                internal: false,
                subnet,
                gateway,
                bridge: DEFAULT_BRIDGE.into(),
                created: nets.clock.now(),
            };
            if let Err(e) = nets.state().save_network(net) {
                tracing::warn!(error = %shoal_types::error::Chain(&e), "network: recording the default bridge network failed");
            }
        }
        nets
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// 64 lowercase hex digits, as Docker's network and endpoint IDs.
    fn new_id(&self) -> String {
        let mut b = [0u8; 32];
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}

impl NetAgent {
    /// The node's local networks, the default `bridge` among them.
    pub fn local_networks(&self) -> Vec<LocalNetwork> {
        self.local.state().networks.values().cloned().collect()
    }

    /// The local network `key` names: its ID, its name or a prefix of its ID.
    pub fn local_network(&self, key: &str) -> Option<LocalNetwork> {
        self.local.state().resolve(key).cloned()
    }

    /// The task's endpoints on local networks, in the order it joined them.
    pub fn local_endpoints(&self, task: &Id) -> Vec<LocalEndpoint> {
        self.local
            .state()
            .tasks
            .get(task)
            .map(|f| f.endpoints.iter().map(|w| w.endpoint.clone()).collect())
            .unwrap_or_default()
    }

    /// The task's published ports as bound, the node's picks in place of port 0.
    pub fn published(&self, task: &Id) -> Vec<PortBinding> {
        self.local
            .state()
            .tasks
            .get(task)
            .map(|f| f.published.clone())
            .unwrap_or_default()
    }

    /// Makes a local network (`docker network create -d bridge`): its bridge in the node's
    /// namespace with the gateway address, masqueraded on the way out unless internal,
    /// isolated from the node's other networks.
    pub async fn create_local_network(
        &self,
        spec: LocalNetworkSpec,
    ) -> Result<LocalNetwork, NetError> {
        check_spec(&spec)?;
        let mut ops = self.local.ops.lock().await;
        self.restore_locked(&mut ops).await;
        let taken = {
            let st = self.local.state();
            st.by_name(&spec.name).is_some() || ["host", "none"].contains(&spec.name.as_str())
        };
        if taken {
            return Err(NetError::Conflict(format!(
                "network with name {} already exists",
                spec.name
            )));
        }
        let gateway_net = self
            .gateway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .subnet();
        let subnet = match spec.subnet {
            Some(s) => {
                let clash = self.local.state().overlapping(&s).map(|n| n.name.clone());
                if clash.is_some() || s.contains(&gateway_net) || gateway_net.contains(&s) {
                    return Err(NetError::Conflict(format!(
                        "Pool overlaps with other one on this address space: {s} and {}",
                        clash
                            .unwrap_or_else(|| format!("the node's gateway network {gateway_net}"))
                    )));
                }
                s
            }
            None => {
                let node = self.node_netns.clone();
                let mut used = tokio::task::spawn_blocking(move || shoal_net::ipv4_in_use(&node))
                    .await
                    .map_err(join_error)??;
                used.push(gateway_net);
                self.local.state().pick_subnet(&used).ok_or_else(|| {
                    NetError::Conflict(
                        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into(),
                    )
                })?
            }
        };
        let gateway = match spec.gateway {
            Some(g) => g,
            None => subnet.hosts().next().unwrap_or(subnet.network()),
        };
        let id = self.local.new_id();
        let bridge = bridge_name(&id, &spec.options);
        if self.local.state().bridge_taken(&bridge) || bridge == GATEWAY_BRIDGE {
            return Err(NetError::Conflict(format!(
                "network {}: bridge {bridge} is another network's",
                spec.name
            )));
        }
        let net = LocalNetwork {
            id,
            name: spec.name,
            driver: BRIDGE_DRIVER.into(),
            labels: spec.labels,
            options: spec.options,
            internal: spec.internal,
            subnet,
            gateway,
            bridge,
            created: self.local.clock.now(),
        };
        let made = async {
            self.ensure_bridges(&mut ops, std::slice::from_ref(&net))
                .await?;
            self.local.state().save_network(net.clone())?;
            self.program_local().await
        }
        .await;
        if let Err(e) = made {
            self.local.state().forget_network(&net.id);
            ops.made.remove(&net.bridge);
            self.drop_bridge(&net.bridge).await;
            if let Err(again) = self.program_local().await {
                tracing::warn!(error = %shoal_types::error::Chain(&again), "network: restoring the bridge networks' rules failed");
            }
            return Err(e);
        }
        tracing::info!(network = %net.name, subnet = %net.subnet, bridge = %net.bridge, "network: local network made");
        Ok(net)
    }

    /// Removes a local network (`docker network rm`): refused for the default network and
    /// while a task is on it.
    pub async fn remove_local_network(&self, id: &str) -> Result<(), NetError> {
        let mut ops = self.local.ops.lock().await;
        self.restore_locked(&mut ops).await;
        let (net, attached) = {
            let st = self.local.state();
            let net = st
                .resolve(id)
                .cloned()
                .ok_or_else(|| NetError::NotFound(format!("network {id} not found")))?;
            let attached = st.attached(&net.id);
            (net, attached)
        };
        if net.is_default() {
            return Err(NetError::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            )));
        }
        if !attached.is_empty() {
            let tasks: Vec<&str> = attached.iter().map(Id::as_str).collect();
            return Err(NetError::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints ({})",
                net.name,
                net.id,
                tasks.join(", ")
            )));
        }
        self.local.state().forget_network(&net.id);
        if let Err(e) = self.program_local().await {
            // Kept: its rules are still in place.
            self.local.state().save_network(net.clone())?;
            return Err(e);
        }
        ops.made.remove(&net.bridge);
        self.drop_bridge(&net.bridge).await;
        tracing::info!(network = %net.name, "network: local network removed");
        Ok(())
    }

    /// Plugs a prepared task into one more local network (`docker network connect`).
    pub async fn connect_local(
        &self,
        task: &Id,
        attachment: LocalAttachment,
    ) -> Result<LocalEndpoint, NetError> {
        let mut ops = self.local.ops.lock().await;
        self.restore_locked(&mut ops).await;
        let netns = self.task_netns(task);
        if !is_mounted_netns(&netns) {
            return Err(NetError::NotFound(format!(
                "container {task} has no network namespace of its own (not prepared, or on the node's network)"
            )));
        }
        let (net, mut file) = {
            let st = self.local.state();
            let net = st.resolve(&attachment.network).cloned().ok_or_else(|| {
                NetError::NotFound(format!("network {} not found", attachment.network))
            })?;
            (net, st.tasks.get(task).cloned().unwrap_or_default())
        };
        if file.on(&net.id).is_some() {
            return Err(NetError::Conflict(format!(
                "endpoint with name {task} already exists in network {}",
                net.name
            )));
        }
        self.ensure_bridges(&mut ops, std::slice::from_ref(&net))
            .await?;
        let path = netns.clone();
        let present = tokio::task::spawn_blocking(move || shoal_net::link_names(&path))
            .await
            .map_err(join_error)??;
        let index = (0..)
            .find(|i| !present.contains(&format!("eth{i}")))
            .unwrap_or_default();
        let wired = self.endpoint_on(task, &net, index, attachment.aliases)?;
        let (node, bridge, a) = (
            self.node_netns.clone(),
            net.bridge.clone(),
            attachment_of(&wired),
        );
        tokio::task::spawn_blocking(move || shoal_net::attach_to(&node, &bridge, &netns, &a))
            .await
            .map_err(join_error)??;
        let endpoint = wired.endpoint.clone();
        let host = wired.host_veth.clone();
        file.endpoints.push(wired);
        // The state's guard must be gone before the await below.
        let saved = self.local.state().save_task(task, file);
        if let Err(e) = saved {
            self.drop_link(&host, false).await;
            return Err(e);
        }
        self.program_local().await?;
        drop(ops);
        self.refresh_local_views().await;
        self.serve_local(task).await?;
        Ok(endpoint)
    }

    /// Unplugs a task from a local network (`docker network disconnect`).
    pub async fn disconnect_local(&self, task: &Id, network: &str) -> Result<(), NetError> {
        let mut ops = self.local.ops.lock().await;
        self.restore_locked(&mut ops).await;
        let (net, mut file) = {
            let st = self.local.state();
            let net = st
                .resolve(network)
                .cloned()
                .ok_or_else(|| NetError::NotFound(format!("network {network} not found")))?;
            (net, st.tasks.get(task).cloned().unwrap_or_default())
        };
        let Some(wired) = file.on(&net.id).cloned() else {
            return Err(NetError::NotFound(format!(
                "container {task} is not connected to network {}",
                net.name
            )));
        };
        let (node, host) = (self.node_netns.clone(), wired.host_veth.clone());
        tokio::task::spawn_blocking(move || shoal_net::delete_link(&node, &host))
            .await
            .map_err(join_error)??;
        file.endpoints.retain(|w| w.endpoint.network_id != net.id);
        {
            let mut st = self.local.state();
            if file.endpoints.is_empty() && file.published.is_empty() {
                st.forget_task(task);
            } else {
                st.save_task(task, file)?;
            }
        }
        self.program_local().await?;
        drop(ops);
        self.refresh_local_views().await;
        Ok(())
    }
}

/// Docker's checks of a new network's spec, with its words where it has them.
fn check_spec(spec: &LocalNetworkSpec) -> Result<(), NetError> {
    let invalid = |field: &str, why: String| NetError::InvalidArgument {
        field: field.into(),
        why,
    };
    let name = &spec.name;
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(invalid(
            "name",
            format!("invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        ));
    }
    if !spec.driver.is_empty() && spec.driver != BRIDGE_DRIVER {
        return Err(invalid(
            "driver",
            format!(
                "network {name}: {:?}: only the {BRIDGE_DRIVER} driver makes node-local networks",
                spec.driver
            ),
        ));
    }
    if let Some(b) = spec.options.get(OPT_BRIDGE_NAME) {
        let ok = (1..=15).contains(&b.len())
            && b.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(invalid(
                OPT_BRIDGE_NAME,
                format!(
                    "network {name}: {b:?}: expected an interface name of 1 to 15 letters, digits, '-', '_' or '.'"
                ),
            ));
        }
    }
    if let Some(s) = spec.subnet {
        if s.trunc() != s {
            return Err(invalid(
                "subnet",
                format!(
                    "network {name}: {s} is not a network address; {} is",
                    s.trunc()
                ),
            ));
        }
        if s.prefix_len() > 30 {
            return Err(invalid(
                "subnet",
                format!("network {name}: {s} leaves no address for a container"),
            ));
        }
    }
    match (spec.gateway, spec.subnet) {
        (Some(_), None) => Err(invalid(
            "gateway",
            format!("network {name}: a gateway needs a subnet"),
        )),
        (Some(g), Some(s)) if !s.contains(&g) || g == s.network() || g == s.broadcast() => {
            Err(invalid(
                "gateway",
                format!("network {name}: {g} is not a host address of {s}"),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(spec: LocalNetworkSpec) -> String {
        match check_spec(&spec) {
            Err(NetError::InvalidArgument { field, .. }) => field,
            other => panic!("expected {spec:?} refused, got {other:?}"),
        }
    }

    #[test]
    fn specs_are_checked_as_docker_checks_them() {
        let ok = |s: LocalNetworkSpec| check_spec(&s).expect("valid");
        let named = |name: &str| LocalNetworkSpec {
            name: name.into(),
            ..Default::default()
        };
        ok(named("app_1.b-c"));
        ok(LocalNetworkSpec {
            subnet: Some("10.1.2.0/24".parse().expect("net")),
            gateway: Some(Ipv4Addr::new(10, 1, 2, 9)),
            ..named("x")
        });
        assert_eq!(field_of(named("-x")), "name");
        assert_eq!(field_of(named("")), "name");
        assert_eq!(
            field_of(LocalNetworkSpec {
                driver: "overlay".into(),
                ..named("x")
            }),
            "driver"
        );
        assert_eq!(
            field_of(LocalNetworkSpec {
                subnet: Some("10.1.2.3/24".parse().expect("net")),
                ..named("x")
            }),
            "subnet"
        );
        assert_eq!(
            field_of(LocalNetworkSpec {
                gateway: Some(Ipv4Addr::new(10, 1, 2, 1)),
                ..named("x")
            }),
            "gateway"
        );
        assert_eq!(
            field_of(LocalNetworkSpec {
                subnet: Some("10.1.2.0/24".parse().expect("net")),
                gateway: Some(Ipv4Addr::new(10, 1, 3, 1)),
                ..named("x")
            }),
            "gateway"
        );
        assert_eq!(
            field_of(LocalNetworkSpec {
                options: BTreeMap::from([(OPT_BRIDGE_NAME.into(), "a-name-too-long-0".into())]),
                ..named("x")
            }),
            OPT_BRIDGE_NAME
        );
    }
}
