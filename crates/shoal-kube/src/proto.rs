//! Request bodies in Kubernetes' protobuf encoding, decoded to the JSON the API server would
//! have received as JSON.
//!
//! kubectl 1.32 sends its typed clients' bodies as protobuf, with no JSON fallback:
//! `create secret|configmap|namespace|deployment|job|cronjob|service|serviceaccount|quota|
//! role|pdb|priorityclass|ingress|token`, `create job --from=cronjob/…`, `debug` (the pod it
//! creates: `debug node/…`, `debug --copy-to`), `auth can-i`, and the `DeleteOptions` body of the
//! pod deletions `drain` makes when the server offers no eviction. `run`, `expose`, `create -f`,
//! `apply`, `delete`, `scale` and the patching commands send JSON (recorded from the real
//! kubectl against a stub server; the bodies are the fixtures of the tests,
//! `tests/fixtures/proto/`).
//!
//! A body is the magic `k8s\0` and a `runtime.Unknown` message: the object's `TypeMeta`
//! (apiVersion, kind), its own message's bytes, a content encoding (always empty) and type.
//! The object is decoded with k8s-pb's prost messages, converted field by field to
//! k8s-openapi's types (submodules `meta`, `pod`, `kinds`; the machinery in `conv`) and
//! serialized as those serialize: Secret data in base64, quantities as strings, IntOrString,
//! times in RFC 3339, zero values of Go's non-pointer fields left out as Go's JSON leaves them.
//! A field the conversions do not carry is an error when set, never dropped.
//!
//! Replies stay JSON: kubectl asks for `application/vnd.kubernetes.protobuf, application/json`
//! and reads either.

mod conv;
mod kinds;
mod meta;
mod pod;
#[cfg(test)]
mod tests;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::policy::v1 as policy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use k8s_pb::api::apps::v1 as pbapps;
use k8s_pb::api::batch::v1 as pbbatch;
use k8s_pb::api::core::v1 as pbcore;
use k8s_pb::api::policy::v1 as pbpolicy;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pbmeta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::Value;

use conv::{At, Conv, Fail, Why};

/// The media type of protobuf bodies (`Content-Type` of kubectl's typed requests).
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body was not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("not a Kubernetes protobuf body (no k8s\\0 prefix)")]
    NoPrefix,
    #[error("malformed protobuf envelope (runtime.Unknown): {0}")]
    Envelope(String),
    #[error("unsupported content encoding {0:?} in a protobuf body")]
    ContentEncoding(String),
    #[error("unsupported kind {api_version} {kind} in a protobuf body; send it as JSON")]
    UnsupportedKind { api_version: String, kind: String },
    #[error("malformed {kind}: {error}")]
    Malformed { kind: String, error: String },
    #[error("unsupported field {field} in a protobuf {kind} body; send it as JSON (kubectl apply)")]
    UnsupportedField { kind: String, field: String },
    #[error("invalid {field} in a protobuf {kind} body: {reason}")]
    Invalid {
        kind: String,
        field: String,
        reason: String,
    },
}

impl ProtoError {
    fn of(kind: &str, fail: Fail) -> Self {
        let kind = kind.to_owned();
        match fail.why {
            Why::Unsupported => ProtoError::UnsupportedField {
                kind,
                field: fail.path,
            },
            Why::Invalid(reason) => ProtoError::Invalid {
                kind,
                field: fail.path,
                reason,
            },
        }
    }
}

/// Decodes a protobuf request body into the JSON object the API server would have received as
/// JSON: `apiVersion` and `kind` set, fields in Kubernetes' JSON names and shapes, as
/// k8s-openapi serializes them. Defaulting (a Secret's `type`, a Deployment's strategy…) is
/// left to the caller, as for a JSON body.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::NoPrefix)?;
    let unknown = Unknown::decode(rest).map_err(|e| ProtoError::Envelope(e.to_string()))?;
    let encoding = unknown.content_encoding.unwrap_or_default();
    if !encoding.is_empty() {
        return Err(ProtoError::ContentEncoding(encoding));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => object::<pbcore::Secret, core::Secret>(&raw, &kind),
        ("v1", "ConfigMap") => object::<pbcore::ConfigMap, core::ConfigMap>(&raw, &kind),
        ("v1", "Namespace") => object::<pbcore::Namespace, core::Namespace>(&raw, &kind),
        ("v1", "Service") => object::<pbcore::Service, core::Service>(&raw, &kind),
        ("v1", "Pod") => object::<pbcore::Pod, core::Pod>(&raw, &kind),
        ("v1", "Node") => object::<pbcore::Node, core::Node>(&raw, &kind),
        ("apps/v1", "Deployment") => object::<pbapps::Deployment, apps::Deployment>(&raw, &kind),
        ("apps/v1", "DaemonSet") => object::<pbapps::DaemonSet, apps::DaemonSet>(&raw, &kind),
        ("batch/v1", "Job") => object::<pbbatch::Job, batch::Job>(&raw, &kind),
        ("batch/v1", "CronJob") => object::<pbbatch::CronJob, batch::CronJob>(&raw, &kind),
        ("policy/v1", "Eviction") => object::<pbpolicy::Eviction, policy::Eviction>(&raw, &kind),
        // Registered in every group version; the core client sends it as v1.
        (_, "DeleteOptions") if !api_version.is_empty() => {
            object::<pbmeta::DeleteOptions, metav1::DeleteOptions>(&raw, &kind)
        }
        _ => return Err(ProtoError::UnsupportedKind { api_version, kind }),
    };
    let mut obj = obj?;
    // k8s-openapi writes a resource's apiVersion and kind; DeleteOptions takes the envelope's.
    if let Value::Object(fields) = &mut obj {
        fields
            .entry("apiVersion")
            .or_insert_with(|| Value::String(api_version));
        fields.entry("kind").or_insert_with(|| Value::String(kind));
    }
    Ok(obj)
}

fn object<P, T>(raw: &[u8], kind: &str) -> Result<Value, ProtoError>
where
    P: Message + Default + Conv<T>,
    T: serde::Serialize,
{
    let msg = P::decode(raw).map_err(|e| ProtoError::Malformed {
        kind: kind.to_owned(),
        error: e.to_string(),
    })?;
    let obj: T = msg.conv(At::root()).map_err(|f| ProtoError::of(kind, f))?;
    serde_json::to_value(&obj).map_err(|e| ProtoError::Invalid {
        kind: kind.to_owned(),
        field: String::new(),
        reason: e.to_string(),
    })
}
