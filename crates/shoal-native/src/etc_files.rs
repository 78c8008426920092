//! The `/etc/hosts` and `/etc/resolv.conf` of an image task, as Docker writes a container's, from
//! the node's files, the task's spec (`--dns`, `--dns-search`, `--dns-option`, `--host`) and
//! whether the task has networks of its own. Pure: the node's files come in as text.
//!
//! A task on the node's network keeps the node's files, with the spec's settings over them. A
//! task with networks asks only the embedded DNS server inside its namespace (which forwards to
//! the spec's name servers, the network layer's part), keeps the search domains and gets
//! Docker's `ndots:0` after the spec's options (unless they set `ndots`). Extra hosts come one
//! line per name, after the base entries and before the task's own name, as in Docker.

use std::fmt::Write as _;
use std::net::IpAddr;

use shoal_types::dns::{self, DnsConfig, EMBEDDED_DNS_SERVER};

/// The entries every task's hosts file starts with when it does not take the node's.
pub(crate) const LOCALHOST: &str =
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// The task's `/etc/hosts`. `own`: the task's address on its first network, when it has
/// networks of its own; without, it shares the node's network, and `node` is the node's hosts
/// file (`None`: unreadable).
pub(crate) fn hosts(
    node: Option<&str>,
    extra: &[String],
    hostname: &str,
    own: Option<IpAddr>,
) -> String {
    let mut out = match (own, node) {
        (None, Some(node)) => node.to_string(),
        _ => LOCALHOST.to_string(),
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for (ip, name) in dns::host_entries(extra) {
        let _ = writeln!(out, "{ip}\t{name}");
    }
    match own {
        Some(addr) => {
            let _ = writeln!(out, "{addr}\t{hostname}");
        }
        None => {
            let _ = writeln!(out, "127.0.1.1\t{hostname}");
        }
    }
    out
}

/// The node's lines of one kind (`nameserver`, `search`, `options`), as they are.
fn node_lines<'a>(node: &'a str, keyword: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    node.lines().map(str::trim).filter(move |l| {
        l.split_whitespace()
            .next()
            .is_some_and(|first| first == keyword)
    })
}

/// The task's `/etc/resolv.conf`. `node` is the node's; `networked`: the task has networks of
/// its own, behind the embedded DNS server.
pub(crate) fn resolv_conf(node: &str, spec: Option<&DnsConfig>, networked: bool) -> String {
    let none = DnsConfig::default();
    let spec = spec.filter(|d| !d.is_empty());
    let Some(spec) = spec.or(networked.then_some(&none)) else {
        // The node's network and nothing asked: the node's resolver, as it is.
        return node.to_string();
    };
    let mut out = String::new();
    match spec.search_domains() {
        Some([]) => {}
        Some(domains) => {
            let _ = writeln!(out, "search {}", domains.join(" "));
        }
        None => node_lines(node, "search").for_each(|l| {
            let _ = writeln!(out, "{l}");
        }),
    }
    if networked {
        let _ = writeln!(out, "nameserver {EMBEDDED_DNS_SERVER}");
        let _ = writeln!(
            out,
            "options {}",
            spec.options_behind_embedded_server().join(" ")
        );
        return out;
    }
    if spec.nameservers.is_empty() {
        node_lines(node, "nameserver").for_each(|l| {
            let _ = writeln!(out, "{l}");
        });
    } else {
        for ns in &spec.nameservers {
            let _ = writeln!(out, "nameserver {ns}");
        }
    }
    if spec.options.is_empty() {
        node_lines(node, "options").for_each(|l| {
            let _ = writeln!(out, "{l}");
        });
    } else {
        let _ = writeln!(out, "options {}", spec.options.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "# generated\nnameserver 10.0.0.53\nsearch corp.example\noptions edns0\n";

    fn spec(ns: &[&str], search: &[&str], options: &[&str]) -> DnsConfig {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        DnsConfig {
            nameservers: v(ns),
            search: v(search),
            options: v(options),
        }
    }

    #[test]
    fn a_task_with_networks_asks_the_embedded_server_and_keeps_search_domains() {
        assert_eq!(
            resolv_conf(NODE, None, true),
            "search corp.example\nnameserver 127.0.0.11\noptions ndots:0\n"
        );
        // The spec's servers are the embedded server's upstreams, not the task's.
        let s = spec(&["192.0.2.53"], &["example.org"], &["timeout:2"]);
        assert_eq!(
            resolv_conf(NODE, Some(&s), true),
            "search example.org\nnameserver 127.0.0.11\noptions timeout:2 ndots:0\n"
        );
        let s = spec(&[], &["."], &["ndots:2"]);
        assert_eq!(
            resolv_conf(NODE, Some(&s), true),
            "nameserver 127.0.0.11\noptions ndots:2\n",
            "the user's ndots stays, and \".\" means no search domains"
        );
    }

    #[test]
    fn a_task_on_the_node_s_network_gets_the_spec_over_the_node_s_resolver() {
        assert_eq!(resolv_conf(NODE, None, false), NODE, "as it is");
        assert_eq!(resolv_conf(NODE, Some(&DnsConfig::default()), false), NODE);
        let s = spec(
            &["192.0.2.53", "192.0.2.54"],
            &["example.org"],
            &["timeout:2"],
        );
        assert_eq!(
            resolv_conf(NODE, Some(&s), false),
            "search example.org\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions timeout:2\n"
        );
        // What the spec leaves out is the node's.
        let s = spec(&["192.0.2.53"], &[], &[]);
        assert_eq!(
            resolv_conf(NODE, Some(&s), false),
            "search corp.example\nnameserver 192.0.2.53\noptions edns0\n"
        );
        let s = spec(&[], &["a.example", "b.example"], &[]);
        assert_eq!(
            resolv_conf(NODE, Some(&s), false),
            "search a.example b.example\nnameserver 10.0.0.53\noptions edns0\n"
        );
    }

    #[test]
    fn extra_hosts_come_one_per_name_before_the_task_s_own() {
        let extra = vec![
            "192.0.2.7 db.example".to_string(),
            "2001:db8::8 cache alias".to_string(),
        ];
        assert_eq!(
            hosts(None, &extra, "web-1", Some("10.0.9.5".parse().expect("ip"))),
            format!(
                "{LOCALHOST}192.0.2.7\tdb.example\n2001:db8::8\tcache\n2001:db8::8\talias\n10.0.9.5\tweb-1\n"
            )
        );
        assert_eq!(
            hosts(Some("127.0.0.1 localhost"), &extra[..1], "web-1", None),
            "127.0.0.1 localhost\n192.0.2.7\tdb.example\n127.0.1.1\tweb-1\n"
        );
        assert_eq!(
            hosts(None, &[], "h", None),
            format!("{LOCALHOST}127.0.1.1\th\n"),
            "an unreadable node file"
        );
    }
}
