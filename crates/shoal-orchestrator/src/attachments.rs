//! Network attachments: standalone containers' places on attachable overlays. They have no
//! service, so no reconciler owns them: the node's engine makes and ends each one through the
//! managers' control API, and nothing here restarts, moves, shuts down or reaps them. The one
//! thing the orchestrator does is take back what a deleted node held, since that node will
//! never detach its containers.

use shoal_types::Task;

use crate::Change;
use crate::view::Nodes;

/// The attachments among `tasks` whose node no longer exists: deleted, with the addresses
/// they hold. Every other task, attachment or not, is left as it is.
pub fn reconcile_attachments(nodes: &[&shoal_types::Node], tasks: &[&Task]) -> Vec<Change> {
    let nodes = Nodes::new(nodes);
    let mut gone: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| t.is_attachment())
        .filter(|t| t.node_id.as_ref().is_none_or(|n| nodes.get(n).is_none()))
        .collect();
    gone.sort_by(|a, b| a.id.cmp(&b.id));
    gone.into_iter()
        .map(|t| Change::DeleteTask {
            task_id: t.id.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use shoal_types::task::ContainerAttachment;
    use shoal_types::{ClusterSpec, Id, Node, Service, ServiceSpec, TaskState, Timestamp};

    use super::*;
    use crate::{Context, reap_history, reconcile_orphans, reconcile_service};

    fn node(id: &str) -> Node {
        Node {
            id: Id::from_raw(id),
            ..Default::default()
        }
    }

    fn attachment(id: &str, node: &str) -> Task {
        let mut t = Task {
            id: Id::from_raw(id),
            node_id: Some(Id::from_raw(node)),
            desired_state: TaskState::Running,
            attachment: Some(ContainerAttachment {
                container_id: "c".repeat(64),
                container_name: "probe".into(),
            }),
            ..Default::default()
        };
        t.status.state = TaskState::Running;
        t
    }

    #[test]
    fn only_the_attachments_of_deleted_nodes_go() {
        let (n1, n2) = (node("n1"), node("n2"));
        let here = attachment("a1", "n1");
        let lost = attachment("a2", "n3");
        let mut orphan = attachment("t1", "n3");
        orphan.attachment = None;
        orphan.service_id = Id::from_raw("gone");
        let changes = reconcile_attachments(&[&n1, &n2], &[&here, &lost, &orphan]);
        assert_eq!(
            changes,
            vec![Change::DeleteTask {
                task_id: Id::from_raw("a2")
            }]
        );
    }

    #[test]
    fn no_reconciler_touches_an_attachment() {
        let n1 = node("n1");
        let nodes = [&n1];
        let cluster = ClusterSpec::default();
        let ctx = Context {
            now: Timestamp(1_000_000_000),
            cluster: &cluster,
            nodes: &nodes,
        };
        // On a live node, on a deleted one, ended: none is an orphan.
        let mut ended = attachment("a3", "n1");
        ended.status.state = TaskState::Failed;
        let tasks = [attachment("a1", "n1"), attachment("a2", "n9"), ended];
        let refs: Vec<&Task> = tasks.iter().collect();
        let r = reconcile_orphans(&ctx, &refs);
        assert!(r.changes.is_empty(), "{:?}", r.changes);
        // A service's reconcilers and history see only their own tasks, even when handed
        // attachments (whose service ID is empty).
        let service = Service {
            id: Id::from_raw("s1"),
            spec: ServiceSpec {
                name: "web".into(),
                mode: shoal_types::ServiceMode::Replicated { replicas: 0 },
                ..Default::default()
            },
            ..Default::default()
        };
        let mut ids = shoal_types::IdGen::seeded(7);
        let r = reconcile_service(&ctx, &service, &refs, &mut ids);
        assert!(
            r.changes.iter().all(|c| !matches!(
                c,
                Change::DeleteTask { .. } | Change::SetDesiredState { .. }
            )),
            "{:?}",
            r.changes
        );
        assert!(reap_history(&ctx, &service, &refs).is_empty());
    }
}
