//! Update, rollback and restart policies as docker fills them in: swarmkit's defaults when the
//! first such flag is given, then the flags that were given.

use bollard_stubs::models::{
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};

use super::opts::{Parsed, UpdatePolicyFlags};

/// swarmkit's defaults for the monitor period and the restart delay.
pub const DEFAULT_MONITOR_NS: i64 = 5_000_000_000;
pub const DEFAULT_RESTART_DELAY_NS: i64 = 5_000_000_000;

/// swarmkit's default restart policy, completed by the given flags.
pub fn apply_restart(policy: Option<TaskSpecRestartPolicy>, p: &Parsed) -> TaskSpecRestartPolicy {
    let mut rp = policy.unwrap_or(TaskSpecRestartPolicy {
        condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
        delay: Some(DEFAULT_RESTART_DELAY_NS),
        max_attempts: Some(0),
        window: None,
    });
    if let Some(c) = p.restart_condition {
        rp.condition = Some(c);
    }
    if let Some(d) = p.restart_delay {
        rp.delay = Some(d);
    }
    if let Some(n) = p.restart_max_attempts {
        rp.max_attempts = Some(n);
    }
    if let Some(w) = p.restart_window {
        rp.window = Some(w);
    }
    rp
}

/// The update policy: the current one (or swarmkit's defaults) with the given flags applied.
/// Zero delay and monitor are left out, as Go's `omitempty` does.
pub fn apply_update_config(
    current: Option<ServiceSpecUpdateConfig>,
    f: &UpdatePolicyFlags,
) -> ServiceSpecUpdateConfig {
    let mut c = current.unwrap_or(ServiceSpecUpdateConfig {
        parallelism: Some(1),
        delay: None,
        failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::PAUSE),
        monitor: Some(DEFAULT_MONITOR_NS),
        max_failure_ratio: Some(0.0),
        order: Some(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST),
    });
    if let Some(p) = f.parallelism {
        c.parallelism = Some(p);
    }
    if let Some(d) = f.delay {
        c.delay = (d != 0).then_some(d);
    }
    if let Some(m) = f.monitor {
        c.monitor = (m != 0).then_some(m);
    }
    if let Some(a) = &f.failure_action {
        c.failure_action = Some(match a.as_str() {
            "continue" => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
            "rollback" => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
            _ => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
        });
    }
    if let Some(r) = f.max_failure_ratio {
        c.max_failure_ratio = Some(r);
    }
    if let Some(o) = &f.order {
        c.order = Some(if o == "start-first" {
            ServiceSpecUpdateConfigOrderEnum::START_FIRST
        } else {
            ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
        });
    }
    c
}

/// The rollback policy, like [`apply_update_config`].
pub fn apply_rollback_config(
    current: Option<ServiceSpecRollbackConfig>,
    f: &UpdatePolicyFlags,
) -> ServiceSpecRollbackConfig {
    let mut c = current.unwrap_or(ServiceSpecRollbackConfig {
        parallelism: Some(1),
        delay: None,
        failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
        monitor: Some(DEFAULT_MONITOR_NS),
        max_failure_ratio: Some(0.0),
        order: Some(ServiceSpecRollbackConfigOrderEnum::STOP_FIRST),
    });
    if let Some(p) = f.parallelism {
        c.parallelism = Some(p);
    }
    if let Some(d) = f.delay {
        c.delay = (d != 0).then_some(d);
    }
    if let Some(m) = f.monitor {
        c.monitor = (m != 0).then_some(m);
    }
    if let Some(a) = &f.failure_action {
        c.failure_action = Some(if a == "continue" {
            ServiceSpecRollbackConfigFailureActionEnum::CONTINUE
        } else {
            ServiceSpecRollbackConfigFailureActionEnum::PAUSE
        });
    }
    if let Some(r) = f.max_failure_ratio {
        c.max_failure_ratio = Some(r);
    }
    if let Some(o) = &f.order {
        c.order = Some(if o == "start-first" {
            ServiceSpecRollbackConfigOrderEnum::START_FIRST
        } else {
            ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
        });
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_like_swarmkit() {
        let f = UpdatePolicyFlags {
            delay: Some(5_000_000_000),
            ..Default::default()
        };
        let c = serde_json::to_value(apply_update_config(None, &f)).expect("serialisable");
        assert_eq!(
            c,
            serde_json::json!({"Parallelism":1,"Delay":5000000000i64,"FailureAction":"pause","Monitor":5000000000i64,"MaxFailureRatio":0.0,"Order":"stop-first"})
        );
        let p = Parsed {
            restart_condition: Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
            ..Default::default()
        };
        let rp = serde_json::to_value(apply_restart(None, &p)).expect("serialisable");
        assert_eq!(
            rp,
            serde_json::json!({"Condition":"on-failure","Delay":5000000000i64,"MaxAttempts":0})
        );
    }
}
