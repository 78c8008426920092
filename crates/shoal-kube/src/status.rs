//! Errors as the Kubernetes API server sends them: a `Status` object whose `reason` and
//! `message` kubectl prints (`Error from server (NotFound): deployments.apps "web" not found`).
//!
//! Concurrency: plain values.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};
use shoal_control::ControlError;

use crate::registry::ResourceInfo;

/// A failed request, as a `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub type KubeResult<T> = Result<T, KubeError>;

impl KubeError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> KubeError {
        KubeError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, r: &ResourceInfo, name: &str) -> KubeError {
        let mut d = json!({ "name": name, "kind": r.plural });
        if !r.group.is_empty() {
            d["group"] = json!(r.group);
        }
        self.details = Some(d);
        self
    }

    /// `deployments.apps "web" not found`.
    pub fn not_found(r: &ResourceInfo, name: &str) -> KubeError {
        KubeError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.qualified()),
        )
        .with_details(r, name)
    }

    /// `deployments.apps "web" already exists`.
    pub fn already_exists(r: &ResourceInfo, name: &str) -> KubeError {
        KubeError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.qualified()),
        )
        .with_details(r, name)
    }

    /// A write based on an older `resourceVersion` than the object's.
    pub fn conflict(r: &ResourceInfo, name: &str) -> KubeError {
        KubeError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                r.qualified()
            ),
        )
        .with_details(r, name)
    }

    /// A field that fails validation: `Deployment.apps "web" is invalid: spec.replicas:
    /// Invalid value: -1: must be greater than or equal to 0`.
    pub fn invalid(r: &ResourceInfo, name: &str, causes: &[(String, String)]) -> KubeError {
        let text: Vec<String> = causes
            .iter()
            .map(|(f, why)| format!("{f}: {why}"))
            .collect();
        let group = if r.group.is_empty() {
            String::new()
        } else {
            format!(".{}", r.group)
        };
        let message = match text.len() {
            1 => format!("{}{group} \"{name}\" is invalid: {}", r.kind, text[0]),
            _ => format!(
                "{}{group} \"{name}\" is invalid: [{}]",
                r.kind,
                text.join(", ")
            ),
        };
        let mut e = KubeError::new(422, "Invalid", message).with_details(r, name);
        if let Some(d) = e.details.as_mut() {
            d["kind"] = json!(r.kind);
            d["causes"] = causes
                .iter()
                .map(
                    |(f, why)| json!({ "reason": "FieldValueInvalid", "message": why, "field": f }),
                )
                .collect();
        }
        e
    }

    pub fn bad_request(message: impl Into<String>) -> KubeError {
        KubeError::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> KubeError {
        KubeError::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> KubeError {
        KubeError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {content_type:?}"
            ),
        )
    }

    /// The path names no resource this server serves (kubectl's "the server could not find
    /// the requested resource").
    pub fn no_route() -> KubeError {
        KubeError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// A watch from a version older than the server keeps.
    pub fn expired(asked: u64, oldest: u64) -> KubeError {
        KubeError::new(
            410,
            "Expired",
            format!("too old resource version: {asked} ({oldest})"),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> KubeError {
        KubeError::new(503, "ServiceUnavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> KubeError {
        KubeError::new(500, "InternalError", message)
    }

    /// A control surface error about the object `name` of kind `r`.
    pub fn from_control(r: &ResourceInfo, name: &str, e: ControlError) -> KubeError {
        match &e {
            ControlError::NotFound { .. } => KubeError::not_found(r, name),
            ControlError::InvalidArgument { field, why } => {
                KubeError::invalid(r, name, &[(field.clone(), why.clone())])
            }
            ControlError::Conflict(m) => KubeError::new(409, "Conflict", m.clone()),
            ControlError::PermissionDenied(m) => KubeError::new(403, "Forbidden", m.clone()),
            ControlError::Unavailable(m) => KubeError::unavailable(m.clone()),
            ControlError::Ambiguous { .. } | ControlError::FailedPrecondition(_) => {
                KubeError::bad_request(e.to_string())
            }
            ControlError::Internal(_) => KubeError::internal(e.to_string()),
            ControlError::Remote { status, message } => {
                KubeError::new(*status, reason_of(*status), message.clone())
            }
        }
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

/// The `reason` Kubernetes gives a status code.
fn reason_of(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

impl std::fmt::Display for KubeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_status().to_string();
        (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    #[test]
    fn messages_read_as_the_api_servers() {
        let Some(d) = registry::find("apps", "v1", "deployments") else {
            panic!("deployments are served");
        };
        let e = KubeError::not_found(d, "web");
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        assert_eq!(e.to_status()["details"]["group"], "apps");
        let e = KubeError::invalid(
            d,
            "web",
            &[(
                "spec.replicas".into(),
                "Invalid value: -1: must be greater than or equal to 0".into(),
            )],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(e.code, 422);
        let Some(p) = registry::find("", "v1", "pods") else {
            panic!("pods are served");
        };
        assert_eq!(KubeError::not_found(p, "x").message, "pods \"x\" not found");
    }
}
