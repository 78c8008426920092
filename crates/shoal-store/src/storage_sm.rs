//! The state machine: objects one row per object, applied from the log; the snapshot built from
//! those rows and installed from a leader's (see the parent module's docs).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageIOError, StoredMembership,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use tokio::sync::{broadcast, watch};

use super::{
    Changes, NodeId, OBJECTS, OBJECTS_NAME, SErr, SM_META, SM_META_NAME, SNAPSHOT, SNAPSHOT_NAME,
    Unreadable, from_json, io_err, read_meta, to_json,
};
use crate::TypeConfig;
use crate::ops::Applied;
use crate::seal::Sealer;
use crate::state::{Object, State, object_key};

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct SmMeta {
    pub(super) last_applied: Option<LogId<NodeId>>,
    pub(super) membership: StoredMembership<NodeId, BasicNode>,
}

/// A snapshot as it travels between members: every object.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotFile {
    objects: Vec<Object>,
}

/// Shared between the state machine (the only writer) and every reader.
pub struct Published {
    pub state: watch::Sender<Arc<State>>,
    pub changes: broadcast::Sender<Arc<Changes>>,
}

pub struct StateMachine {
    db: Arc<Database>,
    sealer: Sealer,
    pub(super) meta: SmMeta,
    published: Arc<Published>,
    /// Reads a snapshot on the calling task rather than on a blocking thread: for an
    /// in-memory disk (the simulation), whose runs must start no thread of their own.
    inline: bool,
}

impl StateMachine {
    /// Loads the applied state from the database.
    pub fn load(db: Arc<Database>, sealer: Sealer) -> Result<(Self, State), std::io::Error> {
        let meta: SmMeta = read_meta(&db, &sealer, SM_META, "meta")?.unwrap_or_default();
        let mut state = State::default();
        {
            let rtx = db.begin_read().map_err(io_err)?;
            let t = rtx.open_table(OBJECTS).map_err(io_err)?;
            for row in t.iter().map_err(io_err)? {
                let (k, v) = row.map_err(io_err)?;
                let obj: Object = from_json(&sealer, OBJECTS_NAME, k.value().as_bytes(), v.value())
                    .map_err(|source| {
                        io_err(Unreadable {
                            key: k.value().to_owned(),
                            source,
                        })
                    })?;
                state.load(obj);
            }
        }
        state.version = meta.last_applied.map_or(0, |l| l.index);
        // openraft takes the state loaded here as the current snapshot and may purge the log up
        // to it, so it must be durable: an apply before a crash may not have been. The rows of
        // a snapshot kept in the database by an older version go too.
        let mut tx = db.begin_write().map_err(io_err)?;
        tx.set_durability(Durability::Immediate).map_err(io_err)?;
        {
            let mut s = tx.open_table(SNAPSHOT).map_err(io_err)?;
            s.remove("data").map_err(io_err)?;
            s.remove("file").map_err(io_err)?;
            let mut m = tx.open_table(SM_META).map_err(io_err)?;
            let b = to_json(&sealer, SM_META_NAME, b"meta", &meta)?;
            m.insert("meta", b.as_slice()).map_err(io_err)?;
        }
        tx.commit().map_err(io_err)?;
        let (state_tx, _) = watch::channel(Arc::new(state.clone()));
        let (changes_tx, _) = broadcast::channel(1024);
        let published = Arc::new(Published {
            state: state_tx,
            changes: changes_tx,
        });
        Ok((
            StateMachine {
                db,
                sealer,
                meta,
                published,
                inline: false,
            },
            state,
        ))
    }

    /// See [`StateMachine::inline`]'s field.
    pub fn inline(mut self) -> Self {
        self.inline = true;
        self
    }

    pub fn published(&self) -> Arc<Published> {
        self.published.clone()
    }

    fn persist(
        &self,
        dirty: &BTreeMap<String, Option<Object>>,
        meta: &SmMeta,
    ) -> Result<(), std::io::Error> {
        let mut tx = self.db.begin_write().map_err(io_err)?;
        // Replayable from the durable log, so no sync of its own (see the module docs).
        tx.set_durability(Durability::None).map_err(io_err)?;
        {
            let mut t = tx.open_table(OBJECTS).map_err(io_err)?;
            for (k, obj) in dirty {
                match obj {
                    Some(o) => {
                        let b = to_json(&self.sealer, OBJECTS_NAME, k.as_bytes(), o)?;
                        t.insert(k.as_str(), b.as_slice()).map_err(io_err)?;
                    }
                    None => {
                        t.remove(k.as_str()).map_err(io_err)?;
                    }
                }
            }
            let mut m = tx.open_table(SM_META).map_err(io_err)?;
            let b = to_json(&self.sealer, SM_META_NAME, b"meta", meta)?;
            m.insert("meta", b.as_slice()).map_err(io_err)?;
        }
        tx.commit().map_err(io_err)
    }

    pub(super) fn replace_all(
        &self,
        objects: &[Object],
        meta: &SmMeta,
        snap: &SnapshotMeta<NodeId, BasicNode>,
    ) -> Result<(), std::io::Error> {
        let mut tx = self.db.begin_write().map_err(io_err)?;
        tx.set_durability(Durability::Immediate).map_err(io_err)?;
        {
            tx.delete_table(OBJECTS).map_err(io_err)?;
            let mut t = tx.open_table(OBJECTS).map_err(io_err)?;
            for o in objects {
                let key = o.key();
                let b = to_json(&self.sealer, OBJECTS_NAME, key.as_bytes(), o)?;
                t.insert(key.as_str(), b.as_slice()).map_err(io_err)?;
            }
            let mut m = tx.open_table(SM_META).map_err(io_err)?;
            let b = to_json(&self.sealer, SM_META_NAME, b"meta", meta)?;
            m.insert("meta", b.as_slice()).map_err(io_err)?;
            let mut s = tx.open_table(SNAPSHOT).map_err(io_err)?;
            let b = to_json(&self.sealer, SNAPSHOT_NAME, b"meta", snap)?;
            s.insert("meta", b.as_slice()).map_err(io_err)?;
        }
        tx.commit().map_err(io_err)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), SErr> {
        Ok((self.meta.last_applied, self.meta.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = (**self.published.state.borrow()).clone();
        let mut meta = self.meta.clone();
        let mut replies = Vec::new();
        let mut dirty_keys = BTreeMap::new();
        let mut all_events = Vec::new();
        for entry in entries {
            meta.last_applied = Some(entry.log_id);
            state.version = entry.log_id.index;
            match entry.payload {
                EntryPayload::Blank => replies.push(Applied {
                    version: entry.log_id.index,
                    results: vec![],
                }),
                EntryPayload::Membership(m) => {
                    meta.membership = StoredMembership::new(Some(entry.log_id), m);
                    replies.push(Applied {
                        version: entry.log_id.index,
                        results: vec![],
                    });
                }
                EntryPayload::Normal(p) => {
                    let (applied, events) = state.apply(entry.log_id.index, &p);
                    for e in &events {
                        dirty_keys.insert(object_key(e.kind, &e.id), (e.kind, e.id.clone()));
                    }
                    all_events.extend(events);
                    replies.push(applied);
                }
            }
        }
        let dirty: BTreeMap<String, Option<Object>> = dirty_keys
            .into_iter()
            .map(|(k, (kind, id))| (k, state.object(kind, &id)))
            .collect();
        let last = meta.last_applied;
        self.persist(&dirty, &meta).map_err(|e| match last {
            Some(l) => StorageIOError::apply(l, &e),
            None => StorageIOError::write_state_machine(&e),
        })?;
        self.meta = meta;
        let version = state.version;
        self.published.state.send_replace(Arc::new(state));
        if !all_events.is_empty() {
            // No receivers is fine: watchers come and go.
            let _ = self.published.changes.send(Arc::new(Changes {
                version,
                events: all_events,
            }));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            sealer: self.sealer.clone(),
            meta: self.meta.clone(),
            inline: self.inline,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let data = snapshot.into_inner();
        // In memory only: it came over the members' mutual-TLS connection and is sealed row by row
        // as it is stored.
        let file: SnapshotFile = serde_json::from_slice(&data)
            .map_err(io_err)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let mut state = State::default();
        for o in file.objects.iter().cloned() {
            state.load(o);
        }
        state.version = meta.last_log_id.map_or(0, |l| l.index);
        let sm = SmMeta {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.replace_all(&file.objects, &sm, meta)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.meta = sm;
        self.published.state.send_replace(Arc::new(state));
        Ok(())
    }

    /// The rows as they are now, under the log id they were applied up to (see the module
    /// docs). The state machine makes them on its own task, so no apply moves them meanwhile.
    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let Some(last) = self.meta.last_applied else {
            return Ok(None);
        };
        let meta = SnapshotMeta {
            last_log_id: Some(last),
            last_membership: self.meta.membership.clone(),
            snapshot_id: format!("{}-{}", last.leader_id.term, last.index),
        };
        let (db, sealer) = (self.db.clone(), self.sealer.clone());
        let signature = meta.signature();
        // Tens of megabytes once the state is large: off the runtime's workers, which go on
        // sending heartbeats meanwhile.
        let data = if self.inline {
            snapshot_bytes(&db, &sealer)
        } else {
            tokio::task::spawn_blocking(move || snapshot_bytes(&db, &sealer))
                .await
                .map_err(io_err)
                .and_then(|r| r)
        }
        .map_err(|e| StorageIOError::read_snapshot(Some(signature), &e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Every stored object as a [`SnapshotFile`], from the rows as they are: each row opened is an
/// object's JSON, so they are joined rather than parsed and written again. The result stays in
/// memory, for the mutual-TLS connection to the member that asked.
fn snapshot_bytes(db: &Database, sealer: &Sealer) -> Result<Vec<u8>, std::io::Error> {
    let started = tokio::time::Instant::now();
    let rtx = db.begin_read().map_err(io_err)?;
    let t = rtx.open_table(OBJECTS).map_err(io_err)?;
    let mut out = b"{\"objects\":[".to_vec();
    for (i, row) in t.iter().map_err(io_err)?.enumerate() {
        let (k, v) = row.map_err(io_err)?;
        if i > 0 {
            out.push(b',');
        }
        let plain = sealer
            .open(OBJECTS_NAME, k.value().as_bytes(), v.value())
            .map_err(io_err)?;
        out.extend_from_slice(&plain);
    }
    out.extend_from_slice(b"]}");
    tracing::info!(
        bytes = out.len(),
        millis = started.elapsed().as_millis() as u64,
        "read a raft snapshot to send"
    );
    Ok(out)
}

pub struct SnapshotBuilder {
    db: Arc<Database>,
    sealer: Sealer,
    meta: SmMeta,
    inline: bool,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// Makes the rows durable at (or past) the entry the snapshot is of, and records it: the
    /// log is purged only up to there. openraft keeps only the meta of a snapshot it had built
    /// (its state machine worker drops the data), so none is made here; a member that needs
    /// the bytes gets them from [`StateMachine::get_current_snapshot`].
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let (db, sealer, sm) = (self.db.clone(), self.sealer.clone(), self.meta.clone());
        if self.inline {
            return record_snapshot(&db, &sealer, &sm);
        }
        // A sync: off the runtime's workers.
        #[allow(clippy::result_large_err)] // openraft's own error type, as the trait returns it
        tokio::task::spawn_blocking(move || record_snapshot(&db, &sealer, &sm))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &io_err(e)))?
    }
}

#[allow(clippy::result_large_err)] // openraft's own error type, as the trait returns it
fn record_snapshot(
    db: &Database,
    sealer: &Sealer,
    sm: &SmMeta,
) -> Result<Snapshot<TypeConfig>, SErr> {
    let started = tokio::time::Instant::now();
    let snapshot_id = match sm.last_applied {
        Some(l) => format!("{}-{}", l.leader_id.term, l.index),
        None => "empty".into(),
    };
    let meta = SnapshotMeta {
        last_log_id: sm.last_applied,
        last_membership: sm.membership.clone(),
        snapshot_id,
    };
    let write = || -> Result<(), std::io::Error> {
        // Durable, so it persists every apply up to this snapshot (and any made since) too.
        // The row is only a record of the last snapshot for whoever inspects the file: what
        // openraft serves is computed from the rows (`get_current_snapshot`).
        let mut tx = db.begin_write().map_err(io_err)?;
        tx.set_durability(Durability::Immediate).map_err(io_err)?;
        {
            let mut s = tx.open_table(SNAPSHOT).map_err(io_err)?;
            let b = to_json(sealer, SNAPSHOT_NAME, b"meta", &meta)?;
            s.insert("meta", b.as_slice()).map_err(io_err)?;
        }
        tx.commit().map_err(io_err)
    };
    write().map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
    tracing::info!(
        index = sm.last_applied.map_or(0, |l| l.index),
        millis = started.elapsed().as_millis() as u64,
        "built a raft snapshot"
    );
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(Vec::new())),
    })
}
