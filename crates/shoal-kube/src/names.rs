//! Kubernetes' object name rules, with the API server's wording.
//!
//! Concurrency: pure functions.

const SUBDOMAIN_WHY: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_WHY: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Why `name` is not a DNS-1123 subdomain (most kinds' names); empty when it is one.
pub fn dns_subdomain_errors(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if !name.split('.').all(is_label) {
        out.push(SUBDOMAIN_WHY.to_string());
    }
    out
}

/// Why `name` is not a DNS-1123 label (a namespace's name); empty when it is one.
pub fn dns_label_errors(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    if name.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !is_label(name) {
        out.push(LABEL_WHY.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_rfc_1123() {
        assert!(dns_subdomain_errors("web.1.abc-def").is_empty());
        assert!(!dns_subdomain_errors("Web").is_empty());
        assert!(!dns_subdomain_errors("-web").is_empty());
        assert!(!dns_subdomain_errors("").is_empty());
        assert!(!dns_subdomain_errors("a..b").is_empty());
        assert!(dns_label_errors("shop").is_empty());
        assert!(!dns_label_errors("shop.x").is_empty());
        assert!(!dns_label_errors(&"a".repeat(64)).is_empty());
    }
}
