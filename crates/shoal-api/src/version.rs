//! API version prefixes and the headers every response carries.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Uri};

use crate::error::ApiError;

pub const MIN_API_VERSION: (u32, u32) = (1, 41);
pub const MAX_API_VERSION: (u32, u32) = (1, 50);

/// The API version a request speaks (its `/v1.NN` prefix; the newest served without one, as
/// Docker does), for the handlers whose answer changed between versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion(pub (u32, u32));

fn parse_version(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Strips `/v1.NN` (checking it is served), records it as the request's [`ApiVersion`], and
/// adds Docker's response headers.
pub async fn route_version(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(ApiVersion(MAX_API_VERSION));
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/v")
        && let Some((ver, tail)) = rest.split_once('/').or(Some((rest, "")))
        && ver.starts_with(|c: char| c.is_ascii_digit())
    {
        let Some(v) = parse_version(ver) else {
            return with_headers(
                ApiError::bad_request(format!("invalid API version {ver:?}")).into_response(),
            );
        };
        if v > MAX_API_VERSION {
            return with_headers(
                ApiError::bad_request(format!(
                    "client version {ver} is too new. Maximum supported API version is {}.{}",
                    MAX_API_VERSION.0, MAX_API_VERSION.1
                ))
                .into_response(),
            );
        }
        if v < MIN_API_VERSION {
            return with_headers(
                ApiError::bad_request(format!(
                    "client version {ver} is too old. Minimum supported API version is {}.{}, please upgrade your client to a newer version",
                    MIN_API_VERSION.0, MIN_API_VERSION.1
                ))
                .into_response(),
            );
        }
        let new_path = format!("/{tail}");
        let pq = match req.uri().query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        let mut parts = req.uri().clone().into_parts();
        match pq.parse() {
            Ok(p) => parts.path_and_query = Some(p),
            Err(_) => {
                return with_headers(ApiError::bad_request("invalid request path").into_response());
            }
        }
        req.extensions_mut().insert(ApiVersion(v));
        match Uri::from_parts(parts) {
            Ok(u) => *req.uri_mut() = u,
            Err(_) => {
                return with_headers(ApiError::bad_request("invalid request path").into_response());
            }
        }
    }
    with_headers(next.run(req).await)
}

fn with_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static("1.50"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(
        http::header::SERVER,
        HeaderValue::from_static(concat!("shoal/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}
