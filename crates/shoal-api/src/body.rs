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
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// [`Json`], with the raw body kept for what the wire type drops (shoal's own fields in a
/// Docker-shaped body, read with `serde_json::Value`).
pub struct JsonRaw<T>(pub T, pub Bytes);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonRaw<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(|v| JsonRaw(v, bytes))
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    {
        // Refuse by the announced length before reading anything.
        let announced = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == http::StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::new(status, format!("cannot read the request body: {e}"))
            }
        })?;
        Ok(bytes)
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is larger than the limit of {MAX_BODY} bytes"),
    )
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; a JSON object is required",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    serde_path_to_error::deserialize(normalize_keys(value)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" || path.is_empty() {
            ApiError::bad_request(format!("invalid JSON: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid JSON at {path}: {inner}"))
        }
    })
}

/// Values under these keys are free-form maps (label names, driver options): their keys are data,
/// not field names, and are left exactly as sent.
const OPAQUE: &[&str] = &[
    "Labels",
    // Keyed by network names.
    "EndpointsConfig",
    "Options",
    "DriverOpts",
    "Sysctls",
    "StorageOpt",
    "Tmpfs",
    "Annotations",
    "Attributes",
    "Details",
    "Runtimes",
    "PublishContext",
    "VolumeContext",
];

/// Spells every field name as the Engine API does, so keys match case-insensitively as they do
/// for the Docker daemon (Go's JSON decoding). An exact spelling wins over a case-folded one.
pub fn normalize_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, v) in m {
                let canonical = canonical_field(&k);
                let exact = canonical == k;
                let v = if OPAQUE.contains(&canonical) {
                    v
                } else {
                    normalize_keys(v)
                };
                if exact || !out.contains_key(canonical) {
                    out.insert(canonical.to_string(), v);
                }
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(normalize_keys).collect())
        }
        other => other,
    }
}

fn canonical_field(k: &str) -> &str {
    let lower = k.to_ascii_lowercase();
    match crate::wire_names::FIELDS.binary_search_by(|(l, _)| (*l).cmp(lower.as_str())) {
        Ok(i) => crate::wire_names::FIELDS[i].1,
        Err(_) => k,
    }
}

/// A query parameter as Docker clients send booleans: `1`, `true`, `True`, or present and empty.
pub fn query_bool(
    q: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<bool, ApiError> {
    match q.get(name).map(|s| s.as_str()) {
        None => Ok(false),
        Some("" | "1" | "true" | "True" | "TRUE") => Ok(true),
        Some("0" | "false" | "False" | "FALSE") => Ok(false),
        Some(other) => Err(ApiError::bad_request(format!(
            "query parameter {name}: expected a boolean (1, true, 0 or false), got {other:?}"
        ))),
    }
}

pub fn query_u64(
    q: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<Option<u64>, ApiError> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter {name}: expected a non-negative integer, got {v:?}"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_match_case_insensitively_but_map_keys_are_kept() {
        let v: serde_json::Value = serde_json::json!({
            "name": "web",
            "Labels": {"com.example.team": "a", "name": "kept"},
            "mode": {"replicated": {"replicas": 2}},
            "TaskTemplate": {"containerspec": {"image": "host", "tty": true, "readonly": true}}
        });
        let n = normalize_keys(v);
        assert_eq!(n["Name"], "web");
        assert_eq!(n["Labels"]["name"], "kept");
        assert_eq!(n["Labels"]["com.example.team"], "a");
        assert_eq!(n["Mode"]["Replicated"]["Replicas"], 2);
        assert_eq!(n["TaskTemplate"]["ContainerSpec"]["TTY"], true);
        assert_eq!(n["TaskTemplate"]["ContainerSpec"]["ReadOnly"], true);
        assert!(
            crate::wire_names::FIELDS
                .windows(2)
                .all(|w| w[0].0 < w[1].0),
            "table must stay sorted"
        );
    }
}
