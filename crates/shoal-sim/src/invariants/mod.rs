//! The safety properties checked after every step, one module each (as openraft's simulator
//! keeps one invariant per file). Each checker sees an [`Observation`] (what every manager's
//! store and every node's runtime hold right now, plus what clients were told) and may keep its
//! own history across steps. Checkers are pure over their inputs, so each is unit-tested on
//! synthetic histories that must fail.
//!
//! - [`slots`]: one replica slot (or one global node) never has two tasks wanted running; once
//!   converged, never two processes running either.
//! - [`capacity`]: no node carries more reservations than it has, in the store's accounting and
//!   in what its runtime actually runs.
//! - [`drained`]: a drained or down node's tasks are told to stop, and a drained node that hears
//!   its managers runs nothing, within [`GRACE`].
//! - [`monotonic`]: a task's observed state never goes backwards, on any manager or across
//!   managers (ordered by the Raft index of the write).
//! - [`durable`]: every write a client was told succeeded is in every later leader's log and,
//!   once applied, in its state.

pub mod capacity;
pub mod drained;
pub mod durable;
pub mod monotonic;
pub mod slots;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use shoal_store::State;
use shoal_types::{Id, Resources, Task};

/// How long the cluster may take to act on a drained or down node: three missed heartbeats
/// (3 s at the simulation's 1 s period) to declare it down, the agent's reconnect backoff (up
/// to 5 s), a leader election (about 1 s), and slack for the report round trip.
pub const GRACE: Duration = Duration::from_secs(15);

/// One manager's side of the cluster at a step.
#[derive(Clone)]
pub struct ManagerObs {
    pub idx: usize,
    /// Its Raft member believes it leads (a deposed leader may still believe so).
    pub leader: bool,
    pub term: u64,
    pub last_log: u64,
    pub applied: u64,
    pub state: Arc<State>,
}

/// One node's runtime at a step.
#[derive(Clone)]
pub struct NodeObs {
    pub idx: usize,
    pub id: Id,
    pub up: bool,
    pub capacity: Resources,
    /// Tasks its runtime runs right now.
    pub running: Vec<Id>,
    /// The manager its agent holds a session with.
    pub session: Option<usize>,
    /// How long the node has been up and connected to the current leader without any fault
    /// touching it (zero while a fault does).
    pub settled_for: Duration,
}

/// A write a client was told succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub service: String,
    pub seq: u64,
    /// The Raft index it was committed at.
    pub version: u64,
    /// The highest term any manager had when the client got its answer: every leader of this
    /// term or later must hold the write (a deposed leader of an older term may not).
    pub term: u64,
}

pub struct Observation<'a> {
    pub step: u64,
    pub elapsed: Duration,
    /// Managers that are up.
    pub managers: Vec<ManagerObs>,
    pub nodes: Vec<NodeObs>,
    /// The cluster has converged since the faults stopped.
    pub converged: bool,
    pub acked: &'a [Acked],
}

impl Observation<'_> {
    /// The manager that leads with the highest term: the one a client would end up at.
    pub fn leader(&self) -> Option<&ManagerObs> {
        self.managers
            .iter()
            .filter(|m| m.leader)
            .max_by_key(|m| (m.term, m.applied))
    }

    /// Every task any manager knows, the newest version of each.
    pub fn tasks(&self) -> BTreeMap<Id, Arc<Task>> {
        let mut out: BTreeMap<Id, Arc<Task>> = BTreeMap::new();
        for m in &self.managers {
            for t in m.state.tasks() {
                match out.get(&t.id) {
                    Some(have) if have.meta.version >= t.meta.version => {}
                    _ => {
                        out.insert(t.id.clone(), t.clone());
                    }
                }
            }
        }
        out
    }
}

pub trait Invariant {
    fn name(&self) -> &'static str;
    /// Checks one step; `Err` says what is wrong, naming the objects.
    fn check(&mut self, obs: &Observation) -> Result<(), String>;
}

/// Every invariant, fresh.
pub fn all() -> Vec<Box<dyn Invariant>> {
    vec![
        Box::new(slots::Slots),
        Box::new(capacity::Capacity),
        Box::new(drained::Drained::default()),
        Box::new(monotonic::Monotonic::default()),
        Box::new(durable::Durable),
    ]
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Synthetic states for the checkers' tests.
    use super::*;
    use shoal_store::{Op, Proposal};
    use shoal_types::node::{Availability, NodeSpec, NodeState, NodeStatus};
    use shoal_types::service::{Service, ServiceMode, ServiceSpec};
    use shoal_types::task::{TaskState, TaskStatus};
    use shoal_types::{Node, NodeDescription, Timestamp};

    pub fn node(id: &str, availability: Availability, state: NodeState) -> Node {
        Node {
            id: Id::from_raw(id),
            spec: NodeSpec {
                availability,
                ..Default::default()
            },
            description: NodeDescription {
                resources: crate::plan::NODE_CAPACITY,
                ..Default::default()
            },
            status: NodeStatus {
                state,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    pub fn service(id: &str, mode: ServiceMode) -> Service {
        Service {
            id: Id::from_raw(id),
            spec: ServiceSpec {
                name: id.to_string(),
                mode,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    pub fn task(id: &str, svc: &str, slot: u64, node: &str, state: TaskState) -> Task {
        Task {
            id: Id::from_raw(id),
            service_id: Id::from_raw(svc),
            service_name: svc.to_string(),
            slot,
            node_id: Some(Id::from_raw(node)),
            desired_state: TaskState::Running,
            status: TaskStatus {
                state,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A state holding these objects, built by the real state machine.
    pub fn state(ops: Vec<Op>) -> Arc<State> {
        let mut s = State::default();
        for (i, op) in ops.into_iter().enumerate() {
            s.apply(i as u64 + 1, &Proposal::atomic(Timestamp(1), vec![op]));
        }
        Arc::new(s)
    }

    pub fn manager(idx: usize, state: Arc<State>) -> ManagerObs {
        ManagerObs {
            idx,
            leader: idx == 0,
            term: 1,
            last_log: state.version,
            applied: state.version,
            state,
        }
    }

    pub fn obs<'a>(managers: Vec<ManagerObs>, nodes: Vec<NodeObs>) -> Observation<'a> {
        Observation {
            step: 1,
            elapsed: Duration::from_secs(100),
            managers,
            nodes,
            converged: false,
            acked: &[],
        }
    }

    pub fn runtime(idx: usize, id: &str, running: &[&str]) -> NodeObs {
        NodeObs {
            idx,
            id: Id::from_raw(id),
            up: true,
            capacity: crate::plan::NODE_CAPACITY,
            running: running.iter().map(|r| Id::from_raw(*r)).collect(),
            session: Some(0),
            settled_for: Duration::from_secs(100),
        }
    }
}
