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

pub async fn join() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "joining an existing swarm is not supported by this version of shoal: it runs one-node swarms",
    )
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
    for rotate in [
        "rotateWorkerToken",
        "rotateManagerToken",
        "rotateManagerUnlockKey",
    ] {
        if query_bool(&q, rotate)? {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "{rotate}: join tokens and unlock keys come with multi-node swarms, not supported by this version of shoal"
                ),
            ));
        }
    }
    let cur = h.control.cluster()?;
    let spec = spec_in(&cur.spec, body)?;
    h.control.update_cluster(version, spec).await?;
    Ok(())
}
