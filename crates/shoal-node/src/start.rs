//! How a node enters a swarm (init, join), resumes one after a restart, takes up or gives up the
//! manager role, and recovers a lost quorum (force-new-cluster).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use shoal_agent::{Agent, AgentConfig};
use shoal_manager::Manager;
use shoal_pki::{Credentials, JoinToken, RootCa};
use shoal_rpc::{RpcClient, RpcError};
use shoal_store::network::Network;
use shoal_store::{Op, Proposal, RaftTiming, Store};
use shoal_types::cluster::Cluster;
use shoal_types::dispatch::JoinResponse;
use shoal_types::node::{
    ManagerStatus, NodeRole, NodeSpec, NodeState, NodeStatus, NodeTls, Reachability,
};
use shoal_types::{IdGen, Node};
use tokio::sync::watch;

use crate::identity::Identity;
use crate::remote::{LEADER_HINT, RemoteDispatcher};
use crate::routes::{ManagerParts, Shared};
use crate::tls::Tls;
use crate::transport::RpcRaft;
use crate::{
    Active, Daemon, InitRequest, JoinRequest, NodeError, detect_local_ip, host_of, lifecycle,
    port_of, routes, wire, with_default_port,
};

/// Raft RPCs (heartbeats every 100 ms) must fail fast; joining and renewing may wait.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

fn pki(what: &str, e: shoal_pki::PkiError) -> NodeError {
    NodeError::Internal(format!("{what}: {e}"))
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
            Some(a) if !a.is_empty() => with_default_port(a, "AdvertiseAddr")?,
            _ => format!(
                "{}:{}",
                detect_local_ip(&listen_addr, "192.0.2.1:9"),
                port_of(&listen_addr)
            ),
        };
        let now = self.clock.now();
        let mut ids = IdGen::from_os();
        let cluster = shoal_manager::cluster::new_cluster(req.spec, now, &mut ids)
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        let node_id = ids.next_id();
        let raft_id = ids.next_u64().max(1);
        let ca = RootCa::from_pem(&cluster.root_ca.cert_pem, Some(&cluster.root_ca.key_pem))
            .map_err(|e| pki("the new root CA", e))?;
        let (key_pem, csr) =
            shoal_pki::new_key_and_csr().map_err(|e| pki("a key for this node", e))?;
        let cert_pem = ca
            .issue(
                &csr,
                &node_id,
                NodeRole::Manager,
                cluster.id.as_str(),
                cluster.spec.node_cert_expiry,
                now,
            )
            .map_err(|e| pki("this node's certificate", e))?;
        let creds = Credentials {
            key_pem,
            cert_pem,
            intermediate_pem: None,
            trust: vec![cluster.root_ca.cert_pem.clone()],
        };
        let identity = Identity {
            node_id: node_id.clone(),
            cluster_id: cluster.id.clone(),
            role: NodeRole::Manager,
            raft_id: Some(raft_id),
            advertise_addr: advertise_addr.clone(),
            listen_addr,
            managers: vec![advertise_addr.clone()],
            issuer_digest: cluster.root_ca.digest.clone(),
            cert_issued_at: now,
        };
        let description = self.describe();
        let node = Node {
            id: node_id,
            meta: Default::default(),
            spec: NodeSpec {
                role: NodeRole::Manager,
                availability: req.availability,
                ..Default::default()
            },
            description,
            status: NodeStatus {
                state: NodeState::Ready,
                message: String::new(),
                addr: host_of(&advertise_addr),
                endpoint: advertise_addr.clone(),
                since: now,
            },
            manager: Some(ManagerStatus {
                raft_id,
                addr: advertise_addr,
                reachability: Reachability::Reachable,
            }),
            tls: NodeTls {
                issuer_digest: cluster.root_ca.digest.clone(),
                not_after: now.add(cluster.spec.node_cert_expiry),
            },
        };
        self.fresh_swarm_dir()?;
        let result = async {
            let active = self.activate(identity.clone(), creds).await?;
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
        let token = JoinToken::parse(&req.token)
            .map_err(|e| NodeError::invalid("JoinToken", e.to_string()))?;
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
        let mut errors = Vec::new();
        let mut found = None;
        for r in &remotes {
            match boot.call::<_, wire::CaReply>(r, wire::CA, &()).await {
                Ok(ca) => {
                    found = Some((r.clone(), ca.trust));
                    break;
                }
                Err(e) => errors.push(format!("{r}: {e}")),
            }
        }
        let Some((remote, trust)) = found else {
            return Err(NodeError::Unavailable(format!(
                "could not reach a manager: {}",
                errors.join("; ")
            )));
        };
        let named = trust
            .iter()
            .any(|pem| RootCa::from_pem(pem, None).is_ok_and(|ca| ca.digest() == token.ca_digest));
        if !named {
            return Err(NodeError::invalid(
                "JoinToken",
                format!(
                    "the manager at {remote} does not serve the swarm this token is for (the token names another root CA)"
                ),
            ));
        }
        let advertise_addr = match &req.advertise_addr {
            Some(a) if !a.is_empty() => with_default_port(a, "AdvertiseAddr")?,
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
        let resp: JoinResponse =
            verified
                .call(&remote, wire::JOIN, &request)
                .await
                .map_err(|e| match e {
                    // The manager's message already names the field ("JoinToken: ...").
                    RpcError::Status { code: 400, message } => NodeError::invalid(
                        "JoinToken",
                        message
                            .strip_prefix("JoinToken: ")
                            .unwrap_or(&message)
                            .to_string(),
                    ),
                    other => NodeError::Unavailable(format!("joining through {remote}: {other}")),
                })?;
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
            let active = self.activate(identity.clone(), creds).await?;
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

    /// Back where it was: identity and credentials from disk, the Raft member for a manager.
    pub(crate) async fn resume(&self, identity: Identity) -> Result<Arc<Active>, NodeError> {
        let creds = Credentials::load(&self.certs_dir())
            .map_err(|e| NodeError::Internal(format!("cannot read this node's credentials: {e}")))?
            .ok_or_else(|| {
                NodeError::Internal("this node's credentials are missing from the data dir".into())
            })?;
        let active = self.activate(identity.clone(), creds).await?;
        if identity.role == NodeRole::Manager {
            self.start_manager(&active, None).await?;
        }
        self.start_agent(&active);
        Ok(active)
    }

    fn fresh_swarm_dir(&self) -> Result<(), NodeError> {
        // A half-created swarm from an earlier failed attempt must not be resumed.
        let _ = std::fs::remove_dir_all(self.swarm_dir());
        std::fs::create_dir_all(self.certs_dir()).map_err(|e| {
            NodeError::Internal(format!("cannot create {}: {e}", self.swarm_dir().display()))
        })
    }

    async fn undo_on_error(
        &self,
        r: Result<Arc<Active>, NodeError>,
    ) -> Result<Arc<Active>, NodeError> {
        if let Err(e) = &r {
            tracing::warn!(error = %e, "entering the swarm failed; cleaning up");
            let _ = std::fs::remove_dir_all(self.swarm_dir());
        }
        r
    }

    /// Credentials, RPC server and agent (not yet running); the lifecycle watcher.
    async fn activate(
        &self,
        identity: Identity,
        creds: Credentials,
    ) -> Result<Arc<Active>, NodeError> {
        let tls = Arc::new(
            Tls::new(self.certs_dir(), creds.clone())
                .map_err(|e| NodeError::Internal(e.to_string()))?,
        );
        creds
            .save(&self.certs_dir())
            .map_err(|e| NodeError::Internal(format!("cannot save credentials: {e}")))?;
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
                    tracing::error!(error = %e, "node RPC server stopped");
                }
            })
        };
        let remote = Arc::new(RemoteDispatcher::new(
            rpc.clone(),
            identity.node_id.clone(),
            identity.advertise_addr.clone(),
            identity.managers.clone(),
        ));
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
            manager: tokio::sync::Mutex::new(None),
            stops,
            tasks: std::sync::Mutex::new(vec![server]),
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
                tracing::error!(error = %e, "agent stopped with an error");
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
        )
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?;
        if let Some((cluster, node)) = bootstrap {
            store
                .bootstrap(&id.advertise_addr)
                .await
                .map_err(|e| NodeError::Internal(e.to_string()))?;
            if store
                .wait_for_leader(Duration::from_secs(10))
                .await
                .is_none()
            {
                return Err(NodeError::Internal(
                    "the new raft group elected no leader".into(),
                ));
            }
            let ops = vec![
                Op::PutCluster {
                    cluster,
                    expect_version: None,
                },
                Op::CreateNode(node),
            ];
            let applied = store
                .propose(Proposal::atomic(self.clock.now(), ops))
                .await
                .map_err(|e| NodeError::Internal(e.to_string()))?;
            if let Some(e) = applied.first_error() {
                return Err(NodeError::Internal(format!("creating the swarm: {e}")));
            }
        }
        let manager = Manager::start(store.clone(), self.clock.clone(), IdGen::from_os());
        *active
            .shared
            .manager
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(ManagerParts {
            store,
            control: manager.control.clone(),
            dispatcher: manager.dispatcher.clone(),
        });
        *active.manager.lock().await = Some(manager);
        Ok(())
    }

    /// Stops this node's manager; with `forget`, its Raft data goes too (demotion).
    pub(crate) async fn stop_manager(&self, active: &Active, forget: bool) {
        *active
            .shared
            .manager
            .write()
            .unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(m) = active.manager.lock().await.take() {
            m.stop().await;
        }
        if forget {
            let _ = std::fs::remove_dir_all(self.raft_dir());
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
        let mut last = String::new();
        for _ in 0..20 {
            let mut candidates = active.remote.managers();
            candidates.extend(id.managers.iter().cloned());
            candidates.retain(|m| *m != id.advertise_addr);
            let mut i = 0;
            while i < candidates.len() {
                let m = candidates[i].clone();
                i += 1;
                match long
                    .call::<_, serde_json::Value>(&m, wire::RAFT_JOIN, &req)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(RpcError::Status { code: 421, message }) => {
                        if let Some(l) = message.strip_prefix(LEADER_HINT) {
                            candidates.insert(i, l.trim().to_string());
                        }
                        last = message;
                    }
                    Err(e) => last = format!("{m}: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(NodeError::Unavailable(format!(
            "no leader added this manager to the raft group: {last}"
        )))
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
        tokio::task::spawn_blocking(move || {
            shoal_store::storage::force_new_cluster(&path, raft_id, &addr)
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))?
        .map_err(|e| NodeError::Internal(format!("rewriting the raft store: {e}")))?;
        active.set_identity(&self.identity_path(), |i| {
            i.advertise_addr = id.advertise_addr.clone();
            i.managers = vec![id.advertise_addr.clone()];
        })?;
        self.start_manager(&active, None).await?;
        // The node's own record follows its (maybe new) address.
        let parts = active
            .shared
            .manager
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(m) = parts {
            let _ = m.store.wait_for_leader(Duration::from_secs(10)).await;
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
