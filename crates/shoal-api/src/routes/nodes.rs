//! `/nodes`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use bollard_stubs::models as w;
use shoal_types::Node;

use super::manager;
use crate::AppState;
use crate::body::{Json, query_bool, query_u64};
use crate::convert::node::{node_out, spec_in};
use crate::error::{ApiError, ApiResult};
use crate::filters::Filters;

fn matches(f: &Filters, n: &Node) -> bool {
    f.any("id", |v| n.id.as_str().starts_with(v))
        && f.any("name", |v| {
            n.display_name().starts_with(v) || n.description.hostname.starts_with(v)
        })
        && f.any("role", |v| v == n.spec.role.as_str())
        && f.any("membership", |v| v == "accepted")
        && f.labels("label", &n.description.engine.labels)
        && f.labels("node.label", &n.spec.labels)
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<w::Node>>> {
    let h = manager(&state).await?;
    let f = Filters::for_nodes(q.get("filters"))?;
    let view = h.view();
    let raft = h.raft();
    Ok(axum::Json(
        view.nodes()
            .filter(|n| matches(&f, n))
            .map(|n| node_out(n, &raft, view.cluster().map(|c| &**c)))
            .collect(),
    ))
}

pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<w::Node>> {
    let h = manager(&state).await?;
    let view = h.view();
    let n = view.find_node(&id)?;
    Ok(axum::Json(node_out(
        &n,
        &h.raft(),
        view.cluster().map(|c| &**c),
    )))
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<w::NodeSpec>,
) -> ApiResult<()> {
    let h = manager(&state).await?;
    let version = query_u64(&q, "version")?.ok_or_else(|| {
        ApiError::bad_request("query parameter version: required (the node's Version.Index)")
    })?;
    h.update_node(&id, version, spec_in(body)?).await?;
    Ok(())
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<()> {
    let h = manager(&state).await?;
    h.remove_node(&id, query_bool(&q, "force")?).await?;
    Ok(())
}
