//! Join tokens in Swarm's v1 format: `SWMTKN-1-<ca digest>-<secret>`, where the digest is the
//! SHA-256 of the root certificate in 50 zero-padded base36 digits and the secret is 25 base36
//! characters (128 random bits). The digest lets a joining node check the root it downloads
//! over an unverified connection; the secret is what the managers check before issuing.
//!
//! A token's secret never appears in an error message or in `Debug` output.
//!
//! Concurrency: plain values.

use std::fmt;

use shoal_types::IdGen;

use crate::{PkiError, RootCa};

const PREFIX: &str = "SWMTKN";
const VERSION: &str = "1";
/// ceil(log36(2^256)): a SHA-256 digest in base36 (Swarm's `base36DigestLen`).
pub(crate) const DIGEST_LEN: usize = 50;
/// ceil(log36(2^128)): a 128-bit secret in base36 (Swarm's `maxGeneratedSecretLength`).
pub(crate) const SECRET_LEN: usize = 25;

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_digest: String,
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &self.ca_digest)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The token as the CLI prints it and `swarm join --token` takes it.
impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}-{VERSION}-{}-{}", self.ca_digest, self.secret)
    }
}

impl JoinToken {
    /// A new token for `ca`, its secret drawn from `ids` (an ID is exactly 25 base36 characters
    /// from 128 random bits, the shape of Swarm's secret).
    pub fn generate(ca: &RootCa, ids: &mut IdGen) -> JoinToken {
        JoinToken {
            ca_digest: ca.digest(),
            secret: ids.next_id().as_str().to_owned(),
        }
    }

    /// Parses `SWMTKN-1-<digest>-<secret>`. Errors say which part is wrong and never repeat the
    /// secret (nor any part that might be it).
    pub fn parse(s: &str) -> Result<JoinToken, PkiError> {
        let bad = |why: String| PkiError::Token(why);
        let s = s.trim();
        let Some(rest) = s.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('-')) else {
            return Err(bad(format!("it must start with \"{PREFIX}-\"")));
        };
        let parts: Vec<&str> = rest.split('-').collect();
        let version = parts.first().copied().unwrap_or_default();
        if version != VERSION {
            // Only echo what looks like a version number: a malformed token may put its
            // secret here.
            let shown = if !version.is_empty()
                && version.len() <= 3
                && version.bytes().all(|b| b.is_ascii_digit())
            {
                format!("version {version} is not supported")
            } else {
                "the version part is missing or malformed".to_owned()
            };
            return Err(bad(format!(
                "{shown} (expected \"{PREFIX}-{VERSION}-...\")"
            )));
        }
        if parts.len() != 3 {
            return Err(bad(format!(
                "expected {PREFIX}-{VERSION}-<CA digest>-<secret>, found {} dash-separated parts instead of 4",
                parts.len() + 1
            )));
        }
        let (digest, secret) = (parts[1], parts[2]);
        if digest.len() != DIGEST_LEN {
            return Err(bad(format!(
                "the CA digest has {} characters, expected {DIGEST_LEN}",
                digest.len()
            )));
        }
        if !is_base36(digest) {
            return Err(bad(
                "the CA digest must be lowercase base36 (0-9, a-z)".to_owned()
            ));
        }
        if secret.is_empty() {
            return Err(bad("the secret is empty".to_owned()));
        }
        if secret.len() != SECRET_LEN {
            return Err(bad(format!(
                "the secret has {} characters, expected {SECRET_LEN}",
                secret.len()
            )));
        }
        if !is_base36(secret) {
            return Err(bad(
                "the secret must be lowercase base36 (0-9, a-z)".to_owned()
            ));
        }
        Ok(JoinToken {
            ca_digest: digest.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Whether `other` carries the same secret, compared in constant time so a network peer
    /// cannot learn the secret from response times.
    pub fn same_secret(&self, other: &JoinToken) -> bool {
        let (a, b) = (self.secret.as_bytes(), other.secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn is_base36(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// A 256-bit big-endian number in base36, zero-padded to [`DIGEST_LEN`] digits.
pub(crate) fn base36_256(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = bytes.to_vec();
    let mut out = vec![b'0'; DIGEST_LEN];
    for slot in out.iter_mut().rev() {
        // Long division of n by 36; the remainder is the next digit from the right.
        let mut rem: u32 = 0;
        for byte in n.iter_mut() {
            let cur = (rem << 8) | u32::from(*byte);
            *byte = (cur / 36) as u8;
            rem = cur % 36;
        }
        *slot = DIGITS[rem as usize];
    }
    out.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_of_known_values() {
        let zero = [0u8; 32];
        assert_eq!(base36_256(&zero), "0".repeat(50));
        let mut one = [0u8; 32];
        one[31] = 35;
        assert_eq!(base36_256(&one), format!("{}z", "0".repeat(49)));
        one[31] = 36;
        assert_eq!(base36_256(&one), format!("{}10", "0".repeat(48)));
        // 2^256 - 1 needs all 50 digits (Swarm's bound): the leading digit is not zero.
        let max = base36_256(&[0xff; 32]);
        assert_eq!(max.len(), 50);
        assert_ne!(&max[..1], "0");
    }
}
