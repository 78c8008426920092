//! The node's keys at rest, in its pki dir (`swarm/certs/`, next to the TLS key):
//!
//! - the data key (DEK), which seals every value of the manager's Raft store
//!   ([`shoal_store::seal`]); kept in [`KEYS_FILE`] sealed under the key-encryption key (KEK);
//! - the KEK: random and kept in [`KEYS_FILE`] too when the swarm is not autolocked, so the Raft
//!   directory alone (a copied `state.redb`) is unreadable; with autolock it is the unlock key's
//!   and kept nowhere: a restarted manager is locked until someone gives it the key;
//! - the TLS key: in the credentials file as PEM, except while autolocked, when it is sealed under
//!   the DEK (and so, through the DEK, under the unlock key).
//!
//! Each change is ordered so a crash between its two file writes leaves a node that still opens:
//! locking seals the TLS key first (readable under the old KEK, still on disk), then drops the
//! KEK; unlocking writes the new KEK first, then the plain TLS key. Rotating the unlock key
//! rewrites one file.
//!
//! Nodes from before encryption at rest have no [`KEYS_FILE`]: they are given fresh keys, and a
//! manager's old (plaintext) Raft store is then refused with an error that says so; such data
//! dirs are not migrated.
//!
//! Concurrency: one mutex orders every write of both files (certificate renewals and lock
//! changes).

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use shoal_pki::{CREDENTIALS_FILE, Credentials};
use shoal_store::Sealer;
use shoal_store::seal::{DEK_CONTEXT, Kek, SealError, SecretKey, TLS_KEY_CONTEXT, UnlockKey};

/// The file holding the sealed DEK (and the KEK when not autolocked).
pub const KEYS_FILE: &str = "at-rest-keys.json";

const SEALED_BEGIN: &str = "-----BEGIN SHOAL SEALED PRIVATE KEY-----";
const SEALED_END: &str = "-----END SHOAL SEALED PRIVATE KEY-----";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("swarm could not be unlocked: invalid key provided")]
    WrongKey,
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} is unusable: {why}")]
    Unusable { path: String, why: String },
    #[error("sealing this node's keys")]
    Seal(#[source] SealError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> VaultError + '_ {
    move |source| VaultError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct KeysFile {
    /// The DEK sealed under the KEK, base64.
    dek: String,
    /// The KEK, base64; absent while autolocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kek: Option<String>,
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &str, path: &Path, what: &str) -> Result<Vec<u8>, VaultError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| VaultError::Unusable {
            path: path.display().to_string(),
            why: format!("{what} is not base64"),
        })
}

/// Writes `body` to `dir/name` atomically, readable by the owner only.
fn write_private(dir: &Path, name: &str, body: &[u8]) -> Result<(), VaultError> {
    let dest = dir.join(name);
    let at = io_at(&dest);
    let r = (|| -> io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tmp = dir.join(format!("{name}.tmp"));
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &dest)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    r.map_err(at)
}

/// What [`Vault::open`] found.
pub(crate) enum Opened {
    Ready(Vault),
    /// Autolocked: the DEK opens only with the unlock key.
    Locked(Locked),
    /// No keys yet (a node from before encryption at rest, or a fresh dir).
    Missing,
}

/// An autolocked node's keys, waiting for the unlock key.
pub(crate) struct Locked {
    dir: PathBuf,
    sealed_dek: Vec<u8>,
}

impl Locked {
    /// The vault, if `key` is the one the DEK was sealed under; nothing is written.
    pub(crate) fn unlock(&self, key: &UnlockKey) -> Result<Vault, VaultError> {
        let dek = key
            .kek()
            .open_key(DEK_CONTEXT, &self.sealed_dek)
            .map_err(|e| match e {
                SealError::Rejected => VaultError::WrongKey,
                other => VaultError::Seal(other),
            })?;
        Ok(Vault {
            dir: self.dir.clone(),
            state: Mutex::new(State {
                dek,
                locked_with: Some(key.clone()),
            }),
        })
    }
}

struct State {
    dek: SecretKey,
    /// The unlock key the DEK is sealed under now; `None`: under the KEK on disk.
    locked_with: Option<UnlockKey>,
}

/// The node's opened keys.
pub(crate) struct Vault {
    dir: PathBuf,
    state: Mutex<State>,
}

impl Vault {
    /// Reads the keys in `dir` (the pki dir).
    pub(crate) fn open(dir: &Path) -> Result<Opened, VaultError> {
        let path = dir.join(KEYS_FILE);
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::Missing),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let file: KeysFile = serde_json::from_slice(&body).map_err(|e| VaultError::Unusable {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let sealed_dek = unb64(&file.dek, &path, "dek")?;
        let Some(kek) = file.kek else {
            return Ok(Opened::Locked(Locked {
                dir: dir.to_path_buf(),
                sealed_dek,
            }));
        };
        let kek = SecretKey::from_slice(&unb64(&kek, &path, "kek")?).ok_or_else(|| {
            VaultError::Unusable {
                path: path.display().to_string(),
                why: "kek is not 32 bytes".into(),
            }
        })?;
        let dek = Kek(kek)
            .open_key(DEK_CONTEXT, &sealed_dek)
            .map_err(VaultError::Seal)?;
        Ok(Opened::Ready(Vault {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                dek,
                locked_with: None,
            }),
        }))
    }

    /// New keys for a node entering a swarm: a random DEK under a random KEK, on disk.
    pub(crate) fn create(dir: &Path) -> Result<Vault, VaultError> {
        let dek = SecretKey::generate().map_err(VaultError::Seal)?;
        let v = Vault {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                dek,
                locked_with: None,
            }),
        };
        let st = v.lock_state();
        v.write_keys(&st)?;
        drop(st);
        Ok(v)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals and opens the Raft store's values.
    pub(crate) fn sealer(&self) -> Sealer {
        // The cost-of-encryption benchmark's baseline; never in a product build.
        #[cfg(feature = "bench-plaintext-store")]
        if std::env::var_os("SHOAL_BENCH_PLAINTEXT_STORE").is_some() {
            tracing::warn!("BENCHMARK BUILD: the raft store is NOT encrypted at rest");
            return Sealer::plaintext_for_benchmarks();
        }
        Sealer::new(&self.lock_state().dek)
    }

    /// The unlock key the keys are sealed under, if autolocked.
    #[cfg(test)]
    pub(crate) fn locked_with(&self) -> Option<UnlockKey> {
        self.lock_state().locked_with.clone()
    }

    /// [`KEYS_FILE`] as `st` says: the DEK under the unlock key, or under a fresh KEK kept there.
    fn write_keys(&self, st: &State) -> Result<(), VaultError> {
        let file = match &st.locked_with {
            Some(k) => KeysFile {
                dek: b64(&k
                    .kek()
                    .seal_key(DEK_CONTEXT, &st.dek)
                    .map_err(VaultError::Seal)?),
                kek: None,
            },
            None => {
                let kek = Kek(SecretKey::generate().map_err(VaultError::Seal)?);
                KeysFile {
                    dek: b64(&kek
                        .seal_key(DEK_CONTEXT, &st.dek)
                        .map_err(VaultError::Seal)?),
                    kek: Some(b64(kek.0.bytes())),
                }
            }
        };
        let body = serde_json::to_vec_pretty(&file).map_err(|e| VaultError::Unusable {
            path: self.dir.join(KEYS_FILE).display().to_string(),
            why: e.to_string(),
        })?;
        write_private(&self.dir, KEYS_FILE, &body)
    }

    /// The credentials file as `st` wants it: the TLS key sealed under the DEK while autolocked.
    fn write_creds(&self, st: &State, creds: &Credentials) -> Result<(), VaultError> {
        let mut on_disk = creds.clone();
        if st.locked_with.is_some() {
            let sealed = Sealer::new(&st.dek)
                .seal(TLS_KEY_CONTEXT, b"", creds.key_pem.as_bytes())
                .map_err(VaultError::Seal)?;
            on_disk.key_pem = format!("{SEALED_BEGIN}\n{}\n{SEALED_END}\n", b64(&sealed));
        }
        // `Credentials::save` writes atomically with the right modes.
        on_disk
            .save(&self.dir)
            .map_err(io_at(&self.dir.join(CREDENTIALS_FILE)))
    }

    /// Saves renewed credentials (sealing the key while autolocked).
    pub(crate) fn save_creds(&self, creds: &Credentials) -> Result<(), VaultError> {
        let st = self.lock_state();
        self.write_creds(&st, creds)
    }

    /// Reads the credentials, opening a sealed TLS key with the DEK; `Ok(None)` when there are
    /// none.
    pub(crate) fn load_creds(&self) -> Result<Option<Credentials>, VaultError> {
        let path = self.dir.join(CREDENTIALS_FILE);
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at(&path)(e)),
        };
        let unusable = |why: String| VaultError::Unusable {
            path: path.display().to_string(),
            why,
        };
        let mut creds: Credentials =
            serde_json::from_slice(&body).map_err(|e| unusable(e.to_string()))?;
        if let Some(rest) = creds.key_pem.trim().strip_prefix(SEALED_BEGIN) {
            let inner = rest
                .trim()
                .strip_suffix(SEALED_END)
                .ok_or_else(|| unusable("the sealed key has no end line".into()))?;
            let sealed = unb64(inner, &path, "the sealed key")?;
            let dek = self.lock_state().dek.clone();
            let plain = Sealer::new(&dek)
                .open(TLS_KEY_CONTEXT, b"", &sealed)
                .map_err(VaultError::Seal)?;
            creds.key_pem = String::from_utf8(plain)
                .map_err(|_| unusable("the sealed key is not text".into()))?;
        }
        creds
            .validate()
            .map_err(|e| unusable(shoal_types::error::chain(&e)))?;
        Ok(Some(creds))
    }

    /// Makes the keys on disk follow the swarm's setting: sealed under `key` (autolock on, or a
    /// rotated key), or under a KEK kept on disk (`None`: autolock off). A no-op when they
    /// already are. `creds` are the node's current credentials (their key is resealed).
    pub(crate) fn follow(
        &self,
        key: Option<&UnlockKey>,
        creds: &Credentials,
    ) -> Result<bool, VaultError> {
        let mut st = self.lock_state();
        if st.locked_with.as_ref() == key {
            return Ok(false);
        }
        let prev = st.locked_with.clone();
        let was_locked = prev.is_some();
        st.locked_with = key.cloned();
        let r = if key.is_some() && !was_locked {
            // Seal the TLS key first; the KEK it is readable through stays until the next write.
            self.write_creds(&st, creds)
                .and_then(|()| self.write_keys(&st))
        } else if key.is_none() {
            // The KEK back on disk first, then the TLS key in plain.
            self.write_keys(&st)
                .and_then(|()| self.write_creds(&st, creds))
        } else {
            // Another unlock key: only the DEK's seal changes.
            self.write_keys(&st)
        };
        if r.is_err() {
            // What is on disk is whatever the failed step left, which still opens with the
            // previous key or KEK; the next change of the cluster object tries again.
            st.locked_with = prev;
        }
        r.map(|()| true)
    }
}

#[cfg(test)]
#[path = "vault_tests.rs"]
mod tests;
