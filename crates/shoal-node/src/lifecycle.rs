//! A node acting on what the managers say about it: renewing its certificate when it nears
//! expiry, when its role changed (promotion, demotion) or when the cluster trusts a new root;
//! taking up or giving up the manager role once its certificate says so; leaving when removed.
//!
//! One watcher per active node; it takes the node's transition lock for role changes, and is
//! aborted (never awaited) by whoever tears the node down.

use shoal_types::error::chain;
use std::sync::{Arc, Weak};
use std::time::Duration;

use shoal_pki::Credentials;
use shoal_types::dispatch::{NodeInfo, RenewRequest, RenewResponse};
use shoal_types::node::NodeRole;
use tokio::sync::watch;

use crate::{Active, Daemon, NodeError, wire};

/// How often to look at the certificate's age even when nothing is said.
const TICK: Duration = Duration::from_secs(10);

pub(crate) fn spawn(
    daemon: Weak<Daemon>,
    active: Weak<Active>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut info) = active.upgrade().map(|a| a.remote.node_info()) else {
            return;
        };
        loop {
            tokio::select! {
                r = info.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => return,
            }
            let (Some(d), Some(a)) = (daemon.upgrade(), active.upgrade()) else {
                return;
            };
            let said = info.borrow_and_update().clone();
            if let Err(e) = d.act_on(&a, said).await {
                tracing::warn!(error = %shoal_types::error::Chain(&e), "acting on the managers' view of this node failed; will retry");
            }
        }
    })
}

impl Daemon {
    async fn act_on(&self, active: &Arc<Active>, info: Option<NodeInfo>) -> Result<(), NodeError> {
        if let Some(i) = &info {
            if i.removed {
                tracing::warn!("this node was removed from the swarm; leaving it");
                let _guard = self.transition.lock().await;
                if self.current().is_some_and(|c| Arc::ptr_eq(&c, active)) {
                    return self.leave_locked(active.clone()).await;
                }
                return Ok(());
            }
            let managers = i.managers.clone();
            if !managers.is_empty() {
                active.set_identity(&self.identity_path(), |id| id.managers = managers)?;
            }
        }
        let id = active.identity();
        let creds = active.tls.creds();
        let due = self.clock.now().unix_nanos() >= self.renew_at(active)?;
        let told = info.as_ref().is_some_and(|i| {
            i.role != id.role
                || (!i.issuer_digest.is_empty() && i.issuer_digest != id.issuer_digest)
                || (!i.trust.is_empty() && i.trust != creds.trust)
        });
        if due || told {
            let raft_id = info.as_ref().and_then(|i| i.raft_id);
            self.renew(active, raft_id).await?;
        }
        self.follow_role(active).await
    }

    /// When the certificate is two thirds through its life.
    fn renew_at(&self, active: &Active) -> Result<i64, NodeError> {
        let id = active.identity();
        let cert = active
            .tls
            .creds()
            .identity()
            .map_err(|e| NodeError::Internal(chain(&e)))?;
        let (issued, expires) = (id.cert_issued_at.unix_nanos(), cert.not_after.unix_nanos());
        Ok(issued + (expires - issued) * 2 / 3)
    }

    /// Gets a fresh certificate (with the role and roots the managers give now) and switches to it.
    pub(crate) async fn renew(
        &self,
        active: &Arc<Active>,
        raft_id: Option<u64>,
    ) -> Result<(), NodeError> {
        let (key_pem, csr_pem) =
            shoal_pki::new_key_and_csr().map_err(|e| NodeError::Internal(chain(&e)))?;
        let req = RenewRequest { csr_pem };
        let mut last = String::from("no manager known");
        let mut managers = active.remote.managers();
        managers.extend(active.identity().managers);
        for m in managers {
            match active
                .rpc
                .call::<_, RenewResponse>(&m, wire::RENEW, &req)
                .await
            {
                Ok(resp) => {
                    let creds = Credentials {
                        key_pem,
                        cert_pem: resp.cert_pem,
                        intermediate_pem: resp.intermediate_pem,
                        trust: resp.trust,
                    };
                    active
                        .tls
                        .update(creds)
                        .map_err(|e| NodeError::Internal(chain(&e)))?;
                    let now = self.clock.now();
                    active.set_identity(&self.identity_path(), |id| {
                        id.role = resp.role;
                        id.issuer_digest = resp.issuer_digest;
                        id.cert_issued_at = now;
                        if resp.role == NodeRole::Manager && raft_id.is_some() {
                            id.raft_id = raft_id;
                        }
                    })?;
                    tracing::info!(role = resp.role.as_str(), "renewed this node's certificate");
                    return Ok(());
                }
                Err(e) => last = format!("{m}: {}", chain(&e)),
            }
        }
        Err(NodeError::Unavailable(format!(
            "could not renew this node's certificate: {last}"
        )))
    }

    /// Starts or stops this node's manager to match the role its certificate carries.
    async fn follow_role(&self, active: &Arc<Active>) -> Result<(), NodeError> {
        let role = active.identity().role;
        let running = active.manager().is_some();
        match (role, running) {
            (NodeRole::Manager, false) => {
                let _guard = self.transition.lock().await;
                if !self.current().is_some_and(|c| Arc::ptr_eq(&c, active)) {
                    return Ok(());
                }
                tracing::info!("promoted: joining the raft group");
                let _ = std::fs::remove_dir_all(self.raft_dir());
                self.start_manager(active, None).await?;
                self.raft_join(active).await
            }
            (NodeRole::Worker, true) => {
                let _guard = self.transition.lock().await;
                tracing::info!("demoted: leaving the raft group");
                self.stop_manager(active, true).await;
                active.set_identity(&self.identity_path(), |id| id.raft_id = None)
            }
            _ => Ok(()),
        }
    }
}
