//! Read views for front ends, computed here from the store so front ends never read it:
//! [`Snapshot`] (the cluster's objects as of one state version, with lookups and per-service
//! task counts), the Raft membership and the managers' quorum. Also where [`Manager`] becomes
//! the front ends' [`ControlSurface`].

use std::sync::Arc;

use async_trait::async_trait;
use shoal_control::surface::Objects;
use shoal_control::views::{Quorum, RaftMembership, Rotated, ServiceStatus};
use shoal_control::{ApiCertRequest, ApiCertificate, ClusterView, ControlSurface};
use shoal_store::{State, Store};
use shoal_types::cluster::{Cluster, ClusterSpec};
use shoal_types::node::{NodeRole, NodeSpec, NodeState};
use shoal_types::payload::{self, Payload, PayloadKind, PayloadSpec};
use shoal_types::service::{Service, ServiceMode, ServiceSpec};
use shoal_types::task::{Task, TaskState};
use shoal_types::{Id, Network, NetworkSpec, Node, Timestamp};

use crate::error::ControlError;
use crate::{Control, Manager};

/// The store's state at one version, as a front end reads it.
pub struct Snapshot(pub Arc<State>);

impl ClusterView for Snapshot {
    fn version(&self) -> u64 {
        self.0.version
    }

    fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.0.cluster()
    }

    fn services(&self) -> Objects<'_, Service> {
        Box::new(self.0.services())
    }

    fn service(&self, id: &Id) -> Option<&Arc<Service>> {
        self.0.service(id)
    }

    fn nodes(&self) -> Objects<'_, Node> {
        Box::new(self.0.nodes())
    }

    fn node(&self, id: &Id) -> Option<&Arc<Node>> {
        self.0.node(id)
    }

    fn tasks(&self) -> Objects<'_, Task> {
        Box::new(self.0.tasks())
    }

    fn task(&self, id: &Id) -> Option<&Arc<Task>> {
        self.0.task(id)
    }

    fn tasks_of_service<'a>(&'a self, service: &'a Id) -> Objects<'a, Task> {
        Box::new(self.0.tasks_of_service(service))
    }

    fn networks(&self) -> Objects<'_, Network> {
        Box::new(self.0.networks())
    }

    fn find_network(&self, key: &str) -> Result<Arc<Network>, ControlError> {
        Control::find_network(&self.0, key)
    }

    fn payloads(&self, kind: PayloadKind) -> Objects<'_, Payload> {
        Box::new(self.0.payloads(kind))
    }

    fn find_payload(&self, kind: PayloadKind, key: &str) -> Result<Arc<Payload>, ControlError> {
        Control::find_payload(&self.0, kind, key)
    }

    fn find_service(&self, key: &str) -> Result<Arc<Service>, ControlError> {
        Control::find_service(&self.0, key)
    }

    fn find_node(&self, key: &str) -> Result<Arc<Node>, ControlError> {
        Control::find_node(&self.0, key)
    }

    fn find_task(&self, key: &str) -> Result<Arc<Task>, ControlError> {
        Control::find_task(&self.0, key)
    }

    fn service_status(&self, service: &Service) -> ServiceStatus {
        service_status(&self.0, service)
    }
}

/// Running, desired and completed task counts, as `docker service ls` shows them. Only tasks on
/// nodes that are up count as running.
pub fn service_status(view: &State, s: &Service) -> ServiceStatus {
    let mut running = 0u64;
    let mut desired_running = 0u64;
    let mut completed = 0u64;
    for t in view.tasks_of_service(&s.id) {
        let node_up = t
            .node_id
            .as_ref()
            .and_then(|n| view.node(n))
            .is_some_and(|n| n.status.state != NodeState::Down);
        if t.status.state == TaskState::Running && node_up {
            running += 1;
        }
        if t.desired_state == TaskState::Running && !t.status.state.is_terminal() {
            desired_running += 1;
        }
        if t.status.state == TaskState::Complete {
            completed += 1;
        }
    }
    let desired = match s.spec.mode {
        ServiceMode::Replicated { replicas } => replicas,
        ServiceMode::ReplicatedJob {
            max_concurrent,
            total_completions,
        } => max_concurrent.min(total_completions.saturating_sub(completed)),
        ServiceMode::Global | ServiceMode::GlobalJob => desired_running,
    };
    ServiceStatus {
        running,
        desired,
        completed,
    }
}

/// The Raft leader and voters as this manager sees them.
pub fn raft_membership(store: &Store) -> RaftMembership {
    RaftMembership {
        leader: store.leader(),
        voters: store
            .members()
            .into_iter()
            .filter(|(_, (_, voter))| *voter)
            .map(|(id, _)| id)
            .collect(),
    }
}

/// Voting managers that lead or sit on a ready node, out of all voters.
pub fn quorum(view: &dyn ClusterView, raft: &RaftMembership) -> Quorum {
    let reachable = view
        .nodes()
        .filter(|n| n.spec.role == NodeRole::Manager)
        .filter(|n| {
            n.manager.as_ref().is_some_and(|m| {
                raft.leader == Some(m.raft_id)
                    || (raft.voters.contains(&m.raft_id) && n.status.state == NodeState::Ready)
            })
        })
        .count();
    Quorum {
        reachable,
        voters: raft.voters.len().max(1),
    }
}

/// The store's applied changes as versions.
struct Feed(tokio::sync::broadcast::Receiver<Arc<shoal_store::Changes>>);

#[async_trait]
impl shoal_control::ChangeFeed for Feed {
    async fn next(&mut self) -> Option<u64> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self.0.recv().await {
                Ok(c) => return Some(c.version),
                // Lagging only skips versions: the caller reads the whole view anyway.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[async_trait]
impl ControlSurface for Manager {
    fn view(&self) -> Arc<dyn ClusterView> {
        Arc::new(Snapshot(self.store.view()))
    }

    fn changes(&self) -> Box<dyn shoal_control::ChangeFeed> {
        Box::new(Feed(self.store.changes()))
    }

    fn raft(&self) -> RaftMembership {
        raft_membership(&self.store)
    }

    fn quorum(&self, view: &dyn ClusterView) -> Quorum {
        quorum(view, &self.raft())
    }

    fn cluster(&self) -> Result<Arc<Cluster>, ControlError> {
        self.control.cluster()
    }

    async fn create_service(&self, spec: ServiceSpec) -> Result<Arc<Service>, ControlError> {
        self.control.create_service(spec).await
    }

    async fn update_service(
        &self,
        key: &str,
        version: u64,
        spec: ServiceSpec,
        rollback: bool,
    ) -> Result<Arc<Service>, ControlError> {
        self.control
            .update_service(key, version, spec, rollback)
            .await
    }

    async fn remove_service(&self, key: &str) -> Result<(), ControlError> {
        self.control.remove_service(key).await
    }

    async fn update_node(
        &self,
        key: &str,
        version: u64,
        spec: NodeSpec,
    ) -> Result<Arc<Node>, ControlError> {
        self.control.update_node(key, version, spec).await
    }

    async fn remove_node(&self, key: &str, force: bool) -> Result<(), ControlError> {
        self.control.remove_node(key, force).await
    }

    async fn create_network(&self, spec: NetworkSpec) -> Result<Arc<Network>, ControlError> {
        self.control.create_network(spec).await
    }

    async fn remove_network(&self, key: &str) -> Result<(), ControlError> {
        self.control.remove_network(key).await
    }

    async fn create_payload(
        &self,
        kind: PayloadKind,
        spec: PayloadSpec,
        data: payload::Bytes,
    ) -> Result<Arc<Payload>, ControlError> {
        self.control.create_payload(kind, spec, data).await
    }

    async fn update_payload_labels(
        &self,
        kind: PayloadKind,
        key: &str,
        version: u64,
        spec: PayloadSpec,
    ) -> Result<Arc<Payload>, ControlError> {
        self.control
            .update_payload_labels(kind, key, version, spec)
            .await
    }

    async fn rotate_payload(
        &self,
        kind: PayloadKind,
        key: &str,
        data: payload::Bytes,
    ) -> Result<Rotated, ControlError> {
        self.control.rotate_payload(kind, key, data).await
    }

    async fn remove_payload(&self, kind: PayloadKind, key: &str) -> Result<(), ControlError> {
        self.control.remove_payload(kind, key).await
    }

    async fn update_cluster(
        &self,
        version: u64,
        spec: ClusterSpec,
        rotate_worker: bool,
        rotate_manager: bool,
    ) -> Result<Arc<Cluster>, ControlError> {
        self.control
            .update_cluster(version, spec, rotate_worker, rotate_manager)
            .await
    }

    async fn rotate_unlock_key(&self, version: u64) -> Result<Arc<Cluster>, ControlError> {
        self.control.rotate_unlock_key(version).await
    }

    fn issue_api_certificate(
        &self,
        req: &ApiCertRequest,
        now: Timestamp,
    ) -> Result<ApiCertificate, ControlError> {
        crate::api_certs::issue(&*self.control.cluster()?, req, now)
    }
}
