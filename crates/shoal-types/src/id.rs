//! Object IDs: 25 lowercase base36 characters, as Swarm's, from 128 random bits.

use std::fmt;

use rand::RngCore;

#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Id(String);

pub const ID_LEN: usize = 25;

impl Id {
    /// Wraps a string that is already known to be an ID (from the store or a generator).
    pub fn from_raw(s: impl Into<String>) -> Self {
        Id(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character short form the CLI prints.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }

    /// Whether `s` has the shape of a full ID, so callers can tell IDs from names.
    pub fn is_well_formed(s: &str) -> bool {
        s.len() == ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Id {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// The seam through which IDs get their randomness: a real RNG in the daemon, a seeded one in
/// tests and simulation.
pub struct IdGen {
    rng: Box<dyn RngCore + Send>,
}

impl IdGen {
    pub fn new(rng: impl RngCore + Send + 'static) -> Self {
        IdGen { rng: Box::new(rng) }
    }

    pub fn seeded(seed: u64) -> Self {
        use rand::SeedableRng;
        IdGen::new(rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// An OS-seeded generator for the daemon.
    pub fn from_os() -> Self {
        use rand::SeedableRng;
        IdGen::new(rand::rngs::StdRng::from_os_rng())
    }

    pub fn next_id(&mut self) -> Id {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        Id(encode_base36(u128::from_be_bytes(b)))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        self.rng.fill_bytes(buf);
    }
}

fn encode_base36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; ID_LEN];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    out.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_swarm_shape_and_differ() {
        let mut g = IdGen::seeded(7);
        let a = g.next_id();
        let b = g.next_id();
        assert!(Id::is_well_formed(a.as_str()), "{a}");
        assert_ne!(a, b);
        assert_eq!(a.short().len(), 12);
        // u128::MAX fits in 25 base36 digits.
        assert_eq!(encode_base36(u128::MAX).len(), ID_LEN);
        assert_ne!(encode_base36(u128::MAX), encode_base36(u128::MAX - 1));
    }
}
