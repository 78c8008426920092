//! Image references, parsed and normalised the way Docker does: `busybox` is
//! `docker.io/library/busybox:latest`, `host:5000/a/b:tag` keeps its registry, and
//! `name@sha256:<hex>` pins a manifest digest. Pure; no IO.

use std::fmt;

use crate::digest::Digest;

pub const DEFAULT_REGISTRY: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// `library/busybox`, `a/b`.
    pub repository: String,
    /// `None` only when the reference names a digest and no tag.
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format {input:?}: {why}")]
pub struct ReferenceError {
    pub input: String,
    pub why: String,
}

impl Reference {
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let err = |why: String| ReferenceError {
            input: input.to_string(),
            why,
        };
        if input.is_empty() {
            return Err(err("the reference is empty".into()));
        }
        if input.len() > 255 * 2 {
            return Err(err("the reference is longer than 510 characters".into()));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((name, d)) => (
                name,
                Some(Digest::parse(d).map_err(|why| err(format!("digest {d:?}: {why}")))?),
            ),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry's port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(|why| err(format!("tag {tag:?}: {why}")))?;
        }
        if name.is_empty() {
            return Err(err("the repository name is empty".into()));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        check_registry(&registry).map_err(|why| err(format!("registry {registry:?}: {why}")))?;
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        if Digest::from_hex(&path).is_ok() {
            // Docker refuses these so that an image ID is never taken for a name to pull.
            return Err(err(
                "a 64-character hex string is an image ID, not a repository name".into(),
            ));
        }
        for component in path.split('/') {
            check_component(component)
                .map_err(|why| err(format!("repository component {component:?}: {why}")))?;
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `docker.io/library/busybox` — the part tags and digests hang off.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as Docker shows it: `busybox`, `user/app`, `reg:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// `docker.io/library/busybox:latest`, if the reference has a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `docker.io/library/busybox@sha256:...`, if the reference has a digest.
    pub fn digested(&self) -> Option<String> {
        self.digest.as_ref().map(|d| format!("{}@{d}", self.name()))
    }

    /// What a registry is asked for: the digest when there is one, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `docker.io/library/busybox:latest` → `busybox:latest`; anything unparsable is kept as is.
pub fn familiar(full: &str) -> String {
    match Reference::parse(full) {
        Ok(r) => {
            let mut s = r.familiar_name();
            if let Some(t) = &r.tag {
                s.push(':');
                s.push_str(t);
            }
            if let Some(d) = &r.digest {
                s.push('@');
                s.push_str(&d.to_string());
            }
            s
        }
        Err(_) => full.to_string(),
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("the tag is empty".into());
    }
    if tag.len() > 128 {
        return Err("longer than 128 characters".into());
    }
    let mut chars = tag.chars();
    if !chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err("must start with a letter, digit or '_'".into());
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!(
            "{c:?} is not allowed (letters, digits, '_', '.', '-')"
        ));
    }
    Ok(())
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || registry.starts_with('[') => (h, Some(p)),
        _ => (registry, None),
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("port {port:?} is not a number up to 65535"));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':')))
    {
        return Err(format!("{c:?} is not allowed in a host name"));
    }
    Ok(())
}

/// Docker's path component grammar: lowercase alphanumerics separated by `.`, `_`, `__` or
/// runs of `-`.
fn check_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("empty (a doubled or trailing '/')".into());
    }
    if let Some(bad) = c.chars().find(|ch| {
        !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-'))
    }) {
        return Err(if bad.is_ascii_uppercase() {
            "repository names must be lowercase".into()
        } else {
            format!("{bad:?} is not allowed")
        });
    }
    let first = c.chars().next();
    let last = c.chars().last();
    let alnum = |x: Option<char>| x.is_some_and(|x| x.is_ascii_alphanumeric());
    if !alnum(first) || !alnum(last) {
        return Err("must start and end with a letter or digit".into());
    }
    let bytes = c.as_bytes();
    for w in bytes.windows(2) {
        let sep = |b: u8| matches!(b, b'.' | b'_' | b'-');
        if sep(w[0]) && sep(w[1]) && !(w == b"__" || w == b"--") {
            return Err("separators '.', '_', '-' may not follow one another".into());
        }
    }
    if c.contains("___") {
        return Err("at most two '_' in a row".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        match Reference::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn docker_hub_short_names() {
        let r = p("busybox");
        assert_eq!(
            r.tagged().as_deref(),
            Some("docker.io/library/busybox:latest")
        );
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(
            p("user/app:1.2").tagged().as_deref(),
            Some("docker.io/user/app:1.2")
        );
        assert_eq!(familiar("docker.io/user/app:1.2"), "user/app:1.2");
        assert_eq!(p("index.docker.io/library/busybox").registry, "docker.io");
    }

    #[test]
    fn registries_ports_and_digests() {
        let r = p("127.0.0.1:5000/a/b:t");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("t"));
        let r = p("localhost/x");
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let hex = "a".repeat(64);
        let r = p(&format!("reg.io:5000/app@sha256:{hex}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), format!("sha256:{hex}"));
        assert_eq!(
            familiar(&format!("reg.io:5000/app@sha256:{hex}")),
            format!("reg.io:5000/app@sha256:{hex}")
        );
        let r = p(&format!("busybox:1.36@sha256:{hex}"));
        assert_eq!(r.tag.as_deref(), Some("1.36"));
        assert!(r.digest.is_some());
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = |s: &str| match Reference::parse(s) {
            Ok(r) => panic!("{s} parsed as {r}"),
            Err(e) => e.to_string(),
        };
        assert!(e("BusyBox").contains("lowercase"), "{}", e("BusyBox"));
        assert!(e("busybox:").contains("tag \"\""));
        assert!(e("busybox:-x").contains("tag \"-x\""));
        assert!(e("a//b").contains("component \"\""));
        assert!(e("busybox@sha256:xyz").contains("digest"));
        assert!(e("reg.io:99999/a").contains("port"));
        assert!(e("a/-b").contains("\"-b\""));
        assert!(e("").contains("empty"));
        assert!(e(&"ab".repeat(32)).contains("image ID"));
    }
}
