//! A node's credentials and their one file on disk.
//!
//! Key, certificate, intermediate and trusted roots live together in one JSON file
//! ([`CREDENTIALS_FILE`], mode 0600) replaced atomically (write a temporary file, fsync, rename,
//! fsync the directory). One file, rather than Swarm's separate key and certificate files, means
//! a crash mid-renewal can never leave a key next to a certificate for another key.
//!
//! Concurrency: `save` is safe against crashes, not against two writers at once; one task (the
//! node's certificate renewer) owns the directory.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::ca::{cert_err, certs_of, one_cert};
use crate::{Identity, PkiError, identity_of_pem};

/// The file [`Credentials::save`] writes in its directory.
pub const CREDENTIALS_FILE: &str = "node-credentials.json";

/// A node's credentials: its key, its certificate (plus an intermediate while the cluster's root
/// is being rotated), and the roots it trusts (one, or two during a rotation).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub key_pem: String,
    pub cert_pem: String,
    #[serde(default)]
    pub intermediate_pem: Option<String>,
    pub trust: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    // The key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity().ok())
            .field("intermediate", &self.intermediate_pem.is_some())
            .field("trusted_roots", &self.trust.len())
            .finish_non_exhaustive()
    }
}

/// A credentials file that was read but cannot be used; the cause says why.
#[derive(Debug, thiserror::Error)]
#[error("{}", path.display())]
struct Unusable {
    path: std::path::PathBuf,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Credentials {
    /// Who the certificate says this node is.
    pub fn identity(&self) -> Result<Identity, PkiError> {
        identity_of_pem(&self.cert_pem)
    }

    /// The chain this node presents: its certificate, then the intermediate if any.
    pub fn chain(&self) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        let mut chain = vec![one_cert(&self.cert_pem, "node certificate")?];
        if let Some(pem) = &self.intermediate_pem {
            chain.extend(certs_of(pem, "intermediate certificate")?);
        }
        Ok(chain)
    }

    /// The private key, for rustls.
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| PkiError::Key {
            what: "node key",
            why: "not a valid PEM private key".into(),
            source: Some(e.into()),
        })
    }

    /// Checks that every PEM parses and that the certificate names a node, so a damaged file is
    /// refused when it is loaded rather than at the first handshake.
    pub fn validate(&self) -> Result<(), PkiError> {
        self.private_key()?;
        self.chain()?;
        self.identity()?;
        if self.trust.is_empty() {
            return Err(cert_err("trusted roots", "none"));
        }
        for root in &self.trust {
            one_cert(root, "trusted root")?;
        }
        Ok(())
    }

    /// Writes the credentials to `dir/node-credentials.json` atomically, readable only by the
    /// owner. Creates `dir` (mode 0700) if missing.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let body = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        let tmp = dir.join(format!("{CREDENTIALS_FILE}.tmp"));
        let dest = dir.join(CREDENTIALS_FILE);
        // A leftover temporary file from a crash may have other permissions: start afresh.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &dest)?;
        // The rename is durable only once the directory entry is.
        fs::File::open(dir)?.sync_all()
    }

    /// Reads the credentials [`save`](Self::save) wrote; `Ok(None)` when there are none yet.
    /// A file that does not parse, or whose PEMs do not, is an `InvalidData` error naming it.
    pub fn load(dir: &Path) -> io::Result<Option<Credentials>> {
        let path = dir.join(CREDENTIALS_FILE);
        let body = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let invalid = |source: Box<dyn std::error::Error + Send + Sync>| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                Unusable {
                    path: path.clone(),
                    source,
                },
            )
        };
        let creds: Credentials = serde_json::from_slice(&body).map_err(|e| invalid(e.into()))?;
        creds.validate().map_err(|e| invalid(e.into()))?;
        Ok(Some(creds))
    }
}
