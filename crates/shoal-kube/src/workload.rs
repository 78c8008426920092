//! Kubernetes workloads written through this API, as services: a Deployment's pod template
//! becomes the service's task template, its replicas the service's, its strategy Swarm's
//! update settings. What a service has no field for is kept in [`KubeWorkload`] and shown
//! back. What shoal cannot run yet is refused with the field named, never dropped.
//!
//! Concurrency: pure functions.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};
use shoal_types::service::{
    ContainerSpec, KubeWorkload, Limits, RestartCondition, ServiceMode, ServiceSpec, UpdateConfig,
    UpdateOrder,
};
use shoal_types::stack::NAMESPACE_LABEL;

use crate::objects;

/// A field and why it is refused, as the API server's `Invalid` causes.
pub type Cause = (String, String);

fn cause(field: &str, why: impl Into<String>) -> Cause {
    (field.to_string(), why.into())
}

/// Fields of the input that the typed object does not know: the API server's strict
/// decoding refuses them (`unknown field "spec.replica"`).
pub fn unknown_fields(input: &Value, typed: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(input, typed, String::new(), &mut out);
    out
}

fn walk_unknown(input: &Value, typed: &Value, at: String, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match b.get(k) {
                    Some(t) => walk_unknown(v, t, path, out),
                    // Nulls and empty values are dropped by the typed object, not unknown.
                    None if v.is_null() || v == &json!({}) || v == &json!([]) => {}
                    None if matches!(k.as_str(), "status") => {}
                    None => out.push(path),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                walk_unknown(x, y, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A Kubernetes quantity of CPU as nano-CPUs (`500m`, `2`, `0.5`).
pub fn cpu_nanos(q: &str) -> Option<i64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<i64>().ok().and_then(|m| m.checked_mul(1_000_000));
    }
    let v: f64 = q.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * 1e9).round() as i64)
}

/// A Kubernetes quantity of bytes (`128Mi`, `1G`, `1e9`, `512`).
pub fn bytes(q: &str) -> Option<i64> {
    let q = q.trim();
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    for (s, mult) in SUFFIXES {
        if let Some(n) = q.strip_suffix(s) {
            let v: f64 = n.parse().ok()?;
            return (v.is_finite() && v >= 0.0 && v * mult < 9.2e18)
                .then(|| (v * mult).ceil() as i64);
        }
    }
    let v: f64 = q.parse().ok()?;
    (v.is_finite() && (0.0..9.2e18).contains(&v)).then(|| v.ceil() as i64)
}

/// `maxSurge`/`maxUnavailable` against `replicas`: a number, or a percentage rounded up
/// (surge) or down (unavailable), as Kubernetes resolves them.
pub fn resolve(v: &IntOrString, replicas: i64, round_up: bool) -> Result<i64, String> {
    match v {
        IntOrString::Int(n) if *n >= 0 => Ok(i64::from(*n)),
        IntOrString::Int(n) => Err(format!(
            "Invalid value: {n}: must be greater than or equal to 0"
        )),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .filter(|p| *p >= 0)
                .ok_or_else(|| format!("Invalid value: {s:?}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"))?;
            let scaled = pct * replicas;
            Ok(if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            })
        }
    }
}

/// Swarm's update settings for a rolling update of `replicas` with `surge` and
/// `unavailable`: start-first `surge` at a time when surging (never below the replicas),
/// else stop-first `unavailable` at a time. `Recreate` stops them all first.
fn update_config(
    strategy: Option<&apps::DeploymentStrategy>,
    replicas: i64,
    causes: &mut Vec<Cause>,
) -> UpdateConfig {
    let kind = strategy
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate");
    let mut u = UpdateConfig::default();
    match kind {
        "Recreate" => {
            u.order = UpdateOrder::StopFirst;
            u.parallelism = 0;
        }
        "RollingUpdate" => {
            let ru = strategy.and_then(|s| s.rolling_update.as_ref());
            let default = IntOrString::String("25%".into());
            let surge = ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&default);
            let unavailable = ru
                .and_then(|r| r.max_unavailable.as_ref())
                .unwrap_or(&default);
            let surge = resolve(surge, replicas, true).unwrap_or_else(|e| {
                causes.push(cause("spec.strategy.rollingUpdate.maxSurge", e));
                0
            });
            let unavailable = resolve(unavailable, replicas, false).unwrap_or_else(|e| {
                causes.push(cause("spec.strategy.rollingUpdate.maxUnavailable", e));
                0
            });
            if surge == 0 && unavailable == 0 {
                causes.push(cause(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    "Invalid value: 0: may not be 0 when `maxSurge` is 0",
                ));
            }
            if surge > 0 {
                u.order = UpdateOrder::StartFirst;
                u.parallelism = u64::try_from(surge).unwrap_or(1);
            } else {
                u.order = UpdateOrder::StopFirst;
                u.parallelism = u64::try_from(unavailable).unwrap_or(1).max(1);
            }
        }
        other => causes.push(cause(
            "spec.strategy.type",
            format!(
                "Unsupported value: {other:?}: supported values: \"Recreate\", \"RollingUpdate\""
            ),
        )),
    }
    u.delay = Duration::ZERO;
    u
}

/// The fields of a container shoal runs; others are refused by name.
const CONTAINER_REFUSED: &[&str] = &[
    "envFrom",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "volumeMounts",
    "volumeDevices",
    "lifecycle",
    "securityContext",
    "resizePolicy",
];

/// Fields of a pod spec shoal runs; others are refused by name.
const POD_REFUSED: &[&str] = &[
    "initContainers",
    "volumes",
    "affinity",
    "tolerations",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "securityContext",
    "shareProcessNamespace",
    "ephemeralContainers",
    "topologySpreadConstraints",
    "dnsConfig",
    "hostAliases",
    "runtimeClassName",
    "priorityClassName",
    "overhead",
    "readinessGates",
    "resourceClaims",
    "schedulingGates",
];

fn refuse_set(obj: &Value, fields: &[&str], at: &str, causes: &mut Vec<Cause>) {
    for f in fields {
        let v = &obj[*f];
        if !(v.is_null() || v == &json!([]) || v == &json!({})) {
            causes.push(cause(
                &format!("{at}.{f}"),
                "Forbidden: shoal does not run this field yet",
            ));
        }
    }
}

/// A JSON object of `from`'s fields other than `except`.
fn rest_of(from: &Value, except: &[&str]) -> String {
    let Some(m) = from.as_object() else {
        return String::new();
    };
    let kept: serde_json::Map<String, Value> = m
        .iter()
        .filter(|(k, v)| !except.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if kept.is_empty() {
        String::new()
    } else {
        Value::Object(kept).to_string()
    }
}

/// The label that says which Kubernetes kind a service written here is, when it is not a
/// Deployment or DaemonSet (those follow from its mode).
pub const KIND_LABEL: &str = "shoal.kube.kind";

/// A pod template as a service's task template, and what the service keeps of it.
struct TemplateIn {
    task: shoal_types::service::TaskSpec,
    restart_policy: String,
    pod_annotations: BTreeMap<String, String>,
    container: String,
    container_extra: String,
}

/// A pod spec and its metadata (`at` names where they are: `spec.template`, or `` for a
/// Pod) as a task template; `allowed` lists the restart policies the kind takes.
fn template_in(
    raw_template: &Value,
    meta: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    pod: &core::PodSpec,
    at: &str,
    allowed: &[&str],
    causes: &mut Vec<Cause>,
) -> TemplateIn {
    let field = |f: &str| {
        if at.is_empty() {
            f.to_string()
        } else {
            format!("{at}.{f}")
        }
    };
    let raw_pod = &raw_template["spec"];
    refuse_set(raw_pod, POD_REFUSED, &field("spec"), causes);
    let labels = meta.and_then(|m| m.labels.clone()).unwrap_or_default();
    for (k, v) in &labels {
        for why in crate::selector::label_key_errors(k) {
            causes.push(cause(
                &field("metadata.labels"),
                format!("Invalid value: {k:?}: {why}"),
            ));
        }
        for why in crate::selector::label_value_errors(v) {
            causes.push(cause(
                &field("metadata.labels"),
                format!("Invalid value: {v:?}: {why}"),
            ));
        }
    }
    let restart = pod
        .restart_policy
        .clone()
        .unwrap_or_else(|| allowed[0].to_string());
    if !allowed.contains(&restart.as_str()) {
        causes.push(cause(
            &field("spec.restartPolicy"),
            format!(
                "Unsupported value: {restart:?}: supported values: {}",
                allowed
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let c_at = field("spec.containers[0]");
    let container = match pod.containers.as_slice() {
        [] => {
            causes.push(cause(&field("spec.containers"), "Required value"));
            core::Container::default()
        }
        [c] => c.clone(),
        [_, ..] => {
            causes.push(cause(
                &field("spec.containers"),
                format!(
                    "Too many: {}: shoal runs one container per pod so far",
                    pod.containers.len()
                ),
            ));
            pod.containers[0].clone()
        }
    };
    let raw_c = &raw_pod["containers"][0];
    refuse_set(raw_c, CONTAINER_REFUSED, &c_at, causes);
    if container.name.is_empty() {
        causes.push(cause(&format!("{c_at}.name"), "Required value"));
    }
    let image = container.image.clone().unwrap_or_default();
    if image.is_empty() {
        causes.push(cause(&format!("{c_at}.image"), "Required value"));
    }
    let mut env = Vec::new();
    for (i, e) in container.env.iter().flatten().enumerate() {
        if e.value_from.is_some() {
            causes.push(cause(
                &format!("{c_at}.env[{i}].valueFrom"),
                "Forbidden: shoal does not run this field yet",
            ));
        }
        env.push(format!(
            "{}={}",
            e.name,
            e.value.clone().unwrap_or_default()
        ));
    }
    let mut resources = shoal_types::service::ResourceRequirements::default();
    let mut limits = Limits::default();
    if let Some(r) = &container.resources {
        for (which, map) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (k, q) in map.iter().flatten() {
                let f = format!("{c_at}.resources.{which}[{k}]");
                let parsed = match k.as_str() {
                    "cpu" => cpu_nanos(&q.0),
                    "memory" => bytes(&q.0),
                    _ => {
                        causes.push(cause(
                            &f,
                            "Forbidden: shoal schedules by cpu and memory only",
                        ));
                        continue;
                    }
                };
                let Some(v) = parsed else {
                    causes.push(cause(&f, format!("Invalid value: {:?}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'", q.0)));
                    continue;
                };
                match (which, k.as_str()) {
                    ("requests", "cpu") => resources.reservations.nano_cpus = v,
                    ("requests", _) => resources.reservations.memory_bytes = v,
                    (_, "cpu") => limits.nano_cpus = v,
                    _ => limits.memory_bytes = v,
                }
            }
        }
    }
    resources.limits = limits;
    let mut constraints = Vec::new();
    for (k, v) in pod.node_selector.iter().flatten() {
        constraints.push(match k.as_str() {
            "kubernetes.io/hostname" => format!("node.hostname=={v}"),
            "kubernetes.io/os" => format!("node.platform.os=={v}"),
            _ => format!("node.labels.{k}=={v}"),
        });
    }
    if let Some(n) = pod.node_name.as_deref().filter(|n| !n.is_empty()) {
        constraints.push(format!("node.hostname=={n}"));
    }
    let container_spec = ContainerSpec {
        image,
        labels,
        command: container.command.clone().unwrap_or_default(),
        args: container.args.clone().unwrap_or_default(),
        env,
        dir: container.working_dir.clone().unwrap_or_default(),
        tty: container.tty.unwrap_or(false),
        open_stdin: container.stdin.unwrap_or(false),
        stop_grace_period: pod
            .termination_grace_period_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
        hostname: pod.hostname.clone().unwrap_or_default(),
        ..ContainerSpec::default()
    };
    let mut task = shoal_types::service::TaskSpec {
        container: container_spec,
        resources,
        ..Default::default()
    };
    task.restart.condition = match restart.as_str() {
        "Never" => RestartCondition::None,
        "OnFailure" => RestartCondition::OnFailure,
        _ => RestartCondition::Any,
    };
    task.placement.constraints = constraints;
    TemplateIn {
        task,
        restart_policy: restart,
        pod_annotations: meta.and_then(|m| m.annotations.clone()).unwrap_or_default(),
        container: container.name.clone(),
        container_extra: rest_of(
            raw_c,
            &[
                "name",
                "image",
                "command",
                "args",
                "env",
                "workingDir",
                "tty",
                "stdin",
                "resources",
            ],
        ),
    }
}

impl TemplateIn {
    /// What the service keeps of the workload beside its task template.
    fn kube(
        &self,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        selector: String,
        spec_extra: String,
    ) -> KubeWorkload {
        KubeWorkload {
            annotations: meta.annotations.clone().unwrap_or_default(),
            pod_annotations: self.pod_annotations.clone(),
            selector,
            container: self.container.clone(),
            spec_extra,
            container_extra: self.container_extra.clone(),
        }
    }
}

fn check_name(name: &str, causes: &mut Vec<Cause>) {
    if let Some(why) = crate::names::dns_subdomain_errors(name).into_iter().next() {
        causes.push(cause(
            "metadata.name",
            format!("Invalid value: {name:?}: {why}"),
        ));
    }
}

/// The service's labels: the object's, with its namespace's (a stack's) and its kind's.
fn service_labels(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    namespace: &str,
    kind: Option<&str>,
    causes: &mut Vec<Cause>,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = meta.labels.clone().unwrap_or_default();
    for (k, v) in &labels {
        for why in crate::selector::label_key_errors(k) {
            causes.push(cause(
                "metadata.labels",
                format!("Invalid value: {k:?}: {why}"),
            ));
        }
        for why in crate::selector::label_value_errors(v) {
            causes.push(cause(
                "metadata.labels",
                format!("Invalid value: {v:?}: {why}"),
            ));
        }
    }
    if namespace != objects::DEFAULT_NAMESPACE {
        labels.insert(NAMESPACE_LABEL.to_string(), namespace.to_string());
    }
    if let Some(k) = kind {
        labels.insert(KIND_LABEL.to_string(), k.to_string());
    }
    labels
}

fn check_selector(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    template_labels: &BTreeMap<String, String>,
    kind: &str,
    causes: &mut Vec<Cause>,
) {
    match crate::selector::LabelSelector::from_label_selector(selector) {
        Ok(sel) if sel.is_empty() => causes.push(cause(
            "spec.selector",
            format!("Invalid value: v1.LabelSelector{{}}: empty selector is invalid for {kind}"),
        )),
        Ok(sel) if !sel.matches(template_labels) => causes.push(cause(
            "spec.template.metadata.labels",
            format!(
                "Invalid value: {}: `selector` does not match template `labels`",
                json!(template_labels)
            ),
        )),
        Ok(_) => {}
        Err(e) => causes.push(cause("spec.selector", e.to_string())),
    }
}

/// A Deployment (as JSON, in `namespace`) as the spec of the service it is.
pub fn deployment_in(obj: &Value, namespace: &str) -> Result<ServiceSpec, Vec<Cause>> {
    let d: apps::Deployment = serde_json::from_value(obj.clone())
        .map_err(|e| vec![cause("body", format!("Invalid value: {e}"))])?;
    let mut causes = Vec::new();
    let name = d.metadata.name.clone().unwrap_or_default();
    check_name(&name, &mut causes);
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = i64::from(spec.replicas.unwrap_or(1));
    if replicas < 0 {
        causes.push(cause(
            "spec.replicas",
            format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let raw_spec = &obj["spec"];
    let tmeta = spec.template.metadata.as_ref();
    let labels_of_template = tmeta.and_then(|m| m.labels.clone()).unwrap_or_default();
    check_selector(
        &spec.selector,
        &labels_of_template,
        "deployment",
        &mut causes,
    );
    let pod = spec.template.spec.clone().unwrap_or_default();
    let t = template_in(
        &raw_spec["template"],
        tmeta,
        &pod,
        "spec.template",
        &["Always"],
        &mut causes,
    );
    let update = update_config(spec.strategy.as_ref(), replicas.max(0), &mut causes);
    let labels = service_labels(&d.metadata, namespace, None, &mut causes);
    if !causes.is_empty() {
        return Err(causes);
    }
    let spec_extra = rest_of(raw_spec, &["replicas", "selector", "template"]);
    Ok(ServiceSpec {
        name: objects::service_name(namespace, &name),
        labels,
        mode: ServiceMode::Replicated {
            replicas: u64::try_from(replicas).unwrap_or(0),
        },
        update: Some(update),
        kube: Some(t.kube(
            &d.metadata,
            serde_json::to_string(&spec.selector).unwrap_or_default(),
            spec_extra,
        )),
        task: t.task,
        ..ServiceSpec::default()
    })
}

/// A DaemonSet as a global service: a pod on every node that fits, new nodes too; its
/// rolling update stops `maxUnavailable` pods at a time (default 1), or starts `maxSurge`
/// first.
pub fn daemon_set_in(obj: &Value, namespace: &str) -> Result<ServiceSpec, Vec<Cause>> {
    let d: apps::DaemonSet = serde_json::from_value(obj.clone())
        .map_err(|e| vec![cause("body", format!("Invalid value: {e}"))])?;
    let mut causes = Vec::new();
    let name = d.metadata.name.clone().unwrap_or_default();
    check_name(&name, &mut causes);
    let spec = d.spec.clone().unwrap_or_default();
    let raw_spec = &obj["spec"];
    let tmeta = spec.template.metadata.as_ref();
    let labels_of_template = tmeta.and_then(|m| m.labels.clone()).unwrap_or_default();
    check_selector(
        &spec.selector,
        &labels_of_template,
        "daemonset",
        &mut causes,
    );
    let pod = spec.template.spec.clone().unwrap_or_default();
    let t = template_in(
        &raw_spec["template"],
        tmeta,
        &pod,
        "spec.template",
        &["Always"],
        &mut causes,
    );
    let mut update = UpdateConfig::default();
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    match strategy.type_.as_deref().unwrap_or("RollingUpdate") {
        "RollingUpdate" => {
            let ru = strategy.rolling_update.unwrap_or_default();
            let surge = ru.max_surge.unwrap_or(IntOrString::Int(0));
            let unavailable = ru.max_unavailable.unwrap_or(IntOrString::Int(1));
            // Percentages count nodes; without the node count here, they round to one.
            let n = |v: &IntOrString| match v {
                IntOrString::Int(i) => u64::try_from(*i).unwrap_or(0),
                IntOrString::String(_) => 1,
            };
            if n(&surge) > 0 {
                update.order = UpdateOrder::StartFirst;
                update.parallelism = n(&surge);
            } else {
                update.order = UpdateOrder::StopFirst;
                update.parallelism = n(&unavailable).max(1);
            }
        }
        other => causes.push(cause(
            "spec.updateStrategy.type",
            format!("Unsupported value: {other:?}: supported values: \"RollingUpdate\""),
        )),
    }
    let labels = service_labels(&d.metadata, namespace, None, &mut causes);
    if !causes.is_empty() {
        return Err(causes);
    }
    let spec_extra = rest_of(raw_spec, &["selector", "template"]);
    Ok(ServiceSpec {
        name: objects::service_name(namespace, &name),
        labels,
        mode: ServiceMode::Global,
        update: Some(update),
        kube: Some(t.kube(
            &d.metadata,
            serde_json::to_string(&spec.selector).unwrap_or_default(),
            spec_extra,
        )),
        task: t.task,
        ..ServiceSpec::default()
    })
}

/// A Job as a replicated job service: `completions` its total, `parallelism` how many run at
/// once; `OnFailure` restarts a failed pod, `Never` does not (shoal counts a failure against
/// the job either way; `backoffLimit` is kept as written).
pub fn job_in(obj: &Value, namespace: &str) -> Result<ServiceSpec, Vec<Cause>> {
    let j: k8s_openapi::api::batch::v1::Job = serde_json::from_value(obj.clone())
        .map_err(|e| vec![cause("body", format!("Invalid value: {e}"))])?;
    let mut causes = Vec::new();
    let name = j.metadata.name.clone().unwrap_or_default();
    check_name(&name, &mut causes);
    let spec = j.spec.clone().unwrap_or_default();
    let completions = i64::from(spec.completions.unwrap_or(1));
    let parallelism = i64::from(spec.parallelism.unwrap_or(1));
    for (f, v) in [
        ("spec.completions", completions),
        ("spec.parallelism", parallelism),
    ] {
        if v < 0 {
            causes.push(cause(
                f,
                format!("Invalid value: {v}: must be greater than or equal to 0"),
            ));
        }
    }
    let raw_spec = &obj["spec"];
    let tmeta = spec.template.metadata.as_ref();
    let pod = spec.template.spec.clone().unwrap_or_default();
    if pod.restart_policy.is_none() {
        causes.push(cause(
            "spec.template.spec.restartPolicy",
            "Required value: valid values: \"OnFailure\", \"Never\"",
        ));
    }
    let t = template_in(
        &raw_spec["template"],
        tmeta,
        &pod,
        "spec.template",
        &["OnFailure", "Never"],
        &mut causes,
    );
    let labels = service_labels(&j.metadata, namespace, Some("Job"), &mut causes);
    if !causes.is_empty() {
        return Err(causes);
    }
    let spec_extra = rest_of(
        raw_spec,
        &["completions", "parallelism", "template", "selector"],
    );
    Ok(ServiceSpec {
        name: objects::service_name(namespace, &name),
        labels,
        mode: ServiceMode::ReplicatedJob {
            max_concurrent: u64::try_from(parallelism).unwrap_or(1),
            total_completions: u64::try_from(completions).unwrap_or(1),
        },
        kube: Some(t.kube(&j.metadata, String::new(), spec_extra)),
        task: t.task,
        ..ServiceSpec::default()
    })
}

/// A bare Pod (`kubectl run`) as a service of one task: replicated while its restart policy
/// is `Always`, else a job of one completion. Its pod is named as the Pod is.
pub fn pod_in(obj: &Value, namespace: &str) -> Result<ServiceSpec, Vec<Cause>> {
    let p: core::Pod = serde_json::from_value(obj.clone())
        .map_err(|e| vec![cause("body", format!("Invalid value: {e}"))])?;
    let mut causes = Vec::new();
    let name = p.metadata.name.clone().unwrap_or_default();
    check_name(&name, &mut causes);
    let pod = p.spec.clone().unwrap_or_default();
    let t = template_in(
        obj,
        Some(&p.metadata),
        &pod,
        "",
        &["Always", "OnFailure", "Never"],
        &mut causes,
    );
    let labels = service_labels(&p.metadata, namespace, Some("Pod"), &mut causes);
    if !causes.is_empty() {
        return Err(causes);
    }
    let mode = if t.restart_policy == "Always" {
        ServiceMode::Replicated { replicas: 1 }
    } else {
        ServiceMode::ReplicatedJob {
            max_concurrent: 1,
            total_completions: 1,
        }
    };
    Ok(ServiceSpec {
        name: objects::service_name(namespace, &name),
        labels,
        mode,
        kube: Some(t.kube(
            &p.metadata,
            String::new(),
            rest_of(&obj["spec"], &["containers"]),
        )),
        task: t.task,
        ..ServiceSpec::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(extra: Value) -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                        "env": [{"name": "A", "value": "1"}],
                        "ports": [{"containerPort": 80}],
                        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                      "limits": {"memory": "128Mi"}}}]}
                }
            }
        });
        crate::writes::merge_patch(&mut d, &extra);
        d
    }

    #[test]
    fn a_deployment_is_a_replicated_service() {
        let spec =
            deployment_in(&deployment(json!({})), "shop").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(spec.name, "shop_web");
        assert_eq!(
            spec.labels.get(NAMESPACE_LABEL).map(String::as_str),
            Some("shop")
        );
        assert_eq!(spec.mode, ServiceMode::Replicated { replicas: 4 });
        assert_eq!(spec.task.container.image, "nginx:1.25");
        assert_eq!(spec.task.container.env, ["A=1"]);
        assert_eq!(spec.task.resources.reservations.nano_cpus, 250_000_000);
        assert_eq!(spec.task.resources.reservations.memory_bytes, 64 << 20);
        assert_eq!(spec.task.resources.limits.memory_bytes, 128 << 20);
        // 25% of 4 replicas: one surging at a time.
        let u = spec.update_config();
        assert_eq!((u.order, u.parallelism), (UpdateOrder::StartFirst, 1));
        let k = spec.kube.unwrap_or_default();
        assert_eq!(k.container, "nginx");
        assert!(
            k.container_extra.contains("containerPort"),
            "{}",
            k.container_extra
        );
    }

    #[test]
    fn what_shoal_cannot_run_is_refused_by_field() {
        let d = deployment(json!({"spec": {"template": {"spec": {"volumes": [{"name": "x"}]}}}}));
        let Err(causes) = deployment_in(&d, "default") else {
            panic!("volumes are not run yet");
        };
        assert_eq!(causes[0].0, "spec.template.spec.volumes");
        let d = deployment(json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}));
        let Err(causes) = deployment_in(&d, "default") else {
            panic!("a selector must match");
        };
        assert_eq!(causes[0].0, "spec.template.metadata.labels");
        let d = deployment(
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}}),
        );
        assert!(deployment_in(&d, "default").is_err());
    }

    #[test]
    fn quantities_and_percentages_resolve_as_kubernetes_does() {
        assert_eq!(cpu_nanos("500m"), Some(500_000_000));
        assert_eq!(cpu_nanos("2"), Some(2_000_000_000));
        assert_eq!(cpu_nanos("x"), None);
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("512"), Some(512));
        assert_eq!(resolve(&IntOrString::String("25%".into()), 10, true), Ok(3));
        assert_eq!(
            resolve(&IntOrString::String("25%".into()), 10, false),
            Ok(2)
        );
        assert!(resolve(&IntOrString::String("x%".into()), 10, false).is_err());
    }

    #[test]
    fn strict_decoding_names_unknown_fields() {
        let input = json!({"spec": {"replica": 3, "replicas": 2}, "metadata": {"name": "x"}});
        let typed = json!({"spec": {"replicas": 2}, "metadata": {"name": "x"}});
        assert_eq!(unknown_fields(&input, &typed), ["spec.replica"]);
    }
}
