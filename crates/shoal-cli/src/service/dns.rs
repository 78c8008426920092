//! `--dns`, `--dns-search`, `--dns-option` and `--host` of `service create`, and their
//! `--*-add`/`--*-rm` forms of `service update`, checked and applied as docker's client does:
//! `--host name:ip` (or `name=ip`, `name:[v6]`) becomes Swarm's `IP name` entry; an update sorts
//! the DNS lists, drops duplicates, and removes a host name (`--host-rm name`, or only where it
//! maps to that address with `name:ip`) before appending the added entries.

use std::net::IpAddr;

use bollard_stubs::models::{TaskSpecContainerSpec, TaskSpecContainerSpecDnsConfig};

use crate::error::{CliError, Result};

/// `--dns`: an IP address, written as docker writes it back.
pub fn parse_nameserver(flag: &str, value: &str) -> Result<String> {
    value
        .trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| {
            CliError::invalid_flag(
                flag,
                value,
                format!("IP address is not correctly formatted: {value}"),
            )
        })
}

/// `--dns-search`: a domain, or `.` for none.
pub fn parse_search(flag: &str, value: &str) -> Result<String> {
    let v = value.trim();
    if v == "." || shoal_types::dns::is_dns_name(v) {
        Ok(v.to_string())
    } else {
        Err(CliError::invalid_flag(
            flag,
            value,
            format!("{v} is not a valid domain"),
        ))
    }
}

/// `--host name:ip` (`name=ip`, `name:[ipv6]`) as Swarm's `IP name` entry.
pub fn parse_host(flag: &str, value: &str) -> Result<String> {
    let (name, ip) = value
        .split_once('=')
        .or_else(|| value.split_once(':'))
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| {
            CliError::invalid_flag(flag, value, format!("bad format for add-host: {value:?}"))
        })?;
    let bare = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    let ip: IpAddr = bare.parse().map_err(|_| {
        CliError::invalid_flag(
            flag,
            value,
            format!("invalid IP address in add-host: {ip:?}"),
        )
    })?;
    Ok(format!("{ip} {name}"))
}

/// The DNS flags of a command, each list as given.
#[derive(Debug, Default)]
pub struct DnsFlags<'a> {
    pub nameservers: &'a [String],
    pub search: &'a [String],
    pub options: &'a [String],
}

impl DnsFlags<'_> {
    fn any(&self) -> bool {
        !(self.nameservers.is_empty() && self.search.is_empty() && self.options.is_empty())
    }
}

fn some(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

/// `service create`'s `DNSConfig` (docker sends one, empty without the flags).
pub fn create_dns_config(f: &DnsFlags<'_>) -> Result<TaskSpecContainerSpecDnsConfig> {
    Ok(TaskSpecContainerSpecDnsConfig {
        nameservers: some(
            f.nameservers
                .iter()
                .map(|v| parse_nameserver("dns", v))
                .collect::<Result<_>>()?,
        ),
        search: some(
            f.search
                .iter()
                .map(|v| parse_search("dns-search", v))
                .collect::<Result<_>>()?,
        ),
        options: some(f.options.to_vec()),
    })
}

/// `service create`'s `Hosts`.
pub fn create_hosts(hosts: &[String]) -> Result<Option<Vec<String>>> {
    Ok(some(
        hosts
            .iter()
            .map(|h| parse_host("host", h))
            .collect::<Result<_>>()?,
    ))
}

/// One list of docker's `updateDNSConfig`: the current entries and the added ones, without
/// duplicates, less the removed ones, sorted.
fn update_list(current: Option<Vec<String>>, add: Vec<String>, rm: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in current.unwrap_or_default().into_iter().chain(add) {
        if !out.contains(&v) && !rm.contains(&v) {
            out.push(v);
        }
    }
    out.sort();
    out
}

/// docker's `updateDNSConfig` and `updateHosts` on `cs`.
pub fn update(
    cs: &mut TaskSpecContainerSpec,
    add: &DnsFlags<'_>,
    rm: &DnsFlags<'_>,
    host_add: &[String],
    host_rm: &[String],
) -> Result<()> {
    if add.any() || rm.any() {
        let cur = cs.dns_config.take().unwrap_or_default();
        let nameservers = add
            .nameservers
            .iter()
            .map(|v| parse_nameserver("dns-add", v))
            .collect::<Result<Vec<_>>>()?;
        let search = add
            .search
            .iter()
            .map(|v| parse_search("dns-search-add", v))
            .collect::<Result<Vec<_>>>()?;
        cs.dns_config = Some(TaskSpecContainerSpecDnsConfig {
            nameservers: some(update_list(cur.nameservers, nameservers, rm.nameservers)),
            search: some(update_list(cur.search, search, rm.search)),
            options: some(update_list(cur.options, add.options.to_vec(), rm.options)),
        });
    }
    if !host_add.is_empty() || !host_rm.is_empty() {
        let added = host_add
            .iter()
            .map(|h| parse_host("host-add", h))
            .collect::<Result<Vec<_>>>()?;
        // `name` drops the name wherever it is, `name:ip` only from entries of that address.
        let removals: Vec<(&str, Option<&str>)> = host_rm
            .iter()
            .map(|r| match r.split_once(':') {
                Some((name, ip)) => (name, Some(ip)),
                None => (r.as_str(), None),
            })
            .collect();
        let mut hosts = Vec::new();
        for entry in cs.hosts.take().unwrap_or_default() {
            let mut fields = entry.split_whitespace();
            let Some(ip) = fields.next() else {
                continue;
            };
            let names: Vec<&str> = fields
                .filter(|name| {
                    !removals
                        .iter()
                        .any(|(n, at)| n == name && at.is_none_or(|at| at == ip))
                })
                .collect();
            if !names.is_empty() {
                hosts.push(format!("{ip} {}", names.join(" ")));
            }
        }
        for h in added {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        cs.hosts = Some(hosts);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags_are_checked_as_docker_checks_them() {
        assert_eq!(
            parse_host("host", "db.example:192.0.2.7").expect("ok"),
            "192.0.2.7 db.example"
        );
        assert_eq!(
            parse_host("host", "v6:2001:db8::1").expect("ok"),
            "2001:db8::1 v6"
        );
        assert_eq!(parse_host("host", "a=1.2.3.4").expect("ok"), "1.2.3.4 a");
        assert_eq!(parse_host("host", "a:[::1]").expect("ok"), "::1 a");
        let e = parse_host("host", "a:notip")
            .expect_err("refused")
            .to_string();
        assert_eq!(
            e,
            r#"invalid argument "a:notip" for "--host" flag: invalid IP address in add-host: "notip""#
        );
        assert!(parse_host("host", "nocolon").is_err());
        assert_eq!(
            parse_nameserver("dns", "2001:0db8::1").expect("ok"),
            "2001:db8::1"
        );
        assert!(parse_nameserver("dns", "dns.example").is_err());
        assert_eq!(parse_search("dns-search", ".").expect("ok"), ".");
        let e = parse_search("dns-search", "bad_dom!")
            .expect_err("refused")
            .to_string();
        assert!(e.contains("bad_dom! is not a valid domain"), "{e}");
    }

    /// What docker 28.2 sends for `--dns-add 192.0.2.9 --dns-rm 192.0.2.53 --dns-search-add
    /// b.example --dns-option-add ndots:2 --host-add new.example:192.0.2.10 --host-rm db.example
    /// --host-rm alias.example:192.0.2.8` over the spec below (captured).
    #[test]
    fn updates_follow_docker() {
        let mut cs = TaskSpecContainerSpec {
            dns_config: Some(TaskSpecContainerSpecDnsConfig {
                nameservers: Some(s(&["192.0.2.53", "192.0.2.1"])),
                search: Some(s(&["example.org"])),
                options: Some(s(&["timeout:2"])),
            }),
            hosts: Some(s(&[
                "192.0.2.7 db.example",
                "192.0.2.8 cache.example alias.example",
            ])),
            ..Default::default()
        };
        let (add_ns, rm_ns, add_search, add_opt) = (
            s(&["192.0.2.9"]),
            s(&["192.0.2.53"]),
            s(&["b.example"]),
            s(&["ndots:2"]),
        );
        update(
            &mut cs,
            &DnsFlags {
                nameservers: &add_ns,
                search: &add_search,
                options: &add_opt,
            },
            &DnsFlags {
                nameservers: &rm_ns,
                ..Default::default()
            },
            &s(&["new.example:192.0.2.10"]),
            &s(&["db.example", "alias.example:192.0.2.8"]),
        )
        .expect("ok");
        assert_eq!(
            serde_json::to_string(&cs).expect("json"),
            r#"{"Hosts":["192.0.2.8 cache.example","192.0.2.10 new.example"],"DNSConfig":{"Nameservers":["192.0.2.1","192.0.2.9"],"Search":["b.example","example.org"],"Options":["ndots:2","timeout:2"]}}"#
        );

        // Removing the last of each leaves empty lists, which the daemon takes as none.
        update(
            &mut cs,
            &DnsFlags::default(),
            &DnsFlags {
                nameservers: &s(&["192.0.2.1", "192.0.2.9"]),
                search: &s(&["b.example", "example.org"]),
                options: &s(&["ndots:2", "timeout:2"]),
            },
            &[],
            &s(&["cache.example", "new.example:192.0.2.99"]),
        )
        .expect("ok");
        assert_eq!(
            serde_json::to_string(&cs).expect("json"),
            r#"{"Hosts":["192.0.2.10 new.example"],"DNSConfig":{}}"#
        );
    }

    #[test]
    fn create_sends_an_empty_config_without_flags() {
        let c = create_dns_config(&DnsFlags::default()).expect("ok");
        assert_eq!(serde_json::to_string(&c).expect("json"), "{}");
        assert_eq!(create_hosts(&[]).expect("ok"), None);
    }
}
