//! How a node enters a swarm (init, join), resumes one after a restart, takes up or gives up the
//! manager role, and recovers a lost quorum (force-new-cluster).

use shoal_types::NetworkSpec;
use shoal_types::error::chain;
use shoal_types::network::{INGRESS, OVERLAY};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use shoal_agent::{Agent, AgentConfig};
use shoal_manager::Manager;
use shoal_pki::{Credentials, JoinToken};
use shoal_rpc::RpcClient;
use shoal_store::network::Network;
use shoal_store::{Op, Proposal, RaftTiming, Store};
use shoal_types::cluster::Cluster;
use shoal_types::node::NodeRole;
use shoal_types::{IdGen, Node};
use tokio::sync::watch;

use crate::identity::Identity;
use crate::remote::RemoteDispatcher;
use crate::routes::Shared;
use crate::tls::Tls;
use crate::transport::RpcRaft;
use crate::vault::{Opened, Vault};
use crate::{
    Active, Daemon, InitRequest, JoinRequest, NodeError, detect_local_ip, host_of, join, lifecycle,
    port_of, routes, wire, with_default_port,
};

/// Raft RPCs (heartbeats every 100 ms) must fail fast; joining and renewing may wait.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

fn pki(what: &str, e: shoal_pki::PkiError) -> NodeError {
    // The wire carries text: the chain, built once here.
    NodeError::Internal(format!("{what}: {}", chain(&e)))
}

fn client(cfg: Arc<rustls::ClientConfig>, timeout: Duration) -> RpcClient {
    let (_tx, rx) = watch::channel(cfg);
    // The sender may go: the receiver keeps the last value, which is all a one-shot client needs.
    RpcClient::new(rx, timeout)
}

impl Daemon {
    pub(crate) async fn init(&self, req: InitRequest) -> Result<Arc<Active>, NodeError> {
        let listen_addr = with_default_port(&req.listen_addr, "ListenAddr")?;
        let advertise_addr = match &req.advertise_addr {
            Some(a) if !a.is_empty() => advertised(a, &listen_addr)?,
            _ => format!(
                "{}:{}",
                detect_local_ip(&listen_addr, "192.0.2.1:9"),
                port_of(&listen_addr)
            ),
        };
        let now = self.clock.now();
        let mut ids = IdGen::from_os();
        let join::Founding {
            mut cluster,
            node,
            creds,
            raft_id,
        } = join::found(
            req.spec,
            req.availability,
            self.describe(),
            &advertise_addr,
            now,
            &mut ids,
        )?;
        cluster.network = req.network;
        let identity = Identity {
            node_id: node.id.clone(),
            cluster_id: cluster.id.clone(),
            role: NodeRole::Manager,
            raft_id: Some(raft_id),
            advertise_addr: advertise_addr.clone(),
            listen_addr,
            managers: vec![advertise_addr],
            issuer_digest: cluster.root_ca.digest.clone(),
            cert_issued_at: now,
        };
        self.fresh_swarm_dir()?;
        let result = async {
            let vault = self.new_vault()?;
            let active = self.activate(identity.clone(), creds, vault).await?;
            self.start_manager(&active, Some((cluster, node))).await?;
            self.start_agent(&active);
            // Through the active identity's lock: its lifecycle watcher may already be
            // saving a newer one (the managers it learned from the first session), and two
            // unlocked saves race on the same temporary file.
            active.set_identity(&self.identity_path(), |_| {})?;
            Ok(active)
        }
        .await;
        self.undo_on_error(result).await
    }

    pub(crate) async fn join(&self, req: JoinRequest) -> Result<Arc<Active>, NodeError> {
        let token =
            JoinToken::parse(&req.token).map_err(|e| NodeError::invalid("JoinToken", chain(&e)))?;
        let listen_addr = with_default_port(&req.listen_addr, "ListenAddr")?;
        let remotes: Vec<String> = req
            .remote_addrs
            .iter()
            .map(|r| with_default_port(r, "RemoteAddrs"))
            .collect::<Result<_, _>>()?;
        if remotes.is_empty() {
            return Err(NodeError::invalid(
                "RemoteAddrs",
                "the address of a manager is required",
            ));
        }
        // Who is the swarm? Ask without trusting anyone yet, then check the answer against the
        // CA digest the token carries (Swarm's bootstrap).
        let (boot, _chain) = shoal_pki::bootstrap_client_config();
        let boot = client(boot, RPC_TIMEOUT);
        let (remote, trust) = join::find_swarm(&boot, &remotes, &token).await?;
        let advertise_addr = match &req.advertise_addr {
            Some(a) if !a.is_empty() => advertised(a, &listen_addr)?,
            _ => format!(
                "{}:{}",
                detect_local_ip(&listen_addr, &remote),
                port_of(&listen_addr)
            ),
        };
        let (key_pem, csr_pem) =
            shoal_pki::new_key_and_csr().map_err(|e| pki("a key for this node", e))?;
        let verified =
            shoal_pki::client_config(None, &trust).map_err(|e| pki("the swarm's root CA", e))?;
        let verified = client(verified, JOIN_TIMEOUT);
        let request = shoal_types::dispatch::JoinRequest {
            token: req.token.clone(),
            csr_pem,
            advertise_addr: advertise_addr.clone(),
            availability: req.availability,
            description: self.describe(),
        };
        let resp = join::request_join(&verified, &remote, &request).await?;
        let creds = Credentials {
            key_pem,
            cert_pem: resp.cert_pem,
            intermediate_pem: resp.intermediate_pem,
            trust: resp.trust,
        };
        let mut managers = resp.managers;
        if managers.is_empty() {
            managers = remotes;
        }
        let identity = Identity {
            node_id: resp.node_id,
            cluster_id: resp.cluster_id,
            role: resp.role,
            raft_id: resp.raft_id,
            advertise_addr,
            listen_addr,
            managers,
            issuer_digest: resp.issuer_digest,
            cert_issued_at: self.clock.now(),
        };
        self.fresh_swarm_dir()?;
        let result = async {
            let vault = self.new_vault()?;
            let active = self.activate(identity.clone(), creds, vault).await?;
            if identity.role == NodeRole::Manager {
                self.start_manager(&active, None).await?;
                self.raft_join(&active).await?;
            }
            self.start_agent(&active);
            // Through the active identity's lock: its lifecycle watcher may already be
            // saving a newer one (the managers it learned from the first session), and two
            // unlocked saves race on the same temporary file.
            active.set_identity(&self.identity_path(), |_| {})?;
            Ok(active)
        }
        .await;
        self.undo_on_error(result).await
    }

    /// Back where it was: identity and credentials from disk, the Raft member for a manager;
    /// or locked, when the swarm is autolocked and this node's keys wait for the unlock key.
    pub(crate) async fn resume(&self, identity: Identity) -> Result<Resumed, NodeError> {
        let vault = match Vault::open(&self.certs_dir()).map_err(|e| {
            NodeError::Internal(format!("cannot read this node's keys: {}", chain(&e)))
        })? {
            Opened::Ready(v) => Arc::new(v),
            Opened::Locked(keys) => {
                return Ok(Resumed::Locked(Arc::new(crate::autolock::LockedNode {
                    identity,
                    keys,
                })));
            }
            // A node from before encryption at rest: new keys. A manager's old Raft store is
            // then refused as unencrypted (such data dirs are not migrated).
            Opened::Missing => self.new_vault()?,
        };
        self.resume_with(identity, vault).await.map(Resumed::Active)
    }

    /// [`Daemon::resume`] with the node's keys open.
    pub(crate) async fn resume_with(
        &self,
        identity: Identity,
        vault: Arc<Vault>,
    ) -> Result<Arc<Active>, NodeError> {
        let creds = vault
            .load_creds()
            .map_err(|e| {
                NodeError::Internal(format!(
                    "cannot read this node's credentials: {}",
                    chain(&e)
                ))
            })?
            .ok_or_else(|| {
                NodeError::Internal("this node's credentials are missing from the data dir".into())
            })?;
        let active = self.activate(identity.clone(), creds, vault).await?;
        if identity.role == NodeRole::Manager
            && let Err(e) = self.start_manager(&active, None).await
        {
            // Nothing left running (its RPC server holds the port): an unlock can be retried.
            Self::deactivate(&active).await;
            return Err(e);
        }
        self.start_agent(&active);
        Ok(active)
    }

    /// New keys at rest for this node (see [`crate::vault`]).
    fn new_vault(&self) -> Result<Arc<Vault>, NodeError> {
        Vault::create(&self.certs_dir())
            .map(Arc::new)
            .map_err(|e| NodeError::Internal(format!("creating this node's keys: {}", chain(&e))))
    }

    fn fresh_swarm_dir(&self) -> Result<(), NodeError> {
        // A half-created swarm from an earlier failed attempt must not be resumed.
        let _ = std::fs::remove_dir_all(self.swarm_dir());
        std::fs::create_dir_all(self.certs_dir()).map_err(|e| {
            NodeError::Internal(format!(
                "cannot create {}: {}",
                self.swarm_dir().display(),
                chain(&e)
            ))
        })
    }

    async fn undo_on_error(
        &self,
        r: Result<Arc<Active>, NodeError>,
    ) -> Result<Arc<Active>, NodeError> {
        if let Err(e) = &r {
            tracing::warn!(error = %shoal_types::error::Chain(e), "entering the swarm failed; cleaning up");
            let _ = std::fs::remove_dir_all(self.swarm_dir());
        }
        r
    }

    /// Credentials, RPC server and agent (not yet running); the lifecycle watcher.
    async fn activate(
        &self,
        identity: Identity,
        creds: Credentials,
        vault: Arc<Vault>,
    ) -> Result<Arc<Active>, NodeError> {
        let tls = Arc::new(
            Tls::new(vault.clone(), creds.clone()).map_err(|e| NodeError::Internal(chain(&e)))?,
        );
        vault
            .save_creds(&creds)
            .map_err(|e| NodeError::Internal(format!("cannot save credentials: {}", chain(&e))))?;
        let rpc = RpcClient::new(tls.client(), RPC_TIMEOUT);
        let listener = bind(&identity.listen_addr).await?;
        let shared = Arc::new(Shared {
            manager: RwLock::new(None),
            agent: RwLock::new(None),
            trust: tls.trust(),
        });
        let (stops, stop_rx) = watch::channel(false);
        let server = {
            let (tls_rx, router, stop) = (
                tls.server(),
                routes::router(shared.clone()),
                stop_rx.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = shoal_rpc::serve(listener, tls_rx, router, stop).await {
                    tracing::error!(error = %shoal_types::error::Chain(&e), "node RPC server stopped");
                }
            })
        };
        let remote = Arc::new(RemoteDispatcher::new(
            rpc.clone(),
            identity.node_id.clone(),
            identity.advertise_addr.clone(),
            identity.managers.clone(),
        ));
        // The managers' network map, to the node's network agent. Not the channel's empty
        // start: that would tear down the overlays of tasks this node still runs.
        let maps = {
            let (mut rx, net) = (remote.network_map(), self.net.clone());
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let map = rx.borrow_and_update().clone();
                    net.set_map(map);
                }
            })
        };
        let description = self.describe();
        let agent = Agent::new(
            AgentConfig {
                state_dir: self.cfg.data_dir.join("agent"),
                description,
                report_interval: Duration::from_millis(50),
            },
            self.driver.clone(),
            remote.clone(),
            self.clock.clone(),
        );
        *shared.agent.write().unwrap_or_else(|p| p.into_inner()) = Some(agent.clone());
        let (agent_stop, _) = watch::channel(false);
        let active = Arc::new(Active {
            identity: RwLock::new(identity),
            tls,
            rpc,
            shared,
            remote,
            agent,
            vault,
            autolock: std::sync::Mutex::new(None),
            stops,
            tasks: std::sync::Mutex::new(vec![server, maps]),
            agent_stop,
            agent_task: std::sync::Mutex::new(None),
        });
        let watcher = lifecycle::spawn(self.me.clone(), Arc::downgrade(&active), stop_rx);
        active
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(watcher);
        Ok(active)
    }

    pub(crate) fn start_agent(&self, active: &Arc<Active>) {
        let (agent, stop) = (active.agent.clone(), active.agent_stop.subscribe());
        let stop_tasks = self.cfg.stop_tasks_on_shutdown;
        let task = tokio::spawn(async move {
            if let Err(e) = agent.run(stop, stop_tasks).await {
                tracing::error!(error = %shoal_types::error::Chain(&e), "agent stopped with an error");
            }
        });
        *active.agent_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Opens this manager's Raft member and starts the manager. With `bootstrap`, the member
    /// founds a new group and writes the swarm's first objects.
    pub(crate) async fn start_manager(
        &self,
        active: &Arc<Active>,
        bootstrap: Option<(Cluster, Node)>,
    ) -> Result<(), NodeError> {
        let id = active.identity();
        let raft_id = id
            .raft_id
            .ok_or_else(|| NodeError::Internal("a manager without a raft member id".into()))?;
        let network = Network::new(Arc::new(RpcRaft {
            client: active.rpc.clone(),
        }));
        let store = Store::open(
            &self.raft_dir(),
            raft_id,
            RaftTiming {
                snapshot_every: 0,
                ..Default::default()
            },
            network,
            active.vault.sealer(),
        )
        .await
        .map_err(|e| NodeError::Internal(chain(&e)))?;
        let founding = bootstrap.is_some();
        if let Some((cluster, node)) = bootstrap {
            join::bootstrap_store(&store, &id.advertise_addr, cluster, node, self.clock.now())
                .await?;
        }
        active.set_autolock(crate::autolock::spawn_follower(
            &store,
            active.vault.clone(),
            active.tls.clone(),
        ));
        crate::events::spawn(
            &store,
            self.engine.clone(),
            self.clock.clone(),
            self.events_stop.subscribe(),
        );
        let manager = Manager::start(store.clone(), self.clock.clone(), IdGen::from_os());
        if founding {
            // Swarm's routing-mesh network, the first subnet of the pools, as `swarm init` makes it.
            manager
                .control
                .create_network(NetworkSpec {
                    name: INGRESS.into(),
                    driver: OVERLAY.into(),
                    ingress: true,
                    ..Default::default()
                })
                .await
                .map_err(|e| NodeError::Internal(format!("creating the ingress network: {e}")))?;
        }
        active.set_manager(Some(manager));
        Ok(())
    }

    /// Stops this node's manager; with `forget`, its Raft data goes too (demotion).
    pub(crate) async fn stop_manager(&self, active: &Active, forget: bool) {
        active.stop_autolock();
        if let Some(m) = active.set_manager(None) {
            m.stop().await;
        }
        if forget {
            let _ = std::fs::remove_dir_all(self.raft_dir());
            // Workers are never locked.
            if let Err(e) = active.vault.follow(None, &active.tls.creds()) {
                tracing::warn!(error = %chain(&e), "could not unlock this node's keys after demotion");
            }
        }
    }

    /// Asks the leader for a seat among the voters, following "not the leader" hints, until the
    /// leader has added this member (after it caught up).
    pub(crate) async fn raft_join(&self, active: &Active) -> Result<(), NodeError> {
        let id = active.identity();
        let raft_id = id
            .raft_id
            .ok_or_else(|| NodeError::Internal("a manager without a raft member id".into()))?;
        let req = wire::RaftJoin {
            raft_id,
            addr: id.advertise_addr.clone(),
        };
        let long = RpcClient::new(active.tls.client(), JOIN_TIMEOUT);
        let candidates = || {
            let mut c = active.remote.managers();
            c.extend(id.managers.iter().cloned());
            c
        };
        join::take_raft_seat(&long, candidates, &req, 20, Duration::from_millis(500)).await
    }

    /// Makes this manager the only member of its Raft group, keeping all state: recovery after
    /// losing the quorum, or from a backup.
    pub(crate) async fn force_new_cluster(
        &self,
        active: Arc<Active>,
        advertise: Option<String>,
    ) -> Result<shoal_types::Id, NodeError> {
        let mut id = active.identity();
        if let Some(a) = advertise.filter(|a| !a.is_empty()) {
            id.advertise_addr = with_default_port(&a, "AdvertiseAddr")?;
        }
        let raft_id = id
            .raft_id
            .ok_or_else(|| NodeError::Internal("a manager without a raft member id".into()))?;
        self.stop_manager(&active, false).await;
        let path = self.raft_dir().join("state.redb");
        let addr = id.advertise_addr.clone();
        let sealer = active.vault.sealer();
        tokio::task::spawn_blocking(move || {
            shoal_store::storage::force_new_cluster(&path, raft_id, &addr, &sealer)
        })
        .await
        .map_err(|e| NodeError::Internal(chain(&e)))?
        .map_err(|e| NodeError::Internal(format!("rewriting the raft store: {}", chain(&e))))?;
        active.set_identity(&self.identity_path(), |i| {
            i.advertise_addr = id.advertise_addr.clone();
            i.managers = vec![id.advertise_addr.clone()];
        })?;
        self.start_manager(&active, None).await?;
        // The node's own record follows its (maybe new) address. First the whole kept log is
        // applied, so that whoever reads after `swarm init --force-new-cluster` returns sees every
        // object it had.
        if let Some(m) = active.manager() {
            if !m.store.wait_current_state(Duration::from_secs(10)).await {
                tracing::warn!(
                    "after forcing a new cluster, this manager did not lead with its whole log applied within 10 s"
                );
            }
            if let Some(node) = m.store.view().node(&id.node_id) {
                let mut next = (**node).clone();
                next.status.endpoint = id.advertise_addr.clone();
                next.status.addr = host_of(&id.advertise_addr);
                if let Some(ms) = next.manager.as_mut() {
                    ms.addr = id.advertise_addr.clone();
                }
                let _ = m
                    .store
                    .propose(Proposal::atomic(
                        self.clock.now(),
                        vec![Op::UpdateNode {
                            node: next,
                            expect_version: None,
                        }],
                    ))
                    .await;
            }
        }
        tracing::warn!(node.id = %id.node_id, "forced a new cluster: this manager is now the only raft member");
        Ok(id.node_id)
    }
}

/// What [`Daemon::resume`] found.
pub(crate) enum Resumed {
    Active(Arc<Active>),
    Locked(Arc<crate::autolock::LockedNode>),
}

/// Binds the RPC listener. A listen address that no longer exists here (a backup restored on
/// another machine) falls back to all interfaces on the same port.
async fn bind(addr: &str) -> Result<tokio::net::TcpListener, NodeError> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            let any = format!("0.0.0.0:{}", port_of(addr));
            tracing::warn!(%addr, fallback = %any, "listen address not available here");
            tokio::net::TcpListener::bind(&any)
                .await
                .map_err(|e| NodeError::FailedPrecondition(format!("listen tcp {any}: {e}")))
        }
        Err(e) => Err(NodeError::FailedPrecondition(format!(
            "listen tcp {addr}: {e}"
        ))),
    }
}

/// The address to advertise: as given, or with the listen address's port when it names none
/// (Docker: `--advertise-addr IP` takes the port of `--listen-addr`).
fn advertised(addr: &str, listen_addr: &str) -> Result<String, NodeError> {
    match addr.trim().parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(std::net::SocketAddr::new(ip, port_of(listen_addr)).to_string()),
        Err(_) => with_default_port(addr, "AdvertiseAddr"),
    }
}

#[cfg(test)]
mod advertise_tests {
    #[test]
    fn a_bare_advertised_ip_takes_the_listen_port() {
        assert_eq!(
            super::advertised("192.0.2.5", "0.0.0.0:4500")
                .ok()
                .as_deref(),
            Some("192.0.2.5:4500")
        );
        assert_eq!(
            super::advertised("192.0.2.5:2377", "0.0.0.0:4500")
                .ok()
                .as_deref(),
            Some("192.0.2.5:2377")
        );
        assert!(super::advertised("192.0.2.5:x", "0.0.0.0:4500").is_err());
    }
}
