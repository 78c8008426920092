//! shoal's node-to-node transport: HTTP/2 over mutual TLS (tokio-rustls, ALPN `h2`), JSON
//! request and response bodies, NDJSON for streams, and one error body shape,
//! `{"message": "..."}`, on both sides.
//!
//! - Server: [`serve`] runs an axum [`Router`](axum::Router) behind TLS and attaches a [`Peer`]
//!   (address and verified identity) to every request; [`RequirePeer`] refuses anonymous
//!   clients with 403; [`ndjson`] streams items as they are produced.
//! - Client: [`RpcClient`] keeps one multiplexed HTTP/2 connection per address, reused by every
//!   call (no handshake on the hot path), rebuilt when the TLS configuration in its watch changes.
//!
//! The TLS configurations come from `shoal_pki`, which decides what is trusted; this crate only
//! carries bytes and reports who is on the other end.

mod client;
mod io;
mod server;

pub use client::{CONNECT_TIMEOUT, MAX_BODY, RpcClient};
pub use server::{DRAIN, Peer, RequirePeer, ndjson, serve};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The error body both sides use: `{"message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub message: String,
}

/// A JSON error response with `status` and `message`, as handlers should return errors so the
/// client reports them as [`RpcError::Status`].
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            message: message.into(),
        }),
    )
        .into_response()
}

/// Why a call failed. `Connect` and `Timeout` mean the peer may be down or slow (try another
/// manager); `Tls` means it is not who we trust, or does not trust us; `Status` is the handler's
/// own answer; `Decode` is a body that did not parse.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RpcError {
    #[error("cannot reach {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("TLS with {addr} failed: {why}")]
    Tls { addr: String, why: String },
    #[error("{addr} did not answer in time")]
    Timeout { addr: String },
    #[error("{message} (HTTP {code})")]
    Status { code: u16, message: String },
    #[error("undecodable body: {0}")]
    Decode(String),
}
