//! A task's container config as the Engine API takes it, mapped the way Swarm's agent maps a
//! service's `ContainerSpec` (`command` replaces the entrypoint, `args` the image's CMD). Pure:
//! no IO, so every field's mapping is tested without a daemon.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, HealthConfig as ApiHealth, HostConfig, Mount as ApiMount,
    MountTmpfsOptions, MountType, MountVolumeOptions, ResourcesUlimits,
};
use shoal_runtime::RuntimeError;
use shoal_runtime::TaskRun;
use shoal_types::container::{HealthConfig, Mount, MountKind};

use crate::{
    LABEL_MANAGED, LABEL_NODE_ID, LABEL_OWNER, LABEL_SERVICE_ID, LABEL_SERVICE_NAME, LABEL_TASK_ID,
    LABEL_TASK_NAME,
};

fn invalid(field: &'static str, why: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec {
        field,
        why: why.into(),
    }
}

/// The container's name, Swarm's `<service>.<slot>.<task-id>`, with any character Docker refuses
/// in names replaced (service names are checked by the manager, but a name must never make the
/// task unrunnable).
pub fn container_name(run: &TaskRun) -> String {
    let base = if run.task_name.is_empty() {
        format!("{}.{}.{}", run.service_name, run.slot, run.task_id)
    } else {
        run.task_name.clone()
    };
    let mut name: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name.insert(0, 'x');
    }
    name
}

/// The labels that tie a container to its task and to the daemon that made it; the spec's own
/// labels cannot override them.
pub fn task_labels(run: &TaskRun, owner: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = run
        .container
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [
        (LABEL_TASK_ID, run.task_id.to_string()),
        (LABEL_TASK_NAME, run.task_name.clone()),
        (LABEL_SERVICE_ID, run.service_id.to_string()),
        (LABEL_SERVICE_NAME, run.service_name.clone()),
        (LABEL_NODE_ID, run.node_id.to_string()),
        (LABEL_MANAGED, "true".to_string()),
        (LABEL_OWNER, owner.to_string()),
    ] {
        labels.insert(k.to_string(), v);
    }
    labels
}

/// Nanoseconds as the API takes durations; 0 means "inherit" (the image's, then Docker's default).
fn nanos(d: Option<Duration>) -> i64 {
    d.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The spec's check as Docker takes it: Docker fills what is left unset from the image's
/// HEALTHCHECK, which is exactly `HealthConfig::over`.
pub fn healthcheck(h: &HealthConfig) -> Result<ApiHealth, RuntimeError> {
    if let Some(kind) = h.test.first()
        && !["NONE", "CMD", "CMD-SHELL"].contains(&kind.as_str())
    {
        return Err(invalid(
            "healthcheck.test",
            format!("expected NONE, CMD or CMD-SHELL first, got {kind:?}"),
        ));
    }
    if h.test.len() == 1 && h.test[0] != "NONE" {
        return Err(invalid(
            "healthcheck.test",
            format!("{} needs a command", h.test[0]),
        ));
    }
    for (field, d) in [
        ("healthcheck.interval", h.interval),
        ("healthcheck.timeout", h.timeout),
        ("healthcheck.start_period", h.start_period),
    ] {
        if let Some(d) = d
            && !d.is_zero()
            && d < Duration::from_millis(1)
        {
            return Err(invalid(
                field,
                format!("{d:?} is below Docker's minimum of 1ms"),
            ));
        }
    }
    Ok(ApiHealth {
        test: (!h.test.is_empty()).then(|| h.test.clone()),
        interval: Some(nanos(h.interval)),
        timeout: Some(nanos(h.timeout)),
        start_period: Some(nanos(h.start_period)),
        retries: Some(
            h.retries
                .map_or(0, |r| i64::try_from(r).unwrap_or(i64::MAX)),
        ),
        start_interval: None,
    })
}

/// Labels given to a named volume shoal creates, so `volume ls` lists only shoal's.
pub fn volume_labels(m: &Mount, owner: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = m
        .volume_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_MANAGED.into(), "true".into());
    labels.insert(LABEL_OWNER.into(), owner.into());
    labels
}

pub fn mount(m: &Mount, owner: &str) -> Result<ApiMount, RuntimeError> {
    if !m.target.starts_with('/') {
        return Err(invalid(
            "mounts.target",
            format!("{:?}: expected an absolute path", m.target),
        ));
    }
    let base = ApiMount {
        target: Some(m.target.clone()),
        read_only: Some(m.read_only),
        ..Default::default()
    };
    Ok(match m.kind {
        MountKind::Volume => ApiMount {
            typ: Some(MountType::VOLUME),
            source: (!m.source.is_empty()).then(|| m.source.clone()),
            volume_options: Some(MountVolumeOptions {
                no_copy: Some(m.volume_nocopy),
                labels: Some(volume_labels(m, owner)),
                ..Default::default()
            }),
            ..base
        },
        MountKind::Bind => {
            if !m.source.starts_with('/') {
                return Err(invalid(
                    "mounts.source",
                    format!("bind source {:?}: expected an absolute path", m.source),
                ));
            }
            ApiMount {
                typ: Some(MountType::BIND),
                source: Some(m.source.clone()),
                ..base
            }
        }
        MountKind::Tmpfs => {
            if !m.source.is_empty() {
                return Err(invalid(
                    "mounts.source",
                    format!("a tmpfs mount takes no source, got {:?}", m.source),
                ));
            }
            ApiMount {
                typ: Some(MountType::TMPFS),
                tmpfs_options: Some(MountTmpfsOptions {
                    size_bytes: (m.tmpfs_size > 0)
                        .then(|| i64::try_from(m.tmpfs_size).unwrap_or(i64::MAX)),
                    mode: (m.tmpfs_mode > 0).then_some(i64::from(m.tmpfs_mode)),
                    options: None,
                }),
                ..base
            }
        }
    })
}

/// Docker's `ExtraHosts` (`name:ip`, one per name) for the spec's `Hosts` entries
/// (`IP_address canonical_hostname [aliases...]`). Swarm's agent maps the canonical name only;
/// the aliases resolve too here, as hosts(5) has them.
pub fn extra_hosts(hosts: &[String]) -> Vec<String> {
    shoal_types::dns::host_entries(hosts)
        .into_iter()
        .map(|(ip, name)| format!("{name}:{ip}"))
        .collect()
}

fn non_negative(field: &'static str, v: i64) -> Result<Option<i64>, RuntimeError> {
    match v {
        0 => Ok(None),
        v if v < 0 => Err(invalid(field, format!("expected a number >= 0, got {v}"))),
        v => Ok(Some(v)),
    }
}

/// The whole create request for a task. `sandbox`: the container whose network namespace the
/// task joins (made by [`crate::sandbox::sandbox_body`]), required when `run.netns` is set.
pub fn create_body(
    run: &TaskRun,
    owner: &str,
    sandbox: Option<&str>,
) -> Result<ContainerCreateBody, RuntimeError> {
    let c = &run.container;
    if c.image.is_empty() {
        return Err(invalid("image", "an image is required"));
    }
    let network_mode = match (&run.netns, sandbox) {
        // dockerd takes the hostname, /etc/hosts and /etc/resolv.conf of a `container:` task
        // from the sandbox, and refuses the task's own (Hostname, Dns, ExtraHosts).
        (Some(_), Some(sandbox)) => Some(format!("container:{sandbox}")),
        (Some(netns), None) => {
            return Err(invalid(
                "netns",
                format!(
                    "{}: the docker runtime joins a task only to the namespace of its own sandbox, and the task has none",
                    netns.display()
                ),
            ));
        }
        // Refused rather than run on the engine's default bridge, away from its overlays.
        (None, _) if run.has_own_network() => {
            return Err(invalid(
                "networks",
                "the task has networks but no network namespace was wired for them",
            ));
        }
        (None, _) => None,
    };
    shoal_runtime::parse_stop_signal(&c.stop_signal).map_err(|why| invalid("stop_signal", why))?;
    for u in &c.ulimits {
        if u.name.is_empty() || u.soft > u.hard {
            return Err(invalid(
                "ulimits",
                format!(
                    "{}={}:{}: expected a name and soft <= hard",
                    u.name, u.soft, u.hard
                ),
            ));
        }
    }
    let mounts = c
        .mounts
        .iter()
        .map(|m| mount(m, owner))
        .collect::<Result<Vec<_>, _>>()?;
    let healthcheck = c.healthcheck.as_ref().map(healthcheck).transpose()?;
    // On the engine's own network the container takes the spec's resolver and extra hosts; in
    // its sandbox's namespace it has the sandbox's files, which carry them.
    let own_files = network_mode.is_none();
    let dns = c.dns_config.as_ref().filter(|d| own_files && !d.is_empty());
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let extra_hosts = extra_hosts(&c.hosts);
    let limits = &run.resources.limits;
    let host_config = HostConfig {
        memory: non_negative("resources.limits.memory_bytes", limits.memory_bytes)?,
        nano_cpus: non_negative("resources.limits.nano_cpus", limits.nano_cpus)?,
        pids_limit: non_negative("resources.limits.pids", limits.pids)?,
        memory_reservation: non_negative(
            "resources.reservations.memory_bytes",
            run.resources.reservations.memory_bytes,
        )?,
        init: c.init,
        readonly_rootfs: c.read_only.then_some(true),
        cap_add: (!c.cap_add.is_empty()).then(|| c.cap_add.clone()),
        cap_drop: (!c.cap_drop.is_empty()).then(|| c.cap_drop.clone()),
        sysctls: (!c.sysctls.is_empty()).then(|| {
            c.sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }),
        ulimits: (!c.ulimits.is_empty()).then(|| {
            c.ulimits
                .iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect()
        }),
        group_add: (!c.groups.is_empty()).then(|| c.groups.clone()),
        mounts: (!mounts.is_empty()).then_some(mounts),
        network_mode: network_mode.clone(),
        dns: dns.and_then(|d| list(&d.nameservers)),
        dns_search: dns.and_then(|d| list(&d.search)),
        dns_options: dns.and_then(|d| list(&d.options)),
        extra_hosts: (own_files && !extra_hosts.is_empty()).then_some(extra_hosts),
        ..Default::default()
    };
    let grace = c.effective_stop_grace();
    Ok(ContainerCreateBody {
        image: Some(c.image.clone()),
        hostname: (network_mode.is_none() && !run.hostname.is_empty())
            .then(|| run.hostname.clone()),
        user: (!c.user.is_empty()).then(|| c.user.clone()),
        env: (!c.env.is_empty()).then(|| c.env.clone()),
        entrypoint: (!c.command.is_empty()).then(|| c.command.clone()),
        cmd: (!c.args.is_empty()).then(|| c.args.clone()),
        working_dir: (!c.dir.is_empty()).then(|| c.dir.clone()),
        tty: Some(c.tty),
        open_stdin: Some(c.open_stdin),
        // As `docker run -i` makes it: the end of an attached client's input is the end of the
        // process's (the contract's attach).
        stdin_once: Some(c.open_stdin),
        labels: Some(task_labels(run, owner)),
        stop_signal: (!c.stop_signal.is_empty()).then(|| c.stop_signal.clone()),
        // Docker takes whole seconds; rounding up never cuts a grace period short.
        stop_timeout: Some(
            i64::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0))
                .unwrap_or(i64::MAX),
        ),
        healthcheck,
        host_config: Some(host_config),
        ..Default::default()
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use shoal_types::Id;
    use shoal_types::container::Ulimit;
    use shoal_types::service::{ContainerSpec, ResourceRequirements};

    use super::*;

    fn run(container: ContainerSpec) -> TaskRun {
        TaskRun {
            task_id: Id::from_raw("t1"),
            task_name: "web.2.t1".into(),
            service_id: Id::from_raw("s1"),
            service_name: "web".into(),
            node_id: Id::from_raw("n1"),
            slot: 2,
            container,
            resources: ResourceRequirements::default(),
            hostname: "h".into(),
            networks: Vec::new(),
            netns: None,
            files: Vec::new(),
            local_networks: Vec::new(),
            publish: Vec::new(),
        }
    }

    #[test]
    fn command_replaces_the_entrypoint_and_args_the_cmd() {
        let b = create_body(
            &run(ContainerSpec {
                image: "busybox".into(),
                command: vec!["sleep".into()],
                args: vec!["5".into()],
                ..Default::default()
            }),
            "o",
            None,
        )
        .expect("valid");
        assert_eq!(b.entrypoint, Some(vec!["sleep".to_string()]));
        assert_eq!(b.cmd, Some(vec!["5".to_string()]));
        let b = create_body(
            &run(ContainerSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            "o",
            None,
        )
        .expect("valid");
        assert_eq!((b.entrypoint, b.cmd), (None, None), "the image's own");
    }

    #[test]
    fn labels_tie_the_container_to_its_task_and_cannot_be_overridden() {
        let mut labels = BTreeMap::new();
        labels.insert(LABEL_TASK_ID.to_string(), "forged".to_string());
        labels.insert("app".to_string(), "x".to_string());
        let b = create_body(
            &run(ContainerSpec {
                image: "busybox".into(),
                labels,
                ..Default::default()
            }),
            "owner-1",
            None,
        )
        .expect("valid");
        let l = b.labels.expect("labels");
        assert_eq!(l[LABEL_TASK_ID], "t1");
        assert_eq!(l[LABEL_SERVICE_NAME], "web");
        assert_eq!(l[LABEL_NODE_ID], "n1");
        assert_eq!(l[LABEL_OWNER], "owner-1");
        assert_eq!(l["app"], "x");
    }

    #[test]
    fn limits_kernel_settings_and_stop() {
        let mut r = run(ContainerSpec {
            image: "busybox".into(),
            init: Some(true),
            read_only: true,
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["ALL".into()],
            stop_signal: "SIGINT".into(),
            stop_grace_period: Some(Duration::from_millis(1500)),
            ulimits: vec![Ulimit {
                name: "nofile".into(),
                soft: 100,
                hard: 200,
            }],
            ..Default::default()
        });
        r.resources.limits.memory_bytes = 20 << 20;
        r.resources.limits.nano_cpus = 500_000_000;
        r.resources.limits.pids = 20;
        r.resources.reservations.memory_bytes = 10 << 20;
        let b = create_body(&r, "o", None).expect("valid");
        let h = b.host_config.expect("host config");
        assert_eq!(h.memory, Some(20 << 20));
        assert_eq!(h.nano_cpus, Some(500_000_000));
        assert_eq!(h.pids_limit, Some(20));
        assert_eq!(h.memory_reservation, Some(10 << 20));
        assert_eq!(h.init, Some(true));
        assert_eq!(h.readonly_rootfs, Some(true));
        assert_eq!(h.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(b.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(b.stop_timeout, Some(2));
        let u = &h.ulimits.expect("ulimits")[0];
        assert_eq!((u.soft, u.hard), (Some(100), Some(200)));
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = |c: ContainerSpec| match create_body(&run(c), "o", None) {
            Err(RuntimeError::InvalidSpec { field, .. }) => field,
            other => panic!("expected InvalidSpec, got {other:?}"),
        };
        assert_eq!(
            bad(ContainerSpec {
                image: "b".into(),
                stop_signal: "SIGNOPE".into(),
                ..Default::default()
            }),
            "stop_signal"
        );
        assert_eq!(
            bad(ContainerSpec {
                image: "b".into(),
                mounts: vec![Mount {
                    kind: MountKind::Bind,
                    source: "rel".into(),
                    target: "/x".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            "mounts.source"
        );
        assert_eq!(
            bad(ContainerSpec {
                image: "b".into(),
                healthcheck: Some(HealthConfig {
                    test: vec!["CMD".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            "healthcheck.test"
        );
    }

    #[test]
    fn mounts_and_health() {
        let c = ContainerSpec {
            image: "b".into(),
            mounts: vec![
                Mount {
                    kind: MountKind::Volume,
                    source: "data".into(),
                    target: "/data".into(),
                    read_only: true,
                    ..Default::default()
                },
                Mount {
                    kind: MountKind::Tmpfs,
                    target: "/scratch".into(),
                    tmpfs_size: 1 << 20,
                    tmpfs_mode: 0o700,
                    ..Default::default()
                },
            ],
            healthcheck: Some(HealthConfig {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: Some(Duration::from_secs(1)),
                retries: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        };
        let b = create_body(&run(c), "o", None).expect("valid");
        let m = b.host_config.and_then(|h| h.mounts).expect("mounts");
        assert_eq!(m[0].typ, Some(MountType::VOLUME));
        assert_eq!(m[0].read_only, Some(true));
        let labels = m[0]
            .volume_options
            .as_ref()
            .and_then(|o| o.labels.clone())
            .expect("labels");
        assert_eq!(labels[LABEL_MANAGED], "true");
        let t = m[1].tmpfs_options.as_ref().expect("tmpfs");
        assert_eq!((t.size_bytes, t.mode), (Some(1 << 20), Some(0o700)));
        let h = b.healthcheck.expect("check");
        assert_eq!(h.interval, Some(1_000_000_000));
        assert_eq!(h.timeout, Some(0), "inherited from the image, then Docker");
        assert_eq!(h.retries, Some(2));
    }

    pub(crate) fn networked(netns: Option<&str>) -> TaskRun {
        let mut r = run(ContainerSpec {
            image: "busybox".into(),
            ..Default::default()
        });
        r.networks = vec![shoal_types::task::NetworkAttachment {
            network: Id::from_raw("net1"),
            addr: "10.0.9.5/24".parse().expect("address"),
            aliases: Vec::new(),
        }];
        r.netns = netns.map(std::path::PathBuf::from);
        r
    }

    /// The task joins its sandbox's namespace, leaving to the sandbox what dockerd refuses
    /// beside `container:` (hostname, DNS, extra hosts).
    #[test]
    fn a_task_with_networks_joins_its_sandbox() {
        let b =
            create_body(&networked(Some("/d/net/task/t1")), "o", Some("c0ffee")).expect("valid");
        assert_eq!(b.hostname, None);
        let h = b.host_config.expect("host config");
        assert_eq!(h.network_mode.as_deref(), Some("container:c0ffee"));
        assert_eq!((h.dns, h.dns_options, h.extra_hosts), (None, None, None));

        let plain = create_body(&run(networked(None).container), "o", None).expect("valid");
        assert_eq!(plain.hostname.as_deref(), Some("h"));
        assert_eq!(plain.host_config.and_then(|h| h.network_mode), None);
    }

    /// What `--dns 192.0.2.53 --dns-search example.org --dns-option timeout:2 --host
    /// db.example:192.0.2.7` becomes.
    pub(crate) fn with_dns(mut r: TaskRun) -> TaskRun {
        r.container.dns_config = Some(shoal_types::dns::DnsConfig {
            nameservers: vec!["192.0.2.53".into()],
            search: vec!["example.org".into()],
            options: vec!["timeout:2".into()],
        });
        r.container.hosts = vec![
            "192.0.2.7 db.example".into(),
            "2001:db8::8 cache alias".into(),
        ];
        r
    }

    /// Without networks the container takes the spec's resolver and hosts, as Swarm's agent
    /// gives them; in a sandbox's namespace dockerd refuses them (the sandbox carries them).
    #[test]
    fn dns_settings_and_extra_hosts_go_on_a_container_with_its_own_network() {
        let b = create_body(&with_dns(run(networked(None).container)), "o", None).expect("valid");
        let h = b.host_config.expect("host config");
        assert_eq!(h.dns, Some(vec!["192.0.2.53".to_string()]));
        assert_eq!(h.dns_search, Some(vec!["example.org".to_string()]));
        assert_eq!(h.dns_options, Some(vec!["timeout:2".to_string()]));
        assert_eq!(
            h.extra_hosts,
            Some(vec![
                "db.example:192.0.2.7".to_string(),
                "cache:2001:db8::8".into(),
                "alias:2001:db8::8".into()
            ])
        );

        let b = create_body(
            &with_dns(networked(Some("/d/net/task/t1"))),
            "o",
            Some("c0ffee"),
        )
        .expect("valid");
        let h = b.host_config.expect("host config");
        assert_eq!(
            (h.dns, h.dns_search, h.dns_options, h.extra_hosts),
            (None, None, None, None)
        );

        let plain = create_body(&run(networked(None).container), "o", None).expect("valid");
        let h = plain.host_config.expect("host config");
        assert_eq!(
            (h.dns, h.dns_search, h.dns_options, h.extra_hosts),
            (None, None, None, None),
            "the engine's defaults"
        );
    }

    #[test]
    fn networks_without_a_sandbox_are_refused() {
        let field = |r: &TaskRun| match create_body(r, "o", None) {
            Err(RuntimeError::InvalidSpec { field, .. }) => field,
            other => panic!("expected InvalidSpec, got {other:?}"),
        };
        assert_eq!(
            field(&networked(None)),
            "networks",
            "never the default bridge"
        );
        assert_eq!(field(&networked(Some("/d/net/task/t1"))), "netns");
    }
}
