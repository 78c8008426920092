//! The control API: every user-facing read and write, validated, in terms of the object model.
//! Front ends (the Docker API today) translate to these calls; no stage knows which front end a
//! request came from.
//!
//! Writes carry the version the caller read (`version`), so a change based on a stale read is
//! refused instead of silently undoing someone else's.

use std::sync::{Arc, Mutex};

use shoal_store::{Op, Proposal, State, Store};
use shoal_types::cluster::{Cluster, ClusterSpec};
use shoal_types::dispatch::{JoinRequest, JoinResponse, RenewRequest, RenewResponse};
use shoal_types::image_ref::ImageRef;
use shoal_types::node::{ManagerStatus, NodeRole, NodeSpec, NodeState, Reachability};
use shoal_types::service::{Service, ServiceMode, ServiceSpec, UpdateState, UpdateStatus};
use shoal_types::task::Task;
use shoal_types::{Clock, Id, IdGen, Node};

use crate::error::{self, ControlError};
use crate::validate;

/// How long a write waits for this manager to apply it after the leader committed it.
const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct Control {
    store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    ids: Arc<Mutex<IdGen>>,
}

impl Control {
    pub fn new(store: Store, clock: Arc<dyn Clock>, ids: Arc<Mutex<IdGen>>) -> Self {
        Control { store, clock, ids }
    }

    pub fn view(&self) -> Arc<State> {
        self.store.view()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn next_id(&self) -> Id {
        match self.ids.lock() {
            Ok(mut g) => g.next_id(),
            Err(poisoned) => poisoned.into_inner().next_id(),
        }
    }

    pub(crate) async fn write(&self, ops: Vec<Op>) -> Result<u64, ControlError> {
        let applied = self
            .store
            .propose(Proposal::atomic(self.clock.now(), ops))
            .await
            .map_err(error::from_propose)?;
        match applied.first_error() {
            Some(e) => Err(error::from_op(e)),
            None => {
                self.applied_here(applied.version).await;
                Ok(applied.version)
            }
        }
    }

    /// Waits (briefly) until this manager's own state includes `version`. On a follower a write
    /// is forwarded and committed by the leader before this member applies it, and callers read
    /// back what they wrote ("created service vanished" otherwise).
    async fn applied_here(&self, version: u64) {
        let mut states = self.store.subscribe();
        let caught_up = async {
            while states.borrow_and_update().version < version {
                if states.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(APPLY_WAIT, caught_up).await.is_err() {
            tracing::warn!(
                version,
                "a committed write is not applied on this manager yet; reads may lag"
            );
        }
    }

    // -- lookups --------------------------------------------------------------------------

    /// By full ID, then name, then unambiguous ID prefix, as the Docker API resolves services.
    pub fn find_service(view: &State, key: &str) -> Result<Arc<Service>, ControlError> {
        if let Some(s) = view.service(&Id::from_raw(key)) {
            return Ok(s.clone());
        }
        if let Some(s) = view.service_by_name(key) {
            return Ok(s.clone());
        }
        unique_prefix(
            "service",
            key,
            view.services()
                .filter(|s| s.id.as_str().starts_with(key))
                .cloned(),
        )
    }

    /// By full ID, then name or hostname, then unambiguous ID prefix.
    pub fn find_node(view: &State, key: &str) -> Result<Arc<Node>, ControlError> {
        if let Some(n) = view.node(&Id::from_raw(key)) {
            return Ok(n.clone());
        }
        let by_name: Vec<_> = view
            .nodes()
            .filter(|n| n.display_name() == key)
            .cloned()
            .collect();
        match by_name.len() {
            1 => return Ok(by_name[0].clone()),
            n if n > 1 => {
                return Err(ControlError::Ambiguous {
                    kind: "node",
                    prefix: key.to_string(),
                    matches: n,
                });
            }
            _ => {}
        }
        unique_prefix(
            "node",
            key,
            view.nodes()
                .filter(|n| n.id.as_str().starts_with(key))
                .cloned(),
        )
    }

    pub fn find_task(view: &State, key: &str) -> Result<Arc<Task>, ControlError> {
        if let Some(t) = view.task(&Id::from_raw(key)) {
            return Ok(t.clone());
        }
        unique_prefix(
            "task",
            key,
            view.tasks()
                .filter(|t| t.id.as_str().starts_with(key))
                .cloned(),
        )
    }

    // -- services -------------------------------------------------------------------------

    /// Creates a service; one without a name gets a generated one, as in Swarm.
    pub async fn create_service(
        &self,
        mut spec: ServiceSpec,
    ) -> Result<Arc<Service>, ControlError> {
        if spec.name.is_empty() {
            let view = self.view();
            let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            // After a few collisions (about a thousand names exist), add a number as Docker does.
            spec.name = (0u64..)
                .map(|attempt| match crate::names::random_name(&mut ids) {
                    n if attempt < 16 => n,
                    n => format!("{n}{}", attempt - 15),
                })
                .find(|n| view.service_by_name(n).is_none())
                .unwrap_or_default();
        }
        validate::check_service_spec(&spec)?;
        let view = self.view();
        validate::check_dependency_cycle(
            &spec,
            view.services()
                .map(|s| (s.spec.name.as_str(), &s.spec.labels)),
        )?;
        Self::resolve_service_networks(&self.view(), &mut spec)?;
        Self::resolve_service_payloads(&self.view(), &mut spec)?;
        if self.view().service_by_name(&spec.name).is_some() {
            return Err(ControlError::Conflict(format!(
                "service name {:?} is already in use",
                spec.name
            )));
        }
        let service = Service {
            id: self.next_id(),
            spec,
            ..Default::default()
        };
        let id = service.id.clone();
        self.write(vec![Op::CreateService(service)]).await?;
        self.view()
            .service(&id)
            .cloned()
            .ok_or_else(|| ControlError::Internal("created service vanished".into()))
    }

    /// Replaces a service's spec (keeping the old one for rollback), or with `rollback` returns
    /// to the previous spec. `version` is the service version the caller based the change on.
    pub async fn update_service(
        &self,
        key: &str,
        version: u64,
        spec: ServiceSpec,
        rollback: bool,
    ) -> Result<Arc<Service>, ControlError> {
        let view = self.view();
        let cur = Self::find_service(&view, key)?;
        if cur.meta.version != version {
            return Err(ControlError::Conflict(format!(
                "update out of sequence: service {} is at version {}, the update was based on version {version}; inspect it and retry",
                cur.spec.name, cur.meta.version
            )));
        }
        let mut spec = spec;
        if same_image(&cur.spec.task.container.image, &spec.task.container.image) {
            // docker's client writes `:latest` out on every create and update
            // (`imageWithTagString`): a service made without it (by the Python SDK, by `shoal
            // up`) and then scaled with the docker CLI arrives as `app:latest` for `app`. The
            // same image, so the service keeps it as written, and the scale restarts nothing.
            spec.task.container.image = cur.spec.task.container.image.clone();
        }
        let mut next = (*cur).clone();
        if rollback {
            let Some(prev) = cur.previous_spec.clone() else {
                return Err(ControlError::FailedPrecondition(format!(
                    "service {} does not have a previous spec",
                    cur.spec.name
                )));
            };
            next.previous_spec = Some(cur.spec.clone());
            next.spec = prev;
            next.update_status = Some(UpdateStatus {
                state: UpdateState::RollbackStarted,
                started_at: self.clock.now(),
                completed_at: Default::default(),
                message: "manually requested rollback".into(),
            });
        } else {
            validate::check_service_update(&cur.spec, &spec)?;
            validate::check_dependency_cycle(
                &spec,
                view.services()
                    .filter(|s| s.id != cur.id)
                    .map(|s| (s.spec.name.as_str(), &s.spec.labels)),
            )?;
            Self::resolve_service_networks(&view, &mut spec)?;
            Self::resolve_service_payloads(&view, &mut spec)?;
            if spec.name != cur.spec.name {
                validate::check_name("Name", &spec.name)?;
            }
            if is_scale_or_relabel(&cur.spec, &spec) {
                // Not a new revision: an update in progress goes on, and its rollback target
                // takes the new count and labels, so a rollback never undoes a scale. (Swarm
                // makes the scaled spec the rollback target, and a failed update then "rolls
                // back" to the very spec that failed.)
                next.previous_spec = cur.previous_spec.clone().map(|mut p| {
                    p.mode = spec.mode.clone();
                    p.labels = spec.labels.clone();
                    p
                });
            } else {
                next.previous_spec = Some(cur.spec.clone());
                next.update_status = None;
            }
            next.spec = spec;
        }
        let id = next.id.clone();
        self.write(vec![Op::UpdateService {
            service: next,
            expect_version: Some(version),
        }])
        .await?;
        self.view()
            .service(&id)
            .cloned()
            .ok_or_else(|| ControlError::Internal("updated service vanished".into()))
    }

    /// Deletes the service; the orchestrator then stops and removes its tasks.
    pub async fn remove_service(&self, key: &str) -> Result<(), ControlError> {
        let cur = Self::find_service(&self.view(), key)?;
        self.write(vec![Op::DeleteService { id: cur.id.clone() }])
            .await
            .map(|_| ())
    }

    // -- nodes ----------------------------------------------------------------------------

    pub async fn update_node(
        &self,
        key: &str,
        version: u64,
        spec: NodeSpec,
    ) -> Result<Arc<Node>, ControlError> {
        validate::check_node_spec(&spec)?;
        let view = self.view();
        let cur = Self::find_node(&view, key)?;
        if cur.meta.version != version {
            return Err(ControlError::Conflict(format!(
                "update out of sequence: node {} is at version {}, the update was based on version {version}; inspect it and retry",
                cur.display_name(),
                cur.meta.version
            )));
        }
        let mut next = (*cur).clone();
        if cur.spec.role != spec.role {
            match spec.role {
                NodeRole::Worker => {
                    self.check_demotion(&view, &cur)?;
                    // The leader's membership loop takes it out of the Raft group; the node
                    // sees its new role and steps down.
                    next.manager = None;
                }
                NodeRole::Manager => {
                    // The node sees its new role, renews its certificate as a manager and asks
                    // the leader to join the Raft group under this member ID.
                    let raft_id = self
                        .ids
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .next_u64()
                        .max(1);
                    next.manager = Some(ManagerStatus {
                        raft_id,
                        addr: cur.status.endpoint.clone(),
                        reachability: Reachability::Unknown,
                    });
                }
            }
        }
        next.spec = spec;
        let id = next.id.clone();
        self.write(vec![Op::UpdateNode {
            node: next,
            expect_version: Some(version),
        }])
        .await?;
        self.view()
            .node(&id)
            .cloned()
            .ok_or_else(|| ControlError::Internal("updated node vanished".into()))
    }

    /// Refuses a demotion that would leave no manager or cost the Raft group its quorum.
    fn check_demotion(&self, view: &State, node: &Node) -> Result<(), ControlError> {
        let managers: Vec<&Arc<Node>> = view
            .nodes()
            .filter(|n| n.spec.role == NodeRole::Manager)
            .collect();
        if managers.len() <= 1 {
            return Err(ControlError::FailedPrecondition(
                "attempting to demote the last manager of the swarm".into(),
            ));
        }
        let remaining: Vec<_> = managers.iter().filter(|n| n.id != node.id).collect();
        let reachable = remaining
            .iter()
            .filter(|n| n.status.state == NodeState::Ready)
            .count();
        if reachable * 2 <= remaining.len() {
            return Err(ControlError::FailedPrecondition(format!(
                "can't demote {}: only {reachable} of the {} other managers are reachable, so the swarm would lose its quorum",
                node.display_name(),
                remaining.len()
            )));
        }
        Ok(())
    }

    /// Admits a joining node (see [`crate::cluster::join`]).
    pub async fn join(&self, req: &JoinRequest) -> Result<JoinResponse, ControlError> {
        let now = self.clock.now();
        let (ops, resp) = {
            let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            crate::cluster::join(&self.view(), req, now, &mut ids)?
        };
        self.write(ops).await?;
        Ok(resp)
    }

    /// Renews a node's certificate (see [`crate::cluster::renew`]).
    pub async fn renew(
        &self,
        node_id: &Id,
        req: &RenewRequest,
    ) -> Result<RenewResponse, ControlError> {
        let (ops, resp) = crate::cluster::renew(&self.view(), node_id, req, self.clock.now())?;
        self.write(ops).await?;
        Ok(resp)
    }

    pub async fn remove_node(&self, key: &str, force: bool) -> Result<(), ControlError> {
        let view = self.view();
        let cur = Self::find_node(&view, key)?;
        if cur.spec.role == NodeRole::Manager || cur.manager.is_some() {
            return Err(ControlError::FailedPrecondition(format!(
                "rpc error: node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal",
                cur.id
            )));
        }
        if !force && cur.status.state == NodeState::Ready {
            return Err(ControlError::FailedPrecondition(format!(
                "node {} is not down and can't be removed",
                cur.id
            )));
        }
        let mut cluster = (**view
            .cluster()
            .ok_or_else(|| ControlError::Unavailable("no cluster object".into()))?)
        .clone();
        let expect = cluster.meta.version;
        cluster.removed_nodes.insert(cur.id.clone());
        // Atomic: the node goes, its certificate stops working, and its containers' places on
        // overlays are given back, together.
        let mut ops = vec![
            Op::DeleteNode { id: cur.id.clone() },
            Op::PutCluster {
                cluster,
                expect_version: Some(expect),
            },
        ];
        ops.extend(crate::attachments::attachments_of_node(&view, &cur.id));
        self.write(ops).await.map(|_| ())
    }

    // -- cluster --------------------------------------------------------------------------

    pub fn cluster(&self) -> Result<Arc<Cluster>, ControlError> {
        self.view().cluster().cloned().ok_or_else(|| {
            ControlError::Unavailable("the cluster object does not exist yet".into())
        })
    }

    /// Updates the swarm's settings; can also rotate the join tokens, and starts a root CA
    /// rotation when `spec.ca_force_rotate` changes.
    pub async fn update_cluster(
        &self,
        version: u64,
        spec: ClusterSpec,
        rotate_worker: bool,
        rotate_manager: bool,
    ) -> Result<Arc<Cluster>, ControlError> {
        let cur = self.cluster()?;
        if cur.meta.version != version {
            return Err(ControlError::Conflict(format!(
                "update out of sequence: the swarm is at version {}, the update was based on version {version}; inspect it and retry",
                cur.meta.version
            )));
        }
        if spec.task_history_limit < -1 {
            return Err(ControlError::invalid(
                "Orchestration.TaskHistoryRetentionLimit",
                format!(
                    "must be -1 (keep all) or more, got {}",
                    spec.task_history_limit
                ),
            ));
        }
        if spec.ca_force_rotate != cur.spec.ca_force_rotate && cur.root_rotation.is_some() {
            return Err(ControlError::FailedPrecondition(
                "a root CA rotation is already in progress; wait for it to finish".into(),
            ));
        }
        let mut next = (*cur).clone();
        next.spec = spec;
        {
            let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            crate::cluster::rotate(
                &cur,
                &mut next,
                rotate_worker,
                rotate_manager,
                self.clock.now(),
                &mut ids,
            )?;
        }
        crate::autolock::unlock_key_step(Some(&cur), &mut next, false)?;
        self.write(vec![Op::PutCluster {
            cluster: next,
            expect_version: Some(version),
        }])
        .await?;
        self.cluster()
    }
}

pub(crate) fn unique_prefix<T>(
    kind: &'static str,
    key: &str,
    matches: impl Iterator<Item = Arc<T>>,
) -> Result<Arc<T>, ControlError> {
    if key.is_empty() {
        return Err(ControlError::NotFound {
            kind,
            name: "\"\"".into(),
        });
    }
    let found: Vec<_> = matches.collect();
    match found.len() {
        0 => Err(ControlError::NotFound {
            kind,
            name: key.to_string(),
        }),
        1 => Ok(found[0].clone()),
        _ => Err(ControlError::Ambiguous {
            kind,
            prefix: key.to_string(),
            matches: found.len(),
        }),
    }
}

/// Whether two image references name the same image once an implied `latest` tag and Docker
/// Hub's implied names are written out (`app`, `app:latest`, `docker.io/library/app:latest`).
fn same_image(a: &str, b: &str) -> bool {
    let norm = |s: &str| ImageRef::parse(s).ok().map(|r| (r.tagged(), r.digested()));
    a == b || norm(a).is_some_and(|x| Some(x) == norm(b))
}

/// Whether `new` differs from `cur` only in a replicated service's replica count or the
/// service's labels. A spec that does not differ at all is not one: as in Swarm, writing the same
/// spec (`service update --image` to the image it runs) is a new revision, which `service
/// rollback` can undo.
fn is_scale_or_relabel(cur: &ServiceSpec, new: &ServiceSpec) -> bool {
    let (ServiceMode::Replicated { .. }, ServiceMode::Replicated { .. }) = (&cur.mode, &new.mode)
    else {
        return false;
    };
    if cur == new {
        return false;
    }
    let mut same = cur.clone();
    same.mode = new.mode.clone();
    same.labels = new.labels.clone();
    same == *new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicated(replicas: u64) -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            mode: ServiceMode::Replicated { replicas },
            ..Default::default()
        }
    }

    #[test]
    fn an_image_with_its_implied_tag_written_out_is_the_same_image() {
        assert!(same_image("app", "app:latest"));
        assert!(same_image("host", "host:latest"));
        assert!(same_image("busybox", "docker.io/library/busybox:latest"));
        assert!(!same_image("app", "app:2"));
        assert!(!same_image("app:latest", "other:latest"));
        assert!(!same_image(
            "app",
            "app@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        ));
        assert!(!same_image("not a ref", "not a ref:latest"));
    }

    #[test]
    fn a_scale_or_a_relabel_is_not_a_new_revision() {
        let cur = replicated(2);
        assert!(is_scale_or_relabel(&cur, &replicated(5)));
        let mut labelled = replicated(2);
        labelled.labels.insert("team".into(), "a".into());
        assert!(is_scale_or_relabel(&cur, &labelled));
        // The same spec again is a new revision (one `service rollback` can undo).
        assert!(!is_scale_or_relabel(&cur, &cur.clone()));

        let mut image = replicated(5);
        image.task.container.image = "app:2".into();
        assert!(!is_scale_or_relabel(&cur, &image));
        let mut update = replicated(2);
        update.update = Some(Default::default());
        assert!(!is_scale_or_relabel(&cur, &update));
        let global = ServiceSpec {
            mode: ServiceMode::Global,
            ..replicated(0)
        };
        assert!(!is_scale_or_relabel(&global, &global.clone()));
    }
}
