//! Rewriting a manager's store so that it alone forms the Raft group (`force_new_cluster`).

use std::collections::BTreeMap;
use std::ops::Bound;

use openraft::{BasicNode, EntryPayload, SnapshotMeta, StoredMembership};
use redb::Durability;

use super::{
    LOG, RAFT_META, RAFT_META_NAME, SmMeta, StateMachine, already_open, io_err, open_db,
    read_entries, to_json,
};
use crate::seal::Sealer;

/// Rewrites a manager's store so that this member alone forms the Raft group, keeping every
/// object: `swarm init --force-new-cluster` after the others are lost, or a restored backup.
/// Every entry in the local log is applied, also those past the commit index this member knew
/// of: a follower learns of a commit only with the leader's next message, so the newest entries
/// may well have been committed and acknowledged. Dropping them (as etcd's and swarmkit's
/// recovery do) could lose acknowledged writes; keeping them can only bring back a write whose
/// client got an indeterminate "no leader" error. The store must be closed.
pub fn force_new_cluster(
    path: &std::path::Path,
    raft_id: u64,
    addr: &str,
    sealer: &Sealer,
) -> Result<u64, std::io::Error> {
    // A store closed a moment ago in this process may still hold its file lock briefly.
    let mut tries = 0;
    let db = loop {
        match open_db(path) {
            Err(e) if already_open(&e) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other?,
        }
    };
    let (sm, mut state) = StateMachine::load(db.clone(), sealer.clone())?;
    let mut last = sm.meta.last_applied;
    let from = last.map_or(0, |l| l.index + 1);
    for entry in read_entries(&db, sealer, Bound::Included(from), Bound::Unbounded)? {
        if let EntryPayload::Normal(p) = &entry.payload {
            state.apply(entry.log_id.index, p);
        }
        state.version = entry.log_id.index;
        last = Some(entry.log_id);
    }
    let mut nodes = BTreeMap::new();
    nodes.insert(
        raft_id,
        BasicNode {
            addr: addr.to_string(),
        },
    );
    let voters: std::collections::BTreeSet<u64> = [raft_id].into();
    let membership = StoredMembership::new(last, openraft::Membership::new(vec![voters], nodes));
    let meta = SmMeta {
        last_applied: last,
        membership: membership.clone(),
    };
    let objects = state.all_objects();
    let snap = SnapshotMeta {
        last_log_id: last,
        last_membership: membership,
        snapshot_id: format!("force-new-cluster-{}", last.map_or(0, |l| l.index)),
    };
    sm.replace_all(&objects, &meta, &snap)?;
    let mut tx = db.begin_write().map_err(io_err)?;
    tx.set_durability(Durability::Immediate).map_err(io_err)?;
    {
        tx.delete_table(LOG).map_err(io_err)?;
        tx.open_table(LOG).map_err(io_err)?;
        let mut m = tx.open_table(RAFT_META).map_err(io_err)?;
        if let Some(l) = last {
            let b = to_json(sealer, RAFT_META_NAME, b"purged", &l)?;
            m.insert("purged", b.as_slice()).map_err(io_err)?;
            let b = to_json(sealer, RAFT_META_NAME, b"committed", &Some(l))?;
            m.insert("committed", b.as_slice()).map_err(io_err)?;
        }
    }
    tx.commit().map_err(io_err)?;
    Ok(last.map_or(0, |l| l.index))
}
