//! Unit tests of the service model: stored specs that still load, defaults.

use super::*;

#[test]
fn limits_stored_before_pids_still_load() {
    let old = r#"{"limits":{"nano_cpus":5,"memory_bytes":7},"reservations":{"nano_cpus":1,"memory_bytes":2}}"#;
    let r: ResourceRequirements = serde_json::from_str(old).expect("old requirements");
    assert_eq!(
        r.limits,
        Limits {
            nano_cpus: 5,
            memory_bytes: 7,
            pids: 0
        }
    );
    // An unlimited count is not written, so what older code stored and reads is unchanged.
    assert_eq!(
        serde_json::to_value(r.limits).expect("json"),
        serde_json::json!({"nano_cpus": 5, "memory_bytes": 7})
    );
    let with = Limits {
        pids: 20,
        ..r.limits
    };
    let back: Limits =
        serde_json::from_value(serde_json::to_value(with).expect("json")).expect("back");
    assert_eq!(back, with);
    assert!(!with.is_zero() && Limits::default().is_zero());
}

/// What specs stored before the window, the monitor, the omitted parts, platforms, the log
/// driver and privileges existed load as: every object shown, the same values in force.
#[test]
fn specs_stored_before_the_optional_fields_still_load() {
    let old = r#"{"container":{"image":"host"},"restart":{"condition":"any","delay":null,"max_attempts":3,"window":{"secs":60,"nanos":0}},"placement":{"constraints":[],"preferences":[],"max_replicas":0}}"#;
    let t: TaskSpec = serde_json::from_str(old).expect("old task spec");
    assert_eq!(t.restart.window, Some(Duration::from_secs(60)));
    assert_eq!(t.omitted, Omitted::default());
    assert!(t.placement.platforms.is_empty() && t.log_driver.is_none());
    let u: UpdateConfig = serde_json::from_str(
        r#"{"parallelism":2,"delay":{"secs":0,"nanos":0},"failure_action":"pause","monitor":{"secs":9,"nanos":0},"max_failure_ratio":0.0,"order":"stop-first"}"#,
    )
    .expect("old update config");
    assert_eq!(u.effective_monitor(), Duration::from_secs(9));
    // A new spec writes nothing for what it leaves at its default.
    let json = serde_json::to_value(TaskSpec::default()).expect("json");
    assert!(json.get("omitted").is_none() && json.get("log_driver").is_none());
}

#[test]
fn absent_parts_read_as_swarms_defaults() {
    let r = RestartPolicy::default();
    assert_eq!(r.effective_delay(), DEFAULT_RESTART_DELAY);
    assert_eq!(r.effective_window(), Duration::ZERO);
    let u = UpdateConfig {
        monitor: None,
        ..Default::default()
    };
    assert_eq!(u.effective_monitor(), DEFAULT_UPDATE_MONITOR);
}

/// swarmkit's `InterpolateService`: what `docker service inspect` shows for a spec that set
/// nothing, and that what a spec sets is kept.
#[test]
fn with_defaults_fills_what_swarm_fills_and_keeps_the_rest() {
    let mut bare = ServiceSpec::default();
    bare.task.omitted = Omitted {
        resources: true,
        limits: true,
        reservations: true,
        restart: true,
        placement: true,
    };
    let d = bare.with_defaults();
    let c = &d.task.container;
    assert_eq!(c.stop_grace_period, Some(DEFAULT_STOP_GRACE));
    assert_eq!(c.dns_config, Some(DnsConfig::default()));
    assert_eq!(
        d.task.omitted,
        Omitted {
            limits: true,
            reservations: true,
            ..Default::default()
        }
    );
    assert_eq!(d.task.restart.condition, RestartCondition::Any);
    assert_eq!(d.task.restart.delay, Some(DEFAULT_RESTART_DELAY));
    assert_eq!(d.task.restart.window, None);
    let full = UpdateConfig {
        parallelism: 1,
        delay: Duration::ZERO,
        failure_action: FailureAction::Pause,
        monitor: Some(DEFAULT_UPDATE_MONITOR),
        max_failure_ratio: 0.0,
        order: UpdateOrder::StopFirst,
    };
    assert_eq!(d.update.as_ref(), Some(&full));
    assert_eq!(d.rollback.as_ref(), Some(&full));

    let mut set = bare.clone();
    set.task.container.stop_grace_period = Some(Duration::from_secs(1));
    set.task.restart.delay = Some(Duration::from_secs(2));
    set.update = Some(UpdateConfig {
        parallelism: 0,
        monitor: None,
        ..full.clone()
    });
    let d = set.with_defaults();
    assert_eq!(
        d.task.container.stop_grace_period,
        Some(Duration::from_secs(1))
    );
    assert_eq!(d.task.restart.delay, Some(Duration::from_secs(2)));
    let u = d.update.expect("kept");
    assert_eq!(
        (u.parallelism, u.monitor),
        (0, Some(DEFAULT_UPDATE_MONITOR))
    );
}
