//! The routes. Each handler resolves what it needs from the daemon, calls the control API and
//! converts the answer; errors are [`ApiError`]s with Docker's statuses.

mod images;
mod logs;
mod networks;
pub(crate) mod nodes;
mod services;
pub(crate) mod swarm;
mod system;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use shoal_control::ControlSurface;

use crate::AppState;
use crate::body::MAX_BODY;
use crate::error::{ApiError, ApiResult};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/swarm", get(swarm::inspect))
        .route("/swarm/init", post(swarm::init))
        .route("/swarm/join", post(swarm::join))
        .route("/swarm/leave", post(swarm::leave))
        .route("/swarm/update", post(swarm::update))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{id}", get(nodes::inspect).delete(nodes::remove))
        .route("/nodes/{id}/update", post(nodes::update))
        .route("/services", get(services::list))
        .route("/services/create", post(services::create))
        .route(
            "/services/{id}",
            get(services::inspect).delete(services::remove),
        )
        .route("/services/{id}/update", post(services::update))
        .route("/services/{id}/logs", get(logs::service_logs))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::inspect))
        .route("/tasks/{id}/logs", get(logs::task_logs))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::pull))
        .route(
            "/images/load",
            post(images::load).layer(DefaultBodyLimit::disable()),
        )
        // Image names hold slashes (`host:5000/team/app:1`).
        .route("/images/{*name}", axum::routing::delete(images::remove))
        .route("/volumes", get(images::volumes))
        .route(
            "/volumes/{name}",
            get(images::volume_inspect).delete(images::volume_remove),
        )
        .fallback(|| async { ApiError::not_found("page not found") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The host part of `ip:port`.
pub(crate) fn host_part(addr: &str) -> String {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string()
}

/// This node's manager, or Docker's answers for a node that is not one.
async fn manager(state: &AppState) -> ApiResult<Arc<dyn ControlSurface>> {
    let swarm = state
        .daemon
        .swarm()
        .await
        .ok_or_else(ApiError::not_manager)?;
    swarm.manager.ok_or_else(ApiError::worker)
}
