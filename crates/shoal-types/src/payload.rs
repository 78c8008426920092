//! Secrets and configs: named blobs the cluster keeps in its (encrypted) Raft log and hands to
//! the tasks that use them, as files. Both have the same shape, so they are one type told apart
//! by [`PayloadKind`]; what differs (secrets are never shown, their files go under
//! `/run/secrets`) hangs off the kind.
//!
//! Beyond Swarm, a payload keeps versions: `secret rotate` adds one under the same name and ID,
//! and a service's reference either follows the newest version or pins one. The version a
//! reference resolves to is written into the service's spec, so a rotation is an ordinary spec
//! change that rolls the service with its update policy, and each task's copy of the spec says
//! which version it was given.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::{Id, Meta, Timestamp};

/// Swarm's limit on a secret's or config's size.
pub const MAX_SIZE: usize = 500 * 1024;
/// Where a secret's file goes when its target is not absolute.
pub const SECRETS_DIR: &str = "/run/secrets";
/// The one template driver Swarm has.
pub const TEMPLATE_GOLANG: &str = "golang";
/// The file mode a reference gets when it names none (Docker's 0444).
pub const DEFAULT_MODE: u32 = 0o444;

/// A payload's bytes. Shared rather than copied (a secret sits in the state, in proposals and in
/// the dispatcher's messages at once), wiped when the last holder drops it, and never printed:
/// `Debug` shows only the length, so no log line can carry a secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Bytes(Arc<Zeroizing<Vec<u8>>>);

impl std::hash::Hash for Bytes {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_slice().hash(h);
    }
}

impl Bytes {
    pub fn new(data: Vec<u8>) -> Self {
        Bytes(Arc::new(Zeroizing::new(data)))
    }

    pub fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.len())
    }
}

impl serde::Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let encoded =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.as_slice()));
        s.serialize_str(&encoded)
    }
}

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = Zeroizing::new(String::deserialize(d)?);
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes::new)
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    Secret,
    Config,
}

impl PayloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadKind::Secret => "secret",
            PayloadKind::Config => "config",
        }
    }

    /// Where a reference's file lands in the task: a relative target goes under
    /// `/run/secrets` for a secret and under `/` for a config, as Docker places them.
    pub fn file_path(self, target: &str) -> String {
        if target.starts_with('/') {
            return target.to_string();
        }
        match self {
            PayloadKind::Secret => format!("{SECRETS_DIR}/{target}"),
            PayloadKind::Config => format!("/{target}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayloadSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The template driver (`golang`): the data is a template expanded for each task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templating: Option<String>,
}

/// One version of a payload's data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayloadVersion {
    /// 1 for the data given at create, then one more for each rotation.
    pub version: u64,
    pub data: Bytes,
    pub created_at: Timestamp,
}

/// A secret or a config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payload {
    pub id: Id,
    pub meta: Meta,
    pub kind: PayloadKind,
    pub spec: PayloadSpec,
    /// Oldest first; never empty. Versions no spec refers to any more are dropped at the next
    /// rotation.
    pub versions: Vec<PayloadVersion>,
}

impl Payload {
    /// The newest version.
    pub fn current(&self) -> Option<&PayloadVersion> {
        self.versions.last()
    }

    pub fn version(&self, n: u64) -> Option<&PayloadVersion> {
        self.versions.iter().find(|v| v.version == n)
    }
}

/// A service's use of a secret or config: which one, which version, and the file it becomes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileRef {
    pub id: Id,
    /// The payload's name when the spec was written (Docker's `SecretName`).
    pub name: String,
    /// The version the task gets: the one pinned, or the newest when the spec was written.
    #[serde(default)]
    pub version: u64,
    /// `version=N` was asked for; otherwise a rotation moves the reference to the new version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    /// The file's path: absolute, or relative to the kind's directory (see
    /// [`PayloadKind::file_path`]).
    pub target: String,
    /// Numeric user and group that own the file, as Docker takes them (strings).
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub gid: String,
    pub mode: u32,
}

/// What the dispatcher hands a node: the data of every payload version its tasks use, and
/// nothing else. Sent whole whenever the set changes (it is small, and whole sets make "no task
/// here uses it any more, forget it" a plain replace).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub payloads: Vec<Delivered>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivered {
    pub kind: PayloadKind,
    pub id: Id,
    pub version: u64,
    pub data: Bytes,
    /// The data is a template to expand for each task.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub templated: bool,
}

impl Delivery {
    pub fn get(&self, kind: PayloadKind, id: &Id, version: u64) -> Option<&Delivered> {
        self.payloads
            .iter()
            .find(|d| d.kind == kind && &d.id == id && d.version == version)
    }
}

/// Checks a payload name as Swarm does: non-empty, at most 64 characters, letters, digits and
/// `-_.`, starting and ending with a letter or digit, so it cannot name a path.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name is required".into());
    }
    if name.len() > 64 {
        return Err(format!("{name:?} is longer than 64 characters"));
    }
    let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && ok_end(name.chars().next())
        && ok_end(name.chars().last());
    if !valid {
        return Err(format!(
            "{name:?} is not a valid name: only letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a reference's file target: a path without `..`, `.` or empty components, so the file
/// cannot land outside the task's own filesystem or on a directory.
pub fn check_target(target: &str) -> Result<(), String> {
    let rel = target.strip_prefix('/').unwrap_or(target);
    if rel.is_empty() {
        return Err(format!("{target:?}: a file path is required"));
    }
    if let Some(bad) = rel
        .split('/')
        .find(|c| c.is_empty() || *c == "." || *c == "..")
    {
        let what = if bad.is_empty() { "an empty" } else { "a" };
        return Err(format!(
            "{target:?}: {what} {bad:?} path component would leave the task's filesystem or name a directory"
        ));
    }
    if target.contains('\0') {
        return Err(format!("{target:?}: contains a NUL byte"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_never_show_in_debug_and_round_trip_as_base64() {
        let b = Bytes::new(b"hunter2".to_vec());
        assert_eq!(format!("{b:?}"), "<7 bytes>");
        let json = serde_json::to_string(&b).expect("serialize");
        assert_eq!(json, "\"aHVudGVyMg==\"");
        let back: Bytes = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, b);
        assert!(serde_json::from_str::<Bytes>("\"%%\"").is_err());
    }

    #[test]
    fn names_and_targets() {
        assert!(check_name("db_password.v2").is_ok());
        for bad in ["", "a/b", "-x", "x-", "a b", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["pw", "app/pw", "/etc/app.conf"] {
            assert!(check_target(good).is_ok(), "{good:?}");
        }
        for bad in ["", "/", "../etc/passwd", "a/../../b", "a//b", "a/", "./a"] {
            assert!(check_target(bad).is_err(), "{bad:?}");
        }
        assert_eq!(PayloadKind::Secret.file_path("pw"), "/run/secrets/pw");
        assert_eq!(PayloadKind::Config.file_path("app.conf"), "/app.conf");
        assert_eq!(PayloadKind::Secret.file_path("/etc/x"), "/etc/x");
    }
}
