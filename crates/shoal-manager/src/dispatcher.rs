//! The dispatcher: the managers' side of every agent's session. It records what a node says about
//! itself, streams the node its complete assignment set whenever it changes, writes the task
//! statuses the agent reports (only for tasks on that node, only forward), and marks a node Down
//! when its heartbeats stop.
//!
//! Concurrency: one watcher task per open session; a newer session for the same node replaces the
//! older one (its stream ends). Heartbeat bookkeeping is behind one mutex, held briefly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use shoal_store::state::Delta;
use shoal_store::{Op, Proposal, State, Store};
use shoal_types::dispatch::{Assignments, NodeInfo, SessionMessage, TaskStatusReport};
use shoal_types::node::{NodeDescription, NodeRole, NodeState, NodeStatus};
use shoal_types::payload::{Delivered, Delivery, PayloadKind};
use shoal_types::task::TaskState;
use shoal_types::{Clock, Id, Task, Timestamp};
use tokio::sync::watch;

use crate::driver::{Controller, Outcome};
use crate::error::{self, ControlError};

/// How many heartbeat periods may pass silently before a node is declared Down (Swarm: 3).
const MISSED_HEARTBEATS: u32 = 3;

/// Dropping an entry drops `_stop`, which ends that session's watcher and stream.
struct SessionEntry {
    last_seen: Timestamp,
    /// Tells this session from a newer one of the same node.
    generation: u64,
    /// The agent's stream went away; without a new session the node is Down after one period.
    disconnected: bool,
    _stop: watch::Sender<bool>,
}

pub struct Dispatcher {
    store: Store,
    clock: Arc<dyn Clock>,
    /// The period when the store has no cluster object (yet): see [`Dispatcher::period_in`].
    default_heartbeat: Duration,
    /// Ordered by node: clearing the table drops each session's stop sender, waking the
    /// session streams in this order; a hash order would differ per instance, so two runs of one
    /// simulation seed would see agents reconnect in different orders.
    sessions: Mutex<BTreeMap<Id, SessionEntry>>,
    generations: std::sync::atomic::AtomicU64,
    /// When this manager last became leader (or started): nodes get one full grace period from
    /// then before being declared Down, so a new leader, which has no sessions yet, does not
    /// mark every node Down at once.
    started: Mutex<Timestamp>,
}

impl Dispatcher {
    pub fn new(store: Store, clock: Arc<dyn Clock>, heartbeat: Duration) -> Arc<Self> {
        let started = clock.now();
        Arc::new(Dispatcher {
            store,
            clock,
            default_heartbeat: heartbeat,
            sessions: Mutex::new(BTreeMap::new()),
            generations: std::sync::atomic::AtomicU64::new(0),
            started: Mutex::new(started),
        })
    }

    pub fn heartbeat_period(&self) -> Duration {
        self.period_in(&self.store.view())
    }

    /// The heartbeat period agents keep: the swarm's `Dispatcher.HeartbeatPeriod` as `view` has
    /// it, so `swarm update --dispatcher-heartbeat` applies at once, and a manager that joined
    /// with an empty store (its cluster object arrives with the log) does not lead with the
    /// default period forever.
    fn period_in(&self, view: &State) -> Duration {
        view.cluster()
            .map(|c| c.spec.heartbeat_period)
            .filter(|p| !p.is_zero())
            .unwrap_or(self.default_heartbeat)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, BTreeMap<Id, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for a node that is part of the cluster: records its description and
    /// address, marks it Ready, and returns the stream of its assignments.
    /// `addr` is the node's IP as managers see it, `endpoint` where it serves RPC (`ip:port`).
    pub async fn open_session(
        self: &Arc<Self>,
        node_id: &Id,
        description: NodeDescription,
        addr: String,
        endpoint: String,
    ) -> Result<BoxStream<'static, SessionMessage>, ControlError> {
        // Assignments from a stale state would make the agent stop tasks the cluster has since
        // given it (found by shoal-sim: a restarted manager leading on its old vote).
        self.serving()?;
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
        next.status.endpoint = endpoint;
        if next != **node {
            let applied = self
                .store
                .propose(Proposal::atomic(
                    now,
                    vec![Op::UpdateNode {
                        node: next,
                        expect_version: Some(node.meta.version),
                    }],
                ))
                .await
                .map_err(error::from_propose)?;
            if let Some(e) = applied.first_error() {
                return Err(error::from_op(e));
            }
        }

        let (stop_tx, stop_rx) = watch::channel(false);
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sessions().insert(
            node_id.clone(),
            SessionEntry {
                last_seen: now,
                generation,
                disconnected: false,
                _stop: stop_tx,
            },
        );

        let (tx, rx) = tokio::sync::mpsc::channel::<SessionMessage>(16);
        let mut states = self.store.subscribe();
        let node = node_id.clone();
        let mut stop_rx = stop_rx;
        let me = self.clone();
        tokio::spawn(async move {
            let mut last_info: Option<NodeInfo> = None;
            // Each task's version as the agent last got it: what the next message leaves out.
            let mut sent: Option<BTreeMap<Id, u64>> = None;
            let mut last_leader = None;
            let mut seen: Option<Arc<State>> = None;
            let mut last_map: Option<shoal_types::dispatch::NetworkMap> = None;
            let mut last_delivery: Option<Delivery> = None;
            loop {
                let view = states.borrow_and_update().clone();
                // Only what this node sees is recomputed: its info when a node, the cluster
                // object or the leader changed; its assignments when one of its tasks did, and
                // then only those tasks. A write elsewhere in the cluster costs a diff, not a
                // walk over this node's tasks.
                let delta = seen.as_ref().map(|old| view.delta_since(old));
                let info_due = delta.as_ref().is_none_or(|d| {
                    !d.nodes.is_empty() || d.cluster || me.store.leader() != last_leader
                });
                seen = Some(view.clone());
                if info_due {
                    last_leader = me.store.leader();
                    let info = me.node_info(&view, &node);
                    let removed = info.removed;
                    if last_info.as_ref() != Some(&info) {
                        if tx.send(SessionMessage::Node(info.clone())).await.is_err() {
                            return;
                        }
                        last_info = Some(info);
                    }
                    if removed {
                        return;
                    }
                }
                // Before the assignments: a task must not start before its node knows its
                // networks.
                let map_due = delta.as_ref().is_none_or(|d| {
                    !d.tasks.is_empty()
                        || !d.services.is_empty()
                        || !d.nodes.is_empty()
                        || d.cluster
                });
                if map_due {
                    let map = crate::netmap::network_map(&view, &node);
                    // A node that never had a network is not told it has none.
                    let news = match &last_map {
                        None => !map.networks.is_empty(),
                        Some(last) => *last != map,
                    };
                    if news {
                        if tx
                            .send(SessionMessage::Networks(map.clone()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        last_map = Some(map);
                    }
                }
                // The secrets and configs this node's tasks use, in the same message as the
                // tasks, so none starts without its files and none lingers after its last user.
                let delivery_due = delta.as_ref().is_none_or(|d| {
                    !d.payloads.is_empty() || d.tasks.iter().any(|t| t.nodes().any(|n| *n == node))
                });
                let mut delivery = None;
                if delivery_due {
                    let d = delivery_for(&view, &node);
                    let news = match &last_delivery {
                        None => !d.payloads.is_empty(),
                        Some(last) => *last != d,
                    };
                    if news {
                        delivery = Some(d.clone());
                        last_delivery = Some(d);
                    }
                }
                let message = match (&mut sent, &delta) {
                    (Some(sent), Some(delta)) => assignment_changes(&view, &node, delta, sent),
                    _ => {
                        let all = assignments_for(&view, &node);
                        sent = Some(
                            all.tasks
                                .iter()
                                .map(|t| (t.id.clone(), t.meta.version))
                                .collect(),
                        );
                        Some(all)
                    }
                };
                let message = match (message, delivery) {
                    (Some(mut m), d @ Some(_)) => {
                        m.payloads = d;
                        Some(m)
                    }
                    (None, d @ Some(_)) => {
                        let mut m = Assignments::changes(view.version, Vec::new(), Vec::new());
                        m.payloads = d;
                        Some(m)
                    }
                    (m, None) => m,
                };
                if let Some(m) = message
                    && tx.send(SessionMessage::Assignments(m)).await.is_err()
                {
                    return;
                }
                tokio::select! {
                    changed = states.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = stop_rx.changed() => return,
                    _ = tx.closed() => {
                        me.mark_disconnected(&node, generation);
                        return;
                    }
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    /// What a node should know about itself and the cluster.
    pub fn node_info(&self, view: &State, node_id: &Id) -> NodeInfo {
        let cluster = view.cluster();
        let removed = view.node(node_id).is_none()
            || cluster.is_some_and(|c| c.removed_nodes.contains(node_id));
        let leader = self.store.leader();
        let mut managers: Vec<(bool, String)> = view
            .nodes()
            .filter(|n| n.spec.role == NodeRole::Manager && !n.status.endpoint.is_empty())
            .map(|n| {
                (
                    n.manager
                        .as_ref()
                        .is_some_and(|m| Some(m.raft_id) == leader),
                    n.status.endpoint.clone(),
                )
            })
            .collect();
        // The leader first: that is where sessions are served.
        managers.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        NodeInfo {
            node_id: node_id.clone(),
            role: view.node(node_id).map_or(NodeRole::Worker, |n| n.spec.role),
            raft_id: view
                .node(node_id)
                .and_then(|n| n.manager.as_ref().map(|m| m.raft_id)),
            removed,
            managers: managers.into_iter().map(|(_, e)| e).collect(),
            trust: cluster.map(|c| c.trust()).unwrap_or_default(),
            issuer_digest: cluster
                .map(|c| {
                    c.root_rotation
                        .as_ref()
                        .map_or(c.root_ca.digest.clone(), |r| r.next.digest.clone())
                })
                .unwrap_or_default(),
            heartbeat_period: self.period_in(view),
        }
    }

    fn mark_disconnected(&self, node: &Id, generation: u64) {
        let now = self.clock.now();
        if let Some(s) = self.sessions().get_mut(node)
            && s.generation == generation
        {
            s.disconnected = true;
            // The grace for a vanished agent runs from when its stream ended.
            s.last_seen = now;
        }
    }

    /// Records a heartbeat and returns the period the agent should keep.
    pub fn heartbeat(&self, node_id: &Id) -> Result<Duration, ControlError> {
        // Sessions belong with the leader. A manager that led only briefly (one restarted with
        // its old leader vote leads until it hears the newer term, often for less than a
        // liveness tick) would otherwise keep serving the sessions opened meanwhile, and their
        // nodes, silent at the real leader, would be marked Down for good.
        if let Err(e) = self.serving() {
            self.sessions().remove(node_id);
            return Err(e);
        }
        let now = self.clock.now();
        match self.sessions().get_mut(node_id) {
            Some(s) if !s.disconnected => {
                s.last_seen = now;
                Ok(self.heartbeat_period())
            }
            Some(_) => Err(ControlError::NotFound {
                kind: "session for node",
                name: node_id.to_string(),
            }),
            None => Err(ControlError::NotFound {
                kind: "session for node",
                name: node_id.to_string(),
            }),
        }
    }

    /// Whether this manager may serve agents now: it leads with a current state (see
    /// [`Store::leads_with_current_state`]).
    fn serving(&self) -> Result<(), ControlError> {
        if self.store.leads_with_current_state() {
            Ok(())
        } else {
            Err(ControlError::Unavailable(
                "this manager does not lead (or has not caught up yet); open the session with the leader".into(),
            ))
        }
    }

    /// Writes the statuses an agent reports. Reports for tasks not assigned to that node are
    /// dropped: an agent can only speak for itself. Only the leader takes reports: a lagging
    /// manager would drop, as unknown, reports for tasks it has not heard of yet, and the agent,
    /// told they were taken, would never send them again (found by shoal-sim).
    pub async fn report(
        &self,
        node_id: &Id,
        reports: Vec<TaskStatusReport>,
    ) -> Result<(), ControlError> {
        self.serving()?;
        if let Some(s) = self.sessions().get_mut(node_id) {
            s.last_seen = self.clock.now();
        }
        let view = self.store.view();
        let ops: Vec<Op> = reports
            .into_iter()
            .filter(|r| {
                view.task(&r.task_id)
                    .is_some_and(|t| is_assignment(t, node_id) && r.status.state >= t.status.state)
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
            .await
            .map_err(error::from_propose)?;
        Ok(())
    }

    /// Nodes whose agent has been silent for longer than the grace: three heartbeat periods, or
    /// one after its session stream ended. Pure: the liveness loop proposes what this returns.
    pub fn overdue_nodes(&self, view: &State, now: Timestamp) -> Vec<Id> {
        let period = self.period_in(view);
        let grace = period * MISSED_HEARTBEATS;
        let started = *self.started.lock().unwrap_or_else(|p| p.into_inner());
        let sessions = self.sessions();
        view.nodes()
            .filter(|n| n.status.state == NodeState::Ready)
            .filter(|n| match sessions.get(&n.id) {
                Some(s) if s.disconnected => now.since(s.last_seen) > period,
                Some(s) => now.since(s.last_seen.max(started)) > grace,
                None => now.since(started) > grace,
            })
            .map(|n| n.id.clone())
            .collect()
    }

    /// Nodes the store does not have Ready although their agent holds a live session here and
    /// has been heard from within the grace. A node is marked Ready when its session opens, but
    /// that write is skipped when this manager's view already says Ready, and a Down written
    /// just before (still in flight when the agent reconnected) then lands after it: without
    /// this repair the node would stay Down while its agent heartbeats happily. Pure, like
    /// [`Dispatcher::overdue_nodes`].
    pub fn revived_nodes(&self, view: &State, now: Timestamp) -> Vec<Id> {
        let grace = self.period_in(view) * MISSED_HEARTBEATS;
        let sessions = self.sessions();
        view.nodes()
            .filter(|n| n.status.state != NodeState::Ready)
            .filter(|n| {
                sessions
                    .get(&n.id)
                    .is_some_and(|s| !s.disconnected && now.since(s.last_seen) <= grace)
            })
            .map(|n| n.id.clone())
            .collect()
    }

    /// Ends every session (this manager stops).
    pub fn close_all(&self) {
        self.sessions().clear();
    }

    /// Ends a node's session (its stream closes), e.g. when the node leaves.
    pub fn close_session(&self, node_id: &Id) {
        self.sessions().remove(node_id);
    }
}

/// The node-liveness loop: marks silent nodes Down (closing their sessions) and repairs nodes
/// left not Ready while their agent is heard from. Checked several times per heartbeat period so
/// a silent node is noticed soon after its grace; sessions follow leadership.
pub struct Liveness(pub Arc<Dispatcher>);

impl Controller for Liveness {
    type Key = ();
    const NAME: &'static str = "liveness";

    fn leadership(&mut self, leading: bool, now: Timestamp) {
        let d = &self.0;
        if leading {
            *d.started.lock().unwrap_or_else(|p| p.into_inner()) = now;
            return;
        }
        // Sessions belong with the leader: end them here so their agents reconnect there;
        // otherwise the new leader, hearing nobody, would mark every node Down.
        let n = {
            let mut s = d.sessions();
            let n = s.len();
            s.clear();
            n
        };
        tracing::info!(sessions = n, "no longer the leader: closing agent sessions");
    }

    fn touched(&mut self, _old: &State, _new: &State, _delta: &Delta) -> Vec<()> {
        Vec::new()
    }

    fn every_key(&mut self, _view: &State) -> Vec<()> {
        vec![()]
    }

    fn reconcile(&mut self, view: &State, now: Timestamp, _keys: &[()]) -> Outcome<()> {
        let d = &self.0;
        let mut ops = Vec::new();
        for id in d.revived_nodes(view, now) {
            if let Some(n) = view.node(&id) {
                tracing::info!(node.id = %id, "node has a live session but is not ready; marking it ready");
                let mut next = (**n).clone();
                next.status.state = NodeState::Ready;
                next.status.message = String::new();
                next.status.since = now;
                ops.push(Op::UpdateNode {
                    node: next,
                    expect_version: Some(n.meta.version),
                });
            }
        }
        for id in d.overdue_nodes(view, now) {
            if let Some(n) = view.node(&id) {
                tracing::warn!(node.id = %id, "node missed its heartbeats; marking it down");
                let mut next = (**n).clone();
                next.status = NodeStatus {
                    state: NodeState::Down,
                    message: "heartbeat failure".into(),
                    since: now,
                    ..n.status.clone()
                };
                ops.push(Op::UpdateNode {
                    node: next,
                    expect_version: Some(n.meta.version),
                });
            }
            d.sessions().remove(&id);
        }
        Outcome {
            ops,
            requeue: vec![((), now.add(d.period_in(view) / 4))],
            actions: Vec::new(),
        }
    }
}

/// The tasks a node must know about: every task placed on it, whatever its state, until the
/// store drops it, so the agent can stop what it should no longer run. A network attachment is
/// never one: the container it stands for is the node's engine's, which the agent must not run
/// or remove (the node learns of it through its network map).
fn assigned<'a>(view: &'a State, node: &Id, task: &Id) -> Option<&'a Arc<Task>> {
    view.task(task).filter(|t| is_assignment(t, node))
}

fn is_assignment(t: &Task, node: &Id) -> bool {
    t.node_id.as_ref() == Some(node) && t.status.state >= TaskState::Assigned && !t.is_attachment()
}

/// The data of every secret and config version that a task on `node` may still start with or
/// is running with, and nothing else: a node never holds a payload none of its tasks uses.
pub fn delivery_for(view: &State, node: &Id) -> Delivery {
    let mut out = BTreeMap::new();
    for t in view.tasks_on_node(node).filter(|t| {
        t.status.state >= TaskState::Assigned
            && t.status.state <= TaskState::Running
            && t.desired_state <= TaskState::Running
    }) {
        let c = &t.spec.container;
        let refs = c
            .secrets
            .iter()
            .map(|r| (PayloadKind::Secret, r))
            .chain(c.configs.iter().map(|r| (PayloadKind::Config, r)));
        for (kind, r) in refs {
            let Some(p) = view.payload(kind, &r.id) else {
                continue;
            };
            let Some(v) = p.version(r.version) else {
                continue;
            };
            out.entry((kind, r.id.clone(), r.version))
                .or_insert_with(|| Delivered {
                    kind,
                    id: r.id.clone(),
                    version: r.version,
                    data: v.data.clone(),
                    templated: p.spec.templating.is_some(),
                });
        }
    }
    Delivery {
        payloads: out.into_values().collect(),
    }
}

/// A node's whole set of assignments.
pub fn assignments_for(view: &State, node: &Id) -> Assignments {
    let mut tasks: Vec<_> = view
        .tasks_on_node(node)
        .filter(|t| is_assignment(t, node))
        .map(|t| (**t).clone())
        .collect();
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    Assignments::complete(view.version, tasks)
}

/// What changed in a node's assignments with `delta`, given what it was last sent (updated to
/// what this message sends); `None` when nothing did.
pub fn assignment_changes(
    view: &State,
    node: &Id,
    delta: &Delta,
    sent: &mut BTreeMap<Id, u64>,
) -> Option<Assignments> {
    let mut tasks = Vec::new();
    let mut removed = Vec::new();
    for touch in delta.tasks.iter().filter(|t| t.nodes().any(|n| n == node)) {
        match assigned(view, node, &touch.id) {
            Some(t) => {
                if sent.insert(t.id.clone(), t.meta.version) != Some(t.meta.version) {
                    tasks.push((**t).clone());
                }
            }
            None => {
                if sent.remove(&touch.id).is_some() {
                    removed.push(touch.id.clone());
                }
            }
        }
    }
    (!tasks.is_empty() || !removed.is_empty())
        .then(|| Assignments::changes(view.version, tasks, removed))
}

#[cfg(test)]
mod tests {
    use shoal_store::{Op, Proposal};
    use shoal_types::task::TaskStatus;

    use super::*;

    fn id(s: &str) -> Id {
        Id::from_raw(s)
    }

    fn task(i: &str, node: Option<&str>, state: TaskState) -> Task {
        crate::testing::task(i, "web", node, state)
    }

    fn apply(s: &State, ops: Vec<Op>) -> State {
        let mut next = s.clone();
        let v = s.version + 1;
        let (a, _) = next.apply(v, &Proposal::atomic(Timestamp(v as i64), ops));
        assert!(a.first_error().is_none(), "{a:?}");
        next
    }

    fn ids(a: &Assignments) -> (Vec<&str>, Vec<&str>) {
        (
            a.tasks.iter().map(|t| t.id.as_str()).collect(),
            a.removed.iter().map(|t| t.as_str()).collect(),
        )
    }

    #[test]
    fn changes_name_only_this_nodes_tasks_that_changed_arrived_or_left() {
        let s0 = apply(
            &State::default(),
            vec![
                Op::CreateTask(task("a", Some("n1"), TaskState::Running)),
                Op::CreateTask(task("b", Some("n1"), TaskState::Running)),
                Op::CreateTask(task("c", Some("n2"), TaskState::Running)),
                Op::CreateTask(task("p", None, TaskState::Pending)),
            ],
        );
        let n1 = id("n1");
        let all = assignments_for(&s0, &n1);
        assert!(all.complete);
        assert_eq!(ids(&all), (vec!["a", "b"], vec![]));
        let mut sent: BTreeMap<Id, u64> = all
            .tasks
            .iter()
            .map(|t| (t.id.clone(), t.meta.version))
            .collect();

        // A write on another node, and one to a task still pending: nothing for n1.
        let s1 = apply(
            &s0,
            vec![Op::SetTaskDesired {
                id: id("c"),
                desired: TaskState::Shutdown,
            }],
        );
        assert_eq!(
            assignment_changes(&s1, &n1, &s1.delta_since(&s0), &mut sent),
            None
        );

        // `a` changes, `b` is deleted, `p` is placed here: exactly those three.
        let s2 = apply(
            &s1,
            vec![
                Op::SetTaskDesired {
                    id: id("a"),
                    desired: TaskState::Shutdown,
                },
                Op::DeleteTask { id: id("b") },
                Op::AssignTask {
                    id: id("p"),
                    node_id: n1.clone(),
                    status: TaskStatus {
                        state: TaskState::Assigned,
                        ..Default::default()
                    },
                    generic_resources: Vec::new(),
                },
            ],
        );
        let changes =
            assignment_changes(&s2, &n1, &s2.delta_since(&s1), &mut sent).expect("changes");
        assert!(!changes.complete);
        assert_eq!(ids(&changes), (vec!["a", "p"], vec!["b"]));
        assert_eq!(
            sent.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["a", "p"]
        );
        // The same observation twice sends nothing again.
        assert_eq!(
            assignment_changes(&s2, &n1, &s2.delta_since(&s1), &mut sent),
            None
        );
    }

    /// A standalone container's network attachment is never handed to an agent, whole or as a
    /// change, and no agent can report a status for it.
    #[test]
    fn a_network_attachment_is_never_an_assignment() {
        let mut attached = task("att", Some("n1"), TaskState::Running);
        attached.service_id = Id::default();
        attached.attachment = Some(shoal_types::task::ContainerAttachment {
            container_id: "c".repeat(64),
            container_name: "probe".into(),
        });
        let s0 = apply(
            &State::default(),
            vec![
                Op::CreateNode(shoal_types::Node {
                    id: id("n1"),
                    ..Default::default()
                }),
                Op::CreateTask(task("a", Some("n1"), TaskState::Running)),
            ],
        );
        let n1 = id("n1");
        let mut sent: BTreeMap<Id, u64> = BTreeMap::new();
        let s1 = apply(&s0, vec![Op::CreateTask(attached)]);
        assert_eq!(ids(&assignments_for(&s1, &n1)), (vec!["a"], vec![]));
        assert_eq!(
            assignment_changes(&s1, &n1, &s1.delta_since(&s0), &mut sent),
            None
        );
        let s2 = apply(&s1, vec![Op::DeleteTask { id: id("att") }]);
        assert_eq!(
            assignment_changes(&s2, &n1, &s2.delta_since(&s1), &mut sent),
            None
        );
        assert!(s1.task(&id("att")).is_some_and(|t| !is_assignment(t, &n1)));
    }

    /// A node is handed the payload versions its live tasks use, and nothing for tasks that
    /// ended, are ending, or run elsewhere.
    #[test]
    fn a_node_gets_only_what_its_live_tasks_use() {
        use shoal_types::payload::{Bytes, FileRef, Payload, PayloadSpec, PayloadVersion};
        let secret = |i: &str, versions: &[u64]| Payload {
            id: id(i),
            meta: Default::default(),
            kind: PayloadKind::Secret,
            spec: PayloadSpec {
                name: i.into(),
                ..Default::default()
            },
            versions: versions
                .iter()
                .map(|v| PayloadVersion {
                    version: *v,
                    data: Bytes::new(vec![*v as u8]),
                    created_at: Timestamp(0),
                })
                .collect(),
        };
        let using = |i: &str, node: &str, state: TaskState, secret: &str, version: u64| {
            let mut t = task(i, Some(node), state);
            t.spec.container.secrets = vec![FileRef {
                id: id(secret),
                name: secret.into(),
                version,
                target: secret.into(),
                mode: 0o400,
                ..Default::default()
            }];
            t
        };
        let mut ending = using("d", "n1", TaskState::Running, "gone", 1);
        ending.desired_state = TaskState::Shutdown;
        let s = apply(
            &State::default(),
            vec![
                Op::CreatePayload(secret("pw", &[1, 2])),
                Op::CreatePayload(secret("elsewhere", &[1])),
                Op::CreatePayload(secret("done", &[1])),
                Op::CreatePayload(secret("gone", &[1])),
                Op::CreateTask(using("a", "n1", TaskState::Running, "pw", 1)),
                Op::CreateTask(using("b", "n1", TaskState::Assigned, "pw", 2)),
                Op::CreateTask(using("c", "n2", TaskState::Running, "elsewhere", 1)),
                Op::CreateTask(using("e", "n1", TaskState::Complete, "done", 1)),
                Op::CreateTask(ending),
            ],
        );
        let got: Vec<(String, u64)> = delivery_for(&s, &id("n1"))
            .payloads
            .iter()
            .map(|d| (d.id.to_string(), d.version))
            .collect();
        assert_eq!(got, vec![("pw".to_string(), 1), ("pw".to_string(), 2)]);
        assert!(delivery_for(&s, &id("n3")).payloads.is_empty());
    }
}
