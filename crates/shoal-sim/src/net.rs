//! The simulated network: which managers are up, which pairs of nodes cannot talk (partitions),
//! and how slow each node's links are. Raft traffic between managers ([`SimRaft`]) and agent
//! traffic to the dispatchers ([`SimDispatcher`]) both go through it, so one fault model covers
//! both.
//!
//! A message is checked twice: when it leaves (is the peer up and reachable?) and, after the
//! link's delay, when its answer comes back. A partition that starts while a call is in flight
//! therefore loses the answer, as a real network would: the callee may have acted, the caller
//! cannot know.
//!
//! Concurrency: one mutex around the topology, never held across an await; every change bumps a
//! watch channel so long-lived streams (agent sessions) notice a partition at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use shoal_agent::{DispatchError, DispatcherClient, Session};
use shoal_manager::Dispatcher;
use shoal_store::network::{RaftTransport, TransportError};
use shoal_store::{Applied, Proposal, ProposeError, Store, TypeConfig};
use shoal_types::dispatch::{SessionMessage, SessionRequest, TaskStatusReport};
use shoal_types::{Id, NodeDescription};
use tokio::sync::watch;

/// The Raft address of the manager on node `idx`.
pub(crate) fn manager_addr(idx: usize) -> String {
    format!("m{idx}")
}

fn parse_addr(addr: &str) -> Option<usize> {
    addr.strip_prefix('m')?.parse().ok()
}

/// A running manager as the network reaches it.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub store: Store,
    /// Absent while the manager's Raft member runs but its loops have not started (bootstrap).
    pub dispatcher: Option<Arc<Dispatcher>>,
    /// Bumped on every restart, so a session opened before a crash never survives it.
    pub incarnation: u64,
}

#[derive(Default)]
struct Topology {
    managers: BTreeMap<usize, Endpoint>,
    /// Nodes whose process is down: nothing reaches them, they reach nothing.
    down: BTreeSet<usize>,
    /// Unordered pairs of nodes that cannot talk.
    cut: BTreeSet<(usize, usize)>,
    /// Extra one-way delay on every message to or from the node.
    slow: BTreeMap<usize, Duration>,
    incarnations: u64,
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Topology {
    fn reachable(&self, a: usize, b: usize) -> bool {
        !self.down.contains(&a) && !self.down.contains(&b) && !self.cut.contains(&pair(a, b))
    }

    fn delay(&self, a: usize, b: usize) -> Duration {
        let d = |n| self.slow.get(&n).copied().unwrap_or_default();
        d(a) + d(b)
    }
}

pub(crate) struct Net {
    topo: Mutex<Topology>,
    changed: watch::Sender<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Unreachable;

impl Net {
    pub fn new() -> Arc<Net> {
        Arc::new(Net {
            topo: Mutex::new(Topology::default()),
            changed: watch::channel(0).0,
        })
    }

    fn topo(&self) -> MutexGuard<'_, Topology> {
        // Only plain maps live behind this lock; a panic elsewhere leaves them consistent.
        self.topo.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Makes a manager reachable at its address (after start or restart).
    pub fn register(&self, idx: usize, store: Store, dispatcher: Option<Arc<Dispatcher>>) {
        let mut t = self.topo();
        t.incarnations += 1;
        let incarnation = t.incarnations;
        t.managers.insert(
            idx,
            Endpoint {
                store,
                dispatcher,
                incarnation,
            },
        );
        drop(t);
        self.bump();
    }

    pub fn unregister(&self, idx: usize) {
        self.topo().managers.remove(&idx);
        self.bump();
    }

    pub fn set_down(&self, idx: usize, down: bool) {
        let mut t = self.topo();
        if down {
            t.down.insert(idx);
        } else {
            t.down.remove(&idx);
        }
        drop(t);
        self.bump();
    }

    pub fn cut(&self, a: usize, b: usize) {
        if a != b {
            self.topo().cut.insert(pair(a, b));
            self.bump();
        }
    }

    pub fn uncut(&self, a: usize, b: usize) {
        self.topo().cut.remove(&pair(a, b));
        self.bump();
    }

    pub fn set_slow(&self, idx: usize, delay: Duration) {
        if delay.is_zero() {
            self.topo().slow.remove(&idx);
        } else {
            self.topo().slow.insert(idx, delay);
        }
        self.bump();
    }

    /// Removes every partition and every slow link (nodes that are down stay down).
    pub fn heal(&self) {
        let mut t = self.topo();
        t.cut.clear();
        t.slow.clear();
        drop(t);
        self.bump();
    }

    pub fn reachable(&self, a: usize, b: usize) -> bool {
        self.topo().reachable(a, b)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub fn endpoint(&self, idx: usize) -> Option<Endpoint> {
        self.topo().managers.get(&idx).cloned()
    }

    /// Sends from `from` to the manager on `to`: waits the link's delay, then hands back the
    /// manager if it is up and reachable.
    pub async fn send(&self, from: usize, to: usize) -> Result<Endpoint, Unreachable> {
        let delay = self.topo().delay(from, to);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let t = self.topo();
        if !t.reachable(from, to) {
            return Err(Unreachable);
        }
        t.managers.get(&to).cloned().ok_or(Unreachable)
    }

    /// The answer's way back: the same delay, and lost if the link broke meanwhile.
    pub async fn reply(&self, from: usize, to: usize) -> Result<(), Unreachable> {
        let delay = self.topo().delay(from, to);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.topo().reachable(from, to) {
            Ok(())
        } else {
            Err(Unreachable)
        }
    }

    /// Whether a session opened from `node` to manager `mgr` (incarnation `inc`) still stands.
    fn session_holds(&self, node: usize, mgr: usize, inc: u64) -> bool {
        let t = self.topo();
        t.reachable(node, mgr) && t.managers.get(&mgr).is_some_and(|e| e.incarnation == inc)
    }
}

/// One manager's way to its peers.
pub(crate) struct SimRaft {
    pub net: Arc<Net>,
    pub from: usize,
}

fn unreachable(addr: &str) -> TransportError {
    TransportError::Unreachable {
        addr: addr.into(),
        why: "simulated partition or crash".into(),
    }
}

fn remote(addr: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Remote {
        addr: addr.into(),
        why: e.to_string(),
    }
}

impl SimRaft {
    async fn peer(&self, addr: &str) -> Result<(usize, Store), TransportError> {
        let to = parse_addr(addr).ok_or_else(|| unreachable(addr))?;
        let ep = self
            .net
            .send(self.from, to)
            .await
            .map_err(|_| unreachable(addr))?;
        Ok((to, ep.store))
    }

    async fn back<T>(&self, to: usize, addr: &str, r: T) -> Result<T, TransportError> {
        self.net
            .reply(self.from, to)
            .await
            .map_err(|_| unreachable(addr))?;
        Ok(r)
    }
}

#[async_trait]
impl RaftTransport for SimRaft {
    async fn append_entries(
        &self,
        addr: &str,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<u64>, TransportError> {
        let (to, store) = self.peer(addr).await?;
        let r = store
            .raft()
            .append_entries(req)
            .await
            .map_err(|e| remote(addr, e))?;
        self.back(to, addr, r).await
    }

    async fn vote(
        &self,
        addr: &str,
        req: VoteRequest<u64>,
    ) -> Result<VoteResponse<u64>, TransportError> {
        let (to, store) = self.peer(addr).await?;
        let r = store.raft().vote(req).await.map_err(|e| remote(addr, e))?;
        self.back(to, addr, r).await
    }

    async fn install_snapshot(
        &self,
        addr: &str,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<u64>, TransportError> {
        let (to, store) = self.peer(addr).await?;
        let r = store
            .raft()
            .install_snapshot(req)
            .await
            .map_err(|e| remote(addr, e))?;
        self.back(to, addr, r).await
    }

    async fn propose(&self, addr: &str, p: Proposal) -> Result<Applied, ProposeError> {
        let (to, store) = self.peer(addr).await.map_err(|_| ProposeError::NoLeader)?;
        let r = store.propose_local(p).await;
        // A lost answer is an indeterminate write: the caller must not count it as done.
        self.net
            .reply(self.from, to)
            .await
            .map_err(|_| ProposeError::NoQuorum("the leader's answer was lost".into()))?;
        r
    }
}

/// One node's agent's way to the dispatchers: it looks for the leader (following "not the
/// leader" hints as the real client follows 421 answers), keeps its session there, and sends
/// heartbeats and reports to the manager that holds its session.
pub(crate) struct SimDispatcher {
    pub net: Arc<Net>,
    pub node: usize,
    pub node_id: Id,
    pub managers: Vec<usize>,
    pub current: Mutex<Option<usize>>,
    /// The manager whose session stream is open now, for the convergence check.
    pub live: Arc<Mutex<Live>>,
}

/// Where an agent's session stream is open, and a counter telling sessions apart.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub at: Option<usize>,
    generation: u64,
}

fn unavailable(why: impl std::fmt::Display) -> DispatchError {
    DispatchError::Unavailable(why.to_string())
}

impl SimDispatcher {
    fn current(&self) -> Option<usize> {
        *self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_current(&self, m: Option<usize>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = m;
    }

    async fn dispatcher_at(&self, mgr: usize) -> Result<Arc<Dispatcher>, DispatchError> {
        let ep = self
            .net
            .send(self.node, mgr)
            .await
            .map_err(|_| unavailable(format!("manager m{mgr} unreachable")))?;
        ep.dispatcher
            .ok_or_else(|| unavailable(format!("manager m{mgr} is starting")))
    }

    async fn open_at(
        &self,
        mgr: usize,
        description: &NodeDescription,
    ) -> Result<Result<Session, Option<usize>>, DispatchError> {
        let ep = self
            .net
            .send(self.node, mgr)
            .await
            .map_err(|_| unavailable(format!("manager m{mgr} unreachable")))?;
        let Some(dispatcher) = ep.dispatcher.clone() else {
            return Err(unavailable(format!("manager m{mgr} is starting")));
        };
        if !ep.store.is_leader() {
            // The 421 answer: the leader's member ID is raft id - 1 in the simulation.
            let hint = ep
                .store
                .leader()
                .and_then(|l| usize::try_from(l).ok())
                .and_then(|l| l.checked_sub(1));
            return Ok(Err(hint));
        }
        let addr = format!("10.0.0.{}", self.node);
        let stream = dispatcher
            .open_session(
                &self.node_id,
                description.clone(),
                addr.clone(),
                format!("{addr}:2377"),
            )
            .await
            .map_err(unavailable)?;
        self.net
            .reply(self.node, mgr)
            .await
            .map_err(|_| unavailable("the session's answer was lost"))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let net = self.net.clone();
        let node = self.node;
        let incarnation = ep.incarnation;
        let mut topo = net.subscribe();
        let live = self.live.clone();
        let generation = {
            let mut l = live.lock().unwrap_or_else(|p| p.into_inner());
            l.generation += 1;
            l.at = Some(mgr);
            l.generation
        };
        tokio::spawn(async move {
            let _clear = ClearOnDrop { live, generation };
            let mut stream = stream;
            loop {
                tokio::select! {
                    m = stream.next() => match m {
                        Some(SessionMessage::Assignments(a)) => {
                            if net.reply(node, mgr).await.is_err()
                                || !net.session_holds(node, mgr, incarnation)
                                || tx.send(a).await.is_err()
                            {
                                return;
                            }
                        }
                        Some(SessionMessage::Node(_)) => {}
                        None => return,
                    },
                    r = topo.changed() => {
                        if r.is_err() || !net.session_holds(node, mgr, incarnation) {
                            return;
                        }
                    }
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Ok(Session {
            node_id: self.node_id.clone(),
            assignments: Box::pin(tokio_stream_from(rx)),
        }))
    }
}

/// Marks the session closed when its forwarder ends, unless a newer one replaced it.
struct ClearOnDrop {
    live: Arc<Mutex<Live>>,
    generation: u64,
}

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        let mut l = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if l.generation == self.generation {
            l.at = None;
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[async_trait]
impl DispatcherClient for SimDispatcher {
    async fn session(&self, req: SessionRequest) -> Result<Session, DispatchError> {
        // The last manager that served us first, then every manager in order, as the real
        // client walks the manager list it was last given.
        let mut candidates: Vec<usize> = self.current().into_iter().collect();
        candidates.extend(self.managers.iter().copied());
        let mut tried = Vec::new();
        let mut errors = Vec::new();
        while !candidates.is_empty() {
            let m = candidates.remove(0);
            if tried.contains(&m) {
                continue;
            }
            tried.push(m);
            match self.open_at(m, &req.description).await {
                Ok(Ok(session)) => {
                    tracing::info!(node = self.node, manager = m, "sim: session opened");
                    self.set_current(Some(m));
                    return Ok(session);
                }
                Ok(Err(hint)) => {
                    errors.push(format!("m{m}: not the leader"));
                    if let Some(l) = hint {
                        candidates.insert(0, l);
                    }
                }
                Err(e) => errors.push(format!("m{m}: {e}")),
            }
        }
        self.set_current(None);
        Err(unavailable(format!(
            "no manager serves a session: {}",
            errors.join("; ")
        )))
    }

    async fn report(
        &self,
        node_id: &Id,
        reports: Vec<TaskStatusReport>,
    ) -> Result<(), DispatchError> {
        let mgr = self.current().ok_or_else(|| unavailable("no session"))?;
        let d = self.dispatcher_at(mgr).await?;
        let r = d.report(node_id, reports).await.map_err(unavailable);
        self.net
            .reply(self.node, mgr)
            .await
            .map_err(|_| unavailable("the report's answer was lost"))?;
        r
    }

    async fn heartbeat(&self, node_id: &Id) -> Result<Duration, DispatchError> {
        let mgr = self.current().ok_or_else(|| unavailable("no session"))?;
        let d = self.dispatcher_at(mgr).await?;
        let r = d.heartbeat(node_id).map_err(unavailable);
        self.net
            .reply(self.node, mgr)
            .await
            .map_err(|_| unavailable("the heartbeat's answer was lost"))?;
        r
    }
}
