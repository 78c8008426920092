//! A task's name resolution settings (`service create --dns --dns-search --dns-option --host`):
//! the shapes of Docker's `ContainerSpec.DNSConfig` and `Hosts`, the checks of their entries, and
//! the rules every runtime follows when it writes them into a task, so the native and the Docker
//! runtimes give a task the same `/etc/resolv.conf` and `/etc/hosts`. Pure.

use std::net::IpAddr;

/// The DNS server a task with networks of its own asks: the node's, inside the task's network
/// namespace. It answers the cluster's names and forwards the rest (to the spec's name servers
/// when it has some).
pub const EMBEDDED_DNS_SERVER: &str = "127.0.0.11";

/// The option Docker adds for a task behind the embedded server, so that a short name is
/// first asked as it is (a service name) before the search domains are tried.
pub const EMBEDDED_NDOTS: &str = "ndots:0";

/// Docker's `DNSConfig`: what goes into the task's `/etc/resolv.conf`. Each list left empty is
/// the node's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DnsConfig {
    /// IP addresses of name servers, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Search domains, in order; `["."]` means none at all (not even the node's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options as resolv.conf(5) spells them: `ndots:2`, `timeout:3`, `rotate`...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl DnsConfig {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.search.is_empty() && self.options.is_empty()
    }

    /// The search line's domains: `None` leaves the node's, `Some(empty)` means none (`.`).
    pub fn search_domains(&self) -> Option<&[String]> {
        match self.search.as_slice() {
            [] => None,
            [dot] if dot == "." => Some(&[]),
            s => Some(s),
        }
    }

    /// The options of a task behind the embedded server: the spec's, in order, then Docker's
    /// `ndots:0` unless the spec sets `ndots` itself (Docker keeps the user's).
    pub fn options_behind_embedded_server(&self) -> Vec<String> {
        let mut out = self.options.clone();
        if !self.options.iter().any(|o| ndots_of(o).is_some()) {
            out.push(EMBEDDED_NDOTS.to_string());
        }
        out
    }
}

/// The options of a task behind the embedded server without a spec of its own.
pub fn default_options_behind_embedded_server() -> Vec<String> {
    DnsConfig::default().options_behind_embedded_server()
}

/// `ndots:N`'s number.
fn ndots_of(option: &str) -> Option<u32> {
    option.strip_prefix("ndots:")?.parse().ok()
}

pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// Whether `s` is a DNS name: dot-separated labels of letters, digits, `-` (not at a label's
/// ends) and `_`, each at most 63 characters, at most 253 in all, with an optional final dot.
pub fn is_dns_name(s: &str) -> bool {
    let name = s.strip_suffix('.').unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Why a resolver option is not one, if it is not.
pub fn check_option(option: &str) -> Result<(), String> {
    if option.is_empty() || option.chars().any(char::is_whitespace) {
        return Err(format!(
            "{option:?} is not a resolver option: one word, such as ndots:2 or timeout:3"
        ));
    }
    if option.starts_with("ndots:") && ndots_of(option).is_none() {
        return Err(format!(
            "{option:?}: ndots takes a number of dots, such as ndots:2"
        ));
    }
    Ok(())
}

/// Why a `Hosts` entry is not `IP_address canonical_hostname [aliases...]`, if it is not.
pub fn check_host_entry(entry: &str) -> Result<(), String> {
    let mut fields = entry.split_whitespace();
    let (Some(ip), Some(_)) = (fields.next(), fields.clone().next()) else {
        return Err(format!(
            "{entry:?} is not \"IP_address hostname [aliases...]\""
        ));
    };
    if !is_ip(ip) {
        return Err(format!("{entry:?}: {ip:?} is not an IP address"));
    }
    match fields.find(|name| !is_dns_name(name)) {
        Some(name) => Err(format!("{entry:?}: {name:?} is not a valid host name")),
        None => Ok(()),
    }
}

/// The `(address, name)` pairs of `Hosts` entries, one per name (the canonical name, then each
/// alias), in order: the lines a task's `/etc/hosts` gets, and Docker's `ExtraHosts`. An entry
/// without a name gives none.
pub fn host_entries(hosts: &[String]) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for entry in hosts {
        let mut fields = entry.split_whitespace();
        if let Some(ip) = fields.next() {
            out.extend(fields.map(|name| (ip, name)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(options: &[&str]) -> DnsConfig {
        DnsConfig {
            options: options.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_embedded_server_adds_ndots_0_unless_the_spec_sets_ndots() {
        assert_eq!(
            cfg(&["timeout:2"]).options_behind_embedded_server(),
            ["timeout:2", "ndots:0"]
        );
        assert_eq!(
            cfg(&["ndots:3", "rotate"]).options_behind_embedded_server(),
            ["ndots:3", "rotate"]
        );
        assert_eq!(default_options_behind_embedded_server(), ["ndots:0"]);
    }

    #[test]
    fn a_lone_dot_means_no_search_domains() {
        let mut c = DnsConfig::default();
        assert_eq!(c.search_domains(), None);
        c.search = vec![".".into()];
        assert_eq!(c.search_domains(), Some(&[][..]));
        c.search = vec!["a.example".into(), "b".into()];
        assert_eq!(c.search_domains().map(<[String]>::len), Some(2));
    }

    #[test]
    fn names_options_and_hosts_entries() {
        for good in ["example.org", "example.org.", "a", "x_y.b-c.io", "1.2"] {
            assert!(is_dns_name(good), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "bad_dom!",
            long.as_str(),
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        assert!(check_option("timeout:2").is_ok());
        assert!(check_option("ndots:x").is_err());
        assert!(check_option("a b").is_err());
        assert!(check_option("").is_err());
        assert!(check_host_entry("192.0.2.7 db.example").is_ok());
        assert!(check_host_entry("2001:db8::1  v6 alias").is_ok());
        assert!(check_host_entry("192.0.2.7").is_err());
        assert!(check_host_entry("db.example 192.0.2.7").is_err());
        assert!(check_host_entry("192.0.2.7 bad!name").is_err());
        assert!(is_ip("::1") && !is_ip("1.2.3") && !is_ip("[::1]"));
    }

    #[test]
    fn every_name_of_an_entry_maps_to_its_address() {
        let hosts = vec![
            "192.0.2.7 db.example".to_string(),
            "192.0.2.8\tcache.example  alias".to_string(),
            "192.0.2.9".to_string(),
        ];
        assert_eq!(
            host_entries(&hosts),
            [
                ("192.0.2.7", "db.example"),
                ("192.0.2.8", "cache.example"),
                ("192.0.2.8", "alias")
            ]
        );
    }
}
