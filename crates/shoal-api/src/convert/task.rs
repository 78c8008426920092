//! Tasks.

use std::sync::Arc;

use bollard_stubs::models as w;
use shoal_types::Id;
use shoal_types::network::Network;
use shoal_types::task::{Task, TaskState};

use super::{time, version};
use crate::convert::service::task_spec_out;

pub fn state_out(s: TaskState) -> w::TaskState {
    match s {
        TaskState::New => w::TaskState::NEW,
        TaskState::Pending => w::TaskState::PENDING,
        TaskState::Assigned => w::TaskState::ASSIGNED,
        TaskState::Accepted => w::TaskState::ACCEPTED,
        TaskState::Preparing => w::TaskState::PREPARING,
        TaskState::Ready => w::TaskState::READY,
        TaskState::Starting => w::TaskState::STARTING,
        TaskState::Running => w::TaskState::RUNNING,
        TaskState::Complete => w::TaskState::COMPLETE,
        TaskState::Shutdown => w::TaskState::SHUTDOWN,
        TaskState::Failed => w::TaskState::FAILED,
        TaskState::Rejected => w::TaskState::REJECTED,
        TaskState::Remove => w::TaskState::REMOVE,
        TaskState::Orphaned => w::TaskState::ORPHANED,
    }
}

/// The wire form of a task: bollard's model plus `NetworksAttachments`, which the Engine API
/// has and the model lacks.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WireTask {
    #[serde(flatten)]
    pub task: w::Task,
    #[serde(
        rename = "NetworksAttachments",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub networks_attachments: Vec<serde_json::Value>,
}

impl WireTask {
    /// The JSON the Docker daemon sends: keys as Docker spells them (`Healthcheck`).
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        let mut v = serde_json::to_value(self)?;
        super::service_extras::docker_task_spec_keys(v.get_mut("Spec"));
        Ok(v)
    }
}

/// A task as the API shows it; `network` finds the networks its attachments name.
pub fn task_out(t: &Task, network: impl Fn(&Id) -> Option<Arc<Network>>) -> WireTask {
    WireTask {
        task: task_model(t),
        networks_attachments: t
            .networks
            .iter()
            .map(|a| {
                serde_json::json!({
                    "Network": network(&a.network).map_or_else(
                        || serde_json::json!({ "ID": a.network.as_str() }),
                        |n| swarm_network(&n),
                    ),
                    "Addresses": [a.addr.to_string()],
                })
            })
            .collect(),
    }
}

/// A network as Swarm's own objects show it (inside a task's attachments), not as `/networks`
/// does.
fn swarm_network(n: &Network) -> serde_json::Value {
    serde_json::json!({
        "ID": n.id.as_str(),
        "Version": { "Index": n.meta.version },
        "CreatedAt": time(n.meta.created_at),
        "UpdatedAt": time(n.meta.updated_at),
        "Spec": {
            "Name": n.spec.name,
            "Labels": n.spec.labels,
            "DriverConfiguration": { "Name": n.spec.driver },
            "Scope": "swarm",
            "Attachable": n.spec.attachable,
            "Internal": n.spec.internal,
            "Ingress": n.spec.ingress,
        },
        "DriverState": {
            "Name": n.spec.driver,
            "Options": { "com.docker.network.driver.overlay.vxlanid_list": n.vni.to_string() },
        },
        "IPAMOptions": {
            "Driver": { "Name": "default" },
            "Configs": [{ "Subnet": n.addrs.subnet.to_string(), "Gateway": n.addrs.gateway.to_string() }],
        },
    })
}

fn task_model(t: &Task) -> w::Task {
    let rt = t.status.runtime.as_ref();
    let spec = match &t.attachment {
        // Swarm's attachment task: its spec names the container, and nothing else.
        Some(a) => w::TaskSpec {
            network_attachment_spec: Some(w::TaskSpecNetworkAttachmentSpec {
                container_id: Some(a.container_id.clone()),
            }),
            networks: task_spec_out(&t.spec).networks,
            ..Default::default()
        },
        None => task_spec_out(&t.spec),
    };
    w::Task {
        id: Some(t.id.to_string()),
        version: version(t.meta.version),
        created_at: time(t.meta.created_at),
        updated_at: time(t.meta.updated_at),
        name: Some(t.name()),
        labels: Some(Default::default()),
        spec: Some(spec),
        service_id: Some(t.service_id.to_string()),
        slot: (t.slot > 0).then(|| i64::try_from(t.slot).unwrap_or(i64::MAX)),
        node_id: t.node_id.as_ref().map(|n| n.to_string()),
        assigned_generic_resources: super::generic::list_out(&t.assigned_generic_resources),
        status: Some(w::TaskStatus {
            timestamp: time(t.status.timestamp),
            state: Some(state_out(t.status.state)),
            message: Some(t.status.message.clone()),
            err: (!t.status.err.is_empty()).then(|| t.status.err.clone()),
            container_status: Some(w::ContainerStatus {
                container_id: rt.map(|r| r.container_id.clone()).filter(|c| !c.is_empty()),
                pid: rt.map(|r| r.pid).filter(|p| *p > 0),
                exit_code: rt.and_then(|r| r.exit_code),
            }),
            port_status: Some(Default::default()),
        }),
        desired_state: Some(state_out(t.desired_state)),
        job_iteration: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task's spec shows the health check as Docker spells it, as its service's does.
    #[test]
    fn a_tasks_health_check_is_spelt_as_docker_spells_it() {
        let mut t = Task::default();
        t.spec.container.image = "host".into();
        t.spec.container.healthcheck = Some(shoal_types::container::HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            ..Default::default()
        });
        let v = task_out(&t, |_| None).to_json().expect("json");
        let c = &v["Spec"]["ContainerSpec"];
        assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]));
        assert!(c.get("HealthCheck").is_none(), "{c}");
    }
}
