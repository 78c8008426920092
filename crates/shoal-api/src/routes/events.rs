//! `GET /events`: the node's events (its containers and execs, and on a manager the cluster's
//! services, tasks, nodes, networks, secrets and configs) as a stream of JSON lines, shaped as
//! Docker's. `since` replays the events kept since then; `until` ends the stream at that time
//! (at once when it is past). Filters are docker's: `type`, `event`, `container`, `image`,
//! `label`, `scope`, and one per object type (`service`, `node`, `network`, `secret`,
//! `config`, `task`) matching an ID prefix or a name.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};
use shoal_control::engine::EngineEvent;
use shoal_types::Timestamp;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::filters::Filters;

pub const FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "scope",
    "secret",
    "service",
    "task",
    "type",
    "volume",
];

/// Docker's event document.
pub fn event_json(e: &EngineEvent) -> Value {
    let nanos = e.time.0;
    let mut v = json!({
        "Type": e.typ,
        "Action": e.action,
        "Actor": { "ID": e.id, "Attributes": e.attributes },
        "scope": e.scope,
        "time": nanos.div_euclid(1_000_000_000),
        "timeNano": nanos,
    });
    if e.typ == "container" {
        v["status"] = json!(e.action);
        v["id"] = json!(e.id);
        v["from"] = json!(e.attributes.get("image").cloned().unwrap_or_default());
    }
    v
}

/// Whether `e` passes `f`: values of one filter are alternatives; every filter must pass.
pub fn matches(e: &EngineEvent, f: &Filters) -> bool {
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
        let v = f.get(key);
        v.is_empty() || v.iter().any(|x| pred(x))
    };
    let names = |typ: &'static str| {
        move |x: &str| {
            e.typ == typ
                && (e.id.starts_with(x) || e.attributes.get("name").is_some_and(|n| n == x))
        }
    };
    let action = e.action.split(':').next().unwrap_or(&e.action);
    any("type", &|x| x == e.typ)
        && any("event", &|x| x == e.action || x == action)
        && any("scope", &|x| x == e.scope)
        && any("image", &|x| {
            e.attributes.get("image").is_some_and(|i| i == x)
        })
        && any("container", &names("container"))
        && any("service", &|x| {
            names("service")(x)
                || (e.typ == "task" && e.attributes.get("service").is_some_and(|s| s == x))
        })
        && any("task", &names("task"))
        && any("node", &names("node"))
        && any("network", &names("network"))
        && any("secret", &names("secret"))
        && any("config", &names("config"))
        && any("volume", &names("volume"))
        && f.get("label").iter().all(|l| match l.split_once('=') {
            Some((k, v)) => e.attributes.get(k).is_some_and(|have| have == v),
            None => e.attributes.contains_key(l.as_str()),
        })
}

/// `since` and `until` as Docker takes them: unix seconds (with a fraction), or RFC 3339.
fn time_param(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<Timestamp>> {
    match q.get(key).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) => super::logs::parse_since(s)
            .or_else(|| shoal_types::clock::parse_rfc3339(s))
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter {key}: expected unix seconds like 1700000000.5 or an RFC 3339 time, got {s:?}"
                ))
            }),
    }
}

pub async fn events(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filters = Filters::parse(q.get("filters"), FILTERS)?;
    let since = time_param(&q, "since")?;
    let until = time_param(&q, "until")?;
    let now = state.clock.now();
    let (kept, rx) = state.daemon.engine().events();
    let in_window = move |e: &EngineEvent| {
        since.is_some_and(|s| e.time >= s) && until.is_none_or(|u| e.time <= u)
    };
    let f = filters.clone();
    let past: Vec<Value> = kept
        .iter()
        .filter(|e| in_window(e) && matches(e, &f))
        .map(event_json)
        .collect();
    let live = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Some((e, rx)),
                // A slow reader misses what it could not keep up with, as with Docker.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .filter(move |e| {
        let keep = until.is_none_or(|u| e.time <= u) && matches(e, &filters);
        async move { keep }
    })
    .map(|e| event_json(&e));
    // The stream ends at `until` (at once when it is past) or when the daemon stops.
    let wait =
        until.map(|u| Duration::from_nanos(u64::try_from(u.0.saturating_sub(now.0)).unwrap_or(0)));
    let mut shutdown = state.shutdown.clone();
    let stop = async move {
        match wait {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = shutdown.wait_for(|s| *s) => {}
                }
            }
            None => {
                let _ = shutdown.wait_for(|s| *s).await;
            }
        }
    };
    let lines = futures::stream::iter(past)
        .chain(live.take_until(Box::pin(stop)))
        .map(|v| {
            let mut line = serde_json::to_vec(&v).unwrap_or_default();
            line.push(b'\n');
            Ok::<_, std::io::Error>(bytes::Bytes::from(line))
        });
    let mut r = Response::new(Body::from_stream(lines));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(typ: &str, action: &str, name: &str) -> EngineEvent {
        EngineEvent {
            typ: typ.into(),
            action: action.into(),
            id: "abcdef".into(),
            attributes: [
                ("name".to_string(), name.to_string()),
                ("image".to_string(), "busybox".to_string()),
                ("app".to_string(), "x".to_string()),
            ]
            .into(),
            scope: "local".into(),
            time: Timestamp(1_700_000_000_500_000_000),
        }
    }

    fn f(raw: &str) -> Filters {
        Filters::parse(Some(&raw.to_string()), FILTERS).expect("filters")
    }

    #[test]
    fn docker_filters_select_events() {
        let start = ev("container", "start", "web.1.x");
        assert!(matches(
            &start,
            &f(r#"{"type":{"container":true},"event":{"start":true}}"#)
        ));
        assert!(!matches(&start, &f(r#"{"event":["die"]}"#)));
        assert!(matches(&start, &f(r#"{"container":["web.1.x"]}"#)));
        assert!(matches(&start, &f(r#"{"container":["abc"]}"#)));
        assert!(matches(
            &start,
            &f(r#"{"label":["app=x"],"image":["busybox"]}"#)
        ));
        assert!(!matches(&start, &f(r#"{"label":["app=y"]}"#)));
        let exec = ev("container", "exec_start: sh -c true", "web.1.x");
        assert!(matches(&exec, &f(r#"{"event":["exec_start"]}"#)));
        let svc = ev("service", "update", "web");
        assert!(matches(&svc, &f(r#"{"service":["web"]}"#)));
        assert!(!matches(&svc, &f(r#"{"type":["container"]}"#)));
    }

    #[test]
    fn documents_as_docker_shapes_them() {
        let v = event_json(&ev("container", "die", "c"));
        assert_eq!(v["status"], "die");
        assert_eq!(v["from"], "busybox");
        assert_eq!(v["time"], 1_700_000_000);
        assert_eq!(v["Actor"]["Attributes"]["name"], "c");
        let n = event_json(&ev("network", "create", "n"));
        assert!(n.get("status").is_none() && n.get("from").is_none());
    }
}
