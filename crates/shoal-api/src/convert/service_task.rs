//! Task templates (a service's `TaskTemplate`, a task's `Spec`) between the wire and the model.

use bollard_stubs::models as w;
use shoal_types::node::{Platform, Resources};
use shoal_types::service::{
    ContainerSpec, Limits, Omitted, Placement, ResourceRequirements, RestartCondition,
    RestartPolicy, SpreadPreference, TaskSpec,
};

use super::service::{networks_in, networks_out};
use super::service_extras::{log_driver_in, log_driver_out, privileges_in, privileges_out};
use super::{container, labels_in, nanos, non_negative, opt_duration};
use crate::error::ApiError;

fn refuse_if<T>(field: &str, v: &Option<T>, set: impl Fn(&T) -> bool) -> Result<(), ApiError> {
    match v {
        Some(x) if set(x) => Err(ApiError::invalid(field, "is not supported by shoal yet")),
        _ => Ok(()),
    }
}

pub fn task_spec_in(t: w::TaskSpec) -> Result<TaskSpec, ApiError> {
    refuse_if("TaskTemplate.PluginSpec", &t.plugin_spec, |_| true)?;
    refuse_if(
        "TaskTemplate.NetworkAttachmentSpec",
        &t.network_attachment_spec,
        |_| true,
    )?;
    let networks = networks_in("TaskTemplate.Networks", t.networks)?;
    let Some(c) = t.container_spec else {
        return Err(ApiError::invalid(
            "TaskTemplate.ContainerSpec",
            "a container spec is required",
        ));
    };
    let cf = |f: &str| format!("TaskTemplate.ContainerSpec.{f}");
    let privileges = privileges_in(&cf("Privileges"), c.privileges)?;
    refuse_if(&cf("Isolation"), &c.isolation, |i| {
        !matches!(
            i,
            w::TaskSpecContainerSpecIsolationEnum::DEFAULT
                | w::TaskSpecContainerSpecIsolationEnum::EMPTY
        )
    })?;
    let secrets = super::payload::secrets_in(c.secrets)?;
    let configs = super::payload::configs_in(c.configs)?;
    let container = ContainerSpec {
        secrets,
        configs,
        image: c.image.unwrap_or_default(),
        labels: labels_in(c.labels),
        command: c.command.unwrap_or_default(),
        args: c.args.unwrap_or_default(),
        hostname: c.hostname.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        dir: c.dir.unwrap_or_default(),
        user: c.user.unwrap_or_default(),
        groups: c.groups.unwrap_or_default(),
        tty: c.tty.unwrap_or(false),
        open_stdin: c.open_stdin.unwrap_or(false),
        read_only: c.read_only.unwrap_or(false),
        stop_signal: c.stop_signal.unwrap_or_default(),
        stop_grace_period: opt_duration(&cf("StopGracePeriod"), c.stop_grace_period)?,
        // Kept as sent, `false` included, so that it is shown as sent (Swarm keeps a `*bool`).
        init: c.init,
        mounts: container::mounts_in(&cf("Mounts"), c.mounts)?,
        // An empty check (`{}`, or one of zeros) is kept too: it means the image's, as none does.
        healthcheck: match c.health_check {
            None => None,
            h => Some(container::health_in(&cf("Healthcheck"), h)?.unwrap_or_default()),
        },
        cap_add: c.capability_add.unwrap_or_default(),
        cap_drop: c.capability_drop.unwrap_or_default(),
        sysctls: c.sysctls.unwrap_or_default().into_iter().collect(),
        ulimits: container::ulimits_in(&cf("Ulimits"), c.ulimits)?,
        // The empty one the docker CLI always sends is kept, to be shown as sent.
        dns_config: c
            .dns_config
            .map(|d| container::dns_in(Some(d)).unwrap_or_default()),
        hosts: c.hosts.unwrap_or_default(),
        privileges,
    };
    let mut omitted = Omitted::default();
    let resources = match t.resources {
        None => {
            omitted = Omitted {
                resources: true,
                limits: true,
                reservations: true,
                ..omitted
            };
            ResourceRequirements::default()
        }
        Some(r) => {
            omitted.limits = r.limits.is_none();
            omitted.reservations = r.reservations.is_none();
            let limits = r.limits.unwrap_or_default();
            let res = r.reservations.unwrap_or_default();
            let generic_reservations = super::generic::list_in(
                "TaskTemplate.Resources.Reservations.GenericResources",
                res.generic_resources,
            )?;
            ResourceRequirements {
                limits: Limits {
                    nano_cpus: limits.nano_cpus.unwrap_or(0),
                    memory_bytes: limits.memory_bytes.unwrap_or(0),
                    // Negative counts are the manager's to refuse, by name (validate.rs).
                    pids: limits.pids.unwrap_or(0),
                },
                reservations: Resources {
                    nano_cpus: res.nano_cpus.unwrap_or(0),
                    memory_bytes: res.memory_bytes.unwrap_or(0),
                },
                generic_reservations,
            }
        }
    };
    let restart = match t.restart_policy {
        None => {
            omitted.restart = true;
            RestartPolicy::default()
        }
        Some(r) => RestartPolicy {
            condition: match r.condition {
                Some(w::TaskSpecRestartPolicyConditionEnum::NONE) => RestartCondition::None,
                Some(w::TaskSpecRestartPolicyConditionEnum::ON_FAILURE) => {
                    RestartCondition::OnFailure
                }
                _ => RestartCondition::Any,
            },
            delay: opt_duration("TaskTemplate.RestartPolicy.Delay", r.delay)?,
            max_attempts: non_negative("TaskTemplate.RestartPolicy.MaxAttempts", r.max_attempts)?,
            window: opt_duration("TaskTemplate.RestartPolicy.Window", r.window)?,
        },
    };
    let placement = match t.placement {
        None => {
            omitted.placement = true;
            Placement::default()
        }
        Some(p) => {
            let mut preferences = Vec::new();
            for (i, pref) in p.preferences.unwrap_or_default().into_iter().enumerate() {
                let Some(d) = pref.spread.and_then(|s| s.spread_descriptor) else {
                    return Err(ApiError::invalid(
                        &format!("TaskTemplate.Placement.Preferences[{i}]"),
                        "only spread preferences (Spread.SpreadDescriptor) are supported",
                    ));
                };
                preferences.push(SpreadPreference { spread: d });
            }
            Placement {
                constraints: p.constraints.unwrap_or_default(),
                preferences,
                max_replicas: non_negative("TaskTemplate.Placement.MaxReplicas", p.max_replicas)?,
                platforms: p
                    .platforms
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| Platform {
                        os: p.os.unwrap_or_default(),
                        arch: p.architecture.unwrap_or_default(),
                    })
                    .collect(),
            }
        }
    };
    let runtime = match t.runtime.as_deref() {
        None | Some("") | Some("container") => String::new(),
        Some(other) => {
            return Err(ApiError::invalid(
                "TaskTemplate.Runtime",
                format!("{other:?} is not supported; use \"container\""),
            ));
        }
    };
    Ok(TaskSpec {
        container,
        resources,
        restart,
        placement,
        force_update: t.force_update.unwrap_or(0),
        runtime,
        networks,
        log_driver: log_driver_in(t.log_driver),
        omitted,
    })
}

/// A task spec as Docker shows it: the optional objects only where the client gave them (or
/// where they hold something: a spec written by shoal itself records nothing as omitted).
pub fn task_spec_out(t: &TaskSpec) -> w::TaskSpec {
    let c = &t.container;
    let some_vec = |v: &Vec<String>| if v.is_empty() { None } else { Some(v.clone()) };
    let some_str = |s: &String| if s.is_empty() { None } else { Some(s.clone()) };
    let omitted = &t.omitted;
    let (limits, reservations) = (&t.resources.limits, &t.resources.reservations);
    let show_limits = !omitted.limits || !limits.is_zero();
    let show_reservations = !omitted.reservations
        || !reservations.is_zero()
        || !t.resources.generic_reservations.is_empty();
    let show_resources = !omitted.resources || show_limits || show_reservations;
    w::TaskSpec {
        container_spec: Some(w::TaskSpecContainerSpec {
            secrets: super::payload::secrets_out(&c.secrets),
            configs: super::payload::configs_out(&c.configs),
            image: Some(c.image.clone()),
            // Docker leaves an empty map out (`omitempty`).
            labels: container::map_out(&c.labels),
            command: some_vec(&c.command),
            args: some_vec(&c.args),
            hostname: some_str(&c.hostname),
            env: some_vec(&c.env),
            dir: some_str(&c.dir),
            user: some_str(&c.user),
            groups: some_vec(&c.groups),
            privileges: c.privileges.as_ref().map(privileges_out),
            tty: c.tty.then_some(true),
            open_stdin: c.open_stdin.then_some(true),
            read_only: c.read_only.then_some(true),
            stop_signal: some_str(&c.stop_signal),
            stop_grace_period: c.stop_grace_period.map(nanos),
            init: c.init,
            mounts: container::mounts_out(&c.mounts),
            health_check: container::health_out(c.healthcheck.as_ref()),
            capability_add: some_vec(&c.cap_add),
            capability_drop: some_vec(&c.cap_drop),
            sysctls: container::map_out(&c.sysctls),
            ulimits: container::ulimits_out(&c.ulimits),
            dns_config: c
                .dns_config
                .as_ref()
                .map(|d| container::dns_out(d).unwrap_or_default()),
            hosts: some_vec(&c.hosts),
            ..Default::default()
        }),
        resources: show_resources.then(|| w::TaskSpecResources {
            limits: show_limits.then(|| w::Limit {
                nano_cpus: (limits.nano_cpus != 0).then_some(limits.nano_cpus),
                memory_bytes: (limits.memory_bytes != 0).then_some(limits.memory_bytes),
                // Docker omits an unlimited count.
                pids: (limits.pids != 0).then_some(limits.pids),
            }),
            reservations: show_reservations.then(|| w::ResourceObject {
                nano_cpus: (reservations.nano_cpus != 0).then_some(reservations.nano_cpus),
                memory_bytes: (reservations.memory_bytes != 0).then_some(reservations.memory_bytes),
                generic_resources: super::generic::list_out(&t.resources.generic_reservations),
            }),
            ..Default::default()
        }),
        restart_policy: (!omitted.restart || t.restart != RestartPolicy::default()).then(|| {
            w::TaskSpecRestartPolicy {
                condition: Some(match t.restart.condition {
                    RestartCondition::None => w::TaskSpecRestartPolicyConditionEnum::NONE,
                    RestartCondition::OnFailure => {
                        w::TaskSpecRestartPolicyConditionEnum::ON_FAILURE
                    }
                    RestartCondition::Any => w::TaskSpecRestartPolicyConditionEnum::ANY,
                }),
                delay: t.restart.delay.map(nanos),
                max_attempts: Some(i64::try_from(t.restart.max_attempts).unwrap_or(i64::MAX)),
                window: t.restart.window.map(nanos),
            }
        }),
        placement: (!omitted.placement || t.placement != Placement::default()).then(|| {
            w::TaskSpecPlacement {
                constraints: some_vec(&t.placement.constraints),
                preferences: (!t.placement.preferences.is_empty()).then(|| {
                    t.placement
                        .preferences
                        .iter()
                        .map(|p| w::TaskSpecPlacementPreferences {
                            spread: Some(w::TaskSpecPlacementSpread {
                                spread_descriptor: Some(p.spread.clone()),
                            }),
                        })
                        .collect()
                }),
                max_replicas: (t.placement.max_replicas > 0)
                    .then(|| i64::try_from(t.placement.max_replicas).unwrap_or(i64::MAX)),
                platforms: (!t.placement.platforms.is_empty()).then(|| {
                    t.placement
                        .platforms
                        .iter()
                        .map(|p| w::Platform {
                            architecture: some_str(&p.arch),
                            os: some_str(&p.os),
                        })
                        .collect()
                }),
            }
        }),
        force_update: Some(t.force_update),
        runtime: Some("container".into()),
        networks: networks_out(&t.networks),
        log_driver: t.log_driver.as_ref().map(log_driver_out),
        ..Default::default()
    }
}
