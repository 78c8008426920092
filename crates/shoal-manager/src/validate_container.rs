//! Checks of a container spec's mounts, health check, kernel settings and name resolution, so
//! every front end gets the same refusal, at create or update time, naming the wire field (with
//! the entry's index) as `validate` does. The runtimes then trust these shapes.

use std::collections::BTreeSet;
use std::time::Duration;

use shoal_types::container::{HealthConfig, Mount, MountKind, ULIMIT_NAMES, Ulimit};
use shoal_types::dns;
use shoal_types::image_ref::ImageRef;
use shoal_types::service::ContainerSpec;

use crate::error::ControlError;

const C: &str = "TaskTemplate.ContainerSpec";

pub fn check_container(c: &ContainerSpec) -> Result<(), ControlError> {
    check_mounts(&c.mounts)?;
    if let Some(h) = &c.healthcheck {
        check_health(h)?;
    }
    for (field, caps) in [
        ("CapabilityAdd", &c.cap_add),
        ("CapabilityDrop", &c.cap_drop),
    ] {
        for (i, cap) in caps.iter().enumerate() {
            let name = cap.strip_prefix("CAP_").unwrap_or(cap);
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_');
            if !ok {
                return Err(ControlError::invalid(
                    format!("{C}.{field}[{i}]"),
                    format!("{cap:?} is not a capability name (e.g. NET_ADMIN, CAP_SYS_TIME, ALL)"),
                ));
            }
        }
    }
    for key in c.sysctls.keys() {
        let ok = !key.is_empty()
            && !key.starts_with('.')
            && !key.ends_with('.')
            && key
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-' | '/'));
        if !ok {
            return Err(ControlError::invalid(
                format!("{C}.Sysctls"),
                format!("{key:?} is not a sysctl name (e.g. net.core.somaxconn)"),
            ));
        }
    }
    check_ulimits(&c.ulimits)?;
    check_name_resolution(c)
}

/// `DNSConfig` and `Hosts`: well-formed entries, and only for tasks with files of their own.
fn check_name_resolution(c: &ContainerSpec) -> Result<(), ControlError> {
    let dns = c.dns_config.as_ref().filter(|d| !d.is_empty());
    // A task of the `host` image runs on the node's own filesystem: its /etc/resolv.conf and
    // /etc/hosts are the node's, which a task must not rewrite.
    if ImageRef::parse(&c.image).is_ok_and(|r| r.is_host()) {
        let why = |file: &str| {
            format!(
                "tasks of the host image use the node's own {file}; run a real image to give \
                 a task its own"
            )
        };
        if dns.is_some() {
            return Err(ControlError::invalid(
                format!("{C}.DNSConfig"),
                why("/etc/resolv.conf"),
            ));
        }
        if !c.hosts.is_empty() {
            return Err(ControlError::invalid(
                format!("{C}.Hosts"),
                why("/etc/hosts"),
            ));
        }
    }
    if let Some(d) = dns {
        for (i, ns) in d.nameservers.iter().enumerate() {
            if !dns::is_ip(ns) {
                return Err(ControlError::invalid(
                    format!("{C}.DNSConfig.Nameservers[{i}]"),
                    format!("{ns:?} is not an IP address"),
                ));
            }
        }
        let lone_dot = d.search.len() == 1 && d.search[0] == ".";
        for (i, domain) in d.search.iter().enumerate() {
            if !lone_dot && !dns::is_dns_name(domain) {
                return Err(ControlError::invalid(
                    format!("{C}.DNSConfig.Search[{i}]"),
                    format!(
                        "{domain:?} is not a domain name (or \".\" alone, for no search domains)"
                    ),
                ));
            }
        }
        for (i, option) in d.options.iter().enumerate() {
            dns::check_option(option)
                .map_err(|why| ControlError::invalid(format!("{C}.DNSConfig.Options[{i}]"), why))?;
        }
    }
    for (i, entry) in c.hosts.iter().enumerate() {
        dns::check_host_entry(entry)
            .map_err(|why| ControlError::invalid(format!("{C}.Hosts[{i}]"), why))?;
    }
    Ok(())
}

fn check_mounts(mounts: &[Mount]) -> Result<(), ControlError> {
    let mut targets = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let field = |f: &str| format!("{C}.Mounts[{i}].{f}");
        if !m.target.starts_with('/') {
            return Err(ControlError::invalid(
                field("Target"),
                format!("{:?} must be an absolute path in the container", m.target),
            ));
        }
        if m.target.trim_end_matches('/').is_empty() {
            return Err(ControlError::invalid(
                field("Target"),
                "cannot mount over the container's root",
            ));
        }
        if m.target.split('/').any(|p| p == "..") {
            return Err(ControlError::invalid(
                field("Target"),
                format!("{:?} must not contain '..'", m.target),
            ));
        }
        if !targets.insert(m.target.trim_end_matches('/')) {
            return Err(ControlError::invalid(
                field("Target"),
                format!("{} is mounted twice", m.target),
            ));
        }
        match m.kind {
            MountKind::Volume => {
                if !m.source.is_empty() && !volume_name_ok(&m.source) {
                    return Err(ControlError::invalid(
                        field("Source"),
                        format!(
                            "{:?} is not a volume name: use letters, digits, '_', '.' and '-', \
                             starting with a letter or digit",
                            m.source
                        ),
                    ));
                }
            }
            MountKind::Bind => {
                if !m.source.starts_with('/') {
                    return Err(ControlError::invalid(
                        field("Source"),
                        format!(
                            "a bind needs an absolute path on the node, got {:?}",
                            m.source
                        ),
                    ));
                }
            }
            MountKind::Tmpfs => {
                if !m.source.is_empty() {
                    return Err(ControlError::invalid(
                        field("Source"),
                        "a tmpfs mount has no source",
                    ));
                }
            }
        }
        if m.kind != MountKind::Volume && (m.volume_nocopy || !m.volume_labels.is_empty()) {
            return Err(ControlError::invalid(
                field("VolumeOptions"),
                format!(
                    "only volume mounts take volume options, not {}",
                    m.kind.as_str()
                ),
            ));
        }
        if m.kind != MountKind::Tmpfs && (m.tmpfs_size != 0 || m.tmpfs_mode != 0) {
            return Err(ControlError::invalid(
                field("TmpfsOptions"),
                format!(
                    "only tmpfs mounts take tmpfs options, not {}",
                    m.kind.as_str()
                ),
            ));
        }
    }
    Ok(())
}

/// Docker's rule for local volume names.
fn volume_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_health(h: &HealthConfig) -> Result<(), ControlError> {
    let field = |f: &str| format!("{C}.Healthcheck.{f}");
    match h.test.split_first() {
        None => {}
        Some((kind, rest)) => match kind.as_str() {
            "NONE" if rest.is_empty() => {}
            "NONE" => {
                return Err(ControlError::invalid(
                    field("Test"),
                    "[\"NONE\"] takes nothing after it",
                ));
            }
            "CMD" | "CMD-SHELL" if rest.is_empty() || rest.iter().all(|a| a.is_empty()) => {
                return Err(ControlError::invalid(
                    field("Test"),
                    format!("{kind} needs a command after it"),
                ));
            }
            "CMD" | "CMD-SHELL" => {}
            other => {
                return Err(ControlError::invalid(
                    field("Test"),
                    format!("must start with \"NONE\", \"CMD\" or \"CMD-SHELL\", not {other:?}"),
                ));
            }
        },
    }
    const MIN: Duration = Duration::from_millis(1);
    for (name, d) in [
        ("Interval", h.interval),
        ("Timeout", h.timeout),
        ("StartPeriod", h.start_period),
    ] {
        if let Some(d) = d
            && !d.is_zero()
            && d < MIN
        {
            return Err(ControlError::invalid(
                field(name),
                format!("must be at least 1ms, got {d:?}"),
            ));
        }
    }
    Ok(())
}

fn check_ulimits(ulimits: &[Ulimit]) -> Result<(), ControlError> {
    let mut seen = BTreeSet::new();
    for (i, u) in ulimits.iter().enumerate() {
        let field = format!("{C}.Ulimits[{i}]");
        if !ULIMIT_NAMES.contains(&u.name.as_str()) {
            return Err(ControlError::invalid(
                field,
                format!(
                    "{:?} is not a ulimit (one of {})",
                    u.name,
                    ULIMIT_NAMES.join(", ")
                ),
            ));
        }
        if !seen.insert(u.name.as_str()) {
            return Err(ControlError::invalid(
                field,
                format!("{} is set twice", u.name),
            ));
        }
        // -1 is unlimited.
        if u.soft < -1 || u.hard < -1 || (u.hard != -1 && (u.soft == -1 || u.soft > u.hard)) {
            return Err(ControlError::invalid(
                field,
                format!(
                    "{}: the soft limit {} must not be above the hard limit {}",
                    u.name, u.soft, u.hard
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(c: &ContainerSpec) -> String {
        match check_container(c) {
            Err(ControlError::InvalidArgument { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn mount(kind: MountKind, source: &str, target: &str) -> Mount {
        Mount {
            kind,
            source: source.into(),
            target: target.into(),
            ..Default::default()
        }
    }

    #[test]
    fn good_specs_pass() {
        let c = ContainerSpec {
            mounts: vec![
                mount(MountKind::Volume, "data", "/data"),
                mount(MountKind::Volume, "", "/anon"),
                mount(MountKind::Bind, "/srv", "/srv"),
                mount(MountKind::Tmpfs, "", "/tmp"),
            ],
            healthcheck: Some(HealthConfig {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: Some(Duration::from_secs(1)),
                ..Default::default()
            }),
            cap_add: vec!["NET_ADMIN".into(), "CAP_SYS_TIME".into(), "ALL".into()],
            sysctls: [("net.core.somaxconn".to_string(), "1024".to_string())].into(),
            ulimits: vec![Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048,
            }],
            ..Default::default()
        };
        check_container(&c).expect("valid");
    }

    #[test]
    fn each_bad_field_is_named() {
        let with_mount = |m: Mount| ContainerSpec {
            mounts: vec![m],
            ..Default::default()
        };
        assert_eq!(
            field_of(&with_mount(mount(MountKind::Volume, "data", "data"))),
            "TaskTemplate.ContainerSpec.Mounts[0].Target"
        );
        assert_eq!(
            field_of(&with_mount(mount(MountKind::Volume, "../x", "/d"))),
            "TaskTemplate.ContainerSpec.Mounts[0].Source"
        );
        assert_eq!(
            field_of(&with_mount(mount(MountKind::Bind, "rel", "/d"))),
            "TaskTemplate.ContainerSpec.Mounts[0].Source"
        );
        assert_eq!(
            field_of(&with_mount(mount(MountKind::Volume, "v", "/"))),
            "TaskTemplate.ContainerSpec.Mounts[0].Target"
        );
        let twice = ContainerSpec {
            mounts: vec![
                mount(MountKind::Volume, "a", "/d"),
                mount(MountKind::Tmpfs, "", "/d/"),
            ],
            ..Default::default()
        };
        assert_eq!(
            field_of(&twice),
            "TaskTemplate.ContainerSpec.Mounts[1].Target"
        );
        let health = |test: &[&str]| ContainerSpec {
            healthcheck: Some(HealthConfig {
                test: test.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            field_of(&health(&["CMD"])),
            "TaskTemplate.ContainerSpec.Healthcheck.Test"
        );
        assert_eq!(
            field_of(&health(&["RUN", "x"])),
            "TaskTemplate.ContainerSpec.Healthcheck.Test"
        );
        let caps = ContainerSpec {
            cap_drop: vec!["net admin".into()],
            ..Default::default()
        };
        assert_eq!(
            field_of(&caps),
            "TaskTemplate.ContainerSpec.CapabilityDrop[0]"
        );
        let ulimit = |name: &str, soft, hard| ContainerSpec {
            ulimits: vec![Ulimit {
                name: name.into(),
                soft,
                hard,
            }],
            ..Default::default()
        };
        assert_eq!(
            field_of(&ulimit("files", 1, 2)),
            "TaskTemplate.ContainerSpec.Ulimits[0]"
        );
        assert_eq!(
            field_of(&ulimit("nofile", 4096, 1024)),
            "TaskTemplate.ContainerSpec.Ulimits[0]"
        );
        check_container(&ulimit("core", -1, -1)).expect("unlimited is fine");
    }

    #[test]
    fn dns_settings_and_hosts_are_checked_by_entry() {
        use shoal_types::dns::DnsConfig;
        let image = |dns: DnsConfig, hosts: &[&str]| ContainerSpec {
            image: "shoal-test/busybox:latest".into(),
            dns_config: Some(dns),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        };
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let good = DnsConfig {
            nameservers: list(&["192.0.2.53", "2001:db8::53"]),
            search: list(&["example.org", "corp.example."]),
            options: list(&["timeout:2", "ndots:3", "rotate"]),
        };
        check_container(&image(good.clone(), &["192.0.2.7 db.example db"])).expect("valid");
        let no_search = DnsConfig {
            search: list(&["."]),
            ..Default::default()
        };
        check_container(&image(no_search, &[])).expect("\".\" alone: no search domains");

        let bad = |f: fn(&mut DnsConfig)| {
            let mut d = good.clone();
            f(&mut d);
            field_of(&image(d, &[]))
        };
        assert_eq!(
            bad(|d| d.nameservers[1] = "dns.example".into()),
            "TaskTemplate.ContainerSpec.DNSConfig.Nameservers[1]"
        );
        assert_eq!(
            bad(|d| d.search.push("bad domain".into())),
            "TaskTemplate.ContainerSpec.DNSConfig.Search[2]"
        );
        assert_eq!(
            bad(|d| d.search = vec![".".into(), "a.example".into()]),
            "TaskTemplate.ContainerSpec.DNSConfig.Search[0]"
        );
        assert_eq!(
            bad(|d| d.options[0] = "timeout: 2".into()),
            "TaskTemplate.ContainerSpec.DNSConfig.Options[0]"
        );
        assert_eq!(
            bad(|d| d.options[1] = "ndots:many".into()),
            "TaskTemplate.ContainerSpec.DNSConfig.Options[1]"
        );
        for entry in ["192.0.2.7", "db.example:192.0.2.7", "192.0.2.7 not/a/name"] {
            assert_eq!(
                field_of(&image(DnsConfig::default(), &["192.0.2.8 ok", entry])),
                "TaskTemplate.ContainerSpec.Hosts[1]",
                "{entry}"
            );
        }
        match check_container(&image(DnsConfig::default(), &["192.0.2.7 db.example:1"])) {
            Err(ControlError::InvalidArgument { why, .. }) => {
                assert!(
                    why.contains("\"db.example:1\" is not a valid host name"),
                    "{why}"
                )
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// A task of the `host` image shares the node's files: it cannot have resolver settings or
    /// hosts entries of its own.
    #[test]
    fn host_tasks_cannot_have_their_own_resolver_or_hosts() {
        use shoal_types::dns::DnsConfig;
        let host = |dns: Option<DnsConfig>, hosts: Vec<String>| ContainerSpec {
            image: "host:latest".into(),
            dns_config: dns,
            hosts,
            ..Default::default()
        };
        let dns = DnsConfig {
            nameservers: vec!["192.0.2.53".into()],
            ..Default::default()
        };
        assert_eq!(
            field_of(&host(Some(dns), Vec::new())),
            "TaskTemplate.ContainerSpec.DNSConfig"
        );
        assert_eq!(
            field_of(&host(None, vec!["192.0.2.7 db".into()])),
            "TaskTemplate.ContainerSpec.Hosts"
        );
        check_container(&host(Some(DnsConfig::default()), Vec::new()))
            .expect("an empty config is none");
    }
}
