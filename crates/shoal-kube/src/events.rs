//! Kubernetes Events, derived from what the cache sees a pod go through (`Scheduled`,
//! `Started`, `Failed`, `Killing`), as the scheduler and the kubelet report them. Kubernetes
//! keeps events an hour; these are kept in the manager's memory, the newest [`KEEP`], and are
//! gone with it.
//!
//! Concurrency: pure functions; the cache calls them under its lock.

use serde_json::{Value, json};

/// Events kept.
pub const KEEP: usize = 2000;

fn container_state(pod: &Value) -> &Value {
    &pod["status"]["containerStatuses"][0]["state"]
}

/// The events between `old` (none for a new pod) and `new`: their names' suffixes are made
/// unique by the caller.
pub fn of_pod(old: Option<&Value>, new: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let node = new["spec"]["nodeName"].as_str().unwrap_or_default();
    let container = new["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap_or_default();
    let ns = new["metadata"]["namespace"].as_str().unwrap_or("default");
    let name = new["metadata"]["name"].as_str().unwrap_or_default();
    let had = |path: &dyn Fn(&Value) -> bool| old.is_some_and(path);
    let scheduled = |p: &Value| {
        p["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    };
    if scheduled(new) && !had(&scheduled) {
        out.push((
            "Normal",
            "Scheduled",
            format!("Successfully assigned {ns}/{name} to {node}"),
            "default-scheduler",
            new["metadata"]["creationTimestamp"].clone(),
        ));
    }
    let running = |p: &Value| !container_state(p)["running"].is_null();
    if running(new) && !had(&running) {
        let at = container_state(new)["running"]["startedAt"].clone();
        out.push((
            "Normal",
            "Created",
            format!("Created container: {container}"),
            "kubelet",
            at.clone(),
        ));
        out.push((
            "Normal",
            "Started",
            format!("Started container {container}"),
            "kubelet",
            at,
        ));
    }
    let failed = |p: &Value| {
        container_state(p)["terminated"]["exitCode"]
            .as_i64()
            .is_some_and(|c| c != 0)
    };
    if failed(new) && !had(&failed) {
        let t = &container_state(new)["terminated"];
        out.push((
            "Warning",
            "Failed",
            format!(
                "Error: container {container} exited with code {}",
                t["exitCode"].as_i64().unwrap_or(0)
            ),
            "kubelet",
            t["finishedAt"].clone(),
        ));
    }
    let stopping = |p: &Value| !p["metadata"]["deletionTimestamp"].is_null();
    if stopping(new) && !had(&stopping) {
        out.push((
            "Normal",
            "Killing",
            format!("Stopping container {container}"),
            "kubelet",
            new["metadata"]["deletionTimestamp"].clone(),
        ));
    }
    out.into_iter()
        .map(|(typ, reason, message, component, at)| {
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": { "namespace": ns, "creationTimestamp": at },
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": name,
                    "namespace": ns,
                    "uid": new["metadata"]["uid"],
                    "fieldPath": format!("spec.containers{{{container}}}"),
                },
                "reason": reason,
                "message": message,
                "type": typ,
                "count": 1,
                "firstTimestamp": at,
                "lastTimestamp": at,
                "source": if component == "kubelet" {
                    json!({ "component": component, "host": node })
                } else {
                    json!({ "component": component })
                },
                "reportingComponent": component,
                "reportingInstance": if component == "kubelet" { node } else { "" },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_that_is_placed_and_starts_is_scheduled_created_and_started() {
        let pending = json!({"metadata": {"name": "web.1.x", "namespace": "default", "uid": "u"},
            "spec": {"nodeName": "node1", "containers": [{"name": "web"}]},
            "status": {"containerStatuses": [{"state": {"waiting": {}}}]}});
        let e = of_pod(None, &pending);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0]["reason"], "Scheduled");
        assert_eq!(
            e[0]["message"],
            "Successfully assigned default/web.1.x to node1"
        );
        let mut running = pending.clone();
        running["status"]["containerStatuses"][0]["state"] = json!({"running": {"startedAt": "t"}});
        let e = of_pod(Some(&pending), &running);
        let reasons: Vec<&str> = e.iter().filter_map(|e| e["reason"].as_str()).collect();
        assert_eq!(reasons, ["Created", "Started"]);
        assert!(of_pod(Some(&running), &running).is_empty());
        let mut failed = running.clone();
        failed["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 3, "finishedAt": "t2"}});
        let e = of_pod(Some(&running), &failed);
        assert_eq!(e[0]["type"], "Warning");
        assert_eq!(e[0]["message"], "Error: container web exited with code 3");
    }
}
