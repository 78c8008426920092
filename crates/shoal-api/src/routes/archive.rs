//! `docker cp`: `/containers/{id}/archive`. `HEAD` tells what is at a path (in the
//! `X-Docker-Container-Path-Stat` header, base64 JSON), `GET` sends it as a tar with that header,
//! `PUT` extracts a tar into a directory. Works on created, running and exited containers.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderValue, StatusCode};
use shoal_runtime::{PathStat, RuntimeError};

use super::exec::engine_err;
use crate::AppState;
use crate::body::query_bool;
use crate::error::{ApiError, ApiResult};

const STAT_HEADER: &str = "x-docker-container-path-stat";

fn path_of(q: &HashMap<String, String>) -> ApiResult<String> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("query parameter path: a path is required"))
}

/// The stat header's value, as Docker encodes it.
pub fn stat_header(s: &PathStat) -> HeaderValue {
    let doc = serde_json::json!({
        "name": s.name,
        "size": s.size,
        "mode": s.mode,
        "mtime": shoal_types::clock::format_rfc3339(s.mtime),
        "linkTarget": s.link_target,
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(doc.to_string());
    HeaderValue::from_str(&b64).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let path = path_of(&q)?;
    let s = state
        .daemon
        .engine()
        .path_stat(&id, &path)
        .await
        .map_err(engine_err)?;
    let mut r = StatusCode::OK.into_response();
    r.headers_mut().insert(STAT_HEADER, stat_header(&s));
    Ok(r)
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let path = path_of(&q)?;
    let (s, tar) = state
        .daemon
        .engine()
        .archive_get(&id, &path)
        .await
        .map_err(engine_err)?;
    let body = tar.map(|c| c.map_err(|e| std::io::Error::other(e.to_string())));
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(STAT_HEADER, stat_header(&s));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(r)
}

pub async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult<StatusCode> {
    let path = path_of(&q)?;
    let no_overwrite = query_bool(&q, "noOverwriteDirNonDir")?;
    let _ = query_bool(&q, "copyUIDGID")?;
    let body = req
        .into_body()
        .into_data_stream()
        .map_err(|e| RuntimeError::InvalidSpec {
            field: "body",
            why: format!("reading the archive: {e}"),
        })
        .boxed();
    state
        .daemon
        .engine()
        .archive_put(&id, &path, body, no_overwrite)
        .await
        .map_err(engine_err)?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stat_header_is_base64_json_as_docker_sends_it() {
        let h = stat_header(&PathStat {
            name: "x.txt".into(),
            size: 9,
            mode: 0o644,
            mtime: shoal_types::Timestamp(0),
            link_target: String::new(),
        });
        let raw = base64::engine::general_purpose::STANDARD
            .decode(h.as_bytes())
            .expect("base64");
        let v: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(v["name"], "x.txt");
        assert_eq!(v["size"], 9);
        assert_eq!(v["mode"], 420);
        assert_eq!(v["linkTarget"], "");
        assert!(
            v["mtime"]
                .as_str()
                .is_some_and(|t| t.starts_with("1970-01-01T00:00:00"))
        );
    }
}
