//! Encryption at rest: every value the store writes (log entries, the state machine's objects,
//! Raft and snapshot metadata) is sealed with the node's data key (DEK) by an AEAD from RustCrypto,
//! XChaCha20-Poly1305, with a fresh random 24-byte nonce per value. The table's name and the row's
//! key are the associated data, so a value moved to another row or table fails to open rather
//! than being read as that row.
//!
//! Also here, because the node seals its own keys with the same construction: the unlock key of an
//! autolocked swarm ([`UnlockKey`], Docker's `SWMKEY-1-...` text), the key-encryption key
//! ([`Kek`]) and the sealing of the data key under it ([`Kek::seal_key`]).
//!
//! Layout of a sealed value: `b'S'`, a format version (1), the nonce, then the ciphertext with its
//! 16-byte tag. A stored JSON value never starts with `S`, so a value written before encryption at
//! rest existed is told apart (and refused with an error saying so: such data dirs are not
//! migrated).
//!
//! Concurrency: a [`Sealer`] is immutable and cheap to clone; seal and open from any thread.

use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::TryRngCore;
use zeroize::Zeroizing;

const MAGIC: u8 = b'S';
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 2 + NONCE_LEN;

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "the value is not encrypted: the data directory was written before encryption at rest, which this version does not read (leave the swarm and join again, or restore a newer backup)"
    )]
    NotSealed,
    #[error("the value is sealed in an unknown format (version {0})")]
    UnknownVersion(u8),
    #[error("the sealed value is truncated ({len} bytes)")]
    Truncated { len: usize },
    /// The tag did not verify: another key, altered bytes, or a value moved from another row.
    #[error(
        "the value cannot be decrypted with this key: the key is wrong, or the value was altered or moved from another row"
    )]
    Rejected,
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// A 256-bit symmetric key, wiped from memory when dropped.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SecretKey {
    // Key bytes never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// 32 bytes from the operating system's CSPRNG. Keys must be unpredictable, so they come
    /// from the OS rather than a seeded generator (which would make them a function of the seed).
    pub fn generate() -> Result<Self, SealError> {
        let mut k = Zeroizing::new([0u8; 32]);
        fill_random(&mut k[..])?;
        Ok(SecretKey(k))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(Zeroizing::new(bytes))
    }

    /// Exactly 32 bytes, or `None`.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::from_bytes(arr))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        // Not secret-dependent timing in any way that matters here (keys are compared only to
        // decide whether to re-seal), but keep it branch-free anyway.
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for SecretKey {}

fn fill_random(out: &mut [u8]) -> Result<(), SealError> {
    rand::rngs::OsRng
        .try_fill_bytes(out)
        .map_err(|e| SealError::Random(e.to_string()))
}

/// Seals and opens values with one key. What a value is bound to is the caller's `context` and
/// `key` (the store passes the table name and the row key).
#[derive(Clone)]
pub struct Sealer {
    aead: Arc<XChaCha20Poly1305>,
    /// Benchmark builds only (feature `plaintext-for-benchmarks`): values go to disk as they
    /// are, to measure what encryption at rest costs. No product build has this.
    #[cfg(feature = "plaintext-for-benchmarks")]
    plaintext: bool,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// The associated data: the context (a table name, which holds no NUL), a NUL, the row key.
fn aad(context: &str, key: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(context.len() + 1 + key.len());
    a.extend_from_slice(context.as_bytes());
    a.push(0);
    a.extend_from_slice(key);
    a
}

impl Sealer {
    pub fn new(key: &SecretKey) -> Self {
        Sealer {
            aead: Arc::new(XChaCha20Poly1305::new(key.bytes().into())),
            #[cfg(feature = "plaintext-for-benchmarks")]
            plaintext: false,
        }
    }

    /// A sealer that seals nothing (see the field): the benchmark's baseline.
    #[cfg(feature = "plaintext-for-benchmarks")]
    pub fn plaintext_for_benchmarks() -> Self {
        Sealer {
            plaintext: true,
            ..Sealer::new(&SecretKey::from_bytes([0; 32]))
        }
    }

    /// `plain` sealed under a fresh random nonce, bound to `context` and `key`.
    pub fn seal(&self, context: &str, key: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
        #[cfg(feature = "plaintext-for-benchmarks")]
        if self.plaintext {
            return Ok(plain.to_vec());
        }
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let ct = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad(context, key),
                },
            )
            // Only a message over 256 GiB fails to encrypt.
            .map_err(|_| SealError::Rejected)?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// The plaintext of a value [`seal`](Self::seal)ed with the same key, context and row key.
    pub fn open(&self, context: &str, key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        #[cfg(feature = "plaintext-for-benchmarks")]
        if self.plaintext {
            return Ok(sealed.to_vec());
        }
        match sealed.first() {
            Some(&MAGIC) => {}
            Some(_) => return Err(SealError::NotSealed),
            None => return Err(SealError::Truncated { len: 0 }),
        }
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(SealError::Truncated { len: sealed.len() });
        }
        if sealed[1] != VERSION {
            return Err(SealError::UnknownVersion(sealed[1]));
        }
        let nonce = XNonce::from_slice(&sealed[2..HEADER_LEN]);
        self.aead
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &aad(context, key),
                },
            )
            .map_err(|_| SealError::Rejected)
    }
}

/// The key-encryption key: seals the node's data key and (when autolocked) its TLS key. Without
/// autolock it is random and kept next to the TLS key; with autolock it is the unlock key's bytes
/// (32 uniformly random bytes already, so they serve as a key as they are) and kept nowhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kek(pub SecretKey);

/// What the node seals under its KEK; each its own context, so one cannot be opened as the other.
pub const DEK_CONTEXT: &str = "shoal/kek/raft-dek";
pub const TLS_KEY_CONTEXT: &str = "shoal/kek/tls-key";

impl Kek {
    pub fn seal_key(&self, context: &str, k: &SecretKey) -> Result<Vec<u8>, SealError> {
        Sealer::new(&self.0).seal(context, b"", k.bytes())
    }

    pub fn open_key(&self, context: &str, sealed: &[u8]) -> Result<SecretKey, SealError> {
        let plain = Zeroizing::new(Sealer::new(&self.0).open(context, b"", sealed)?);
        SecretKey::from_slice(&plain).ok_or(SealError::Truncated { len: plain.len() })
    }

    pub fn seal_bytes(&self, context: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        Sealer::new(&self.0).seal(context, b"", plain)
    }

    pub fn open_bytes(
        &self,
        context: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        Ok(Zeroizing::new(
            Sealer::new(&self.0).open(context, b"", sealed)?,
        ))
    }
}

/// An autolocked swarm's unlock key: 32 random bytes, shown as Docker shows them
/// (`SWMKEY-1-` and the bytes in unpadded standard base64).
#[derive(Clone, PartialEq, Eq)]
pub struct UnlockKey(SecretKey);

impl std::fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnlockKey(..)")
    }
}

const UNLOCK_PREFIX: &str = "SWMKEY-1-";

/// Why a string is not an unlock key. Docker answers all of these with "invalid key string"; the
/// variants add which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnlockKeyError {
    #[error("invalid key string: an unlock key starts with \"{UNLOCK_PREFIX}\"")]
    Prefix,
    #[error("invalid key string: the part after \"{UNLOCK_PREFIX}\" is not base64")]
    Encoding,
    #[error("invalid key string: an unlock key holds 32 bytes, this one {0}")]
    Length(usize),
}

impl UnlockKey {
    pub fn generate() -> Result<Self, SealError> {
        Ok(UnlockKey(SecretKey::generate()?))
    }

    /// Docker's form; surrounding whitespace (a pasted line) is ignored. Docker's decoder takes
    /// unpadded base64; a padded copy is accepted too.
    pub fn parse(s: &str) -> Result<Self, UnlockKeyError> {
        use base64::Engine;
        let rest = s
            .trim()
            .strip_prefix(UNLOCK_PREFIX)
            .ok_or(UnlockKeyError::Prefix)?;
        let rest = rest.trim_end_matches('=');
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(rest)
                .map_err(|_| UnlockKeyError::Encoding)?,
        );
        SecretKey::from_slice(&bytes)
            .map(UnlockKey)
            .ok_or(UnlockKeyError::Length(bytes.len()))
    }

    /// `SWMKEY-1-...`: what `swarm unlock-key` shows and `swarm unlock` takes.
    pub fn to_human(&self) -> String {
        use base64::Engine;
        format!(
            "{UNLOCK_PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0.bytes())
        )
    }

    /// The key-encryption key this unlock key stands for.
    pub fn kek(&self) -> Kek {
        Kek(self.0.clone())
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
