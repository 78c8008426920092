//! Image references as docker's `distribution/reference` normalises them: `bb` is
//! `docker.io/library/bb:latest`, shown in its familiar form `bb:latest`; `service create` adds
//! `:latest` when there is neither tag nor digest; tables strip the digest of a tagged reference.

/// A parsed, normalised reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host, `docker.io` when none was given.
    pub domain: String,
    /// Repository path, with `library/` added for official images on docker.io.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

const DEFAULT_DOMAIN: &str = "docker.io";

impl Reference {
    /// `reference.ParseNormalizedNamed`; None for what docker would refuse.
    pub fn parse(s: &str) -> Option<Reference> {
        if s.is_empty() || s.len() > 4096 {
            return None;
        }
        // A bare 64-hex string is an image ID, never a name.
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest
            && !valid_digest(d)
        {
            return None;
        }
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return None;
        }
        let (domain, path) = split_domain(name);
        if domain != DEFAULT_DOMAIN && !valid_domain(&domain) {
            return None;
        }
        if path.is_empty() || path.len() > 255 || !path.split('/').all(valid_component) {
            return None;
        }
        Some(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The short form users type: no `docker.io/`, no `library/`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

/// docker's `imageWithTagString`: adds `:latest` when the reference has neither tag nor digest;
/// the image unchanged when it does not parse.
pub fn with_default_tag(image: &str) -> String {
    match Reference::parse(image) {
        Some(mut r) => {
            if r.tag.is_none() && r.digest.is_none() {
                r.tag = Some("latest".to_string());
            }
            r.familiar()
        }
        None => image.to_string(),
    }
}

/// docker's `imageWithDigestString`: pins a digest unless the reference already has one.
pub fn with_digest(image: &str, digest: &str) -> String {
    match Reference::parse(image) {
        Some(mut r) if r.digest.is_none() => {
            r.digest = Some(digest.to_string());
            r.familiar()
        }
        _ => image.to_string(),
    }
}

/// How `service ls`/`ps` show an image: a tagged reference without its digest.
pub fn display(image: &str) -> String {
    match Reference::parse(image) {
        Some(r) if r.tag.is_some() => {
            let mut r = r;
            r.digest = None;
            r.familiar()
        }
        _ => image.to_string(),
    }
}

fn split_domain(name: &str) -> (String, String) {
    let (domain, rest) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == DEFAULT_DOMAIN && !rest.contains('/') {
        return (domain, format!("library/{rest}"));
    }
    (domain, rest)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let sep_start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Host names, IPv4, `[IPv6]`, each with an optional port.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip6, tail))
                if !ip6.is_empty() && ip6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') =>
            {
                (None, tail.strip_prefix(':'))
            }
            _ => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.split('.').all(|label| {
                    let b = label.as_bytes();
                    !b.is_empty()
                        && b[0].is_ascii_alphanumeric()
                        && b[b.len() - 1].is_ascii_alphanumeric()
                        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
                })
        }
    }
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// `algorithm:hex` with at least 32 hex digits.
fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg.as_bytes()[0].is_ascii_alphabetic()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'))
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:aa5e95a6ad90705f62e08600288bcc2e72a460c3602d90e27addab85a252c675";

    #[test]
    fn adds_latest_like_docker() {
        assert_eq!(with_default_tag("bb"), "bb:latest");
        assert_eq!(with_default_tag("bb:v2"), "bb:v2");
        assert_eq!(with_default_tag("docker.io/library/nginx"), "nginx:latest");
        assert_eq!(with_default_tag("library/nginx"), "nginx:latest");
        assert_eq!(with_default_tag("docker.io/user/app"), "user/app:latest");
        assert_eq!(
            with_default_tag("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            with_default_tag("registry.example.com/a/b:1.0"),
            "registry.example.com/a/b:1.0"
        );
        let pinned = format!("bb@{DIGEST}");
        assert_eq!(with_default_tag(&pinned), pinned);
        // Not a valid reference: left alone (the daemon will say why).
        assert_eq!(with_default_tag("Bad_Name"), "Bad_Name");
        assert_eq!(with_default_tag("a//b"), "a//b");
    }

    #[test]
    fn digests_pin_and_display_strips() {
        assert_eq!(
            with_digest("bb:latest", DIGEST),
            format!("bb:latest@{DIGEST}")
        );
        let pinned = format!("bb:latest@{DIGEST}");
        assert_eq!(with_digest(&pinned, "sha256:0000"), pinned);
        assert_eq!(display(&pinned), "bb:latest");
        assert_eq!(display(&format!("bb@{DIGEST}")), format!("bb@{DIGEST}"));
        assert_eq!(display("docker.io/library/bb:1"), "bb:1");
    }

    #[test]
    fn refuses_what_docker_refuses() {
        assert!(Reference::parse("").is_none());
        assert!(Reference::parse(&"a".repeat(64).replace('a', "f")).is_none());
        assert!(Reference::parse("bb:").is_none());
        assert!(Reference::parse("bb@sha256:short").is_none());
        assert!(Reference::parse("-bb").is_none());
        assert!(Reference::parse("a__b/c--d/e.f").is_some());
        assert!(Reference::parse("[::1]:5000/app").is_some());
    }
}
