//! The swarm's unlock key (autolock): made when autolock turns on (at `swarm init --autolock` or
//! by `swarm update --autolock=true`), dropped when it turns off, replaced on request
//! (`swarm unlock-key --rotate`). The key lives in the cluster object, so every manager learns it
//! through Raft and seals its own keys at rest under it (the node does that, not the manager).

use std::sync::Arc;

use shoal_store::Op;
use shoal_store::seal::UnlockKey;
use shoal_types::cluster::Cluster;

use crate::control::Control;
use crate::error::ControlError;

fn new_key() -> Result<String, ControlError> {
    UnlockKey::generate()
        .map(|k| k.to_human())
        .map_err(|e| ControlError::Internal(format!("making an unlock key: {e}")))
}

/// Gives `next` the unlock key its spec calls for: the current one while autolock stays on, a
/// new one when it turns on (or `rotate`), none when it is off.
pub fn unlock_key_step(
    cur: Option<&Cluster>,
    next: &mut Cluster,
    rotate: bool,
) -> Result<(), ControlError> {
    if !next.spec.autolock {
        if rotate {
            return Err(ControlError::FailedPrecondition(
                "cannot rotate because autolock is not turned on".into(),
            ));
        }
        next.unlock_key = None;
        return Ok(());
    }
    let kept = cur.and_then(|c| c.unlock_key.clone()).filter(|_| !rotate);
    next.unlock_key = match kept {
        Some(k) => Some(k),
        None => Some(new_key()?),
    };
    Ok(())
}

impl Control {
    /// Replaces the unlock key (`swarm unlock-key --rotate`): after this only the new key
    /// unlocks a restarted manager.
    pub async fn rotate_unlock_key(&self, version: u64) -> Result<Arc<Cluster>, ControlError> {
        let cur = self.cluster()?;
        if cur.meta.version != version {
            return Err(ControlError::Conflict(format!(
                "update out of sequence: the swarm is at version {}, the update was based on version {version}; inspect it and retry",
                cur.meta.version
            )));
        }
        let mut next = (*cur).clone();
        unlock_key_step(Some(&cur), &mut next, true)?;
        self.write(vec![Op::PutCluster {
            cluster: next,
            expect_version: Some(version),
        }])
        .await?;
        self.cluster()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_the_autolock_setting() {
        let mut cur = Cluster::default();
        let mut next = cur.clone();
        unlock_key_step(Some(&cur), &mut next, false).expect("ok");
        assert_eq!(next.unlock_key, None);
        assert!(unlock_key_step(Some(&cur), &mut next, true).is_err());

        next.spec.autolock = true;
        unlock_key_step(Some(&cur), &mut next, false).expect("ok");
        let first = next
            .unlock_key
            .clone()
            .expect("a key when autolock turns on");
        assert!(UnlockKey::parse(&first).is_ok());

        cur = next.clone();
        unlock_key_step(Some(&cur), &mut next, false).expect("ok");
        assert_eq!(next.unlock_key.as_deref(), Some(first.as_str()), "kept");
        unlock_key_step(Some(&cur), &mut next, true).expect("ok");
        assert_ne!(next.unlock_key.as_deref(), Some(first.as_str()), "rotated");

        cur = next.clone();
        next.spec.autolock = false;
        unlock_key_step(Some(&cur), &mut next, false).expect("ok");
        assert_eq!(next.unlock_key, None, "dropped when autolock is off");
    }
}
