//! Services and task specs.

use bollard_stubs::models as w;
use shoal_types::service::{
    EndpointMode, EndpointSpec, FailureAction, NetworkAttachmentConfig, PortConfig, Protocol,
    PublishMode, Service, ServiceMode, ServiceSpec, UpdateConfig, UpdateOrder, UpdateState,
    UpdateStatus,
};

use super::service_extras::docker_task_spec_keys;
pub use super::service_task::{task_spec_in, task_spec_out};
use super::{labels_in, labels_out, nanos, non_negative, opt_duration, time, version};
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

impl WireService {
    /// The JSON the Docker daemon sends: keys as Docker spells them (`Healthcheck`).
    pub fn to_json(&self) -> serde_json::Result<serde_json::Value> {
        let mut v = serde_json::to_value(self)?;
        for spec in ["Spec", "PreviousSpec"] {
            docker_task_spec_keys(v.get_mut(spec).and_then(|s| s.get_mut("TaskTemplate")));
        }
        Ok(v)
    }
}

pub fn spec_in(s: w::ServiceSpec) -> Result<ServiceSpec, ApiError> {
    let name = s.name.unwrap_or_default();
    let endpoint_omitted = s.endpoint_spec.is_none();
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
        endpoint_omitted,
        // Carried over from the current service by an update (the Docker API has no field
        // for it).
        kube: None,
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

pub(super) fn networks_in(
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

/// As Docker shows a port: protocol and mode always, the ports only when set (a port to be
/// allocated shows none in the spec, its number in the service's `Endpoint`).
fn port_out(p: &PortConfig) -> w::EndpointPortConfig {
    w::EndpointPortConfig {
        name: (!p.name.is_empty()).then(|| p.name.clone()),
        protocol: Some(match p.protocol {
            Protocol::Tcp => w::EndpointPortConfigProtocolEnum::TCP,
            Protocol::Udp => w::EndpointPortConfigProtocolEnum::UDP,
        }),
        target_port: (p.target_port != 0).then_some(i64::from(p.target_port)),
        published_port: (p.published_port != 0).then_some(i64::from(p.published_port)),
        publish_mode: Some(match p.publish_mode {
            PublishMode::Ingress => w::EndpointPortConfigPublishModeEnum::INGRESS,
            PublishMode::Host => w::EndpointPortConfigPublishModeEnum::HOST,
        }),
    }
}

pub(super) fn networks_out(
    n: &[NetworkAttachmentConfig],
) -> Option<Vec<w::NetworkAttachmentConfig>> {
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

/// An update config as Docker reads one: what is absent is Go's zero value (a parallelism of 0
/// updates every task at once), except the monitor, where 0 or absent means Swarm's 5 s.
fn update_in(field: &str, u: w::ServiceSpecUpdateConfig) -> Result<UpdateConfig, ApiError> {
    Ok(UpdateConfig {
        parallelism: non_negative(&format!("{field}.Parallelism"), u.parallelism)?,
        delay: opt_duration(&format!("{field}.Delay"), u.delay)?.unwrap_or_default(),
        failure_action: match u.failure_action {
            Some(w::ServiceSpecUpdateConfigFailureActionEnum::CONTINUE) => FailureAction::Continue,
            Some(w::ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK) => FailureAction::Rollback,
            _ => FailureAction::Pause,
        },
        monitor: opt_duration(&format!("{field}.Monitor"), u.monitor)?.filter(|m| !m.is_zero()),
        max_failure_ratio: u.max_failure_ratio.unwrap_or(0.0),
        order: match u.order {
            Some(w::ServiceSpecUpdateConfigOrderEnum::START_FIRST) => UpdateOrder::StartFirst,
            _ => UpdateOrder::StopFirst,
        },
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
                    // The wire has no rollback of a rollback; spec_in never makes one.
                    FailureAction::Pause | FailureAction::Rollback => {
                        w::ServiceSpecRollbackConfigFailureActionEnum::PAUSE
                    }
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
        // Swarm shows no endpoint spec where the client gave none.
        endpoint_spec: (!s.endpoint_omitted || s.endpoint != EndpointSpec::default())
            .then(|| endpoint_out(&s.endpoint)),
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

/// As Docker shows one: parallelism, failure action, ratio and order always; the delay and the
/// monitor only when set (Go's `omitempty`).
fn update_out(u: &UpdateConfig) -> w::ServiceSpecUpdateConfig {
    w::ServiceSpecUpdateConfig {
        parallelism: Some(i64::try_from(u.parallelism).unwrap_or(i64::MAX)),
        delay: (!u.delay.is_zero()).then(|| nanos(u.delay)),
        failure_action: Some(match u.failure_action {
            FailureAction::Pause => w::ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
            FailureAction::Continue => w::ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
            FailureAction::Rollback => w::ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
        }),
        monitor: u.monitor.map(nanos),
        max_failure_ratio: Some(u.max_failure_ratio),
        order: Some(match u.order {
            UpdateOrder::StopFirst => w::ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
            UpdateOrder::StartFirst => w::ServiceSpecUpdateConfigOrderEnum::START_FIRST,
        }),
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
    let spec = spec_out(&s.spec);
    WireService {
        service: w::Service {
            id: Some(s.id.to_string()),
            version: version(s.meta.version),
            created_at: time(s.meta.created_at),
            updated_at: time(s.meta.updated_at),
            endpoint: Some(w::ServiceEndpoint {
                // Go's struct value: `{}` where the spec has no endpoint spec.
                spec: Some(spec.endpoint_spec.clone().unwrap_or_default()),
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
            spec: Some(spec),
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
