//! The node's volumes, as Docker's `/volumes` endpoints serve them: what this node's runtime
//! holds (volumes are per node, as in Swarm). `docker volume create|inspect|ls|rm|prune` and
//! docker-compose's volume calls work unchanged.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bollard_stubs::models::VolumeCreateRequest;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use shoal_runtime::RuntimeError;

use super::images::{RemoveQuery, runtime_error, truthy};
use crate::convert::volume::{VolumeFilters, volume_create, volume_json, volume_prune};
use crate::error::ApiResult;
use crate::{ApiVersion, AppState};

#[derive(Deserialize, Default)]
pub struct FiltersQuery {
    #[serde(default)]
    filters: Option<String>,
}

pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<FiltersQuery>,
) -> ApiResult<Json<Value>> {
    let f = VolumeFilters::parse(q.filters.as_ref())?;
    let vols = st.daemon.driver().volumes().await.map_err(runtime_error)?;
    Ok(Json(json!({
        "Volumes": vols.iter().filter(|v| f.matches(v)).map(volume_json).collect::<Vec<_>>(),
        "Warnings": [],
    })))
}

pub async fn inspect(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let vols = st.daemon.driver().volumes().await.map_err(runtime_error)?;
    vols.iter()
        .find(|v| v.name == name)
        .map(|v| Json(volume_json(v)))
        .ok_or_else(|| runtime_error(RuntimeError::VolumeNotFound(name)))
}

/// 64 hex digits, the name Docker gives a volume made without one.
fn anonymous_name(st: &AppState) -> String {
    let mut bytes = [0u8; 32];
    st.ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /volumes/create`: 201 with the volume, the existing one when the name is taken.
pub async fn create(
    State(st): State<AppState>,
    crate::body::Json(body): crate::body::Json<VolumeCreateRequest>,
) -> ApiResult<Response> {
    let spec = volume_create(body, || anonymous_name(&st))?;
    let v = st
        .daemon
        .driver()
        .create_volume(&spec)
        .await
        .map_err(runtime_error)?;
    Ok((StatusCode::CREATED, Json(volume_json(&v))).into_response())
}

pub async fn remove(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    st.daemon
        .driver()
        .remove_volume(&name, truthy(&q.force))
        .await
        .map_err(runtime_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`: which volumes go depends on the client's API version (see
/// [`volume_prune`]).
pub async fn prune(
    State(st): State<AppState>,
    version: Option<axum::Extension<ApiVersion>>,
    Query(q): Query<FiltersQuery>,
) -> ApiResult<Json<Value>> {
    let version = version.map_or(crate::MAX_API_VERSION, |v| v.0.0);
    let filter = volume_prune(q.filters.as_ref(), version)?;
    let pruned = st
        .daemon
        .driver()
        .prune_volumes(&filter)
        .await
        .map_err(runtime_error)?;
    Ok(Json(json!({
        "VolumesDeleted": if pruned.names.is_empty() { Value::Null } else { json!(pruned.names) },
        "SpaceReclaimed": pruned.space_reclaimed,
    })))
}
