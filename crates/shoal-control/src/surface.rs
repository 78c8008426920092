//! The two handles a front end receives: the node it runs on ([`NodeSurface`]) and, when that
//! node is a manager, the manager's control surface ([`ControlSurface`]) with its read views
//! ([`ClusterView`]). Implemented by the node and the manager; front ends hold them as trait
//! objects and never see what lies behind.
//!
//! Concurrency: every method takes `&self`; a [`ClusterView`] is an immutable snapshot, so a
//! handler that reads several things from one view sees them as of one moment.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use shoal_runtime::{LogOptions, LogStream, RuntimeDriver, RuntimeError};
use shoal_types::cluster::{Cluster, ClusterSpec, NetworkSettings};
use shoal_types::node::{Availability, NodeSpec};
use shoal_types::payload::{self, Payload, PayloadKind, PayloadSpec};
use shoal_types::service::{Service, ServiceSpec};
use shoal_types::task::Task;
use shoal_types::{Id, Network, NetworkSpec, Node, Timestamp};

use crate::certs::{ApiCertRequest, ApiCertificate};
use crate::error::{ControlError, NodeError};
use crate::views::{Quorum, RaftMembership, Rotated, ServiceStatus};

/// An iterator over a view's objects.
pub type Objects<'a, T> = Box<dyn Iterator<Item = &'a Arc<T>> + 'a>;

/// One consistent snapshot of the cluster's objects, with the lookups and views front ends need.
pub trait ClusterView: Send + Sync {
    /// The version of the state this snapshot shows.
    fn version(&self) -> u64;
    fn cluster(&self) -> Option<&Arc<Cluster>>;
    fn services(&self) -> Objects<'_, Service>;
    fn service(&self, id: &Id) -> Option<&Arc<Service>>;
    fn nodes(&self) -> Objects<'_, Node>;
    fn node(&self, id: &Id) -> Option<&Arc<Node>>;
    fn tasks(&self) -> Objects<'_, Task>;
    fn task(&self, id: &Id) -> Option<&Arc<Task>>;
    fn tasks_of_service<'a>(&'a self, service: &'a Id) -> Objects<'a, Task>;
    /// By full ID, then name, then unambiguous ID prefix, as the Docker API resolves services.
    fn find_service(&self, key: &str) -> Result<Arc<Service>, ControlError>;
    /// By full ID, then name or hostname, then unambiguous ID prefix.
    fn find_node(&self, key: &str) -> Result<Arc<Node>, ControlError>;
    /// By full ID, then unambiguous ID prefix.
    fn find_task(&self, key: &str) -> Result<Arc<Task>, ControlError>;
    /// The service's running, desired and completed task counts.
    fn service_status(&self, service: &Service) -> ServiceStatus;
    fn networks(&self) -> Objects<'_, Network>;
    /// By full ID, then name, then unambiguous ID prefix.
    fn find_network(&self, key: &str) -> Result<Arc<Network>, ControlError>;
    /// Every secret or every config.
    fn payloads(&self, kind: PayloadKind) -> Objects<'_, Payload>;
    /// By full ID, then name, then unambiguous ID prefix.
    fn find_payload(&self, kind: PayloadKind, key: &str) -> Result<Arc<Payload>, ControlError>;
}

/// The manager's control surface: validated writes (each carrying the version the caller read,
/// so a change based on a stale read is refused) and read views.
/// The versions a manager's state reaches, one call at a time.
#[async_trait]
pub trait ChangeFeed: Send {
    /// Waits for the next applied change and answers the version after it; `None` once the
    /// manager stopped. Changes that come faster than the caller reads are coalesced: the
    /// caller reads the view again and sees all of them.
    async fn next(&mut self) -> Option<u64>;
}

#[async_trait]
pub trait ControlSurface: Send + Sync {
    /// The cluster's objects as this manager holds them now.
    fn view(&self) -> Arc<dyn ClusterView>;
    /// A feed of the versions the cluster's state reaches from now on, for front ends that
    /// push changes to their clients (Kubernetes watches).
    fn changes(&self) -> Box<dyn ChangeFeed>;
    /// The Raft group as this manager sees it.
    fn raft(&self) -> RaftMembership;
    /// How many voting managers are reachable, from `view`'s nodes and the Raft group.
    fn quorum(&self, view: &dyn ClusterView) -> Quorum;
    /// The cluster object; unavailable before the swarm is initialised.
    fn cluster(&self) -> Result<Arc<Cluster>, ControlError>;

    async fn create_service(&self, spec: ServiceSpec) -> Result<Arc<Service>, ControlError>;
    /// Replaces a service's spec, or with `rollback` returns to the previous one.
    async fn update_service(
        &self,
        key: &str,
        version: u64,
        spec: ServiceSpec,
        rollback: bool,
    ) -> Result<Arc<Service>, ControlError>;
    async fn remove_service(&self, key: &str) -> Result<(), ControlError>;

    async fn update_node(
        &self,
        key: &str,
        version: u64,
        spec: NodeSpec,
    ) -> Result<Arc<Node>, ControlError>;
    async fn remove_node(&self, key: &str, force: bool) -> Result<(), ControlError>;

    /// An overlay network, its subnet from the address pools unless one is asked for.
    async fn create_network(&self, spec: NetworkSpec) -> Result<Arc<Network>, ControlError>;
    async fn remove_network(&self, key: &str) -> Result<(), ControlError>;

    /// A secret or config with its first version.
    async fn create_payload(
        &self,
        kind: PayloadKind,
        spec: PayloadSpec,
        data: payload::Bytes,
    ) -> Result<Arc<Payload>, ControlError>;
    /// Swarm's update of a secret or config: only its labels may change.
    async fn update_payload_labels(
        &self,
        kind: PayloadKind,
        key: &str,
        version: u64,
        spec: PayloadSpec,
    ) -> Result<Arc<Payload>, ControlError>;
    /// A new version under the same name; the services following the newest version roll.
    async fn rotate_payload(
        &self,
        kind: PayloadKind,
        key: &str,
        data: payload::Bytes,
    ) -> Result<Rotated, ControlError>;
    /// Refused while a service uses it.
    async fn remove_payload(&self, kind: PayloadKind, key: &str) -> Result<(), ControlError>;

    /// Updates the swarm's settings, optionally rotating the join tokens.
    async fn update_cluster(
        &self,
        version: u64,
        spec: ClusterSpec,
        rotate_worker: bool,
        rotate_manager: bool,
    ) -> Result<Arc<Cluster>, ControlError>;

    /// Replaces the autolock unlock key (`swarm unlock-key --rotate`); refused while autolock
    /// is off.
    async fn rotate_unlock_key(&self, version: u64) -> Result<Arc<Cluster>, ControlError>;

    /// Signs an API certificate (a user's client certificate, or a daemon's API server
    /// certificate) with the cluster's root, valid from `now`. Writes nothing: the certificate
    /// is the only record, as with dockerd's.
    fn issue_api_certificate(
        &self,
        req: &ApiCertRequest,
        now: Timestamp,
    ) -> Result<ApiCertificate, ControlError>;
}

pub struct InitRequest {
    pub advertise_addr: Option<String>,
    pub listen_addr: String,
    pub spec: ClusterSpec,
    pub availability: Availability,
    pub force_new_cluster: bool,
    /// Address pools and data path port, checked.
    pub network: NetworkSettings,
}

pub struct JoinRequest {
    /// A manager to ask (`ip:port`); the first that answers is used.
    pub remote_addrs: Vec<String>,
    pub token: String,
    pub advertise_addr: Option<String>,
    pub listen_addr: String,
    pub availability: Availability,
}

/// The swarm this node is in, as a front end needs it.
#[derive(Clone)]
pub struct Membership {
    pub node_id: Id,
    /// The address other nodes reach this one on (`ip:port`).
    pub advertise_addr: String,
    /// Manager endpoints last known.
    pub managers: Vec<String>,
    /// This node's manager, when it is one.
    pub manager: Option<Arc<dyn ControlSurface>>,
}

/// What a front end may ask of the node it runs on.
#[async_trait]
pub trait NodeSurface: Send + Sync {
    /// Creates a new swarm with this node as its only manager; returns the node's ID.
    async fn swarm_init(&self, req: InitRequest) -> Result<Id, NodeError>;
    async fn swarm_join(&self, req: JoinRequest) -> Result<(), NodeError>;
    async fn swarm_leave(&self, force: bool) -> Result<(), NodeError>;
    /// Whether this node is a manager of an autolocked swarm that restarted and waits for its
    /// unlock key: it then serves nothing but [`NodeSurface::swarm_unlock`].
    fn locked(&self) -> bool {
        false
    }
    /// Opens a locked manager's keys with the unlock key (`SWMKEY-1-...`) and starts it.
    async fn swarm_unlock(&self, _key: &str) -> Result<(), NodeError> {
        Err(NodeError::NotLocked)
    }
    /// The swarm this node is in, if any.
    async fn swarm(&self) -> Option<Membership>;
    /// A task's output, from the node that runs it (`node`: its ID and RPC endpoint).
    async fn task_logs(
        &self,
        task_id: &Id,
        node: Option<(&Id, &str)>,
        opts: LogOptions,
    ) -> Result<LogStream, RuntimeError>;
    fn data_dir(&self) -> &Path;
    /// The node's runtime, for the image and volume endpoints.
    fn driver(&self) -> Arc<dyn RuntimeDriver>;
    fn runtime_name(&self) -> &'static str;
    /// The node as a Docker Engine: its containers and their execs.
    fn engine(&self) -> Arc<dyn crate::Engine>;
}
