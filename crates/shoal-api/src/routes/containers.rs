//! The node's containers as the engine API serves them: `GET /containers/json` with docker's
//! filters, inspect, logs, top, stats, wait, kill, stop, restart and remove. Every container is
//! one the node's engine ([`shoal_control::Engine`]) knows; the JSON is shaped as Docker's.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::StatusCode;
use serde_json::{Value, json};
use shoal_control::engine::{ContainerInfo, ContainerStatus, StatsSample, WaitCondition};
use shoal_runtime::LogOptions;
use shoal_types::Timestamp;
use shoal_types::clock::format_rfc3339;

use super::exec::engine_err;
use crate::AppState;
use crate::body::query_bool;
use crate::error::{ApiError, ApiResult};
use crate::filters::Filters;
use crate::hijack;

/// The filters `GET /containers/json` takes.
pub const FILTERS: &[&str] = &["id", "name", "label", "status"];

/// Docker's `units.HumanDuration`, as `docker ps` shows ages.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h) = (s / 60, s / 3600);
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 14 {
        format!("{} days", h / 24)
    } else if h < 24 * 90 {
        format!("{} weeks", h / 24 / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", h / 24 / 30)
    } else {
        format!("{} years", h / 24 / 365)
    }
}

/// `docker ps`' STATUS column.
pub fn status_text(c: &ContainerInfo, now: Timestamp) -> String {
    match c.state.status {
        ContainerStatus::Created => "Created".into(),
        ContainerStatus::Running => {
            let mut s = format!("Up {}", human_duration(now.since(c.state.started_at)));
            if let Some(h) = &c.state.health {
                let h = if h == "starting" {
                    "health: starting"
                } else {
                    h
                };
                s.push_str(&format!(" ({h})"));
            }
            s
        }
        ContainerStatus::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            human_duration(now.since(c.state.finished_at))
        ),
        ContainerStatus::Exited => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            human_duration(now.since(c.state.finished_at))
        ),
    }
}

/// Whether a `name` filter value matches: Docker matches a regular expression; shoal takes the
/// common forms: a substring, anchored with `^` and/or `$`.
fn name_matches(name: &str, pattern: &str) -> bool {
    let name = format!("/{name}");
    let (start, p) = match pattern.strip_prefix('^') {
        Some(p) => (true, p),
        None => (false, pattern),
    };
    let (end, p) = match p.strip_suffix('$') {
        Some(p) => (true, p),
        None => (false, p),
    };
    match (start, end) {
        (true, true) => name == p || name == format!("/{p}"),
        (true, false) => name.starts_with(p) || name.starts_with(&format!("/{p}")),
        (false, true) => name.ends_with(p),
        (false, false) => name.contains(p),
    }
}

fn label_matches(labels: &std::collections::BTreeMap<String, String>, f: &str) -> bool {
    match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(f),
    }
}

/// Whether `c` passes every filter: values of one filter are alternatives, except labels,
/// which must all match (what compose relies on).
pub fn matches(c: &ContainerInfo, f: &Filters) -> bool {
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
        let v = f.get(key);
        v.is_empty() || v.iter().any(|x| pred(x))
    };
    any("id", &|x| c.id.starts_with(x))
        && any("name", &|x| name_matches(&c.name, x))
        && any("status", &|x| x == c.state.status.as_str())
        && f.get("label").iter().all(|l| label_matches(&c.labels, l))
}

fn network_json(c: &ContainerInfo) -> Value {
    let mut nets = serde_json::Map::new();
    for n in &c.networks {
        let (ip, len) = n.addr.split_once('/').unwrap_or((&n.addr, "0"));
        nets.insert(
            n.name.clone(),
            json!({
                "IPAMConfig": null,
                "Links": null,
                "Aliases": n.aliases,
                "NetworkID": n.id.as_str(),
                "EndpointID": "",
                "Gateway": n.gateway,
                "IPAddress": ip,
                "IPPrefixLen": len.parse::<u32>().unwrap_or(0),
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": n.mac,
                "DriverOpts": null,
            }),
        );
    }
    Value::Object(nets)
}

fn network_mode(c: &ContainerInfo) -> String {
    if let Some(sa) = &c.standalone {
        return if sa.create.network_mode.is_empty() {
            "default".into()
        } else {
            sa.create.network_mode.clone()
        };
    }
    c.networks
        .first()
        .map_or_else(|| "default".to_string(), |n| n.name.clone())
}

/// `docker ps`' ports: the published ones with their node ports, then the exposed rest.
fn ports_summary(c: &ContainerInfo) -> Value {
    let Some(sa) = &c.standalone else {
        return json!([]);
    };
    let mut out = Vec::new();
    for p in &sa.published {
        out.push(json!({
            "IP": p.host_ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
            "PrivatePort": p.container_port,
            "PublicPort": p.host_port,
            "Type": p.protocol.as_str(),
        }));
    }
    for e in &sa.create.exposed_ports {
        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let port: u16 = port.parse().unwrap_or(0);
        if !sa
            .published
            .iter()
            .any(|p| p.container_port == port && p.protocol.as_str() == proto)
        {
            out.push(json!({ "PrivatePort": port, "Type": proto }));
        }
    }
    Value::Array(out)
}

/// Inspect's `NetworkSettings.Ports`: every exposed port, with its node bindings or null.
fn ports_inspect(c: &ContainerInfo) -> Value {
    let mut m = serde_json::Map::new();
    let Some(sa) = &c.standalone else {
        return Value::Object(m);
    };
    let running = c.state.status == ContainerStatus::Running;
    for e in &sa.create.exposed_ports {
        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let port: u16 = port.parse().unwrap_or(0);
        let bound: Vec<Value> = sa
            .published
            .iter()
            .filter(|p| running && p.container_port == port && p.protocol.as_str() == proto)
            .map(|p| {
                json!({
                    "HostIp": p.host_ip.map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string()),
                    "HostPort": p.host_port.to_string(),
                })
            })
            .collect();
        m.insert(
            e.clone(),
            if bound.is_empty() {
                Value::Null
            } else {
                Value::Array(bound)
            },
        );
    }
    Value::Object(m)
}

fn mounts_json(c: &ContainerInfo) -> Value {
    use shoal_types::container::MountKind;
    Value::Array(
        c.spec
            .mounts
            .iter()
            .map(|m| {
                let typ = match m.kind {
                    MountKind::Volume => "volume",
                    MountKind::Bind => "bind",
                    MountKind::Tmpfs => "tmpfs",
                };
                json!({
                    "Type": typ,
                    "Name": if m.kind == MountKind::Volume { m.source.as_str() } else { "" },
                    "Source": if m.kind == MountKind::Bind { m.source.as_str() } else { "" },
                    "Destination": m.target,
                    "Driver": if m.kind == MountKind::Volume { "local" } else { "" },
                    "Mode": if m.read_only { "ro" } else { "rw" },
                    "RW": !m.read_only,
                    "Propagation": "",
                })
            })
            .collect(),
    )
}

fn summary(c: &ContainerInfo, now: Timestamp) -> Value {
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.spec.image,
        "ImageID": "",
        "Command": c.spec.argv().join(" "),
        "Created": c.created.0.div_euclid(1_000_000_000),
        "Ports": ports_summary(c),
        "Labels": c.labels,
        "State": c.state.status.as_str(),
        "Status": status_text(c, now),
        "HostConfig": { "NetworkMode": network_mode(c) },
        "NetworkSettings": { "Networks": network_json(c) },
        "Mounts": mounts_json(c),
    })
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Vec<Value>>> {
    let filters = Filters::parse(q.get("filters"), FILTERS)?;
    let all = query_bool(&q, "all")?;
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => None,
        Some(n) => {
            let n: i64 = n.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter limit: expected a number, got {n:?}"
                ))
            })?;
            usize::try_from(n).ok().filter(|n| *n > 0)
        }
    };
    let now = state.clock.now();
    let mut cs = state
        .daemon
        .engine()
        .containers()
        .await
        .map_err(engine_err)?;
    // Newest first, as docker ps lists them.
    cs.reverse();
    let mut out: Vec<Value> = cs
        .iter()
        .filter(|c| {
            all || !filters.get("status").is_empty() || c.state.status == ContainerStatus::Running
        })
        .filter(|c| matches(c, &filters))
        .map(|c| summary(c, now))
        .collect();
    if let Some(n) = limit {
        out.truncate(n);
    }
    Ok(axum::Json(out))
}

fn time_or_zero(t: Timestamp) -> String {
    if t == Timestamp::ZERO {
        "0001-01-01T00:00:00Z".into()
    } else {
        format_rfc3339(t)
    }
}

/// Docker's inspect document of a container.
pub fn inspect_json(c: &ContainerInfo) -> Value {
    let mut doc = task_inspect_json(c);
    if let Some(sa) = &c.standalone {
        standalone_inspect(&mut doc, c, sa);
    }
    doc
}

/// What a standalone container shows beyond a task's: its config and host config as sent
/// (with Docker's effective values where shoal applied its own), its ports, restarts, mounts.
fn standalone_inspect(
    doc: &mut Value,
    c: &ContainerInfo,
    sa: &shoal_control::engine::StandaloneInfo,
) {
    let sent: Value = serde_json::from_str(&sa.create.as_sent).unwrap_or(Value::Null);
    let (name, max) = sa.create.restart.docker();
    let mut host = sent
        .get("HostConfig")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let (Some(h), Some(base)) = (host.as_object_mut(), doc["HostConfig"].as_object()) {
        for (k, v) in base {
            h.entry(k.clone()).or_insert(v.clone());
        }
        h.insert("NetworkMode".into(), json!(network_mode(c)));
        h.insert(
            "RestartPolicy".into(),
            json!({ "Name": name, "MaximumRetryCount": max }),
        );
        h.insert("AutoRemove".into(), json!(sa.create.auto_remove));
        let log_type = h
            .get("LogConfig")
            .and_then(|l| l.get("Type"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if log_type.is_empty() {
            h.insert(
                "LogConfig".into(),
                json!({ "Type": "json-file", "Config": {} }),
            );
        }
    }
    doc["HostConfig"] = host;
    let mut config = sent.clone();
    if let Some(cfg) = config.as_object_mut() {
        cfg.remove("HostConfig");
        cfg.remove("NetworkingConfig");
        if let Some(base) = doc["Config"].as_object() {
            for (k, v) in base {
                cfg.insert(k.clone(), v.clone());
            }
        }
        let exposed: serde_json::Map<String, Value> = sa
            .create
            .exposed_ports
            .iter()
            .map(|p| (p.clone(), json!({})))
            .collect();
        cfg.insert(
            "ExposedPorts".into(),
            if exposed.is_empty() {
                Value::Null
            } else {
                Value::Object(exposed)
            },
        );
        cfg.insert("StdinOnce".into(), json!(sa.create.stdin_once));
        for k in ["AttachStdin", "AttachStdout", "AttachStderr"] {
            cfg.entry(k.to_string()).or_insert(json!(false));
        }
        doc["Config"] = config;
    }
    doc["RestartCount"] = json!(sa.restart_count);
    doc["Mounts"] = mounts_json(c);
    doc["NetworkSettings"]["Ports"] = ports_inspect(c);
    // On Docker's default network the address is shown at the top level too (`docker inspect
    // -f '{{.NetworkSettings.IPAddress}}'`).
    if let Some(n) = c.networks.iter().find(|n| n.name == "bridge") {
        let (ip, len) = n.addr.split_once('/').unwrap_or((&n.addr, "0"));
        let ns = &mut doc["NetworkSettings"];
        ns["IPAddress"] = json!(ip);
        ns["IPPrefixLen"] = json!(len.parse::<u32>().unwrap_or(0));
        ns["Gateway"] = json!(n.gateway);
        ns["MacAddress"] = json!(n.mac);
    }
}

fn task_inspect_json(c: &ContainerInfo) -> Value {
    let argv = c.spec.argv();
    let (path, args) = argv
        .split_first()
        .map(|(p, a)| (p.clone(), a.to_vec()))
        .unwrap_or_default();
    let s = &c.state;
    let running = s.status == ContainerStatus::Running;
    let health = s
        .health
        .as_ref()
        .map(|h| json!({ "Status": h, "FailingStreak": 0, "Log": [] }));
    json!({
        "Id": c.id,
        "Created": format_rfc3339(c.created),
        "Path": path,
        "Args": args,
        "State": {
            "Status": s.status.as_str(),
            "Running": running || s.status == ContainerStatus::Restarting,
            "Paused": false,
            "Restarting": s.status == ContainerStatus::Restarting,
            "OOMKilled": s.oom_killed,
            "Dead": false,
            "Pid": if running { s.pid } else { 0 },
            "ExitCode": s.exit_code,
            "Error": s.error,
            "StartedAt": time_or_zero(s.started_at),
            "FinishedAt": time_or_zero(s.finished_at),
            "Health": health,
        },
        "Image": c.spec.image,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": format!("/{}", c.name),
        "RestartCount": 0,
        "Driver": c.runtime,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {
            "NetworkMode": network_mode(c),
            "RestartPolicy": { "Name": "no", "MaximumRetryCount": 0 },
            "AutoRemove": false,
            "LogConfig": { "Type": "json-file", "Config": {} },
            "PortBindings": {},
            "Binds": null,
            "Init": c.spec.init,
            "ReadonlyRootfs": c.spec.read_only,
            "CapAdd": c.spec.cap_add,
            "CapDrop": c.spec.cap_drop,
        },
        "Mounts": [],
        "Config": {
            "Hostname": c.hostname,
            "Domainname": "",
            "User": c.spec.user,
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "Tty": c.spec.tty,
            "OpenStdin": c.spec.open_stdin,
            "StdinOnce": false,
            "Env": c.spec.env,
            "Cmd": if c.spec.args.is_empty() { Value::Null } else { json!(c.spec.args) },
            "Image": c.spec.image,
            "Volumes": null,
            "WorkingDir": c.spec.dir,
            "Entrypoint": if c.spec.command.is_empty() { Value::Null } else { json!(c.spec.command) },
            "OnBuild": null,
            "Labels": c.labels,
            "StopSignal": if c.spec.stop_signal.is_empty() { "SIGTERM" } else { c.spec.stop_signal.as_str() },
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "Ports": {},
            "SandboxKey": "",
            "Networks": network_json(c),
        },
    })
}

pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let c = state
        .daemon
        .engine()
        .container(&id)
        .await
        .map_err(engine_err)?;
    Ok(axum::Json(inspect_json(&c)))
}

fn parse_time_param(q: &HashMap<String, String>, key: &str) -> ApiResult<Timestamp> {
    match q.get(key).map(String::as_str) {
        None | Some("") | Some("0") => Ok(Timestamp::ZERO),
        Some(s) => super::logs::parse_since(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter {key}: expected unix seconds like 1700000000.5, got {s:?}"
            ))
        }),
    }
}

pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => None,
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "query parameter tail: expected \"all\" or a number, got {n:?}"
                )));
            }
        },
    };
    let (stdout, stderr) = (query_bool(&q, "stdout")?, query_bool(&q, "stderr")?);
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "you must choose at least one stream: stdout=1 or stderr=1",
        ));
    }
    let timestamps = query_bool(&q, "timestamps")?;
    let since = parse_time_param(&q, "since")?;
    let until = parse_time_param(&q, "until")?;
    let opts = LogOptions {
        follow: query_bool(&q, "follow")?,
        tail,
        since,
        stdout,
        stderr,
    };
    let (c, lines) = state
        .daemon
        .engine()
        .logs(&id, opts)
        .await
        .map_err(engine_err)?;
    let tty = c.spec.tty;
    let mut shutdown = state.shutdown.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let frames = lines
        .take_until(Box::pin(stop))
        .take_while(move |l| {
            let keep = match l {
                Ok(l) => until == Timestamp::ZERO || l.time <= until,
                Err(_) => false,
            };
            async move { keep }
        })
        .filter_map(move |l| async move {
            let l = l.ok()?;
            let mut text = Vec::with_capacity(l.line.len() + 32);
            if timestamps {
                text.extend_from_slice(format_rfc3339(l.time).as_bytes());
                text.push(b' ');
            }
            text.extend_from_slice(&l.line);
            Some(Ok::<_, std::io::Error>(hijack::frame(l.stream, &text, tty)))
        });
    let mut r = Response::new(Body::from_stream(frames));
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, hijack::content_type(tty));
    Ok(r)
}

pub async fn top(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<axum::Json<Value>> {
    let args = q.get("ps_args").map(String::as_str).unwrap_or("");
    let t = state
        .daemon
        .engine()
        .top(&id, args)
        .await
        .map_err(engine_err)?;
    Ok(axum::Json(
        json!({ "Titles": t.titles, "Processes": t.processes }),
    ))
}

/// One `docker stats` document: `cur` with `pre` as its `precpu_stats` (zeroes when absent).
pub fn stats_json(cur: &StatsSample, pre: Option<&StatsSample>) -> Value {
    let cpu = |s: Option<&StatsSample>| match s {
        Some(s) => json!({
            "cpu_usage": {
                "total_usage": s.usage.cpu_total_ns,
                "usage_in_kernelmode": s.usage.cpu_system_ns,
                "usage_in_usermode": s.usage.cpu_user_ns,
            },
            "system_cpu_usage": s.system_cpu_ns,
            "online_cpus": s.online_cpus,
            "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
        }),
        None => json!({
            "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0 },
            "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
        }),
    };
    let u = &cur.usage;
    let mut networks = serde_json::Map::new();
    for n in &u.networks {
        networks.insert(
            n.interface.clone(),
            json!({
                "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets, "rx_errors": n.rx_errors,
                "rx_dropped": n.rx_dropped, "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped,
            }),
        );
    }
    let zero_time = "0001-01-01T00:00:00Z".to_string();
    json!({
        "read": format_rfc3339(u.read),
        "preread": pre.map_or(zero_time, |p| format_rfc3339(p.usage.read)),
        "pids_stats": { "current": u.pids },
        "blkio_stats": {
            "io_service_bytes_recursive": [
                { "major": 0, "minor": 0, "op": "read", "value": u.block_read },
                { "major": 0, "minor": 0, "op": "write", "value": u.block_write },
            ],
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(Some(cur)),
        "precpu_stats": cpu(pre),
        "memory_stats": {
            "usage": u.memory_usage,
            "stats": u.memory_stat,
            "limit": u.memory_limit,
        },
        "name": format!("/{}", cur.container.name),
        "id": cur.container.id,
        "networks": networks,
    })
}

/// How far apart two samples of a streamed (or a non-one-shot single) `stats` are.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

pub async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let stream = match q.get("stream").map(String::as_str) {
        None | Some("") => true,
        Some(_) => query_bool(&q, "stream")?,
    };
    let one_shot = query_bool(&q, "one-shot")?;
    let engine = state.daemon.engine();
    let first = engine.stats(&id).await.map_err(engine_err)?;
    if !stream {
        let doc = if one_shot {
            stats_json(&first, None)
        } else {
            tokio::time::sleep(STATS_INTERVAL).await;
            let second = engine.stats(&id).await.map_err(engine_err)?;
            stats_json(&second, Some(&first))
        };
        return Ok(axum::Json(doc).into_response());
    }
    let mut shutdown = state.shutdown.clone();
    let docs = futures::stream::unfold(
        (engine, id, None::<StatsSample>, Some(first)),
        |(engine, id, pre, next)| async move {
            let cur = match next {
                Some(c) => c,
                None => {
                    tokio::time::sleep(STATS_INTERVAL).await;
                    engine.stats(&id).await.ok()?
                }
            };
            let mut line = serde_json::to_vec(&stats_json(&cur, pre.as_ref())).ok()?;
            line.push(b'\n');
            Some((
                Ok::<_, std::io::Error>(bytes::Bytes::from(line)),
                (engine, id, Some(cur), None),
            ))
        },
    )
    .take_until(Box::pin(async move {
        let _ = shutdown.wait_for(|s| *s).await;
    }));
    let mut r = Response::new(Body::from_stream(docs));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

pub async fn wait(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let condition = match q.get("condition").map(String::as_str) {
        None | Some("") | Some("not-running") => WaitCondition::NotRunning,
        Some("next-exit") => WaitCondition::NextExit,
        Some("removed") => WaitCondition::Removed,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: {other:?} (expected not-running, next-exit or removed)"
            )));
        }
    };
    let engine = state.daemon.engine();
    // Unknown containers fail now, with a status; the wait itself answers in the body.
    engine.container(&id).await.map_err(engine_err)?;
    // The headers go at once (clients wait before they start the container); the body when
    // the condition is met.
    let body = futures::stream::once(async move {
        let doc = match engine.wait(&id, condition).await {
            Ok(code) => json!({ "StatusCode": code, "Error": null }),
            Err(e) => json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } }),
        };
        let mut line = serde_json::to_vec(&doc).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(line))
    });
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// A signal by name (`SIGKILL`, `KILL`) or number.
pub fn parse_signal(s: &str) -> ApiResult<i32> {
    if let Ok(n) = s.parse::<i32>()
        && (1..=64).contains(&n)
    {
        return Ok(n);
    }
    shoal_runtime::parse_stop_signal(s)
        .map_err(|_| ApiError::bad_request(format!("Invalid signal: {s}")))
}

pub async fn kill(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let signal = match q.get("signal").map(String::as_str) {
        None | Some("") => 9,
        Some(s) => parse_signal(s)?,
    };
    state
        .daemon
        .engine()
        .kill(&id, signal)
        .await
        .map_err(engine_err)?;
    Ok(StatusCode::NO_CONTENT)
}

fn timeout_of(q: &HashMap<String, String>) -> ApiResult<Option<Duration>> {
    match q.get("t").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(t) => {
            let n: i64 = t.parse().map_err(|_| {
                ApiError::bad_request(format!("query parameter t: expected seconds, got {t:?}"))
            })?;
            // Docker: -1 waits for ever; shoal caps it at a day.
            Ok(Some(Duration::from_secs(
                u64::try_from(n).unwrap_or(86_400),
            )))
        }
    }
}

pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let timeout = timeout_of(&q)?;
    let engine = state.daemon.engine();
    let c = engine.container(&id).await.map_err(engine_err)?;
    if !matches!(
        c.state.status,
        ContainerStatus::Running | ContainerStatus::Restarting
    ) {
        return Ok(StatusCode::NOT_MODIFIED);
    }
    engine.stop(&id, timeout).await.map_err(engine_err)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn restart(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let timeout = timeout_of(&q)?;
    state
        .daemon
        .engine()
        .restart(&id, timeout)
        .await
        .map_err(engine_err)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let force = query_bool(&q, "force")?;
    let _ = (query_bool(&q, "v")?, query_bool(&q, "link")?);
    state
        .daemon
        .engine()
        .remove(&id, force)
        .await
        .map_err(engine_err)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_as_docker_words_them() {
        let d = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(d(15)), "15 seconds");
        assert_eq!(human_duration(d(70)), "About a minute");
        assert_eq!(human_duration(d(600)), "10 minutes");
        assert_eq!(human_duration(d(3700)), "About an hour");
        assert_eq!(human_duration(d(5 * 3600)), "5 hours");
        assert_eq!(human_duration(d(3 * 86_400)), "3 days");
    }

    #[test]
    fn name_filters_take_substrings_and_anchors() {
        assert!(name_matches("web.1.abc", "web"));
        assert!(name_matches("web.1.abc", "^web"));
        assert!(name_matches("web.1.abc", "^/web"));
        assert!(!name_matches("myweb.1.abc", "^web"));
        assert!(name_matches("web.1.abc", "abc$"));
        assert!(name_matches("web", "^web$"));
        assert!(!name_matches("web2", "^web$"));
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("9").ok(), Some(9));
        assert_eq!(parse_signal("SIGUSR1").ok(), Some(10));
        assert_eq!(parse_signal("TERM").ok(), Some(15));
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
