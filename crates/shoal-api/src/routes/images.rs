//! The node's images, as Docker's `/images` endpoints serve them: what this node's runtime
//! holds (images are per node, as in Swarm), not the cluster's. `docker image ls|rm|load|pull`
//! work unchanged; inspect, history, tag, save and search are in `image_ops`, volumes in
//! `volumes`.

use shoal_types::error::chain;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use shoal_runtime::ImageInfo;
use shoal_runtime::RuntimeError;
use tokio::io::AsyncWriteExt;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub(crate) fn runtime_error(e: RuntimeError) -> ApiError {
    let status = match &e {
        RuntimeError::ImageNotFound(_)
        | RuntimeError::VolumeNotFound(_)
        | RuntimeError::NotFound(_) => StatusCode::NOT_FOUND,
        RuntimeError::VolumeInUse { .. } | RuntimeError::Conflict(_) => StatusCode::CONFLICT,
        RuntimeError::InvalidImage(_)
        | RuntimeError::Corrupt { .. }
        | RuntimeError::InvalidSpec { .. } => StatusCode::BAD_REQUEST,
        RuntimeError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, chain(&e))
}

fn image_json(i: &ImageInfo) -> Value {
    json!({
        "Id": i.id,
        "ParentId": "",
        "RepoTags": i.repo_tags,
        "RepoDigests": i.repo_digests,
        "Created": i.created.unix_nanos() / 1_000_000_000,
        "Size": i.size,
        "SharedSize": -1,
        "Labels": {},
        "Containers": -1,
    })
}

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let images = st.daemon.driver().images().await.map_err(runtime_error)?;
    Ok(Json(Value::Array(images.iter().map(image_json).collect())))
}

#[derive(Deserialize, Default)]
pub struct RemoveQuery {
    #[serde(default)]
    pub(crate) force: Option<String>,
}

pub(crate) fn truthy(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|v| v == "1" || v == "true")
}

pub async fn remove(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<Json<Value>> {
    let lines = st
        .daemon
        .driver()
        .remove_image(&name, truthy(&q.force))
        .await
        .map_err(runtime_error)?;
    // Docker's shape: one object per line, `{"Untagged": ...}` or `{"Deleted": ...}`.
    let out = lines
        .iter()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| json!({ k: v }))
        .collect();
    Ok(Json(Value::Array(out)))
}

/// A JSON-lines progress body as Docker streams it for loads and pulls.
fn progress(lines: Vec<Value>) -> Response {
    let body: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn stream_error(message: String) -> Value {
    json!({ "errorDetail": { "message": message }, "error": message })
}

static LOADS: AtomicU64 = AtomicU64::new(0);

/// `POST /images/load`: the archive is streamed to a file under the data dir (no size limit
/// beyond the disk), then loaded from there.
pub async fn load(State(st): State<AppState>, body: Body) -> ApiResult<Response> {
    let dir = st.daemon.data_dir().join("tmp");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", dir.display()),
        )
    })?;
    let path = dir.join(format!(
        "load-{}-{}.tar",
        std::process::id(),
        LOADS.fetch_add(1, Ordering::Relaxed)
    ));
    let result = async {
        let mut file = tokio::fs::File::create(&path).await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", path.display()),
            )
        })?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("reading the archive: {e}")))?;
            file.write_all(&chunk).await.map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {e}", path.display()),
                )
            })?;
        }
        file.flush().await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok::<_, ApiError>(st.daemon.driver().load_image(&path).await)
    }
    .await;
    let _ = tokio::fs::remove_file(&path).await;
    // Docker answers 200 and reports a bad archive in the stream; its CLI prints the message.
    Ok(match result? {
        Ok(refs) => progress(
            refs.iter()
                .map(|r| json!({ "stream": format!("Loaded image: {r}\n") }))
                .collect(),
        ),
        Err(e @ (RuntimeError::InvalidImage(_) | RuntimeError::Corrupt { .. })) => {
            return Err(runtime_error(e));
        }
        Err(e) => progress(vec![stream_error(chain(&e))]),
    })
}

#[derive(Deserialize, Default)]
pub struct PullQuery {
    #[serde(rename = "fromImage", default)]
    from_image: String,
    #[serde(default)]
    tag: String,
}

/// `POST /images/create?fromImage=NAME&tag=TAG`: a pull.
pub async fn pull(State(st): State<AppState>, Query(q): Query<PullQuery>) -> ApiResult<Response> {
    if q.from_image.is_empty() {
        return Err(ApiError::invalid(
            "fromImage",
            "an image to pull is required",
        ));
    }
    let reference = if q.tag.is_empty() {
        q.from_image.clone()
    } else if q.tag.starts_with("sha256:") {
        format!("{}@{}", q.from_image, q.tag)
    } else {
        format!("{}:{}", q.from_image, q.tag)
    };
    Ok(match st.daemon.driver().pull_image(&reference).await {
        Ok(info) => progress(vec![
            json!({ "status": format!("Pulling from {}", q.from_image) }),
            json!({ "status": format!("Digest: {}", info.repo_digests.first().map(|d| d.rsplit('@').next().unwrap_or(d)).unwrap_or(&info.id)) }),
            json!({ "status": format!("Status: Downloaded newer image for {reference}") }),
        ]),
        Err(e) => progress(vec![stream_error(chain(&e))]),
    })
}
