//! `docker image inspect`, `docker history`, `docker tag`, `docker save` and `docker search`
//! against the node's images. Image names hold slashes (`host:5000/team/app:1`), so one wildcard
//! route takes `/images/{*rest}` and the last segment of the path says which call it is.
//!
//! A save is written by the runtime to a file under the data dir, then streamed from it: its
//! errors (a missing image) come back as Docker's statuses before any byte of the archive, and
//! the file is unlinked as soon as it is open, so nothing is left when a client goes away.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::images::runtime_error;
use crate::convert::image::{check_image_name, history_json, inspect_json, save_names, tag_target};
use crate::error::{ApiError, ApiResult};
use crate::{ApiVersion, AppState};

/// How much of a saved archive is read at once while it streams to the client.
const SAVE_CHUNK: usize = 1 << 20;

static SAVES: AtomicU64 = AtomicU64::new(0);

fn page_not_found() -> ApiError {
    ApiError::not_found("page not found")
}

/// `GET /images/{name}/json`, `/images/{name}/history`, `/images/{name}/get`.
pub async fn by_name(
    State(st): State<AppState>,
    version: Option<axum::Extension<ApiVersion>>,
    Path(rest): Path<String>,
) -> ApiResult<Response> {
    let version = version.map_or(crate::MAX_API_VERSION, |v| v.0.0);
    let Some((name, call)) = rest.rsplit_once('/') else {
        return Err(page_not_found());
    };
    match call {
        "json" => {
            check_image_name(name)?;
            let d = st
                .daemon
                .driver()
                .inspect_image(name)
                .await
                .map_err(runtime_error)?;
            Ok(Json(inspect_json(&d, version)).into_response())
        }
        "history" => {
            check_image_name(name)?;
            let steps = st
                .daemon
                .driver()
                .image_history(name)
                .await
                .map_err(runtime_error)?;
            Ok(Json(history_json(&steps)).into_response())
        }
        "get" => {
            check_image_name(name)?;
            save(&st, &[name.to_string()]).await
        }
        _ => Err(page_not_found()),
    }
}

#[derive(Deserialize, Default)]
pub struct TagQuery {
    #[serde(default)]
    repo: String,
    #[serde(default)]
    tag: String,
}

/// `POST /images/{name}/tag?repo=R&tag=T`: 201, no body.
pub async fn by_name_post(
    State(st): State<AppState>,
    Path(rest): Path<String>,
    Query(q): Query<TagQuery>,
) -> ApiResult<StatusCode> {
    let Some(name) = rest.strip_suffix("/tag") else {
        return Err(page_not_found());
    };
    check_image_name(name)?;
    let target = tag_target(&q.repo, &q.tag)?;
    st.daemon
        .driver()
        .tag_image(name, &target)
        .await
        .map_err(runtime_error)?;
    Ok(StatusCode::CREATED)
}

/// `GET /images/get?names=A&names=B`.
pub async fn save_many(
    State(st): State<AppState>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let names = save_names(&q)?;
    save(&st, &names).await
}

/// `GET /images/search`: refused. Docker answers an operation its daemon does not implement
/// with 501 Not Implemented (its `errdefs.NotImplemented`), which the CLI prints as is.
pub async fn search() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "image search is not supported: shoal searches no registry; look the image up in your \
         registry's own interface, then pull it by name",
    )
}

/// `POST /build` (`docker build`, `docker-compose build`): refused, saying what to do instead.
/// The build context is read to its end and dropped first: a client still sending it when
/// the answer comes sees a broken pipe instead of the message.
pub async fn build(req: axum::extract::Request) -> ApiError {
    use futures::StreamExt;
    let mut body = req.into_body().into_data_stream();
    while let Some(Ok(_)) = body.next().await {}
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "shoal does not build images yet: build the image with `docker build` on a Docker \
         Engine, then load it into this node with `docker save IMAGE | shoal image load`",
    )
}

async fn save(st: &AppState, names: &[String]) -> ApiResult<Response> {
    let internal = |what: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, what);
    let dir = st.daemon.data_dir().join("tmp");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| internal(format!("{}: {e}", dir.display())))?;
    let path = dir.join(format!(
        "save-{}-{}.tar",
        std::process::id(),
        SAVES.fetch_add(1, Ordering::Relaxed)
    ));
    let saved = st.daemon.driver().save_images(names, &path).await;
    let opened = match saved {
        Ok(()) => tokio::fs::File::open(&path).await,
        Err(e) => {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(runtime_error(e));
        }
    };
    // Open files outlive their name: the archive goes with the response, whatever happens.
    let _ = tokio::fs::remove_file(&path).await;
    let file = opened.map_err(|e| internal(format!("{}: {e}", path.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| internal(format!("{}: {e}", path.display())))?
        .len();
    let body = futures::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; SAVE_CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok((
        StatusCode::OK,
        [
            (http::header::CONTENT_TYPE, "application/x-tar".to_string()),
            (http::header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
