//! Autolock on this node: a restarted manager of an autolocked swarm waits, locked, for its unlock
//! key ([`Daemon::swarm_unlock`]); a running manager keeps its keys at rest sealed as the
//! cluster object says (autolock on: under the swarm's unlock key, rotated with it; off: under a
//! key-encryption key kept on disk), through [`spawn_follower`]. Workers are never locked.
//!
//! Concurrency: unlock runs under the daemon's transition lock, like init and join; the follower
//! is one task per running manager, and the vault orders its writes with renewals.

use std::sync::Arc;

use shoal_store::Store;
use shoal_store::seal::UnlockKey;
use shoal_types::cluster::Cluster;
use shoal_types::error::chain;

use crate::identity::Identity;
use crate::tls::Tls;
use crate::vault::{self, Vault, VaultError};
use crate::{Active, Daemon, NodeError};

/// A manager restarted with its keys sealed under the unlock key.
pub(crate) struct LockedNode {
    pub(crate) identity: Identity,
    pub(crate) keys: vault::Locked,
}

/// The unlock key `c` asks managers to seal under: `Ok(None)` when autolock is off.
fn wanted(c: &Cluster) -> Result<Option<UnlockKey>, String> {
    if !c.spec.autolock {
        return Ok(None);
    }
    match &c.unlock_key {
        Some(k) => UnlockKey::parse(k)
            .map(Some)
            .map_err(|e| format!("the cluster's unlock key: {e}")),
        None => Err("autolock is on but the cluster has no unlock key".into()),
    }
}

/// Follows the cluster object: seals the node's keys under the unlock key while autolock is on
/// (and under the new key after a rotation), under a KEK on disk when it is off.
pub(crate) fn spawn_follower(
    store: &Store,
    vault: Arc<Vault>,
    tls: Arc<Tls>,
) -> tokio::task::JoinHandle<()> {
    let mut states = store.subscribe();
    tokio::spawn(async move {
        let mut last: Option<Option<String>> = None;
        loop {
            let want = {
                let st = states.borrow_and_update();
                st.cluster().map(|c| {
                    let raw = c.spec.autolock.then(|| c.unlock_key.clone()).flatten();
                    (raw, wanted(c))
                })
            };
            // Every applied write wakes this; only a change of the key is worth acting on.
            if let Some((raw, want)) = want.filter(|(raw, _)| last.as_ref() != Some(raw)) {
                match want {
                    Err(why) => tracing::warn!(%why, "cannot follow the swarm's autolock setting"),
                    Ok(key) => match vault.follow(key.as_ref(), &tls.creds()) {
                        Ok(changed) => {
                            if changed {
                                tracing::info!(
                                    autolock = key.is_some(),
                                    "this manager's keys at rest now follow the swarm's autolock setting"
                                );
                            }
                            last = Some(raw);
                        }
                        // Tried again at the next write.
                        Err(e) => {
                            tracing::error!(error = %chain(&e), "could not reseal this manager's keys at rest")
                        }
                    },
                }
            }
            if states.changed().await.is_err() {
                return;
            }
        }
    })
}

impl Active {
    pub(crate) fn stop_autolock(&self) {
        if let Some(t) = self
            .autolock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
    }

    pub(crate) fn set_autolock(&self, t: tokio::task::JoinHandle<()>) {
        let old = self
            .autolock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(t);
        if let Some(old) = old {
            old.abort();
        }
    }
}

impl Daemon {
    /// Opens a locked manager's keys with `key` and resumes it. A malformed key, or a key that
    /// is not the one its keys are sealed under, changes nothing: the node stays locked.
    pub async fn swarm_unlock(&self, key: &str) -> Result<(), NodeError> {
        let _guard = self.transition.lock().await;
        let Some(locked) = self.locked_node() else {
            return Err(if self.current().is_some() {
                NodeError::NotLocked
            } else {
                NodeError::NotInSwarm
            });
        };
        let key =
            UnlockKey::parse(key).map_err(|e| NodeError::invalid("UnlockKey", e.to_string()))?;
        let vault = locked.keys.unlock(&key).map_err(|e| match e {
            VaultError::WrongKey => NodeError::InvalidUnlockKey,
            other => NodeError::Internal(chain(&other)),
        })?;
        let active = self
            .resume_with(locked.identity.clone(), Arc::new(vault))
            .await?;
        self.set_locked(None);
        self.set_current(Some(active));
        tracing::info!("unlocked: this manager is running");
        Ok(())
    }

    /// `swarm leave --force` on a locked manager: its state cannot be read, only forgotten.
    pub(crate) fn leave_locked_node(&self, force: bool) -> Result<(), NodeError> {
        if !force {
            return Err(NodeError::FailedPrecondition(
                "You are attempting to leave the swarm on a node that is participating as a manager. The swarm is locked: its state cannot be read without the unlock key. Use `--force` to leave anyway; this node's copy of the swarm's state is lost.".into(),
            ));
        }
        std::fs::remove_dir_all(self.swarm_dir()).map_err(|e| {
            NodeError::Internal(format!(
                "cannot remove {}: {}",
                self.swarm_dir().display(),
                chain(&e)
            ))
        })?;
        self.set_locked(None);
        tracing::info!("left the swarm while locked");
        Ok(())
    }
}
