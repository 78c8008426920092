//! The task-level parts of a service spec (docker's `convert` helpers): mode, resources,
//! restart policy, update and rollback configs, credential spec, healthcheck and endpoint ports.

use std::collections::HashMap;

use bollard_stubs::models::*;

use super::{err, nonempty};
use crate::error::{Error, join};
use crate::model::{self, Service};
use crate::syntax;

pub(crate) fn mode(svc: &Service, key: &str, errors: &mut Vec<Error>) -> Option<ServiceSpecMode> {
    let replicas = svc.deploy.replicas.and_then(|r| i64::try_from(r).ok());
    let at = &svc.deploy.at;
    let no_replicas = "replicas can only be used with replicated or replicated-job mode";
    let empty = || Some(HashMap::new());
    match svc.deploy.mode.as_deref().unwrap_or("") {
        "" | "replicated" => Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas }),
            ..Default::default()
        }),
        "global" | "global-job" if replicas.is_some() => {
            err(errors, at, key.to_string(), no_replicas);
            None
        }
        "global" => Some(ServiceSpecMode {
            global: empty(),
            ..Default::default()
        }),
        "global-job" => Some(ServiceSpecMode {
            global_job: empty(),
            ..Default::default()
        }),
        "replicated-job" => Some(ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob {
                max_concurrent: replicas,
                total_completions: replicas,
            }),
            ..Default::default()
        }),
        m => {
            err(errors, at, key.to_string(), format!("unknown mode: {m}"));
            None
        }
    }
}

fn cpus(
    v: &Option<String>,
    at: &crate::Location,
    key: String,
    errors: &mut Vec<Error>,
) -> Option<i64> {
    let v = v.as_deref().filter(|c| !c.is_empty())?;
    match syntax::parse_cpus(v) {
        Ok(n) => Some(n),
        Err(e) => {
            err(errors, at, key, e);
            None
        }
    }
}

pub(crate) fn resources(svc: &Service, key: &str, errors: &mut Vec<Error>) -> TaskSpecResources {
    let r = &svc.deploy.resources;
    let at = &svc.deploy.at;
    TaskSpecResources {
        limits: r.limits.as_ref().map(|l| Limit {
            nano_cpus: cpus(&l.cpus, at, join(key, "limits.cpus"), errors).filter(|c| *c != 0),
            memory_bytes: l.memory.filter(|m| *m != 0),
            pids: l.pids.filter(|p| *p != 0),
        }),
        reservations: r.reservations.as_ref().map(|res| ResourceObject {
            nano_cpus: cpus(&res.cpus, at, join(key, "reservations.cpus"), errors)
                .filter(|c| *c != 0),
            memory_bytes: res.memory.filter(|m| *m != 0),
            generic_resources: nonempty(
                res.generic_resources
                    .iter()
                    .map(|(kind, value)| GenericResourcesInner {
                        named_resource_spec: None,
                        discrete_resource_spec: Some(GenericResourcesInnerDiscreteResourceSpec {
                            kind: nonempty(kind.clone()),
                            value: Some(*value).filter(|v| *v != 0),
                        }),
                    })
                    .collect(),
            ),
        }),
        ..Default::default()
    }
}

/// `deploy.restart_policy`, else the legacy `restart:` (docker's fallback).
pub(crate) fn restart_policy(
    svc: &Service,
    key: &str,
    errors: &mut Vec<Error>,
) -> Option<TaskSpecRestartPolicy> {
    let at = &svc.deploy.at;
    if let Some(p) = &svc.deploy.restart_policy {
        let condition = match p.condition.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => match c.parse::<TaskSpecRestartPolicyConditionEnum>() {
                Ok(c) => Some(c),
                Err(_) => {
                    let msg = format!("expected none, on-failure or any, got {c:?}");
                    err(
                        errors,
                        at,
                        "services.".to_string() + &svc.name + ".deploy.restart_policy.condition",
                        msg,
                    );
                    None
                }
            },
        };
        return Some(TaskSpecRestartPolicy {
            condition,
            delay: p.delay,
            max_attempts: p.max_attempts.and_then(|m| i64::try_from(m).ok()),
            window: p.window,
        });
    }
    let restart = svc.restart.as_deref().filter(|r| !r.is_empty())?;
    let (name, count) = match syntax::parse_restart(restart) {
        Ok(p) => p,
        Err(e) => {
            err(errors, &svc.at, key.to_string(), e);
            return None;
        }
    };
    if count < 0 {
        err(
            errors,
            &svc.at,
            key.to_string(),
            "invalid restart policy: maximum retry count cannot be negative",
        );
        return None;
    }
    let attempts = (count > 0).then_some(count);
    let condition = match name.as_str() {
        "no" | "" => return None,
        "always" | "unless-stopped" => TaskSpecRestartPolicyConditionEnum::ANY,
        "on-failure" => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
        other => {
            err(
                errors,
                &svc.at,
                key.to_string(),
                format!(
                    "invalid restart policy: unknown policy '{other}' (must be one of 'no', 'always', 'on-failure', or 'unless-stopped')"
                ),
            );
            return None;
        }
    };
    Some(TaskSpecRestartPolicy {
        condition: Some(condition),
        max_attempts: attempts,
        ..Default::default()
    })
}

pub(crate) fn update_config(
    u: Option<&model::UpdateConfig>,
    key: &str,
    svc: &Service,
    errors: &mut Vec<Error>,
) -> Option<ServiceSpecUpdateConfig> {
    let u = u?;
    let failure_action = u
        .failure_action
        .as_deref()
        .filter(|f| !f.is_empty())
        .and_then(|f| {
            f.parse::<ServiceSpecUpdateConfigFailureActionEnum>()
                .map_err(|_| {
                    err(
                        errors,
                        &svc.deploy.at,
                        join(key, "failure_action"),
                        format!("expected pause, continue or rollback, got {f:?}"),
                    )
                })
                .ok()
        });
    Some(ServiceSpecUpdateConfig {
        // docker's default parallelism when update_config is given.
        parallelism: Some(u.parallelism.unwrap_or(1).try_into().unwrap_or(i64::MAX)),
        delay: u.delay.filter(|d| *d != 0),
        failure_action,
        monitor: u.monitor.filter(|d| *d != 0),
        max_failure_ratio: Some(u.max_failure_ratio.unwrap_or(0.0)),
        order: Some(
            u.order
                .as_deref()
                .and_then(|o| o.parse().ok())
                .unwrap_or(ServiceSpecUpdateConfigOrderEnum::EMPTY),
        ),
    })
}

/// The rollback config has the same shape under another name.
pub(crate) fn update_config_as(
    u: Option<&model::UpdateConfig>,
    key: &str,
    svc: &Service,
    errors: &mut Vec<Error>,
) -> Option<ServiceSpecRollbackConfig> {
    let c = update_config(u, key, svc, errors)?;
    Some(ServiceSpecRollbackConfig {
        parallelism: c.parallelism,
        delay: c.delay,
        failure_action: c.failure_action.and_then(|f| f.as_ref().parse().ok()),
        monitor: c.monitor,
        max_failure_ratio: c.max_failure_ratio,
        order: c.order.and_then(|o| o.as_ref().parse().ok()),
    })
}

pub(crate) fn credential_spec(
    svc: &Service,
    key: &str,
    errors: &mut Vec<Error>,
) -> Option<TaskSpecContainerSpecPrivilegesCredentialSpec> {
    let c = svc.credential_spec.as_ref()?;
    let set: Vec<&str> = [
        ("Config", &c.config),
        ("File", &c.file),
        ("Registry", &c.registry),
    ]
    .into_iter()
    .filter(|(_, v)| v.as_deref().is_some_and(|s| !s.is_empty()))
    .map(|(n, _)| n)
    .collect();
    match set.as_slice() {
        [] => None,
        ["Config"] => {
            err(
                errors,
                &svc.at,
                key.to_string(),
                "credential_spec.config is not supported by shoal (Windows only)",
            );
            None
        }
        [_] => Some(TaskSpecContainerSpecPrivilegesCredentialSpec {
            config: None,
            file: c.file.clone().filter(|s| !s.is_empty()),
            registry: c.registry.clone().filter(|s| !s.is_empty()),
        }),
        many => {
            let quoted: Vec<String> = many.iter().map(|n| format!("{n:?}")).collect();
            err(
                errors,
                &svc.at,
                key.to_string(),
                format!(
                    "invalid credential spec: cannot specify both {}",
                    quoted.join(" and ")
                ),
            );
            None
        }
    }
}

pub(crate) fn healthcheck(h: &model::Healthcheck) -> HealthConfig {
    if h.disable {
        return HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
    }
    let nz = |d: Option<i64>| d.filter(|d| *d != 0);
    HealthConfig {
        test: h.test.clone().and_then(nonempty),
        interval: nz(h.interval),
        timeout: nz(h.timeout),
        retries: h
            .retries
            .filter(|r| *r != 0)
            .and_then(|r| i64::try_from(r).ok()),
        start_period: nz(h.start_period),
        start_interval: nz(h.start_interval),
    }
}

/// Endpoint ports, sorted like docker's `PortConfig.Compare`.
pub(crate) fn ports(svc: &Service, key: &str, errors: &mut Vec<Error>) -> Vec<EndpointPortConfig> {
    let mut out: Vec<EndpointPortConfig> = Vec::new();
    for p in &svc.ports {
        let protocol = p
            .protocol
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| {
                s.parse::<EndpointPortConfigProtocolEnum>()
                    .map_err(|_| {
                        err(
                            errors,
                            &svc.at,
                            key.to_string(),
                            format!("expected tcp, udp or sctp, got {s:?}"),
                        )
                    })
                    .ok()
            });
        let publish_mode = p.mode.as_deref().filter(|s| !s.is_empty()).and_then(|s| {
            s.parse::<EndpointPortConfigPublishModeEnum>()
                .map_err(|_| {
                    err(
                        errors,
                        &svc.at,
                        key.to_string(),
                        format!("expected ingress or host, got {s:?}"),
                    )
                })
                .ok()
        });
        out.push(EndpointPortConfig {
            name: None,
            protocol,
            target_port: Some(i64::from(p.target)).filter(|t| *t != 0),
            published_port: Some(i64::from(p.published)).filter(|t| *t != 0),
            publish_mode,
        });
    }
    let text = |e: &Option<String>| e.clone().unwrap_or_default();
    out.sort_by(|a, b| {
        (a.published_port.unwrap_or(0), a.target_port.unwrap_or(0))
            .cmp(&(b.published_port.unwrap_or(0), b.target_port.unwrap_or(0)))
            .then_with(|| {
                text(&a.protocol.map(|p| p.as_ref().to_string()))
                    .cmp(&text(&b.protocol.map(|p| p.as_ref().to_string())))
            })
            .then_with(|| {
                text(&a.publish_mode.map(|p| p.as_ref().to_string()))
                    .cmp(&text(&b.publish_mode.map(|p| p.as_ref().to_string())))
            })
    });
    out
}
