//! API errors as Docker clients expect them: `{"message": "..."}` with the status they branch on
//! (404 for unknown objects, 409 for conflicts, 503 when this node cannot serve the request).
//! Control and node errors carry their own status ([`ControlError::status`]), the mapping the
//! node-to-node RPC uses too.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use shoal_control::{ControlError, NodeError};
use shoal_types::error::chain;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        ApiError::bad_request(format!("{field}: {why}"))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn worker() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.",
        )
    }

    pub fn not_manager() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, message = %self.message, "request failed");
        }
        (
            self.status,
            axum::Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        ApiError::new(e.status(), chain(&e))
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        ApiError::new(e.status(), chain(&e))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
