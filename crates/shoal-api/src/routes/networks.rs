//! `/networks`: the swarm's overlay networks.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use bollard_stubs::models as w;
use http::StatusCode;

use super::manager;
use crate::AppState;
use crate::body::Json;
use crate::convert::network::{network_out, spec_in};
use crate::error::{ApiError, ApiResult};
use crate::filters::{Filters, NETWORKS, NETWORKS_PRUNE};

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<w::Network>>> {
    let h = manager(&state).await?;
    let f = Filters::parse(q.get("filters"), NETWORKS)?;
    for t in f.get("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let view = h.view();
    let mut out: Vec<w::Network> = view
        .networks()
        .filter(|n| {
            f.any("id", |v| n.id.as_str().starts_with(v))
                && f.any("name", |v| n.spec.name.contains(v))
                && f.any("driver", |v| v == n.spec.driver)
                && f.any("scope", |v| v == "swarm")
                && f.any("type", |v| v == "custom")
                && f.labels("label", &n.spec.labels)
        })
        .map(|n| network_out(n))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(axum::Json(out))
}

pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<w::NetworkCreateRequest>,
) -> ApiResult<(StatusCode, axum::Json<w::NetworkCreateResponse>)> {
    let h = manager(&state).await?;
    let n = h.create_network(spec_in(body)?).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(w::NetworkCreateResponse {
            id: n.id.to_string(),
            warning: String::new(),
        }),
    ))
}

pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<w::Network>> {
    let h = manager(&state).await?;
    let n = h.view().find_network(&id)?;
    Ok(axum::Json(network_out(&n)))
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let h = manager(&state).await?;
    h.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the networks nothing uses; the routing mesh's own network stays, as in Docker.
pub async fn prune(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<w::NetworkPruneResponse>> {
    let h = manager(&state).await?;
    let f = Filters::parse(q.get("filters"), NETWORKS_PRUNE)?;
    let view = h.view();
    let doomed: Vec<(String, String)> = view
        .networks()
        .filter(|n| {
            !n.spec.ingress
                && f.labels("label", &n.spec.labels)
                && (f.get("label!").is_empty() || !f.labels("label!", &n.spec.labels))
        })
        .map(|n| (n.id.to_string(), n.spec.name.clone()))
        .collect();
    let mut deleted = Vec::new();
    for (id, name) in doomed {
        match h.remove_network(&id).await {
            Ok(()) => deleted.push(name),
            // Gone meanwhile: not pruned by this call, as in Docker.
            Err(shoal_control::ControlError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(axum::Json(w::NetworkPruneResponse {
        networks_deleted: Some(deleted),
    }))
}
