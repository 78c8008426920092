//! Static X25519 keys, WireGuard's, written as `wg` writes them: base64 of the 32 bytes.
//!
//! Randomness comes in as an argument (a CSPRNG: the OS's in the daemon, a seeded one in tests).
//! A private key never appears in `Debug` output or in an error message.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use boringtun::x25519;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{which}{shown}: not base64: {why}")]
    NotBase64 {
        which: &'static str,
        /// ` "<input>"` for a public key; empty for a private key, which is never shown.
        shown: String,
        why: String,
    },
    #[error("{which}: expected 32 bytes, got {len}")]
    WrongLength { which: &'static str, len: usize },
    #[error("the operating system's random source failed: {0}")]
    Rng(String),
}

/// A node's public key: what the other nodes configure it as a peer by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub const fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn to_x25519(self) -> x25519::PublicKey {
        x25519::PublicKey::from(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        decode32("public key", s, true).map(PublicKey)
    }
}

fn decode32(which: &'static str, s: &str, show: bool) -> Result<[u8; 32], KeyError> {
    let bytes = B64.decode(s.trim()).map_err(|e| KeyError::NotBase64 {
        which,
        shown: if show {
            format!(" {s:?}")
        } else {
            String::new()
        },
        why: e.to_string(),
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| KeyError::WrongLength {
        which,
        len: bytes.len(),
    })
}

/// A node's private key. Cloning copies the secret; dropping zeroes it (x25519-dalek's
/// `zeroize`).
#[derive(Clone)]
pub struct PrivateKey(x25519::StaticSecret);

impl PrivateKey {
    /// The key from its 32 bytes, as `wg genkey` writes them (clamped or not: X25519 clamps
    /// when it uses the key).
    pub fn from_bytes(bytes: [u8; 32]) -> PrivateKey {
        PrivateKey(x25519::StaticSecret::from(bytes))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// A new key from `rng`, clamped as `wg genkey` clamps, so both tools print the same bytes.
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> PrivateKey {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        PrivateKey::from_bytes(clamp(b))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519::PublicKey::from(&self.0).to_bytes())
    }

    /// Base64, for storing the key (as a swarm secret, say). Handle the result as a secret.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    pub fn from_base64(s: &str) -> Result<PrivateKey, KeyError> {
        decode32("private key", s, false).map(PrivateKey::from_bytes)
    }

    pub(crate) fn secret(&self) -> &x25519::StaticSecret {
        &self.0
    }
}

fn clamp(mut b: [u8; 32]) -> [u8; 32] {
    b[0] &= 248;
    b[31] &= 127;
    b[31] |= 64;
    b
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<secret> of {})", self.public_key())
    }
}

/// A private key with its public key. `Display` shows the public key only.
#[derive(Clone, Debug)]
pub struct Keypair {
    pub private: PrivateKey,
    pub public: PublicKey,
}

impl Keypair {
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Keypair {
        Keypair::from_private(PrivateKey::generate(rng))
    }

    /// A new keypair from the operating system's random source (`getrandom`).
    pub fn from_os_rng() -> Result<Keypair, KeyError> {
        use rand::TryRngCore;
        let mut b = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut b)
            .map_err(|e| KeyError::Rng(e.to_string()))?;
        Ok(Keypair::from_private(PrivateKey::from_bytes(clamp(b))))
    }

    pub fn from_private(private: PrivateKey) -> Keypair {
        let public = private.public_key();
        Keypair { private, public }
    }
}

impl fmt::Display for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.public.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keys_round_trip_through_base64() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let k = Keypair::generate(&mut rng);
        let shown = k.to_string();
        assert_eq!(shown.len(), 44, "{shown}");
        assert_eq!(shown.parse::<PublicKey>(), Ok(k.public));
        let private = PrivateKey::from_base64(&k.private.to_base64()).expect("private key");
        assert_eq!(private.public_key(), k.public);
        let b = k.private.to_bytes();
        assert_eq!(b[0] & 7, 0, "clamped");
        assert_eq!(b[31] & 0xc0, 0x40, "clamped");
        assert_ne!(Keypair::generate(&mut rng).public, k.public);
    }

    #[test]
    fn os_keys_differ() {
        let a = Keypair::from_os_rng().expect("os rng");
        let b = Keypair::from_os_rng().expect("os rng");
        assert_ne!(a.public, b.public);
    }

    #[test]
    fn bad_keys_say_what_is_wrong_without_showing_secrets() {
        let e = "zz!".parse::<PublicKey>().expect_err("not base64");
        assert!(
            e.to_string().starts_with("public key \"zz!\": not base64"),
            "{e}"
        );
        let e = "AAAA".parse::<PublicKey>().expect_err("3 bytes");
        assert_eq!(e.to_string(), "public key: expected 32 bytes, got 3");
        let e = PrivateKey::from_base64("secret!!").expect_err("not base64");
        assert!(!e.to_string().contains("secret"), "{e}");
        let k = PrivateKey::from_bytes([7; 32]);
        assert!(!format!("{k:?}").contains(&B64.encode([7u8; 32])));
    }
}
