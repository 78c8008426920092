//! A node's side of overlay networking.
//!
//! - [`NetAgent`] keeps the node's overlays as the managers' [`NetworkMap`] describes them:
//!   for each network one of its tasks is on, a namespace of its own (`<dir>/overlay/<VNI>`)
//!   holding the bridge and the VXLAN device, with a static forwarding and neighbour entry for
//!   every task of that network on another node. Entries of tasks that left are removed, and
//!   an overlay no task here uses any more goes.
//! - [`NetAgent::wrap`] puts it in front of a runtime driver: a task with networks gets a
//!   network namespace (`<dir>/task/<ID>`) with one interface per network, addressed as the
//!   store said, before the driver prepares it, so the task never runs without its network;
//!   the namespace goes when the driver removes the task. Neither the agent nor the drivers
//!   know how the namespace was made; drivers only join it (`TaskRun::netns`).
//! - Node-local networks (Docker's `bridge` driver, for standalone containers): see `local`.
//!   A task's `local_networks` are wired into the same namespace, after its overlays.
//!
//! Every kernel change is made through `shoal-net` (netlink), off the async threads.
//! Namespaces are kept as bind mounts, so tasks and overlays outlive a daemon restart (a
//! restarted daemon adopts them) and `kill -9` of the daemon loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use shoal_ipam::Ipv4Net;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shoal_net::nat::{Proto, Published, ReturnPath, Vip};
use shoal_net::{Attachment, NetError, NodeLink, Overlay, RemoteTask};
use shoal_runtime::{
    ExitInfo, Health, ImageInfo, LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeTask,
    TaskRun, VolumeInfo,
};
use shoal_types::Id;
use shoal_types::dispatch::{NetworkMap, NetworkPlan};
use shoal_types::service::Protocol;

mod gateway;
mod local;
use gateway::Gateway;
pub use local::DEFAULT_BRIDGE;
use tokio::sync::{Mutex, watch};

/// How long a task waits for its node to hear of its networks: the map is sent before the
/// assignment, so this only covers a session that is being replaced.
const MAP_WAIT: Duration = Duration::from_secs(10);
/// The MTU assumed for the underlay when the node's interface cannot be asked.
const UNDERLAY_MTU: u32 = 1500;

/// One overlay as programmed on this node.
#[derive(Debug, Default)]
struct Programmed {
    /// Remote tasks (and, on the ingress network, nodes) known to the overlay.
    remotes: BTreeSet<Remote>,
}

/// A remote end as programmed: (address, MAC, where its node's VXLAN packets go).
type Remote = (Ipv4Addr, [u8; 6], std::net::IpAddr);

/// The UDP port of the node's WireGuard tunnel, which carries its encrypted overlays
/// (WireGuard's own default port).
pub const TUNNEL_PORT: u16 = 51820;
const TUNNEL_DEVICE: &str = "shwg0";

/// What this node serves inside one task's namespace: its DNS server and the virtual IPs
/// programmed there.
struct Served {
    view: watch::Sender<Arc<shoal_dns::View>>,
    _dns: shoal_dns::ServeHandle,
    /// `None` until programmed once.
    vips: Option<Vec<Vip>>,
    /// The ways back to each node that answers published ports, for a task on the ingress
    /// network: `None` until programmed once.
    paths: Option<Vec<ReturnPath>>,
}

/// The name of the node's end of its link into the ingress network.
const INGRESS_LINK: &str = "shingress";
/// The node's gateway bridge (Docker's `docker_gwbridge`): tasks' way out.
const GATEWAY_BRIDGE: &str = "shgw0";
/// The nftables table of published ports (routing mesh) and of host-mode ports.
const MESH_TABLE: &str = "shoal-mesh";
const HOST_PORTS_TABLE: &str = "shoal-hostports";

/// What the node's own namespace holds for its tasks' traffic in and out, as last programmed.
#[derive(Debug, Default)]
struct NodeSide {
    /// The gateway bridge, masquerade and forwarding are in place.
    gateway: bool,
    mesh: Option<Vec<Published>>,
    host_ports: Option<Vec<Published>>,
}

pub struct NetAgent {
    dir: PathBuf,
    resolver: Arc<shoal_dns::Resolver>,
    /// Tasks of this node whose names and virtual IPs are served, by task.
    served: Mutex<BTreeMap<Id, Served>>,
    /// The daemon's own namespace, where the underlay is.
    node_netns: PathBuf,
    maps: watch::Sender<Arc<NetworkMap>>,
    /// Held while the kernel is changed: one reconcile or task wiring at a time.
    overlays: Mutex<BTreeMap<u32, Programmed>>,
    /// The node's gateway network: its subnet and the addresses its tasks hold there.
    gateway: std::sync::Mutex<Gateway>,
    node_side: Mutex<NodeSide>,
    /// The node's tunnel key for this run; `None` when the system gave no randomness (then
    /// encrypted overlays are refused, never carried in plaintext).
    keys: Option<shoal_wg::Keypair>,
    /// Running while this node is on an encrypted overlay.
    tunnel: Mutex<Option<shoal_wg::Tunnel>>,
    /// The cluster's tunnel key the tunnel runs with.
    psk: Mutex<Option<[u8; 32]>>,
    /// The node's local bridge networks and its standalone containers' endpoints on them.
    local: local::LocalNets,
}

/// How a [`NetAgent`] is made; [`NetAgent::new`] takes the defaults.
pub struct NetAgentConfig {
    /// Where the agent keeps what outlives the daemon (namespaces, addresses, networks).
    pub dir: PathBuf,
    /// The node's own network namespace (its underlay, gateway and local bridges, published
    /// ports); the daemon's when `None`.
    pub node_netns: Option<PathBuf>,
    /// When local networks are made.
    pub clock: Arc<dyn shoal_types::Clock>,
    /// Where local networks' and endpoints' IDs come from.
    pub ids: shoal_types::IdGen,
}

impl NetAgent {
    pub fn new(dir: PathBuf) -> Arc<NetAgent> {
        NetAgent::with_config(NetAgentConfig {
            dir,
            node_netns: None,
            clock: Arc::new(shoal_types::clock::SystemClock),
            ids: shoal_types::IdGen::from_os(),
        })
    }

    pub fn with_config(cfg: NetAgentConfig) -> Arc<NetAgent> {
        let dir = cfg.dir;
        let (maps, _) = watch::channel(Arc::default());
        // Overlays a previous run left: adopted, and removed by the first map that does not
        // name them.
        let found: BTreeMap<u32, Programmed> = std::fs::read_dir(dir.join("overlay"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .map(|vni| (vni, Programmed::default()))
            .collect();
        // Names outside the cluster go to the node's own resolvers.
        let upstreams = std::fs::read_to_string("/etc/resolv.conf")
            .map(|t| shoal_dns::read_resolv_conf(&t).upstreams())
            .unwrap_or_default();
        let node_netns = cfg
            .node_netns
            .unwrap_or_else(|| PathBuf::from(format!("/proc/{}/ns/net", std::process::id())));
        let gateway = Gateway::load(&dir, &node_netns);
        let local = local::LocalNets::load(&dir, &node_netns, gateway.subnet(), cfg.clock, cfg.ids);
        let keys = shoal_wg::Keypair::from_os_rng()
            .inspect_err(|e| tracing::warn!(error = %e, "network: no key for encrypted overlays"))
            .ok();
        Arc::new(NetAgent {
            local,
            keys,
            tunnel: Mutex::new(None),
            psk: Mutex::new(None),
            gateway: std::sync::Mutex::new(gateway),
            node_side: Mutex::new(NodeSide::default()),
            dir,
            resolver: shoal_dns::Resolver::new(upstreams),
            served: Mutex::new(BTreeMap::new()),
            node_netns,
            maps,
            overlays: Mutex::new(found),
        })
    }

    /// The public key of the node's tunnel, for its description: other nodes learn it from
    /// the managers.
    pub fn network_key(&self) -> Option<String> {
        self.keys.as_ref().map(|k| k.public.to_string())
    }

    /// Hands the agent the managers' latest map.
    pub fn set_map(&self, map: Arc<NetworkMap>) {
        self.maps.send_replace(map);
    }

    /// Keeps the overlays in step with the map until the returned task is aborted.
    pub fn spawn_reconciler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let mut rx = self.maps.subscribe();
        tokio::spawn(async move {
            loop {
                rx.borrow_and_update();
                if let Err(e) = me.reconcile().await {
                    tracing::warn!(error = %shoal_types::error::Chain(&e), "network: programming the overlays failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    rx.mark_changed();
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// A driver that wires each task's network before `inner` sees it.
    pub fn wrap(self: &Arc<Self>, inner: Arc<dyn RuntimeDriver>) -> Arc<dyn RuntimeDriver> {
        Arc::new(NetDriver {
            net: self.clone(),
            inner,
            preparing: Default::default(),
        })
    }

    fn overlay_netns(&self, vni: u32) -> PathBuf {
        self.dir.join("overlay").join(vni.to_string())
    }

    fn task_netns(&self, task: &Id) -> PathBuf {
        self.dir.join("task").join(task.as_str())
    }

    /// Brings the overlays to what the latest map says, and answers that map.
    ///
    /// The map is read once the overlays are held, never before: a map read earlier may be
    /// older than the one a task was just wired by (a rolling update's old task gone, its
    /// successor not yet placed), and applying it would delete the overlay under the new
    /// task's interfaces.
    async fn reconcile(&self) -> Result<Arc<NetworkMap>, NetError> {
        let mut overlays = self.overlays.lock().await;
        let latest = self.maps.borrow().clone();
        let map = &*latest;
        let Some(local) = map.local_addr else {
            return Ok(latest);
        };
        self.tunnel_to(map, local).await?;
        let mut wanted = BTreeSet::new();
        for plan in &map.networks {
            let vni = plan.network.vni;
            let encrypted = plan.network.spec.encrypted();
            wanted.insert(vni);
            let programmed = match overlays.get_mut(&vni) {
                Some(p) => p,
                None => {
                    self.make_overlay(vni, local, map.data_path_port, encrypted)
                        .await?;
                    overlays.entry(vni).or_default()
                }
            };
            let remotes = remotes_of(plan, local, encrypted);
            let sandbox = self.overlay_netns(vni);
            for &r in remotes.difference(&programmed.remotes) {
                blocking(shoal_net::add_remote, &sandbox, vni, remote(r)).await?;
            }
            for &r in programmed.remotes.difference(&remotes) {
                blocking(shoal_net::remove_remote, &sandbox, vni, remote(r)).await?;
            }
            programmed.remotes = remotes;
            if plan.network.spec.ingress {
                let link = NodeLink {
                    name: INGRESS_LINK.to_string(),
                    mac: shoal_net::node_mac(local),
                    subnet: plan.network.addrs.subnet,
                    addr: Some(local),
                };
                let (node, sandbox) = (self.node_netns.clone(), sandbox.clone());
                tokio::task::spawn_blocking(move || {
                    shoal_net::enable_forwarding(&node)?;
                    shoal_net::join_node(&node, &sandbox, vni, &link)?;
                    forward_accept(&node, INGRESS_LINK);
                    Ok::<_, NetError>(())
                })
                .await
                .map_err(join_error)??;
            }
        }
        let gone: Vec<u32> = overlays
            .keys()
            .filter(|v| !wanted.contains(v))
            .copied()
            .collect();
        for vni in gone {
            tracing::info!(
                vni,
                "network: no task here uses the overlay any more; removing it"
            );
            overlays.remove(&vni);
            let path = self.overlay_netns(vni);
            tokio::task::spawn_blocking(move || {
                // The devices go now, not whenever the kernel gets round to the namespace: a
                // VXLAN device of this VNI alive in the meantime would make the next one the
                // overlay needs fail with "File exists".
                if let Err(e) = shoal_net::delete_overlay(&path, vni) {
                    tracing::debug!(vni, error = %shoal_types::error::Chain(&e), "network: removing the overlay's devices before its namespace");
                }
                shoal_net::delete_netns(&path)
            })
            .await
            .map_err(join_error)??;
        }
        drop(overlays);
        self.publish(map).await?;
        self.serve_tasks(map, local).await?;
        Ok(latest)
    }

    /// The MTU of the node's interface that holds its underlay address: overlays subtract
    /// their encapsulation from it.
    async fn underlay_mtu(&self, local: Ipv4Addr) -> u32 {
        let node = self.node_netns.clone();
        match tokio::task::spawn_blocking(move || shoal_net::mtu_of(&node, local)).await {
            Ok(Ok(Some(mtu))) => mtu,
            Ok(Ok(None)) => UNDERLAY_MTU,
            Ok(Err(e)) => {
                tracing::warn!(error = %shoal_types::error::Chain(&e), "network: reading the underlay's MTU failed; assuming {UNDERLAY_MTU}");
                UNDERLAY_MTU
            }
            Err(_) => UNDERLAY_MTU,
        }
    }

    /// Starts, updates or stops the node's tunnel: it runs while the node is on an encrypted
    /// overlay, with every other node the managers know a key of as a peer.
    async fn tunnel_to(&self, map: &NetworkMap, local: Ipv4Addr) -> Result<(), NetError> {
        let mut tunnel = self.tunnel.lock().await;
        if !map.networks.iter().any(|p| p.network.spec.encrypted()) {
            if let Some(t) = tunnel.take() {
                tracing::info!("network: no encrypted overlay here any more; stopping the tunnel");
                tokio::task::spawn_blocking(move || t.stop())
                    .await
                    .map_err(join_error)?;
            }
            return Ok(());
        }
        let mut peers = Vec::new();
        for p in &map.peers {
            match p.key.parse::<shoal_wg::PublicKey>() {
                Ok(key) => peers.push(shoal_wg::Peer::new(
                    key,
                    std::net::SocketAddrV4::new(p.addr, TUNNEL_PORT),
                )),
                Err(e) => {
                    tracing::warn!(node = %p.addr, error = %e, "network: a node's tunnel key is unreadable; it is left out")
                }
            }
        }
        let psk = match map.tunnel_key.as_deref().map(psk_of).transpose() {
            Ok(k) => k,
            Err(why) => {
                // Never a weaker tunnel than the managers meant: keep what runs.
                return Err(NetError::Missing(format!(
                    "the cluster's tunnel key from the managers: {why}"
                )));
            }
        };
        let mut held = self.psk.lock().await;
        if let Some(t) = tunnel.as_ref() {
            if t.peers() != peers || *held != psk {
                t.set_peers(peers, psk)
                    .map_err(|e| NetError::Missing(format!("updating the tunnel's peers: {e}")))?;
                *held = psk;
            }
            return Ok(());
        }
        let Some(keys) = &self.keys else {
            return Err(NetError::Missing(
                "this node has no tunnel key, so it cannot join an encrypted overlay".into(),
            ));
        };
        let cfg = shoal_wg::TunnelConfig {
            device: TUNNEL_DEVICE.to_string(),
            private_key: keys.private.clone(),
            listen: std::net::SocketAddrV4::new(local, TUNNEL_PORT),
            underlay_mtu: self.underlay_mtu(local).await,
            preshared_key: psk,
            peers,
        };
        let node = self.node_netns.clone();
        let started = tokio::task::spawn_blocking(move || shoal_wg::Tunnel::start(&node, cfg))
            .await
            .map_err(join_error)?
            .map_err(|e| {
                NetError::Missing(format!(
                    "starting the tunnel that encrypts overlay traffic: {}",
                    shoal_types::error::Chain(&e)
                ))
            })?;
        tracing::info!(key = %started.public_key(), "network: tunnel for encrypted overlays up");
        *tunnel = Some(started);
        *held = psk;
        Ok(())
    }

    /// Programs the node's published ports: those of the routing mesh to every ready task
    /// through the ingress network, those in host mode to this node's tasks on the gateway
    /// network. Neither rewrites the client's address.
    async fn publish(&self, map: &NetworkMap) -> Result<(), NetError> {
        let mut guard = self.node_side.lock().await;
        let side = &mut *guard;
        let mesh: Vec<Published> = map
            .published
            .iter()
            .map(|p| Published {
                proto: proto(p.protocol),
                port: p.published,
                backends: p.backends.iter().map(|b| (*b, p.target)).collect(),
            })
            .collect();
        let host: Vec<Published> = {
            let gw = self.gateway.lock().unwrap_or_else(|e| e.into_inner());
            map.host_ports
                .iter()
                .filter_map(|h| {
                    gw.addr_of(&h.task).map(|a| Published {
                        proto: proto(h.protocol),
                        port: h.published,
                        backends: vec![(a, h.target)],
                    })
                })
                .collect()
        };
        for (table, wanted, had) in [
            (MESH_TABLE, mesh, &mut side.mesh),
            (HOST_PORTS_TABLE, host, &mut side.host_ports),
        ] {
            if had.as_ref() == Some(&wanted) {
                continue;
            }
            let node = self.node_netns.clone();
            let ports = wanted.clone();
            tokio::task::spawn_blocking(move || {
                if ports.is_empty() {
                    shoal_net::nat::remove_published(&node, table)
                } else {
                    shoal_net::nat::program_published(&node, table, &ports)
                }
            })
            .await
            .map_err(join_error)??;
            *had = Some(wanted);
        }
        Ok(())
    }

    /// Makes the node's gateway network once: the bridge, forwarding, and masquerade of its
    /// subnet on the way out.
    async fn ensure_gateway(&self) -> Result<(Ipv4Net, Ipv4Addr), NetError> {
        let (subnet, bridge_addr) = {
            let gw = self.gateway.lock().unwrap_or_else(|e| e.into_inner());
            (gw.subnet(), gw.bridge_addr())
        };
        let mut side = self.node_side.lock().await;
        if !side.gateway {
            let node = self.node_netns.clone();
            tokio::task::spawn_blocking(move || {
                shoal_net::ensure_bridge(
                    &node,
                    GATEWAY_BRIDGE,
                    Ipv4Net::new(bridge_addr, subnet.prefix_len())
                        .map_err(|e| NetError::Missing(format!("the gateway subnet: {e}")))?,
                )?;
                shoal_net::enable_forwarding(&node)?;
                shoal_net::nat::program_masquerade(&node, "gw", subnet, GATEWAY_BRIDGE)?;
                forward_accept(&node, GATEWAY_BRIDGE);
                Ok::<_, NetError>(())
            })
            .await
            .map_err(join_error)??;
            side.gateway = true;
        }
        Ok((subnet, bridge_addr))
    }

    /// Gives each wired task of this node the names and virtual IPs of its networks: a DNS
    /// server on 127.0.0.11 in its namespace (made once, its view replaced as the map
    /// changes) and the VIP table (reprogrammed when its backends change; connections already
    /// made keep their backend).
    async fn serve_tasks(&self, map: &NetworkMap, local: Ipv4Addr) -> Result<(), NetError> {
        let mut on: BTreeMap<&Id, Vec<&NetworkPlan>> = BTreeMap::new();
        for plan in &map.networks {
            for e in plan.endpoints.iter().filter(|e| e.node_addr == Some(local)) {
                on.entry(&e.task).or_default().push(plan);
            }
        }
        let paths: Vec<ReturnPath> = map
            .networks
            .iter()
            .filter(|p| p.network.spec.ingress)
            .flat_map(|p| p.gateways.iter())
            .map(|&g| ReturnPath {
                mark: u32::from(g),
                mac: shoal_net::node_mac(g),
                via: g,
            })
            .collect();
        // Tasks on local networks are served whether or not they are on overlays.
        let local_tasks = self.local_task_ids();
        let mut served = self.served.lock().await;
        served.retain(|id, _| on.contains_key(id) || local_tasks.contains(id));
        for (task, plans) in on {
            let netns = self.task_netns(task);
            if !is_mounted_netns(&netns) {
                continue;
            }
            let view = Arc::new(self.with_local_names(task, view_of(&plans)));
            let vips = vips_of(&plans);
            // The ingress network is the task's first when it is on it.
            let on_ingress = plans.iter().any(|p| p.network.spec.ingress);
            if !served.contains_key(task) {
                let (udp, tcp) = bind_dns(&netns).await?;
                let (tx, rx) = watch::channel(view.clone());
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
            }
            let Some(s) = served.get_mut(task) else {
                continue;
            };
            if **s.view.borrow() != *view {
                s.view.send_replace(view);
            }
            if s.vips.as_ref() != Some(&vips) {
                let (path, program) = (netns.clone(), vips.clone());
                tokio::task::spawn_blocking(move || shoal_net::nat::program_vips(&path, &program))
                    .await
                    .map_err(join_error)??;
                s.vips = Some(vips);
            }
            let wanted = if on_ingress {
                paths.clone()
            } else {
                Vec::new()
            };
            if s.paths.as_ref() != Some(&wanted) {
                let (path, program) = (netns.clone(), wanted.clone());
                tokio::task::spawn_blocking(move || {
                    shoal_net::nat::program_return_paths(&path, "eth0", &program)
                })
                .await
                .map_err(join_error)??;
                s.paths = Some(wanted);
            }
        }
        Ok(())
    }

    /// Makes the overlay's namespace and devices, or adopts them when a restarted daemon
    /// finds them in place.
    async fn make_overlay(
        &self,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
        encrypted: bool,
    ) -> Result<(), NetError> {
        // An encrypted overlay's VXLAN runs between the nodes' tunnel addresses.
        let mtu = self.underlay_mtu(local).await;
        let (local, underlay_mtu) = if encrypted {
            (
                std::net::IpAddr::V6(shoal_wg::inner_addr(local)),
                shoal_wg::inner_mtu(mtu),
            )
        } else {
            (std::net::IpAddr::V4(local), mtu)
        };
        let sandbox = self.overlay_netns(vni);
        if is_mounted_netns(&sandbox) {
            return Ok(());
        }
        let node = self.node_netns.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = sandbox.parent() {
                std::fs::create_dir_all(parent).map_err(|source| NetError::Netns {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            // A file left by a crash between creating and mounting it.
            let _ = shoal_net::delete_netns(&sandbox);
            shoal_net::create_netns(&sandbox)?;
            let made = shoal_net::create_overlay(
                &node,
                &sandbox,
                Overlay {
                    vni,
                    local,
                    port,
                    underlay_mtu,
                },
            );
            if made.is_err() {
                let _ = shoal_net::delete_netns(&sandbox);
            }
            made
        })
        .await
        .map_err(join_error)?
    }

    /// Waits until the map names every network of the task, then makes sure their overlays
    /// exist.
    async fn await_networks(&self, run: &TaskRun) -> Result<Arc<NetworkMap>, RuntimeError> {
        let mut rx = self.maps.subscribe();
        let wanted: Vec<&Id> = run.networks.iter().map(|a| &a.network).collect();
        let covered = |m: &NetworkMap| {
            wanted
                .iter()
                .all(|w| m.networks.iter().any(|p| p.network.id == **w))
        };
        tokio::time::timeout(MAP_WAIT, async {
            loop {
                if covered(&rx.borrow_and_update()) {
                    return Some(());
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            RuntimeError::StartFailed(format!(
                "this node has not heard of the task's networks ({}) from the managers",
                wanted
                    .iter()
                    .map(|w| w.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let map = self
            .reconcile()
            .await
            .map_err(|e| RuntimeError::failed("programming the task's overlays", e))?;
        if !covered(&map) {
            return Err(RuntimeError::StartFailed(
                "the task's networks left this node's map while it was being wired".into(),
            ));
        }
        Ok(map)
    }

    /// Where the task's own name servers (`--dns`) are kept for its DNS server: on disk, so a
    /// restarted daemon serving an adopted task forwards to them too.
    fn upstreams_file(&self, task: &Id) -> PathBuf {
        self.dir.join("dns").join(task.as_str())
    }

    /// Records the task's `--dns` servers, if it has any.
    fn keep_upstreams(&self, run: &TaskRun) -> Result<(), RuntimeError> {
        let servers: Vec<String> = run
            .container
            .dns_config
            .as_ref()
            .map(|d| d.nameservers.clone())
            .unwrap_or_default();
        if servers.is_empty() {
            return Ok(());
        }
        let file = self.upstreams_file(&run.task_id);
        file.parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::write(&file, servers.join("\n")))
            .map_err(|e| RuntimeError::failed("recording the task's name servers", e))
    }

    /// The task's `--dns` servers (port 53), or `None` for the node's own resolvers.
    fn task_upstreams(&self, task: &Id) -> Option<Vec<std::net::SocketAddr>> {
        let text = std::fs::read_to_string(self.upstreams_file(task)).ok()?;
        let servers: Vec<std::net::SocketAddr> = text
            .lines()
            .filter_map(|l| l.trim().parse::<std::net::IpAddr>().ok())
            .map(|ip| std::net::SocketAddr::new(ip, 53))
            .collect();
        (!servers.is_empty()).then_some(servers)
    }

    /// Makes the task's namespace and its interfaces. A namespace already in place (a
    /// prepare repeated after a restart) is kept as it is.
    /// `made`: the namespace the runtime made for the task, if it made one.
    async fn wire(&self, run: &TaskRun, made: Option<PathBuf>) -> Result<PathBuf, RuntimeError> {
        let path = self.task_netns(&run.task_id);
        if is_mounted_netns(&path) {
            return Ok(path);
        }
        // A standalone container on local networks only waits for no map.
        let map = if run.networks.is_empty() && !run.local_networks.is_empty() {
            self.maps.borrow().clone()
        } else {
            self.await_networks(run).await?
        };
        self.keep_upstreams(run)?;
        let local_plan = self.plan_local(run).await?;
        let held = self.overlays.lock().await;
        let mut links = Vec::new();
        for (i, a) in run.networks.iter().enumerate() {
            let plan = map
                .networks
                .iter()
                .find(|p| p.network.id == a.network)
                .ok_or_else(|| {
                    RuntimeError::StartFailed(format!("network {} vanished", a.network))
                })?;
            let vni = plan.network.vni;
            links.push((
                self.overlay_netns(vni),
                vni,
                Attachment {
                    addr: a.addr,
                    mac: shoal_net::mac_for(a.addr.addr()),
                    name: format!("eth{i}"),
                    host_name: host_veth(&run.task_id, i),
                },
            ));
        }
        // A task on internal networks only has no way out (`network create --internal`); one
        // on local networks goes out through them.
        let needs_gateway = local_plan.is_none()
            && (run.networks.is_empty()
                || run.networks.iter().any(|a| {
                    map.networks
                        .iter()
                        .find(|p| p.network.id == a.network)
                        .is_some_and(|p| !p.network.spec.internal)
                }));
        let mut way_out = None;
        if needs_gateway {
            let (subnet, bridge_addr) = self
                .ensure_gateway()
                .await
                .map_err(|e| RuntimeError::failed("making the node's gateway network", e))?;
            let addr = self
                .gateway
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(&run.task_id)
                .map_err(|e| RuntimeError::failed("giving the task a gateway address", e))?;
            let i = run.networks.len();
            way_out = Some((
                Attachment {
                    addr: Ipv4Net::new(addr, subnet.prefix_len()).unwrap_or(subnet),
                    mac: shoal_net::mac_for(addr),
                    name: format!("eth{i}"),
                    host_name: host_veth(&run.task_id, i),
                },
                bridge_addr,
            ));
        }
        let node_ns = self.node_netns.clone();
        let task_ns = path.clone();
        let (local_links, local_route) = local_plan
            .as_ref()
            .map(|l| (l.links.clone(), l.route.clone()))
            .unwrap_or_default();
        let wired = tokio::task::spawn_blocking(move || -> Result<(), NetError> {
            if let Some(parent) = task_ns.parent() {
                std::fs::create_dir_all(parent).map_err(|source| NetError::Netns {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            let _ = shoal_net::delete_netns(&task_ns);
            match &made {
                Some(source) => shoal_net::keep_netns(source, &task_ns)?,
                None => shoal_net::create_netns(&task_ns)?,
            }
            let wired = (|| {
                for (sandbox, vni, a) in &links {
                    shoal_net::attach(sandbox, *vni, &task_ns, a)?;
                }
                if let Some((a, via)) = &way_out {
                    shoal_net::attach_to(&node_ns, GATEWAY_BRIDGE, &task_ns, a)?;
                    shoal_net::set_default_route(&task_ns, &a.name, *via)?;
                }
                for (bridge, a) in &local_links {
                    shoal_net::attach_to(&node_ns, bridge, &task_ns, a)?;
                }
                if let Some((dev, via)) = &local_route {
                    shoal_net::set_default_route(&task_ns, dev, *via)?;
                }
                Ok(())
            })();
            if wired.is_err() {
                let _ = shoal_net::delete_netns(&task_ns);
            }
            wired
        })
        .await
        .map_err(|e| RuntimeError::failed("wiring the task's network", join_error(e)))
        .and_then(|r| r.map_err(|e| RuntimeError::failed("wiring the task's network", e)));
        if let Err(e) = wired {
            self.gateway
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .release(&run.task_id);
            if let Some(plan) = local_plan {
                self.abandon_local(plan, &run.task_id).await;
            }
            return Err(e);
        }
        drop(held);
        // A host-mode port waits for its task's gateway address.
        if let Err(e) = self.publish(&map).await {
            tracing::warn!(task.id = %run.task_id, error = %shoal_types::error::Chain(&e), "network: publishing the task's ports failed; retrying with the next map");
        }
        // Done first: it ends the local networks' lock, which unwiring takes.
        if let Some(plan) = local_plan
            && let Err(e) = self.finish_local(plan, &run.task_id).await
        {
            self.unwire(&run.task_id).await;
            return Err(e);
        }
        // Names and virtual IPs before the task's process starts, not at the next map.
        if let Some(local) = map.local_addr
            && let Err(e) = self.serve_tasks(&map, local).await
        {
            self.unwire(&run.task_id).await;
            return Err(RuntimeError::failed(
                "serving the task's names and virtual IPs",
                e,
            ));
        }
        Ok(path)
    }

    async fn unwire(&self, task: &Id) {
        self.served.lock().await.remove(task);
        self.unwire_local(task).await;
        let _ = std::fs::remove_file(self.upstreams_file(task));
        self.gateway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(task);
        let path = self.task_netns(task);
        let shown = path.clone();
        match tokio::task::spawn_blocking(move || shoal_net::delete_netns(&path)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(task.id = %task, netns = %shown.display(), error = %shoal_types::error::Chain(&e), "network: removing the task's namespace failed")
            }
            Err(e) => {
                tracing::warn!(task.id = %task, error = %e, "network: removing the task's namespace failed")
            }
        }
    }

    /// Namespaces of tasks the runtime no longer holds: left by a crash between wiring and
    /// preparing, or by a task removed while the daemon was down.
    async fn remove_strays(&self, held: &BTreeSet<Id>) {
        for id in self.local_task_ids() {
            if !held.contains(&id) {
                tracing::info!(task.id = %id, "network: releasing the local endpoints of a task the runtime no longer holds");
                self.unwire(&id).await;
            }
        }
        let Ok(entries) = std::fs::read_dir(self.dir.join("task")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = Id::from_raw(&name);
            if !held.contains(&id) {
                tracing::info!(task.id = %id, "network: removing the namespace of a task the runtime no longer holds");
                self.unwire(&id).await;
            }
        }
    }
}

/// The names a task on `plans` resolves, as Docker's embedded DNS answers them: `SERVICE` and
/// each alias (the virtual IP, or every ready task for `dnsrr`), `tasks.SERVICE` (every ready
/// task).
fn view_of(plans: &[&NetworkPlan]) -> shoal_dns::View {
    let mut names: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
    for plan in plans {
        for s in &plan.services {
            let front = match s.vip {
                Some(vip) => vec![vip],
                None => s.ready.clone(),
            };
            for name in std::iter::once(&s.name).chain(s.aliases.iter()) {
                names
                    .entry(name.to_ascii_lowercase())
                    .or_default()
                    .extend(&front);
            }
            names
                .entry(format!("tasks.{}", s.name.to_ascii_lowercase()))
                .or_default()
                .extend(&s.ready);
        }
    }
    for v in names.values_mut() {
        v.sort();
        v.dedup();
    }
    shoal_dns::View { names }
}

/// Each virtual IP on `plans` and the ready tasks behind it, in a stable order.
fn vips_of(plans: &[&NetworkPlan]) -> Vec<Vip> {
    let mut out: Vec<Vip> = plans
        .iter()
        .flat_map(|p| p.services.iter())
        .filter_map(|s| {
            s.vip.map(|vip| {
                let mut backends = s.ready.clone();
                backends.sort();
                Vip { vip, backends }
            })
        })
        .collect();
    out.sort_by_key(|v| v.vip);
    out.dedup_by_key(|v| v.vip);
    out
}

/// Binds 127.0.0.11:53 (UDP and TCP) inside the task's namespace, from a thread that entered
/// it: the sockets stay there while the daemon serves them from its own.
async fn bind_dns(netns: &Path) -> Result<(std::net::UdpSocket, std::net::TcpListener), NetError> {
    let path = netns.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let inside = path.clone();
        let bound = std::thread::spawn(move || -> std::io::Result<_> {
            let ns = std::fs::File::open(&inside)?;
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            let at = std::net::SocketAddr::from((shoal_dns::INTERNAL_NAMESERVER, 53));
            let udp = std::net::UdpSocket::bind(at)?;
            let tcp = std::net::TcpListener::bind(at)?;
            udp.set_nonblocking(true)?;
            tcp.set_nonblocking(true)?;
            Ok((udp, tcp))
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the binding thread panicked")));
        bound.map_err(|source| NetError::Netns { path, source })
    })
    .await
    .map_err(join_error)?
}

fn remote((ip, mac, node): Remote) -> RemoteTask {
    RemoteTask { ip, mac, node }
}

/// Tasks of the network on other nodes, and on the ingress network the other nodes' own
/// links (replies to a published port go back through the node that took the connection).
/// On an encrypted overlay, a node's packets go to its tunnel address.
fn remotes_of(plan: &NetworkPlan, local: Ipv4Addr, encrypted: bool) -> BTreeSet<Remote> {
    let tasks = plan
        .endpoints
        .iter()
        .filter_map(|e| e.node_addr.map(|n| (e.addr, shoal_net::mac_for(e.addr), n)));
    let nodes = plan
        .gateways
        .iter()
        .map(|&g| (g, shoal_net::node_mac(g), g));
    tasks
        .chain(nodes)
        .filter(|(_, _, n)| *n != local)
        .map(|(ip, mac, n)| {
            let to = if encrypted {
                std::net::IpAddr::V6(shoal_wg::inner_addr(n))
            } else {
                std::net::IpAddr::V4(n)
            };
            (ip, mac, to)
        })
        .collect()
}

/// Lets forwarded traffic through iptables' FORWARD chain (dockerd sets its policy to DROP).
/// Where iptables is missing or refuses, nftables' own accept is all there is, which is enough
/// without dockerd: worth a warning, not a failure.
fn forward_accept(node: &Path, link: &str) {
    if let Err(e) = shoal_net::nat::ensure_iptables_forward_accept(node, link) {
        tracing::warn!(link, error = %shoal_types::error::Chain(&e), "network: accepting forwarded traffic in iptables failed; a FORWARD policy of DROP will stop it");
    }
}

/// The cluster's tunnel key: 32 bytes in hex.
fn psk_of(hex: &str) -> Result<[u8; 32], String> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err(format!("expected 64 hex digits, got {}", bytes.len()));
    }
    let mut key = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digits = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
        key[i] = u8::from_str_radix(digits, 16).map_err(|_| format!("{digits:?} is not hex"))?;
    }
    Ok(key)
}

fn proto(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
    }
}

/// The node-side end of a task's interface: unique per task and network, under the kernel's
/// 15 bytes.
fn host_veth(task: &Id, index: usize) -> String {
    let short: String = task.as_str().chars().take(9).collect();
    format!("sh{short}{index}")
}

/// Whether `path` holds a namespace (a bind mount of an `nsfs` inode), not just the empty
/// file a crash may leave.
fn is_mounted_netns(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(m), Some(Ok(parent))) => m.dev() != parent.dev(),
        _ => false,
    }
}

async fn blocking(
    f: fn(&Path, u32, RemoteTask) -> Result<(), NetError>,
    sandbox: &Path,
    vni: u32,
    r: RemoteTask,
) -> Result<(), NetError> {
    let sandbox = sandbox.to_path_buf();
    tokio::task::spawn_blocking(move || f(&sandbox, vni, r))
        .await
        .map_err(join_error)?
}

fn join_error(e: tokio::task::JoinError) -> NetError {
    NetError::Missing(format!("the network worker thread failed: {e}"))
}

/// The driver in front of the node's runtime.
struct NetDriver {
    net: Arc<NetAgent>,
    inner: Arc<dyn RuntimeDriver>,
    /// Tasks between their wiring and the runtime holding them: `list` (which anyone may call,
    /// the node's engine several times a second) must not take their namespaces for strays.
    preparing: std::sync::Mutex<BTreeSet<Id>>,
}

/// Marks a task as being prepared for as long as it lives.
struct Preparing<'a>(&'a NetDriver, Id);

impl Drop for Preparing<'_> {
    fn drop(&mut self) {
        self.0
            .preparing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

#[async_trait]
impl RuntimeDriver for NetDriver {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn runtimes(&self) -> Vec<&'static str> {
        self.inner.runtimes()
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), RuntimeError> {
        if run.networks.is_empty()
            && run.local_networks.is_empty()
            && run.publish.is_empty()
            && !self.net.maps.borrow().publishes(&run.task_id)
        {
            return self.inner.prepare(run).await;
        }
        self.preparing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run.task_id.clone());
        let _preparing = Preparing(self, run.task_id.clone());
        let made = self.inner.network_sandbox(run).await?;
        let netns = match self.net.wire(run, made.clone()).await {
            Ok(n) => n,
            Err(e) => {
                if made.is_some()
                    && let Err(r) = self.inner.remove(&run.task_id).await
                {
                    tracing::warn!(task.id = %run.task_id, error = %shoal_types::error::Chain(&r), "network: removing the task's sandbox failed");
                }
                return Err(e);
            }
        };
        let mut run = run.clone();
        run.netns = Some(netns);
        let prepared = self.inner.prepare(&run).await;
        if prepared.is_err() {
            self.net.unwire(&run.task_id).await;
        }
        prepared
    }

    async fn start(&self, task_id: &Id) -> Result<i64, RuntimeError> {
        self.inner.start(task_id).await
    }

    async fn wait(&self, task_id: &Id) -> Result<ExitInfo, RuntimeError> {
        self.inner.wait(task_id).await
    }

    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError> {
        self.inner.stop(task_id, grace).await
    }

    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let removed = self.inner.remove(task_id).await;
        self.net.unwire(task_id).await;
        removed
    }

    async fn list(&self) -> Result<Vec<RuntimeTask>, RuntimeError> {
        // Read before and after the runtime's list: a task that finished preparing meanwhile is
        // in that list, one that began is in the second read.
        let preparing = || {
            self.preparing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        let before = preparing();
        // The runtime's list is how a restarted daemon adopts its tasks: their local
        // networks' ports and names come back with them.
        self.net.restore_local().await;
        let tasks = self.inner.list().await?;
        let mut held: BTreeSet<Id> = tasks.iter().map(|t| t.task_id.clone()).collect();
        held.extend(before);
        held.extend(preparing());
        self.net.remove_strays(&held).await;
        Ok(tasks)
    }

    async fn logs(&self, task_id: &Id, opts: LogOptions) -> Result<LogStream, RuntimeError> {
        self.inner.logs(task_id, opts).await
    }

    async fn health(&self, task_id: &Id) -> Result<Health, RuntimeError> {
        self.inner.health(task_id).await
    }

    async fn exec(
        &self,
        task_id: &Id,
        spec: shoal_runtime::ExecSpec,
    ) -> Result<shoal_runtime::ExecProcess, RuntimeError> {
        self.inner.exec(task_id, spec).await
    }

    async fn signal(&self, task_id: &Id, signal: i32) -> Result<(), RuntimeError> {
        self.inner.signal(task_id, signal).await
    }

    async fn processes(&self, task_id: &Id) -> Result<Vec<i64>, RuntimeError> {
        self.inner.processes(task_id).await
    }

    async fn stats(&self, task_id: &Id) -> Result<shoal_runtime::TaskStats, RuntimeError> {
        self.inner.stats(task_id).await
    }

    async fn attach(&self, task_id: &Id) -> Result<shoal_runtime::ExecProcess, RuntimeError> {
        self.inner.attach(task_id).await
    }

    async fn path_stat(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<shoal_runtime::PathStat, RuntimeError> {
        self.inner.path_stat(task_id, path).await
    }

    async fn archive_get(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<(shoal_runtime::PathStat, shoal_runtime::ArchiveStream), RuntimeError> {
        self.inner.archive_get(task_id, path).await
    }

    async fn archive_put(
        &self,
        task_id: &Id,
        dir: &str,
        archive: shoal_runtime::ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), RuntimeError> {
        self.inner
            .archive_put(task_id, dir, archive, no_overwrite_dir_non_dir)
            .await
    }

    async fn volumes(&self) -> Result<Vec<VolumeInfo>, RuntimeError> {
        self.inner.volumes().await
    }

    async fn remove_volume(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        self.inner.remove_volume(name, force).await
    }

    async fn images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.inner.images().await
    }

    async fn load_image(&self, archive: &Path) -> Result<Vec<String>, RuntimeError> {
        self.inner.load_image(archive).await
    }

    async fn pull_image(&self, reference: &str) -> Result<ImageInfo, RuntimeError> {
        self.inner.pull_image(reference).await
    }

    async fn remove_image(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<Vec<String>, RuntimeError> {
        self.inner.remove_image(reference, force).await
    }

    async fn inspect_image(
        &self,
        reference: &str,
    ) -> Result<shoal_runtime::ImageDetails, RuntimeError> {
        self.inner.inspect_image(reference).await
    }

    async fn image_history(
        &self,
        reference: &str,
    ) -> Result<Vec<shoal_runtime::ImageHistoryEntry>, RuntimeError> {
        self.inner.image_history(reference).await
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        self.inner.tag_image(source, target).await
    }

    async fn save_images(&self, references: &[String], archive: &Path) -> Result<(), RuntimeError> {
        self.inner.save_images(references, archive).await
    }

    async fn create_volume(
        &self,
        spec: &shoal_runtime::VolumeCreate,
    ) -> Result<VolumeInfo, RuntimeError> {
        self.inner.create_volume(spec).await
    }

    async fn prune_volumes(
        &self,
        filter: &shoal_runtime::VolumePrune,
    ) -> Result<shoal_runtime::VolumesPruned, RuntimeError> {
        self.inner.prune_volumes(filter).await
    }
}

#[cfg(test)]
mod tests {
    use shoal_types::dns::DnsConfig;

    #[tokio::test]
    async fn a_task_s_own_name_servers_are_kept_for_its_dns_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let agent = super::NetAgent::new(dir.path().to_path_buf());
        let task = shoal_types::Id::from_raw("t1");
        let mut run = super::TaskRun {
            task_id: task.clone(),
            task_name: "web.1".into(),
            service_id: shoal_types::Id::from_raw("s1"),
            service_name: "web".into(),
            node_id: shoal_types::Id::from_raw("n1"),
            slot: 1,
            container: Default::default(),
            resources: Default::default(),
            hostname: "t1".into(),
            networks: Vec::new(),
            netns: None,
            files: Vec::new(),
            local_networks: Vec::new(),
            publish: Vec::new(),
        };
        agent.keep_upstreams(&run).expect("nothing to keep");
        assert_eq!(agent.task_upstreams(&task), None, "the node's resolvers");
        run.container.dns_config = Some(DnsConfig {
            nameservers: vec!["192.0.2.53".into(), "2001:db8::53".into()],
            ..Default::default()
        });
        agent.keep_upstreams(&run).expect("kept");
        let got: Vec<String> = agent
            .task_upstreams(&task)
            .expect("the task's")
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["192.0.2.53:53", "[2001:db8::53]:53"]);
        agent.unwire(&task).await;
        assert_eq!(agent.task_upstreams(&task), None, "gone with the task");
    }

    #[test]
    fn tunnel_keys_are_read_from_hex_or_refused() {
        let hex: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
        let key = super::psk_of(&hex).expect("a key");
        assert_eq!(key[31], 31);
        assert!(super::psk_of("abc").is_err());
        assert!(super::psk_of(&"zz".repeat(32)).is_err());
        assert!(super::psk_of(&"é".repeat(32)).is_err());
    }
}
