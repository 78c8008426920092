//! The replicated state and the deterministic function that applies a [`Proposal`] to it.
//!
//! `State` is built from persistent maps, so a clone is O(1): readers take a snapshot (an
//! `Arc<State>`) and never block the writer, and an atomic proposal is applied to a clone that is
//! dropped if any op fails.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet};
use shoal_types::cluster::Cluster;
use shoal_types::network::Network;
use shoal_types::payload::{Payload, PayloadKind};
use shoal_types::service::Service;
use shoal_types::task::{Task, TaskState};
use shoal_types::{Id, Node, Timestamp};

use crate::ops::{Applied, Event, Kind, Op, OpError, Proposal};

#[path = "attach.rs"]
mod attach;
#[path = "delta.rs"]
mod delta;
#[path = "payloads.rs"]
mod payloads;
pub use delta::{Delta, TaskTouch};

#[derive(Debug, Clone, Default)]
pub struct State {
    /// Raft log index of the last applied entry: the store's version.
    pub version: u64,
    nodes: OrdMap<Id, Arc<Node>>,
    services: OrdMap<Id, Arc<Service>>,
    tasks: OrdMap<Id, Arc<Task>>,
    cluster: Option<Arc<Cluster>>,
    service_names: OrdMap<String, Id>,
    tasks_by_service: OrdMap<Id, OrdSet<Id>>,
    tasks_by_node: OrdMap<Id, OrdSet<Id>>,
    networks: OrdMap<Id, Arc<Network>>,
    network_names: OrdMap<String, Id>,
    /// Secrets and configs (IDs are unique across both), and their names per kind.
    payloads: OrdMap<Id, Arc<Payload>>,
    payload_names: OrdMap<(PayloadKind, String), Id>,
    /// Addresses and ports held, derived from the objects above.
    book: attach::Book,
}

impl State {
    pub fn node(&self, id: &Id) -> Option<&Arc<Node>> {
        self.nodes.get(id)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        self.nodes.values()
    }

    pub fn service(&self, id: &Id) -> Option<&Arc<Service>> {
        self.services.get(id)
    }

    pub fn service_by_name(&self, name: &str) -> Option<&Arc<Service>> {
        self.service_names
            .get(name)
            .and_then(|id| self.services.get(id))
    }

    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.values()
    }

    pub fn task(&self, id: &Id) -> Option<&Arc<Task>> {
        self.tasks.get(id)
    }

    pub fn tasks(&self) -> impl Iterator<Item = &Arc<Task>> {
        self.tasks.values()
    }

    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    pub fn tasks_of_service(&self, service: &Id) -> impl Iterator<Item = &Arc<Task>> {
        self.tasks_by_service
            .get(service)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.tasks.get(id))
    }

    pub fn tasks_on_node(&self, node: &Id) -> impl Iterator<Item = &Arc<Task>> {
        self.tasks_by_node
            .get(node)
            .into_iter()
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.tasks.get(id))
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    pub fn network(&self, id: &Id) -> Option<&Arc<Network>> {
        self.networks.get(id)
    }

    pub fn network_by_name(&self, name: &str) -> Option<&Arc<Network>> {
        self.network_names
            .get(name)
            .and_then(|id| self.networks.get(id))
    }

    pub fn networks(&self) -> impl Iterator<Item = &Arc<Network>> {
        self.networks.values()
    }

    /// Applies one log entry's proposal at `version`. Returns the per-op results and the events
    /// describing what changed (empty when nothing did).
    pub fn apply(&mut self, version: u64, p: &Proposal) -> (Applied, Vec<Event>) {
        self.version = version;
        let mut events = Vec::new();
        let mut results = Vec::with_capacity(p.ops.len());
        if p.atomic {
            let mut next = self.clone();
            let mut failed = false;
            for op in &p.ops {
                let r = if failed {
                    Err(OpError::Aborted)
                } else {
                    next.apply_op(version, p.now, op, &mut events)
                };
                failed |= r.is_err();
                results.push(r);
            }
            if failed {
                events.clear();
                // Later ops were never tried; earlier successes were rolled back with `next`.
                for r in &mut results {
                    if r.is_ok() {
                        *r = Err(OpError::Aborted);
                    }
                }
            } else {
                *self = next;
            }
        } else {
            for op in &p.ops {
                results.push(self.apply_op(version, p.now, op, &mut events));
            }
        }
        (Applied { version, results }, events)
    }

    fn apply_op(
        &mut self,
        version: u64,
        now: Timestamp,
        op: &Op,
        ev: &mut Vec<Event>,
    ) -> Result<(), OpError> {
        match op {
            Op::CreateNode(n) => {
                if self.nodes.contains_key(&n.id) {
                    return Err(OpError::Exists {
                        kind: Kind::Node,
                        id: n.id.clone(),
                    });
                }
                let mut n = n.clone();
                n.meta.version = version;
                n.meta.created_at = now;
                n.meta.updated_at = now;
                ev.push(event(Kind::Node, &n.id, false));
                self.nodes.insert(n.id.clone(), Arc::new(n));
            }
            Op::UpdateNode {
                node,
                expect_version,
            } => {
                let cur = self
                    .nodes
                    .get(&node.id)
                    .ok_or_else(|| not_found(Kind::Node, &node.id))?;
                check_version(Kind::Node, &node.id, cur.meta.version, *expect_version)?;
                let mut n = node.clone();
                n.meta.created_at = cur.meta.created_at;
                n.meta.version = version;
                n.meta.updated_at = now;
                ev.push(event(Kind::Node, &n.id, false));
                self.nodes.insert(n.id.clone(), Arc::new(n));
            }
            Op::DeleteNode { id } => {
                self.nodes
                    .remove(id)
                    .ok_or_else(|| not_found(Kind::Node, id))?;
                ev.push(event(Kind::Node, id, true));
            }
            Op::CreateService(s) => {
                if self.services.contains_key(&s.id) {
                    return Err(OpError::Exists {
                        kind: Kind::Service,
                        id: s.id.clone(),
                    });
                }
                if self.service_names.contains_key(&s.spec.name) {
                    return Err(OpError::NameInUse {
                        kind: Kind::Service,
                        name: s.spec.name.clone(),
                    });
                }
                self.check_refs(&s.spec)?;
                let mut s = s.clone();
                self.attach_service(&mut s, None)?;
                s.meta.version = version;
                s.meta.created_at = now;
                s.meta.updated_at = now;
                self.book.index_service(&s);
                self.service_names.insert(s.spec.name.clone(), s.id.clone());
                ev.push(event(Kind::Service, &s.id, false));
                self.services.insert(s.id.clone(), Arc::new(s));
            }
            Op::UpdateService {
                service,
                expect_version,
            } => {
                let cur = self
                    .services
                    .get(&service.id)
                    .ok_or_else(|| not_found(Kind::Service, &service.id))?
                    .clone();
                check_version(
                    Kind::Service,
                    &service.id,
                    cur.meta.version,
                    *expect_version,
                )?;
                self.check_refs(&service.spec)?;
                if cur.spec.name != service.spec.name {
                    if self.service_names.contains_key(&service.spec.name) {
                        return Err(OpError::NameInUse {
                            kind: Kind::Service,
                            name: service.spec.name.clone(),
                        });
                    }
                    self.service_names.remove(&cur.spec.name);
                    self.service_names
                        .insert(service.spec.name.clone(), service.id.clone());
                }
                let mut s = service.clone();
                // Released first, so that the service may keep its own port and addresses.
                self.book.unindex_service(&cur);
                if let Err(e) = self.attach_service(&mut s, Some(&cur)) {
                    self.book.index_service(&cur);
                    return Err(e);
                }
                self.book.index_service(&s);
                s.meta.created_at = cur.meta.created_at;
                s.meta.version = version;
                s.meta.updated_at = now;
                ev.push(event(Kind::Service, &s.id, false));
                self.services.insert(s.id.clone(), Arc::new(s));
            }
            Op::DeleteService { id } => {
                let cur = self
                    .services
                    .remove(id)
                    .ok_or_else(|| not_found(Kind::Service, id))?;
                self.book.unindex_service(&cur);
                self.service_names.remove(&cur.spec.name);
                ev.push(event(Kind::Service, id, true));
            }
            Op::CreateTask(t) => {
                if self.tasks.contains_key(&t.id) {
                    return Err(OpError::Exists {
                        kind: Kind::Task,
                        id: t.id.clone(),
                    });
                }
                let mut t = t.clone();
                self.attach_new_task(&mut t)?;
                t.meta.version = version;
                t.meta.created_at = now;
                t.meta.updated_at = now;
                self.put_task(t, ev);
            }
            Op::UpdateTask {
                task,
                expect_version,
            } => {
                let cur = self
                    .tasks
                    .get(&task.id)
                    .ok_or_else(|| not_found(Kind::Task, &task.id))?;
                check_version(Kind::Task, &task.id, cur.meta.version, *expect_version)?;
                let mut t = task.clone();
                t.networks = cur.networks.clone();
                t.meta.created_at = cur.meta.created_at;
                t.meta.version = version;
                t.meta.updated_at = now;
                self.put_task(t, ev);
            }
            Op::SetTaskStatus { id, status } => {
                let cur = self
                    .tasks
                    .get(id)
                    .ok_or_else(|| not_found(Kind::Task, id))?;
                if status.state < cur.status.state {
                    return Ok(());
                }
                let mut t = (**cur).clone();
                if status.state == cur.status.state {
                    if status.message == cur.status.message
                        && status.err == cur.status.err
                        && status.runtime == cur.status.runtime
                    {
                        return Ok(());
                    }
                    // Same state: keep when it was entered, refresh the details.
                    let since = t.status.timestamp;
                    t.status = status.clone();
                    t.status.timestamp = since;
                } else {
                    t.status = status.clone();
                }
                t.meta.version = version;
                t.meta.updated_at = now;
                self.put_task(t, ev);
            }
            Op::SetTaskDesired { id, desired } => {
                let cur = self
                    .tasks
                    .get(id)
                    .ok_or_else(|| not_found(Kind::Task, id))?;
                if *desired <= cur.desired_state {
                    return Ok(());
                }
                let mut t = (**cur).clone();
                t.desired_state = *desired;
                t.meta.version = version;
                t.meta.updated_at = now;
                self.put_task(t, ev);
            }
            Op::AssignTask {
                id,
                node_id,
                status,
                generic_resources,
            } => {
                let cur = self
                    .tasks
                    .get(id)
                    .ok_or_else(|| not_found(Kind::Task, id))?;
                if cur.status.state != TaskState::Pending {
                    return Err(OpError::NotPending {
                        id: id.clone(),
                        state: cur.status.state.as_str().into(),
                    });
                }
                let mut t = (**cur).clone();
                t.node_id = Some(node_id.clone());
                t.assigned_generic_resources = generic_resources.clone();
                t.status = status.clone();
                t.meta.version = version;
                t.meta.updated_at = now;
                self.put_task(t, ev);
            }
            Op::DeleteTask { id } => {
                let cur = self
                    .tasks
                    .remove(id)
                    .ok_or_else(|| not_found(Kind::Task, id))?;
                self.unindex_task(&cur);
                ev.push(event(Kind::Task, id, true));
            }
            Op::PutCluster {
                cluster,
                expect_version,
            } => {
                if let Some(cur) = &self.cluster {
                    check_version(
                        Kind::Cluster,
                        &cluster.id,
                        cur.meta.version,
                        *expect_version,
                    )?;
                }
                let mut c = cluster.clone();
                c.meta.created_at = self.cluster.as_ref().map_or(now, |cur| cur.meta.created_at);
                c.meta.version = version;
                c.meta.updated_at = now;
                ev.push(event(Kind::Cluster, &c.id, false));
                self.cluster = Some(Arc::new(c));
            }
            Op::CreateNetwork(n) => {
                if self.networks.contains_key(&n.id) {
                    return Err(OpError::Exists {
                        kind: Kind::Network,
                        id: n.id.clone(),
                    });
                }
                if self.network_names.contains_key(&n.spec.name) {
                    return Err(OpError::NameInUse {
                        kind: Kind::Network,
                        name: n.spec.name.clone(),
                    });
                }
                let subnet = n.addrs.subnet;
                if let Some(other) = self.networks.values().find(|o| {
                    o.addrs.subnet.contains(&subnet.network())
                        || subnet.contains(&o.addrs.subnet.network())
                }) {
                    return Err(OpError::SubnetInUse {
                        subnet: subnet.to_string(),
                        other: other.spec.name.clone(),
                        theirs: other.addrs.subnet.to_string(),
                    });
                }
                let mut n = n.clone();
                if n.vni == 0 || self.networks.values().any(|o| o.vni == n.vni) {
                    n.vni = self.free_vni();
                }
                n.meta.version = version;
                n.meta.created_at = now;
                n.meta.updated_at = now;
                self.network_names.insert(n.spec.name.clone(), n.id.clone());
                ev.push(event(Kind::Network, &n.id, false));
                self.networks.insert(n.id.clone(), Arc::new(n));
            }
            Op::CreatePayload(p) => self.create_payload(version, now, p, ev)?,
            Op::UpdatePayload {
                payload,
                expect_version,
            } => self.update_payload(version, now, payload, *expect_version, ev)?,
            Op::DeletePayload { kind, id } => self.delete_payload(*kind, id, ev)?,
            Op::DeleteNetwork { id } => {
                let cur = self
                    .networks
                    .get(id)
                    .ok_or_else(|| not_found(Kind::Network, id))?
                    .clone();
                self.check_network_unused(&cur)?;
                self.networks.remove(id);
                self.network_names.remove(&cur.spec.name);
                ev.push(event(Kind::Network, id, true));
            }
        }
        Ok(())
    }

    fn put_task(&mut self, t: Task, ev: &mut Vec<Event>) {
        if let Some(old) = self.tasks.get(&t.id).cloned() {
            self.unindex_task(&old);
        }
        self.book.index_task(&t);
        self.tasks_by_service
            .entry(t.service_id.clone())
            .or_default()
            .insert(t.id.clone());
        if let Some(n) = &t.node_id {
            self.tasks_by_node
                .entry(n.clone())
                .or_default()
                .insert(t.id.clone());
        }
        ev.push(event(Kind::Task, &t.id, false));
        self.tasks.insert(t.id.clone(), Arc::new(t));
    }

    fn unindex_task(&mut self, t: &Task) {
        self.book.unindex_task(t);
        remove_from_index(&mut self.tasks_by_service, &t.service_id, &t.id);
        if let Some(n) = &t.node_id {
            remove_from_index(&mut self.tasks_by_node, n, &t.id);
        }
    }

    /// Inserts a stored object as is (loading from disk or a snapshot): no version bump.
    pub(crate) fn load(&mut self, obj: Object) {
        match obj {
            Object::Node(n) => {
                self.nodes.insert(n.id.clone(), Arc::new(n));
            }
            Object::Service(s) => {
                self.book.index_service(&s);
                self.service_names.insert(s.spec.name.clone(), s.id.clone());
                self.services.insert(s.id.clone(), Arc::new(s));
            }
            Object::Task(t) => {
                let mut ev = Vec::new();
                self.put_task(t, &mut ev);
            }
            Object::Cluster(c) => self.cluster = Some(Arc::new(c)),
            Object::Network(n) => {
                self.network_names.insert(n.spec.name.clone(), n.id.clone());
                self.networks.insert(n.id.clone(), Arc::new(n));
            }
            Object::Payload(p) => {
                self.payload_names
                    .insert((p.kind, p.spec.name.clone()), p.id.clone());
                self.payloads.insert(p.id.clone(), Arc::new(p));
            }
        }
    }

    /// The stored form of one object, for persistence.
    pub(crate) fn object(&self, kind: Kind, id: &Id) -> Option<Object> {
        match kind {
            Kind::Node => self.nodes.get(id).map(|n| Object::Node((**n).clone())),
            Kind::Service => self
                .services
                .get(id)
                .map(|s| Object::Service((**s).clone())),
            Kind::Task => self.tasks.get(id).map(|t| Object::Task((**t).clone())),
            Kind::Cluster => self
                .cluster
                .as_ref()
                .map(|c| Object::Cluster((**c).clone())),
            Kind::Network => self
                .networks
                .get(id)
                .map(|n| Object::Network((**n).clone())),
            Kind::Secret | Kind::Config => self
                .payloads
                .get(id)
                .map(|p| Object::Payload((**p).clone())),
        }
    }

    /// Every object, for snapshots.
    pub(crate) fn all_objects(&self) -> Vec<Object> {
        let mut out =
            Vec::with_capacity(self.nodes.len() + self.services.len() + self.tasks.len() + 1);
        out.extend(self.cluster.iter().map(|c| Object::Cluster((**c).clone())));
        out.extend(self.nodes.values().map(|n| Object::Node((**n).clone())));
        out.extend(
            self.services
                .values()
                .map(|s| Object::Service((**s).clone())),
        );
        out.extend(self.tasks.values().map(|t| Object::Task((**t).clone())));
        out.extend(
            self.networks
                .values()
                .map(|n| Object::Network((**n).clone())),
        );
        out.extend(
            self.payloads
                .values()
                .map(|p| Object::Payload((**p).clone())),
        );
        out
    }
}

/// One stored object, tagged with its kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "object", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // transient: built to be serialised
pub enum Object {
    Node(Node),
    Service(Service),
    Task(Task),
    Cluster(Cluster),
    Network(Network),
    Payload(Payload),
}

impl Object {
    pub fn key(&self) -> String {
        match self {
            Object::Node(n) => object_key(Kind::Node, &n.id),
            Object::Service(s) => object_key(Kind::Service, &s.id),
            Object::Task(t) => object_key(Kind::Task, &t.id),
            Object::Cluster(_) => object_key(Kind::Cluster, &Id::from_raw("")),
            Object::Network(n) => object_key(Kind::Network, &n.id),
            Object::Payload(p) => object_key(p.kind.into(), &p.id),
        }
    }
}

/// The cluster object is a singleton, stored under one key whatever its ID.
pub(crate) fn object_key(kind: Kind, id: &Id) -> String {
    match kind {
        Kind::Cluster => "cluster/".to_string(),
        _ => format!("{}/{}", kind.as_str(), id),
    }
}

fn remove_from_index(index: &mut OrdMap<Id, OrdSet<Id>>, key: &Id, id: &Id) {
    let now_empty = match index.get_mut(key) {
        Some(set) => {
            set.remove(id);
            set.is_empty()
        }
        None => false,
    };
    if now_empty {
        index.remove(key);
    }
}

fn event(kind: Kind, id: &Id, deleted: bool) -> Event {
    Event {
        kind,
        id: id.clone(),
        deleted,
    }
}

fn not_found(kind: Kind, id: &Id) -> OpError {
    OpError::NotFound {
        kind,
        id: id.clone(),
    }
}

fn check_version(kind: Kind, id: &Id, current: u64, expected: Option<u64>) -> Result<(), OpError> {
    match expected {
        Some(e) if e != current => Err(OpError::VersionConflict {
            kind,
            id: id.clone(),
            current,
            expected: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
