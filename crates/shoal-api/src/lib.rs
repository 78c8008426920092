//! The Docker Engine API's swarm subset, served over HTTP on a unix socket or TCP, so the real
//! `docker` CLI and SDKs drive shoal unchanged. Handlers translate wire types to the object model
//! ([`convert`]) and call the node's control surface ([`shoal_control`]): never the store, so
//! another front end can sit beside this one. They hold no state of their own.
//!
//! Every path may carry a `/v1.NN` prefix; versions 1.41 to 1.50 are served, others refused.

pub mod body;
pub mod convert;
pub mod error;
pub mod filters;
pub mod hijack;
mod routes;
pub mod tls;
mod version;
mod wire_names;

use std::sync::Arc;

use shoal_control::NodeSurface;
use shoal_types::Clock;
use tokio::sync::watch;

pub use routes::swarm::{InitBody, JoinBody};
/// The engine endpoints' parsers and matchers, for the fuzz targets.
pub mod engine_wire {
    pub use crate::routes::containers::{
        FILTERS as CONTAINER_FILTERS, inspect_json, matches as container_matches, parse_signal,
    };
    pub use crate::routes::events::{FILTERS as EVENT_FILTERS, matches as event_matches};
    pub use crate::routes::exec::exec_config;
    pub use crate::routes::standalone::container_create;

    /// `POST /networks/create`'s body as a local (`bridge`) network's spec.
    pub fn local_network_spec(
        body: &[u8],
    ) -> crate::error::ApiResult<shoal_types::local_net::LocalNetworkSpec> {
        let r: bollard_stubs::models::NetworkCreateRequest = crate::body::parse_json(body)?;
        crate::convert::network::local_spec_in(r)
    }
}
pub use version::{ApiVersion, MAX_API_VERSION, MIN_API_VERSION};

#[derive(Clone)]
pub struct AppState {
    /// The node this API serves, and through it the node's manager when it is one.
    pub daemon: Arc<dyn NodeSurface>,
    pub clock: Arc<dyn Clock>,
    /// Flips to true when the daemon stops, ending long-lived responses (log follows).
    pub shutdown: watch::Receiver<bool>,
    pub engine_version: String,
    /// Randomness for the names the API makes (anonymous volumes), shared by every listener.
    pub ids: Arc<std::sync::Mutex<shoal_types::IdGen>>,
}

/// Where to serve.
pub enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
    /// TCP where every connection first completes a TLS handshake (see [`tls`]).
    Tls(tls::TlsListener),
}

/// Serves the API on `listener` until `state.shutdown` flips.
pub async fn serve(listener: Listener, state: AppState) -> std::io::Result<()> {
    let mut stop = state.shutdown.clone();
    let router = routes::router(state);
    let svc = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(version::route_version))
        .service(router);
    let make = tower::make::Shared::new(svc);
    let signal = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    match listener {
        Listener::Unix(l) => axum::serve(l, make).with_graceful_shutdown(signal).await,
        Listener::Tcp(l) => axum::serve(l, make).with_graceful_shutdown(signal).await,
        Listener::Tls(l) => axum::serve(l, make).with_graceful_shutdown(signal).await,
    }
}
