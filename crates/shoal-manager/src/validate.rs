//! Checks a spec before it is stored. Every error names the field as the Docker API spells it,
//! so a user of either CLI can find what to fix.

use shoal_types::node::NodeSpec;
use shoal_types::service::{ServiceMode, ServiceSpec, UpdateConfig};

use crate::error::ControlError;

/// Swarm's rule for object names: letters and digits, with `-`/`_` only between them.
pub fn check_name(field: &str, name: &str) -> Result<(), ControlError> {
    if name.is_empty() {
        return Err(ControlError::invalid(field, "a name is required"));
    }
    if name.len() > 63 {
        return Err(ControlError::invalid(
            field,
            format!("name {name:?} is longer than 63 characters"),
        ));
    }
    let bytes = name.as_bytes();
    let ok_edges =
        bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    let ok_chars = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    if !ok_edges || !ok_chars {
        return Err(ControlError::invalid(
            field,
            format!(
                "invalid name {name:?}: only letters, digits, '-' and '_' are allowed, starting and ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

pub fn check_service_spec(spec: &ServiceSpec) -> Result<(), ControlError> {
    check_name("Name", &spec.name)?;
    check_labels("Labels", spec.labels.keys())?;
    let field = format!("Labels[{:?}]", shoal_types::stack::DEPENDS_ON_LABEL);
    let deps = shoal_types::stack::depends_on(&spec.labels)
        .map_err(|e| ControlError::invalid(&field, e.0))?;
    if deps.iter().any(|d| d.service == spec.name) {
        return Err(ControlError::invalid(
            field,
            format!("service {} cannot depend on itself", spec.name),
        ));
    }
    let c = &spec.task.container;
    if c.image.trim().is_empty() {
        return Err(ControlError::invalid(
            "TaskTemplate.ContainerSpec.Image",
            "an image is required",
        ));
    }
    check_labels("TaskTemplate.ContainerSpec.Labels", c.labels.keys())?;
    for (i, e) in c.env.iter().enumerate() {
        if e.split('=').next().is_none_or(str::is_empty) {
            return Err(ControlError::invalid(
                format!("TaskTemplate.ContainerSpec.Env[{i}]"),
                format!("{e:?} has no variable name"),
            ));
        }
    }
    let expanded = crate::validate_template::check_templates(spec)?;
    crate::validate_container::check_container(&expanded)?;
    if !c.dir.is_empty() && !c.dir.starts_with('/') {
        return Err(ControlError::invalid(
            "TaskTemplate.ContainerSpec.Dir",
            format!("{:?} is not an absolute path", c.dir),
        ));
    }
    let r = &spec.task.resources;
    for (field, v) in [
        ("TaskTemplate.Resources.Limits.NanoCPUs", r.limits.nano_cpus),
        (
            "TaskTemplate.Resources.Limits.MemoryBytes",
            r.limits.memory_bytes,
        ),
        // 0 is no limit; Docker's -1 for "unlimited" is a container setting, not a spec's.
        ("TaskTemplate.Resources.Limits.Pids", r.limits.pids),
        (
            "TaskTemplate.Resources.Reservations.NanoCPUs",
            r.reservations.nano_cpus,
        ),
        (
            "TaskTemplate.Resources.Reservations.MemoryBytes",
            r.reservations.memory_bytes,
        ),
    ] {
        if v < 0 {
            return Err(ControlError::invalid(
                field,
                format!("must not be negative, got {v}"),
            ));
        }
    }
    if r.limits.memory_bytes > 0 && r.limits.memory_bytes < 6 * 1024 * 1024 {
        return Err(ControlError::invalid(
            "TaskTemplate.Resources.Limits.MemoryBytes",
            "the minimum memory limit is 6MB",
        ));
    }
    crate::validate_resources::check_generic_reservations(spec)?;
    if let Err(e) = shoal_scheduler::constraint::parse_all(&spec.task.placement.constraints) {
        return Err(ControlError::invalid(
            "TaskTemplate.Placement.Constraints",
            e.to_string(),
        ));
    }
    for (i, p) in spec.task.placement.preferences.iter().enumerate() {
        use shoal_types::constraint::{ConstraintErrorKind, parse_descriptor};
        if let Err(e) = parse_descriptor(&p.spread) {
            let why = match e {
                ConstraintErrorKind::EmptyKey => {
                    "a node attribute to spread over is required, named as in a constraint"
                        .to_owned()
                }
                other => other.to_string(),
            };
            return Err(ControlError::invalid(
                format!("TaskTemplate.Placement.Preferences[{i}].Spread.SpreadDescriptor"),
                format!("{:?}: {why}", p.spread),
            ));
        }
    }
    if spec.task.placement.max_replicas > 0 && !matches!(spec.mode, ServiceMode::Replicated { .. })
    {
        return Err(ControlError::invalid(
            "TaskTemplate.Placement.MaxReplicas",
            "a maximum of replicas per node only applies to replicated services",
        ));
    }
    if let ServiceMode::ReplicatedJob {
        max_concurrent,
        total_completions,
    } = spec.mode
        && max_concurrent == 0
        && total_completions > 0
    {
        return Err(ControlError::invalid(
            "Mode.ReplicatedJob.MaxConcurrent",
            "must be at least 1",
        ));
    }
    for (field, u) in [
        ("UpdateConfig", &spec.update),
        ("RollbackConfig", &spec.rollback),
    ] {
        if let Some(u) = u {
            check_update_config(field, u)?;
        }
    }
    Ok(())
}

fn check_update_config(field: &str, u: &UpdateConfig) -> Result<(), ControlError> {
    if !(0.0..=1.0).contains(&u.max_failure_ratio) || u.max_failure_ratio.is_nan() {
        return Err(ControlError::invalid(
            format!("{field}.MaxFailureRatio"),
            format!("must be between 0 and 1, got {}", u.max_failure_ratio),
        ));
    }
    Ok(())
}

/// What may change between two versions of a service.
/// Refuses `spec` when its start-order dependencies close a cycle with the services
/// `others` (name and labels of every other service): such services would never start.
pub fn check_dependency_cycle<'a>(
    spec: &ServiceSpec,
    others: impl Iterator<Item = (&'a str, &'a std::collections::BTreeMap<String, String>)>,
) -> Result<(), ControlError> {
    let edges = |labels: &std::collections::BTreeMap<String, String>| -> Vec<String> {
        shoal_types::stack::depends_on(labels)
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.service)
            .collect()
    };
    let mut graph: std::collections::BTreeMap<String, Vec<String>> = others
        .filter(|(name, _)| *name != spec.name)
        .map(|(name, labels)| (name.to_string(), edges(labels)))
        .collect();
    let own = edges(&spec.labels);
    if own.is_empty() {
        return Ok(());
    }
    graph.insert(spec.name.clone(), own);
    match shoal_types::stack::find_cycle(&graph) {
        Some(mut cycle) if cycle.contains(&spec.name) => {
            // Told from the service being written: `web -> db -> web`.
            cycle.pop();
            let at = cycle.iter().position(|n| *n == spec.name).unwrap_or(0);
            cycle.rotate_left(at);
            cycle.push(spec.name.clone());
            Err(ControlError::invalid(
                format!("Labels[{:?}]", shoal_types::stack::DEPENDS_ON_LABEL),
                format!("dependency cycle: {}", cycle.join(" -> ")),
            ))
        }
        _ => Ok(()),
    }
}

pub fn check_service_update(old: &ServiceSpec, new: &ServiceSpec) -> Result<(), ControlError> {
    if std::mem::discriminant(&old.mode) != std::mem::discriminant(&new.mode) {
        return Err(ControlError::invalid(
            "Mode",
            format!(
                "service mode change is not allowed ({} to {})",
                old.mode.name(),
                new.mode.name()
            ),
        ));
    }
    check_service_spec(new)
}

pub fn check_node_spec(spec: &NodeSpec) -> Result<(), ControlError> {
    check_labels("Labels", spec.labels.keys())
}

pub(crate) fn check_labels<'a>(
    field: &str,
    keys: impl Iterator<Item = &'a String>,
) -> Result<(), ControlError> {
    for k in keys {
        if k.trim().is_empty() {
            return Err(ControlError::invalid(
                field,
                "label names must not be empty",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::service::ContainerSpec;

    fn spec() -> ServiceSpec {
        let mut s = ServiceSpec {
            name: "web".into(),
            ..Default::default()
        };
        s.task.container = ContainerSpec {
            image: "host".into(),
            ..Default::default()
        };
        s
    }

    fn field_of(r: Result<(), ControlError>) -> String {
        match r {
            Err(ControlError::InvalidArgument { field, .. }) => field,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn names_follow_swarm_rules() {
        for good in ["web", "a", "web-1", "my_app2"] {
            assert!(check_name("Name", good).is_ok(), "{good}");
        }
        for bad in ["", "-web", "web-", "we b", "wéb", &"x".repeat(64)] {
            assert!(check_name("Name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let mut s = spec();
        s.task.container.image.clear();
        assert_eq!(
            field_of(check_service_spec(&s)),
            "TaskTemplate.ContainerSpec.Image"
        );
        let mut s = spec();
        s.task.placement.constraints = vec!["node.role=manager".into()];
        assert_eq!(
            field_of(check_service_spec(&s)),
            "TaskTemplate.Placement.Constraints"
        );
        let mut s = spec();
        s.task.resources.limits.memory_bytes = 1024;
        assert_eq!(
            field_of(check_service_spec(&s)),
            "TaskTemplate.Resources.Limits.MemoryBytes"
        );
        let mut s = spec();
        s.task.resources.limits.pids = -1;
        assert_eq!(
            field_of(check_service_spec(&s)),
            "TaskTemplate.Resources.Limits.Pids"
        );
        s.task.resources.limits.pids = 20;
        assert!(check_service_spec(&s).is_ok());
        let mut s = spec();
        s.task.container.env = vec!["A=1".into(), "=x".into()];
        assert_eq!(
            field_of(check_service_spec(&s)),
            "TaskTemplate.ContainerSpec.Env[1]"
        );
        let mut s = spec();
        s.update = Some(UpdateConfig {
            max_failure_ratio: 1.5,
            ..Default::default()
        });
        assert_eq!(
            field_of(check_service_spec(&s)),
            "UpdateConfig.MaxFailureRatio"
        );
        assert!(check_service_spec(&spec()).is_ok());
    }

    /// Swarm's scheduler spreads over node and engine labels; shoal over every attribute a
    /// constraint can name. What names none is refused by field.
    #[test]
    fn spread_descriptors_name_a_node_attribute() {
        use shoal_types::service::SpreadPreference;
        let with = |d: &str| {
            let mut s = spec();
            s.task.placement.preferences = vec![SpreadPreference { spread: d.into() }];
            check_service_spec(&s)
        };
        for good in [
            "node.labels.zone",
            "engine.labels.storage",
            "node.platform.os",
            "node.platform.arch",
            "node.id",
            "node.hostname",
            "node.role",
            "node.ip",
        ] {
            assert!(with(good).is_ok(), "{good}");
        }
        for bad in ["node.lables.zone", "node.labels.", "zone", ""] {
            assert_eq!(
                field_of(with(bad)),
                "TaskTemplate.Placement.Preferences[0].Spread.SpreadDescriptor",
                "{bad}"
            );
        }
        let e = with("node.lables.zone").expect_err("refused").to_string();
        assert!(e.contains("unknown key \"node.lables.zone\""), "{e}");
    }

    #[test]
    fn mode_cannot_change() {
        let mut g = spec();
        g.mode = ServiceMode::Global;
        assert_eq!(field_of(check_service_update(&spec(), &g)), "Mode");
        let mut scaled = spec();
        scaled.mode = ServiceMode::Replicated { replicas: 9 };
        assert!(check_service_update(&spec(), &scaled).is_ok());
    }

    #[test]
    fn start_order_labels_are_checked_and_cycles_refused() {
        use shoal_types::stack::DEPENDS_ON_LABEL;
        let with = |name: &str, deps: &str| {
            let mut s = spec();
            s.name = name.into();
            s.labels.insert(DEPENDS_ON_LABEL.into(), deps.into());
            s
        };
        let e = check_service_spec(&with("web", "db:healthy"))
            .expect_err("an error")
            .to_string();
        assert!(e.contains("unknown condition \"healthy\""), "{e}");
        let e = check_service_spec(&with("web", "web:service_started"))
            .expect_err("an error")
            .to_string();
        assert!(e.contains("cannot depend on itself"), "{e}");
        assert!(check_service_spec(&with("web", "db:service_healthy")).is_ok());

        let db = with("db", "cache:service_started");
        let cache = with("cache", "web:service_started");
        let others = [(&db.name, &db.labels), (&cache.name, &cache.labels)];
        let e = check_dependency_cycle(
            &with("web", "db:service_healthy"),
            others.iter().map(|(n, l)| (n.as_str(), *l)),
        )
        .expect_err("an error")
        .to_string();
        assert!(
            e.contains("dependency cycle: web -> db -> cache -> web"),
            "{e}"
        );
        // Without the edge back, no cycle; a dependency on a service not there yet is fine.
        let others = [(&db.name, &db.labels)];
        check_dependency_cycle(
            &with("web", "db:service_healthy,later:service_started"),
            others.iter().map(|(n, l)| (n.as_str(), *l)),
        )
        .expect("ok");
    }
}
