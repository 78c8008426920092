//! Services and task specs.

use bollard_stubs::models as w;
use shoal_types::node::Resources;
use shoal_types::service::{
    ContainerSpec, EndpointMode, EndpointSpec, FailureAction, Limits, NetworkAttachmentConfig,
    Placement, PortConfig, Protocol, PublishMode, ResourceRequirements, RestartCondition,
    RestartPolicy, Service, ServiceMode, ServiceSpec, SpreadPreference, TaskSpec, UpdateConfig,
    UpdateOrder, UpdateState, UpdateStatus,
};

use super::{container, labels_in, labels_out, nanos, non_negative, opt_duration, time, version};
use crate::error::ApiError;

/// The wire form of a service: bollard's model plus `PreviousSpec`, which the Engine API has and
/// the model lacks.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WireService {
    #[serde(flatten)]
    pub service: w::Service,
    #[serde(rename = "PreviousSpec", skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<w::ServiceSpec>,
}

fn refuse_if<T>(field: &str, v: &Option<T>, set: impl Fn(&T) -> bool) -> Result<(), ApiError> {
    match v {
        Some(x) if set(x) => Err(ApiError::invalid(field, "is not supported by shoal yet")),
        _ => Ok(()),
    }
}

/// A value that asks for nothing: nulls, `false`, empty strings and lists, Docker's "default"
/// modes, and objects of those.
fn blank(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty() || s == "default",
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(blank),
        _ => false,
    }
}

#[allow(clippy::ptr_arg)] // a predicate over the wire's `Option<Vec<_>>` fields
fn non_empty<T>(v: &Vec<T>) -> bool {
    !v.is_empty()
}

pub fn spec_in(s: w::ServiceSpec) -> Result<ServiceSpec, ApiError> {
    let name = s.name.unwrap_or_default();
    let endpoint = match s.endpoint_spec {
        None => EndpointSpec::default(),
        Some(e) => EndpointSpec {
            mode: match e.mode {
                Some(w::EndpointSpecModeEnum::DNSRR) => EndpointMode::Dnsrr,
                _ => EndpointMode::Vip,
            },
            ports: e
                .ports
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, p)| port_in(&format!("EndpointSpec.Ports[{i}]"), p))
                .collect::<Result<_, _>>()?,
        },
    };
    let mode = match s.mode {
        None => ServiceMode::Replicated { replicas: 1 },
        Some(m) => {
            let given = [
                m.replicated.is_some(),
                m.global.is_some(),
                m.replicated_job.is_some(),
                m.global_job.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err(ApiError::invalid(
                    "Mode",
                    "only one of Replicated, Global, ReplicatedJob and GlobalJob may be set",
                ));
            }
            if let Some(r) = m.replicated {
                ServiceMode::Replicated {
                    replicas: non_negative("Mode.Replicated.Replicas", r.replicas.or(Some(1)))?,
                }
            } else if m.global.is_some() {
                ServiceMode::Global
            } else if let Some(j) = m.replicated_job {
                ServiceMode::ReplicatedJob {
                    max_concurrent: non_negative(
                        "Mode.ReplicatedJob.MaxConcurrent",
                        j.max_concurrent.or(Some(1)),
                    )?,
                    total_completions: non_negative(
                        "Mode.ReplicatedJob.TotalCompletions",
                        j.total_completions.or(j.max_concurrent).or(Some(1)),
                    )?,
                }
            } else if m.global_job.is_some() {
                ServiceMode::GlobalJob
            } else {
                ServiceMode::Replicated { replicas: 1 }
            }
        }
    };
    let mut task = task_spec_in(s.task_template.unwrap_or_default())?;
    // The deprecated top-level `Networks` (old clients) means the task template's, as in
    // Docker, when the template names none.
    if task.networks.is_empty() {
        task.networks = networks_in("Networks", s.networks)?;
    }
    let update = s
        .update_config
        .map(|u| update_in("UpdateConfig", u))
        .transpose()?;
    let rollback = s
        .rollback_config
        .map(|r| {
            update_in(
                "RollbackConfig",
                w::ServiceSpecUpdateConfig {
                    parallelism: r.parallelism,
                    delay: r.delay,
                    failure_action: r.failure_action.map(|f| match f {
                        w::ServiceSpecRollbackConfigFailureActionEnum::CONTINUE => {
                            w::ServiceSpecUpdateConfigFailureActionEnum::CONTINUE
                        }
                        w::ServiceSpecRollbackConfigFailureActionEnum::PAUSE => {
                            w::ServiceSpecUpdateConfigFailureActionEnum::PAUSE
                        }
                        w::ServiceSpecRollbackConfigFailureActionEnum::EMPTY => {
                            w::ServiceSpecUpdateConfigFailureActionEnum::EMPTY
                        }
                    }),
                    monitor: r.monitor,
                    max_failure_ratio: r.max_failure_ratio,
                    order: r.order.map(|o| match o {
                        w::ServiceSpecRollbackConfigOrderEnum::START_FIRST => {
                            w::ServiceSpecUpdateConfigOrderEnum::START_FIRST
                        }
                        w::ServiceSpecRollbackConfigOrderEnum::STOP_FIRST => {
                            w::ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
                        }
                        w::ServiceSpecRollbackConfigOrderEnum::EMPTY => {
                            w::ServiceSpecUpdateConfigOrderEnum::EMPTY
                        }
                    }),
                },
            )
        })
        .transpose()?;
    Ok(ServiceSpec {
        name,
        labels: labels_in(s.labels),
        task,
        mode,
        update,
        rollback,
        endpoint,
    })
}

fn port_in(field: &str, p: w::EndpointPortConfig) -> Result<PortConfig, ApiError> {
    let port = |f: &str, v: Option<i64>| -> Result<u16, ApiError> {
        let v = v.unwrap_or(0);
        u16::try_from(v).map_err(|_| {
            ApiError::invalid(
                &format!("{field}.{f}"),
                format!("{v} is not a port (0-65535)"),
            )
        })
    };
    Ok(PortConfig {
        name: p.name.unwrap_or_default(),
        protocol: match p.protocol {
            None
            | Some(w::EndpointPortConfigProtocolEnum::EMPTY)
            | Some(w::EndpointPortConfigProtocolEnum::TCP) => Protocol::Tcp,
            Some(w::EndpointPortConfigProtocolEnum::UDP) => Protocol::Udp,
            Some(w::EndpointPortConfigProtocolEnum::SCTP) => {
                return Err(ApiError::invalid(
                    &format!("{field}.Protocol"),
                    "sctp is not supported; use tcp or udp",
                ));
            }
        },
        target_port: port("TargetPort", p.target_port)?,
        published_port: port("PublishedPort", p.published_port)?,
        publish_mode: match p.publish_mode {
            Some(w::EndpointPortConfigPublishModeEnum::HOST) => PublishMode::Host,
            _ => PublishMode::Ingress,
        },
    })
}

fn networks_in(
    field: &str,
    n: Option<Vec<w::NetworkAttachmentConfig>>,
) -> Result<Vec<NetworkAttachmentConfig>, ApiError> {
    n.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let target = c.target.unwrap_or_default();
            if target.is_empty() {
                return Err(ApiError::invalid(
                    &format!("{field}[{i}].Target"),
                    "a network name or ID is required",
                ));
            }
            Ok(NetworkAttachmentConfig {
                target,
                aliases: c.aliases.unwrap_or_default(),
                driver_opts: c.driver_opts.unwrap_or_default().into_iter().collect(),
            })
        })
        .collect()
}

fn port_out(p: &PortConfig) -> w::EndpointPortConfig {
    w::EndpointPortConfig {
        name: (!p.name.is_empty()).then(|| p.name.clone()),
        protocol: Some(match p.protocol {
            Protocol::Tcp => w::EndpointPortConfigProtocolEnum::TCP,
            Protocol::Udp => w::EndpointPortConfigProtocolEnum::UDP,
        }),
        target_port: Some(i64::from(p.target_port)),
        published_port: Some(i64::from(p.published_port)),
        publish_mode: Some(match p.publish_mode {
            PublishMode::Ingress => w::EndpointPortConfigPublishModeEnum::INGRESS,
            PublishMode::Host => w::EndpointPortConfigPublishModeEnum::HOST,
        }),
    }
}

fn networks_out(n: &[NetworkAttachmentConfig]) -> Option<Vec<w::NetworkAttachmentConfig>> {
    (!n.is_empty()).then(|| {
        n.iter()
            .map(|c| w::NetworkAttachmentConfig {
                target: Some(c.target.clone()),
                aliases: (!c.aliases.is_empty()).then(|| c.aliases.clone()),
                driver_opts: (!c.driver_opts.is_empty())
                    .then(|| c.driver_opts.clone().into_iter().collect()),
            })
            .collect()
    })
}

fn update_in(field: &str, u: w::ServiceSpecUpdateConfig) -> Result<UpdateConfig, ApiError> {
    let d = UpdateConfig::default();
    Ok(UpdateConfig {
        parallelism: match u.parallelism {
            None => d.parallelism,
            Some(p) => non_negative(&format!("{field}.Parallelism"), Some(p))?,
        },
        delay: opt_duration(&format!("{field}.Delay"), u.delay)?.unwrap_or(d.delay),
        failure_action: match u.failure_action {
            Some(w::ServiceSpecUpdateConfigFailureActionEnum::CONTINUE) => FailureAction::Continue,
            Some(w::ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK) => FailureAction::Rollback,
            _ => FailureAction::Pause,
        },
        monitor: opt_duration(&format!("{field}.Monitor"), u.monitor)?.unwrap_or(d.monitor),
        max_failure_ratio: u.max_failure_ratio.unwrap_or(0.0),
        order: match u.order {
            Some(w::ServiceSpecUpdateConfigOrderEnum::START_FIRST) => UpdateOrder::StartFirst,
            _ => UpdateOrder::StopFirst,
        },
    })
}

pub fn task_spec_in(t: w::TaskSpec) -> Result<TaskSpec, ApiError> {
    refuse_if("TaskTemplate.PluginSpec", &t.plugin_spec, |_| true)?;
    refuse_if(
        "TaskTemplate.NetworkAttachmentSpec",
        &t.network_attachment_spec,
        |_| true,
    )?;
    let networks = networks_in("TaskTemplate.Networks", t.networks)?;
    refuse_if("TaskTemplate.LogDriver", &t.log_driver, |l| {
        l.name.as_deref().is_some_and(|n| !n.is_empty())
    })?;
    let Some(c) = t.container_spec else {
        return Err(ApiError::invalid(
            "TaskTemplate.ContainerSpec",
            "a container spec is required",
        ));
    };
    let cf = |f: &str| format!("TaskTemplate.ContainerSpec.{f}");
    // `docker stack deploy` always sends a Privileges object, with nothing in it.
    refuse_if(&cf("Privileges"), &c.privileges, |p| {
        serde_json::to_value(p).is_ok_and(|v| !blank(&v))
    })?;
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
        // Only `true` means anything; `false` and absent are the same.
        init: c.init.filter(|i| *i),
        mounts: container::mounts_in(&cf("Mounts"), c.mounts)?,
        healthcheck: container::health_in(&cf("HealthCheck"), c.health_check)?,
        cap_add: c.capability_add.unwrap_or_default(),
        cap_drop: c.capability_drop.unwrap_or_default(),
        sysctls: c.sysctls.unwrap_or_default().into_iter().collect(),
        ulimits: container::ulimits_in(&cf("Ulimits"), c.ulimits)?,
        dns_config: container::dns_in(c.dns_config),
        hosts: c.hosts.unwrap_or_default(),
    };
    let resources = match t.resources {
        None => ResourceRequirements::default(),
        Some(r) => {
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
        None => RestartPolicy::default(),
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
            window: opt_duration("TaskTemplate.RestartPolicy.Window", r.window)?
                .unwrap_or_default(),
        },
    };
    let placement = match t.placement {
        None => Placement::default(),
        Some(p) => {
            refuse_if("TaskTemplate.Placement.Platforms", &p.platforms, non_empty)?;
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
    })
}

pub fn spec_out(s: &ServiceSpec) -> w::ServiceSpec {
    let mode = match &s.mode {
        ServiceMode::Replicated { replicas } => w::ServiceSpecMode {
            replicated: Some(w::ServiceSpecModeReplicated {
                replicas: Some(i64::try_from(*replicas).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        },
        ServiceMode::Global => w::ServiceSpecMode {
            global: Some(Default::default()),
            ..Default::default()
        },
        ServiceMode::ReplicatedJob {
            max_concurrent,
            total_completions,
        } => w::ServiceSpecMode {
            replicated_job: Some(w::ServiceSpecModeReplicatedJob {
                max_concurrent: Some(i64::try_from(*max_concurrent).unwrap_or(i64::MAX)),
                total_completions: Some(i64::try_from(*total_completions).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        },
        ServiceMode::GlobalJob => w::ServiceSpecMode {
            global_job: Some(Default::default()),
            ..Default::default()
        },
    };
    w::ServiceSpec {
        name: Some(s.name.clone()),
        labels: labels_out(&s.labels),
        task_template: Some(task_spec_out(&s.task)),
        mode: Some(mode),
        update_config: s.update.as_ref().map(update_out),
        rollback_config: s.rollback.as_ref().map(|u| {
            let o = update_out(u);
            w::ServiceSpecRollbackConfig {
                parallelism: o.parallelism,
                delay: o.delay,
                failure_action: Some(match u.failure_action {
                    FailureAction::Continue => {
                        w::ServiceSpecRollbackConfigFailureActionEnum::CONTINUE
                    }
                    _ => w::ServiceSpecRollbackConfigFailureActionEnum::PAUSE,
                }),
                monitor: o.monitor,
                max_failure_ratio: o.max_failure_ratio,
                order: Some(match u.order {
                    UpdateOrder::StartFirst => w::ServiceSpecRollbackConfigOrderEnum::START_FIRST,
                    UpdateOrder::StopFirst => w::ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
                }),
            }
        }),
        networks: None,
        endpoint_spec: Some(endpoint_out(&s.endpoint)),
    }
}

fn endpoint_out(e: &EndpointSpec) -> w::EndpointSpec {
    w::EndpointSpec {
        mode: Some(match e.mode {
            EndpointMode::Vip => w::EndpointSpecModeEnum::VIP,
            EndpointMode::Dnsrr => w::EndpointSpecModeEnum::DNSRR,
        }),
        ports: (!e.ports.is_empty()).then(|| e.ports.iter().map(port_out).collect()),
    }
}

fn update_out(u: &UpdateConfig) -> w::ServiceSpecUpdateConfig {
    w::ServiceSpecUpdateConfig {
        parallelism: Some(i64::try_from(u.parallelism).unwrap_or(i64::MAX)),
        delay: Some(nanos(u.delay)),
        failure_action: Some(match u.failure_action {
            FailureAction::Pause => w::ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
            FailureAction::Continue => w::ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
            FailureAction::Rollback => w::ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
        }),
        monitor: Some(nanos(u.monitor)),
        max_failure_ratio: Some(u.max_failure_ratio),
        order: Some(match u.order {
            UpdateOrder::StopFirst => w::ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
            UpdateOrder::StartFirst => w::ServiceSpecUpdateConfigOrderEnum::START_FIRST,
        }),
    }
}

pub fn task_spec_out(t: &TaskSpec) -> w::TaskSpec {
    let c = &t.container;
    let some_vec = |v: &Vec<String>| if v.is_empty() { None } else { Some(v.clone()) };
    let some_str = |s: &String| if s.is_empty() { None } else { Some(s.clone()) };
    w::TaskSpec {
        container_spec: Some(w::TaskSpecContainerSpec {
            secrets: super::payload::secrets_out(&c.secrets),
            configs: super::payload::configs_out(&c.configs),
            image: Some(c.image.clone()),
            labels: labels_out(&c.labels),
            command: some_vec(&c.command),
            args: some_vec(&c.args),
            hostname: some_str(&c.hostname),
            env: some_vec(&c.env),
            dir: some_str(&c.dir),
            user: some_str(&c.user),
            groups: some_vec(&c.groups),
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
            dns_config: c.dns_config.as_ref().and_then(container::dns_out),
            hosts: some_vec(&c.hosts),
            ..Default::default()
        }),
        resources: Some(w::TaskSpecResources {
            limits: Some(w::Limit {
                nano_cpus: (t.resources.limits.nano_cpus != 0)
                    .then_some(t.resources.limits.nano_cpus),
                memory_bytes: (t.resources.limits.memory_bytes != 0)
                    .then_some(t.resources.limits.memory_bytes),
                // Docker omits an unlimited count.
                pids: (t.resources.limits.pids != 0).then_some(t.resources.limits.pids),
            }),
            reservations: Some(w::ResourceObject {
                nano_cpus: (t.resources.reservations.nano_cpus != 0)
                    .then_some(t.resources.reservations.nano_cpus),
                memory_bytes: (t.resources.reservations.memory_bytes != 0)
                    .then_some(t.resources.reservations.memory_bytes),
                generic_resources: super::generic::list_out(&t.resources.generic_reservations),
            }),
            ..Default::default()
        }),
        restart_policy: Some(w::TaskSpecRestartPolicy {
            condition: Some(match t.restart.condition {
                RestartCondition::None => w::TaskSpecRestartPolicyConditionEnum::NONE,
                RestartCondition::OnFailure => w::TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
                RestartCondition::Any => w::TaskSpecRestartPolicyConditionEnum::ANY,
            }),
            delay: t.restart.delay.map(nanos),
            max_attempts: Some(i64::try_from(t.restart.max_attempts).unwrap_or(i64::MAX)),
            window: (!t.restart.window.is_zero()).then(|| nanos(t.restart.window)),
        }),
        placement: Some(w::TaskSpecPlacement {
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
            platforms: None,
        }),
        force_update: Some(t.force_update),
        runtime: Some("container".into()),
        networks: networks_out(&t.networks),
        ..Default::default()
    }
}

pub fn update_status_out(u: &UpdateStatus) -> w::ServiceUpdateStatus {
    w::ServiceUpdateStatus {
        state: Some(match u.state {
            UpdateState::Updating => w::ServiceUpdateStatusStateEnum::UPDATING,
            UpdateState::Paused => w::ServiceUpdateStatusStateEnum::PAUSED,
            UpdateState::Completed => w::ServiceUpdateStatusStateEnum::COMPLETED,
            UpdateState::RollbackStarted => w::ServiceUpdateStatusStateEnum::ROLLBACK_STARTED,
            UpdateState::RollbackPaused => w::ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED,
            UpdateState::RollbackCompleted => w::ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED,
        }),
        started_at: (!u.started_at.is_zero())
            .then(|| time(u.started_at))
            .flatten(),
        completed_at: (!u.completed_at.is_zero())
            .then(|| time(u.completed_at))
            .flatten(),
        message: Some(u.message.clone()),
    }
}

pub fn service_out(s: &Service, status: Option<w::ServiceServiceStatus>) -> WireService {
    WireService {
        service: w::Service {
            id: Some(s.id.to_string()),
            version: version(s.meta.version),
            created_at: time(s.meta.created_at),
            updated_at: time(s.meta.updated_at),
            spec: Some(spec_out(&s.spec)),
            endpoint: Some(w::ServiceEndpoint {
                spec: Some(endpoint_out(&s.spec.endpoint)),
                ports: (!s.endpoint.ports.is_empty())
                    .then(|| s.endpoint.ports.iter().map(port_out).collect()),
                virtual_ips: (!s.endpoint.virtual_ips.is_empty()).then(|| {
                    s.endpoint
                        .virtual_ips
                        .iter()
                        .map(|v| w::ServiceEndpointVirtualIps {
                            network_id: Some(v.network.to_string()),
                            addr: Some(v.addr.to_string()),
                        })
                        .collect()
                }),
            }),
            update_status: s.update_status.as_ref().map(update_status_out),
            service_status: status,
            job_status: None,
        },
        previous_spec: s.previous_spec.as_ref().map(spec_out),
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
