//! The simulated network: which managers are up, which pairs of nodes cannot talk (partitions),
//! and how slow each node's links are. Every node reaches the others through a [`SimTransport`],
//! the in-memory [`Transport`] under the real node's clients: Raft between managers
//! (`shoal_node::transport::RpcRaft`) and the agents' dispatcher client
//! (`shoal_node::remote::RemoteDispatcher`). A manager answers with the real node RPC router
//! (`shoal_node::routes`), run in process with the caller's identity as its certificate would
//! carry it, so requests and answers are the real JSON and one fault model covers all of it.
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
use bytes::Bytes;
use futures::StreamExt;
use shoal_rpc::{Lines, Peer, RpcError, Transport};
use shoal_store::Store;
use tokio::sync::watch;

/// The RPC address of node `idx` (its Raft address too, on a manager).
pub(crate) fn node_addr(idx: usize) -> String {
    format!("10.0.0.{idx}:2377")
}

fn parse_addr(addr: &str) -> Option<usize> {
    addr.strip_prefix("10.0.0.")?
        .strip_suffix(":2377")?
        .parse()
        .ok()
}

/// A running manager as the network reaches it.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub store: Store,
    /// The node's RPC router; absent while its Raft member runs but its manager has not
    /// started (between opening the store and starting the loops).
    pub router: Option<axum::Router>,
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
    pub fn register(&self, idx: usize, store: Store, router: Option<axum::Router>) {
        let mut t = self.topo();
        t.incarnations += 1;
        let incarnation = t.incarnations;
        t.managers.insert(
            idx,
            Endpoint {
                store,
                router,
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

/// Where an agent's session stream is open, and a counter telling sessions apart.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub at: Option<usize>,
    generation: u64,
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

/// One node's way to the others: what the real node does over TLS, on the simulated network.
/// A request waits the link's delay and is refused when the peer is down, partitioned away or
/// not serving yet (a refused connection); the answer waits the delay again and is lost if the
/// link broke meanwhile. A stream's lines each take the way back, and the stream breaks (with
/// an error item, as a dead connection would) when the link breaks or the manager restarts.
pub(crate) struct SimTransport {
    pub net: Arc<Net>,
    pub from: usize,
    /// Who this node's certificate says it is (none before it joined).
    pub identity: Option<shoal_pki::Identity>,
    /// Where this node's dispatcher session is open, for the convergence check.
    pub live: Arc<Mutex<Live>>,
}

impl SimTransport {
    fn peer(&self) -> Peer {
        Peer {
            addr: std::net::SocketAddr::from(([10, 0, 0, self.from as u8], 40000)),
            identity: self.identity.clone(),
        }
    }

    fn refused(addr: &str, why: &str) -> RpcError {
        RpcError::Connect {
            addr: addr.into(),
            source: shoal_rpc::Remote::cause(format!("simulated: {why}")),
        }
    }

    /// The way there: the manager's incarnation and router, if it can be reached.
    async fn open(&self, addr: &str) -> Result<(usize, u64, axum::Router), RpcError> {
        let to = parse_addr(addr).ok_or_else(|| Self::refused(addr, "no such node"))?;
        let ep = self
            .net
            .send(self.from, to)
            .await
            .map_err(|_| Self::refused(addr, "down or partitioned away"))?;
        let router = ep
            .router
            .ok_or_else(|| Self::refused(addr, "the node is starting"))?;
        Ok((to, ep.incarnation, router))
    }

    /// The way back: the answer is lost if the link broke while the call ran.
    async fn back<T>(&self, to: usize, addr: &str, r: T) -> Result<T, RpcError> {
        self.net
            .reply(self.from, to)
            .await
            .map_err(|_| RpcError::Timeout { addr: addr.into() })?;
        Ok(r)
    }
}

#[async_trait]
impl Transport for SimTransport {
    async fn call_raw(&self, addr: &str, path: &str, body: Bytes) -> Result<Bytes, RpcError> {
        let (to, _, router) = self.open(addr).await?;
        let r = shoal_rpc::call_in_process(router, self.peer(), addr, path, body).await;
        self.back(to, addr, r).await?
    }

    async fn stream_raw(&self, addr: &str, path: &str, body: Bytes) -> Result<Lines, RpcError> {
        let (to, incarnation, router) = self.open(addr).await?;
        let r = shoal_rpc::stream_in_process(router, self.peer(), addr, path, body).await;
        let mut lines = self.back(to, addr, r).await??;
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let (net, node, addr) = (self.net.clone(), self.from, addr.to_string());
        let mut topo = net.subscribe();
        // Only the dispatcher session counts as "the agent's session is open".
        let clear = (path == shoal_node::wire::SESSION).then(|| {
            let mut l = self.live.lock().unwrap_or_else(|p| p.into_inner());
            l.generation += 1;
            l.at = Some(to);
            ClearOnDrop {
                live: self.live.clone(),
                generation: l.generation,
            }
        });
        let broken = move |addr: &str| RpcError::Connect {
            addr: addr.into(),
            source: shoal_rpc::Remote::cause("simulated: the connection broke"),
        };
        tokio::spawn(async move {
            let _clear = clear;
            loop {
                tokio::select! {
                    l = lines.next() => match l {
                        Some(Ok(line)) => {
                            let item = if net.reply(node, to).await.is_err()
                                || !net.session_holds(node, to, incarnation)
                            {
                                Err(broken(&addr))
                            } else {
                                Ok(line)
                            };
                            let end = item.is_err();
                            if tx.send(item).await.is_err() || end {
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                        None => return,
                    },
                    r = topo.changed() => {
                        if r.is_err() || !net.session_holds(node, to, incarnation) {
                            let _ = tx.send(Err(broken(&addr))).await;
                            return;
                        }
                    }
                    () = tx.closed() => return,
                }
            }
        });
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }
}
