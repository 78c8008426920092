//! The routes. Each handler resolves what it needs from the daemon, calls the control API and
//! converts the answer; errors are [`ApiError`]s with Docker's statuses.

mod archive;
mod autolock;
mod certificates;
pub(crate) mod containers;
pub(crate) mod events;
pub(crate) mod exec;
mod image_ops;
mod images;
mod logs;
mod networks;
pub(crate) mod nodes;
mod payloads;
mod services;
pub(crate) mod standalone;
pub(crate) mod swarm;
mod system;
mod tasks;
mod volumes;

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
        .route("/swarm/unlock", post(autolock::unlock))
        .route("/swarm/unlockkey", get(autolock::unlock_key))
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
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/secrets", get(payloads::secrets_list))
        .route("/secrets/create", post(payloads::secrets_create))
        .route(
            "/secrets/{id}",
            get(payloads::secrets_inspect).delete(payloads::secrets_remove),
        )
        .route("/secrets/{id}/update", post(payloads::secrets_update))
        .route("/secrets/{id}/rotate", post(payloads::secrets_rotate))
        .route("/configs", get(payloads::configs_list))
        .route("/configs/create", post(payloads::configs_create))
        .route(
            "/configs/{id}",
            get(payloads::configs_inspect).delete(payloads::configs_remove),
        )
        .route("/configs/{id}/update", post(payloads::configs_update))
        .route("/configs/{id}/rotate", post(payloads::configs_rotate))
        .route("/tasks", get(tasks::list))
        .route("/tasks/{id}", get(tasks::inspect))
        .route("/tasks/{id}/logs", get(logs::task_logs))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::pull))
        .route(
            "/images/load",
            post(images::load).layer(DefaultBodyLimit::disable()),
        )
        .route("/images/search", get(image_ops::search))
        .route(
            "/build",
            post(image_ops::build).layer(DefaultBodyLimit::disable()),
        )
        .route("/images/get", get(image_ops::save_many))
        // Image names hold slashes (`host:5000/team/app:1`): the path's last segment says
        // which call it is (`json`, `history`, `get`, `tag`).
        .route(
            "/images/{*name}",
            get(image_ops::by_name)
                .post(image_ops::by_name_post)
                .delete(images::remove),
        )
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(standalone::create))
        .route("/containers/{id}/start", post(standalone::start))
        .route("/containers/{id}/rename", post(standalone::rename))
        .route("/containers/{id}/attach", post(standalone::attach))
        .route(
            "/containers/{id}/archive",
            get(archive::get)
                .head(archive::head)
                .put(archive::put)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/containers/{id}/resize", post(standalone::resize))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(containers::stats))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/events", get(events::events))
        // A shoal extension: API client certificates signed by the cluster's root.
        .route("/shoal/certificates", post(certificates::issue))
        .fallback(|| async { ApiError::not_found("page not found") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // A locked manager (autolock) answers only unlock and a few daemon-level calls.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            autolock::guard,
        ))
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
