//! shoal's objects as Kubernetes objects: one model seen two ways.
//!
//! - A Kubernetes namespace is a stack: a service labelled `com.docker.stack.namespace=shop`
//!   and named `shop_web` is the Deployment `web` in namespace `shop`; a service with no stack
//!   is in `default`. So `docker stack ls` lists the namespaces that hold workloads.
//! - A replicated service is a Deployment; a global service a DaemonSet.
//! - A task is a Pod named as its container is (`web.1.<task-id>`: a valid Kubernetes name).
//!   Only the tasks that are wanted or still running are pods; Swarm's history of a slot is not.
//! - A node is a Node named by its hostname; `cordon` is Swarm's `pause` availability.
//!
//! UIDs are the shoal IDs written in a UUID's shape, so they are the same on every manager
//! and lead back to the object.
//!
//! Concurrency: pure functions of one view.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use shoal_control::ClusterView;
use shoal_types::node::{Availability, Node, NodeRole, NodeState};
use shoal_types::service::{Service, ServiceMode, UpdateOrder};
use shoal_types::stack::NAMESPACE_LABEL;
use shoal_types::task::{Task, TaskState};
use shoal_types::{Id, Timestamp};

/// The namespace of objects that belong to no stack.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Namespaces every cluster has, as Kubernetes makes them.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-node-lease", "kube-public", "kube-system"];
/// A namespace made with the Kubernetes API is a label of the cluster's (its value the
/// creation time, in Unix seconds), so it exists before anything is in it; one that holds
/// services exists by them, as a stack does.
pub const NAMESPACE_CLUSTER_LABEL: &str = "shoal.kube.namespace.";
/// The label Swarm puts on a task's container naming its service: the pods' selector.
pub const SERVICE_NAME_LABEL: &str = "com.docker.swarm.service.name";
/// The version the kubelet column shows.
pub const KUBELET_VERSION: &str = "v1.32.0-shoal";

/// A UUID-shaped UID from a shoal ID (25 base36 characters): the same everywhere.
pub fn uid_of(id: &Id) -> String {
    let s = id.as_str();
    if s.len() != 25 || !s.is_ascii() {
        return s.to_string();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..25]
    )
}

/// The shoal ID a UID was made from.
pub fn id_of_uid(uid: &str) -> Id {
    Id::from_raw(uid.replace('-', ""))
}

/// A timestamp as Kubernetes writes them (seconds, UTC).
pub fn time(t: Timestamp) -> Option<Time> {
    if t.is_zero() {
        return None;
    }
    let secs = t.unix_nanos().div_euclid(1_000_000_000);
    jiff::Timestamp::from_second(secs).ok().map(Time)
}

/// A service's namespace and its name there.
pub fn split_service_name(s: &Service) -> (String, String) {
    match s.spec.labels.get(NAMESPACE_LABEL) {
        Some(ns) if !ns.is_empty() => {
            let prefix = format!("{ns}_");
            let name = s
                .spec
                .name
                .strip_prefix(&prefix)
                .unwrap_or(&s.spec.name)
                .to_string();
            (ns.clone(), name)
        }
        _ => (DEFAULT_NAMESPACE.to_string(), s.spec.name.clone()),
    }
}

/// The service name a workload `name` in namespace `ns` has in Swarm.
pub fn service_name(ns: &str, name: &str) -> String {
    if ns == DEFAULT_NAMESPACE {
        name.to_string()
    } else {
        format!("{ns}_{name}")
    }
}

/// The name a node answers to.
pub fn node_name(n: &Node) -> String {
    if n.spec.name.is_empty() {
        n.description.hostname.clone()
    } else {
        n.spec.name.clone()
    }
}

/// Whether the task is a pod: wanted, or still holding a container that is not gone.
pub fn is_pod(t: &Task) -> bool {
    if t.is_attachment() {
        return false;
    }
    // A bare Pod stays, as Kubernetes keeps a finished pod: its newest task is shown.
    if t.desired_state <= TaskState::Running
        || t.service_labels
            .get(crate::workload::KIND_LABEL)
            .map(String::as_str)
            == Some("Pod")
    {
        return true;
    }
    // Stopping but not stopped yet: a terminating pod. Jobs keep their completed tasks.
    !t.status.state.is_terminal() || t.desired_state == TaskState::Complete
}

/// The name of a task's pod: its container's name, without the stack prefix.
pub fn pod_name(t: &Task, svc_name_in_ns: &str) -> String {
    if t.service_labels
        .get(crate::workload::KIND_LABEL)
        .map(String::as_str)
        == Some("Pod")
    {
        return svc_name_in_ns.to_string();
    }
    let full = t.name();
    let prefix = format!("{}.", t.service_name);
    match full.strip_prefix(&prefix) {
        Some(rest) => format!("{svc_name_in_ns}.{rest}"),
        None => full,
    }
}

/// The labels of a service's pods: its containers' labels and the service's name.
pub fn pod_labels(s: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = s
        .spec
        .task
        .container
        .labels
        .iter()
        .filter(|(k, _)| crate::selector::label_key_errors(k).is_empty())
        .filter(|(_, v)| crate::selector::label_value_errors(v).is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if crate::selector::label_value_errors(&s.spec.name).is_empty() {
        labels.insert(SERVICE_NAME_LABEL.to_string(), s.spec.name.clone());
    }
    labels
}

/// Labels Kubernetes can hold: Swarm's label keys and values are free text.
fn kube_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, v)| {
            k.as_str() != NAMESPACE_LABEL
                && crate::selector::label_key_errors(k).is_empty()
                && crate::selector::label_value_errors(v).is_empty()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn meta(
    name: String,
    namespace: Option<String>,
    id: &Id,
    version: u64,
    created: Timestamp,
    labels: BTreeMap<String, String>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace,
        uid: Some(uid_of(id)),
        resource_version: Some(version.to_string()),
        creation_timestamp: time(created),
        labels: (!labels.is_empty()).then_some(labels),
        ..ObjectMeta::default()
    }
}

/// The Node a shoal node is.
pub fn node(n: &Node) -> core::Node {
    let name = node_name(n);
    let mut labels = kube_labels(&n.spec.labels);
    labels.insert("kubernetes.io/hostname".into(), name.clone());
    labels.insert("kubernetes.io/os".into(), n.description.platform.os.clone());
    labels.insert(
        "kubernetes.io/arch".into(),
        kube_arch(&n.description.platform.arch).to_string(),
    );
    if n.spec.role == NodeRole::Manager {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
    }
    let ready = match n.status.state {
        NodeState::Ready => "True",
        NodeState::Down => "False",
        _ => "Unknown",
    };
    let mut addresses = vec![core::NodeAddress {
        type_: "Hostname".into(),
        address: name.clone(),
    }];
    if !n.status.addr.is_empty() {
        addresses.insert(
            0,
            core::NodeAddress {
                type_: "InternalIP".into(),
                address: n.status.addr.clone(),
            },
        );
    }
    let mut capacity = BTreeMap::new();
    let cpu_millis = n.description.resources.nano_cpus / 1_000_000;
    capacity.insert("cpu".to_string(), Quantity(format!("{cpu_millis}m")));
    capacity.insert(
        "memory".to_string(),
        Quantity(format!("{}Ki", n.description.resources.memory_bytes / 1024)),
    );
    capacity.insert("pods".to_string(), Quantity("110".into()));
    let since = time(n.status.since);
    core::Node {
        metadata: meta(name, None, &n.id, n.meta.version, n.meta.created_at, labels),
        spec: Some(core::NodeSpec {
            unschedulable: (n.spec.availability != Availability::Active).then_some(true),
            taints: (n.spec.availability == Availability::Drain).then(|| {
                vec![core::Taint {
                    key: "node.kubernetes.io/unschedulable".into(),
                    effect: "NoExecute".into(),
                    ..core::Taint::default()
                }]
            }),
            ..core::NodeSpec::default()
        }),
        status: Some(core::NodeStatus {
            addresses: Some(addresses),
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            conditions: Some(vec![core::NodeCondition {
                type_: "Ready".into(),
                status: ready.into(),
                reason: Some(if ready == "True" {
                    "KubeletReady".into()
                } else {
                    "NodeStatusUnknown".into()
                }),
                message: Some(if n.status.message.is_empty() {
                    format!("node is {}", n.status.state.as_str())
                } else {
                    n.status.message.clone()
                }),
                last_heartbeat_time: since.clone(),
                last_transition_time: since,
            }]),
            node_info: Some(core::NodeSystemInfo {
                architecture: kube_arch(&n.description.platform.arch).to_string(),
                container_runtime_version: format!("shoal://{}", n.description.engine.version),
                kubelet_version: KUBELET_VERSION.into(),
                kube_proxy_version: KUBELET_VERSION.into(),
                operating_system: n.description.platform.os.clone(),
                os_image: n.description.platform.os.clone(),
                machine_id: n.id.to_string(),
                system_uuid: uid_of(&n.id),
                boot_id: String::new(),
                kernel_version: String::new(),
                ..core::NodeSystemInfo::default()
            }),
            ..core::NodeStatus::default()
        }),
    }
}

/// Docker's architecture names as Go's (`x86_64` is `amd64`).
fn kube_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A pod's phase from its task's state.
pub fn phase(t: &Task) -> &'static str {
    match t.status.state {
        TaskState::Running => "Running",
        TaskState::Complete => "Succeeded",
        TaskState::Failed | TaskState::Rejected => "Failed",
        TaskState::Shutdown => match t.status.runtime.as_ref().and_then(|r| r.exit_code) {
            Some(0) | None => "Succeeded",
            Some(_) => "Failed",
        },
        TaskState::Orphaned => "Unknown",
        _ => "Pending",
    }
}

/// The Pod a task is.
pub fn pod(view: &dyn ClusterView, t: &Task) -> core::Pod {
    let svc = view.service(&t.service_id);
    let (ns, svc_name) = match svc {
        Some(s) => split_service_name(s),
        None => (DEFAULT_NAMESPACE.to_string(), t.service_name.clone()),
    };
    let name = pod_name(t, &svc_name);
    let labels = svc.map(|s| pod_labels(s)).unwrap_or_default();
    let kube = svc.and_then(|s| s.spec.kube.as_ref());
    let container_name = kube
        .map(|k| k.container.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| svc_name.clone());
    let node = t.node_id.as_ref().and_then(|n| view.node(n));
    let c = &t.spec.container;
    let running = t.status.state == TaskState::Running;
    let state = match t.status.state {
        TaskState::Running => core::ContainerState {
            running: Some(core::ContainerStateRunning {
                started_at: time(t.status.timestamp),
            }),
            ..Default::default()
        },
        s if s.is_terminal() => {
            let code = t
                .status
                .runtime
                .as_ref()
                .and_then(|r| r.exit_code)
                .unwrap_or(if s == TaskState::Complete { 0 } else { 1 });
            core::ContainerState {
                terminated: Some(core::ContainerStateTerminated {
                    exit_code: i32::try_from(code).unwrap_or(i32::MAX),
                    reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                    message: (!t.status.err.is_empty()).then(|| t.status.err.clone()),
                    finished_at: time(t.status.timestamp),
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
        _ => core::ContainerState {
            waiting: Some(core::ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                message: (!t.status.message.is_empty()).then(|| t.status.message.clone()),
            }),
            ..Default::default()
        },
    };
    let ready = if running { "True" } else { "False" };
    let created = time(t.meta.created_at);
    let condition = |type_: &str, status: &str| core::PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: created.clone(),
        ..Default::default()
    };
    let pod_ip = t
        .networks
        .iter()
        .find(|a| {
            view.networks()
                .any(|n| n.id == a.network && !n.spec.ingress)
        })
        .map(|a| a.addr.addr().to_string());
    let mut m = meta(
        name,
        Some(ns),
        &t.id,
        t.meta.version,
        t.meta.created_at,
        labels,
    );
    if let Some(k) = kube.filter(|k| !k.pod_annotations.is_empty()) {
        m.annotations = Some(k.pod_annotations.clone());
    }
    if t.desired_state > TaskState::Running && !t.status.state.is_terminal() {
        m.deletion_timestamp = time(t.meta.updated_at);
    }
    if let Some(s) = svc {
        let kind = match s.spec.mode {
            ServiceMode::Global => "DaemonSet",
            _ => "Deployment",
        };
        m.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                name: svc_name.clone(),
                uid: uid_of(&s.id),
                controller: Some(true),
                block_owner_deletion: Some(true),
            },
        ]);
    }
    core::Pod {
        metadata: m,
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: container_name.clone(),
                image: Some(c.image.clone()),
                command: (!c.command.is_empty()).then(|| c.command.clone()),
                args: (!c.args.is_empty()).then(|| c.args.clone()),
                env: (!c.env.is_empty()).then(|| c.env.iter().map(|e| env_var(e)).collect()),
                working_dir: (!c.dir.is_empty()).then(|| c.dir.clone()),
                tty: c.tty.then_some(true),
                stdin: c.open_stdin.then_some(true),
                ..Default::default()
            }],
            node_name: node.map(|n| node_name(n)),
            restart_policy: Some("Always".into()),
            hostname: (!c.hostname.is_empty()).then(|| c.hostname.clone()),
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: Some(phase(t).into()),
            host_ip: node
                .map(|n| n.status.addr.clone())
                .filter(|a| !a.is_empty()),
            pod_ip,
            start_time: created.clone(),
            conditions: Some(vec![
                condition(
                    "PodScheduled",
                    if t.node_id.is_some() { "True" } else { "False" },
                ),
                condition("Initialized", "True"),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ]),
            container_statuses: Some(vec![core::ContainerStatus {
                name: container_name.clone(),
                image: c.image.clone(),
                image_id: String::new(),
                container_id: t
                    .status
                    .runtime
                    .as_ref()
                    .map(|r| format!("shoal://{}", r.container_id))
                    .filter(|s| s != "shoal://"),
                ready: running,
                started: Some(running),
                restart_count: i32::try_from(t.restart_history.len()).unwrap_or(i32::MAX),
                state: Some(state),
                ..Default::default()
            }]),
            message: (!t.status.err.is_empty()).then(|| t.status.err.clone()),
            ..Default::default()
        }),
    }
}

fn env_var(e: &str) -> core::EnvVar {
    let (name, value) = e.split_once('=').unwrap_or((e, ""));
    core::EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

/// The counts a workload's status shows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Pods that exist (not terminal).
    pub current: i32,
    /// Pods running the service's current template.
    pub updated: i32,
    /// Running pods.
    pub ready: i32,
}

pub fn counts(view: &dyn ClusterView, s: &Service) -> Counts {
    let mut c = Counts::default();
    for t in view.tasks_of_service(&s.id) {
        if t.status.state.is_terminal() || t.desired_state > TaskState::Running {
            continue;
        }
        c.current += 1;
        if t.spec == s.spec.task {
            c.updated += 1;
        }
        if t.status.state == TaskState::Running {
            c.ready += 1;
        }
    }
    c
}

/// The highest version among a service and its tasks: a workload's status changes with its
/// pods.
fn workload_version(view: &dyn ClusterView, s: &Service) -> u64 {
    view.tasks_of_service(&s.id)
        .map(|t| t.meta.version)
        .fold(s.meta.version, u64::max)
}

fn template(s: &Service, name: &str) -> core::PodTemplateSpec {
    let c = &s.spec.task.container;
    let (labels, annotations, name) = match &s.spec.kube {
        Some(k) => (
            c.labels.clone(),
            (!k.pod_annotations.is_empty()).then(|| k.pod_annotations.clone()),
            if k.container.is_empty() {
                name
            } else {
                &k.container
            },
        ),
        None => (pod_labels(s), None, name),
    };
    core::PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations,
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            containers: vec![core::Container {
                name: name.to_string(),
                image: Some(c.image.clone()),
                command: (!c.command.is_empty()).then(|| c.command.clone()),
                args: (!c.args.is_empty()).then(|| c.args.clone()),
                env: (!c.env.is_empty()).then(|| c.env.iter().map(|e| env_var(e)).collect()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn selector(s: &Service) -> LabelSelector {
    if let Some(sel) = s
        .spec
        .kube
        .as_ref()
        .and_then(|k| serde_json::from_str::<LabelSelector>(&k.selector).ok())
    {
        return sel;
    }
    LabelSelector {
        match_labels: Some([(SERVICE_NAME_LABEL.to_string(), s.spec.name.clone())].into()),
        match_expressions: None,
    }
}

/// The Deployment a replicated service is.
pub fn deployment(view: &dyn ClusterView, s: &Service) -> Option<apps::Deployment> {
    let ServiceMode::Replicated { replicas } = s.spec.mode else {
        return None;
    };
    if is_bare_pod(s) {
        return None;
    }
    let (ns, name) = split_service_name(s);
    let replicas = i32::try_from(replicas).unwrap_or(i32::MAX);
    let c = counts(view, s);
    let u = s.spec.update_config();
    let step = if u.parallelism == 0 {
        IntOrString::String("100%".into())
    } else {
        IntOrString::Int(i32::try_from(u.parallelism).unwrap_or(i32::MAX))
    };
    let (surge, unavailable) = match u.order {
        UpdateOrder::StartFirst => (step, IntOrString::Int(0)),
        UpdateOrder::StopFirst => (IntOrString::Int(0), step),
    };
    let available = c.ready.min(replicas);
    let progressing = c.updated < replicas || c.current > replicas;
    let since = time(s.meta.updated_at);
    let m = meta(
        name.clone(),
        Some(ns),
        &s.id,
        workload_version(view, s),
        s.meta.created_at,
        kube_labels(&s.spec.labels),
    );
    let generation = i64::try_from(s.meta.version).unwrap_or(i64::MAX);
    let mut annotations = s
        .spec
        .kube
        .as_ref()
        .map(|k| k.annotations.clone())
        .unwrap_or_default();
    annotations.insert(
        "deployment.kubernetes.io/revision".into(),
        revision(s).to_string(),
    );
    Some(apps::Deployment {
        metadata: ObjectMeta {
            generation: Some(generation),
            annotations: Some(annotations),
            ..m
        },
        spec: Some(apps::DeploymentSpec {
            replicas: Some(replicas),
            selector: selector(s),
            template: template(s, &name),
            strategy: Some(apps::DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavailable),
                }),
            }),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus {
            observed_generation: Some(generation),
            replicas: Some(c.current),
            updated_replicas: Some(c.updated),
            ready_replicas: Some(c.ready),
            available_replicas: Some(available),
            unavailable_replicas: Some((replicas - available).max(0)),
            conditions: Some(vec![
                apps::DeploymentCondition {
                    type_: "Available".into(),
                    status: if available >= replicas {
                        "True"
                    } else {
                        "False"
                    }
                    .into(),
                    reason: Some(
                        if available >= replicas {
                            "MinimumReplicasAvailable"
                        } else {
                            "MinimumReplicasUnavailable"
                        }
                        .into(),
                    ),
                    message: Some(if available >= replicas {
                        "Deployment has minimum availability.".into()
                    } else {
                        "Deployment does not have minimum availability.".into()
                    }),
                    last_transition_time: since.clone(),
                    last_update_time: since.clone(),
                },
                apps::DeploymentCondition {
                    type_: "Progressing".into(),
                    status: "True".into(),
                    reason: Some(
                        if progressing {
                            "ReplicaSetUpdated"
                        } else {
                            "NewReplicaSetAvailable"
                        }
                        .into(),
                    ),
                    message: Some(format!(
                        "Service \"{}\" {}.",
                        s.spec.name,
                        if progressing {
                            "is progressing"
                        } else {
                            "has successfully progressed"
                        }
                    )),
                    last_transition_time: since.clone(),
                    last_update_time: since,
                },
            ]),
            ..Default::default()
        }),
    })
}

/// The revision of a service's template: 1, or 2 while Swarm's previous spec has another
/// template (Swarm keeps one previous spec, and any update replaces it: history is one
/// revision deep).
pub fn revision(s: &Service) -> u64 {
    match &s.previous_spec {
        Some(p) if p.task != s.spec.task => 2,
        _ => 1,
    }
}

/// Merges what the Kubernetes API kept of a workload (`spec` and container fields shoal has
/// none for) into the object it shows.
pub fn with_kube_extras(mut v: serde_json::Value, s: &Service) -> serde_json::Value {
    let Some(k) = &s.spec.kube else {
        return v;
    };
    if let Ok(extra) = serde_json::from_str::<serde_json::Value>(&k.spec_extra)
        && let Some(spec) = v.get_mut("spec")
    {
        crate::writes::merge_patch(spec, &extra);
    }
    if let Ok(extra) = serde_json::from_str::<serde_json::Value>(&k.container_extra)
        && let Some(c) = v.pointer_mut("/spec/template/spec/containers/0")
    {
        crate::writes::merge_patch(c, &extra);
    }
    v
}

/// A short hash of a task template: the `pod-template-hash` of its ReplicaSet.
pub fn template_hash(spec: &shoal_types::service::TaskSpec) -> String {
    let text = serde_json::to_string(spec).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // Kubernetes' alphabet for generated names: no vowels, no look-alikes.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    for _ in 0..10 {
        out.push(char::from(ALPHABET[(h % 27) as usize]));
        h /= 27;
    }
    out
}

/// The ReplicaSets of a Deployment: its current template and, once it was updated, the one
/// before (Swarm keeps one previous spec), with the revision annotations and owner reference
/// `kubectl rollout history|undo` read.
pub fn replica_sets(view: &dyn ClusterView, s: &Service) -> Vec<(String, apps::ReplicaSet)> {
    let Some(d) = deployment(view, s) else {
        return Vec::new();
    };
    let (ns, name) = split_service_name(s);
    let mut out = Vec::new();
    let mut specs = vec![(revision(s), s.spec.clone())];
    if let Some(p) = &s.previous_spec
        && p.task != s.spec.task
    {
        specs.push((1, p.clone()));
    }
    for (rev, spec) in specs {
        let hash = template_hash(&spec.task);
        let rs_name = format!("{name}-{hash}");
        let mut view_of = s.clone();
        view_of.spec = spec.clone();
        let mut tpl = template(&view_of, &name);
        let mut sel = selector(&view_of);
        if let Some(m) = tpl.metadata.as_mut() {
            m.labels
                .get_or_insert_with(Default::default)
                .insert("pod-template-hash".into(), hash.clone());
        }
        sel.match_labels
            .get_or_insert_with(Default::default)
            .insert("pod-template-hash".into(), hash.clone());
        let (mut current, mut ready) = (0, 0);
        for t in view.tasks_of_service(&s.id) {
            if t.spec == spec.task
                && !t.status.state.is_terminal()
                && t.desired_state <= TaskState::Running
            {
                current += 1;
                if t.status.state == TaskState::Running {
                    ready += 1;
                }
            }
        }
        let wanted = if spec.task == s.spec.task {
            d.spec.as_ref().and_then(|x| x.replicas).unwrap_or(0)
        } else {
            0
        };
        let mut labels = tpl
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert("pod-template-hash".into(), hash.clone());
        let rs = apps::ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: Some(ns.clone()),
                uid: Some(format!("{}-{hash}", uid_of(&s.id))),
                resource_version: Some(s.meta.version.to_string()),
                creation_timestamp: time(s.meta.created_at),
                labels: Some(labels),
                annotations: Some(
                    [
                        (
                            "deployment.kubernetes.io/revision".to_string(),
                            rev.to_string(),
                        ),
                        (
                            "deployment.kubernetes.io/desired-replicas".to_string(),
                            wanted.to_string(),
                        ),
                    ]
                    .into(),
                ),
                owner_references: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "Deployment".into(),
                        name: name.clone(),
                        uid: uid_of(&s.id),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    },
                ]),
                ..Default::default()
            },
            spec: Some(apps::ReplicaSetSpec {
                replicas: Some(wanted),
                selector: sel,
                template: Some(tpl),
                min_ready_seconds: None,
            }),
            status: Some(apps::ReplicaSetStatus {
                replicas: current,
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                fully_labeled_replicas: Some(current),
                observed_generation: d.metadata.generation,
                conditions: None,
                terminating_replicas: None,
            }),
        };
        out.push((rs_name, rs));
    }
    out
}

/// Whether the service is a bare Pod written through the Kubernetes API.
pub fn is_bare_pod(s: &Service) -> bool {
    s.spec
        .labels
        .get(crate::workload::KIND_LABEL)
        .map(String::as_str)
        == Some("Pod")
}

/// The Job a replicated job service is (made with `kubectl` or `docker service create --mode
/// replicated-job`).
pub fn job(view: &dyn ClusterView, s: &Service) -> Option<k8s_openapi::api::batch::v1::Job> {
    use k8s_openapi::api::batch::v1 as batch;
    let ServiceMode::ReplicatedJob {
        max_concurrent,
        total_completions,
    } = s.spec.mode
    else {
        return None;
    };
    if is_bare_pod(s) {
        return None;
    }
    let (ns, name) = split_service_name(s);
    let (mut succeeded, mut failed, mut active) = (0i32, 0i32, 0i32);
    let mut finished = Timestamp::ZERO;
    for t in view.tasks_of_service(&s.id) {
        match t.status.state {
            TaskState::Complete => {
                succeeded += 1;
                finished = finished.max(t.status.timestamp);
            }
            TaskState::Failed | TaskState::Rejected => failed += 1,
            st if !st.is_terminal() && t.desired_state <= TaskState::Complete => active += 1,
            _ => {}
        }
    }
    let completions = i32::try_from(total_completions).unwrap_or(i32::MAX);
    let done = succeeded >= completions;
    let mut m = meta(
        name.clone(),
        Some(ns),
        &s.id,
        workload_version(view, s),
        s.meta.created_at,
        kube_labels(&s.spec.labels),
    );
    m.generation = Some(i64::try_from(s.meta.version).unwrap_or(i64::MAX));
    if let Some(k) = &s.spec.kube
        && !k.annotations.is_empty()
    {
        m.annotations = Some(k.annotations.clone());
    }
    let mut tpl = template(s, &name);
    if let Some(spec) = tpl.spec.as_mut() {
        spec.restart_policy = Some(
            match s.spec.task.restart.condition {
                shoal_types::service::RestartCondition::None => "Never",
                _ => "OnFailure",
            }
            .into(),
        );
    }
    Some(batch::Job {
        metadata: m,
        spec: Some(batch::JobSpec {
            completions: Some(completions),
            parallelism: Some(i32::try_from(max_concurrent).unwrap_or(i32::MAX)),
            selector: Some(selector(s)),
            template: tpl,
            ..Default::default()
        }),
        status: Some(batch::JobStatus {
            active: Some(active),
            succeeded: Some(succeeded),
            failed: Some(failed),
            ready: Some(active),
            start_time: time(s.meta.created_at),
            completion_time: if done { time(finished) } else { None },
            conditions: done.then(|| {
                vec![batch::JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    last_probe_time: time(finished),
                    last_transition_time: time(finished),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

/// The DaemonSet a global service is.
pub fn daemon_set(view: &dyn ClusterView, s: &Service) -> Option<apps::DaemonSet> {
    if s.spec.mode != ServiceMode::Global {
        return None;
    }
    let (ns, name) = split_service_name(s);
    let c = counts(view, s);
    let desired = i32::try_from(view.service_status(s).desired).unwrap_or(i32::MAX);
    let generation = i64::try_from(s.meta.version).unwrap_or(i64::MAX);
    let m = meta(
        name.clone(),
        Some(ns),
        &s.id,
        workload_version(view, s),
        s.meta.created_at,
        kube_labels(&s.spec.labels),
    );
    let annotations = s
        .spec
        .kube
        .as_ref()
        .map(|k| k.annotations.clone())
        .filter(|a| !a.is_empty());
    Some(apps::DaemonSet {
        metadata: ObjectMeta {
            generation: Some(generation),
            annotations,
            ..m
        },
        spec: Some(apps::DaemonSetSpec {
            selector: selector(s),
            template: template(s, &name),
            update_strategy: Some(apps::DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some({
                    let u = s.spec.update_config();
                    let step = IntOrString::Int(i32::try_from(u.parallelism.max(1)).unwrap_or(1));
                    match u.order {
                        UpdateOrder::StartFirst => apps::RollingUpdateDaemonSet {
                            max_surge: Some(step),
                            max_unavailable: Some(IntOrString::Int(0)),
                        },
                        UpdateOrder::StopFirst => apps::RollingUpdateDaemonSet {
                            max_surge: Some(IntOrString::Int(0)),
                            max_unavailable: Some(step),
                        },
                    }
                }),
            }),
            ..Default::default()
        }),
        status: Some(apps::DaemonSetStatus {
            current_number_scheduled: c.current,
            desired_number_scheduled: desired,
            number_ready: c.ready,
            number_available: Some(c.ready),
            updated_number_scheduled: Some(c.updated),
            number_misscheduled: 0,
            observed_generation: Some(generation),
            ..Default::default()
        }),
    })
}

/// A namespace: Kubernetes' own four and every stack's.
pub fn namespace(name: &str, created: Timestamp, version: u64) -> core::Namespace {
    core::Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            uid: Some(format!("namespace-{name}")),
            resource_version: Some(version.to_string()),
            creation_timestamp: time(created),
            labels: Some([("kubernetes.io/metadata.name".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: Some(core::NamespaceSpec {
            finalizers: Some(vec!["kubernetes".into()]),
        }),
        status: Some(core::NamespaceStatus {
            phase: Some("Active".into()),
            conditions: None,
        }),
    }
}

/// The namespaces in the view, each with the creation time and version of its oldest stack
/// service (the cluster's for Kubernetes' own).
pub fn namespaces(view: &dyn ClusterView) -> BTreeMap<String, (Timestamp, u64)> {
    let origin = view
        .cluster()
        .map(|c| (c.meta.created_at, c.meta.version))
        .unwrap_or((Timestamp::ZERO, 1));
    let mut out: BTreeMap<String, (Timestamp, u64)> = SYSTEM_NAMESPACES
        .iter()
        .map(|n| (n.to_string(), origin))
        .collect();
    if let Some(c) = view.cluster() {
        for (k, v) in &c.spec.labels {
            if let Some(name) = k.strip_prefix(NAMESPACE_CLUSTER_LABEL) {
                let created = v
                    .parse::<i64>()
                    .map(|secs| Timestamp::from_unix_nanos(secs.saturating_mul(1_000_000_000)))
                    .unwrap_or(c.meta.created_at);
                out.entry(name.to_string())
                    .or_insert((created, c.meta.version));
            }
        }
    }
    for kind in [
        shoal_types::payload::PayloadKind::Config,
        shoal_types::payload::PayloadKind::Secret,
    ] {
        for p in view.payloads(kind) {
            let (ns, _) = crate::payloads::split_name(p);
            out.entry(ns).or_insert((p.meta.created_at, p.meta.version));
        }
    }
    for s in view.services() {
        let (ns, _) = split_service_name(s);
        let e = out.entry(ns).or_insert((s.meta.created_at, s.meta.version));
        if s.meta.created_at < e.0 {
            *e = (s.meta.created_at, s.meta.version);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_shaped_as_uuids_and_lead_back_to_the_id() {
        let id = Id::from_raw("0hbik0t8rbtwkuahjf666kw9l");
        let uid = uid_of(&id);
        assert_eq!(uid, "0hbik0t8-rbtw-kuah-jf66-6kw9l");
        assert_eq!(id_of_uid(&uid), id);
    }

    #[test]
    fn a_stack_is_a_namespace() {
        let mut s = Service::default();
        s.spec.name = "shop_web".into();
        s.spec.labels.insert(NAMESPACE_LABEL.into(), "shop".into());
        assert_eq!(split_service_name(&s), ("shop".into(), "web".into()));
        assert_eq!(service_name("shop", "web"), "shop_web");
        s.spec.labels.clear();
        assert_eq!(
            split_service_name(&s),
            ("default".into(), "shop_web".into())
        );
        assert_eq!(service_name("default", "web"), "web");
    }
}
