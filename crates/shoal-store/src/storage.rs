//! Durable storage for the Raft log and the state machine, in one redb database.
//!
//! The log store and the state machine are separate handles on the same file, as openraft drives
//! them from separate tasks. The state machine's objects are stored one row per object, so
//! restart loads the state without replaying the whole log.
//!
//! Those rows are the snapshot. Building one (every `snapshot_every` entries) is a durable commit
//! that records its log id, so it costs what changed since the last one, not the size of the
//! state: with 40,000 services stored, serialising and writing a 40 MB snapshot on every member
//! at once stalled writes for half a second each time. The bytes a lagging member needs are
//! made only when a leader sends them: the rows as they are when asked, under the log id they
//! were applied up to, which is at or past the last snapshot built and so covers every entry
//! purged. A snapshot received from a leader replaces the rows.
//!
//! Durability (what makes "acknowledged" mean "on disk on a majority"):
//! - Log appends are group-committed. `append` commits its entries without a sync and hands
//!   openraft's [`LogFlushed`] callback to one sync thread per store, which makes everything
//!   committed so far durable with a single `Durability::Immediate` commit and only then reports
//!   every callback it collected. openraft counts an entry towards a commit (and a follower
//!   answers an AppendEntries) only after that report, so a burst of appends shares one
//!   `fdatasync` and nothing is acknowledged before it is durable. A store on an in-memory disk
//!   (the simulation) syncs inline instead: a thread tokio cannot see would let paused time jump
//!   past a flush, and a sync there costs nothing.
//! - Votes, truncations, purges, snapshots, loading the state at start and `force_new_cluster`
//!   commit durably at once.
//! - Applying committed entries (and `save_committed`) does not sync: the state machine is a
//!   deterministic function of the log, its rows and `last_applied` change in one transaction,
//!   and redb makes a non-durable commit durable together with the next durable one. After a
//!   crash the state machine is at some earlier `last_applied`, and openraft applies the rest
//!   again from the durable log. The log is never purged past what is durably applied: a purge
//!   follows a snapshot, whose durable commit also persists every apply it was built from.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, watch};

use crate::TypeConfig;
use crate::ops::{Applied, Event};
use crate::state::{Object, State, object_key};

type NodeId = u64;
type SErr = StorageError<NodeId>;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const RAFT_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

/// What one applied batch changed, for watchers.
#[derive(Debug, Clone)]
pub struct Changes {
    pub version: u64,
    pub events: Vec<Event>,
}

/// redb and serde errors travel through openraft's storage API as io errors; wrapping (not
/// printing) them keeps the original as the cause.
fn io_err<E: std::error::Error + Send + Sync + 'static>(e: E) -> std::io::Error {
    std::io::Error::other(e)
}

#[derive(Debug, thiserror::Error)]
#[error("stored object {key:?} is unreadable")]
struct Unreadable {
    key: String,
    #[source]
    source: std::io::Error,
}

/// Whether opening the database failed because another handle (this process or another) holds it.
pub fn already_open(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<redb::DatabaseError>())
        .is_some_and(|d| matches!(d, redb::DatabaseError::DatabaseAlreadyOpen))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, std::io::Error> {
    serde_json::to_vec(v).map_err(io_err)
}

fn from_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, std::io::Error> {
    serde_json::from_slice(b).map_err(io_err)
}

fn read_meta<T: serde::de::DeserializeOwned>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, std::io::Error> {
    let rtx = db.begin_read().map_err(io_err)?;
    let t = match rtx.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(io_err(e)),
    };
    match t.get(key).map_err(io_err)? {
        Some(v) => Ok(Some(from_json(v.value())?)),
        None => Ok(None),
    }
}

fn write_meta<T: serde::Serialize>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    v: &T,
) -> Result<(), std::io::Error> {
    write_meta_with(db, table, key, v, Durability::Immediate)
}

fn write_meta_with<T: serde::Serialize>(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    v: &T,
    durability: Durability,
) -> Result<(), std::io::Error> {
    let bytes = to_json(v)?;
    let mut tx = db.begin_write().map_err(io_err)?;
    tx.set_durability(durability).map_err(io_err)?;
    {
        let mut t = tx.open_table(table).map_err(io_err)?;
        t.insert(key, bytes.as_slice()).map_err(io_err)?;
    }
    tx.commit().map_err(io_err)
}

/// Opens (or creates) the database and makes sure every table exists, so readers never race a
/// table's creation.
pub fn open_db(path: &std::path::Path) -> Result<Arc<Database>, std::io::Error> {
    let db = Database::create(path).map_err(io_err)?;
    with_tables(db)
}

/// A database kept in memory that outlives the store using it: closing the store and opening
/// it again on the same disk is a restart that keeps everything written (the simulation's
/// crash and restart, without files or fsyncs). Clones share the same bytes.
#[derive(Debug, Clone, Default)]
pub struct MemoryDisk(Arc<redb::backends::InMemoryBackend>);

impl MemoryDisk {
    pub fn new() -> Self {
        Self::default()
    }
}

impl redb::StorageBackend for MemoryDisk {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write(offset, data)
    }
}

/// Opens (or creates) the database on a [`MemoryDisk`].
pub fn open_memory_db(disk: &MemoryDisk) -> Result<Arc<Database>, std::io::Error> {
    let db = redb::Builder::new()
        .create_with_backend(disk.clone())
        .map_err(io_err)?;
    with_tables(db)
}

fn with_tables(db: Database) -> Result<Arc<Database>, std::io::Error> {
    let tx = db.begin_write().map_err(io_err)?;
    tx.open_table(LOG).map_err(io_err)?;
    tx.open_table(RAFT_META).map_err(io_err)?;
    tx.open_table(SM_META).map_err(io_err)?;
    tx.open_table(OBJECTS).map_err(io_err)?;
    tx.open_table(SNAPSHOT).map_err(io_err)?;
    tx.commit().map_err(io_err)?;
    Ok(Arc::new(db))
}

// ---------------------------------------------------------------------------------------------
// Log store

fn read_entries(
    db: &Database,
    start: Bound<u64>,
    end: Bound<u64>,
) -> Result<Vec<Entry<TypeConfig>>, std::io::Error> {
    let rtx = db.begin_read().map_err(io_err)?;
    let t = rtx.open_table(LOG).map_err(io_err)?;
    let mut out = Vec::new();
    for row in t.range::<u64>((start, end)).map_err(io_err)? {
        let (_, v) = row.map_err(io_err)?;
        out.push(from_json(v.value())?);
    }
    Ok(out)
}

/// Makes every commit so far durable: an empty transaction committed with
/// `Durability::Immediate` syncs the file, and with it every earlier non-durable commit.
pub fn sync(db: &Database) -> Result<(), std::io::Error> {
    let mut tx = db.begin_write().map_err(io_err)?;
    tx.set_durability(Durability::Immediate).map_err(io_err)?;
    tx.commit().map_err(io_err)
}

/// How many group syncs of the log this process has made (for benchmarks: syncs per write).
static LOG_SYNCS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The number of log group syncs made so far by every store in this process.
pub fn log_syncs() -> u64 {
    LOG_SYNCS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Starts the thread that group-commits log appends (see the module docs). It ends when every
/// sender is dropped, i.e. when openraft drops the log store, and releases the database then.
fn spawn_log_sync(
    db: Arc<Database>,
) -> Result<std::sync::mpsc::Sender<LogFlushed<TypeConfig>>, std::io::Error> {
    let (tx, rx) = std::sync::mpsc::channel::<LogFlushed<TypeConfig>>();
    std::thread::Builder::new()
        .name("raft-log-sync".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                // Everything queued while the previous sync ran shares this one.
                let mut batch = vec![first];
                batch.extend(rx.try_iter());
                let res = sync(&db).map_err(Arc::new);
                LOG_SYNCS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Err(e) = &res {
                    tracing::error!(error = %shoal_types::error::Chain(&**e), entries = batch.len(), "raft log sync failed");
                }
                for cb in batch {
                    cb.log_io_completed(
                        res.as_ref()
                            .map(|_| ())
                            // One failed sync fails the whole batch: each callback gets the
                            // same error, shared.
                            .map_err(|e| std::io::Error::new(e.kind(), e.clone())),
                    );
                }
            }
        })?;
    Ok(tx)
}

#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// The group-commit thread; `None` syncs each append inline (see the module docs).
    syncer: Option<std::sync::mpsc::Sender<LogFlushed<TypeConfig>>>,
}

impl LogStore {
    /// The log on `db`, with its group-commit thread.
    pub fn new(db: Arc<Database>) -> Result<Self, std::io::Error> {
        let syncer = Some(spawn_log_sync(db.clone())?);
        Ok(LogStore { db, syncer })
    }

    /// The log on `db`, syncing each append before it reports it: for in-memory disks under a
    /// paused clock, where every step must happen on tokio's side of time.
    pub fn new_inline(db: Arc<Database>) -> Self {
        LogStore { db, syncer: None }
    }

    fn entries(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<Vec<Entry<TypeConfig>>, std::io::Error> {
        read_entries(&self.db, start, end)
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, std::io::Error> {
        let rtx = self.db.begin_read().map_err(io_err)?;
        let t = rtx.open_table(LOG).map_err(io_err)?;
        match t.last().map_err(io_err)? {
            Some((_, v)) => {
                let e: Entry<TypeConfig> = from_json(v.value())?;
                Ok(Some(e.log_id))
            }
            None => Ok(None),
        }
    }

    /// Deletes log rows in `range` in one durable transaction.
    fn delete_range(&self, from: u64, to_inclusive: Option<u64>) -> Result<(), std::io::Error> {
        let mut tx = self.db.begin_write().map_err(io_err)?;
        tx.set_durability(Durability::Immediate).map_err(io_err)?;
        {
            let mut t = tx.open_table(LOG).map_err(io_err)?;
            let keys: Vec<u64> = {
                let range = match to_inclusive {
                    Some(end) => t.range(from..=end).map_err(io_err)?,
                    None => t.range(from..).map_err(io_err)?,
                };
                let mut keys = Vec::new();
                for row in range {
                    keys.push(row.map_err(io_err)?.0.value());
                }
                keys
            };
            for k in keys {
                t.remove(k).map_err(io_err)?;
            }
        }
        tx.commit().map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        self.entries(range.start_bound().cloned(), range.end_bound().cloned())
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let purged: Option<LogId<NodeId>> =
            read_meta(&self.db, RAFT_META, "purged").map_err(|e| StorageIOError::read_logs(&e))?;
        let last = self
            .last_entry_id()
            .map_err(|e| StorageIOError::read_logs(&e))?
            .or(purged);
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        write_meta(&self.db, RAFT_META, "vote", vote)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        read_meta(&self.db, RAFT_META, "vote").map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        // Only a hint for re-applying at start (the leader tells the commit index anyway), so it
        // rides along with the next durable commit instead of syncing.
        write_meta_with(
            &self.db,
            RAFT_META,
            "committed",
            &committed,
            Durability::None,
        )
        .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        let c: Option<Option<LogId<NodeId>>> =
            read_meta(&self.db, RAFT_META, "committed").map_err(|e| StorageIOError::read(&e))?;
        Ok(c.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Committed without a sync; the sync thread reports `callback` once a sync that started
        // after this commit has finished (see the module docs).
        let res = (|| -> Result<(), std::io::Error> {
            let mut tx = self.db.begin_write().map_err(io_err)?;
            tx.set_durability(Durability::None).map_err(io_err)?;
            {
                let mut t = tx.open_table(LOG).map_err(io_err)?;
                for e in entries {
                    let bytes = to_json(&e)?;
                    t.insert(e.log_id.index, bytes.as_slice()).map_err(io_err)?;
                }
            }
            tx.commit().map_err(io_err)
        })();
        let Some(syncer) = &self.syncer else {
            let res = res.and_then(|()| sync(&self.db));
            return match res {
                Ok(()) => {
                    callback.log_io_completed(Ok(()));
                    Ok(())
                }
                Err(e) => {
                    let err = StorageIOError::write_logs(&e).into();
                    callback.log_io_completed(Err(e));
                    Err(err)
                }
            };
        };
        match res {
            Ok(()) => match syncer.send(callback) {
                Ok(()) => Ok(()),
                Err(std::sync::mpsc::SendError(callback)) => {
                    let e = std::io::Error::other("the raft log sync thread has stopped");
                    let err = StorageIOError::write_logs(&e).into();
                    callback.log_io_completed(Err(e));
                    Err(err)
                }
            },
            Err(e) => {
                let err = StorageIOError::write_logs(&e).into();
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.delete_range(log_id.index, None)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        write_meta(&self.db, RAFT_META, "purged", &log_id)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.delete_range(0, Some(log_id.index))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        // Worth a line: a leader postpones a purge while a replication stream still reads the
        // entries, so openraft's own "trigger_purge_log" says only that one was asked for.
        tracing::info!(upto = log_id.index, "purged the raft log");
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// State machine

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct SmMeta {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
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
    meta: SmMeta,
    published: Arc<Published>,
    /// Reads a snapshot on the calling task rather than on a blocking thread: for an
    /// in-memory disk (the simulation), whose runs must start no thread of their own.
    inline: bool,
}

impl StateMachine {
    /// Loads the applied state from the database.
    pub fn load(db: Arc<Database>) -> Result<(Self, State), std::io::Error> {
        let meta: SmMeta = read_meta(&db, SM_META, "meta")?.unwrap_or_default();
        let mut state = State::default();
        {
            let rtx = db.begin_read().map_err(io_err)?;
            let t = rtx.open_table(OBJECTS).map_err(io_err)?;
            for row in t.iter().map_err(io_err)? {
                let (k, v) = row.map_err(io_err)?;
                let obj: Object = from_json(v.value()).map_err(|source| {
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
            let b = to_json(&meta)?;
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
                        let b = to_json(o)?;
                        t.insert(k.as_str(), b.as_slice()).map_err(io_err)?;
                    }
                    None => {
                        t.remove(k.as_str()).map_err(io_err)?;
                    }
                }
            }
            let mut m = tx.open_table(SM_META).map_err(io_err)?;
            let b = to_json(meta)?;
            m.insert("meta", b.as_slice()).map_err(io_err)?;
        }
        tx.commit().map_err(io_err)
    }

    fn replace_all(
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
                let b = to_json(o)?;
                t.insert(o.key().as_str(), b.as_slice()).map_err(io_err)?;
            }
            let mut m = tx.open_table(SM_META).map_err(io_err)?;
            let b = to_json(meta)?;
            m.insert("meta", b.as_slice()).map_err(io_err)?;
            let mut s = tx.open_table(SNAPSHOT).map_err(io_err)?;
            let b = to_json(snap)?;
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
        let file: SnapshotFile = from_json(&data)
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
        let db = self.db.clone();
        let signature = meta.signature();
        // Tens of megabytes once the state is large: off the runtime's workers, which go on
        // sending heartbeats meanwhile.
        let data = if self.inline {
            snapshot_bytes(&db)
        } else {
            tokio::task::spawn_blocking(move || snapshot_bytes(&db))
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

/// Every stored object as a [`SnapshotFile`], from the rows as they are: each row already is an
/// object's JSON, so they are joined rather than parsed and written again.
fn snapshot_bytes(db: &Database) -> Result<Vec<u8>, std::io::Error> {
    let started = tokio::time::Instant::now();
    let rtx = db.begin_read().map_err(io_err)?;
    let t = rtx.open_table(OBJECTS).map_err(io_err)?;
    let mut out = b"{\"objects\":[".to_vec();
    for (i, row) in t.iter().map_err(io_err)?.enumerate() {
        let (_, v) = row.map_err(io_err)?;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(v.value());
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
    meta: SmMeta,
    inline: bool,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// Makes the rows durable at (or past) the entry the snapshot is of, and records it: the
    /// log is purged only up to there. openraft keeps only the meta of a snapshot it had built
    /// (its state machine worker drops the data), so none is made here; a member that needs
    /// the bytes gets them from [`StateMachine::get_current_snapshot`].
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let (db, sm) = (self.db.clone(), self.meta.clone());
        if self.inline {
            return record_snapshot(&db, &sm);
        }
        // A sync: off the runtime's workers.
        #[allow(clippy::result_large_err)] // openraft's own error type, as the trait returns it
        tokio::task::spawn_blocking(move || record_snapshot(&db, &sm))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &io_err(e)))?
    }
}

#[allow(clippy::result_large_err)] // openraft's own error type, as the trait returns it
fn record_snapshot(db: &Database, sm: &SmMeta) -> Result<Snapshot<TypeConfig>, SErr> {
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
            let b = to_json(&meta)?;
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

// ---------------------------------------------------------------------------------------------
// Recovery

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
    let (sm, mut state) = StateMachine::load(db.clone())?;
    let mut last = sm.meta.last_applied;
    let from = last.map_or(0, |l| l.index + 1);
    for entry in read_entries(&db, Bound::Included(from), Bound::Unbounded)? {
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
            let b = to_json(&l)?;
            m.insert("purged", b.as_slice()).map_err(io_err)?;
            let b = to_json(&Some(l))?;
            m.insert("committed", b.as_slice()).map_err(io_err)?;
        }
    }
    tx.commit().map_err(io_err)?;
    Ok(last.map_or(0, |l| l.index))
}
