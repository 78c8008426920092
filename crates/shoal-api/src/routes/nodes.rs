//! `/nodes`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use bollard_stubs::models as w;
use shoal_manager::Control;
use shoal_types::Node;
use shoal_types::node::NodeRole;

use super::manager;
use crate::AppState;
use crate::body::{Json, query_bool, query_u64};
use crate::convert::node::{node_out, spec_in};
use crate::error::{ApiError, ApiResult};
use crate::filters::Filters;

/// The Raft leader and voters as this manager sees them.
pub(crate) fn raft_view(c: &Control) -> (Option<u64>, std::collections::BTreeSet<u64>) {
    let voters = c
        .store()
        .members()
        .into_iter()
        .filter(|(_, (_, voter))| *voter)
        .map(|(id, _)| id)
        .collect();
    (c.store().leader(), voters)
}

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
    let f = Filters::parse(
        q.get("filters"),
        &["id", "label", "membership", "name", "node.label", "role"],
    )?;
    for r in f.get("role") {
        if r != NodeRole::Manager.as_str() && r != NodeRole::Worker.as_str() {
            return Err(ApiError::bad_request(format!("invalid filter 'role={r}'")));
        }
    }
    let view = h.control.view();
    let (leader, voters) = raft_view(&h.control);
    Ok(axum::Json(
        view.nodes()
            .filter(|n| matches(&f, n))
            .map(|n| node_out(n, leader, &voters, view.cluster().map(|c| &**c)))
            .collect(),
    ))
}

pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<w::Node>> {
    let h = manager(&state).await?;
    let view = h.control.view();
    let n = Control::find_node(&view, &id)?;
    let (leader, voters) = raft_view(&h.control);
    Ok(axum::Json(node_out(
        &n,
        leader,
        &voters,
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
    h.control.update_node(&id, version, spec_in(body)?).await?;
    Ok(())
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<()> {
    let h = manager(&state).await?;
    h.control.remove_node(&id, query_bool(&q, "force")?).await?;
    Ok(())
}
