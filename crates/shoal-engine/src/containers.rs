//! The node's containers: one per assigned task the runtime holds, shaped as Swarm's engine
//! shows a task's container. Pure: the agent's tasks and the runtime's list come in.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use shoal_control::engine::{
    ContainerInfo, ContainerNetwork, ContainerState, ContainerStatus, EngineError,
};
use shoal_runtime::{RuntimeTask, RuntimeTaskState};
use shoal_types::{Id, Task, Timestamp};

use crate::TaskSource;

/// The labels Swarm puts on a task's container.
pub const LABEL_NODE_ID: &str = "com.docker.swarm.node.id";
pub const LABEL_SERVICE_ID: &str = "com.docker.swarm.service.id";
pub const LABEL_SERVICE_NAME: &str = "com.docker.swarm.service.name";
pub const LABEL_TASK: &str = "com.docker.swarm.task";
pub const LABEL_TASK_ID: &str = "com.docker.swarm.task.id";
pub const LABEL_TASK_NAME: &str = "com.docker.swarm.task.name";

/// The container ID of a task whose runtime has none of its own: 64 hex digits, stable for the
/// task, so clients that expect Docker's IDs (and cut them to 12) see one.
pub fn derived_id(task: &Id) -> String {
    let digest = Sha256::digest(format!("shoal-task:{task}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One container per task that is both assigned and held by the runtime, oldest first.
pub fn view(
    tasks: &[Task],
    held: &[RuntimeTask],
    source: &dyn TaskSource,
    runtime: &str,
) -> Vec<ContainerInfo> {
    let held: BTreeMap<&Id, &RuntimeTask> = held.iter().map(|r| (&r.task_id, r)).collect();
    let mut out: Vec<ContainerInfo> = tasks
        .iter()
        .filter_map(|t| held.get(&t.id).map(|r| container(t, r, source, runtime)))
        .collect();
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    out
}

fn container(t: &Task, r: &RuntimeTask, source: &dyn TaskSource, runtime: &str) -> ContainerInfo {
    let mut labels = t.spec.container.labels.clone();
    labels.insert(
        LABEL_NODE_ID.into(),
        t.node_id.as_ref().map(Id::to_string).unwrap_or_default(),
    );
    labels.insert(LABEL_SERVICE_ID.into(), t.service_id.to_string());
    labels.insert(LABEL_SERVICE_NAME.into(), t.service_name.clone());
    labels.insert(LABEL_TASK.into(), String::new());
    labels.insert(LABEL_TASK_ID.into(), t.id.to_string());
    labels.insert(LABEL_TASK_NAME.into(), t.name());
    let state = match &r.state {
        RuntimeTaskState::Created => ContainerState {
            status: ContainerStatus::Created,
            pid: 0,
            exit_code: 0,
            oom_killed: false,
            started_at: Timestamp::ZERO,
            finished_at: Timestamp::ZERO,
            error: t.status.err.clone(),
            health: None,
        },
        RuntimeTaskState::Running { pid } => ContainerState {
            status: ContainerStatus::Running,
            pid: *pid,
            exit_code: 0,
            oom_killed: false,
            started_at: r.started_at,
            finished_at: Timestamp::ZERO,
            error: String::new(),
            health: None,
        },
        RuntimeTaskState::Exited(e) => ContainerState {
            status: ContainerStatus::Exited,
            pid: 0,
            exit_code: e.code,
            oom_killed: e.oom_killed,
            started_at: r.started_at,
            finished_at: e.finished_at,
            error: t.status.err.clone(),
            health: None,
        },
    };
    let networks = t
        .networks
        .iter()
        .map(|n| ContainerNetwork {
            id: n.network.clone(),
            name: source
                .network_name(&n.network)
                .unwrap_or_else(|| n.network.to_string()),
            addr: n.addr.to_string(),
            aliases: n.aliases.clone(),
            gateway: String::new(),
            mac: String::new(),
        })
        .collect();
    let hostname = if t.spec.container.hostname.is_empty() {
        t.id.short().to_string()
    } else {
        t.spec.container.hostname.clone()
    };
    ContainerInfo {
        id: r.container_id.clone().unwrap_or_else(|| derived_id(&t.id)),
        name: t.name(),
        task_id: Some(t.id.clone()),
        created: t.meta.created_at,
        labels,
        spec: t.spec.container.clone(),
        hostname,
        state,
        networks,
        runtime: if t.spec.runtime.is_empty() {
            runtime.to_string()
        } else {
            t.spec.runtime.clone()
        },
        standalone: None,
    }
}

/// The container `key` names: a full ID, a task ID, a name (with or without Docker's leading
/// `/`), or a unique prefix of an ID, in that order, as Docker resolves them.
pub fn find(mut all: Vec<ContainerInfo>, key: &str) -> Result<ContainerInfo, EngineError> {
    let name = key.strip_prefix('/').unwrap_or(key);
    if key.is_empty() {
        return Err(EngineError::NoSuchContainer(key.to_string()));
    }
    if let Some(i) = all.iter().position(|c| {
        c.id == key || c.name == name || c.task_id.as_ref().is_some_and(|t| t.as_str() == key)
    }) {
        return Ok(all.swap_remove(i));
    }
    let mut matching: Vec<ContainerInfo> =
        all.into_iter().filter(|c| c.id.starts_with(key)).collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(EngineError::NoSuchContainer(key.to_string())),
        n => Err(EngineError::Conflict(format!(
            "multiple IDs found with provided prefix: {key} ({n} matches)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoTasks;

    fn task(id: &str, service: &str, slot: u64, created: i64) -> Task {
        let mut t = Task {
            id: Id::from_raw(id),
            service_id: Id::from_raw(format!("svc-{service}")),
            service_name: service.into(),
            slot,
            ..Task::default()
        };
        t.meta.created_at = Timestamp(created);
        t.spec.container.labels.insert("app".into(), "x".into());
        t
    }

    fn held(id: &str, state: RuntimeTaskState, cid: Option<&str>) -> RuntimeTask {
        RuntimeTask {
            task_id: Id::from_raw(id),
            state,
            container_id: cid.map(str::to_string),
            started_at: Timestamp(5),
        }
    }

    #[test]
    fn only_tasks_the_runtime_holds_are_containers_named_as_swarm_names_them() {
        let tasks = vec![
            task("t2aaaaaaaaaaaaaaaaaaaaaaa", "web", 2, 20),
            task("t1aaaaaaaaaaaaaaaaaaaaaaa", "web", 1, 10),
            task("t3aaaaaaaaaaaaaaaaaaaaaaa", "db", 1, 30),
        ];
        let held = vec![
            held(
                "t1aaaaaaaaaaaaaaaaaaaaaaa",
                RuntimeTaskState::Running { pid: 42 },
                None,
            ),
            held(
                "t2aaaaaaaaaaaaaaaaaaaaaaa",
                RuntimeTaskState::Created,
                Some("abc123"),
            ),
        ];
        let v = view(&tasks, &held, &NoTasks, "native");
        let names: Vec<&str> = v.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "web.1.t1aaaaaaaaaaaaaaaaaaaaaaa",
                "web.2.t2aaaaaaaaaaaaaaaaaaaaaaa"
            ]
        );
        assert_eq!(
            v[0].id,
            derived_id(&Id::from_raw("t1aaaaaaaaaaaaaaaaaaaaaaa"))
        );
        assert_eq!(v[0].id.len(), 64);
        assert_eq!(v[0].state.status, ContainerStatus::Running);
        assert_eq!(v[0].state.pid, 42);
        assert_eq!(v[0].labels["app"], "x");
        assert_eq!(v[0].labels[LABEL_SERVICE_NAME], "web");
        assert_eq!(v[0].labels[LABEL_TASK_ID], "t1aaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(v[1].id, "abc123", "the runtime's own ID wins");
        assert_eq!(v[1].state.status, ContainerStatus::Created);
    }

    #[test]
    fn lookup_by_id_name_task_or_unique_prefix() {
        let tasks = vec![
            task("t1aaaaaaaaaaaaaaaaaaaaaaa", "web", 1, 10),
            task("t2aaaaaaaaaaaaaaaaaaaaaaa", "web", 2, 20),
        ];
        let held = vec![
            held(
                "t1aaaaaaaaaaaaaaaaaaaaaaa",
                RuntimeTaskState::Running { pid: 1 },
                Some("abcd1111"),
            ),
            held(
                "t2aaaaaaaaaaaaaaaaaaaaaaa",
                RuntimeTaskState::Running { pid: 2 },
                Some("abcd2222"),
            ),
        ];
        let all = || view(&tasks, &held, &NoTasks, "docker");
        let id = |k: &str| find(all(), k).map(|c| c.id);
        assert_eq!(id("abcd1111").ok().as_deref(), Some("abcd1111"));
        assert_eq!(id("abcd2").ok().as_deref(), Some("abcd2222"));
        assert_eq!(
            id("/web.1.t1aaaaaaaaaaaaaaaaaaaaaaa").ok().as_deref(),
            Some("abcd1111")
        );
        assert_eq!(
            id("t2aaaaaaaaaaaaaaaaaaaaaaa").ok().as_deref(),
            Some("abcd2222")
        );
        assert!(matches!(id("abcd"), Err(EngineError::Conflict(_))));
        assert!(matches!(id("zzz"), Err(EngineError::NoSuchContainer(_))));
        assert!(matches!(id(""), Err(EngineError::NoSuchContainer(_))));
    }
}
