//! `/services/{id}/logs` and `/tasks/{id}/logs`: every task's output as Docker streams it —
//! multiplexed frames (8-byte header: stream, 0, 0, 0, big-endian length) unless the service has
//! a TTY, each line prefixed with its timestamp (`timestamps=1`) and the task's identity
//! (`details=1`), which `docker service logs` needs to name the task.
//!
//! With `follow`, tasks that start after the request (replacements, scale-ups) join the stream.
//! The stream ends when the client goes away, the service is removed or the daemon stops.

use shoal_types::error::chain;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use shoal_control::ControlSurface;
use shoal_runtime::LogStreamKind;
use shoal_runtime::{LogLine, LogOptions};
use shoal_types::clock::format_rfc3339;
use shoal_types::task::Task;
use shoal_types::{Id, Timestamp};
use tokio::sync::mpsc;

use super::manager;
use crate::AppState;
use crate::body::query_bool;
use crate::error::{ApiError, ApiResult};

struct Opts {
    follow: bool,
    details: bool,
    timestamps: bool,
    tail: Option<usize>,
    since: Timestamp,
    stdout: bool,
    stderr: bool,
}

fn parse_opts(q: &HashMap<String, String>) -> ApiResult<Opts> {
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter tail: expected \"all\" or a number, got {n:?}"
            ))
        })?),
    };
    let since = match q.get("since").map(String::as_str) {
        None | Some("") | Some("0") => Timestamp::ZERO,
        Some(s) => parse_since(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter since: expected unix seconds like 1700000000.5, got {s:?}"
            ))
        })?,
    };
    let (stdout, stderr) = (query_bool(q, "stdout")?, query_bool(q, "stderr")?);
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "you must choose at least one stream: stdout=1 or stderr=1",
        ));
    }
    Ok(Opts {
        follow: query_bool(q, "follow")?,
        details: query_bool(q, "details")?,
        timestamps: query_bool(q, "timestamps")?,
        tail,
        since,
        stdout,
        stderr,
    })
}

pub(crate) fn parse_since(s: &str) -> Option<Timestamp> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    secs.checked_mul(1_000_000_000)?
        .checked_add(nanos)
        .map(Timestamp)
}

pub async fn service_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let h = manager(&state).await?;
    let opts = parse_opts(&q)?;
    let service = h.view().find_service(&id)?;
    let tty = service.spec.task.container.tty;
    stream(state, h, Target::Service(service.id.clone()), opts, tty).await
}

pub async fn task_logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let h = manager(&state).await?;
    let opts = parse_opts(&q)?;
    let task = h.view().find_task(&id)?;
    let tty = task.spec.container.tty;
    stream(state, h, Target::Task(task.id.clone()), opts, tty).await
}

enum Target {
    Service(Id),
    Task(Id),
}

fn tasks_of(control: &dyn ControlSurface, target: &Target) -> Option<Vec<Task>> {
    let view = control.view();
    match target {
        Target::Service(s) => {
            view.service(s)?;
            let mut ts: Vec<Task> = view.tasks_of_service(s).map(|t| (**t).clone()).collect();
            ts.sort_by_key(|t| (t.slot, t.meta.created_at));
            Some(ts)
        }
        Target::Task(t) => view.task(t).map(|t| vec![(**t).clone()]),
    }
}

fn frame(task: &Task, line: &LogLine, opts: &Opts, tty: bool) -> Bytes {
    let mut text = BytesMut::with_capacity(line.line.len() + 160);
    if opts.timestamps {
        text.put_slice(format_rfc3339(line.time).as_bytes());
        text.put_u8(b' ');
    }
    if opts.details {
        let node = task.node_id.as_ref().map(Id::as_str).unwrap_or("");
        text.put_slice(
            format!(
                "com.docker.swarm.node.id={node},com.docker.swarm.service.id={},com.docker.swarm.task.id={} ",
                task.service_id, task.id
            )
            .as_bytes(),
        );
    }
    text.put_slice(&line.line);
    if tty {
        return text.freeze();
    }
    let mut out = BytesMut::with_capacity(text.len() + 8);
    out.put_u8(match line.stream {
        LogStreamKind::Stdout => 1,
        LogStreamKind::Stderr => 2,
    });
    out.put_slice(&[0, 0, 0]);
    out.put_u32(u32::try_from(text.len()).unwrap_or(u32::MAX));
    out.put_slice(&text);
    out.freeze()
}

async fn stream(
    state: AppState,
    control: Arc<dyn ControlSurface>,
    target: Target,
    opts: Opts,
    tty: bool,
) -> ApiResult<Response> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let opts = Arc::new(opts);
    let daemon = state.daemon.clone();
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let mut started: HashSet<Id> = HashSet::new();
        let mut readers = tokio::task::JoinSet::new();
        while let Some(tasks) = tasks_of(&*control, &target) {
            for task in tasks {
                if task.node_id.is_none() || !started.insert(task.id.clone()) {
                    continue;
                }
                let lo = LogOptions {
                    follow: opts.follow,
                    tail: opts.tail,
                    since: opts.since,
                    stdout: opts.stdout,
                    stderr: opts.stderr,
                };
                let (daemon, tx, opts) = (daemon.clone(), tx.clone(), opts.clone());
                let endpoint = task
                    .node_id
                    .as_ref()
                    .and_then(|n| control.view().node(n).map(|n| n.status.endpoint.clone()))
                    .unwrap_or_default();
                readers.spawn(async move {
                    let node = task.node_id.as_ref().map(|n| (n, endpoint.as_str()));
                    let Ok(mut lines) = daemon.task_logs(&task.id, node, lo).await else {
                        return;
                    };
                    while let Some(Ok(line)) = lines.next().await {
                        if tx.send(frame(&task, &line, &opts, tty)).await.is_err() {
                            return;
                        }
                    }
                });
            }
            if !opts.follow {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = tx.closed() => return,
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
        while readers.join_next().await.is_some() {}
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Response::builder()
        .header(http::header::CONTENT_TYPE, ct)
        .body(body)
        .map_err(|e| ApiError::new(http::StatusCode::INTERNAL_SERVER_ERROR, chain(&e)))
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_docker_forms() {
        assert_eq!(
            parse_since("1700000000"),
            Some(Timestamp(1_700_000_000_000_000_000))
        );
        assert_eq!(
            parse_since("1700000000.5"),
            Some(Timestamp(1_700_000_000_500_000_000))
        );
        assert_eq!(parse_since("yesterday"), None);
    }

    #[test]
    fn frames_carry_header_timestamp_and_details() {
        let task = Task {
            id: Id::from_raw("t1"),
            service_id: Id::from_raw("s1"),
            node_id: Some(Id::from_raw("n1")),
            ..Default::default()
        };
        let line = LogLine {
            time: Timestamp(0),
            stream: LogStreamKind::Stderr,
            line: Bytes::from_static(b"hi\n"),
        };
        let opts = Opts {
            follow: false,
            details: true,
            timestamps: true,
            tail: None,
            since: Timestamp::ZERO,
            stdout: true,
            stderr: true,
        };
        let f = frame(&task, &line, &opts, false);
        let text = b"1970-01-01T00:00:00.000000000Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 hi\n";
        assert_eq!(&f[..4], &[2, 0, 0, 0]);
        assert_eq!(
            u32::from_be_bytes([f[4], f[5], f[6], f[7]]) as usize,
            text.len()
        );
        assert_eq!(&f[8..], &text[..]);
        assert_eq!(&frame(&task, &line, &opts, true)[..], &text[..]);
    }
}
