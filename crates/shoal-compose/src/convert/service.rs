//! One service to its `ServiceSpec` (docker's `convert.Service`), plus shoal's start-order
//! dependencies. Checks that need the whole project (that referenced networks, volumes, secrets
//! and configs exist, the image reference, the mode and restart policy) happen here, as in
//! docker, so `stack config` still prints a project that would not deploy.

use bollard_stubs::models::*;
use shoal_types::stack::{DEPENDS_ON_LABEL, Dependency, format_depends_on};

use super::network::{hash, mounts};
use super::task::{
    credential_spec, healthcheck, mode, ports, resources, restart_policy, update_config,
    update_config_as,
};
use super::{Namespace, StackService, err, nonempty};
use crate::error::{Error, join};
use crate::model::{self, FileRef, Project, Service, Ulimit};
use crate::syntax;

/// docker's `convert.LabelImage`.
const LABEL_IMAGE: &str = "com.docker.stack.image";

pub(crate) fn service(
    project: &Project,
    ns: Namespace<'_>,
    name: &str,
    svc: &Service,
    errors: &mut Vec<Error>,
) -> Option<StackService> {
    let before = errors.len();
    let key = join("services", name);
    let k = |sub: &str| join(&key, sub);
    let image = svc.image.clone().unwrap_or_default();
    if image.is_empty() {
        err(
            errors,
            &svc.at,
            key.clone(),
            format!("invalid image reference for service {name}: no image specified"),
        );
    } else if !is_image_id(&image)
        && let Err(e) = shoal_types::image_ref::ImageRef::parse(&image)
    {
        err(
            errors,
            &svc.at,
            k("image"),
            format!("invalid image reference for service {name}: {e}"),
        );
    }

    let secrets = file_refs(project, ns, &svc.secrets, "secret", &k("secrets"), errors);
    let configs = file_refs(project, ns, &svc.configs, "config", &k("configs"), errors);
    let networks = attachments(project, ns, name, svc, errors);
    let mounts = mounts(project, ns, name, svc, errors);
    let mode = mode(svc, &k("deploy.mode"), errors);
    let resources = resources(svc, &k("deploy.resources"), errors);
    let restart_policy = restart_policy(svc, &k("restart"), errors);
    let update_config = update_config(
        svc.deploy.update_config.as_ref(),
        &k("deploy.update_config"),
        svc,
        errors,
    );
    let rollback_config: Option<ServiceSpecRollbackConfig> = update_config_as(
        svc.deploy.rollback_config.as_ref(),
        &k("deploy.rollback_config"),
        svc,
        errors,
    );
    let credential_spec = credential_spec(svc, &k("credential_spec"), errors);
    let endpoint_mode = match svc.deploy.endpoint_mode.as_deref().map(str::to_lowercase) {
        None => None,
        Some(m) if m.is_empty() => None,
        Some(m) => match m.parse::<EndpointSpecModeEnum>() {
            Ok(m) => Some(m),
            Err(_) => {
                err(
                    errors,
                    &svc.deploy.at,
                    k("deploy.endpoint_mode"),
                    format!("expected vip or dnsrr, got {m:?}"),
                );
                None
            }
        },
    };
    let isolation = svc
        .isolation
        .as_deref()
        .filter(|i| !i.is_empty())
        .and_then(|i| {
            i.parse::<TaskSpecContainerSpecIsolationEnum>()
                .map_err(|_| {
                    err(
                        errors,
                        &svc.at,
                        k("isolation"),
                        format!("expected default, process or hyperv, got {i:?}"),
                    )
                })
                .ok()
        });
    let ports = ports(svc, &k("ports"), errors);

    let deps: Vec<Dependency> = svc
        .depends_on
        .iter()
        .map(|d| Dependency {
            service: ns.scope(&d.service),
            condition: d.condition,
        })
        .collect();
    let mut labels = ns.labels(&svc.deploy.labels);
    labels.insert(LABEL_IMAGE.to_string(), image.clone());
    if !deps.is_empty() {
        labels.insert(DEPENDS_ON_LABEL.to_string(), format_depends_on(&deps));
    }
    let (cap_add, cap_drop) = syntax::effective_caps(&svc.cap_add, &svc.cap_drop);
    let mut env: Vec<String> = svc
        .environment
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    env.sort();
    let dns_config = (!svc.dns.is_empty() || !svc.dns_search.is_empty()).then(|| {
        // docker drops nameservers that are not IP addresses, silently.
        let ns: Vec<String> = svc
            .dns
            .iter()
            .filter_map(|d| d.parse::<std::net::IpAddr>().ok().map(|a| a.to_string()))
            .collect();
        TaskSpecContainerSpecDnsConfig {
            nameservers: nonempty(ns),
            search: nonempty(svc.dns_search.clone()),
            options: None,
        }
    });
    let container = TaskSpecContainerSpec {
        image: nonempty(image),
        labels: Some(ns.labels(&svc.labels)),
        command: svc.entrypoint.clone().and_then(nonempty),
        args: svc.command.clone().and_then(nonempty),
        hostname: svc.hostname.clone().and_then(nonempty),
        env: nonempty(env),
        dir: svc.working_dir.clone().and_then(nonempty),
        user: svc.user.clone().and_then(nonempty),
        privileges: Some(TaskSpecContainerSpecPrivileges {
            credential_spec,
            ..Default::default()
        }),
        init: svc.init,
        stop_signal: svc.stop_signal.clone().and_then(nonempty),
        tty: svc.tty.then_some(true),
        open_stdin: svc.stdin_open.then_some(true),
        read_only: svc.read_only.then_some(true),
        mounts: nonempty(mounts),
        stop_grace_period: svc.stop_grace_period,
        health_check: svc.healthcheck.as_ref().map(healthcheck),
        hosts: nonempty(
            svc.extra_hosts
                .iter()
                .filter_map(|h| h.split_once(':').map(|(host, ip)| format!("{ip} {host}")))
                .collect(),
        ),
        dns_config,
        secrets: nonempty(
            secrets
                .into_iter()
                .map(|(name, file)| TaskSpecContainerSpecSecrets {
                    file: Some(TaskSpecContainerSpecFile {
                        name: file.target,
                        uid: file.uid,
                        gid: file.gid,
                        mode: file.mode,
                    }),
                    secret_id: None,
                    secret_name: Some(name),
                })
                .collect(),
        ),
        configs: nonempty(
            configs
                .into_iter()
                .map(|(name, file)| TaskSpecContainerSpecConfigs {
                    file: Some(TaskSpecContainerSpecFile1 {
                        name: file.target,
                        uid: file.uid,
                        gid: file.gid,
                        mode: file.mode,
                    }),
                    runtime: None,
                    config_id: None,
                    config_name: Some(name),
                })
                .collect(),
        ),
        oom_score_adj: svc.oom_score_adj.filter(|o| *o != 0),
        isolation,
        sysctls: svc.sysctls.as_ref().filter(|s| !s.is_empty()).map(hash),
        capability_add: nonempty(cap_add),
        capability_drop: nonempty(cap_drop),
        ulimits: nonempty(
            svc.ulimits
                .iter()
                .map(|(name, u)| {
                    let (soft, hard) = match *u {
                        Ulimit::Single(n) => (n, n),
                        Ulimit::SoftHard { soft, hard } => (soft, hard),
                    };
                    ResourcesUlimits {
                        name: Some(name.clone()),
                        soft: Some(soft),
                        hard: Some(hard),
                    }
                })
                .collect(),
        ),
        ..Default::default()
    };
    let placement = &svc.deploy.placement;
    let task = TaskSpec {
        container_spec: Some(container),
        resources: Some(resources),
        restart_policy,
        placement: Some(TaskSpecPlacement {
            constraints: nonempty(placement.constraints.clone()),
            preferences: nonempty(
                placement
                    .preferences
                    .iter()
                    .map(|s| TaskSpecPlacementPreferences {
                        spread: Some(TaskSpecPlacementSpread {
                            spread_descriptor: Some(s.clone()),
                        }),
                    })
                    .collect(),
            ),
            max_replicas: placement
                .max_replicas_per_node
                .filter(|m| *m != 0)
                .and_then(|m| i64::try_from(m).ok()),
            platforms: None,
        }),
        networks: Some(networks),
        log_driver: svc.logging.as_ref().map(|l| TaskSpecLogDriver {
            name: l.driver.clone().and_then(nonempty),
            options: l.options.as_ref().filter(|o| !o.is_empty()).map(hash),
        }),
        force_update: Some(0),
        ..Default::default()
    };
    let spec = ServiceSpec {
        name: Some(ns.scope(name)),
        labels: Some(labels),
        task_template: Some(task),
        mode,
        update_config,
        rollback_config,
        networks: None,
        endpoint_spec: Some(EndpointSpec {
            mode: endpoint_mode,
            ports: nonempty(ports),
        }),
    };
    (errors.len() == before).then(|| StackService {
        name: ns.scope(name),
        spec,
        depends_on: deps,
    })
}

/// docker's `ParseAnyReference` also takes a bare 64-hex image ID.
fn is_image_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

struct Target {
    target: Option<String>,
    uid: Option<String>,
    gid: Option<String>,
    mode: Option<u32>,
}

/// Secret or config references: (name, file target), defaults filled in (target = the source
/// key, uid/gid "0", mode 0444), sorted by name, a target used twice refused.
fn file_refs(
    project: &Project,
    ns: Namespace<'_>,
    refs: &[FileRef],
    kind: &str,
    key: &str,
    errors: &mut Vec<Error>,
) -> Vec<(String, Target)> {
    let defs = if kind == "secret" {
        &project.secrets
    } else {
        &project.configs
    };
    let mut out: Vec<(String, Target)> = Vec::new();
    let mut targets = std::collections::HashSet::new();
    for r in refs {
        let Some(obj) = defs.get(&r.source) else {
            err(
                errors,
                &r.at,
                key.to_string(),
                format!("undefined {kind} {:?}", r.source),
            );
            continue;
        };
        let name = obj.name.clone().unwrap_or_else(|| ns.scope(&r.source));
        let target = r
            .target
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| r.source.clone());
        if !targets.insert(target.clone()) {
            err(
                errors,
                &r.at,
                key.to_string(),
                format!("duplicate {kind} target for {name} not allowed"),
            );
            continue;
        }
        out.push((
            name,
            Target {
                target: Some(target),
                uid: Some(
                    r.uid
                        .clone()
                        .filter(|u| !u.is_empty())
                        .unwrap_or_else(|| "0".into()),
                ),
                gid: Some(
                    r.gid
                        .clone()
                        .filter(|g| !g.is_empty())
                        .unwrap_or_else(|| "0".into()),
                ),
                mode: Some(r.mode.unwrap_or(0o444)),
            },
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn attachments(
    project: &Project,
    ns: Namespace<'_>,
    name: &str,
    svc: &Service,
    errors: &mut Vec<Error>,
) -> Vec<NetworkAttachmentConfig> {
    let default = std::collections::BTreeMap::from([(
        "default".to_string(),
        model::ServiceNetwork {
            at: svc.at.clone(),
            ..Default::default()
        },
    )]);
    let nets = match &svc.networks {
        Some(n) if !n.is_empty() => n,
        _ => &default,
    };
    let mut out = Vec::new();
    for (net, cfg) in nets {
        let def = project.networks.get(net);
        if def.is_none() && net != "default" {
            let key = join(&join("services", name), "networks");
            err(errors, &cfg.at, key, format!("undefined network {net:?}"));
            continue;
        }
        let target = def
            .and_then(|d| d.name.clone())
            .unwrap_or_else(|| ns.scope(net));
        let mut aliases = cfg.aliases.clone();
        // Only user-defined networks take aliases; docker adds the service's own name last.
        let builtin = matches!(target.as_str(), "default" | "bridge" | "host" | "none")
            || target.starts_with("container:");
        if !builtin {
            aliases.push(name.to_string());
        }
        out.push(NetworkAttachmentConfig {
            target: Some(target),
            aliases: nonempty(aliases),
            driver_opts: cfg.driver_opts.as_ref().filter(|o| !o.is_empty()).map(hash),
        });
    }
    out.sort_by(|a, b| a.target.cmp(&b.target));
    out
}
