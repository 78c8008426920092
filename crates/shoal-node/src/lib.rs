//! One shoal node's life. A node starts inactive; `swarm init` makes it the first manager of a
//! new swarm (its root CA, a Raft group, the cluster and node objects), `swarm join` admits it
//! into an existing one as a worker or a manager. Every node serves node-to-node RPC over mutual
//! TLS ([`routes`]) and runs an agent that holds a session with the leader's dispatcher
//! ([`remote`]); managers also run a Raft member and the manager's loops. What the managers say
//! about the node (promoted, demoted, removed, a new root to trust) is acted on by its
//! lifecycle ([`lifecycle`]).
//!
//! On disk, under `<data-dir>/swarm/`: `identity.json`, the node's credentials and its keys at
//! rest in `certs/` ([`vault`]), and a manager's Raft store (sealed with the data key) in `raft/`,
//! so a restarted daemon resumes where it was; a manager of an autolocked swarm restarts locked
//! and resumes once given the unlock key ([`autolock`]).
//!
//! Concurrency: transitions (init, join, leave, promotion, demotion, shutdown) are serialised by
//! one async mutex; API handlers read the current state through a cheap clone of an `Arc`.

mod attach;
mod autolock;
pub(crate) mod events;
mod identity;
pub mod join;
mod lifecycle;
mod local_nets;
pub mod remote;
pub mod routes;
mod start;
mod surface;
mod tls;
pub mod transport;
mod vault;
pub mod wire;

use shoal_types::error::chain;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

pub use identity::Identity;
use shoal_agent::Agent;
use shoal_manager::Manager;
use shoal_rpc::RpcClient;
use shoal_runtime::RuntimeDriver;
use shoal_types::node::NodeRole;
use shoal_types::{Clock, Id};
use tokio::sync::watch;

use crate::remote::RemoteDispatcher;
use crate::routes::Shared;
use crate::tls::Tls;

pub use shoal_control::{InitRequest, JoinRequest, NodeError};

#[derive(Clone)]
pub struct DaemonConfig {
    pub data_dir: PathBuf,
    pub engine_version: String,
    /// Stop every task when the daemon stops (Docker's default without live-restore). When false,
    /// tasks keep running and are adopted by the next daemon.
    pub stop_tasks_on_shutdown: bool,
    /// The name this node reports instead of the machine's hostname (several nodes on one
    /// machine, or a container whose hostname means nothing).
    pub hostname: Option<String>,
    /// What the node advertises beyond CPU and memory (`--node-generic-resource`).
    pub generic_resources: Vec<shoal_types::GenericResource>,
}

/// A node in a swarm: its identity, credentials, RPC server, agent and (on managers) manager.
pub(crate) struct Active {
    pub(crate) identity: RwLock<Identity>,
    pub(crate) tls: Arc<Tls>,
    pub(crate) rpc: RpcClient,
    pub(crate) shared: Arc<Shared>,
    pub(crate) remote: Arc<RemoteDispatcher>,
    pub(crate) agent: Arc<Agent>,
    /// The node's keys at rest: the data key its Raft store is sealed with.
    pub(crate) vault: Arc<vault::Vault>,
    /// Keeps the keys at rest sealed as the cluster's autolock setting says (managers only).
    pub(crate) autolock: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stops: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    agent_stop: watch::Sender<bool>,
    agent_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Active {
    pub(crate) fn identity(&self) -> Identity {
        self.identity
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_identity(
        &self,
        path: &Path,
        f: impl FnOnce(&mut Identity),
    ) -> Result<(), NodeError> {
        let mut id = self.identity.write().unwrap_or_else(|p| p.into_inner());
        f(&mut id);
        id.save(path).map_err(NodeError::Internal)
    }

    /// This node's manager, when it is one.
    pub(crate) fn manager(&self) -> Option<Manager> {
        self.shared.manager()
    }

    /// Installs or removes this node's manager; returns the one it replaces.
    pub(crate) fn set_manager(&self, m: Option<Manager>) -> Option<Manager> {
        std::mem::replace(
            &mut *self
                .shared
                .manager
                .write()
                .unwrap_or_else(|p| p.into_inner()),
            m,
        )
    }
}

pub struct Daemon {
    cfg: DaemonConfig,
    clock: Arc<dyn Clock>,
    driver: Arc<dyn RuntimeDriver>,
    /// The node's overlays and its tasks' network namespaces; `driver` goes through it.
    net: Arc<shoal_netagent::NetAgent>,
    /// The node as a Docker Engine: its tasks as containers, and their execs.
    engine: Arc<shoal_engine::NodeEngine>,
    /// Flips when the daemon shuts down, ending the event feeds.
    events_stop: watch::Sender<bool>,
    transition: tokio::sync::Mutex<()>,
    current: RwLock<Option<Arc<Active>>>,
    /// A manager of an autolocked swarm, restarted: it waits for its unlock key.
    locked: RwLock<Option<Arc<autolock::LockedNode>>>,
    /// Standalone containers this daemon put on the swarm's overlays.
    attached: attach::Attached,
    me: Weak<Daemon>,
}

pub(crate) const DEFAULT_PORT: u16 = 2377;

/// The tasks the node's agent runs now, for its engine; none outside a swarm.
struct AssignedTasks(Weak<Daemon>);

impl shoal_engine::TaskSource for AssignedTasks {
    fn tasks(&self) -> Vec<shoal_types::Task> {
        self.0
            .upgrade()
            .and_then(|d| d.current())
            .map(|a| a.agent.tasks())
            .unwrap_or_default()
    }
}

impl Daemon {
    /// Starts the daemon; if the data dir holds a swarm identity, rejoins that swarm.
    pub async fn start(
        cfg: DaemonConfig,
        clock: Arc<dyn Clock>,
        driver: Arc<dyn RuntimeDriver>,
    ) -> Result<Arc<Daemon>, NodeError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            NodeError::Internal(format!(
                "cannot create {}: {}",
                cfg.data_dir.display(),
                chain(&e)
            ))
        })?;
        let net = shoal_netagent::NetAgent::new(cfg.data_dir.join("net"));
        // The engine lists the node's containers several times a second; the network layer's
        // list also sweeps stray namespaces, which is the agent's business at its start.
        let engine_driver = driver.clone();
        let driver = net.wrap(driver);
        net.spawn_reconciler();
        let engine_dir = cfg.data_dir.join("engine").join("containers");
        let standalone_driver = driver.clone();
        let daemon = Arc::new_cyclic(|me: &Weak<Daemon>| Daemon {
            engine: Arc::new(
                shoal_engine::NodeEngine::new(
                    engine_driver,
                    Arc::new(AssignedTasks(me.clone())),
                    clock.clone(),
                    shoal_types::id::IdGen::from_os(),
                )
                .with_standalone(
                    engine_dir,
                    standalone_driver,
                    Arc::new(local_nets::NodeNets(net.clone(), me.clone())),
                ),
            ),
            events_stop: watch::channel(false).0,
            cfg,
            clock,
            driver,
            net,
            transition: tokio::sync::Mutex::new(()),
            current: RwLock::new(None),
            locked: RwLock::new(None),
            attached: Default::default(),
            me: me.clone(),
        });
        daemon.engine.resume().await;
        tokio::spawn(daemon.engine.clone().watch(daemon.events_stop.subscribe()));
        if let Some(identity) =
            Identity::load(&daemon.identity_path()).map_err(NodeError::Internal)?
        {
            tracing::info!(node.id = %identity.node_id, role = identity.role.as_str(), "resuming swarm membership");
            let _guard = daemon.transition.lock().await;
            match daemon.resume(identity).await? {
                start::Resumed::Active(active) => daemon.set_current(Some(active)),
                start::Resumed::Locked(locked) => {
                    tracing::warn!(
                        "this manager's keys are locked (autolock): it serves nothing until `shoal swarm unlock` gives it the unlock key"
                    );
                    daemon.set_locked(Some(locked));
                }
            }
        }
        Ok(daemon)
    }

    pub(crate) fn swarm_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("swarm")
    }

    pub(crate) fn identity_path(&self) -> PathBuf {
        self.swarm_dir().join("identity.json")
    }

    pub(crate) fn certs_dir(&self) -> PathBuf {
        self.swarm_dir().join("certs")
    }

    pub(crate) fn raft_dir(&self) -> PathBuf {
        self.swarm_dir().join("raft")
    }

    /// What this node reports about itself.
    pub(crate) fn describe(&self) -> shoal_types::node::NodeDescription {
        let mut d = shoal_agent::describe_node(&self.cfg.engine_version, &self.driver.runtimes());
        if let Some(h) = &self.cfg.hostname {
            d.hostname = h.clone();
        }
        d.generic_resources = self.cfg.generic_resources.clone();
        d.network_key = self.net.network_key();
        d
    }

    pub(crate) fn current(&self) -> Option<Arc<Active>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_current(&self, a: Option<Arc<Active>>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = a;
    }

    pub(crate) fn locked_node(&self) -> Option<Arc<autolock::LockedNode>> {
        self.locked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_locked(&self, l: Option<Arc<autolock::LockedNode>>) {
        *self.locked.write().unwrap_or_else(|p| p.into_inner()) = l;
    }

    /// Whether this node is a manager waiting for its unlock key.
    pub fn is_locked(&self) -> bool {
        self.locked_node().is_some()
    }

    /// Creates a new swarm with this node as its only manager. Returns the node's ID.
    pub async fn swarm_init(&self, req: InitRequest) -> Result<Id, NodeError> {
        let _guard = self.transition.lock().await;
        if self.is_locked() {
            return Err(NodeError::Locked);
        }
        if let Some(active) = self.current() {
            if req.force_new_cluster && active.identity().role == NodeRole::Manager {
                return self.force_new_cluster(active, req.advertise_addr).await;
            }
            return Err(NodeError::AlreadyInSwarm);
        }
        if req.force_new_cluster
            && Identity::load(&self.identity_path())
                .ok()
                .flatten()
                .is_some()
        {
            return Err(NodeError::Internal(
                "the swarm identity on disk could not be resumed".into(),
            ));
        }
        let active = self.init(req).await?;
        let id = active.identity().node_id;
        self.set_current(Some(active));
        Ok(id)
    }

    /// Joins an existing swarm with a join token.
    pub async fn swarm_join(&self, req: JoinRequest) -> Result<(), NodeError> {
        let _guard = self.transition.lock().await;
        if self.current().is_some() || self.is_locked() {
            return Err(NodeError::AlreadyInSwarm);
        }
        let active = self.join(req).await?;
        self.set_current(Some(active));
        Ok(())
    }

    /// Leaves the swarm: stops this node's tasks, agent, manager and RPC server, and forgets the
    /// swarm. A manager only leaves with `force`: the swarm may lose its quorum, and a last
    /// manager takes the swarm's state with it.
    pub async fn swarm_leave(&self, force: bool) -> Result<(), NodeError> {
        let _guard = self.transition.lock().await;
        if self.is_locked() {
            return self.leave_locked_node(force);
        }
        let Some(active) = self.current() else {
            return Err(NodeError::NotInSwarm);
        };
        if active.identity().role == NodeRole::Manager {
            let parts = active.manager();
            let managers = parts.as_ref().map_or(1, |m| {
                m.store
                    .view()
                    .nodes()
                    .filter(|n| n.spec.role == NodeRole::Manager)
                    .count()
            });
            if !force {
                let message = if managers <= 1 {
                    "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.".to_string()
                } else {
                    let left = managers - 1;
                    format!(
                        "You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves {left} managers out of {managers}. {} The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.",
                        if left * 2 > managers {
                            "The remaining managers keep the Raft quorum."
                        } else {
                            "Without a Raft quorum your swarm will be inaccessible."
                        }
                    )
                };
                return Err(NodeError::FailedPrecondition(message));
            }
            if let Some(m) = parts.filter(|_| managers > 1) {
                self.step_out_of_raft(&active, &m).await;
            }
        }
        self.leave_locked(active).await
    }

    /// A leaving manager gives up its seat first, so the managers that stay count their quorum
    /// without it. Best effort: without a quorum the seat cannot be given up, and it leaves
    /// anyway (forced).
    async fn step_out_of_raft(&self, active: &Active, m: &Manager) {
        let id = active.identity();
        let Some(node) = m.store.view().node(&id.node_id).cloned() else {
            return;
        };
        let mut next = (*node).clone();
        next.spec.role = NodeRole::Worker;
        next.manager = None;
        let op = shoal_store::Op::UpdateNode {
            node: next,
            expect_version: None,
        };
        if let Err(e) = m
            .store
            .propose(shoal_store::Proposal::atomic(self.clock.now(), vec![op]))
            .await
        {
            tracing::warn!(error = %shoal_types::error::Chain(&e), "could not give up this manager's raft seat before leaving");
            return;
        }
        // The leader's membership loop removes the member; wait a little for it.
        let raft_id = id.raft_id.unwrap_or_default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while m.store.members().contains_key(&raft_id) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops everything and forgets the swarm; the transition lock is held by the caller.
    pub(crate) async fn leave_locked(&self, active: Arc<Active>) -> Result<(), NodeError> {
        self.set_current(None);
        Self::deactivate(&active).await;
        // Whatever the agent left (it keeps tasks when configured to outlive the daemon) does
        // not belong to any swarm any more.
        self.remove_all_tasks().await;
        std::fs::remove_dir_all(self.swarm_dir()).map_err(|e| {
            NodeError::Internal(format!(
                "cannot remove {}: {}",
                self.swarm_dir().display(),
                chain(&e)
            ))
        })?;
        tracing::info!("left the swarm");
        Ok(())
    }

    async fn deactivate(active: &Active) {
        active.stop_autolock();
        let _ = active.agent_stop.send(true);
        let agent = active
            .agent_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = agent
            && let Err(e) = t.await
        {
            tracing::warn!(error = %shoal_types::error::Chain(&e), "agent task ended abnormally");
        }
        if let Some(m) = active.set_manager(None) {
            m.stop().await;
        }
        let _ = active.stops.send(true);
        let tasks = std::mem::take(&mut *active.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            t.abort();
        }
    }

    async fn remove_all_tasks(&self) {
        let tasks = match self.driver.list().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %shoal_types::error::Chain(&e), "cannot list runtime tasks to clean up");
                return;
            }
        };
        for t in tasks {
            if let Err(e) = self.driver.stop(&t.task_id, Duration::from_secs(10)).await {
                tracing::warn!(task.id = %t.task_id, error = %shoal_types::error::Chain(&e), "cannot stop task");
            }
            if let Err(e) = self.driver.remove(&t.task_id).await {
                tracing::warn!(task.id = %t.task_id, error = %shoal_types::error::Chain(&e), "cannot remove task");
            }
        }
    }

    /// Stops the node (daemon shutdown). Tasks stop too unless configured to outlive the daemon.
    pub async fn shutdown(&self) {
        self.events_stop.send_replace(true);
        self.engine.shutdown();
        let _guard = self.transition.lock().await;
        if let Some(active) = self.current() {
            self.set_current(None);
            Self::deactivate(&active).await;
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }

    /// The node's runtime, for the image and volume endpoints.
    pub fn driver(&self) -> Arc<dyn RuntimeDriver> {
        self.driver.clone()
    }

    pub fn runtime_name(&self) -> &'static str {
        self.driver.name()
    }
}

fn with_default_port(addr: &str, field: &str) -> Result<String, NodeError> {
    let invalid = |why: String| NodeError::invalid(field, why);
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(invalid("an address is required".into()));
    }
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(addr.to_string());
    }
    if addr.parse::<std::net::IpAddr>().is_ok() {
        return Ok(format!("{addr}:{DEFAULT_PORT}"));
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            port.parse::<u16>().map_err(|_| {
                invalid(format!(
                    "{addr:?}: port {port:?} is not a number from 0 to 65535"
                ))
            })?;
            Ok(addr.to_string())
        }
        _ => Err(invalid(format!("{addr:?} is not an address (IP[:PORT])"))),
    }
}

pub(crate) fn host_of(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string(),
    }
}

pub(crate) fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(DEFAULT_PORT)
}

/// The address other machines would reach this one on when it listens on all interfaces: the
/// source address toward `toward` (a UDP "connect" sends nothing), else the listen address.
pub(crate) fn detect_local_ip(listen_addr: &str, toward: &str) -> String {
    let host = host_of(listen_addr);
    if host != "0.0.0.0" && host != "::" {
        return host;
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect(toward).map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_the_default_port_and_bad_ones_name_the_field() {
        assert_eq!(
            with_default_port("10.0.0.1", "AdvertiseAddr").ok(),
            Some("10.0.0.1:2377".into())
        );
        assert_eq!(
            with_default_port("10.0.0.1:4000", "AdvertiseAddr").ok(),
            Some("10.0.0.1:4000".into())
        );
        match with_default_port("10.0.0.1:http", "ListenAddr") {
            Err(NodeError::InvalidArgument { field, .. }) => assert_eq!(field, "ListenAddr"),
            other => panic!("{other:?}"),
        }
        assert!(with_default_port("", "ListenAddr").is_err());
        assert_eq!(host_of("10.0.0.1:2377"), "10.0.0.1");
        assert_eq!(port_of("0.0.0.0:4000"), 4000);
        assert_eq!(
            detect_local_ip("127.0.0.5:2377", "127.0.0.1:9"),
            "127.0.0.5"
        );
    }
}
