//! `/tasks`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use shoal_types::Id;

use super::manager;
use crate::AppState;
use crate::convert::payload::task_pins_out;
use crate::convert::task::{WireTask, task_out};
use crate::error::{ApiError, ApiResult};
use crate::filters::Filters;

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<serde_json::Value>>> {
    let h = manager(&state).await?;
    let (f, desired) = Filters::for_tasks(q.get("filters"))?;
    let view = h.view();
    // Services and nodes may be named by ID, name or ID prefix; unknown ones match nothing.
    let services: Vec<Id> = f
        .get("service")
        .iter()
        .filter_map(|s| view.find_service(s).ok().map(|s| s.id.clone()))
        .collect();
    let nodes: Vec<Id> = f
        .get("node")
        .iter()
        .filter_map(|n| view.find_node(n).ok().map(|n| n.id.clone()))
        .collect();
    let up_to_date = f.get("_up-to-date").iter().any(|v| v == "true" || v == "1");
    let out = view
        .tasks()
        .filter(|t| {
            f.any("id", |v| t.id.as_str().starts_with(v))
                && f.any("name", |v| t.name().starts_with(v))
                && (f.get("service").is_empty() || services.contains(&t.service_id))
                && (f.get("node").is_empty()
                    || t.node_id.as_ref().is_some_and(|n| nodes.contains(n)))
                // Swarm matches a task's labels against its service's (ServiceAnnotations),
                // which is how `docker stack ps` finds a stack's tasks.
                && f.labels("label", &t.service_labels)
                && (desired.is_empty() || desired.contains(&t.desired_state))
                && runtime_matches(f.get("runtime"), t)
                && (!up_to_date
                    || view
                        .service(&t.service_id)
                        .is_some_and(|s| s.spec.task == t.spec))
        })
        .map(|t| task_json(t, task_out(t, |n| view.find_network(n.as_str()).ok())))
        .collect::<Result<_, _>>()?;
    Ok(axum::Json(out))
}

/// Swarm lists container tasks only unless the `runtime` filter asks for others: a standalone
/// container's network attachment (runtime `attachment`) is no task of `docker node ps`.
fn runtime_matches(asked: &[String], t: &shoal_types::Task) -> bool {
    let runtime = if t.is_attachment() {
        "attachment"
    } else {
        "container"
    };
    if asked.is_empty() {
        return runtime == "container";
    }
    asked
        .iter()
        .any(|v| v == runtime || (v.is_empty() && runtime == "container"))
}

pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let h = manager(&state).await?;
    let view = h.view();
    let t = view.find_task(&id)?;
    let wire = task_out(&t, |n| view.find_network(n.as_str()).ok());
    Ok(axum::Json(task_json(&t, wire)?))
}

/// A task as Docker shows it, plus the version of each secret and config it was given.
fn task_json(t: &shoal_types::Task, wire: WireTask) -> Result<serde_json::Value, ApiError> {
    let mut out = wire.to_json().map_err(|e| {
        ApiError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding task {}: {e}", t.id),
        )
    })?;
    task_pins_out(&mut out, &t.spec);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::runtime_matches;

    #[test]
    fn attachments_are_listed_only_when_asked_for() {
        let task = shoal_types::Task::default();
        let attachment = shoal_types::Task {
            attachment: Some(Default::default()),
            ..Default::default()
        };
        let asked = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(runtime_matches(&[], &task));
        assert!(!runtime_matches(&[], &attachment));
        assert!(runtime_matches(&asked(&["attachment"]), &attachment));
        assert!(!runtime_matches(&asked(&["attachment"]), &task));
        assert!(runtime_matches(&asked(&["container", ""]), &task));
    }
}
