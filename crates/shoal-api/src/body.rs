//! Request bodies and query strings, parsed so that a mistake names where it is: a JSON error
//! carries the path of the offending field (`TaskTemplate.ContainerSpec.Args[0]`) and its line
//! and column; a bad query parameter names the parameter.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted; larger ones get 413 without being read further.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, format!("request body is larger than the limit of {} bytes", MAX_BODY))
            } else {
                ApiError::new(status, format!("cannot read the request body: {e}"))
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("request body is empty; a JSON object is required"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON at {path}: {inner}"))
        }
    })
}

/// A query parameter as Docker clients send booleans: `1`, `true`, `True`, or present and empty.
pub fn query_bool(q: &std::collections::HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(|s| s.as_str()) {
        None => Ok(false),
        Some("" | "1" | "true" | "True" | "TRUE") => Ok(true),
        Some("0" | "false" | "False" | "FALSE") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "query parameter {name}: expected a boolean (1, true, 0 or false), got {other:?}"
        ))),
    }
}

pub fn query_u64(q: &std::collections::HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!("query parameter {name}: expected a non-negative integer, got {v:?}"))
        }),
    }
}
