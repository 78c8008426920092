//! Pulls from registries through oci-client: the distribution API, its anonymous bearer-token
//! flow, and manifests checked against the digest they were asked by. What shoal keeps of its
//! own: which registries are reached over plain HTTP (those configured insecure, and loopback
//! ones as Docker allows), a size cap on image configs, and every blob hashed by shoal while it
//! streams to disk, so the content store never trusts a registry's word for a digest.
//! Stateless apart from each session's client (its connection pool and token); safe to share.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use shoal_runtime::RuntimeError;
use shoal_types::image_ref::ImageRef;
use tokio::io::AsyncWriteExt;

use crate::config::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::digest::{Digest, Hasher};

const MAX_CONFIG: usize = 16 << 20;
const ACCEPT: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

pub struct Registry {
    insecure: Vec<String>,
}

/// One pull's conversation with one repository; the client keeps the token it was handed.
pub struct Session<'a> {
    client: Client,
    reference: &'a ImageRef,
    authed: bool,
}

fn pull_err(r: &ImageRef, why: impl std::fmt::Display) -> RuntimeError {
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
        Ok(Registry { insecure })
    }

    pub fn is_insecure(&self, registry: &str) -> bool {
        is_loopback(registry) || self.insecure.iter().any(|r| r == registry)
    }

    pub fn session<'a>(&self, reference: &'a ImageRef) -> Session<'a> {
        let host = reference.as_oci().resolve_registry().to_string();
        let protocol = if self.is_insecure(reference.registry()) {
            ClientProtocol::HttpsExcept(vec![host])
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            // We pick the platform of an index ourselves, and say why when none fits.
            platform_resolver: None,
            // No overall timeout: a large layer may take long. A registry that stops answering
            // fails the pull instead of hanging the task that waits for it.
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("shoal/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        });
        Session {
            client,
            reference,
            authed: false,
        }
    }
}

impl Session<'_> {
    /// `tag_or_digest` of this session's repository, as oci-client takes it.
    fn target(&self, tag_or_digest: &str) -> Reference {
        let r = self.reference;
        if tag_or_digest.contains(':') {
            r.as_oci().clone_with_digest(tag_or_digest.to_string())
        } else {
            Reference::with_tag(
                r.registry().to_string(),
                r.repository().to_string(),
                tag_or_digest.to_string(),
            )
        }
    }

    /// The token flow runs once, before the first request: oci-client asks `/v2/` for a
    /// challenge and fetches an anonymous token when there is one.
    async fn authenticate(&mut self) -> Result<(), RuntimeError> {
        if self.authed {
            return Ok(());
        }
        self.client
            .auth(
                self.reference.as_oci(),
                &RegistryAuth::Anonymous,
                RegistryOperation::Pull,
            )
            .await
            .map_err(|e| self.error(&e, "authenticating", false))?;
        self.authed = true;
        Ok(())
    }

    /// A 404 for a manifest means the image does not exist; anything else is a failed pull.
    fn error(&self, e: &OciDistributionError, what: &str, manifest: bool) -> RuntimeError {
        let r = self.reference;
        let not_found = match e {
            OciDistributionError::ServerError { code: 404, .. } => true,
            OciDistributionError::RegistryError { envelope, .. } => {
                envelope.errors.iter().any(|x| {
                    matches!(
                        x.code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::NotFound
                    )
                })
            }
            _ => false,
        };
        if manifest && not_found {
            return RuntimeError::ImageNotFound(format!("{r}: {what}: not found: {e}"));
        }
        if let OciDistributionError::DigestError(DigestError::VerificationError {
            expected,
            actual,
        }) = e
        {
            return pull_err(
                r,
                format!("digest mismatch: {what}: {expected} arrived as {actual}"),
            );
        }
        pull_err(r, format!("{what}: {}", error_chain(e)))
    }

    /// The manifest `tag_or_digest` names: its bytes and their digest, which oci-client checks
    /// when the reference is a digest.
    pub async fn manifest(
        &mut self,
        tag_or_digest: &str,
    ) -> Result<(Vec<u8>, Digest), RuntimeError> {
        self.authenticate().await?;
        let target = self.target(tag_or_digest);
        let what = format!("manifest {tag_or_digest}");
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&target, &RegistryAuth::Anonymous, ACCEPT)
            .await
            .map_err(|e| self.error(&e, &what, true))?;
        Ok((bytes.clone(), Digest::of(&bytes)))
    }

    /// Streams blob `d` into `sink`, hashing it as it goes; a forged blob is refused once its
    /// last byte is in, before anything trusts it.
    async fn blob(&mut self, d: &Digest, sink: &mut Sink<'_>) -> Result<u64, RuntimeError> {
        self.authenticate().await?;
        let r = self.reference;
        let target = self.target(&d.to_string());
        let what = format!("blob {d}");
        let desc = OciDescriptor {
            digest: d.to_string(),
            ..OciDescriptor::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&target, &desc)
            .await
            .map_err(|e| self.error(&e, &what, false))?;
        let mut hasher = Hasher::default();
        let mut len = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                // oci-client checks the digest too, and says so as an io::Error at the end.
                match e.get_ref().and_then(|i| i.downcast_ref::<DigestError>()) {
                    Some(DigestError::VerificationError { expected, actual }) => pull_err(
                        r,
                        format!("digest mismatch: {what}: {expected} arrived as {actual}"),
                    ),
                    _ => pull_err(r, format!("{what}: {}", error_chain(&e))),
                }
            })?;
            hasher.update(&chunk);
            len += chunk.len() as u64;
            match sink {
                Sink::Memory(out) => {
                    if out.len() + chunk.len() > MAX_CONFIG {
                        return Err(pull_err(
                            r,
                            format!("{what}: larger than {MAX_CONFIG} bytes"),
                        ));
                    }
                    out.extend_from_slice(&chunk);
                }
                Sink::File(f, path) => {
                    f.write_all(&chunk)
                        .await
                        .map_err(|source| RuntimeError::Io {
                            context: format!("writing {}", path.display()),
                            source,
                        })?;
                }
            }
        }
        let got = hasher.finish();
        if got != *d {
            return Err(pull_err(
                r,
                format!("digest mismatch: {what} arrived as {got}"),
            ));
        }
        Ok(len)
    }

    /// A small blob (an image config), verified, at most 16 MiB.
    pub async fn small_blob(&mut self, d: &Digest) -> Result<Vec<u8>, RuntimeError> {
        let mut sink = Sink::Memory(Vec::new());
        self.blob(d, &mut sink).await?;
        match sink {
            Sink::Memory(out) => Ok(out),
            Sink::File(..) => Ok(Vec::new()),
        }
    }

    /// Streams blob `d` into `dest`, verifying its digest.
    pub async fn blob_to_file(&mut self, d: &Digest, dest: &Path) -> Result<u64, RuntimeError> {
        let io = |source| RuntimeError::Io {
            context: format!("writing {}", dest.display()),
            source,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let len = self.blob(d, &mut Sink::File(&mut file, dest)).await?;
        file.flush().await.map_err(io)?;
        Ok(len)
    }
}

/// Where a blob's bytes go while they are hashed.
enum Sink<'a> {
    Memory(Vec<u8>),
    File(&'a mut tokio::fs::File, &'a Path),
}

/// reqwest hides the cause (connection refused, TLS) behind "error sending request": the chain
/// names it.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    shoal_types::error::chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

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
