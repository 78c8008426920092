//! `/services`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use bollard_stubs::models as w;
use http::StatusCode;
use shoal_control::ServiceStatus;
use shoal_types::service::ServiceMode;

use super::manager;
use crate::AppState;
use crate::body::{JsonRaw, query_bool, query_u64};
use crate::convert::payload::{pins_in, service_pins_out};
use crate::convert::service::{service_out, spec_in};
use crate::convert::service_extras::warnings;
use crate::error::{ApiError, ApiResult};
use crate::filters::Filters;

/// The manager's task counts as Docker's `ServiceStatus`.
fn status_out(s: ServiceStatus) -> w::ServiceServiceStatus {
    w::ServiceServiceStatus {
        running_tasks: Some(s.running),
        desired_tasks: Some(s.desired),
        completed_tasks: Some(s.completed),
    }
}

fn mode_name(m: &ServiceMode) -> &'static str {
    match m {
        ServiceMode::Replicated { .. } => "replicated",
        ServiceMode::Global => "global",
        ServiceMode::ReplicatedJob { .. } => "replicated-job",
        ServiceMode::GlobalJob => "global-job",
    }
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<serde_json::Value>>> {
    let h = manager(&state).await?;
    let f = Filters::for_services(q.get("filters"))?;
    for m in f.get("mode") {
        if !["replicated", "global", "replicated-job", "global-job"].contains(&m.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter 'mode={m}'")));
        }
    }
    let status = query_bool(&q, "status")?;
    let view = h.view();
    let out = view
        .services()
        .filter(|s| {
            f.any("id", |v| s.id.as_str().starts_with(v))
                && f.any("name", |v| s.spec.name.starts_with(v))
                && f.any("mode", |v| v == mode_name(&s.spec.mode))
                && f.labels("label", &s.spec.labels)
        })
        .map(|s| service_json(s, status.then(|| status_out(view.service_status(s)))))
        .collect::<Result<_, _>>()?;
    Ok(axum::Json(out))
}

pub async fn create(
    State(state): State<AppState>,
    JsonRaw(body, raw): JsonRaw<w::ServiceSpec>,
) -> ApiResult<(StatusCode, axum::Json<serde_json::Value>)> {
    let h = manager(&state).await?;
    let mut spec = spec_in(body)?;
    pins_in(&raw, &mut spec, None)?;
    let warnings = warnings(&spec);
    let s = h.create_service(spec).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(
            serde_json::json!({ "ID": s.id.to_string(), "Warnings": warnings_json(warnings) }),
        ),
    ))
}

/// Docker's `Warnings`: `null` when there are none, never left out (the daemon's Go type has no
/// `omitempty`).
fn warnings_json(w: Vec<String>) -> serde_json::Value {
    if w.is_empty() {
        serde_json::Value::Null
    } else {
        w.into()
    }
}

/// `GET /services/{id}`; with `insertDefaults`, the spec shows Swarm's defaults where the client
/// left something out (what `docker service inspect` asks for). As in Swarm, only the current
/// spec: the previous one is shown as stored.
pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let h = manager(&state).await?;
    let insert_defaults = query_bool(&q, "insertDefaults")?;
    let s = h.view().find_service(&id)?;
    if insert_defaults {
        let mut shown = (*s).clone();
        shown.spec = s.spec.with_defaults();
        return Ok(axum::Json(service_json(&shown, None)?));
    }
    Ok(axum::Json(service_json(&s, None)?))
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    JsonRaw(body, raw): JsonRaw<w::ServiceSpec>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let h = manager(&state).await?;
    let version = query_u64(&q, "version")?.ok_or_else(|| {
        ApiError::bad_request("query parameter version: required (the service's Version.Index)")
    })?;
    let rollback = match q.get("rollback").map(String::as_str) {
        None | Some("") | Some("none") => false,
        Some("previous") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "query parameter rollback: expected \"previous\", got {other:?}"
            )));
        }
    };
    // With a rollback the body is ignored, as in Docker: the previous spec is the new one.
    let spec = if rollback {
        Default::default()
    } else {
        let mut spec = spec_in(body)?;
        let current = h.view().find_service(&id)?;
        pins_in(&raw, &mut spec, Some(&current.spec))?;
        // What the Kubernetes API keeps of a workload survives an update through this one.
        spec.kube = current.spec.kube.clone();
        spec
    };
    let warnings = if rollback {
        Vec::new()
    } else {
        warnings(&spec)
    };
    h.update_service(&id, version, spec, rollback).await?;
    Ok(axum::Json(
        serde_json::json!({ "Warnings": warnings_json(warnings) }),
    ))
}

pub async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<()> {
    let h = manager(&state).await?;
    h.remove_service(&id).await?;
    Ok(())
}

/// A service as Docker shows it, plus the versions its pinned secrets and configs hold.
fn service_json(
    s: &shoal_types::Service,
    status: Option<w::ServiceServiceStatus>,
) -> Result<serde_json::Value, ApiError> {
    let mut out = service_out(s, status).to_json().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding service {}: {e}", s.spec.name),
        )
    })?;
    service_pins_out(&mut out, &s.spec, s.previous_spec.as_ref());
    Ok(out)
}
