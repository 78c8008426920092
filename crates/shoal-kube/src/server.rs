//! The HTTP side: paths as the Kubernetes API server lays them out, answered from the cache
//! (reads, watches) and the control surface (writes).
//!
//! Concurrency: handlers share [`KubeState`]; the cache serialises its own syncs. A watch is a
//! streaming body that ends at its `timeoutSeconds`, when the daemon stops, or when it falls
//! too far behind (the client watches again, as informers do).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use shoal_control::{ControlSurface, NodeSurface};
use shoal_types::Clock;
use tokio::sync::watch;

use crate::cache::{Cache, Change};
use crate::registry::{self, ResourceInfo};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{KubeError, KubeResult};
use crate::{discovery, openapi, table, writes};

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct KubeState {
    pub daemon: Arc<dyn NodeSurface>,
    pub clock: Arc<dyn Clock>,
    pub shutdown: watch::Receiver<bool>,
    pub cache: Arc<Cache>,
}

pub fn router(state: KubeState) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

fn json_response(code: StatusCode, content_type: &str, v: &Value) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, content_type.to_string())],
        v.to_string(),
    )
        .into_response()
}

fn ok_json(v: &Value) -> Response {
    json_response(StatusCode::OK, "application/json", v)
}

/// What a resource path names.
#[derive(Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub resource: &'static ResourceInfo,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub subresource: Option<&'a str>,
}

/// Reads `/api/v1/...` or `/apis/{group}/{version}/...` into a [`Target`].
pub fn parse_resource_path(path: &str) -> Option<Target<'_>> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..]
            if registry::find(group, version, plural).is_some_and(|r| r.namespaced) =>
        {
            (Some(*ns), {
                let mut v = vec![*plural];
                v.extend_from_slice(more);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return None,
    };
    let resource = registry::find(group, version, plural)?;
    if name.is_some_and(str::is_empty) {
        return None;
    }
    Some(Target {
        resource,
        namespace,
        name,
        subresource: sub,
    })
}

/// The query parameters this server reads.
#[derive(Debug, Default)]
pub struct Params {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub watch: bool,
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub timeout: Option<Duration>,
    /// `fieldValidation`: `Strict` refuses unknown fields.
    pub field_validation: Option<String>,
}

fn params(query: Option<&str>) -> KubeResult<Params> {
    let mut p = Params::default();
    for (k, v) in form_pairs(query.unwrap_or("")) {
        match k.as_str() {
            "labelSelector" => {
                p.label_selector =
                    LabelSelector::parse(&v).map_err(|e| KubeError::bad_request(e.to_string()))?;
            }
            "fieldSelector" => {
                p.field_selector =
                    FieldSelector::parse(&v).map_err(|e| KubeError::bad_request(e.to_string()))?;
            }
            "watch" => p.watch = v == "true" || v == "1",
            "resourceVersion" => p.resource_version = Some(v),
            "allowWatchBookmarks" => p.bookmarks = v == "true",
            "fieldValidation" => p.field_validation = Some(v),
            "timeoutSeconds" => {
                let secs: u64 = v.parse().map_err(|_| {
                    KubeError::bad_request(format!("timeoutSeconds: invalid value {v:?}"))
                })?;
                p.timeout = Some(Duration::from_secs(secs));
            }
            _ => {}
        }
    }
    Ok(p)
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded.
pub fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(
    State(st): State<KubeState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
    body: Bytes,
) -> Response {
    let ws = ws.ok();
    match route(&st, &method, &uri, &headers, body, ws).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(
    st: &KubeState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    ws: Option<axum::extract::ws::WebSocketUpgrade>,
) -> KubeResult<Response> {
    let path = uri.path().trim_end_matches('/');
    let query = uri.query();
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let get = method == Method::GET;
    match path {
        "/version" if get => return Ok(ok_json(&discovery::version())),
        "/healthz" | "/livez" | "/readyz" if get => {
            return Ok((StatusCode::OK, "ok").into_response());
        }
        "/api" | "/apis" if get => {
            let core = path == "/api";
            return Ok(match discovery::wants_aggregated(accept) {
                Some(ct) => json_response(StatusCode::OK, ct, &discovery::aggregated(core)),
                None if core => ok_json(&discovery::legacy_core()),
                None => ok_json(&discovery::legacy_groups()),
            });
        }
        "/openapi/v3" if get => return Ok(ok_json(&openapi::index())),
        _ => {}
    }
    if get {
        if let Some(rest) = path.strip_prefix("/openapi/v3/") {
            let doc = match rest.split('/').collect::<Vec<_>>().as_slice() {
                ["api", v] => openapi::group_version_doc("", v),
                ["apis", g, v] => openapi::group_version_doc(g, v),
                _ => None,
            };
            return doc.map(|d| ok_json(&d)).ok_or_else(KubeError::no_route);
        }
        let discovered = match path.split('/').collect::<Vec<_>>().as_slice() {
            ["", "api", v] => discovery::resource_list("", v),
            ["", "apis", g] => discovery::legacy_group(g),
            ["", "apis", g, v] => discovery::resource_list(g, v),
            _ => None,
        };
        if let Some(d) = discovered {
            return Ok(ok_json(&d));
        }
    }
    let target = parse_resource_path(path).ok_or_else(KubeError::no_route)?;
    let p = params(query)?;
    let manager = manager(st).await?;
    match (method.clone(), target.name, target.subresource) {
        (Method::GET, None, None) if p.watch => watch(st, manager.as_ref(), &target, &p, accept),
        (Method::GET, None, None) => list(st, manager.as_ref(), &target, &p, accept),
        (Method::GET, Some(name), None) => {
            let obj = read(st, manager.as_ref(), &target, name)?;
            Ok(object_response(st, target.resource, &obj, accept))
        }
        (Method::GET | Method::POST, Some(name), Some("exec")) if target.resource.kind == "Pod" => {
            let pod = read(st, manager.as_ref(), &target, name)?;
            let q = crate::exec::exec_query(query)?;
            let container = pod["spec"]["containers"][0]["name"]
                .as_str()
                .unwrap_or_default();
            if let Some(c) = q.container.as_deref().filter(|c| *c != container) {
                return Err(KubeError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            let id = crate::objects::id_of_uid(pod["metadata"]["uid"].as_str().unwrap_or_default());
            let view = manager.view();
            let task = view
                .task(&id)
                .ok_or_else(|| KubeError::not_found(target.resource, name))?;
            if task.status.state != shoal_types::task::TaskState::Running {
                return Err(KubeError::bad_request(format!(
                    "unable to upgrade connection: container not found (\"{container}\")"
                )));
            }
            let here = st.daemon.swarm().await.map(|s| s.node_id);
            if task.node_id != here {
                return Err(KubeError::bad_request(format!(
                    "pod {name} runs on another node: exec there through that node's engine (docker -H) — exec across nodes through this API is not served yet"
                )));
            }
            let Some(ws) = ws else {
                return Err(KubeError::bad_request(
                    "Upgrade request required: kubectl exec speaks WebSocket (v5.channel.k8s.io)",
                ));
            };
            crate::exec::exec(st.daemon.engine(), &task.name(), q, ws).await
        }
        (Method::GET, Some(name), Some("log")) if target.resource.kind == "Pod" => {
            let pod = read(st, manager.as_ref(), &target, name)?;
            let q = crate::logs::log_query(query)?;
            crate::logs::pod_logs(
                st.daemon.clone(),
                manager.clone(),
                target.resource,
                &pod,
                q,
                st.clock.now(),
                st.shutdown.clone(),
            )
            .await
        }
        (Method::GET, Some(name), Some("scale")) => {
            let obj = read(st, manager.as_ref(), &target, name)?;
            Ok(ok_json(&writes::scale_of(&obj)))
        }
        (Method::PATCH | Method::PUT, Some(name), sub) => {
            let obj = read(st, manager.as_ref(), &target, name)?;
            let content_type = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let view = manager.view();
            let out = writes::modify(
                manager.as_ref(),
                view.as_ref(),
                &target,
                &obj,
                sub,
                method == Method::PUT,
                content_type,
                &body,
                p.field_validation.as_deref() == Some("Strict"),
            )
            .await?;
            if sub == Some("scale") {
                return Ok(ok_json(&out));
            }
            st.cache.sync(manager.view().as_ref());
            let fresh = st
                .cache
                .get(target.resource, target.namespace.unwrap_or(""), name)
                .map(|o| (*o).clone())
                .unwrap_or(out);
            Ok(ok_json(&fresh))
        }
        (Method::DELETE, Some(name), None) => {
            let obj = read(st, manager.as_ref(), &target, name)?;
            writes::delete(manager.as_ref(), &target, &obj).await?;
            Ok(ok_json(&obj))
        }
        (Method::POST, None, None) => {
            let Some(namespace) = target
                .namespace
                .or((!target.resource.namespaced).then_some(""))
            else {
                return Err(KubeError::method_not_allowed(format!(
                    "create a {} in a namespace: POST {}/namespaces/NAMESPACE/{}",
                    target.resource.kind,
                    target.resource.prefix(),
                    target.resource.plural
                )));
            };
            let content_type = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let obj = body_object(content_type, &body)?;
            let created = writes::create(
                manager.as_ref(),
                target.resource,
                namespace,
                obj,
                p.field_validation.as_deref() == Some("Strict"),
                st.clock.now().unix_nanos().div_euclid(1_000_000_000),
            )
            .await?;
            st.cache.sync(manager.view().as_ref());
            let name = created["metadata"]["name"].as_str().unwrap_or_default();
            let out = st
                .cache
                .get(target.resource, namespace, name)
                .map(|o| (*o).clone())
                .unwrap_or(created);
            Ok(json_response(StatusCode::CREATED, "application/json", &out))
        }
        _ => Err(KubeError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            target.resource.qualified()
        ))),
    }
}

/// A request body as a JSON object: JSON, or the protobuf kubectl's generators send.
fn body_object(content_type: &str, body: &[u8]) -> KubeResult<Value> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let v: Value = match media {
        "application/json" | "" => serde_json::from_slice(body).map_err(|e| {
            KubeError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?,
        crate::proto::MEDIA_TYPE => {
            crate::proto::decode(body).map_err(|e| KubeError::bad_request(e.to_string()))?
        }
        other => return Err(KubeError::unsupported_media_type(other)),
    };
    if !v.is_object() {
        return Err(KubeError::bad_request(
            "the request body is not a JSON object",
        ));
    }
    Ok(v)
}

async fn manager(st: &KubeState) -> KubeResult<Arc<dyn ControlSurface>> {
    st.daemon
        .swarm()
        .await
        .and_then(|s| s.manager)
        .ok_or_else(|| {
            KubeError::unavailable(
                "this node is not a manager: the Kubernetes API is served by the swarm's managers",
            )
        })
}

fn read(st: &KubeState, m: &dyn ControlSurface, t: &Target<'_>, name: &str) -> KubeResult<Value> {
    st.cache.sync(m.view().as_ref());
    st.cache
        .get(t.resource, t.namespace.unwrap_or(""), name)
        .map(|o| (*o).clone())
        .ok_or_else(|| KubeError::not_found(t.resource, name))
}

fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

fn object_response(st: &KubeState, r: &ResourceInfo, obj: &Value, accept: &str) -> Response {
    if wants_table(accept) {
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let t = table::table(r, std::slice::from_ref(obj), rv, st.clock.now());
        return json_response(StatusCode::OK, TABLE_TYPE, &t);
    }
    ok_json(obj)
}

const TABLE_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Field paths each kind can be selected by.
fn supported_fields(r: &ResourceInfo) -> &'static [&'static str] {
    match r.kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "status.phase",
            "status.podIP",
        ],
        "Node" => &["metadata.name", "spec.unschedulable"],
        "Event" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.name",
            "involvedObject.namespace",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.fieldPath",
            "reason",
            "type",
            "source",
            "reportingComponent",
        ],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

fn field_value(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for p in path.split('.') {
        cur = cur.get(p)?;
    }
    Some(match cur {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    })
}

fn labels_of(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn selected(obj: &Value, p: &Params) -> bool {
    p.label_selector.matches(&labels_of(obj)) && p.field_selector.matches(|f| field_value(obj, f))
}

fn list(
    st: &KubeState,
    m: &dyn ControlSurface,
    t: &Target<'_>,
    p: &Params,
    accept: &str,
) -> KubeResult<Response> {
    p.field_selector
        .check(supported_fields(t.resource))
        .map_err(|e| KubeError::bad_request(e.to_string()))?;
    st.cache.sync(m.view().as_ref());
    let (rv, items) = st.cache.list(t.resource, t.namespace);
    let items: Vec<Value> = items
        .iter()
        .filter(|o| selected(o, p))
        .map(|o| (**o).clone())
        .collect();
    if wants_table(accept) {
        let tbl = table::table(t.resource, &items, rv, st.clock.now());
        return Ok(json_response(StatusCode::OK, TABLE_TYPE, &tbl));
    }
    Ok(ok_json(&json!({
        "kind": format!("{}List", t.resource.kind),
        "apiVersion": t.resource.api_version(),
        "metadata": { "resourceVersion": rv.to_string() },
        "items": items,
    })))
}

/// One watch event's JSON line.
fn event_line(
    st: &KubeState,
    r: &ResourceInfo,
    typ: &str,
    obj: &Value,
    table: bool,
    first: &mut bool,
) -> Bytes {
    let object = if table {
        let mut t = table::table(r, std::slice::from_ref(obj), 0, st.clock.now());
        if !*first {
            t["columnDefinitions"] = json!([]);
        }
        *first = false;
        if let Some(m) = t.get_mut("metadata") {
            m["resourceVersion"] = obj["metadata"]["resourceVersion"].clone();
        }
        t
    } else {
        obj.clone()
    };
    let mut line = json!({ "type": typ, "object": object }).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// How a change shows to a watch with selectors: an object that stops matching is deleted for
/// it, one that starts matching is added.
fn seen_as(c: &Change, p: &Params, namespace: Option<&str>) -> Option<&'static str> {
    if namespace.is_some_and(|n| n != c.namespace) {
        return None;
    }
    let now = selected(&c.object, p);
    let before = c.before.as_ref().map(|b| selected(b, p));
    match (c.typ, before, now) {
        ("DELETED", _, true) => Some("DELETED"),
        ("MODIFIED", Some(true), false) => Some("DELETED"),
        ("MODIFIED", Some(false), true) => Some("ADDED"),
        ("MODIFIED", _, true) => Some("MODIFIED"),
        ("ADDED", _, true) => Some("ADDED"),
        _ => None,
    }
}

fn watch(
    st: &KubeState,
    m: &dyn ControlSurface,
    t: &Target<'_>,
    p: &Params,
    accept: &str,
) -> KubeResult<Response> {
    p.field_selector
        .check(supported_fields(t.resource))
        .map_err(|e| KubeError::bad_request(e.to_string()))?;
    st.cache.sync(m.view().as_ref());
    let from = match p.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            KubeError::bad_request(format!("resourceVersion: invalid value {v:?}"))
        })?),
    };
    let is_table = wants_table(accept);
    let mut first = true;
    let mut initial: Vec<Bytes> = Vec::new();
    let sub = match from {
        Some(v) => st
            .cache
            .subscribe(Some(v))
            .map_err(|(asked, oldest)| KubeError::expired(asked, oldest))?,
        None => {
            // No version: the objects as they are, then what changes.
            let (rv, items) = st.cache.list(t.resource, t.namespace);
            for o in items.iter().filter(|o| selected(o, p)) {
                initial.push(event_line(st, t.resource, "ADDED", o, is_table, &mut first));
            }
            st.cache
                .subscribe(Some(rv))
                .map_err(|(asked, oldest)| KubeError::expired(asked, oldest))?
        }
    };
    let resource = t.resource;
    let namespace = t.namespace.map(str::to_string);
    let p = Params {
        label_selector: p.label_selector.clone(),
        field_selector: p.field_selector.clone(),
        watch: true,
        resource_version: None,
        bookmarks: p.bookmarks,
        timeout: p.timeout,
        field_validation: None,
    };
    let st2 = st.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let mut shutdown = st.shutdown.clone();
    tokio::spawn(async move {
        let mut sub = sub;
        let mut first = first;
        for b in initial {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
        let mut last = sub.version;
        for c in std::mem::take(&mut sub.backlog) {
            last = last.max(c.rv);
            if c.resource.plural != resource.plural {
                continue;
            }
            if let Some(typ) = seen_as(&c, &p, namespace.as_deref()) {
                let line = event_line(&st2, resource, typ, &c.object, is_table, &mut first);
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
        }
        let deadline = p.timeout.map(|d| tokio::time::Instant::now() + d);
        let mut bookmark = tokio::time::interval(BOOKMARK_EVERY);
        bookmark.tick().await;
        loop {
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => futures::future::pending().await,
                }
            };
            tokio::select! {
                r = sub.rx.recv() => match r {
                    Ok(c) => {
                        last = last.max(c.rv);
                        if c.resource.plural != resource.plural {
                            continue;
                        }
                        if let Some(typ) = seen_as(&c, &p, namespace.as_deref()) {
                            let line = event_line(&st2, resource, typ, &c.object, is_table, &mut first);
                            if tx.send(Ok(line)).await.is_err() {
                                return;
                            }
                        }
                    }
                    // Too far behind, or the cache is gone: the client watches again.
                    Err(_) => return,
                },
                _ = bookmark.tick(), if p.bookmarks => {
                    last = last.max(st2.cache.version());
                    let obj = json!({
                        "kind": resource.kind,
                        "apiVersion": resource.api_version(),
                        "metadata": { "resourceVersion": last.to_string() },
                    });
                    let mut line = json!({ "type": "BOOKMARK", "object": obj }).to_string();
                    line.push('\n');
                    if tx.send(Ok(Bytes::from(line))).await.is_err() {
                        return;
                    }
                }
                _ = until_deadline => return,
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = tokio_stream_from(rx);
    let ct = if is_table {
        TABLE_TYPE
    } else {
        "application/json"
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, ct)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_kinds_namespaces_and_subresources() {
        let Some(t) = parse_resource_path("/apis/apps/v1/namespaces/shop/deployments/web/scale")
        else {
            panic!("a scale path");
        };
        assert_eq!(t.resource.kind, "Deployment");
        assert_eq!(t.namespace, Some("shop"));
        assert_eq!(t.name, Some("web"));
        assert_eq!(t.subresource, Some("scale"));
        let Some(t) = parse_resource_path("/api/v1/namespaces/shop") else {
            panic!("a namespace");
        };
        assert_eq!(t.resource.kind, "Namespace");
        assert_eq!(t.name, Some("shop"));
        let Some(t) = parse_resource_path("/api/v1/pods") else {
            panic!("all pods");
        };
        assert_eq!((t.resource.kind, t.namespace, t.name), ("Pod", None, None));
        assert!(parse_resource_path("/api/v1/widgets").is_none());
        assert!(parse_resource_path("/apis/apps/v1/namespaces/x/deployments/a/b/c").is_none());
    }

    #[test]
    fn queries_are_percent_decoded() {
        let pairs = form_pairs(
            "fieldSelector=metadata.name%3Dx&limit=500&labelSelector=app+in+%28a%2Cb%29",
        );
        assert_eq!(pairs[0], ("fieldSelector".into(), "metadata.name=x".into()));
        assert_eq!(pairs[2], ("labelSelector".into(), "app in (a,b)".into()));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
