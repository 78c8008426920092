//! A client for the OCI distribution API (v2): manifests (OCI and Docker schema 2, indexes and
//! manifest lists resolved to this node's platform), blobs verified against their digests
//! while they stream to disk, and the anonymous bearer-token flow registries ask for. Plain
//! HTTP only for registries configured insecure, and for loopback ones as Docker allows.
//! Stateless apart from the HTTP connection pool; safe to share.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use shoal_agent::RuntimeError;
use tokio::io::AsyncWriteExt;

use crate::config::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::digest::{Digest, Hasher};
use crate::reference::{DEFAULT_REGISTRY, Reference};

const MAX_MANIFEST: usize = 4 << 20;
const MAX_CONFIG: usize = 16 << 20;

pub struct Registry {
    http: reqwest::Client,
    insecure: Vec<String>,
}

/// One pull's conversation with one repository: the token, once a registry hands one out.
pub struct Session<'a> {
    reg: &'a Registry,
    reference: &'a Reference,
    base: String,
    token: Option<String>,
}

fn pull_err(r: &Reference, why: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Pull {
        reference: r.to_string(),
        why: why.to_string(),
    }
}

/// A registry host Docker treats as insecure without being told: loopback.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Registry {
    /// `insecure` names registries (`host:port`) reached over plain HTTP.
    pub fn new(insecure: Vec<String>) -> Result<Registry, RuntimeError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("shoal/", env!("CARGO_PKG_VERSION")))
            // No overall timeout: a large layer may take long. A registry that stops answering
            // fails the pull instead of hanging the task that waits for it.
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| RuntimeError::Io {
                context: "building the registry client".into(),
                source: std::io::Error::other(e),
            })?;
        Ok(Registry { http, insecure })
    }

    pub fn is_insecure(&self, registry: &str) -> bool {
        is_loopback(registry) || self.insecure.iter().any(|r| r == registry)
    }

    pub fn session<'a>(&'a self, reference: &'a Reference) -> Session<'a> {
        let host = if reference.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            reference.registry.as_str()
        };
        let scheme = if self.is_insecure(&reference.registry) {
            "http"
        } else {
            "https"
        };
        Session {
            reg: self,
            reference,
            base: format!("{scheme}://{host}/v2/{}", reference.repository),
            token: None,
        }
    }
}

impl Session<'_> {
    /// A 404 for a manifest means the image does not exist; for a blob, a broken registry.
    async fn get(
        &mut self,
        url: &str,
        accept: &str,
        manifest: bool,
    ) -> Result<reqwest::Response, RuntimeError> {
        let r = self.reference;
        for attempt in 0..2 {
            let mut req = self.reg.http.get(url).header(ACCEPT, accept);
            if let Some(t) = &self.token {
                req = req.header(AUTHORIZATION, format!("Bearer {t}"));
            }
            let resp = req
                .send()
                .await
                .map_err(|e| pull_err(r, format!("GET {url}: {}", error_chain(&e))))?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.token = Some(self.fetch_token(resp.headers()).await?);
                continue;
            }
            if !resp.status().is_success() {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                return Err(match status {
                    StatusCode::NOT_FOUND if manifest => RuntimeError::ImageNotFound(format!(
                        "{r}: {url}: not found: {}",
                        body.trim()
                    )),
                    _ => pull_err(r, format!("GET {url}: {status}: {}", body.trim())),
                });
            }
            return Ok(resp);
        }
        Err(pull_err(r, format!("GET {url}: unauthorized with a token")))
    }

    async fn fetch_token(&self, headers: &HeaderMap) -> Result<String, RuntimeError> {
        let r = self.reference;
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| pull_err(r, "the registry requires authentication (no challenge)"))?;
        let Some(params) = challenge
            .strip_prefix("Bearer ")
            .or_else(|| challenge.strip_prefix("bearer "))
        else {
            return Err(pull_err(
                r,
                format!(
                    "the registry requires credentials ({challenge}); only anonymous pulls are supported"
                ),
            ));
        };
        let params = parse_challenge(params);
        let realm = params
            .get("realm")
            .ok_or_else(|| pull_err(r, format!("bearer challenge without a realm: {challenge}")))?;
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = params.get("service") {
            query.push(("service", s.clone()));
        }
        query.push((
            "scope",
            params
                .get("scope")
                .cloned()
                .unwrap_or_else(|| format!("repository:{}:pull", r.repository)),
        ));
        let url = reqwest::Url::parse_with_params(realm, &query)
            .map_err(|e| pull_err(r, format!("token realm {realm:?}: {e}")))?;
        let resp = self
            .reg
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| pull_err(r, format!("token from {url}: {}", error_chain(&e))))?;
        if !resp.status().is_success() {
            return Err(pull_err(r, format!("token from {url}: {}", resp.status())));
        }
        let bytes = self.read_limited(resp, MAX_MANIFEST, url.as_str()).await?;
        let body: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| pull_err(r, format!("token from {url}: {e}")))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| pull_err(r, format!("token from {url}: no token in the answer")))
    }

    /// The manifest `reference` (a tag or a digest) names: its bytes and their digest, checked
    /// when the reference is a digest.
    pub async fn manifest(&mut self, reference: &str) -> Result<(Vec<u8>, Digest), RuntimeError> {
        let url = format!("{}/manifests/{reference}", self.base);
        let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
        let resp = self.get(&url, &accept, true).await?;
        let ctype = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if ctype.contains("vnd.docker.distribution.manifest.v1") {
            return Err(pull_err(
                self.reference,
                "the registry offers only a schema 1 manifest, which is not supported",
            ));
        }
        let bytes = self.read_limited(resp, MAX_MANIFEST, &url).await?;
        let got = Digest::of(&bytes);
        if let Ok(want) = Digest::parse(reference)
            && want != got
        {
            return Err(pull_err(
                self.reference,
                format!("digest mismatch: manifest {want} arrived as {got}"),
            ));
        }
        Ok((bytes, got))
    }

    /// A small blob (an image config), verified.
    pub async fn small_blob(&mut self, d: &Digest) -> Result<Vec<u8>, RuntimeError> {
        let url = format!("{}/blobs/{d}", self.base);
        let resp = self.get(&url, "*/*", false).await?;
        let bytes = self.read_limited(resp, MAX_CONFIG, &url).await?;
        let got = Digest::of(&bytes);
        if got != *d {
            return Err(pull_err(
                self.reference,
                format!("digest mismatch: blob {d} arrived as {got}"),
            ));
        }
        Ok(bytes)
    }

    /// Streams blob `d` into `dest`, verifying its digest.
    pub async fn blob_to_file(&mut self, d: &Digest, dest: &Path) -> Result<u64, RuntimeError> {
        let url = format!("{}/blobs/{d}", self.base);
        let mut resp = self.get(&url, "*/*", false).await?;
        let r = self.reference;
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|source| RuntimeError::Io {
                context: format!("writing {}", dest.display()),
                source,
            })?;
        let mut hasher = Hasher::default();
        let mut len = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| pull_err(r, format!("GET {url}: {}", error_chain(&e))))?
        {
            hasher.update(&chunk);
            len += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|source| RuntimeError::Io {
                    context: format!("writing {}", dest.display()),
                    source,
                })?;
        }
        file.flush().await.map_err(|source| RuntimeError::Io {
            context: format!("writing {}", dest.display()),
            source,
        })?;
        let got = hasher.finish();
        if got != *d {
            return Err(pull_err(
                r,
                format!("digest mismatch: blob {d} arrived as {got}"),
            ));
        }
        Ok(len)
    }

    async fn read_limited(
        &self,
        mut resp: reqwest::Response,
        max: usize,
        url: &str,
    ) -> Result<Vec<u8>, RuntimeError> {
        let r = self.reference;
        let mut out = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| pull_err(r, format!("GET {url}: {}", error_chain(&e))))?
        {
            if out.len() + chunk.len() > max {
                return Err(pull_err(r, format!("GET {url}: larger than {max} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// `realm="...",service="...",scope="..."` → its pairs.
fn parse_challenge(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = tail.trim_start_matches(',').trim();
    }
    out
}

/// reqwest hides the cause (connection refused, TLS) behind "error sending request".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let p = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            p.get("realm").map(String::as_str),
            Some("https://auth.docker.io/token")
        );
        assert_eq!(
            p.get("service").map(String::as_str),
            Some("registry.docker.io")
        );
        assert_eq!(
            p.get("scope").map(String::as_str),
            Some("repository:library/busybox:pull")
        );
    }

    #[test]
    fn loopback_is_insecure() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("localhost"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("reg.example.com:5000"));
        let reg = match Registry::new(vec!["reg.lan:5000".into()]) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert!(reg.is_insecure("reg.lan:5000"));
        assert!(!reg.is_insecure("docker.io"));
    }
}
