//! `/swarm`: inspect, init, join, leave, update.

use std::collections::HashMap;

use axum::extract::{Query, State};
use bollard_stubs::models as w;
use http::StatusCode;
use shoal_node::InitRequest;
use shoal_types::node::Availability;

use super::manager;
use crate::AppState;
use crate::body::{Json, query_bool, query_u64};
use crate::convert::swarm::{spec_in, swarm_out};
use crate::error::{ApiError, ApiResult};

pub async fn inspect(State(state): State<AppState>) -> ApiResult<axum::Json<w::Swarm>> {
    let h = manager(&state).await?;
    let cluster = h.control.cluster()?;
    Ok(axum::Json(swarm_out(&cluster)))
}

/// The Engine API's init request; bollard's model lacks `Availability`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitBody {
    #[serde(default)]
    listen_addr: Option<String>,
    #[serde(default)]
    advertise_addr: Option<String>,
    #[serde(default)]
    force_new_cluster: Option<bool>,
    #[serde(default)]
    spec: Option<w::SwarmSpec>,
    #[serde(default)]
    availability: Option<String>,
    #[serde(default)]
    auto_lock_managers: Option<bool>,
}

pub async fn init(
    State(state): State<AppState>,
    Json(body): Json<InitBody>,
) -> ApiResult<axum::Json<String>> {
    let spec = spec_in(&Default::default(), body.spec.unwrap_or_default())?;
    if body.auto_lock_managers == Some(true) {
        return Err(ApiError::invalid(
            "AutoLockManagers",
            "autolock is not supported by shoal yet",
        ));
    }
    let availability = match body.availability.as_deref() {
        None | Some("") => Availability::Active,
        Some(a) => Availability::parse(a).ok_or_else(|| {
            ApiError::invalid(
                "Availability",
                format!("{a:?} is not one of active, pause, drain"),
            )
        })?,
    };
    let listen_addr = body
        .listen_addr
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "0.0.0.0:2377".into());
    let id = state
        .daemon
        .swarm_init(InitRequest {
            advertise_addr: body.advertise_addr,
            listen_addr,
            spec,
            availability,
            force_new_cluster: body.force_new_cluster.unwrap_or(false),
        })
        .await?;
    Ok(axum::Json(id.to_string()))
}

/// The Engine API's join request.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinBody {
    #[serde(default)]
    listen_addr: Option<String>,
    #[serde(default)]
    advertise_addr: Option<String>,
    #[serde(default)]
    remote_addrs: Option<Vec<String>>,
    #[serde(default)]
    join_token: Option<String>,
    #[serde(default)]
    availability: Option<String>,
}

pub async fn join(State(state): State<AppState>, Json(body): Json<JoinBody>) -> ApiResult<()> {
    let availability = match body.availability.as_deref() {
        None | Some("") => Availability::Active,
        Some(a) => Availability::parse(a).ok_or_else(|| {
            ApiError::invalid(
                "Availability",
                format!("{a:?} is not one of active, pause, drain"),
            )
        })?,
    };
    let token = body
        .join_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::invalid("JoinToken", "a join token is required"))?;
    let remote_addrs = body.remote_addrs.unwrap_or_default();
    state
        .daemon
        .swarm_join(shoal_node::JoinRequest {
            remote_addrs,
            token,
            advertise_addr: body.advertise_addr,
            listen_addr: body
                .listen_addr
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "0.0.0.0:2377".into()),
            availability,
        })
        .await?;
    Ok(())
}

pub async fn leave(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<()> {
    let force = query_bool(&q, "force")?;
    state.daemon.swarm_leave(force).await?;
    Ok(())
}

pub async fn update(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<w::SwarmSpec>,
) -> ApiResult<()> {
    let h = manager(&state).await?;
    let version = query_u64(&q, "version")?.ok_or_else(|| {
        ApiError::bad_request("query parameter version: required (the swarm's Version.Index)")
    })?;
    if query_bool(&q, "rotateManagerUnlockKey")? {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "rotateManagerUnlockKey: autolock is not supported by shoal yet",
        ));
    }
    let rotate_worker = query_bool(&q, "rotateWorkerToken")?;
    let rotate_manager = query_bool(&q, "rotateManagerToken")?;
    let cur = h.control.cluster()?;
    let spec = spec_in(&cur.spec, body)?;
    h.control
        .update_cluster(version, spec, rotate_worker, rotate_manager)
        .await?;
    Ok(())
}
