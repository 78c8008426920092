//! `kubectl get`'s tables, made on the server as Kubernetes does (`Accept: …;as=Table`): the
//! columns kubectl users know for each kind, with priority-1 columns for `-o wide`.
//!
//! Concurrency: pure functions.

use serde_json::{Value, json};
use shoal_types::Timestamp;

use crate::registry::ResourceInfo;

/// A column: name, type, priority (1 = only with `-o wide`), description.
type Column = (&'static str, &'static str, u8, &'static str);

const NAME: Column = (
    "Name",
    "string",
    0,
    "Name must be unique within a namespace.",
);
const AGE: Column = (
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);

fn columns_of(kind: &str) -> Vec<Column> {
    match kind {
        "Pod" => vec![
            NAME,
            (
                "Ready",
                "string",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            (
                "Status",
                "string",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            (
                "Restarts",
                "string",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            AGE,
            (
                "IP",
                "string",
                1,
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
            ),
            (
                "Node",
                "string",
                1,
                "Name of the Node to which this pod is assigned",
            ),
            (
                "Nominated Node",
                "string",
                1,
                "nominatedNodeName is set only when this pod preempts other pods on the node.",
            ),
            (
                "Readiness Gates",
                "string",
                1,
                "If specified, all readiness gates will be evaluated for pod readiness.",
            ),
        ],
        "Node" => vec![
            NAME,
            ("Status", "string", 0, "The status of the node"),
            ("Roles", "string", 0, "The roles of the node"),
            AGE,
            (
                "Version",
                "string",
                0,
                "Kubelet Version reported by the node.",
            ),
            (
                "Internal-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            (
                "External-IP",
                "string",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            (
                "OS-Image",
                "string",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            (
                "Kernel-Version",
                "string",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            (
                "Container-Runtime",
                "string",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        "Namespace" => vec![
            NAME,
            ("Status", "string", 0, "The status of the namespace"),
            AGE,
        ],
        "Deployment" => vec![
            NAME,
            ("Ready", "string", 0, "Number of the pod with ready state"),
            (
                "Up-to-date",
                "string",
                0,
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
            ),
            (
                "Available",
                "string",
                0,
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            (
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            (
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            (
                "Selector",
                "string",
                1,
                "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
            ),
        ],
        "DaemonSet" => vec![
            NAME,
            (
                "Desired",
                "integer",
                0,
                "The total number of nodes that should be running the daemon pod.",
            ),
            (
                "Current",
                "integer",
                0,
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
            ),
            (
                "Ready",
                "integer",
                0,
                "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
            ),
            (
                "Up-to-date",
                "integer",
                0,
                "The total number of nodes that are running updated daemon pod",
            ),
            (
                "Available",
                "integer",
                0,
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
            ),
            (
                "Node Selector",
                "string",
                0,
                "NodeSelector is a selector which must be true for the pod to fit on a node.",
            ),
            AGE,
            (
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            (
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            (
                "Selector",
                "string",
                1,
                "A label query over pods that are managed by the daemon set.",
            ),
        ],
        "Event" => vec![
            (
                "Last Seen",
                "string",
                0,
                "Time when this Event was last observed.",
            ),
            (
                "Type",
                "string",
                0,
                "Type of this event (Normal, Warning), new types could be added in the future.",
            ),
            (
                "Reason",
                "string",
                0,
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            ),
            (
                "Object",
                "string",
                0,
                "The object that this event is about.",
            ),
            (
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            (
                "Source",
                "string",
                1,
                "The component reporting this event. Should be a short machine understandable string.",
            ),
            (
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            ),
            (
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            (
                "Name",
                "string",
                1,
                "Name must be unique within a namespace.",
            ),
        ],
        "ReplicaSet" => vec![
            NAME,
            ("Desired", "integer", 0, "Number of desired pods."),
            ("Current", "integer", 0, "Number of actual replicas."),
            (
                "Ready",
                "integer",
                0,
                "The number of ready replicas for this replica set.",
            ),
            AGE,
            (
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            (
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            (
                "Selector",
                "string",
                1,
                "Selector is a label query over pods that should match the replica count.",
            ),
        ],
        "Job" => vec![
            NAME,
            ("Status", "string", 0, "Status of the job."),
            (
                "Completions",
                "string",
                0,
                "The desired number of successfully finished pods the job should be run with.",
            ),
            (
                "Duration",
                "string",
                0,
                "Time required to complete the job.",
            ),
            AGE,
            (
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            (
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
            (
                "Selector",
                "string",
                1,
                "A label query over pods that should match the pod count.",
            ),
        ],
        _ => vec![NAME, AGE],
    }
}

/// The column definitions of a kind's table.
pub fn column_definitions(r: &ResourceInfo) -> Value {
    columns_of(r.kind)
        .into_iter()
        .map(|(name, typ, priority, description)| {
            json!({
                "name": name,
                "type": typ,
                "format": if name == "Name" { "name" } else { "" },
                "description": description,
                "priority": priority,
            })
        })
        .collect()
}

/// One object's row.
pub fn row(r: &ResourceInfo, obj: &Value, now: Timestamp) -> Value {
    json!({
        "cells": cells(r, obj, now),
        "object": partial_metadata(obj),
    })
}

/// A table of `objs`.
pub fn table(r: &ResourceInfo, objs: &[Value], resource_version: u64, now: Timestamp) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": resource_version.to_string() },
        "columnDefinitions": column_definitions(r),
        "rows": objs.iter().map(|o| row(r, o, now)).collect::<Vec<_>>(),
    })
}

/// What a row carries of its object: the metadata, as `PartialObjectMetadata` (labels for
/// `--show-labels` and `-L`).
fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p).unwrap_or(&Value::Null);
    }
    cur
}

fn text(v: &Value, path: &[&str]) -> String {
    match s(v, path) {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn int(v: &Value, path: &[&str]) -> i64 {
    s(v, path).as_i64().unwrap_or(0)
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn age(obj: &Value, now: Timestamp) -> String {
    let created = text(obj, &["metadata", "creationTimestamp"]);
    match created.parse::<jiff::Timestamp>() {
        Ok(t) => {
            let secs = now.unix_nanos().div_euclid(1_000_000_000) - t.as_second();
            human_duration(secs)
        }
        Err(_) => "<unknown>".into(),
    }
}

/// Kubernetes' short ages: `45s`, `3m20s`, `12m`, `5h3m`, `3d4h`, `400d`, `2y10d`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = minutes / 60;
    if secs < 120 {
        return format!("{secs}s");
    }
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    let years = hours / 24 / 365;
    if years < 8 {
        return match (hours / 24) % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

fn selector_text(v: &Value) -> String {
    let Some(m) = s(v, &["spec", "selector", "matchLabels"]).as_object() else {
        return String::new();
    };
    m.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

fn template_containers(v: &Value, field: &str) -> String {
    s(v, &["spec", "template", "spec", "containers"])
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| text(c, &[field]))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn cells(r: &ResourceInfo, o: &Value, now: Timestamp) -> Vec<Value> {
    let name = json!(text(o, &["metadata", "name"]));
    match r.kind {
        "Pod" => pod_cells(o, now),
        "Node" => {
            let ready = s(o, &["status", "conditions"])
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"] == "True");
            let mut status = match ready {
                Some(true) => "Ready".to_string(),
                _ => "NotReady".to_string(),
            };
            if s(o, &["spec", "unschedulable"]) == &Value::Bool(true) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = s(o, &["metadata", "labels"])
                .as_object()
                .map(|m| {
                    m.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let addr = |t: &str| {
                s(o, &["status", "addresses"])
                    .as_array()
                    .and_then(|a| a.iter().find(|x| x["type"] == t))
                    .map(|x| text(x, &["address"]))
                    .unwrap_or_default()
            };
            vec![
                name,
                json!(status),
                json!(or_none(roles.join(","))),
                json!(age(o, now)),
                json!(text(o, &["status", "nodeInfo", "kubeletVersion"])),
                json!(or_none(addr("InternalIP"))),
                json!(or_none(addr("ExternalIP"))),
                json!(or_none(text(o, &["status", "nodeInfo", "osImage"]))),
                json!(or_none(text(o, &["status", "nodeInfo", "kernelVersion"]))),
                json!(or_none(text(
                    o,
                    &["status", "nodeInfo", "containerRuntimeVersion"]
                ))),
            ]
        }
        "Namespace" => vec![
            name,
            json!(text(o, &["status", "phase"])),
            json!(age(o, now)),
        ],
        "Deployment" => vec![
            name,
            json!(format!(
                "{}/{}",
                int(o, &["status", "readyReplicas"]),
                int(o, &["spec", "replicas"])
            )),
            json!(int(o, &["status", "updatedReplicas"])),
            json!(int(o, &["status", "availableReplicas"])),
            json!(age(o, now)),
            json!(template_containers(o, "name")),
            json!(template_containers(o, "image")),
            json!(or_none(selector_text(o))),
        ],
        "DaemonSet" => {
            let node_selector = s(o, &["spec", "template", "spec", "nodeSelector"])
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(int(o, &["status", "desiredNumberScheduled"])),
                json!(int(o, &["status", "currentNumberScheduled"])),
                json!(int(o, &["status", "numberReady"])),
                json!(int(o, &["status", "updatedNumberScheduled"])),
                json!(int(o, &["status", "numberAvailable"])),
                json!(or_none(node_selector)),
                json!(age(o, now)),
                json!(template_containers(o, "name")),
                json!(template_containers(o, "image")),
                json!(or_none(selector_text(o))),
            ]
        }
        "Event" => {
            let since = |field: &str| match text(o, &[field]).parse::<jiff::Timestamp>() {
                Ok(t) => human_duration(now.unix_nanos().div_euclid(1_000_000_000) - t.as_second()),
                Err(_) => "<unknown>".into(),
            };
            vec![
                json!(since("lastTimestamp")),
                json!(text(o, &["type"])),
                json!(text(o, &["reason"])),
                json!(format!(
                    "{}/{}",
                    text(o, &["involvedObject", "kind"]).to_lowercase(),
                    text(o, &["involvedObject", "name"])
                )),
                json!(text(o, &["message"])),
                json!(format!(
                    "{}{}",
                    text(o, &["source", "component"]),
                    match text(o, &["source", "host"]) {
                        h if h.is_empty() => String::new(),
                        h => format!(", {h}"),
                    }
                )),
                json!(since("firstTimestamp")),
                json!(int(o, &["count"]).to_string()),
                name,
            ]
        }
        "ReplicaSet" => vec![
            name,
            json!(int(o, &["spec", "replicas"])),
            json!(int(o, &["status", "replicas"])),
            json!(int(o, &["status", "readyReplicas"])),
            json!(age(o, now)),
            json!(template_containers(o, "name")),
            json!(template_containers(o, "image")),
            json!(or_none(selector_text(o))),
        ],
        "Job" => {
            let complete = s(o, &["status", "conditions"])
                .as_array()
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Complete" && c["status"] == "True")
                });
            let status = if complete {
                "Complete"
            } else if int(o, &["status", "failed"]) > 0 && int(o, &["status", "active"]) == 0 {
                "Failed"
            } else {
                "Running"
            };
            let parse = |p: &[&str]| text(o, p).parse::<jiff::Timestamp>().ok();
            let duration = match (
                parse(&["status", "startTime"]),
                parse(&["status", "completionTime"]),
            ) {
                (Some(a), Some(b)) => human_duration(b.as_second() - a.as_second()),
                (Some(a), None) => {
                    human_duration(now.unix_nanos().div_euclid(1_000_000_000) - a.as_second())
                }
                _ => String::new(),
            };
            vec![
                name,
                json!(status),
                json!(format!(
                    "{}/{}",
                    int(o, &["status", "succeeded"]),
                    int(o, &["spec", "completions"])
                )),
                json!(duration),
                json!(age(o, now)),
                json!(template_containers(o, "name")),
                json!(template_containers(o, "image")),
                json!(or_none(selector_text(o))),
            ]
        }
        _ => vec![name, json!(age(o, now))],
    }
}

/// A pod's cells, with kubectl's STATUS rules: a terminating pod says `Terminating`, a
/// waiting or terminated container's reason wins over the phase.
fn pod_cells(o: &Value, now: Timestamp) -> Vec<Value> {
    let statuses = s(o, &["status", "containerStatuses"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = s(o, &["spec", "containers"]).as_array().map_or(0, Vec::len);
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let mut status = text(o, &["status", "phase"]);
    for c in &statuses {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            status = r.to_string();
        } else if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
            status = r.to_string();
        }
    }
    if !s(o, &["metadata", "deletionTimestamp"]).is_null() {
        status = "Terminating".into();
    }
    vec![
        json!(text(o, &["metadata", "name"])),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts.to_string()),
        json!(age(o, now)),
        json!(or_none(text(o, &["status", "podIP"]))),
        json!(or_none(text(o, &["spec", "nodeName"]))),
        json!("<none>"),
        json!("<none>"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectls() {
        for (secs, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (400 * 86400, "400d"),
            (-5, "<invalid>"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn a_terminating_pod_says_so() {
        let o = json!({
            "metadata": {"name": "web.1.x", "deletionTimestamp": "2026-01-01T00:00:00Z",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "web"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 2, "state": {"running": {}}}]}
        });
        let c = pod_cells(&o, Timestamp::from_unix_nanos(1_767_225_610_000_000_000));
        assert_eq!(c[1], "1/1");
        assert_eq!(c[2], "Terminating");
        assert_eq!(c[3], "2");
        assert_eq!(c[4], "10s");
    }
}
