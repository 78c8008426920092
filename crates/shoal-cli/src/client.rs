//! The Docker Engine API client: version negotiation, versioned paths, JSON in and out, and the
//! daemon's `{"message": ...}` errors.
//!
//! Concurrency: a [`Client`] is shared by reference between concurrent requests (e.g. log streaming
//! while task names are resolved); the negotiated version is computed once behind a `OnceCell`.

use std::fmt;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::error::{CliError, Result};
use crate::transport::Transport;

/// An Engine API version such as 1.41.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl ApiVersion {
    /// The newest version this client speaks (docker 28.2's).
    pub const MAX: ApiVersion = ApiVersion {
        major: 1,
        minor: 50,
    };
    /// What docker assumes when `/_ping` carries no `Api-Version` header.
    pub const FALLBACK: ApiVersion = ApiVersion {
        major: 1,
        minor: 24,
    };

    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.trim().split_once('.')?;
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }

    /// The version to use against a server that advertises `server` (None: no header).
    pub fn negotiate(server: Option<&str>) -> ApiVersion {
        match server.and_then(ApiVersion::parse) {
            Some(v) => v.min(ApiVersion::MAX),
            None => ApiVersion::FALLBACK,
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What `/_ping` told us about the server.
#[derive(Debug, Clone)]
pub struct PingInfo {
    pub version: ApiVersion,
    /// `Api-Version` as sent, if any.
    pub server_version: Option<String>,
    pub os_type: Option<String>,
}

/// A reusable client of one daemon.
pub struct Client {
    transport: Transport,
    ping: OnceCell<PingInfo>,
    user_agent: String,
}

/// Query parameters, in the order given; values are escaped when the URI is built.
pub type Query<'a> = [(&'a str, String)];

impl Client {
    /// Builds a client for `host` (`unix:///path`, `tcp://host:port`). Nothing is dialed yet.
    pub fn new(host: &str) -> Result<Client> {
        Client::with_tls(host, None)
    }

    /// [`Client::new`], speaking TLS to a `tcp://` host when `tls` is given.
    pub fn with_tls(host: &str, tls: Option<&crate::tls::TlsSettings>) -> Result<Client> {
        Ok(Client {
            transport: Transport::with_tls(host, tls)?,
            ping: OnceCell::new(),
            user_agent: format!(
                "shoal-cli/{} ({})",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS
            ),
        })
    }

    /// Negotiates the API version on first use, like docker: `HEAD /_ping`, falling back to
    /// `GET /_ping` unless the answer was 200 or 500.
    pub async fn ping(&self) -> Result<&PingInfo> {
        self.ping
            .get_or_try_init(|| async {
                let mut resp = self.raw(Method::HEAD, "/_ping".to_string(), None).await?;
                if resp.0 != StatusCode::OK && resp.0 != StatusCode::INTERNAL_SERVER_ERROR {
                    resp = self.raw(Method::GET, "/_ping".to_string(), None).await?;
                }
                let header = |name: &str| {
                    resp.1
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let server_version = header("api-version");
                Ok(PingInfo {
                    version: ApiVersion::negotiate(server_version.as_deref()),
                    server_version,
                    os_type: header("ostype"),
                })
            })
            .await
    }

    /// The negotiated API version.
    pub async fn version(&self) -> Result<ApiVersion> {
        Ok(self.ping().await?.version)
    }

    /// `GET` and decode JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &Query<'_>) -> Result<T> {
        let body = self.call(Method::GET, path, query, None).await?;
        decode(path, &body)
    }

    /// `GET` and return the body as sent (for `inspect`, which shows fields our models lack).
    pub async fn get_raw(&self, path: &str, query: &Query<'_>) -> Result<Bytes> {
        self.call(Method::GET, path, query, None).await
    }

    /// `POST` a JSON body and decode a JSON answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query<'_>,
        body: &B,
    ) -> Result<T> {
        let bytes = encode(body)?;
        let answer = self.call(Method::POST, path, query, Some(bytes)).await?;
        decode(path, &answer)
    }

    /// `POST` (optionally with a JSON body) when the answer carries nothing we need.
    pub async fn post_no_answer<B: Serialize>(
        &self,
        path: &str,
        query: &Query<'_>,
        body: Option<&B>,
    ) -> Result<()> {
        let bytes = body.map(encode).transpose()?;
        self.call(Method::POST, path, query, bytes).await.map(drop)
    }

    /// `POST` a body that is not JSON (an image archive) and return the answer as sent.
    pub async fn post_raw(
        &self,
        path: &str,
        query: &Query<'_>,
        body: Bytes,
        content_type: &str,
    ) -> Result<Bytes> {
        let uri = self.versioned(path, query).await?;
        let (mut sender, _) = self.transport.checkout().await?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::HOST, self.transport.endpoint().host_header())
            .header(header::USER_AGENT, self.user_agent.as_str())
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?
            .to_bytes();
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(daemon_error(status, &bytes))
        }
    }

    /// `POST` a JSON body asking to take the connection over (`Upgrade: tcp`); the connection
    /// once the daemon answered `101`, for exec and attach streams.
    pub async fn hijack<B: Serialize>(
        &self,
        path: &str,
        query: &Query<'_>,
        body: &B,
    ) -> Result<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>> {
        let uri = self.versioned(path, query).await?;
        let mut sender = self.transport.fresh().await?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::HOST, self.transport.endpoint().host_header())
            .header(header::USER_AGENT, self.user_agent.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp")
            .body(Full::new(encode(body)?))
            .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?;
        let status = resp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(daemon_error(status, &bytes));
        }
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?;
        Ok(hyper_util::rt::TokioIo::new(upgraded))
    }

    /// `DELETE` and return the answer's body.
    pub async fn delete_raw(&self, path: &str, query: &Query<'_>) -> Result<Bytes> {
        self.call(Method::DELETE, path, query, None).await
    }

    pub async fn delete(&self, path: &str, query: &Query<'_>) -> Result<()> {
        self.call(Method::DELETE, path, query, None).await.map(drop)
    }

    /// `GET` whose body is consumed as a stream (logs); error statuses are turned into errors.
    pub async fn get_stream(
        &self,
        path: &str,
        query: &Query<'_>,
    ) -> Result<http::Response<Incoming>> {
        let uri = self.versioned(path, query).await?;
        let (mut sender, _) = self.transport.checkout().await?;
        let req = self.request(Method::GET, &uri, None)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(daemon_error(status, &body))
    }

    async fn versioned(&self, path: &str, query: &Query<'_>) -> Result<String> {
        let version = self.version().await?;
        Ok(format!("/v{version}{path}{}", encode_query(query)))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &Query<'_>,
        body: Option<Bytes>,
    ) -> Result<Bytes> {
        let uri = self.versioned(path, query).await?;
        let (status, _, bytes) = self.raw(method, uri, body).await?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(daemon_error(status, &bytes))
        }
    }

    /// One request on a pooled connection, body read to the end.
    async fn raw(
        &self,
        method: Method,
        uri: String,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
        let (mut sender, pooled) = self.transport.checkout().await?;
        let req = self.request(method.clone(), &uri, body.clone())?;
        let resp = match sender.send_request(req).await {
            Ok(resp) => resp,
            // A pooled connection the server closed while idle: a canceled request never left, and
            // a read-only one may be sent again; anything else could run twice, so it fails.
            Err(e)
                if pooled
                    && (e.is_canceled()
                        || (e.is_closed()
                            && (method == Method::GET || method == Method::HEAD))) =>
            {
                sender = self.transport.fresh().await?;
                let req = self.request(method, &uri, body)?;
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?
            }
            Err(e) => return Err(CliError::Http(shoal_types::error::chain(&e))),
        };
        let (parts, incoming) = resp.into_parts();
        let bytes = incoming
            .collect()
            .await
            .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?
            .to_bytes();
        self.transport.checkin(sender);
        Ok((parts.status, parts.headers, bytes))
    }

    fn request(
        &self,
        method: Method,
        uri: &str,
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, self.transport.endpoint().host_header())
            .header(header::USER_AGENT, self.user_agent.as_str());
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))
    }
}

fn encode<B: Serialize>(body: &B) -> Result<Bytes> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| CliError::Failed(format!("cannot encode request: {e}")))
}

/// Decodes a JSON answer, naming the field that did not fit.
pub fn decode<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T> {
    let fail = |why: String| CliError::Decode {
        what: what.to_string(),
        why,
    };
    let mut v: serde_json::Value = serde_json::from_slice(body).map_err(|e| fail(e.to_string()))?;
    health_check_key(&mut v);
    serde_path_to_error::deserialize(v).map_err(|e| fail(e.to_string()))
}

/// The Docker daemon writes a container spec's health check as `Healthcheck` (Go's field name);
/// bollard's model reads only the swagger's `HealthCheck`, so a service read back and written
/// again (every `service update`) would lose its check without this.
fn health_check_key(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(c) = m.get_mut("ContainerSpec").and_then(|c| c.as_object_mut())
                && !c.contains_key("HealthCheck")
                && let Some(h) = c.remove("Healthcheck")
            {
                c.insert("HealthCheck".to_owned(), h);
            }
            m.values_mut().for_each(health_check_key);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(health_check_key),
        _ => {}
    }
}

/// The daemon's error: `{"message": "..."}` when it is JSON, else the text itself.
pub fn daemon_error(status: StatusCode, body: &[u8]) -> CliError {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    let message = match serde_json::from_slice::<Message>(body) {
        Ok(m) => m.message,
        Err(_) => {
            let text = String::from_utf8_lossy(body).trim().to_string();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("unknown error")
                    .to_string()
            } else {
                text
            }
        }
    };
    CliError::Daemon { status, message }
}

/// `?k=v&...` with keys sorted like Go's `url.Values.Encode`; empty when there are no pairs.
pub fn encode_query(query: &Query<'_>) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<&(&str, String)> = query.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    format!("?{}", joined.join("&"))
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, the rest `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Escapes one path segment (an ID or a name); `keep_slash` for image references, which docker
/// sends unescaped (`/distribution/library/foo:1/json`).
pub fn path_escape(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'@' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_takes_the_lower_version() {
        assert_eq!(ApiVersion::negotiate(Some("1.41")).to_string(), "1.41");
        assert_eq!(ApiVersion::negotiate(Some("1.53")).to_string(), "1.50");
        assert_eq!(ApiVersion::negotiate(Some("1.50")).to_string(), "1.50");
        assert_eq!(ApiVersion::negotiate(None).to_string(), "1.24");
        assert_eq!(ApiVersion::negotiate(Some("garbage")).to_string(), "1.24");
        assert!(
            ApiVersion::parse("1.9").unwrap_or(ApiVersion::MAX)
                < ApiVersion::parse("1.10").unwrap_or(ApiVersion::FALLBACK)
        );
    }

    #[test]
    fn query_is_sorted_and_escaped_like_go() {
        let q = [
            ("version", "12".to_string()),
            ("filters", r#"{"name":{"web app":true}}"#.to_string()),
        ];
        assert_eq!(
            encode_query(&q),
            "?filters=%7B%22name%22%3A%7B%22web+app%22%3Atrue%7D%7D&version=12"
        );
        assert_eq!(encode_query(&[]), "");
    }

    #[test]
    fn path_escape_keeps_image_references_readable() {
        assert_eq!(
            path_escape("docker.io/library/bb:latest", true),
            "docker.io/library/bb:latest"
        );
        assert_eq!(path_escape("a/b c", false), "a%2Fb%20c");
    }

    #[test]
    fn daemon_error_uses_message_or_text() {
        let e = daemon_error(StatusCode::CONFLICT, br#"{"message":"name conflicts"}"#);
        assert_eq!(e.to_string(), "Error response from daemon: name conflicts");
        let e = daemon_error(StatusCode::BAD_GATEWAY, b"upstream down\n");
        assert_eq!(e.to_string(), "Error response from daemon: upstream down");
        let e = daemon_error(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert_eq!(
            e.to_string(),
            "Error response from daemon: Service Unavailable"
        );
    }

    #[test]
    fn decode_names_the_bad_field() {
        let r: Result<bollard_stubs::models::Node> =
            decode("/nodes/x", br#"{"Status":{"State":"sideways"}}"#);
        let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("Status.State"), "{msg}");
    }

    /// A service read back from a Docker daemon (or shoal's) keeps its health check.
    #[test]
    fn decode_reads_the_health_check_as_docker_spells_it() {
        let s: bollard_stubs::models::Service = decode(
            "/services/web",
            br#"{"Spec":{"TaskTemplate":{"ContainerSpec":{"Image":"x","Healthcheck":{"Retries":2}}}},"PreviousSpec":null}"#,
        )
        .expect("decoded");
        let h = s
            .spec
            .and_then(|s| s.task_template)
            .and_then(|t| t.container_spec)
            .and_then(|c| c.health_check);
        assert_eq!(h.and_then(|h| h.retries), Some(2));
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
pub(crate) mod server_tests;
