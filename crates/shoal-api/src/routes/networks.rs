//! `/networks`: the swarm's overlay networks, and the node's own local ones (Docker's `bridge`
//! driver, the default `bridge` among them), which the node's engine keeps. A network named
//! or made without a driver, or with `bridge`, is local, as on a Docker Engine; `overlay` is
//! the swarm's. Lookups try the node's local networks first.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use bollard_stubs::models as w;
use http::StatusCode;

use super::exec::engine_err;
use super::manager;
use crate::AppState;
use crate::body::Json;
use crate::convert::network::{network_out, spec_in};
use crate::error::{ApiError, ApiResult};
use crate::filters::{Filters, NETWORKS, NETWORKS_PRUNE};

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<serde_json::Value>>> {
    let f = Filters::parse(q.get("filters"), NETWORKS)?;
    for t in f.get("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let mut local: Vec<serde_json::Value> = state
        .daemon
        .engine()
        .local_networks()
        .iter()
        .filter(|n| {
            let typ = if n.is_default() { "builtin" } else { "custom" };
            f.any("id", |v| n.id.starts_with(v))
                && f.any("name", |v| n.name.contains(v))
                && f.any("driver", |v| v == n.driver)
                && f.any("scope", |v| v == "local")
                && f.any("type", |v| v == typ)
                && f.labels("label", &n.labels)
        })
        .map(|n| local_out(n, &[]))
        .collect();
    // A node outside a swarm (or a worker) has only its local networks.
    let by_name =
        |a: &serde_json::Value, b: &serde_json::Value| a["Name"].as_str().cmp(&b["Name"].as_str());
    let Ok(h) = manager(&state).await else {
        local.sort_by(by_name);
        return Ok(axum::Json(local));
    };
    let view = h.view();
    let mut out: Vec<serde_json::Value> = view
        .networks()
        .filter(|n| {
            f.any("id", |v| n.id.as_str().starts_with(v))
                && f.any("name", |v| n.spec.name.contains(v))
                && f.any("driver", |v| v == n.spec.driver)
                && f.any("scope", |v| v == "swarm")
                && f.any("type", |v| v == "custom")
                && f.labels("label", &n.spec.labels)
        })
        .map(|n| serde_json::to_value(network_out(n)).unwrap_or_default())
        .collect();
    out.extend(local);
    out.sort_by(by_name);
    Ok(axum::Json(out))
}

/// A local network as Docker shows one, with the containers on it.
fn local_out(
    n: &shoal_types::local_net::LocalNetwork,
    containers: &[shoal_control::engine::ContainerInfo],
) -> serde_json::Value {
    let mut on = serde_json::Map::new();
    for c in containers {
        for e in c.networks.iter().filter(|e| e.id.as_str() == n.id) {
            on.insert(
                c.id.clone(),
                serde_json::json!({
                    "Name": c.name,
                    "EndpointID": "",
                    "MacAddress": e.mac,
                    "IPv4Address": e.addr,
                    "IPv6Address": "",
                }),
            );
        }
    }
    serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": crate::convert::time(n.created),
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [{ "Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string() }],
        },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": on,
        "Options": n.options,
        "Labels": n.labels,
    })
}

/// The local network `key` names: its name, ID or a prefix of its ID.
fn find_local(state: &AppState, key: &str) -> Option<shoal_types::local_net::LocalNetwork> {
    let all = state.daemon.engine().local_networks();
    if let Some(n) = all.iter().find(|n| n.id == key || n.name == key) {
        return Some(n.clone());
    }
    let mut by_prefix = all.into_iter().filter(|n| n.id.starts_with(key));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(n), None) => Some(n),
        _ => None,
    }
}

pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<w::NetworkCreateRequest>,
) -> ApiResult<(StatusCode, axum::Json<w::NetworkCreateResponse>)> {
    if matches!(body.driver.as_deref(), None | Some("") | Some("bridge")) {
        let spec = crate::convert::network::local_spec_in(body)?;
        let n = state
            .daemon
            .engine()
            .create_local_network(spec)
            .await
            .map_err(engine_err)?;
        return Ok((
            StatusCode::CREATED,
            axum::Json(w::NetworkCreateResponse {
                id: n.id,
                warning: String::new(),
            }),
        ));
    }
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
) -> ApiResult<axum::Json<serde_json::Value>> {
    if let Some(n) = find_local(&state, &id) {
        let containers = state
            .daemon
            .engine()
            .containers()
            .await
            .map_err(engine_err)?;
        return Ok(axum::Json(local_out(&n, &containers)));
    }
    let h = manager(&state).await.map_err(|e| {
        // Without a manager there are only local networks, and this is none of them.
        if e.status == StatusCode::SERVICE_UNAVAILABLE {
            ApiError::new(StatusCode::NOT_FOUND, format!("network {id} not found"))
        } else {
            e
        }
    })?;
    let n = h.view().find_network(&id)?;
    Ok(axum::Json(
        serde_json::to_value(network_out(&n)).unwrap_or_default(),
    ))
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if let Some(n) = find_local(&state, &id) {
        state
            .daemon
            .engine()
            .remove_local_network(&n.id)
            .await
            .map_err(engine_err)?;
        return Ok(StatusCode::NO_CONTENT);
    }
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

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConnectBody {
    pub container: String,
    pub endpoint_config: Option<EndpointConfigBody>,
    pub force: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointConfigBody {
    pub aliases: Option<Vec<String>>,
}

/// `docker network connect`: a standalone container joins a local network.
pub async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ConnectBody>,
) -> ApiResult<StatusCode> {
    if body.container.is_empty() {
        return Err(ApiError::invalid("Container", "a container is required"));
    }
    let network = match find_local(&state, &id) {
        Some(n) => n.name,
        None => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("network {id} not found"),
            ));
        }
    };
    state
        .daemon
        .engine()
        .connect(
            &body.container,
            shoal_control::engine::EndpointRequest {
                network,
                aliases: body
                    .endpoint_config
                    .and_then(|e| e.aliases)
                    .unwrap_or_default(),
            },
        )
        .await
        .map_err(engine_err)?;
    Ok(StatusCode::OK)
}

/// `docker network disconnect`.
pub async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ConnectBody>,
) -> ApiResult<StatusCode> {
    if body.container.is_empty() {
        return Err(ApiError::invalid("Container", "a container is required"));
    }
    let network = find_local(&state, &id)
        .map(|n| n.name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("network {id} not found")))?;
    state
        .daemon
        .engine()
        .disconnect(&body.container, &network, body.force)
        .await
        .map_err(engine_err)?;
    Ok(StatusCode::OK)
}
