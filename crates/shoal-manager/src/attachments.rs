//! Standalone containers on attachable overlays: Swarm's network attachments (its
//! `ResourceAllocator.AttachNetwork` and `DetachNetwork`). A node's engine asks for a
//! container's place on an overlay before it wires the container; the manager answers with an
//! address from the network's pool, recorded as an attachment task on that node (see
//! [`shoal_types::Task::attachment`]), so the node's network map carries the overlay and every
//! node on it learns the container's address and names.
//!
//! What to write is decided by pure functions of a snapshot ([`plan_attach`],
//! [`detach_ops`]); the state machine checks uniqueness again, so two managers answering the
//! same request from the same view make one attachment, and the second caller gets it too.

use shoal_store::{Op, State};
use shoal_types::dispatch::AttachRequest;
use shoal_types::network::Network;
use shoal_types::service::{NetworkAttachmentConfig, TaskSpec};
use shoal_types::task::{ContainerAttachment, NetworkAttachment, Task, TaskState, TaskStatus};
use shoal_types::{Id, Timestamp};

use crate::control::Control;
use crate::error::ControlError;

/// What an attach request comes to on a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Attach {
    /// The container is on the network already: the same answer again.
    Held(NetworkAttachment),
    /// A new attachment task, for the store to give its address.
    New(Box<Task>),
}

/// Whether `s` is a container ID as Docker makes them: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The live attachment of `container` on `network` at `node`, if there is one.
fn held<'a>(view: &'a State, node: &Id, container: &str, network: &Id) -> Option<&'a Task> {
    view.tasks_on_node(node)
        .map(|t| &**t)
        .filter(|t| !t.status.state.is_terminal())
        .find(|t| {
            t.attachment
                .as_ref()
                .is_some_and(|a| a.container_id == container)
                && t.networks.iter().any(|a| a.network == *network)
        })
}

/// Checks an attach request against `view` and says what it comes to. Refuses an unknown node
/// (404), an unknown network (404), and a network that is not attachable, as Swarm does
/// (PermissionDenied, "network NAME not manually attachable": the ingress network never is).
/// `id` names the new task, `now` its status.
pub fn plan_attach(
    view: &State,
    node: &Id,
    req: &AttachRequest,
    id: Id,
    now: Timestamp,
) -> Result<Attach, ControlError> {
    if !is_container_id(&req.container_id) {
        return Err(ControlError::invalid(
            "ContainerID",
            format!(
                "{:?} is not a full container ID (64 hexadecimal digits)",
                req.container_id
            ),
        ));
    }
    // Docker keeps names with a leading slash; the DNS answers them without.
    let name = req.container_name.trim_start_matches('/');
    if name.is_empty() {
        return Err(ControlError::invalid(
            "ContainerName",
            format!("container {} has no name", req.container_id),
        ));
    }
    if view.node(node).is_none() {
        return Err(ControlError::NotFound {
            kind: "node",
            name: node.to_string(),
        });
    }
    let network: std::sync::Arc<Network> = Control::find_network(view, &req.network)?;
    if !network.spec.attachable || network.spec.ingress {
        return Err(ControlError::PermissionDenied(format!(
            "network {} not manually attachable",
            req.network
        )));
    }
    if let Some(t) = held(view, node, &req.container_id, &network.id) {
        let a = t.networks.iter().find(|a| a.network == network.id).cloned();
        return a.map(Attach::Held).ok_or_else(|| {
            ControlError::Internal(format!("attachment {} holds no address", t.id))
        });
    }
    let mut aliases: Vec<String> = Vec::new();
    for a in req.aliases.iter().map(|a| a.trim()) {
        if !a.is_empty() && a != name && !aliases.iter().any(|b| b == a) {
            aliases.push(a.to_string());
        }
    }
    Ok(Attach::New(Box::new(Task {
        id,
        node_id: Some(node.clone()),
        spec: TaskSpec {
            networks: vec![NetworkAttachmentConfig {
                target: network.id.to_string(),
                aliases,
                ..Default::default()
            }],
            ..Default::default()
        },
        desired_state: TaskState::Running,
        // Nothing runs it: it holds its address from the moment it is made.
        status: TaskStatus {
            state: TaskState::Running,
            timestamp: now,
            message: format!("network attachment of container {name}"),
            ..Default::default()
        },
        attachment: Some(ContainerAttachment {
            container_id: req.container_id.clone(),
            container_name: name.to_string(),
        }),
        ..Default::default()
    })))
}

/// The writes that detach `container` at `node`: from the network `network` (its name, ID or
/// ID prefix) or, with `None`, from every network. Nothing to detach is no error: a node
/// retries a detach it is not sure went through.
pub fn detach_ops(view: &State, node: &Id, container: &str, network: Option<&str>) -> Vec<Op> {
    let on = |a: &NetworkAttachment| {
        let Some(key) = network else { return true };
        a.network.as_str() == key
            || view.network(&a.network).is_some_and(|n| n.spec.name == key)
            || (!key.is_empty() && a.network.as_str().starts_with(key))
    };
    view.tasks_on_node(node)
        .filter(|t| {
            t.attachment
                .as_ref()
                .is_some_and(|a| a.container_id == container)
                && t.networks.iter().any(on)
        })
        .map(|t| Op::DeleteTask { id: t.id.clone() })
        .collect()
}

/// The writes that take a node's attachments with it when it is removed: its containers are
/// no longer the swarm's, and it will never detach them.
pub fn attachments_of_node(view: &State, node: &Id) -> Vec<Op> {
    view.tasks_on_node(node)
        .filter(|t| t.is_attachment())
        .map(|t| Op::DeleteTask { id: t.id.clone() })
        .collect()
}

impl Control {
    /// Whether `node`'s container could be attached as `req` asks (see [`plan_attach`]),
    /// writing nothing.
    pub fn check_attach(&self, node: &Id, req: &AttachRequest) -> Result<(), ControlError> {
        plan_attach(&self.view(), node, req, Id::default(), self.clock.now()).map(|_| ())
    }

    /// Gives `node`'s container `req.container_id` an address on the attachable overlay
    /// `req.network` (see [`plan_attach`]); asking again for the same container and network
    /// answers with the same address.
    pub async fn attach_network(
        &self,
        node: &Id,
        req: &AttachRequest,
    ) -> Result<NetworkAttachment, ControlError> {
        let task = match plan_attach(&self.view(), node, req, self.next_id(), self.clock.now())? {
            Attach::Held(a) => return Ok(a),
            Attach::New(t) => t,
        };
        let id = task.id.clone();
        let network = task
            .spec
            .networks
            .first()
            .map(|c| Id::from_raw(&c.target))
            .unwrap_or_default();
        match self.write(vec![Op::CreateTask(*task)]).await {
            Ok(_) => {}
            // Another manager made it from the same view: theirs is the answer.
            Err(ControlError::Conflict(why)) => {
                return held(&self.view(), node, &req.container_id, &network)
                    .and_then(|t| t.networks.first().cloned())
                    .ok_or(ControlError::Conflict(why));
            }
            Err(e) => return Err(e),
        }
        let view = self.view();
        let a = view.task(&id).and_then(|t| t.networks.first().cloned());
        if let Some(a) = &a {
            tracing::info!(node.id = %node, network = %req.network, container = %req.container_id, addr = %a.addr, "attached a container to an overlay");
        }
        a.ok_or_else(|| ControlError::Internal(format!("attachment {id} vanished")))
    }

    /// Gives back `node`'s container's place on `network` (name, ID or ID prefix), or with
    /// `None` on every network. Detaching what is not attached is no error.
    pub async fn detach_network(
        &self,
        node: &Id,
        container_id: &str,
        network: Option<&str>,
    ) -> Result<(), ControlError> {
        let ops = detach_ops(&self.view(), node, container_id, network);
        if ops.is_empty() {
            return Ok(());
        }
        let n = ops.len();
        match self.write(ops).await {
            Ok(_) => {
                tracing::info!(node.id = %node, container = %container_id, attachments = n, "detached a container from its overlays");
                Ok(())
            }
            // Gone meanwhile (a retried detach): what was asked is done.
            Err(ControlError::NotFound { kind: "task", .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use shoal_store::Proposal;
    use shoal_types::network::NetworkAddrs;
    use shoal_types::{NetworkSpec, Node};

    use super::*;

    fn id(s: &str) -> Id {
        Id::from_raw(s)
    }

    const C1: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";

    fn apply(s: &mut State, ops: Vec<Op>) {
        let v = s.version + 1;
        let (a, _) = s.apply(v, &Proposal::atomic(Timestamp(v as i64), ops));
        assert!(a.first_error().is_none(), "{a:?}");
    }

    fn network(i: &str, name: &str, subnet: &str, attachable: bool, ingress: bool) -> Op {
        let subnet: shoal_ipam::Ipv4Net = subnet.parse().expect("subnet");
        Op::CreateNetwork(Network {
            id: id(i),
            meta: Default::default(),
            spec: NetworkSpec {
                name: name.into(),
                driver: "overlay".into(),
                attachable,
                ingress,
                ..Default::default()
            },
            addrs: NetworkAddrs {
                subnet,
                gateway: subnet.hosts().next().expect("host"),
                range: subnet,
            },
            vni: 0,
        })
    }

    fn cluster() -> State {
        let mut s = State::default();
        apply(
            &mut s,
            vec![
                Op::CreateNode(Node {
                    id: id("n1"),
                    ..Default::default()
                }),
                network("net1", "appnet", "10.7.0.0/24", true, false),
                network("net2", "private", "10.8.0.0/24", false, false),
                network("ing", "ingress", "10.0.0.0/24", false, true),
            ],
        );
        s
    }

    fn req(network: &str, aliases: &[&str]) -> AttachRequest {
        AttachRequest {
            network: network.into(),
            container_id: C1.into(),
            container_name: "/probe".into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            check_only: false,
        }
    }

    fn plan(s: &State, r: &AttachRequest) -> Result<Attach, ControlError> {
        plan_attach(s, &id("n1"), r, id("a1"), Timestamp(5))
    }

    #[test]
    fn a_container_is_attached_once_with_its_name_and_aliases() {
        let mut s = cluster();
        let Ok(Attach::New(t)) = plan(&s, &req("appnet", &["web-probe", "probe", ""])) else {
            panic!("expected a new attachment");
        };
        assert!(t.is_attachment() && t.service_id.as_str().is_empty());
        assert_eq!(t.node_id, Some(id("n1")));
        assert_eq!(t.status.state, TaskState::Running);
        let of = t.attachment.clone().expect("attachment");
        assert_eq!(
            (of.container_id.as_str(), of.container_name.as_str()),
            (C1, "probe")
        );
        assert_eq!(t.spec.networks[0].target, "net1");
        assert_eq!(
            t.spec.networks[0].aliases,
            ["web-probe"],
            "its own name is not an alias"
        );
        apply(&mut s, vec![Op::CreateTask(*t)]);
        // Asked again (by name or ID): the same address, nothing new.
        let stored = s.task(&id("a1")).expect("stored").networks[0].clone();
        assert_eq!(stored.addr.to_string(), "10.7.0.2/24");
        for key in ["appnet", "net1"] {
            assert_eq!(
                plan(&s, &req(key, &[])).ok(),
                Some(Attach::Held(stored.clone()))
            );
        }
    }

    #[test]
    fn unknown_and_unattachable_networks_are_refused_as_swarm_refuses_them() {
        let s = cluster();
        let e = plan(&s, &req("private", &[])).expect_err("not attachable");
        assert_eq!(e.status(), 403);
        assert_eq!(e.to_string(), "network private not manually attachable");
        let e = plan(&s, &req("ingress", &[])).expect_err("the mesh's network");
        assert_eq!(e.to_string(), "network ingress not manually attachable");
        let e = plan(&s, &req("nope", &[])).expect_err("unknown");
        assert_eq!(e.status(), 404);
        assert_eq!(e.to_string(), "network nope not found");
        let mut bad = req("appnet", &[]);
        bad.container_id = "c1".into();
        let e = plan(&s, &bad).expect_err("short ID");
        assert!(e.to_string().starts_with("ContainerID: "), "{e}");
        let e = plan_attach(&s, &id("n9"), &req("appnet", &[]), id("a1"), Timestamp(5))
            .expect_err("unknown node");
        assert_eq!(e.to_string(), "node n9 not found");
    }

    #[test]
    fn detaching_takes_one_network_or_all_and_only_that_node_s() {
        let mut s = cluster();
        apply(
            &mut s,
            vec![
                network("net3", "other", "10.9.0.0/24", true, false),
                Op::CreateNode(Node {
                    id: id("n2"),
                    ..Default::default()
                }),
            ],
        );
        let mut make = |task: &str, node: &str, net: &str| {
            let Ok(Attach::New(t)) =
                plan_attach(&s, &id(node), &req(net, &[]), id(task), Timestamp(5))
            else {
                panic!("expected a new attachment");
            };
            apply(&mut s, vec![Op::CreateTask(*t)]);
        };
        make("a1", "n1", "appnet");
        make("a2", "n1", "other");
        make("a3", "n2", "appnet");
        let deleted = |ops: Vec<Op>| -> Vec<String> {
            ops.into_iter()
                .map(|o| match o {
                    Op::DeleteTask { id } => id.to_string(),
                    other => panic!("unexpected {other:?}"),
                })
                .collect()
        };
        assert_eq!(
            deleted(detach_ops(&s, &id("n1"), C1, Some("appnet"))),
            ["a1"]
        );
        assert_eq!(deleted(detach_ops(&s, &id("n1"), C1, Some("net3"))), ["a2"]);
        assert_eq!(deleted(detach_ops(&s, &id("n1"), C1, None)), ["a1", "a2"]);
        assert!(detach_ops(&s, &id("n1"), &"d".repeat(64), None).is_empty());
        assert_eq!(deleted(attachments_of_node(&s, &id("n2"))), ["a3"]);
    }

    /// The orchestrator's whole pass leaves an attachment alone while its node exists, and
    /// takes it back once the node is gone.
    #[test]
    fn the_orchestrator_only_takes_back_the_attachments_of_deleted_nodes() {
        let mut s = cluster();
        apply(
            &mut s,
            vec![Op::CreateNode(Node {
                id: id("n2"),
                ..Default::default()
            })],
        );
        for (task, node) in [("a1", "n1"), ("a2", "n2")] {
            let Ok(Attach::New(t)) =
                plan_attach(&s, &id(node), &req("appnet", &[]), id(task), Timestamp(5))
            else {
                panic!("expected a new attachment");
            };
            apply(&mut s, vec![Op::CreateTask(*t)]);
        }
        let mut ids = shoal_types::IdGen::seeded(1);
        let r = crate::loops::reconcile_all(&s, Timestamp(10), &mut ids);
        assert!(r.changes.is_empty(), "{:?}", r.changes);
        assert!(crate::loops::service_keys(&s).is_empty());
        apply(&mut s, vec![Op::DeleteNode { id: id("n2") }]);
        let r = crate::loops::reconcile_all(&s, Timestamp(11), &mut ids);
        assert_eq!(
            r.changes,
            vec![shoal_orchestrator::Change::DeleteTask { task_id: id("a2") }]
        );
    }
}
