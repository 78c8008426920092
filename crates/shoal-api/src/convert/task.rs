//! Tasks.

use bollard_stubs::models as w;
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

pub fn task_out(t: &Task) -> w::Task {
    let rt = t.status.runtime.as_ref();
    w::Task {
        id: Some(t.id.to_string()),
        version: version(t.meta.version),
        created_at: time(t.meta.created_at),
        updated_at: time(t.meta.updated_at),
        name: Some(t.name()),
        labels: Some(Default::default()),
        spec: Some(task_spec_out(&t.spec)),
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
