//! Exec: `POST /containers/{id}/exec` makes an instance, `POST /exec/{id}/start` runs it on a
//! hijacked connection (see [`crate::hijack`]) or detached, `POST /exec/{id}/resize` sizes its
//! terminal, `GET /exec/{id}/json` shows it with its exit code. The exit code is final before
//! the hijacked stream closes: the docker CLI inspects the instance once, right after.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::StatusCode;
use serde::Deserialize;
use shoal_control::Engine;
use shoal_control::engine::{ExecConfig, ExecStreams};

use crate::AppState;
use crate::body::{MAX_BODY, parse_json};
use crate::error::{ApiError, ApiResult};
use crate::hijack;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// Spelled `Tty` by clients; keys are normalised to the swarm API's `TTY`.
    #[serde(rename = "TTY")]
    pub tty: bool,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub privileged: bool,
    pub detach_keys: Option<String>,
    pub console_size: Option<Vec<u16>>,
    /// Sent by docker-py; the path names the container.
    #[serde(rename = "Container")]
    pub container: Option<String>,
    pub detach: bool,
}

fn size_of(v: &Option<Vec<u16>>, field: &str) -> ApiResult<Option<(u16, u16)>> {
    match v.as_deref() {
        None | Some([]) | Some([0, 0]) => Ok(None),
        Some([h, w]) => Ok(Some((*h, *w))),
        Some(other) => Err(ApiError::invalid(
            field,
            format!("expected [height, width], got {other:?}"),
        )),
    }
}

/// The body of `POST /containers/{id}/exec` as the engine takes it; errors name the field.
pub fn exec_config(bytes: &[u8]) -> ApiResult<ExecConfig> {
    let body: CreateBody = parse_json(bytes)?;
    if body.privileged {
        return Err(ApiError::invalid(
            "Privileged",
            "privileged exec is not supported by shoal: the process gets the task's own privileges",
        ));
    }
    let cmd = body.cmd.unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    Ok(ExecConfig {
        cmd,
        env: body.env.unwrap_or_default(),
        user: body.user.unwrap_or_default(),
        workdir: body.working_dir.unwrap_or_default(),
        tty: body.tty,
        attach_stdin: body.attach_stdin,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        privileged: false,
        detach_keys: body.detach_keys.unwrap_or_default(),
        console_size: size_of(&body.console_size, "ConsoleSize")?,
    })
}

pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    let config = exec_config(&body)?;
    let exec = state
        .daemon
        .engine()
        .exec_create(&id, config)
        .await
        .map_err(engine_err)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({ "Id": exec })),
    )
        .into_response())
}

pub(crate) fn engine_err(e: shoal_control::EngineError) -> ApiError {
    ApiError::new(e.status(), e.to_string())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    #[serde(rename = "TTY")]
    tty: bool,
    console_size: Option<Vec<u16>>,
}

pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let upgrade = hijack::wants_upgrade(req.headers());
    let on_upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let bytes = axum::body::to_bytes(std::mem::take(req.body_mut()), MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
    let body: StartBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        parse_json(&bytes)?
    };
    let _ = (body.tty, size_of(&body.console_size, "ConsoleSize")?);
    let engine = state.daemon.engine();
    let info = engine.exec_inspect(&id).map_err(engine_err)?;
    let streams = engine.exec_start(&id).await.map_err(engine_err)?;
    let (out, err) = (info.config.attach_stdout, info.config.attach_stderr);
    if body.detach {
        tokio::spawn(async move {
            let mut output = streams.output;
            while output.next().await.is_some() {}
            let _ = engine.exec_wait(&id).await;
        });
        return Ok(StatusCode::OK.into_response());
    }
    let tty = streams.tty;
    match on_upgrade {
        Some(on) if upgrade => {
            tokio::spawn(pump(on, streams, engine, id, (out, err)));
            Ok(hijack::switching(tty))
        }
        // Not asked to upgrade: the output is the response body, with no input.
        _ => {
            let output = streams.output.filter_map(move |c| async move {
                match c {
                    Ok((kind, data)) if hijack::wanted(kind, (out, err)) => {
                        Some(Ok::<_, std::io::Error>(hijack::frame(kind, &data, tty)))
                    }
                    _ => None,
                }
            });
            let finish = futures::stream::once(async move {
                let _ = engine.exec_wait(&id).await;
            })
            .filter_map(|()| async { None });
            let mut r = Response::new(axum::body::Body::from_stream(output.chain(finish)));
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, hijack::content_type(tty));
            Ok(r)
        }
    }
}

/// Copies the connection's input to the exec and its output to the connection; once the
/// output ends and the exit code is known, closes the connection's write side.
async fn pump(
    on: hyper::upgrade::OnUpgrade,
    streams: ExecStreams,
    engine: Arc<dyn Engine>,
    id: String,
    attach: (bool, bool),
) {
    let finish = async move {
        let _ = engine.exec_wait(&id).await;
    };
    hijack::pump(on, streams, attach, finish).await;
}

/// A resize's `h` (rows) and `w` (columns) query parameters, for execs and containers alike.
pub(crate) fn terminal_size(q: &HashMap<String, String>) -> ApiResult<(u16, u16)> {
    let dim = |k: &str| -> ApiResult<u16> {
        let v = q.get(k).map(String::as_str).unwrap_or("");
        v.parse::<u16>().map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter {k}: expected a number of {}, got {v:?}",
                if k == "h" { "rows" } else { "columns" }
            ))
        })
    };
    Ok((dim("h")?, dim("w")?))
}

pub async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (h, w) = terminal_size(&q)?;
    state
        .daemon
        .engine()
        .exec_resize(&id, h, w)
        .await
        .map_err(engine_err)?;
    Ok(StatusCode::OK.into_response())
}

pub async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let i = state
        .daemon
        .engine()
        .exec_inspect(&id)
        .map_err(engine_err)?;
    let (entrypoint, arguments) = i
        .config
        .cmd
        .split_first()
        .map(|(e, a)| (e.clone(), a.to_vec()))
        .unwrap_or_default();
    Ok(axum::Json(serde_json::json!({
        "ID": i.id,
        "Running": i.running,
        "ExitCode": i.exit_code,
        "ProcessConfig": {
            "tty": i.config.tty,
            "entrypoint": entrypoint,
            "arguments": arguments,
            "privileged": i.config.privileged,
            "user": i.config.user,
        },
        "OpenStdin": i.config.attach_stdin,
        "OpenStderr": i.config.attach_stderr,
        "OpenStdout": i.config.attach_stdout,
        "CanRemove": false,
        "ContainerID": i.container_id,
        "DetachKeys": i.config.detach_keys,
        "Pid": i.pid,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_as_the_cli_and_docker_py_send_them() {
        let c: CreateBody = parse_json(
            br#"{"User":"","Privileged":false,"Tty":true,"AttachStdin":true,"AttachStderr":true,"AttachStdout":true,"Detach":false,"DetachKeys":"","Env":null,"WorkingDir":"","Cmd":["sh","-c","echo hi"],"ConsoleSize":[33,77]}"#,
        )
        .expect("CLI body");
        assert!(c.tty && c.attach_stdin && !c.detach);
        assert_eq!(
            c.cmd.as_deref(),
            Some(&["sh".to_string(), "-c".into(), "echo hi".into()][..])
        );
        assert_eq!(
            size_of(&c.console_size, "ConsoleSize").ok(),
            Some(Some((33, 77)))
        );
        let py: CreateBody = parse_json(
            br#"{"Container":"abc","Privileged":false,"Tty":false,"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Cmd":["true"],"Env":[]}"#,
        )
        .expect("docker-py body");
        assert!(!py.tty && py.attach_stdout);
        let s: StartBody = parse_json(br#"{"Detach":false,"Tty":true}"#).expect("start body");
        assert!(s.tty && !s.detach);
        assert!(size_of(&Some(vec![1, 2, 3]), "ConsoleSize").is_err());
    }
}
