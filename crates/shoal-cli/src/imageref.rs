//! How the CLI writes image references, as docker's does: `service create` adds `:latest` when
//! there is neither tag nor digest, pins the digest it resolved, and tables strip the digest of a
//! tagged reference. Parsing is shoal-types' [`ImageRef`], the same the daemon uses; a reference
//! that does not parse is passed through unchanged, for the daemon to refuse with its reason.

use shoal_types::image_ref::ImageRef;

/// docker's `imageWithTagString`: `bb` → `bb:latest`; the image unchanged when it does not parse.
pub fn with_default_tag(image: &str) -> String {
    ImageRef::parse(image).map_or_else(|_| image.to_string(), |r| r.with_default_tag().familiar())
}

/// docker's `imageWithDigestString`: pins a digest unless the reference already has one.
pub fn with_digest(image: &str, digest: &str) -> String {
    match ImageRef::parse(image) {
        Ok(r) if r.digest().is_none() => r
            .with_digest(digest)
            .map_or_else(|_| image.to_string(), |r| r.familiar()),
        _ => image.to_string(),
    }
}

/// How `service ls`/`ps` show an image: a tagged reference without its digest.
pub fn display(image: &str) -> String {
    match ImageRef::parse(image) {
        Ok(r) if r.tag_written() => r.without_digest().familiar(),
        _ => image.to_string(),
    }
}

/// `image ls`'s REPOSITORY and TAG columns of a stored tag.
pub fn repo_and_tag(tagged: &str) -> (String, String) {
    match ImageRef::parse(tagged) {
        Ok(r) if r.tag_written() => (r.familiar_name(), r.tag().unwrap_or("<none>").to_string()),
        Ok(r) => (r.familiar_name(), "<none>".to_string()),
        Err(_) => (tagged.to_string(), "<none>".to_string()),
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
        assert_eq!(with_default_tag("host"), "host:latest");
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
        assert_eq!(with_digest("bb:latest", "sha256:0000"), "bb:latest");
        assert_eq!(display(&pinned), "bb:latest");
        assert_eq!(display(&format!("bb@{DIGEST}")), format!("bb@{DIGEST}"));
        assert_eq!(display("docker.io/library/bb:1"), "bb:1");
        assert_eq!(display("bb"), "bb");
    }

    #[test]
    fn ls_splits_like_docker() {
        assert_eq!(
            repo_and_tag("localhost:5000/app:v1"),
            ("localhost:5000/app".into(), "v1".into())
        );
        assert_eq!(
            repo_and_tag("shoal-test/busybox:latest"),
            ("shoal-test/busybox".into(), "latest".into())
        );
    }
}
