//! The dispatcher: the managers' side of every agent's session. It records what a node says about
//! itself, streams the node its complete assignment set whenever it changes, writes the task
//! statuses the agent reports (only for tasks on that node, only forward), and marks a node Down
//! when its heartbeats stop.
//!
//! Concurrency: one watcher task per open session; a newer session for the same node replaces the
//! older one (its stream ends). Heartbeat bookkeeping is behind one mutex, held briefly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use shoal_store::{Op, Proposal, State, Store};
use shoal_types::dispatch::{Assignments, TaskStatusReport};
use shoal_types::node::{NodeDescription, NodeState, NodeStatus};
use shoal_types::task::TaskState;
use shoal_types::{Clock, Id, Timestamp};
use tokio::sync::watch;

use crate::error::ControlError;

/// How many heartbeat periods may pass silently before a node is declared Down (Swarm: 3).
const MISSED_HEARTBEATS: u32 = 3;

/// Dropping an entry drops `_stop`, which ends that session's watcher and stream.
struct SessionEntry {
    last_seen: Timestamp,
    _stop: watch::Sender<bool>,
}

pub struct Dispatcher {
    store: Store,
    clock: Arc<dyn Clock>,
    heartbeat: Duration,
    sessions: Mutex<HashMap<Id, SessionEntry>>,
    /// When this dispatcher started: nodes get one full grace period from then before being
    /// declared Down, so a manager restart does not mark every node Down at once.
    started: Timestamp,
}

impl Dispatcher {
    pub fn new(store: Store, clock: Arc<dyn Clock>, heartbeat: Duration) -> Arc<Self> {
        let started = clock.now();
        Arc::new(Dispatcher {
            store,
            clock,
            heartbeat,
            sessions: Mutex::new(HashMap::new()),
            started,
        })
    }

    pub fn heartbeat_period(&self) -> Duration {
        self.heartbeat
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Id, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for a node that is part of the cluster: records its description and
    /// address, marks it Ready, and returns the stream of its assignments.
    pub async fn open_session(
        self: &Arc<Self>,
        node_id: &Id,
        description: NodeDescription,
        addr: String,
    ) -> Result<BoxStream<'static, Assignments>, ControlError> {
        let view = self.store.view();
        let Some(node) = view.node(node_id) else {
            return Err(ControlError::NotFound {
                kind: "node",
                name: node_id.to_string(),
            });
        };
        let now = self.clock.now();
        let mut next = (**node).clone();
        next.description = description;
        if next.status.state != NodeState::Ready {
            next.status.since = now;
        }
        next.status.state = NodeState::Ready;
        next.status.message = String::new();
        next.status.addr = addr;
        if next != **node {
            let applied = self
                .store
                .propose(Proposal::atomic(
                    now,
                    vec![Op::UpdateNode {
                        node: next,
                        expect_version: None,
                    }],
                ))
                .await?;
            if let Some(e) = applied.first_error() {
                return Err(e.clone().into());
            }
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        self.sessions().insert(
            node_id.clone(),
            SessionEntry {
                last_seen: now,
                _stop: stop_tx,
            },
        );

        let (tx, rx) = watch::channel(assignments_for(&self.store.view(), node_id));
        let mut states = self.store.subscribe();
        let node = node_id.clone();
        let mut stop_rx = stop_rx;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = states.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = stop_rx.changed() => return,
                    _ = tx.closed() => return,
                }
                let next = assignments_for(&states.borrow_and_update(), &node);
                tx.send_if_modified(|cur| {
                    if same_tasks(cur, &next) {
                        false
                    } else {
                        *cur = next;
                        true
                    }
                });
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::WatchStream::new(rx)))
    }

    /// Records a heartbeat and returns the period the agent should keep.
    pub fn heartbeat(&self, node_id: &Id) -> Result<Duration, ControlError> {
        let now = self.clock.now();
        match self.sessions().get_mut(node_id) {
            Some(s) => {
                s.last_seen = now;
                Ok(self.heartbeat)
            }
            None => Err(ControlError::NotFound {
                kind: "session for node",
                name: node_id.to_string(),
            }),
        }
    }

    /// Writes the statuses an agent reports. Reports for tasks not assigned to that node are
    /// dropped: an agent can only speak for itself.
    pub async fn report(
        &self,
        node_id: &Id,
        reports: Vec<TaskStatusReport>,
    ) -> Result<(), ControlError> {
        if let Some(s) = self.sessions().get_mut(node_id) {
            s.last_seen = self.clock.now();
        }
        let view = self.store.view();
        let ops: Vec<Op> = reports
            .into_iter()
            .filter(|r| {
                view.task(&r.task_id).is_some_and(|t| {
                    t.node_id.as_ref() == Some(node_id) && r.status.state >= t.status.state
                })
            })
            .map(|r| Op::SetTaskStatus {
                id: r.task_id,
                status: r.status,
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        self.store
            .propose(Proposal::each(self.clock.now(), ops))
            .await?;
        Ok(())
    }

    /// Nodes whose agent has been silent for longer than the grace. Pure: the liveness loop
    /// proposes what this returns.
    pub fn overdue_nodes(&self, view: &State, now: Timestamp) -> Vec<Id> {
        let grace = self.heartbeat * MISSED_HEARTBEATS;
        let sessions = self.sessions();
        view.nodes()
            .filter(|n| n.status.state == NodeState::Ready)
            .filter(|n| {
                let last = sessions
                    .get(&n.id)
                    .map_or(self.started, |s| s.last_seen.max(self.started));
                now.since(last) > grace
            })
            .map(|n| n.id.clone())
            .collect()
    }

    /// Marks silent nodes Down and closes their sessions, until `shutdown`.
    pub async fn run_liveness(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.heartbeat) => {}
                _ = shutdown.changed() => return,
            }
            if !self.store.is_leader() {
                continue;
            }
            let now = self.clock.now();
            let view = self.store.view();
            let overdue = self.overdue_nodes(&view, now);
            if overdue.is_empty() {
                continue;
            }
            let mut ops = Vec::new();
            for id in &overdue {
                if let Some(n) = view.node(id) {
                    tracing::warn!(node.id = %id, "node missed its heartbeats; marking it down");
                    let mut next = (**n).clone();
                    next.status = NodeStatus {
                        state: NodeState::Down,
                        message: "heartbeat failure".into(),
                        addr: n.status.addr.clone(),
                        since: now,
                    };
                    ops.push(Op::UpdateNode {
                        node: next,
                        expect_version: Some(n.meta.version),
                    });
                }
                self.sessions().remove(id);
            }
            if let Err(e) = self.store.propose(Proposal::each(now, ops)).await {
                tracing::warn!(error = %e, "could not mark nodes down");
            }
        }
    }

    /// Ends a node's session (its stream closes), e.g. when the node leaves.
    pub fn close_session(&self, node_id: &Id) {
        self.sessions().remove(node_id);
    }
}

/// The tasks a node must know about: every task placed on it, whatever its state, until the
/// store drops it, so the agent can stop what it should no longer run.
pub fn assignments_for(view: &State, node: &Id) -> Assignments {
    let mut tasks: Vec<_> = view
        .tasks_on_node(node)
        .filter(|t| t.status.state >= TaskState::Assigned)
        .map(|t| (**t).clone())
        .collect();
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    Assignments {
        version: view.version,
        tasks,
    }
}

fn same_tasks(a: &Assignments, b: &Assignments) -> bool {
    a.tasks.len() == b.tasks.len()
        && a.tasks
            .iter()
            .zip(&b.tasks)
            .all(|(x, y)| x.id == y.id && x.meta.version == y.meta.version)
}
