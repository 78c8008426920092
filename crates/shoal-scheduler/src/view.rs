//! The scheduler's picture of the cluster: one entry per node with the counters the filters and
//! scorers read (resources still free, tasks on the node, tasks per service on the node).
//!
//! A `ClusterView` is built from a store snapshot and then owned by one caller; [`crate::schedule`]
//! updates it in place as it places tasks, so consecutive batches (or one large batch) never
//! oversubscribe a node. It is plain data (`Clone`, no interior mutability, no locks).

use std::collections::HashMap;

use shoal_types::{GenericResource, Id, Node, Resources, Task, TaskState};

use crate::generic::{self, GenericPool};

/// What a node has left and carries, kept in step with every placement.
#[derive(Debug, Clone)]
pub(crate) struct NodeEntry {
    pub(crate) node: Node,
    /// `description.resources` minus the reservations of the tasks counted on the node. May be
    /// negative when the store already holds more than the node reports (e.g. it shrank).
    pub(crate) available: Resources,
    /// Tasks counted on the node, all services.
    pub(crate) tasks: u32,
    /// `description.generic_resources` minus what the tasks counted on the node hold.
    pub(crate) generic: GenericPool,
}

/// Per-node facts the filters and scorers need. Nodes are kept sorted by ID, so a node's index is
/// also its rank in the deterministic tie-break.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub(crate) nodes: Vec<NodeEntry>,
    pub(crate) index: HashMap<Id, u32>,
    /// Tasks counted per service, per node index. Sparse: most services run on few nodes, and a
    /// dense service × node matrix would not fit large clusters.
    pub(crate) by_service: HashMap<Id, HashMap<u32, u32>>,
}

/// A task's reservation as the scheduler accounts it. Negative numbers are not a reservation (the
/// API rejects them); clamping keeps a bad spec from creating capacity out of thin air.
pub(crate) fn reservation(task_spec_res: Resources) -> Resources {
    Resources {
        nano_cpus: task_spec_res.nano_cpus.max(0),
        memory_bytes: task_spec_res.memory_bytes.max(0),
    }
}

/// Whether a stored task holds a place on its node. Tasks still `New`/`Pending` are excluded even
/// with a node ID: those are pre-assigned (global) tasks waiting for [`crate::schedule`] to confirm
/// them, and counting them here as well would count them twice (swarmkit does the same). A
/// standalone container's network attachment is no task the node runs: it holds nothing.
fn occupies_node(task: &Task) -> bool {
    !task.is_attachment()
        && task.node_id.is_some()
        && task.status.state >= TaskState::Assigned
        && !task.status.state.is_terminal()
}

impl ClusterView {
    /// Builds the view from every node and every task in the store.
    ///
    /// `tasks`: every task in the store; only those with a node ID whose observed state is
    /// assigned or later and not terminal count against their node (reservations, per-service
    /// counts). Tasks on nodes not in `nodes` are ignored. If two nodes share an ID the first wins.
    pub fn new<'a>(
        nodes: impl IntoIterator<Item = &'a Node>,
        tasks: impl IntoIterator<Item = &'a Task>,
    ) -> Self {
        let mut list: Vec<&Node> = nodes.into_iter().collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list.dedup_by(|b, a| a.id == b.id);

        let mut view = ClusterView {
            nodes: Vec::with_capacity(list.len()),
            index: HashMap::with_capacity(list.len()),
            by_service: HashMap::new(),
        };
        for (i, n) in list.into_iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { break };
            view.index.insert(n.id.clone(), i);
            view.nodes.push(NodeEntry {
                node: n.clone(),
                available: n.description.resources,
                tasks: 0,
                generic: GenericPool::new(&n.description.generic_resources),
            });
        }
        for t in tasks {
            if !occupies_node(t) {
                continue;
            }
            let Some(&i) = t.node_id.as_ref().and_then(|id| view.index.get(id)) else {
                continue;
            };
            view.charge(i, reservation(t.spec.resources.reservations));
            view.count_service(&t.service_id, i);
            view.hold_generic(i, t);
        }
        view
    }

    /// Counts one stored task, as [`ClusterView::new`] counts each task it is given: a caller
    /// that keeps a view across store versions adds the tasks that changed in their new form.
    pub fn add_task(&mut self, t: &Task) {
        if !occupies_node(t) {
            return;
        }
        let Some(&i) = t.node_id.as_ref().and_then(|id| self.index.get(id)) else {
            return;
        };
        self.charge(i, reservation(t.spec.resources.reservations));
        self.count_service(&t.service_id, i);
        self.hold_generic(i, t);
    }

    /// Takes one stored task back out: the exact inverse of [`ClusterView::add_task`], so a view
    /// kept across versions (old form of each changed task removed, new form added) equals one
    /// built afresh. False, with the view unchanged, when that cannot be done exactly: the task
    /// holds generic resources on a node that has some (which units come back depends on the
    /// others held). The caller then builds the view afresh.
    #[must_use]
    pub fn remove_task(&mut self, t: &Task) -> bool {
        if !occupies_node(t) {
            return true;
        }
        let Some(&i) = t.node_id.as_ref().and_then(|id| self.index.get(id)) else {
            return true;
        };
        let Some(e) = self.nodes.get_mut(i as usize) else {
            return true;
        };
        let holds_generic = !t.assigned_generic_resources.is_empty()
            || !t.spec.resources.generic_reservations.is_empty();
        if !e.generic.is_empty() && holds_generic {
            return false;
        }
        let res = reservation(t.spec.resources.reservations);
        e.available.nano_cpus = e.available.nano_cpus.saturating_add(res.nano_cpus);
        e.available.memory_bytes = e.available.memory_bytes.saturating_add(res.memory_bytes);
        e.tasks = e.tasks.saturating_sub(1);
        if let Some(counts) = self.by_service.get_mut(&t.service_id) {
            if let Some(c) = counts.get_mut(&i) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    counts.remove(&i);
                }
            }
            if counts.is_empty() {
                self.by_service.remove(&t.service_id);
            }
        }
        true
    }

    /// Takes the generic resources a task on node `i` holds. A task that reserved some but
    /// records no assignment (written before assignments were recorded) is charged as if placed
    /// now: the node may then look fuller than it is, never emptier.
    fn hold_generic(&mut self, i: u32, t: &Task) {
        let Some(e) = self.nodes.get_mut(i as usize) else {
            return;
        };
        if e.generic.is_empty() {
            return;
        }
        if t.assigned_generic_resources.is_empty() {
            e.generic
                .claim(&generic::demand(&t.spec.resources.generic_reservations));
        } else {
            e.generic.hold(&t.assigned_generic_resources);
        }
    }

    /// Gives one placed task its generic resources on node `i` (nothing, without allocating,
    /// when it asks for none).
    pub(crate) fn claim_generic(
        &mut self,
        i: u32,
        demand: &[(String, i64)],
    ) -> Vec<GenericResource> {
        match self.nodes.get_mut(i as usize) {
            Some(e) if !demand.is_empty() => e.generic.claim(demand),
            _ => Vec::new(),
        }
    }

    /// Books one task's reservation and task count on node `i` (the per-service count is the
    /// caller's, which may hold it densely while placing a group).
    pub(crate) fn charge(&mut self, i: u32, res: Resources) {
        if let Some(e) = self.nodes.get_mut(i as usize) {
            e.available.nano_cpus = e.available.nano_cpus.saturating_sub(res.nano_cpus);
            e.available.memory_bytes = e.available.memory_bytes.saturating_sub(res.memory_bytes);
            e.tasks = e.tasks.saturating_add(1);
        }
    }

    /// Adds one task of `service` on node `i` (cloning the ID only for a service not seen yet).
    pub(crate) fn count_service(&mut self, service: &Id, i: u32) {
        let counts = match self.by_service.get_mut(service) {
            Some(c) => c,
            None => self.by_service.entry(service.clone()).or_default(),
        };
        *counts.entry(i).or_insert(0) += 1;
    }

    pub(crate) fn service_count(&self, service: &Id, i: u32) -> u32 {
        self.by_service
            .get(service)
            .and_then(|m| m.get(&i))
            .copied()
            .unwrap_or(0)
    }

    /// Number of nodes in the view.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node with this ID, as the view holds it.
    pub fn node(&self, node_id: &str) -> Option<&Node> {
        self.index
            .get(node_id)
            .map(|&i| &self.nodes[i as usize].node)
    }

    /// Resources still free on the node: reported capacity minus counted reservations.
    pub fn available(&self, node_id: &str) -> Option<Resources> {
        self.index
            .get(node_id)
            .map(|&i| self.nodes[i as usize].available)
    }

    /// How many units of generic resource `kind` the node still has free (named units not held
    /// by a task, or the discrete count left); 0 for a kind it does not advertise.
    pub fn generic_available(&self, node_id: &str, kind: &str) -> Option<i64> {
        self.index
            .get(node_id)
            .map(|&i| self.nodes[i as usize].generic.free(kind))
    }

    /// Tasks counted on the node, all services.
    pub fn task_count(&self, node_id: &str) -> Option<u32> {
        self.index
            .get(node_id)
            .map(|&i| self.nodes[i as usize].tasks)
    }

    /// Tasks of `service_id` counted on the node (0 for an unknown node or service).
    pub fn service_task_count(&self, node_id: &str, service_id: &str) -> u32 {
        match (self.index.get(node_id), self.by_service.get(service_id)) {
            (Some(i), Some(m)) => m.get(i).copied().unwrap_or(0),
            _ => 0,
        }
    }
}
