//! `/secrets` and `/configs`: one set of handlers, told apart by the kind in the path. A
//! secret's data is never returned; a config's is, as Docker does.
//!
//! Beyond Docker: `POST /{secrets,configs}/{id}/rotate` with `{"Data": BASE64}` adds a version
//! under the same name and rolls the services that follow the newest version; it answers
//! `{"Version": N, "Services": [IDs]}`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use bollard_stubs::models as w;
use http::StatusCode;
use serde_json::Value;
use shoal_types::payload::PayloadKind;

use super::manager;
use crate::AppState;
use crate::body::{Json, query_u64};
use crate::convert::payload::{config_in, payload_out, secret_in};
use crate::error::{ApiError, ApiResult};
use crate::filters::{Filters, PAYLOADS};

async fn list(
    state: AppState,
    kind: PayloadKind,
    q: HashMap<String, String>,
) -> ApiResult<axum::Json<Vec<Value>>> {
    let h = manager(&state).await?;
    let f = Filters::parse(q.get("filters"), PAYLOADS)?;
    let view = h.view();
    let out = view
        .payloads(kind)
        .filter(|p| {
            f.any("id", |v| p.id.as_str().starts_with(v))
                && f.any("name", |v| p.spec.name.starts_with(v))
                && f.any("names", |v| p.spec.name == v)
                && f.labels("label", &p.spec.labels)
        })
        .map(|p| payload_out(p))
        .collect();
    Ok(axum::Json(out))
}

async fn inspect(state: AppState, kind: PayloadKind, id: String) -> ApiResult<axum::Json<Value>> {
    let h = manager(&state).await?;
    let p = h.view().find_payload(kind, &id)?;
    Ok(axum::Json(payload_out(&p)))
}

async fn remove(state: AppState, kind: PayloadKind, id: String) -> ApiResult<StatusCode> {
    let h = manager(&state).await?;
    h.remove_payload(kind, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Docker's update: labels only. The data, if sent, must be what is stored.
async fn update(
    state: AppState,
    kind: PayloadKind,
    id: String,
    q: HashMap<String, String>,
    body: crate::convert::payload::PayloadIn,
) -> ApiResult<StatusCode> {
    let h = manager(&state).await?;
    let version = query_u64(&q, "version")?.ok_or_else(|| {
        ApiError::bad_request(format!(
            "query parameter version: required (the {}'s Version.Index)",
            kind.as_str()
        ))
    })?;
    let cur = h.view().find_payload(kind, &id)?;
    if !body.data.is_empty() && cur.current().is_none_or(|v| v.data != body.data) {
        return Err(ApiError::invalid(
            "Data",
            format!(
                "only updates to Labels are allowed; use `shoal {} rotate` to change the data",
                kind.as_str()
            ),
        ));
    }
    h.update_payload_labels(kind, &id, version, body.spec)
        .await?;
    Ok(StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct RotateBody {
    #[serde(rename = "Data")]
    data: Option<String>,
}

async fn rotate(
    state: AppState,
    kind: PayloadKind,
    id: String,
    body: RotateBody,
) -> ApiResult<axum::Json<Value>> {
    let h = manager(&state).await?;
    let data = config_in(w::ConfigSpec {
        data: body.data,
        ..Default::default()
    })?
    .data;
    let r = h.rotate_payload(kind, &id, data).await?;
    Ok(axum::Json(serde_json::json!({
        "ID": r.payload.id.to_string(),
        "Version": r.version,
        "Services": r.services.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })))
}

fn created(id: &shoal_types::Id) -> (StatusCode, axum::Json<Value>) {
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "ID": id.to_string() })),
    )
}

pub async fn secrets_list(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<Value>>> {
    list(s, PayloadKind::Secret, q).await
}

pub async fn configs_list(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<Value>>> {
    list(s, PayloadKind::Config, q).await
}

pub async fn secrets_create(
    State(s): State<AppState>,
    Json(body): Json<w::SecretSpec>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let h = manager(&s).await?;
    let p = secret_in(body)?;
    let p = h
        .create_payload(PayloadKind::Secret, p.spec, p.data)
        .await?;
    Ok(created(&p.id))
}

pub async fn configs_create(
    State(s): State<AppState>,
    Json(body): Json<w::ConfigSpec>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let h = manager(&s).await?;
    let p = config_in(body)?;
    let p = h
        .create_payload(PayloadKind::Config, p.spec, p.data)
        .await?;
    Ok(created(&p.id))
}

pub async fn secrets_inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    inspect(s, PayloadKind::Secret, id).await
}

pub async fn configs_inspect(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    inspect(s, PayloadKind::Config, id).await
}

pub async fn secrets_remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    remove(s, PayloadKind::Secret, id).await
}

pub async fn configs_remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    remove(s, PayloadKind::Config, id).await
}

pub async fn secrets_update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<w::SecretSpec>,
) -> ApiResult<StatusCode> {
    update(s, PayloadKind::Secret, id, q, secret_in(body)?).await
}

pub async fn configs_update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<w::ConfigSpec>,
) -> ApiResult<StatusCode> {
    update(s, PayloadKind::Config, id, q, config_in(body)?).await
}

pub async fn secrets_rotate(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<RotateBody>,
) -> ApiResult<axum::Json<Value>> {
    rotate(s, PayloadKind::Secret, id, body).await
}

pub async fn configs_rotate(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<RotateBody>,
) -> ApiResult<axum::Json<Value>> {
    rotate(s, PayloadKind::Config, id, body).await
}
