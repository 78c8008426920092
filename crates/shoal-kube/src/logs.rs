//! `kubectl logs`: a pod's output, read from the node that runs its task (as `docker service
//! logs` reads it), as plain text; `--previous` is the task that ran in the same slot before
//! this one (Swarm replaces a failed container with a new task).
//!
//! Concurrency: one task per request copies the node's stream into the response body; it
//! ends with the stream, when the client goes, or when the daemon stops.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::Value;
use shoal_control::{ControlSurface, NodeSurface};
use shoal_runtime::LogOptions;
use shoal_types::Timestamp;
use shoal_types::task::Task;

use crate::objects;
use crate::registry::ResourceInfo;
use crate::status::{KubeError, KubeResult};

/// The options kubectl sends.
#[derive(Debug, Default)]
pub struct LogQuery {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail: Option<usize>,
    pub since_seconds: Option<i64>,
    pub container: Option<String>,
}

pub fn log_query(q: Option<&str>) -> KubeResult<LogQuery> {
    let mut out = LogQuery::default();
    for (k, v) in crate::server::form_pairs(q.unwrap_or("")) {
        let flag = v == "true" || v == "1";
        match k.as_str() {
            "follow" => out.follow = flag,
            "previous" => out.previous = flag,
            "timestamps" => out.timestamps = flag,
            "tailLines" => {
                out.tail = Some(v.parse().map_err(|_| {
                    KubeError::bad_request(format!("tailLines: invalid value {v:?}"))
                })?);
            }
            "sinceSeconds" => {
                out.since_seconds = Some(v.parse().map_err(|_| {
                    KubeError::bad_request(format!("sinceSeconds: invalid value {v:?}"))
                })?);
            }
            "container" => out.container = Some(v),
            _ => {}
        }
    }
    Ok(out)
}

/// The task whose output answers: the pod's, or with `previous` the one before it in its slot.
fn task_for(m: &dyn ControlSurface, pod: &Value, previous: bool) -> Option<Task> {
    let id = objects::id_of_uid(pod["metadata"]["uid"].as_str().unwrap_or_default());
    let view = m.view();
    let task = view.task(&id)?;
    if !previous {
        return Some((**task).clone());
    }
    view.tasks_of_service(&task.service_id)
        .filter(|t| {
            t.slot == task.slot
                && t.node_id == task.node_id.clone().or(t.node_id.clone())
                && t.id != task.id
                && t.status.state.is_terminal()
                && t.meta.created_at < task.meta.created_at
        })
        .max_by_key(|t| t.meta.created_at)
        .map(|t| (**t).clone())
}

pub async fn pod_logs(
    daemon: Arc<dyn NodeSurface>,
    m: Arc<dyn ControlSurface>,
    r: &ResourceInfo,
    pod: &Value,
    q: LogQuery,
    now: Timestamp,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> KubeResult<Response> {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let container = pod["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap_or_default();
    if let Some(c) = q.container.as_deref().filter(|c| *c != container) {
        return Err(KubeError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        )));
    }
    let Some(task) = task_for(m.as_ref(), pod, q.previous) else {
        return Err(if q.previous {
            KubeError::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{name}\" not found"
            ))
        } else {
            KubeError::not_found(r, &name)
        });
    };
    let Some(node_id) = task.node_id.clone() else {
        return Err(KubeError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let endpoint = m
        .view()
        .node(&node_id)
        .map(|n| n.status.endpoint.clone())
        .unwrap_or_default();
    let since = q
        .since_seconds
        .map(|s| {
            now.sub(std::time::Duration::from_secs(
                u64::try_from(s).unwrap_or(0),
            ))
        })
        .unwrap_or(Timestamp::ZERO);
    let opts = LogOptions {
        follow: q.follow,
        tail: q.tail,
        since,
        stdout: true,
        stderr: true,
    };
    let mut lines = daemon
        .task_logs(&task.id, Some((&node_id, endpoint.as_str())), opts)
        .await
        .map_err(|e| KubeError::bad_request(format!("reading the logs of pod \"{name}\": {e}")))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let timestamps = q.timestamps;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                line = shoal_runtime::next_log_line(&mut lines) => match line {
                    Some(Ok(l)) => {
                        let mut out = Vec::with_capacity(l.line.len() + 32);
                        if timestamps {
                            out.extend_from_slice(rfc3339_nanos(l.time).as_bytes());
                            out.push(b' ');
                        }
                        out.extend_from_slice(&l.line);
                        if tx.send(Ok(Bytes::from(out))).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                },
                _ = tx.closed() => return,
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
            }
        }
    });
    let mut rx = rx;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A time as Kubernetes writes log timestamps: RFC 3339 with nanoseconds, UTC.
fn rfc3339_nanos(t: Timestamp) -> String {
    let n = t.unix_nanos();
    match jiff::Timestamp::from_nanosecond(i128::from(n)) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ").to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_log_options_are_read() {
        let q = log_query(Some(
            "container=web&follow=true&tailLines=5&timestamps=true",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(q.follow && q.timestamps && !q.previous);
        assert_eq!(q.tail, Some(5));
        assert_eq!(q.container.as_deref(), Some("web"));
        assert!(log_query(Some("tailLines=x")).is_err());
        assert_eq!(
            rfc3339_nanos(Timestamp::from_unix_nanos(1_767_225_600_000_000_001)),
            "2026-01-01T00:00:00.000000001Z"
        );
    }
}
