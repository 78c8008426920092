//! The cluster's state: versioned objects in a deterministic state machine ([`state`]),
//! replicated by openraft and stored in redb ([`storage`]), every value encrypted at rest with the
//! node's data key ([`seal`]).
//!
//! All writes go through [`Store::propose`]; reads take an immutable snapshot with
//! [`Store::view`] and never block writes. Watchers follow [`Store::subscribe`] (the newest state)
//! or [`Store::changes`] (what each applied batch touched).

pub mod network;
pub mod ops;
pub mod seal;
pub mod state;
pub mod storage;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shoal_types::error::Chain;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use tokio::sync::{broadcast, watch};

pub use ops::{Applied, Event, Kind, Op, OpError, Proposal};
pub use seal::Sealer;
pub use state::State;
pub use storage::Changes;

openraft::declare_raft_types!(
    /// shoal's Raft types: a log entry carries one [`Proposal`].
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type ShoalRaft = Raft<TypeConfig>;

/// Who leads, as this member sees it. openraft keeps a leader that committed a membership
/// without itself reporting itself as `current_leader` (its vote stays committed) even after it
/// stepped down to learner; no one tells it of the next leader, since it is no longer a member.
/// Taken at its word it would go on refusing writes as a leader with no quorum and never forward
/// them, so a leader is only one whose server state says so.
fn leader_in(m: &openraft::RaftMetrics<u64, BasicNode>, me: u64) -> Option<u64> {
    match m.current_leader {
        Some(l) if l == me && m.state != openraft::ServerState::Leader => None,
        other => other,
    }
}

fn membership_error(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => match f.leader_id {
            Some(leader) => ProposeError::NotLeader { leader },
            None => ProposeError::NoLeader,
        },
        RaftError::Fatal(openraft::error::Fatal::Stopped) => ProposeError::ShuttingDown,
        other => ProposeError::Raft(shoal_types::error::Cause::new(other)),
    }
}

/// A Raft error of any kind, kept whole as a cause.
type RaftCause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the state store at {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Raft itself failed while the store was `doing` something (starting, bootstrapping,
    /// snapshotting, purging).
    #[error("{doing}")]
    Raft {
        doing: &'static str,
        #[source]
        source: RaftCause,
    },
}

impl StoreError {
    fn raft<E: std::error::Error + Send + Sync + 'static>(
        doing: &'static str,
    ) -> impl FnOnce(E) -> StoreError {
        move |e| StoreError::Raft {
            doing,
            source: Box::new(e),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// Another manager leads; writes must go there.
    #[error("this manager is not the leader; the leader is raft member {leader}")]
    NotLeader { leader: u64 },
    #[error(
        "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online."
    )]
    NoLeader,
    #[error("the state store is shutting down")]
    ShuttingDown,
    /// The write reached no leader that could commit it in time.
    #[error(
        "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online. ({0})"
    )]
    NoQuorum(String),
    /// Raft refused or failed the write. The cause is shared so the error stays `Clone`; a
    /// write forwarded to the leader brings the leader's cause back as text
    /// ([`shoal_types::error::Remote`]).
    #[error("raft failed the write")]
    Raft(#[source] shoal_types::error::Cause),
}

/// Timing of the Raft group.
///
/// openraft 0.9 uses `heartbeat` for three things: how often the leader sends a heartbeat, the
/// timeout of every AppendEntries RPC (replication and heartbeats alike: the "timeout after
/// 50ms when AppendEntries" a loaded leader logged was the old 50 ms heartbeat), and, times 3/2,
/// how often a follower checks whether its election timeout has passed. A follower that has
/// had a leader starts an election only after `election_max` (the leader's lease) plus a random
/// `election_min..election_max` without hearing from it. So a dead leader is replaced after
/// about `election_max + [election_min, election_max] + 1.5 * heartbeat` (0.8 to 1.15 s with the
/// defaults, then one round trip to vote and one to commit), while a live leader on a loaded
/// machine must miss eight heartbeats in a row to be deposed, and an AppendEntries that waits
/// for a loaded follower's disk sync has 100 ms, not 50, before it is retried.
#[derive(Debug, Clone)]
pub struct RaftTiming {
    pub heartbeat: Duration,
    pub election_min: Duration,
    pub election_max: Duration,
    /// Build a snapshot every so many entries; 0 leaves snapshots to [`Store::compact`], which
    /// follows the cluster's settings as they change.
    pub snapshot_every: u64,
    /// Log entries kept after a snapshot, so a slightly lagging follower catches up from the log.
    pub keep_after_snapshot: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(300),
            election_max: Duration::from_millis(500),
            snapshot_every: 10_000,
            keep_after_snapshot: 1000,
        }
    }
}

/// Opens the database, waiting a little if it is still held: redb releases its file lock shortly
/// after the last handle drops, so a store reopened in the same process (leave, then init) can
/// briefly find it locked. Another process holding it is reported after the wait.
async fn open_db_waiting(path: &Path) -> Result<Arc<redb::Database>, std::io::Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match storage::open_db(path) {
            Err(e) if storage::already_open(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) if storage::already_open(&e) => {
                return Err(std::io::Error::new(e.kind(), InUse(e)));
            }
            other => return other,
        }
    }
}

/// The database is held by someone else after the wait: most likely another daemon.
#[derive(Debug, thiserror::Error)]
#[error("is another shoal daemon using this data directory?")]
struct InUse(#[source] std::io::Error);

#[derive(Clone)]
pub struct Store {
    raft: ShoalRaft,
    raft_id: u64,
    published: Arc<storage::Published>,
    db: std::sync::Weak<redb::Database>,
    network: network::Network,
    timing: RaftTiming,
}

/// How long a write may wait for a leader to commit it before failing with "no leader".
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(8);

impl Store {
    /// Opens the store in `dir` (creating it) and starts this manager's Raft member. Every
    /// value is sealed with `sealer` (the node's data key) before it is written.
    pub async fn open(
        dir: &Path,
        raft_id: u64,
        timing: RaftTiming,
        network: network::Network,
        sealer: Sealer,
    ) -> Result<Store, StoreError> {
        let path = dir.join("state.redb");
        let open_err = |source: std::io::Error| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(open_err)?;
        let db = open_db_waiting(&path).await.map_err(open_err)?;
        let log = storage::LogStore::new(db.clone(), sealer.clone()).map_err(open_err)?;
        Self::start(
            db,
            sealer,
            log,
            false,
            raft_id,
            timing,
            network,
            &path.display().to_string(),
        )
        .await
    }

    /// Opens the store on an in-memory disk (see [`storage::MemoryDisk`]) and starts this
    /// manager's Raft member: for simulations, where a restart reopens the same disk.
    pub async fn open_in_memory(
        disk: &storage::MemoryDisk,
        raft_id: u64,
        timing: RaftTiming,
        network: network::Network,
        sealer: Sealer,
    ) -> Result<Store, StoreError> {
        let db = storage::open_memory_db(disk).map_err(|source| StoreError::Open {
            path: "(memory)".into(),
            source,
        })?;
        let log = storage::LogStore::new_inline(db.clone(), sealer.clone());
        Self::start(db, sealer, log, true, raft_id, timing, network, "(memory)").await
    }

    #[allow(clippy::too_many_arguments)] // one private constructor both openers share
    async fn start(
        db: Arc<redb::Database>,
        sealer: Sealer,
        log: storage::LogStore,
        inline: bool,
        raft_id: u64,
        timing: RaftTiming,
        network: network::Network,
        path: &str,
    ) -> Result<Store, StoreError> {
        let (mut sm, _) =
            storage::StateMachine::load(db.clone(), sealer).map_err(|source| StoreError::Open {
                path: path.to_string(),
                source,
            })?;
        if inline {
            sm = sm.inline();
        }
        let published = sm.published();
        let config = Config {
            cluster_name: "shoal".into(),
            heartbeat_interval: timing.heartbeat.as_millis() as u64,
            election_timeout_min: timing.election_min.as_millis() as u64,
            election_timeout_max: timing.election_max.as_millis() as u64,
            snapshot_policy: if timing.snapshot_every == 0 {
                SnapshotPolicy::Never
            } else {
                SnapshotPolicy::LogsSinceLast(timing.snapshot_every)
            },
            max_in_snapshot_log_to_keep: if timing.snapshot_every == 0 {
                u64::MAX
            } else {
                timing.keep_after_snapshot
            },
            ..Default::default()
        }
        .validate()
        .map_err(StoreError::raft("checking the raft settings"))?;
        let weak = Arc::downgrade(&db);
        let raft = Raft::new(raft_id, Arc::new(config), network.clone(), log, sm)
            .await
            .map_err(StoreError::raft("starting the raft member"))?;
        // Applied state is not synced on its own (see `storage`): after a crash this member may
        // restart behind what it had applied, until its log is applied again. A sole voter
        // commits its whole log as soon as it has elected itself, so let it catch up before
        // anyone reads (a single-node swarm restarted after `kill -9` shows what it showed).
        let m = raft.metrics().borrow().clone();
        let sole = m.membership_config.membership().voter_ids().eq([raft_id]);
        let applied = m.last_applied.map_or(0, |l| l.index);
        if sole && m.last_log_index.unwrap_or(0) > applied {
            let wait = raft
                .wait(Some(timing.election_max * 4))
                .applied_index_at_least(m.last_log_index, "replay of the log at start")
                .await;
            if let Err(e) = wait {
                tracing::warn!(error = %Chain(&e), "the log was not applied again at start");
            }
        }
        Ok(Store {
            raft,
            raft_id,
            published,
            db: weak,
            network,
            timing,
        })
    }

    /// Makes this member the sole voter of a new Raft group (swarm init). A no-op if the group
    /// already exists.
    pub async fn bootstrap(&self, addr: &str) -> Result<(), StoreError> {
        if self
            .raft
            .is_initialized()
            .await
            .map_err(StoreError::raft("reading whether the raft group exists"))?
        {
            return Ok(());
        }
        let mut members = BTreeMap::new();
        members.insert(
            self.raft_id,
            BasicNode {
                addr: addr.to_string(),
            },
        );
        self.raft
            .initialize(members)
            .await
            .map_err(StoreError::raft("creating the raft group"))
    }

    pub fn raft_id(&self) -> u64 {
        self.raft_id
    }

    pub fn raft(&self) -> &ShoalRaft {
        &self.raft
    }

    /// Replicates `p` and returns how each op applied. On a follower the proposal is forwarded to
    /// the leader. A proposal whose ops failed is still committed (as a no-op), so failure of an
    /// op is in `Applied`, not an `Err`. Fails fast when no leader can commit.
    pub async fn propose(&self, p: Proposal) -> Result<Applied, ProposeError> {
        let mut attempt = 0;
        loop {
            match self.propose_local(p.clone()).await {
                Err(ProposeError::NotLeader { leader }) => {
                    let addr = self.member_addr(leader);
                    let (Some(addr), Some(t)) = (addr, self.network.transport()) else {
                        return Err(ProposeError::NoLeader);
                    };
                    match t.propose(&addr, p.clone()).await {
                        // The leader moved on while the proposal travelled: ask again.
                        Err(ProposeError::NotLeader { .. }) if attempt < 3 => {
                            attempt += 1;
                            tokio::time::sleep(self.timing.heartbeat).await;
                        }
                        other => return other,
                    }
                }
                other => return other,
            }
        }
    }

    /// Replicates `p` if this member leads; never forwards (the receiving side of forwarding).
    pub async fn propose_local(&self, p: Proposal) -> Result<Applied, ProposeError> {
        if self.leader() == Some(self.raft_id) && !self.has_quorum() {
            self.wait_first_quorum_ack().await?;
        }
        let write = self.raft.client_write(p);
        match tokio::time::timeout(PROPOSE_TIMEOUT, write).await {
            Err(_) => Err(ProposeError::NoQuorum(format!(
                "no commit within {}s",
                PROPOSE_TIMEOUT.as_secs()
            ))),
            Ok(Ok(resp)) => Ok(resp.data),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => match f.leader_id
            {
                Some(leader) if leader != self.raft_id => Err(ProposeError::NotLeader { leader }),
                _ => Err(ProposeError::NoLeader),
            },
            Ok(Err(RaftError::APIError(e))) => {
                Err(ProposeError::Raft(shoal_types::error::Cause::new(e)))
            }
            Ok(Err(RaftError::Fatal(openraft::error::Fatal::Stopped))) => {
                Err(ProposeError::ShuttingDown)
            }
            Ok(Err(RaftError::Fatal(e))) => {
                Err(ProposeError::Raft(shoal_types::error::Cause::new(e)))
            }
        }
    }

    /// A leader that has not heard from a majority may be one elected a moment ago, whose first
    /// heartbeat round is still out: its writes wait for that round (a failover must not turn
    /// into failed writes), for at most two election timeouts: by then the followers have either
    /// answered or elected someone else, even on a loaded machine. A leader that did hear from a majority, but not
    /// recently, is cut off: its writes fail at once, as the README promises.
    async fn wait_first_quorum_ack(&self) -> Result<(), ProposeError> {
        let mut metrics = self.raft.metrics();
        let fresh = {
            let m = metrics.borrow();
            leader_in(&m, self.raft_id) == Some(self.raft_id) && m.millis_since_quorum_ack.is_none()
        };
        if !fresh {
            return Err(ProposeError::NoQuorum(
                "this manager leads but has not heard from a majority".into(),
            ));
        }
        let deadline = tokio::time::Instant::now() + self.timing.election_max * 2;
        loop {
            if self.has_quorum() {
                return Ok(());
            }
            let m = self.raft.metrics().borrow().clone();
            let leader = leader_in(&m, self.raft_id);
            if leader != Some(self.raft_id) {
                // Deposed while waiting: the caller's forwarding (or its client) retries.
                return match leader {
                    Some(leader) => Err(ProposeError::NotLeader { leader }),
                    None => Err(ProposeError::NoLeader),
                };
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ProposeError::NoQuorum(format!(
                    "this manager was elected leader but no majority answered its first heartbeat within {} ms",
                    (self.timing.election_max * 2).as_millis()
                )));
            }
            // Metrics change on every acknowledgement; the short cap re-reads them in case the
            // first ack arrives in a report that is not followed by another one.
            let wait = (deadline - now).min(self.timing.heartbeat);
            if let Ok(Err(_)) = tokio::time::timeout(wait, metrics.changed()).await {
                return Err(ProposeError::ShuttingDown);
            }
        }
    }

    /// Whether a leader has heard from a majority recently (always true on followers: they do
    /// not know, and forward).
    pub fn has_quorum(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        if leader_in(&m, self.raft_id) != Some(self.raft_id) {
            return true;
        }
        let voters = m.membership_config.membership().voter_ids().count();
        if voters <= 1 {
            return true;
        }
        let limit = self.timing.election_max.as_millis() as u64 * 2;
        m.millis_since_quorum_ack.is_some_and(|ms| ms <= limit)
    }

    /// Whether this member leads, has heard from a majority recently, and has applied an entry
    /// of its own term, so its state holds every committed write. A bare [`Store::is_leader`]
    /// can be a member restarted with its old leader vote (it leads, on an old state, until it
    /// hears of the newer term) or a new leader still applying its predecessor's entries:
    /// whoever serves what the state says (agents' assignments) must ask this instead.
    pub fn leads_with_current_state(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        leader_in(&m, self.raft_id) == Some(self.raft_id)
            && self.has_quorum()
            && m.last_applied
                .is_some_and(|l| l.leader_id.term == m.current_term)
    }

    /// Waits until [`Store::leads_with_current_state`] holds (a single member that just
    /// started: elected, and every entry of its log applied), or the timeout passes; says
    /// which.
    pub async fn wait_current_state(&self, timeout: Duration) -> bool {
        let mut m = self.raft.metrics();
        let wait = async {
            while !self.leads_with_current_state() {
                if m.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// The address of a member, from the current membership.
    pub fn member_addr(&self, raft_id: u64) -> Option<String> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&raft_id)
            .map(|n| n.addr.clone())
    }

    /// Voters and learners with their addresses.
    pub fn members(&self) -> BTreeMap<u64, (String, bool)> {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, n)| (*id, (n.addr.clone(), voters.contains(id))))
            .collect()
    }

    /// Adds a member as a voter: first as a learner, waiting until it has caught up, then
    /// promoted. Must run on the leader.
    pub async fn add_voter(&self, raft_id: u64, addr: &str) -> Result<(), ProposeError> {
        let node = BasicNode {
            addr: addr.to_string(),
        };
        self.raft
            .add_learner(raft_id, node, true)
            .await
            .map_err(membership_error)?;
        let ids: std::collections::BTreeSet<u64> = [raft_id].into();
        self.raft
            .change_membership(openraft::ChangeMembers::AddVoterIds(ids), false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// Removes a member from the voters (and the group). Must run on the leader.
    pub async fn remove_member(&self, raft_id: u64) -> Result<(), ProposeError> {
        let members = self.members();
        let Some((_, voter)) = members.get(&raft_id) else {
            return Ok(());
        };
        let ids: std::collections::BTreeSet<u64> = [raft_id].into();
        let change = if *voter {
            openraft::ChangeMembers::RemoveVoters(ids)
        } else {
            openraft::ChangeMembers::RemoveNodes(ids)
        };
        self.raft
            .change_membership(change, false)
            .await
            .map_err(membership_error)?;
        Ok(())
    }

    /// The newest applied state, without waiting.
    pub fn view(&self) -> Arc<State> {
        self.published.state.borrow().clone()
    }

    /// Wakes on every applied batch, with the newest state.
    pub fn subscribe(&self) -> watch::Receiver<Arc<State>> {
        self.published.state.subscribe()
    }

    /// What each applied batch changed. A receiver that lags gets `Lagged` and should re-read
    /// `view()`.
    pub fn changes(&self) -> broadcast::Receiver<Arc<Changes>> {
        self.published.changes.subscribe()
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.raft_id)
    }

    pub fn leader(&self) -> Option<u64> {
        leader_in(&self.raft.metrics().borrow(), self.raft_id)
    }

    /// Waits until some member leads (this one, for a single manager), or the timeout passes.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        let mut m = self.raft.metrics();
        let wait = async {
            loop {
                if let Some(l) = leader_in(&m.borrow(), self.raft_id) {
                    return l;
                }
                if m.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }

    /// Snapshots once `interval` entries were applied since the last snapshot, and drops log
    /// entries older than the snapshot beyond the last `keep` (slow followers catch up from
    /// those; farther behind, from the snapshot). Called periodically with the cluster's current
    /// settings, so a change applies without a restart.
    pub async fn compact(&self, interval: u64, keep: u64) -> Result<(), StoreError> {
        let m = self.raft.metrics().borrow().clone();
        let applied = m.last_applied.map_or(0, |l| l.index);
        let snapshot = m.snapshot.map_or(0, |l| l.index);
        let purged = m.purged.map_or(0, |l| l.index);
        // Snapshot and purge in the same pass: under a steady stream of writes a snapshot is
        // due on every call, and the log must still shrink.
        if interval > 0 && applied.saturating_sub(snapshot) >= interval {
            self.trigger_snapshot().await?;
        }
        let upto = snapshot.saturating_sub(keep);
        if upto > purged {
            self.raft
                .trigger()
                .purge_log(upto)
                .await
                .map_err(StoreError::raft("purging the raft log"))?;
        }
        Ok(())
    }

    /// Asks for a snapshot now (tests and backups); the log up to it may then be purged.
    pub async fn trigger_snapshot(&self) -> Result<(), StoreError> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(StoreError::raft("taking a raft snapshot"))
    }

    /// Stops the Raft member and waits until the database file is released, so the same
    /// directory can be opened again in this process (swarm leave, then init).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %Chain(&e), "raft did not shut down cleanly");
        }
        // Applied state is committed without a sync (it is replayed from the log after a crash);
        // a clean stop makes it durable, so the next start need not replay.
        if let Some(db) = self.db.upgrade()
            && let Err(e) = storage::sync(&db)
        {
            tracing::warn!(error = %Chain(&e), "could not sync the state store at shutdown");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.db.strong_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if self.db.strong_count() > 0 {
            tracing::warn!(
                holders = self.db.strong_count(),
                "raft storage still held 10 s after shutdown"
            );
        }
    }
}
