//! Standalone containers as the engine API makes and drives them: `POST /containers/create`,
//! `start`, `attach` (hijacked, as exec's start), `resize`, `rename`. What a task's container
//! shares with them (inspect, logs, stop, rm...) is in [`super::containers`].

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use super::exec::engine_err;
use crate::AppState;
use crate::body::{parse_json, query_bool};
use crate::convert::container_create::{CreateBody, create_in};
use crate::error::{ApiError, ApiResult};
use crate::hijack;

/// The body of `POST /containers/create` as the engine takes it; errors name the field.
pub fn container_create(body: &[u8]) -> ApiResult<shoal_control::engine::ContainerCreate> {
    let parsed: CreateBody = parse_json(body)?;
    create_in(parsed, String::from_utf8_lossy(body).into_owned())
}

pub async fn create(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    body: bytes::Bytes,
) -> ApiResult<Response> {
    let create = container_create(&body)?;
    let name = q.get("name").map(String::as_str).filter(|n| !n.is_empty());
    let (id, warnings) = state
        .daemon
        .engine()
        .create(name, create)
        .await
        .map_err(engine_err)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "Id": id, "Warnings": warnings })),
    )
        .into_response())
}

pub async fn start(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let started = state.daemon.engine().start(&id).await.map_err(engine_err)?;
    Ok(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

pub async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("query parameter name: a new name is required"))?;
    state
        .daemon
        .engine()
        .rename(&id, name)
        .await
        .map_err(engine_err)?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let (h, w) = super::exec::terminal_size(&q)?;
    state
        .daemon
        .engine()
        .resize(&id, h, w)
        .await
        .map_err(engine_err)?;
    Ok(StatusCode::OK)
}

/// `POST /containers/{id}/attach`: the container's streams on a hijacked connection (or, not
/// upgraded, its output as the response body), from now on; with `logs`, what it wrote
/// before first.
pub async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    mut req: Request,
) -> ApiResult<Response> {
    let upgrade = hijack::wants_upgrade(req.headers());
    let on_upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let stdin = query_bool(&q, "stdin")?;
    let wanted = (query_bool(&q, "stdout")?, query_bool(&q, "stderr")?);
    let _ = (query_bool(&q, "stream")?, query_bool(&q, "logs")?);
    let streams = state
        .daemon
        .engine()
        .attach(&id, stdin)
        .await
        .map_err(engine_err)?;
    let tty = streams.tty;
    match on_upgrade {
        Some(on) if upgrade => {
            tokio::spawn(hijack::pump(on, streams, wanted, async {}));
            Ok(hijack::switching(tty))
        }
        _ => {
            use futures::StreamExt;
            let output = streams.output.filter_map(move |c| async move {
                match c {
                    Ok((kind, data)) if hijack::wanted(kind, wanted) => {
                        Some(Ok::<_, std::io::Error>(hijack::frame(kind, &data, tty)))
                    }
                    _ => None,
                }
            });
            let mut r = Response::new(axum::body::Body::from_stream(output));
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, hijack::content_type(tty));
            Ok(r)
        }
    }
}
