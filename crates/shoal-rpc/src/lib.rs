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
//! - Seam: [`Transport`] is what clients are written against ([`TransportExt`] gives them typed
//!   calls); `RpcClient` implements it, and [`call_in_process`] / [`stream_in_process`] answer
//!   with a router in this process, for an in-memory network (the simulation).
//!
//! The TLS configurations come from `shoal_pki`, which decides what is trusted; this crate only
//! carries bytes and reports who is on the other end.

mod client;
mod io;
mod server;
mod transport;

pub use client::{CONNECT_TIMEOUT, MAX_BODY, RpcClient};
pub use server::{DRAIN, Peer, RequirePeer, ndjson, serve};
pub use transport::{Lines, Transport, TransportExt, call_in_process, stream_in_process};

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
///
/// The causes (the socket's, TLS's, HTTP/2's, the JSON parser's error) are kept as `source()`,
/// shared so the error stays `Clone`: the client caches a failed connect for the callers that
/// waited on it. A `Status` message is the peer's, as it came over the wire.
#[derive(thiserror::Error, Debug, Clone)]
pub enum RpcError {
    #[error("cannot reach {addr}")]
    Connect {
        addr: String,
        #[source]
        source: Cause,
    },
    #[error("TLS with {addr} failed")]
    Tls {
        addr: String,
        #[source]
        source: Cause,
    },
    #[error("{addr} did not answer in time")]
    Timeout { addr: String },
    #[error("{message} (HTTP {code})")]
    Status { code: u16, message: String },
    /// `what` says which body and what was being done with it.
    #[error("undecodable body: {what}")]
    Decode {
        what: String,
        #[source]
        source: Option<Cause>,
    },
}

pub use shoal_types::error::{Cause, Remote};
