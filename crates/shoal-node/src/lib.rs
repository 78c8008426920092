//! One shoal node's life. A node starts inactive; `swarm init` makes it the first manager of a
//! new swarm (a Raft group, the cluster object and its own node object) and starts its manager
//! and its agent; `swarm leave` stops both and forgets the swarm. The node's identity lives in
//! `<data-dir>/swarm/identity.json`, so a restarted daemon resumes where it was.
//!
//! Concurrency: lifecycle changes (init, leave, shutdown) hold the state lock for writing; API
//! handlers take cheap clones of what they need ([`Daemon::swarm`]) and never hold the lock
//! across their own work.

mod dispatch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shoal_agent::{Agent, AgentConfig, LogOptions, LogStream, RuntimeDriver, RuntimeError};
use shoal_manager::{Control, Manager};
use shoal_store::{Op, Proposal, RaftTiming, Store};
use shoal_types::cluster::{Cluster, ClusterSpec};
use shoal_types::node::{
    Availability, ManagerStatus, NodeRole, NodeSpec, NodeState, NodeStatus, Reachability,
};
use shoal_types::{Clock, Id, IdGen, Node};
use tokio::sync::{RwLock, watch};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one."
    )]
    AlreadyInSwarm,
    #[error("This node is not part of a swarm")]
    NotInSwarm,
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{field}: {why}")]
    InvalidArgument { field: String, why: String },
    #[error("{0}")]
    Internal(String),
}

#[derive(Clone)]
pub struct DaemonConfig {
    pub data_dir: PathBuf,
    pub engine_version: String,
    /// Stop every task when the daemon stops (Docker's default without live-restore). When false,
    /// tasks keep running and are adopted by the next daemon.
    pub stop_tasks_on_shutdown: bool,
}

/// What the node remembers about the swarm it is in.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub node_id: Id,
    pub raft_id: u64,
    pub advertise_addr: String,
    pub listen_addr: String,
}

pub struct InitRequest {
    pub advertise_addr: Option<String>,
    pub listen_addr: String,
    pub spec: ClusterSpec,
    pub availability: Availability,
    pub force_new_cluster: bool,
}

/// What API handlers need about an active swarm, cloned out of the daemon.
#[derive(Clone)]
pub struct SwarmHandle {
    pub identity: Identity,
    pub control: Control,
}

struct Active {
    identity: Identity,
    manager: Manager,
    agent: Arc<Agent>,
    agent_stop: watch::Sender<bool>,
    agent_task: tokio::task::JoinHandle<()>,
}

pub struct Daemon {
    cfg: DaemonConfig,
    clock: Arc<dyn Clock>,
    driver: Arc<dyn RuntimeDriver>,
    state: RwLock<Option<Active>>,
}

const DEFAULT_PORT: u16 = 2377;

impl Daemon {
    /// Starts the daemon; if the data dir holds a swarm identity, rejoins that swarm.
    pub async fn start(
        cfg: DaemonConfig,
        clock: Arc<dyn Clock>,
        driver: Arc<dyn RuntimeDriver>,
    ) -> Result<Arc<Daemon>, NodeError> {
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            NodeError::Internal(format!("cannot create {}: {e}", cfg.data_dir.display()))
        })?;
        let daemon = Arc::new(Daemon {
            cfg,
            clock,
            driver,
            state: RwLock::new(None),
        });
        if let Some(identity) = daemon.read_identity()? {
            tracing::info!(node.id = %identity.node_id, "resuming swarm membership");
            let active = daemon.activate(identity, None).await?;
            *daemon.state.write().await = Some(active);
        }
        Ok(daemon)
    }

    fn swarm_dir(&self) -> PathBuf {
        self.cfg.data_dir.join("swarm")
    }

    fn identity_path(&self) -> PathBuf {
        self.swarm_dir().join("identity.json")
    }

    fn read_identity(&self) -> Result<Option<Identity>, NodeError> {
        let p = self.identity_path();
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| NodeError::Internal(format!("{} is unreadable: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(NodeError::Internal(format!(
                "cannot read {}: {e}",
                p.display()
            ))),
        }
    }

    fn write_identity(&self, id: &Identity) -> Result<(), NodeError> {
        let p = self.identity_path();
        let tmp = p.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(id).map_err(|e| NodeError::Internal(e.to_string()))?;
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &p))
            .map_err(|e| NodeError::Internal(format!("cannot write {}: {e}", p.display())))
    }

    /// Opens the store, starts the manager, optionally creates the swarm's first objects, and
    /// starts the agent.
    async fn activate(
        &self,
        identity: Identity,
        bootstrap: Option<(ClusterSpec, Availability)>,
    ) -> Result<Active, NodeError> {
        let store = Store::open(
            &self.swarm_dir().join("raft"),
            identity.raft_id,
            RaftTiming::default(),
            Default::default(),
        )
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?;
        if bootstrap.is_some() {
            store
                .bootstrap(&identity.advertise_addr)
                .await
                .map_err(|e| NodeError::Internal(e.to_string()))?;
        }
        if store
            .wait_for_leader(Duration::from_secs(10))
            .await
            .is_none()
        {
            tracing::warn!("no raft leader after 10 s; the manager will keep trying");
        }
        let description =
            shoal_agent::describe_node(&self.cfg.engine_version, &[self.driver.name()]);
        if let Some((spec, availability)) = bootstrap {
            let now = self.clock.now();
            let mut ids = IdGen::from_os();
            let cluster = Cluster {
                id: ids.next_id(),
                meta: Default::default(),
                spec,
                join_tokens: Default::default(),
            };
            let node = Node {
                id: identity.node_id.clone(),
                meta: Default::default(),
                spec: NodeSpec {
                    role: NodeRole::Manager,
                    availability,
                    ..Default::default()
                },
                description: description.clone(),
                status: NodeStatus {
                    state: NodeState::Ready,
                    message: String::new(),
                    addr: host_of(&identity.advertise_addr),
                    since: now,
                },
                manager: Some(ManagerStatus {
                    raft_id: identity.raft_id,
                    addr: identity.advertise_addr.clone(),
                    reachability: Reachability::Reachable,
                }),
            };
            let applied = store
                .propose(Proposal::atomic(
                    now,
                    vec![
                        Op::PutCluster {
                            cluster,
                            expect_version: None,
                        },
                        Op::CreateNode(node),
                    ],
                ))
                .await
                .map_err(|e| NodeError::Internal(e.to_string()))?;
            if let Some(e) = applied.first_error() {
                return Err(NodeError::Internal(format!("creating the swarm: {e}")));
            }
        }
        let manager = Manager::start(store, self.clock.clone(), IdGen::from_os());
        let dispatcher = Arc::new(dispatch::LocalDispatcher {
            dispatcher: manager.dispatcher.clone(),
            node_id: identity.node_id.clone(),
            addr: host_of(&identity.advertise_addr),
        });
        let agent = Agent::new(
            AgentConfig {
                state_dir: self.cfg.data_dir.join("agent"),
                description,
                report_interval: Duration::from_millis(50),
            },
            self.driver.clone(),
            dispatcher,
            self.clock.clone(),
        );
        let (agent_stop, stop_rx) = watch::channel(false);
        let stop_tasks = self.cfg.stop_tasks_on_shutdown;
        let runner = agent.clone();
        let agent_task = tokio::spawn(async move {
            if let Err(e) = runner.run(stop_rx, stop_tasks).await {
                tracing::error!(error = %e, "agent stopped with an error");
            }
        });
        Ok(Active {
            identity,
            manager,
            agent,
            agent_stop,
            agent_task,
        })
    }

    /// Creates a new swarm with this node as its only manager. Returns the node's ID.
    pub async fn swarm_init(&self, req: InitRequest) -> Result<Id, NodeError> {
        let mut state = self.state.write().await;
        if let Some(active) = state.as_ref() {
            // With one manager, forcing a new cluster changes nothing: it already is one.
            if req.force_new_cluster {
                return Ok(active.identity.node_id.clone());
            }
            return Err(NodeError::AlreadyInSwarm);
        }
        let listen_addr = with_default_port(&req.listen_addr, "ListenAddr")?;
        let advertise_addr = match &req.advertise_addr {
            Some(a) if !a.is_empty() => with_default_port(a, "AdvertiseAddr")?,
            _ => format!(
                "{}:{}",
                detect_local_ip(&listen_addr),
                port_of(&listen_addr)
            ),
        };
        let mut ids = IdGen::from_os();
        let identity = Identity {
            node_id: ids.next_id(),
            raft_id: ids.next_u64().max(1),
            advertise_addr,
            listen_addr,
        };
        // A half-created swarm from an earlier failed init must not be resumed.
        let _ = std::fs::remove_dir_all(self.swarm_dir());
        std::fs::create_dir_all(self.swarm_dir()).map_err(|e| {
            NodeError::Internal(format!("cannot create {}: {e}", self.swarm_dir().display()))
        })?;
        let active = match self
            .activate(identity.clone(), Some((req.spec, req.availability)))
            .await
        {
            Ok(a) => a,
            Err(e) => {
                let _ = std::fs::remove_dir_all(self.swarm_dir());
                return Err(e);
            }
        };
        self.write_identity(&identity)?;
        *state = Some(active);
        tracing::info!(node.id = %identity.node_id, addr = %identity.advertise_addr, "swarm initialized");
        Ok(identity.node_id)
    }

    /// Leaves the swarm: stops this node's tasks, its agent and its manager, and forgets the
    /// swarm. A manager only leaves with `force`: as the last manager it takes the swarm's state
    /// with it.
    pub async fn swarm_leave(&self, force: bool) -> Result<(), NodeError> {
        let mut state = self.state.write().await;
        if state.is_none() {
            return Err(NodeError::NotInSwarm);
        }
        if !force {
            return Err(NodeError::FailedPrecondition(
                "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.".into(),
            ));
        }
        if let Some(active) = state.take() {
            Self::deactivate(active).await;
        }
        // Whatever the agent left (it keeps tasks when configured to outlive the daemon) does
        // not belong to any swarm any more.
        self.remove_all_tasks().await;
        std::fs::remove_dir_all(self.swarm_dir()).map_err(|e| {
            NodeError::Internal(format!("cannot remove {}: {e}", self.swarm_dir().display()))
        })?;
        tracing::info!("left the swarm");
        Ok(())
    }

    async fn deactivate(active: Active) {
        let _ = active.agent_stop.send(true);
        if let Err(e) = active.agent_task.await {
            tracing::warn!(error = %e, "agent task ended abnormally");
        }
        active.manager.stop().await;
    }

    /// Stops the node (daemon shutdown). Tasks stop too unless configured to outlive the daemon.
    pub async fn shutdown(&self) {
        if let Some(active) = self.state.write().await.take() {
            Self::deactivate(active).await;
        }
    }

    async fn remove_all_tasks(&self) {
        let tasks = match self.driver.list().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list runtime tasks to clean up");
                return;
            }
        };
        for t in tasks {
            if let Err(e) = self.driver.stop(&t.task_id, Duration::from_secs(10)).await {
                tracing::warn!(task.id = %t.task_id, error = %e, "cannot stop task");
            }
            if let Err(e) = self.driver.remove(&t.task_id).await {
                tracing::warn!(task.id = %t.task_id, error = %e, "cannot remove task");
            }
        }
    }

    /// The active swarm, if any.
    pub async fn swarm(&self) -> Option<SwarmHandle> {
        self.state.read().await.as_ref().map(|a| SwarmHandle {
            identity: a.identity.clone(),
            control: a.manager.control.clone(),
        })
    }

    /// A task's output, from this node's runtime.
    pub async fn task_logs(
        &self,
        task_id: &Id,
        opts: LogOptions,
    ) -> Result<LogStream, RuntimeError> {
        let agent = self.state.read().await.as_ref().map(|a| a.agent.clone());
        match agent {
            Some(agent) => agent.logs(task_id, opts).await,
            None => self.driver.logs(task_id, opts).await,
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }

    pub fn runtime_name(&self) -> &'static str {
        self.driver.name()
    }
}

fn with_default_port(addr: &str, field: &str) -> Result<String, NodeError> {
    let invalid = |why: String| NodeError::InvalidArgument {
        field: field.into(),
        why,
    };
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
        // An interface name or hostname without a port.
        _ if addr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
        {
            Ok(format!("{addr}:{DEFAULT_PORT}"))
        }
        _ => Err(invalid(format!(
            "{addr:?} is not an address (IP[:PORT] or HOST[:PORT])"
        ))),
    }
}

fn host_of(addr: &str) -> String {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(sa) => sa.ip().to_string(),
        Err(_) => addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string(),
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(DEFAULT_PORT)
}

/// The address other machines would reach this one on: the source address of the default route
/// when listening on all interfaces (a UDP "connect" sends nothing), else the listen address.
fn detect_local_ip(listen_addr: &str) -> String {
    let host = host_of(listen_addr);
    if host != "0.0.0.0" && host != "::" {
        return host;
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
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
        assert_eq!(
            with_default_port("eth0", "AdvertiseAddr").ok(),
            Some("eth0:2377".into())
        );
        match with_default_port("10.0.0.1:http", "ListenAddr") {
            Err(NodeError::InvalidArgument { field, .. }) => assert_eq!(field, "ListenAddr"),
            other => panic!("{other:?}"),
        }
        assert!(with_default_port("", "ListenAddr").is_err());
        assert_eq!(host_of("10.0.0.1:2377"), "10.0.0.1");
        assert_eq!(port_of("0.0.0.0:4000"), 4000);
    }
}
