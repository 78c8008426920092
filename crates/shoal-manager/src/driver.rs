//! The one loop skeleton every manager loop runs on: follow the store, turn what each write
//! touched into keys, reconcile a batch of due keys from one immutable snapshot with a pure
//! step, propose the result, wait for that write to land, requeue.
//!
//! A loop is a [`Controller`]: which keys a change touches ([`Controller::touched`]), every key
//! (for the periodic resync, and when this manager starts leading), and the pure
//! [`Controller::reconcile`] of a batch of keys. [`run`] owns everything else:
//!
//! - **Keyed and deduplicated**: a write wakes only the keys it touched, found by diffing the
//!   snapshot the loop last looked at with the newest one (`State::delta_since`, which costs
//!   what changed); each key is queued at most once ([`WorkQueue`]).
//! - **One in flight per key, never twice on one observation**: a batch is reconciled, its write
//!   proposed, and the loop waits until that write is in the state it reads before it takes the
//!   next batch, so a key is recomputed only on a snapshot that holds its own last write.
//! - **Requeue as a value**: a reconcile returns when it wants to look at a key again (a restart
//!   delay, an update's monitor window); nothing sleeps inside a reconciler.
//! - **Resync**: every key is reconciled once a period (and when this manager starts leading),
//!   the safety net under the keyed wake-ups.
//! - **Leader only**: loops that write run only on the Raft leader; a follower just follows the
//!   state and starts from a resync when it becomes leader.
//!
//! Deterministic under the simulator: keys are ordered, time comes from the [`Clock`], and every
//! wait is a tokio sleep or a store notification.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use shoal_store::state::Delta;
use shoal_store::{Op, Proposal, State, Store};
use shoal_types::{Clock, Timestamp};
use tokio::sync::watch;

use crate::workqueue::{Resync, WorkQueue};

/// How often a follower checks whether it leads now (a Raft election need not change the state).
const FOLLOWER_POLL: Duration = Duration::from_millis(500);
/// How long a batch whose write applied nothing waits before it is tried again: the same
/// observation would give the same answer, so wait for the world to change rather than spin.
const RETRY: Duration = Duration::from_millis(500);
/// How long to wait for an acknowledged write to show up in this member's state.
const LANDING: Duration = Duration::from_secs(5);
/// The default period of the full resync.
pub const RESYNC: Duration = Duration::from_secs(45);
/// The default bound on keys per batch, so a resync of a large cluster does not hold a fresh
/// write back for long.
pub const BATCH: usize = 1024;

/// An effect on the Raft group that is not a write of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Take this Raft member out of the group.
    RemoveMember(u64),
    /// Compact the Raft log with these settings.
    Compact { interval: u64, keep: u64 },
}

/// What one reconcile of a batch of keys decided.
#[derive(Debug, Clone)]
pub struct Outcome<K> {
    /// The write, proposed as one entry whose ops apply each on its own.
    pub ops: Vec<Op>,
    /// Keys to look at again at a time, whether or not anything changes before.
    pub requeue: Vec<(K, Timestamp)>,
    pub actions: Vec<Action>,
}

impl<K> Default for Outcome<K> {
    fn default() -> Self {
        Outcome {
            ops: Vec::new(),
            requeue: Vec::new(),
            actions: Vec::new(),
        }
    }
}

/// One manager loop. Every method but [`Controller::leadership`] is called only while the loop
/// is active (this manager leads, or the loop is not leader-only).
pub trait Controller: Send + 'static {
    type Key: Ord + Clone + Debug + Send + Sync + 'static;

    /// For logs.
    const NAME: &'static str;

    /// Only the Raft leader runs it. True for every loop that writes the state.
    fn leader_only(&self) -> bool {
        true
    }

    fn resync_every(&self) -> Duration {
        RESYNC
    }

    fn batch(&self) -> usize {
        BATCH
    }

    /// This manager started (`true`) or stopped leading. Called before anything else that
    /// happens under the new role.
    fn leadership(&mut self, _leading: bool, _now: Timestamp) {}

    /// The keys that the change from `old` to `new` (`delta`) may need acted on.
    fn touched(&mut self, old: &State, new: &State, delta: &Delta) -> Vec<Self::Key>;

    /// Every key there is in `view`.
    fn every_key(&mut self, view: &State) -> Vec<Self::Key>;

    /// What `keys` need, computed from `view` alone. Keys it does not mention are done until
    /// something touches them again.
    fn reconcile(&mut self, view: &State, now: Timestamp, keys: &[Self::Key])
    -> Outcome<Self::Key>;
}

/// Runs `c` until `shutdown` turns true.
pub async fn run<C: Controller>(
    mut c: C,
    store: Store,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut states = store.subscribe();
    let mut seen = states.borrow_and_update().clone();
    let mut queue: WorkQueue<C::Key> = WorkQueue::new();
    let mut resync = Resync::every(c.resync_every());
    let mut leading = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = clock.now();
        if store.is_leader() != leading {
            leading = !leading;
            c.leadership(leading, now);
            queue.clear();
            resync.reset();
        }
        let view = states.borrow_and_update().clone();
        if !leading && c.leader_only() {
            seen = view;
            let poll = Some(now.add(FOLLOWER_POLL));
            if !wait(&mut states, &mut shutdown, &*clock, poll).await {
                return;
            }
            continue;
        }
        if resync.due(now) {
            for k in c.every_key(&view) {
                queue.wake(k);
            }
        } else if !Arc::ptr_eq(&view, &seen) {
            let delta = view.delta_since(&seen);
            if !delta.is_empty() {
                for k in c.touched(&seen, &view, &delta) {
                    queue.wake(k);
                }
            }
        }
        seen = view.clone();

        let batch = queue.take(now, c.batch());
        if batch.is_empty() {
            let until = match (queue.next_due(), resync.next()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if !wait(&mut states, &mut shutdown, &*clock, until).await {
                return;
            }
            continue;
        }
        let out = c.reconcile(&view, now, &batch);
        for (k, at) in out.requeue {
            queue.wake_at(k, at);
        }
        for a in out.actions {
            act(&store, a, C::NAME).await;
        }
        if !out.ops.is_empty() {
            match propose(&store, now, out.ops, C::NAME).await {
                Some(version) => {
                    if !landed(&mut states, &mut shutdown, version).await {
                        return;
                    }
                }
                None => {
                    let retry = clock.now().add(RETRY);
                    for k in &batch {
                        queue.wake_at(k.clone(), retry);
                    }
                }
            }
        }
        queue.done(&batch);
    }
}

/// Waits for the next store change, `until`, or shutdown. False on shutdown.
async fn wait(
    states: &mut watch::Receiver<Arc<State>>,
    shutdown: &mut watch::Receiver<bool>,
    clock: &dyn Clock,
    until: Option<Timestamp>,
) -> bool {
    let sleep = match until {
        Some(t) => t.since(clock.now()),
        None => Duration::from_secs(3600),
    };
    tokio::select! {
        r = states.changed() => r.is_ok(),
        _ = tokio::time::sleep(sleep) => true,
        _ = shutdown.changed() => false,
    }
}

/// Waits until the state this loop reads holds `version` (at once on the leader, which answers
/// a proposal after applying it; a write forwarded to another leader shows up here once this
/// member applies it). False on shutdown. Gives up after a while so a member cut off from the
/// group goes back to following rather than hanging.
async fn landed(
    states: &mut watch::Receiver<Arc<State>>,
    shutdown: &mut watch::Receiver<bool>,
    version: u64,
) -> bool {
    tokio::select! {
        r = states.wait_for(|s| s.version >= version) => r.is_ok(),
        _ = tokio::time::sleep(LANDING) => true,
        _ = shutdown.changed() => false,
    }
}

/// Proposes `ops`; the version they landed at when at least one applied.
async fn propose(store: &Store, now: Timestamp, ops: Vec<Op>, what: &str) -> Option<u64> {
    let n = ops.len();
    match store.propose(Proposal::each(now, ops)).await {
        Ok(applied) => {
            let failed = applied.results.iter().filter(|r| r.is_err()).count();
            if failed > 0 {
                tracing::debug!(what, failed, of = n, error = ?applied.first_error(), "some changes did not apply");
            }
            (failed < n).then_some(applied.version)
        }
        Err(e) => {
            tracing::warn!(what, error = %shoal_types::error::Chain(&e), "could not write changes");
            None
        }
    }
}

async fn act(store: &Store, a: Action, what: &str) {
    match a {
        Action::RemoveMember(raft_id) => {
            tracing::info!(
                raft.id = raft_id,
                "removing a raft member whose node is no longer a manager"
            );
            if let Err(e) = store.remove_member(raft_id).await {
                tracing::warn!(what, raft.id = raft_id, error = %shoal_types::error::Chain(&e), "could not remove raft member");
            }
        }
        Action::Compact { interval, keep } => {
            if let Err(e) = store.compact(interval, keep).await {
                tracing::warn!(what, error = %shoal_types::error::Chain(&e), "raft log compaction failed");
            }
        }
    }
}
