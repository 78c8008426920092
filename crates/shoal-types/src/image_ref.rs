//! Image references: the one parser every shoal crate uses (the CLI, the image store, the Docker
//! runtime, the agent's `host` check). oci-spec's `distribution::Reference` parses and
//! normalises them as Docker does (`busybox` is `docker.io/library/busybox:latest`,
//! `localhost:5000/x:y` keeps its registry, `name@sha256:…` pins a digest); this wrapper adds
//! what Docker checks on top (a 64-hex name is an image ID, a port fits in 16 bits), remembers
//! whether a tag was written (so `bb` shows as `bb`, not `bb:latest`), prints Docker's familiar
//! short form, and says which part of a bad reference is wrong. Pure; no IO.

use std::fmt;
use std::str::FromStr;

use oci_spec::distribution::{ParseError, Reference};

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
/// shoal's reserved image name: run the command on the node's own filesystem.
pub const HOST_IMAGE: &str = "host";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    inner: Reference,
    /// oci-spec adds `latest` when the input names neither tag nor digest; Docker's tables and
    /// the CLI still tell the two apart.
    tag_written: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference format {input:?}: {why}")]
pub struct ImageRefError {
    pub input: String,
    pub why: String,
    #[source]
    pub source: Option<ParseError>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef, ImageRefError> {
        let err = |why: String, source: Option<ParseError>| ImageRefError {
            input: input.to_string(),
            why,
            source,
        };
        if input.is_empty() {
            return Err(err("the reference is empty".into(), None));
        }
        if is_image_id(input) {
            // Docker refuses these so that an image ID is never taken for a name to pull.
            return Err(err(
                "a 64-character hex string is an image ID, not a repository name".into(),
                None,
            ));
        }
        let inner = match Reference::try_from(input) {
            Ok(r) => r,
            Err(e) => return Err(err(explain(input, &e), Some(e))),
        };
        // oci-spec's grammar reads an upper-case first component as a registry host (as Docker
        // does), but its domain split files it under Docker Hub, giving a repository no parser
        // accepts; Docker would pull it from that host. Refuse it rather than guess.
        for c in inner.repository().split('/') {
            if let Err(why) = check_component(c) {
                return Err(err(format!("repository component {c:?}: {why}"), None));
            }
        }
        if let Some((_, port)) = inner.registry().rsplit_once(':')
            && port.parse::<u16>().is_err()
        {
            return Err(err(
                format!(
                    "registry {:?}: port {port:?} is not a number up to 65535",
                    inner.registry()
                ),
                None,
            ));
        }
        let name_part = input.split_once('@').map_or(input, |(n, _)| n);
        let last = name_part.rsplit('/').next().unwrap_or(name_part);
        Ok(ImageRef {
            inner,
            tag_written: last.contains(':'),
        })
    }

    /// `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// `library/busybox`, `a/b`.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, `latest` when the input named neither tag nor digest.
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// Whether the input wrote a tag (`bb:latest`) rather than having `latest` implied (`bb`).
    pub fn tag_written(&self) -> bool {
        self.tag_written
    }

    /// `sha256:<hex>` when the reference pins a digest.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// The reference as registry clients take it (oci-client's `Reference` is this type).
    pub fn as_oci(&self) -> &Reference {
        &self.inner
    }

    /// `docker.io/library/busybox`: the part tags and digests hang off.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry(), self.repository())
    }

    /// The name as Docker shows it: `busybox`, `user/app`, `reg:5000/app`. Docker Hub's name is
    /// kept when the repository's first component would read as a registry without it
    /// (`docker.io/a.b/c`), so the familiar name always parses back to the same image.
    pub fn familiar_name(&self) -> String {
        if self.registry() == DEFAULT_REGISTRY {
            let repository = self.repository();
            let short = match repository.strip_prefix("library/") {
                // A bare 64-hex name would read as an image ID: keep `library/` in front.
                Some(short) if !short.contains('/') && !is_image_id(short) => short,
                _ => repository,
            };
            match short.split_once('/') {
                Some((first, _)) if reads_as_registry(first) => self.name(),
                _ => short.to_string(),
            }
        } else {
            self.name()
        }
    }

    /// Docker's familiar string: the familiar name, the tag when one was written, the digest.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = self.tag().filter(|_| self.tag_written) {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = self.digest() {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// `docker.io/library/busybox:latest`, if the reference has a tag (written or implied).
    pub fn tagged(&self) -> Option<String> {
        self.tag().map(|t| format!("{}:{t}", self.name()))
    }

    /// `docker.io/library/busybox@sha256:…`, if the reference pins a digest.
    pub fn digested(&self) -> Option<String> {
        self.digest().map(|d| format!("{}@{d}", self.name()))
    }

    /// What a registry is asked for: the digest when there is one, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest().or(self.tag()).unwrap_or(DEFAULT_TAG)
    }

    /// docker's `imageWithTagString`: `latest` written out when neither tag nor digest is.
    pub fn with_default_tag(mut self) -> ImageRef {
        if self.digest().is_none() {
            self.tag_written = true;
        }
        self
    }

    /// The same reference without its digest (a digest-only reference is returned as is).
    pub fn without_digest(self) -> ImageRef {
        match (self.tag(), self.digest()) {
            (Some(t), Some(_)) => ImageRef {
                inner: Reference::with_tag(
                    self.registry().to_string(),
                    self.repository().to_string(),
                    t.to_string(),
                ),
                tag_written: self.tag_written,
            },
            _ => self,
        }
    }

    /// The same reference pinned to `digest`, checked like any other reference.
    pub fn with_digest(&self, digest: &str) -> Result<ImageRef, ImageRefError> {
        ImageRef::parse(&format!("{}@{digest}", self.familiar()))
    }

    /// Whether this is shoal's reserved `host` image (any tag, no digest).
    pub fn is_host(&self) -> bool {
        self.registry() == DEFAULT_REGISTRY
            && self.repository().strip_prefix("library/") == Some(HOST_IMAGE)
            && self.digest().is_none()
    }
}

impl fmt::Display for ImageRef {
    /// The normalised form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl FromStr for ImageRef {
    type Err = ImageRefError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// `docker.io/library/busybox:latest` → `busybox:latest`; anything unparsable is kept as is.
/// 64 lower-case hex digits: what Docker takes for an image ID, never for a name.
fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn familiar(full: &str) -> String {
    ImageRef::parse(full).map_or_else(|_| full.to_string(), |r| r.familiar())
}

/// oci-spec says only "invalid reference format"; find the part that made it so.
fn explain(input: &str, e: &ParseError) -> String {
    let (rest, digest) = match input.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (input, None),
    };
    if let Some(d) = digest
        && let Err(why) = check_digest(d)
    {
        return format!("digest {d:?}: {why}");
    }
    if matches!(
        e,
        ParseError::DigestInvalidFormat
            | ParseError::DigestInvalidLength
            | ParseError::DigestUnsupported
    ) {
        return format!("digest {:?}: {e}", digest.unwrap_or_default());
    }
    // A ':' after the last '/' starts the tag; one before it is a registry's port.
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(t) = tag
        && let Err(why) = check_tag(t)
    {
        return format!("tag {t:?}: {why}");
    }
    if name.is_empty() {
        return "the repository name is empty".into();
    }
    let path = match name.split_once('/') {
        Some((first, path)) if reads_as_registry(first) => {
            if let Err(why) = check_registry(first) {
                return format!("registry {first:?}: {why}");
            }
            path
        }
        _ => name,
    };
    for c in path.split('/') {
        if let Err(why) = check_component(c) {
            return format!("repository component {c:?}: {why}");
        }
    }
    e.to_string()
}

/// Whether the first component of a name is a registry rather than part of the repository
/// (Docker's rule: it has a `.` or a port, or is `localhost`).
fn reads_as_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

fn check_digest(d: &str) -> Result<(), String> {
    let Some((algo, hex)) = d.split_once(':') else {
        return Err("expected ALGORITHM:HEX".into());
    };
    let want = match algo {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(format!("algorithm {algo:?} is not supported")),
    };
    if hex.len() != want || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("expected {want} hex digits after {algo}:"));
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("the tag is empty".into());
    }
    if tag.len() > 128 {
        return Err("longer than 128 characters".into());
    }
    if !tag
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err("must start with a letter, digit or '_'".into());
    }
    match tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        Some(c) => Err(format!(
            "{c:?} is not allowed (letters, digits, '_', '.', '-')"
        )),
        None => Ok(()),
    }
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
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
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed in a host name (IPv6 literals are not supported)"
        ));
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
    let alnum = |x: Option<char>| x.is_some_and(|x| x.is_ascii_alphanumeric());
    if !alnum(c.chars().next()) || !alnum(c.chars().last()) {
        return Err("must start and end with a letter or digit".into());
    }
    let sep = |b: u8| matches!(b, b'.' | b'_' | b'-');
    if c.as_bytes()
        .windows(2)
        .any(|w| sep(w[0]) && sep(w[1]) && w != b"__" && w != b"--")
        || c.contains("___")
    {
        return Err("separators are '.', '_', '__' or a run of '-'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageRef {
        match ImageRef::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    const HEX: &str = "aa5e95a6ad90705f62e08600288bcc2e72a460c3602d90e27addab85a252c675";

    /// The normalisations of distribution/reference's `ParseNormalizedNamed` tests.
    #[test]
    fn normalises_like_docker() {
        for (input, full, familiar) in [
            ("busybox", "docker.io/library/busybox:latest", "busybox"),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("library/nginx", "docker.io/library/nginx:latest", "nginx"),
            (
                "docker.io/library/nginx",
                "docker.io/library/nginx:latest",
                "nginx",
            ),
            (
                "index.docker.io/library/busybox",
                "docker.io/library/busybox:latest",
                "busybox",
            ),
            ("user/app:1.2", "docker.io/user/app:1.2", "user/app:1.2"),
            (
                "localhost:5000/x:y",
                "localhost:5000/x:y",
                "localhost:5000/x:y",
            ),
            ("localhost/x", "localhost/x:latest", "localhost/x"),
            (
                "127.0.0.1:5000/a/b:t",
                "127.0.0.1:5000/a/b:t",
                "127.0.0.1:5000/a/b:t",
            ),
            (
                "reg.example.com/a/b:1.0",
                "reg.example.com/a/b:1.0",
                "reg.example.com/a/b:1.0",
            ),
            // No '.', ':' or localhost: the first component is a path, not a registry.
            ("foo/bar", "docker.io/foo/bar:latest", "foo/bar"),
            (
                "a__b/c--d/e.f",
                "docker.io/a__b/c--d/e.f:latest",
                "a__b/c--d/e.f",
            ),
            (
                "host:latest",
                "docker.io/library/host:latest",
                "host:latest",
            ),
        ] {
            let r = p(input);
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
        }
        let r = p("127.0.0.1:5000/a/b:t");
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("127.0.0.1:5000", "a/b", Some("t"))
        );
    }

    #[test]
    fn digests_pin_and_tags_stay() {
        let r = p(&format!("reg.io:5000/app@sha256:{HEX}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_ref(), format!("sha256:{HEX}"));
        assert_eq!(r.familiar(), format!("reg.io:5000/app@sha256:{HEX}"));
        assert_eq!(
            r.digested().as_deref(),
            Some(format!("reg.io:5000/app@sha256:{HEX}").as_str())
        );
        let r = p(&format!("busybox:1.36@sha256:{HEX}"));
        assert_eq!(r.tag(), Some("1.36"));
        assert_eq!(r.manifest_ref(), format!("sha256:{HEX}"));
        assert_eq!(r.clone().without_digest().familiar(), "busybox:1.36");
        assert_eq!(p("bb").tag(), Some("latest"));
        assert!(!p("bb").tag_written());
        assert_eq!(p("bb").with_default_tag().familiar(), "bb:latest");
        let pinned = format!("bb@sha256:{HEX}");
        assert_eq!(p(&pinned).with_default_tag().familiar(), pinned);
        assert_eq!(
            p("bb:latest")
                .with_digest(&format!("sha256:{HEX}"))
                .map(|r| r.familiar()),
            Ok(format!("bb:latest@sha256:{HEX}"))
        );
        assert!(p("bb").with_digest("sha256:0000").is_err());
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("not a reference"), "not a reference");
    }

    #[test]
    fn host_is_the_reserved_name() {
        for h in ["host", "host:latest", "host:v2", "docker.io/library/host"] {
            assert!(p(h).is_host(), "{h}");
        }
        for n in ["hostile", "user/host", "reg.io/host", "busybox"] {
            assert!(!p(n).is_host(), "{n}");
        }
        assert!(!p(&format!("host@sha256:{HEX}")).is_host());
        assert!(ImageRef::parse("host:").is_err());
    }

    /// Found by the `image_reference` fuzz target: the familiar form dropped `docker.io/` from
    /// a repository whose first component has a dot, naming an image on another registry.
    #[test]
    fn familiar_names_parse_back_to_the_same_image() {
        for full in [
            "docker.io/librar.io/x:latest",
            "docker.io/localhost/x:1",
            "docker.io/library/a.b/c:latest",
            "docker.io/library/busybox:latest",
            "docker.io/user/app:1.2",
            "reg.io:5000/app:t",
            // Found by the image_reference fuzz target: the short name is an image ID's shape.
            "docker.io/library/0123456789abcfef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            let r = p(full);
            let short = familiar(full);
            assert_eq!(p(&short), r, "{full} is shown as {short}");
        }
        assert_eq!(
            familiar("docker.io/librar.io/x:latest"),
            "docker.io/librar.io/x:latest"
        );
        assert_eq!(familiar("docker.io/librar.io/x"), "docker.io/librar.io/x");
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        let e = |s: &str| match ImageRef::parse(s) {
            Ok(r) => panic!("{s} parsed as {r}"),
            Err(e) => e.to_string(),
        };
        for (input, needle) in [
            ("BusyBox", "lowercase"),
            ("busybox:", "tag \"\": the tag is empty"),
            ("busybox:-x", "tag \"-x\""),
            ("a//b", "component \"\""),
            ("busybox@sha256:xyz", "digest \"sha256:xyz\""),
            ("busybox@md5:0123456789abcdef0123456789abcdef", "md5"),
            ("reg.io:99999/a", "port \"99999\""),
            ("a/-b", "\"-b\""),
            ("a/b..c", "separators"),
            ("", "empty"),
            (":tag", "repository name is empty"),
            ("[::1]:5000/app", "IPv6"),
            // Found by the `image_reference` fuzz target: oci-spec took this for Docker Hub's
            // `gHcrnio/a/x`, which printed as a reference that does not parse.
            ("gHcrnio/a/x", "lowercase"),
            ("Reg/app:1", "lowercase"),
        ] {
            let got = e(input);
            assert!(got.contains(needle), "{input:?}: {got}");
            assert!(got.contains(&format!("{input:?}")), "{got}");
        }
        assert!(e(&"ab".repeat(32)).contains("image ID"));
    }
}
