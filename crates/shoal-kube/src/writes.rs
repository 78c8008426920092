//! Writes: a patch or a replacement is applied to the object as this API shows it, and what
//! changed is written back to the shoal object it is a view of, through the control surface.
//!
//! Concurrency: each write reads one view and sends one versioned update, so a concurrent
//! change makes it fail with a conflict instead of being lost.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shoal_control::{ClusterView, ControlSurface};
use shoal_types::node::Availability;
use shoal_types::payload::PayloadKind;
use shoal_types::service::ServiceMode;

use crate::objects;
use crate::server::Target;
use crate::status::{KubeError, KubeResult};

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The `autoscaling/v1` `Scale` of a Deployment.
pub fn scale_of(obj: &Value) -> Value {
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": { "replicas": obj["spec"]["replicas"] },
        "status": { "replicas": obj["status"]["replicas"], "selector": selector },
    })
}

/// The object after the request: a patch of `obj` by its content type, or (PUT) the body.
fn patched(obj: &Value, is_put: bool, content_type: &str, body: &[u8]) -> KubeResult<Value> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| KubeError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if is_put {
        return Ok(parsed);
    }
    match media {
        "application/merge-patch+json" => {
            let mut out = obj.clone();
            merge_patch(&mut out, &parsed);
            Ok(out)
        }
        "application/strategic-merge-patch+json" => {
            let kind = crate::smp::Kind::from_name(obj["kind"].as_str().unwrap_or_default());
            crate::smp::apply(kind, obj, &parsed).map_err(|e| KubeError::bad_request(e.to_string()))
        }
        "application/json-patch+json" => json_patch(obj, &parsed),
        "application/apply-patch+yaml" => Err(KubeError::new(
            415,
            "UnsupportedMediaType",
            "server-side apply is not served yet: use client-side apply (kubectl apply without --server-side)",
        )),
        other => Err(KubeError::unsupported_media_type(other)),
    }
}

/// RFC 6902 JSON patch (`kubectl rollout undo` sends one).
fn json_patch(obj: &Value, ops: &Value) -> KubeResult<Value> {
    let Some(ops) = ops.as_array() else {
        return Err(KubeError::bad_request(
            "a JSON patch is a list of operations",
        ));
    };
    let mut doc = obj.clone();
    for (i, op) in ops.iter().enumerate() {
        let bad =
            |why: &str| KubeError::bad_request(format!("the JSON patch's operation {i}: {why}"));
        let path = op["path"].as_str().ok_or_else(|| bad("no path"))?;
        let value = || op.get("value").cloned().ok_or_else(|| bad("no value"));
        match op["op"].as_str().unwrap_or_default() {
            "add" | "replace" => {
                let v = value()?;
                set_pointer(&mut doc, path, v, op["op"] == "add").map_err(|e| bad(&e))?;
            }
            "remove" => {
                remove_pointer(&mut doc, path).map_err(|e| bad(&e))?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(bad("test failed"));
                }
            }
            other => return Err(bad(&format!("unsupported op {other:?}"))),
        }
    }
    Ok(doc)
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or("the path is not a JSON pointer")?;
    Ok((
        parent.to_string(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn set_pointer(doc: &mut Value, path: &str, v: Value, add: bool) -> Result<(), String> {
    if path.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            if !add && !m.contains_key(&last) {
                return Err(format!("{path} does not exist"));
            }
            m.insert(last, v);
            Ok(())
        }
        Some(Value::Array(a)) if last == "-" && add => {
            a.push(v);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| format!("{path}: not an index"))?;
            if add && i <= a.len() {
                a.insert(i, v);
                Ok(())
            } else if !add && i < a.len() {
                a[i] = v;
                Ok(())
            } else {
                Err(format!("{path}: index out of range"))
            }
        }
        _ => Err(format!("{parent} does not exist")),
    }
}

fn remove_pointer(doc: &mut Value, path: &str) -> Result<(), String> {
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => m
            .remove(&last)
            .map(|_| ())
            .ok_or_else(|| format!("{path} does not exist")),
        Some(Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| format!("{path}: not an index"))?;
            if i < a.len() {
                a.remove(i);
                Ok(())
            } else {
                Err(format!("{path}: index out of range"))
            }
        }
        _ => Err(format!("{parent} does not exist")),
    }
}

fn check_version(obj: &Value, new: &Value, t: &Target<'_>, name: &str) -> KubeResult<()> {
    match new["metadata"]["resourceVersion"].as_str() {
        Some(v) if !v.is_empty() && Some(v) != obj["metadata"]["resourceVersion"].as_str() => {
            Err(KubeError::conflict(t.resource, name))
        }
        _ => Ok(()),
    }
}

/// Applies a PATCH or PUT to `obj` (or its `sub`resource) and writes it back.
#[allow(clippy::too_many_arguments)]
pub async fn modify(
    m: &dyn ControlSurface,
    view: &dyn ClusterView,
    t: &Target<'_>,
    obj: &Value,
    sub: Option<&str>,
    is_put: bool,
    content_type: &str,
    body: &[u8],
    strict: bool,
) -> KubeResult<Value> {
    let name = t.name.unwrap_or_default();
    match (t.resource.kind, sub) {
        ("Deployment", Some("scale")) => {
            let scale = scale_of(obj);
            let new = patched(&scale, is_put, content_type, body)?;
            check_version(&scale, &new, t, name)?;
            let replicas = replicas_of(&new, t, name)?;
            set_replicas(m, view, t, obj, replicas).await?;
            let mut out = scale;
            out["spec"]["replicas"] = json!(replicas);
            Ok(out)
        }
        ("Deployment" | "DaemonSet", None) => {
            let new = patched(obj, is_put, content_type, body)?;
            check_version(obj, &new, t, name)?;
            if new["metadata"]["name"] != obj["metadata"]["name"] {
                return Err(KubeError::invalid(
                    t.resource,
                    name,
                    &[(
                        "metadata.name".into(),
                        "Invalid value: field is immutable".into(),
                    )],
                ));
            }
            if strict {
                strict_for(t.resource.kind, &new)?;
            }
            update_workload(m, view, t, obj, &new).await?;
            Ok(new)
        }
        ("Node", None) => {
            let new = patched(obj, is_put, content_type, body)?;
            check_version(obj, &new, t, name)?;
            only_changed(
                obj,
                &new,
                &["spec.unschedulable", "metadata.labels"],
                t,
                name,
            )?;
            update_node(m, view, t, obj, &new).await?;
            Ok(new)
        }
        ("ConfigMap" | "Secret", None) => {
            let new = patched(obj, is_put, content_type, body)?;
            check_version(obj, &new, t, name)?;
            update_payload(m, view, t, obj, &new).await?;
            Ok(new)
        }
        (kind, sub) => Err(KubeError::method_not_allowed(format!(
            "changing {}{} through the Kubernetes API is not served yet",
            kind,
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

fn replicas_of(new: &Value, t: &Target<'_>, name: &str) -> KubeResult<u64> {
    let v = &new["spec"]["replicas"];
    v.as_i64()
        .filter(|r| *r >= 0 && *r <= i64::from(i32::MAX))
        .and_then(|r| u64::try_from(r).ok())
        .ok_or_else(|| {
            KubeError::invalid(
                t.resource,
                name,
                &[(
                    "spec.replicas".into(),
                    format!("Invalid value: {v}: must be greater than or equal to 0"),
                )],
            )
        })
}

/// Refuses a change to any field but `allowed` (dotted paths), naming the first one found:
/// the rest of these objects is written through other routes or not yet at all.
fn only_changed(
    old: &Value,
    new: &Value,
    allowed: &[&str],
    t: &Target<'_>,
    name: &str,
) -> KubeResult<()> {
    let mut diffs = Vec::new();
    diff_paths(old, new, String::new(), &mut diffs);
    let ignored = [
        "metadata.resourceVersion",
        "metadata.managedFields",
        "status",
    ];
    for d in diffs {
        if allowed
            .iter()
            .any(|a| d == *a || d.starts_with(&format!("{a}.")))
            || ignored
                .iter()
                .any(|a| d == *a || d.starts_with(&format!("{a}.")))
            || d.starts_with("metadata.annotations")
        {
            continue;
        }
        return Err(KubeError::invalid(
            t.resource,
            name,
            &[(
                d.clone(),
                format!("Forbidden: changing {d} through the Kubernetes API is not served yet"),
            )],
        ));
    }
    Ok(())
}

fn diff_paths(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                diff_paths(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    path,
                    out,
                );
            }
        }
        _ if a != b => out.push(at),
        _ => {}
    }
}

async fn set_replicas(
    m: &dyn ControlSurface,
    view: &dyn ClusterView,
    t: &Target<'_>,
    obj: &Value,
    replicas: u64,
) -> KubeResult<()> {
    let name = t.name.unwrap_or_default();
    let id = objects::id_of_uid(obj["metadata"]["uid"].as_str().unwrap_or_default());
    let svc = view
        .service(&id)
        .ok_or_else(|| KubeError::not_found(t.resource, name))?;
    let mut spec = svc.spec.clone();
    match &mut spec.mode {
        ServiceMode::Replicated { replicas: r } => *r = replicas,
        _ => return Err(KubeError::bad_request("only a Deployment can be scaled")),
    }
    m.update_service(id.as_str(), svc.meta.version, spec, false)
        .await
        .map_err(|e| KubeError::from_control(t.resource, name, e))?;
    Ok(())
}

/// Writes a Deployment or DaemonSet over the service it is a view of. The service's fields the
/// Kubernetes object does not show (networks, published ports, secrets, mounts, health
/// checks, update timing) are kept as they are.
async fn update_workload(
    m: &dyn ControlSurface,
    view: &dyn ClusterView,
    t: &Target<'_>,
    old: &Value,
    new: &Value,
) -> KubeResult<()> {
    let name = t.name.unwrap_or_default();
    let id = objects::id_of_uid(old["metadata"]["uid"].as_str().unwrap_or_default());
    let svc = view
        .service(&id)
        .ok_or_else(|| KubeError::not_found(t.resource, name))?;
    let namespace = t.namespace.unwrap_or(objects::DEFAULT_NAMESPACE);
    let convert = workload_in(t.resource.kind).ok_or_else(|| {
        KubeError::method_not_allowed(format!("{} is not a workload", t.resource.kind))
    })?;
    let written =
        convert(new, namespace).map_err(|causes| KubeError::invalid(t.resource, name, &causes))?;
    let spec = overlay(&svc.spec, written);
    m.update_service(id.as_str(), svc.meta.version, spec, false)
        .await
        .map_err(|e| KubeError::from_control(t.resource, name, e))?;
    Ok(())
}

/// `current` with what a Kubernetes object controls taken from `written`.
pub fn overlay(
    current: &shoal_types::ServiceSpec,
    written: shoal_types::ServiceSpec,
) -> shoal_types::ServiceSpec {
    let mut out = current.clone();
    let written_update = written.update_config();
    // Labels Kubernetes cannot show stay, with the stack's.
    out.labels.retain(|k, v| {
        k == shoal_types::stack::NAMESPACE_LABEL
            || !(crate::selector::label_key_errors(k).is_empty()
                && crate::selector::label_value_errors(v).is_empty())
    });
    out.labels.extend(written.labels);
    out.mode = written.mode;
    let (c, w) = (&mut out.task.container, written.task.container);
    c.image = w.image;
    c.command = w.command;
    c.args = w.args;
    c.env = w.env;
    c.dir = w.dir;
    c.tty = w.tty;
    c.open_stdin = w.open_stdin;
    c.hostname = w.hostname;
    c.labels.retain(|k, v| {
        !(crate::selector::label_key_errors(k).is_empty()
            && crate::selector::label_value_errors(v).is_empty())
    });
    c.labels.extend(w.labels);
    if w.stop_grace_period.is_some() {
        c.stop_grace_period = w.stop_grace_period;
    }
    let r = &mut out.task.resources;
    r.reservations = written.task.resources.reservations;
    r.limits.nano_cpus = written.task.resources.limits.nano_cpus;
    r.limits.memory_bytes = written.task.resources.limits.memory_bytes;
    if current.kube.is_some() || !written.task.placement.constraints.is_empty() {
        out.task.placement.constraints = written.task.placement.constraints;
    }
    let mut update = current.update_config();
    update.parallelism = written_update.parallelism;
    update.order = written_update.order;
    out.update = Some(update);
    // A new pod template annotation (`kubectl rollout restart`) restarts the pods, as a new
    // ReplicaSet would.
    let annotations = |k: &Option<shoal_types::service::KubeWorkload>| {
        k.as_ref()
            .map(|k| k.pod_annotations.clone())
            .unwrap_or_default()
    };
    if annotations(&current.kube) != annotations(&written.kube) {
        out.task.force_update = current.task.force_update + 1;
    }
    out.kube = written.kube;
    out
}

/// The API server's strict decoding: a field the kind does not have is refused by name.
fn strict_check<T: serde::de::DeserializeOwned + serde::Serialize>(
    kind: &str,
    obj: &Value,
) -> KubeResult<()> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| {
        KubeError::bad_request(format!(
            "{kind} in version \"v1\" cannot be handled as a {kind}: {e}"
        ))
    })?;
    let typed = serde_json::to_value(typed).unwrap_or_default();
    let unknown = crate::workload::unknown_fields(obj, &typed);
    if unknown.is_empty() {
        return Ok(());
    }
    Err(KubeError::bad_request(format!(
        "strict decoding error: {}",
        unknown
            .iter()
            .map(|u| format!("unknown field \"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

async fn create_service(
    m: &dyn ControlSurface,
    r: &'static crate::registry::ResourceInfo,
    name: &str,
    spec: shoal_types::ServiceSpec,
) -> KubeResult<()> {
    if m.view().services().any(|s| s.spec.name == spec.name) {
        return Err(KubeError::already_exists(r, name));
    }
    m.create_service(spec)
        .await
        .map_err(|e| KubeError::from_control(r, name, e))?;
    Ok(())
}

/// The API server's strict decoding for `kind`, by its k8s-openapi type.
fn strict_for(kind: &str, obj: &Value) -> KubeResult<()> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    match kind {
        "Deployment" => strict_check::<apps::Deployment>(kind, obj),
        "DaemonSet" => strict_check::<apps::DaemonSet>(kind, obj),
        "Job" => strict_check::<batch::Job>(kind, obj),
        "Pod" => strict_check::<core::Pod>(kind, obj),
        "ConfigMap" => strict_check::<core::ConfigMap>(kind, obj),
        "Secret" => strict_check::<core::Secret>(kind, obj),
        "Namespace" => strict_check::<core::Namespace>(kind, obj),
        _ => Ok(()),
    }
}

/// How a workload kind written here becomes the spec of the service it is.
type WorkloadIn = fn(&Value, &str) -> Result<shoal_types::ServiceSpec, Vec<crate::workload::Cause>>;

fn workload_in(kind: &str) -> Option<WorkloadIn> {
    match kind {
        "Deployment" => Some(crate::workload::deployment_in),
        "DaemonSet" => Some(crate::workload::daemon_set_in),
        "Job" => Some(crate::workload::job_in),
        "Pod" => Some(crate::workload::pod_in),
        _ => None,
    }
}

/// Creates the object `body` describes in `namespace`.
pub async fn create(
    m: &dyn ControlSurface,
    r: &'static crate::registry::ResourceInfo,
    namespace: &str,
    mut obj: Value,
    strict: bool,
    now_secs: i64,
) -> KubeResult<Value> {
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
    if (!kind.is_empty() && kind != r.kind)
        || (!api_version.is_empty() && api_version != r.api_version())
    {
        return Err(KubeError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            r.api_version()
        )));
    }
    if let Some(ns) = obj["metadata"]["namespace"].as_str()
        && !ns.is_empty()
        && ns != namespace
    {
        return Err(KubeError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
        && let Some(prefix) = obj["metadata"]["generateName"].as_str()
    {
        let suffix: String = shoal_types::IdGen::from_os()
            .next_id()
            .as_str()
            .chars()
            .take(5)
            .collect();
        obj["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
    }
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(KubeError::invalid(
            r,
            "",
            &[(
                "metadata.name".into(),
                "Required value: name or generateName is required".into(),
            )],
        ));
    }
    if strict {
        strict_for(r.kind, &obj)?;
    }
    match r.kind {
        kind if workload_in(kind).is_some() => {
            if let Some(convert) = workload_in(kind) {
                let spec = convert(&obj, namespace)
                    .map_err(|causes| KubeError::invalid(r, &name, &causes))?;
                create_service(m, r, &name, spec).await?;
            }
            Ok(obj)
        }
        "ConfigMap" | "Secret" => {
            let kind = payload_kind(r.kind);
            let (spec, data) = crate::payloads::payload_in(kind, &obj, namespace)
                .map_err(|causes| KubeError::invalid(r, &name, &causes))?;
            if m.view().payloads(kind).any(|p| p.spec.name == spec.name) {
                return Err(KubeError::already_exists(r, &name));
            }
            m.create_payload(kind, spec, shoal_types::payload::Bytes::new(data))
                .await
                .map_err(|e| KubeError::from_control(r, &name, e))?;
            Ok(obj)
        }
        "Namespace" => {
            if let Some(why) = crate::names::dns_label_errors(&name).into_iter().next() {
                return Err(KubeError::invalid(
                    r,
                    &name,
                    &[(
                        "metadata.name".into(),
                        format!("Invalid value: {name:?}: {why}"),
                    )],
                ));
            }
            let view = m.view();
            if objects::namespaces(view.as_ref()).contains_key(&name) {
                return Err(KubeError::already_exists(r, &name));
            }
            let cluster = m
                .cluster()
                .map_err(|e| KubeError::from_control(r, &name, e))?;
            let mut spec = cluster.spec.clone();
            spec.labels.insert(
                format!("{}{name}", objects::NAMESPACE_CLUSTER_LABEL),
                now_secs.to_string(),
            );
            m.update_cluster(cluster.meta.version, spec, false, false)
                .await
                .map_err(|e| KubeError::from_control(r, &name, e))?;
            Ok(obj)
        }
        kind => Err(KubeError::method_not_allowed(format!(
            "creating a {kind} through the Kubernetes API is not served yet"
        ))),
    }
}

/// Labels Kubernetes sets on a node itself: shown, never stored as the node's.
fn synthetic_node_label(k: &str) -> bool {
    k.starts_with("kubernetes.io/") || k.starts_with("node-role.kubernetes.io/")
}

async fn update_node(
    m: &dyn ControlSurface,
    view: &dyn ClusterView,
    t: &Target<'_>,
    old: &Value,
    new: &Value,
) -> KubeResult<()> {
    let name = t.name.unwrap_or_default();
    let id = objects::id_of_uid(old["metadata"]["uid"].as_str().unwrap_or_default());
    let node = view
        .node(&id)
        .ok_or_else(|| KubeError::not_found(t.resource, name))?;
    let mut spec = node.spec.clone();
    let unschedulable = new["spec"]["unschedulable"].as_bool().unwrap_or(false);
    spec.availability = match (unschedulable, node.spec.availability) {
        (false, _) => Availability::Active,
        (true, Availability::Drain) => Availability::Drain,
        (true, _) => Availability::Pause,
    };
    let wanted: BTreeMap<String, String> = new["metadata"]["labels"]
        .as_object()
        .map(|l| {
            l.iter()
                .filter(|(k, _)| !synthetic_node_label(k))
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in &wanted {
        let mut errs = crate::selector::label_key_errors(k);
        errs.extend(crate::selector::label_value_errors(v));
        if let Some(e) = errs.first() {
            return Err(KubeError::invalid(
                t.resource,
                name,
                &[(
                    format!("metadata.labels: Invalid value: \"{k}\""),
                    e.clone(),
                )],
            ));
        }
    }
    // Swarm labels Kubernetes cannot show are kept as they are.
    spec.labels.retain(|k, v| {
        !(crate::selector::label_key_errors(k).is_empty()
            && crate::selector::label_value_errors(v).is_empty())
    });
    spec.labels.extend(wanted);
    m.update_node(id.as_str(), node.meta.version, spec)
        .await
        .map_err(|e| KubeError::from_control(t.resource, name, e))?;
    Ok(())
}

/// Deletes what `obj` is a view of.
pub async fn delete(m: &dyn ControlSurface, t: &Target<'_>, obj: &Value) -> KubeResult<()> {
    let name = t.name.unwrap_or_default();
    let id = objects::id_of_uid(obj["metadata"]["uid"].as_str().unwrap_or_default());
    match t.resource.kind {
        "Deployment" | "DaemonSet" | "Job" => m
            .remove_service(id.as_str())
            .await
            .map_err(|e| KubeError::from_control(t.resource, name, e)),
        "Pod" => {
            let view = m.view();
            let svc = view
                .task(&id)
                .and_then(|task| view.service(&task.service_id))
                .filter(|s| objects::is_bare_pod(s))
                .ok_or_else(|| {
                    KubeError::method_not_allowed(format!(
                        "pod \"{name}\" belongs to a workload: scale or update it instead (deleting one of its pods is not served yet)"
                    ))
                })?;
            m.remove_service(svc.id.as_str())
                .await
                .map_err(|e| KubeError::from_control(t.resource, name, e))
        }
        "Node" => m
            .remove_node(id.as_str(), false)
            .await
            .map_err(|e| KubeError::from_control(t.resource, name, e)),
        "Namespace" => delete_namespace(m, t, name).await,
        "ConfigMap" | "Secret" => m
            .remove_payload(payload_kind(t.resource.kind), id.as_str())
            .await
            .map_err(|e| KubeError::from_control(t.resource, name, e)),
        kind => Err(KubeError::method_not_allowed(format!(
            "deleting a {kind} through the Kubernetes API is not served yet"
        ))),
    }
}

fn payload_kind(kind: &str) -> PayloadKind {
    if kind == "Secret" {
        PayloadKind::Secret
    } else {
        PayloadKind::Config
    }
}

/// Writes a ConfigMap or Secret over its payload: new data is a rotation (the services that
/// follow it roll), new labels Swarm's label update.
async fn update_payload(
    m: &dyn ControlSurface,
    view: &dyn ClusterView,
    t: &Target<'_>,
    old: &Value,
    new: &Value,
) -> KubeResult<()> {
    let name = t.name.unwrap_or_default();
    if new["metadata"]["name"] != old["metadata"]["name"] {
        return Err(KubeError::invalid(
            t.resource,
            name,
            &[(
                "metadata.name".into(),
                "Invalid value: field is immutable".into(),
            )],
        ));
    }
    let kind = payload_kind(t.resource.kind);
    let id = objects::id_of_uid(old["metadata"]["uid"].as_str().unwrap_or_default());
    let p = view
        .find_payload(kind, id.as_str())
        .map_err(|e| KubeError::from_control(t.resource, name, e))?;
    let namespace = t.namespace.unwrap_or(objects::DEFAULT_NAMESPACE);
    let (mut spec, data) = crate::payloads::payload_in(kind, new, namespace)
        .map_err(|causes| KubeError::invalid(t.resource, name, &causes))?;
    if new["type"] != old["type"] && kind == PayloadKind::Secret {
        return Err(KubeError::invalid(
            t.resource,
            name,
            &[("type".into(), "Invalid value: field is immutable".into())],
        ));
    }
    // A payload made with docker keeps its single data and its name as the key.
    if p.spec
        .labels
        .get(crate::payloads::DATA_LABEL)
        .map(String::as_str)
        != Some("keys")
    {
        let keys = crate::payloads::keys(&p);
        let new_keys: std::collections::BTreeMap<String, Vec<u8>> =
            serde_json::from_slice::<std::collections::BTreeMap<String, String>>(&data)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .ok()
                        .map(|b| (k, b))
                })
                .collect();
        if new_keys != keys {
            return Err(KubeError::invalid(
                t.resource,
                name,
                &[(
                    "data".into(),
                    "Forbidden: this one was made with docker: its data is one value under its own name, changed with `shoal secret rotate`".into(),
                )],
            ));
        }
        spec.labels.remove(crate::payloads::DATA_LABEL);
    }
    let current = p
        .current()
        .map(|v| v.data.as_slice().to_vec())
        .unwrap_or_default();
    if spec.labels.contains_key(crate::payloads::DATA_LABEL) && current != data {
        m.rotate_payload(kind, id.as_str(), shoal_types::payload::Bytes::new(data))
            .await
            .map_err(|e| KubeError::from_control(t.resource, name, e))?;
    }
    if spec.labels != p.spec.labels {
        let fresh = m.view();
        let p = fresh
            .find_payload(kind, id.as_str())
            .map_err(|e| KubeError::from_control(t.resource, name, e))?;
        let mut s = p.spec.clone();
        s.labels = spec.labels;
        m.update_payload_labels(kind, id.as_str(), p.meta.version, s)
            .await
            .map_err(|e| KubeError::from_control(t.resource, name, e))?;
    }
    Ok(())
}

/// Deletes a namespace and every workload in it, as Kubernetes' namespace controller does.
/// Kubernetes' own namespaces stay.
async fn delete_namespace(m: &dyn ControlSurface, t: &Target<'_>, name: &str) -> KubeResult<()> {
    if matches!(name, "default" | "kube-system" | "kube-public") {
        return Err(KubeError::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        ));
    }
    let view = m.view();
    let services: Vec<shoal_types::Id> = view
        .services()
        .filter(|s| objects::split_service_name(s).0 == name)
        .map(|s| s.id.clone())
        .collect();
    for id in services {
        m.remove_service(id.as_str())
            .await
            .map_err(|e| KubeError::from_control(t.resource, name, e))?;
    }
    for kind in [PayloadKind::Secret, PayloadKind::Config] {
        let ids: Vec<shoal_types::Id> = view
            .payloads(kind)
            .filter(|p| crate::payloads::split_name(p).0 == name)
            .map(|p| p.id.clone())
            .collect();
        for id in ids {
            m.remove_payload(kind, id.as_str())
                .await
                .map_err(|e| KubeError::from_control(t.resource, name, e))?;
        }
    }
    let cluster = m
        .cluster()
        .map_err(|e| KubeError::from_control(t.resource, name, e))?;
    let key = format!("{}{name}", objects::NAMESPACE_CLUSTER_LABEL);
    if cluster.spec.labels.contains_key(&key) {
        let mut spec = cluster.spec.clone();
        spec.labels.remove(&key);
        m.update_cluster(cluster.meta.version, spec, false, false)
            .await
            .map_err(|e| KubeError::from_control(t.resource, name, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut v = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut v, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(v, json!({"a": "z", "c": {"d": "e"}}));
        let mut v = json!({"a": [1, 2]});
        merge_patch(&mut v, &json!({"a": [3]}));
        assert_eq!(v, json!({"a": [3]}));
    }

    #[test]
    fn diffs_name_the_changed_fields() {
        let mut out = Vec::new();
        diff_paths(
            &json!({"spec": {"replicas": 1, "x": 1}}),
            &json!({"spec": {"replicas": 2, "x": 1}, "metadata": {"labels": {"a": "b"}}}),
            String::new(),
            &mut out,
        );
        assert_eq!(out, ["metadata", "spec.replicas"]);
    }
}
