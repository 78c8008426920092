//! ConfigMaps and Secrets as Swarm configs and secrets: one object, two views.
//!
//! - A Swarm config or secret made with docker is a ConfigMap or Secret with one key, its own
//!   name: `docker secret create db_pass` is Secret `db_pass` with key `db_pass`, and mounted
//!   the Swarm way it is the file `/run/secrets/db_pass`.
//! - One made here keeps its keys: the Swarm payload's data is the JSON object of the keys
//!   (values base64), marked by the label `shoal.kube.data=keys`; a Secret's type is the label
//!   `shoal.kube.secret-type`. So the data has Swarm's protection at rest (sealed in the
//!   store, never shown by the Docker API).
//! - A change of the data is a rotation (a new version of the payload; the services that follow
//!   it roll), a change of labels Swarm's label update.
//!
//! Concurrency: pure functions.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use shoal_types::payload::{Payload, PayloadKind, PayloadSpec};
use shoal_types::stack::NAMESPACE_LABEL;

use crate::objects;
use crate::workload::Cause;

/// Marks a payload whose data is the JSON object of a ConfigMap's or Secret's keys.
pub const DATA_LABEL: &str = "shoal.kube.data";
/// A Secret's `type`.
pub const SECRET_TYPE_LABEL: &str = "shoal.kube.secret-type";
/// Swarm's limit on a payload's data.
const MAX_DATA: usize = 500 * 1024;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A payload's namespace and its name there (as a stack's services).
pub fn split_name(p: &Payload) -> (String, String) {
    match p.spec.labels.get(NAMESPACE_LABEL) {
        Some(ns) if !ns.is_empty() => {
            let name = p
                .spec
                .name
                .strip_prefix(&format!("{ns}_"))
                .unwrap_or(&p.spec.name)
                .to_string();
            (ns.clone(), name)
        }
        _ => (objects::DEFAULT_NAMESPACE.to_string(), p.spec.name.clone()),
    }
}

/// The keys of a payload's current data.
pub fn keys(p: &Payload) -> BTreeMap<String, Vec<u8>> {
    let data = p
        .current()
        .map(|v| v.data.as_slice().to_vec())
        .unwrap_or_default();
    if p.spec.labels.get(DATA_LABEL).map(String::as_str) == Some("keys")
        && let Ok(map) = serde_json::from_slice::<BTreeMap<String, String>>(&data)
    {
        return map
            .into_iter()
            .filter_map(|(k, v)| b64().decode(v).ok().map(|b| (k, b)))
            .collect();
    }
    let (_, name) = split_name(p);
    [(name, data)].into()
}

/// The data a payload holds for `keys`.
pub fn encode_keys(keys: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let map: BTreeMap<&String, String> = keys.iter().map(|(k, v)| (k, b64().encode(v))).collect();
    serde_json::to_vec(&map).unwrap_or_default()
}

fn kube_labels(p: &Payload) -> BTreeMap<String, String> {
    p.spec
        .labels
        .iter()
        .filter(|(k, v)| {
            !matches!(k.as_str(), NAMESPACE_LABEL | DATA_LABEL | SECRET_TYPE_LABEL)
                && crate::selector::label_key_errors(k).is_empty()
                && crate::selector::label_value_errors(v).is_empty()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn meta(p: &Payload) -> ObjectMeta {
    let (ns, name) = split_name(p);
    let labels = kube_labels(p);
    ObjectMeta {
        name: Some(name),
        namespace: Some(ns),
        uid: Some(objects::uid_of(&p.id)),
        resource_version: Some(p.meta.version.to_string()),
        creation_timestamp: objects::time(p.meta.created_at),
        labels: (!labels.is_empty()).then_some(labels),
        ..ObjectMeta::default()
    }
}

/// The ConfigMap a Swarm config is.
pub fn config_map(p: &Payload) -> core::ConfigMap {
    let mut data = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for (k, v) in keys(p) {
        match String::from_utf8(v) {
            Ok(s) => {
                data.insert(k, s);
            }
            Err(e) => {
                binary.insert(k, ByteString(e.into_bytes()));
            }
        }
    }
    core::ConfigMap {
        metadata: meta(p),
        data: (!data.is_empty()).then_some(data),
        binary_data: (!binary.is_empty()).then_some(binary),
        immutable: None,
    }
}

/// The Secret a Swarm secret is.
pub fn secret(p: &Payload) -> core::Secret {
    let data: BTreeMap<String, ByteString> = keys(p)
        .into_iter()
        .map(|(k, v)| (k, ByteString(v)))
        .collect();
    core::Secret {
        metadata: meta(p),
        data: (!data.is_empty()).then_some(data),
        type_: Some(
            p.spec
                .labels
                .get(SECRET_TYPE_LABEL)
                .cloned()
                .unwrap_or_else(|| "Opaque".into()),
        ),
        immutable: None,
        string_data: None,
    }
}

/// Why `key` cannot name a ConfigMap's or Secret's entry.
fn key_errors(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && key != "."
        && key != ".."
        && !key.starts_with("..");
    (!ok).then(|| {
        format!("Invalid value: {key:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
    })
}

/// What a ConfigMap or Secret written here is as a payload: its spec and its data.
pub fn payload_in(
    kind: PayloadKind,
    obj: &Value,
    namespace: &str,
) -> Result<(PayloadSpec, Vec<u8>), Vec<Cause>> {
    let mut causes = Vec::new();
    let (meta, keys, secret_type) = match kind {
        PayloadKind::Config => {
            let c: core::ConfigMap = serde_json::from_value(obj.clone())
                .map_err(|e| vec![("body".to_string(), format!("Invalid value: {e}"))])?;
            let mut keys: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            for (k, v) in c.data.unwrap_or_default() {
                keys.insert(k, v.into_bytes());
            }
            for (k, v) in c.binary_data.unwrap_or_default() {
                if keys.contains_key(&k) {
                    causes.push((
                        format!("binaryData[{k}]"),
                        format!("Invalid value: {k:?}: duplicate of key present in data"),
                    ));
                }
                keys.insert(k, v.0);
            }
            (c.metadata, keys, None)
        }
        PayloadKind::Secret => {
            let s: core::Secret = serde_json::from_value(obj.clone())
                .map_err(|e| vec![("body".to_string(), format!("Invalid value: {e}"))])?;
            let mut keys: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                keys.insert(k, v.into_bytes());
            }
            let t = s
                .type_
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "Opaque".into());
            for (required, typ) in [
                (&["tls.crt", "tls.key"][..], "kubernetes.io/tls"),
                (&[".dockerconfigjson"][..], "kubernetes.io/dockerconfigjson"),
            ] {
                if t == typ {
                    for r in required {
                        if !keys.contains_key(*r) {
                            causes.push((format!("data[{r}]"), "Required value".to_string()));
                        }
                    }
                }
            }
            (s.metadata, keys, Some(t))
        }
    };
    let name = meta.name.clone().unwrap_or_default();
    if let Some(why) = crate::names::dns_subdomain_errors(&name).into_iter().next() {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: {name:?}: {why}"),
        ));
    }
    let field = "data";
    for k in keys.keys() {
        if let Some(why) = key_errors(k) {
            causes.push((format!("{field}[{k}]"), why));
        }
    }
    let mut labels = meta.labels.clone().unwrap_or_default();
    for (k, v) in &labels {
        for why in crate::selector::label_key_errors(k)
            .into_iter()
            .chain(crate::selector::label_value_errors(v))
        {
            causes.push((
                "metadata.labels".into(),
                format!("Invalid value: {k:?}: {why}"),
            ));
        }
    }
    let data = encode_keys(&keys);
    if data.len() > MAX_DATA {
        causes.push((
            field.into(),
            format!("Too long: must have at most {MAX_DATA} bytes (Swarm's limit on a payload)"),
        ));
    }
    if !causes.is_empty() {
        return Err(causes);
    }
    if namespace != objects::DEFAULT_NAMESPACE {
        labels.insert(NAMESPACE_LABEL.into(), namespace.into());
    }
    labels.insert(DATA_LABEL.into(), "keys".into());
    if let Some(t) = secret_type {
        labels.insert(SECRET_TYPE_LABEL.into(), t);
    }
    Ok((
        PayloadSpec {
            name: objects::service_name(namespace, &name),
            labels,
            templating: None,
        },
        data,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shoal_types::payload::PayloadVersion;

    fn payload(spec: PayloadSpec, data: &[u8]) -> Payload {
        Payload {
            id: shoal_types::Id::from_raw("0hbik0t8rbtwkuahjf666kw9l"),
            meta: Default::default(),
            kind: PayloadKind::Secret,
            spec,
            versions: vec![PayloadVersion {
                version: 1,
                data: shoal_types::payload::Bytes::new(data.to_vec()),
                created_at: Default::default(),
            }],
        }
    }

    #[test]
    fn a_docker_secret_is_a_secret_keyed_by_its_name() {
        let p = payload(
            PayloadSpec {
                name: "db_pass".into(),
                ..Default::default()
            },
            b"hunter2",
        );
        let s = secret(&p);
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        let data = s.data.unwrap_or_default();
        assert_eq!(
            data.get("db_pass").map(|b| b.0.as_slice()),
            Some(&b"hunter2"[..])
        );
    }

    #[test]
    fn a_secret_written_here_keeps_its_keys_and_type() {
        let obj = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "tls", "labels": {"app": "web"}},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
            "stringData": {"extra": "x"}});
        let (spec, data) =
            payload_in(PayloadKind::Secret, &obj, "shop").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(spec.name, "shop_tls");
        let p = payload(spec, &data);
        let s = secret(&p);
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(s.metadata.name.as_deref(), Some("tls"));
        let d = s.data.unwrap_or_default();
        assert_eq!(d.get("tls.crt").map(|b| b.0.as_slice()), Some(&b"cert"[..]));
        assert_eq!(d.get("extra").map(|b| b.0.as_slice()), Some(&b"x"[..]));
        let labels = s.metadata.labels.unwrap_or_default();
        assert_eq!(labels.len(), 1, "{labels:?}");
    }

    #[test]
    fn bad_keys_and_missing_tls_parts_are_refused() {
        let obj = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y2VydA==", "bad/key": "eA=="}});
        let Err(causes) = payload_in(PayloadKind::Secret, &obj, "default") else {
            panic!("refused");
        };
        let fields: Vec<&str> = causes.iter().map(|c| c.0.as_str()).collect();
        assert!(fields.contains(&"data[tls.key]"), "{fields:?}");
        assert!(fields.contains(&"data[bad/key]"), "{fields:?}");
    }

    #[test]
    fn a_config_map_splits_text_and_binary() {
        let obj = json!({"metadata": {"name": "cfg"},
            "data": {"a.conf": "x=1"}, "binaryData": {"blob": "/w=="}});
        let (spec, data) =
            payload_in(PayloadKind::Config, &obj, "default").unwrap_or_else(|e| panic!("{e:?}"));
        let c = config_map(&payload(spec, &data));
        assert_eq!(
            c.data.unwrap_or_default().get("a.conf").map(String::as_str),
            Some("x=1")
        );
        assert_eq!(
            c.binary_data
                .unwrap_or_default()
                .get("blob")
                .map(|b| b.0.clone()),
            Some(vec![0xff])
        );
    }
}
