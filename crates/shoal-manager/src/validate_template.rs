//! Checks the Swarm templates in a service's spec (`{{.Service.Name}}` in the hostname and env
//! values) before the spec is stored, so a typo is refused with its field and position instead of
//! rejecting every task on every node. The spec keeps the templates; nodes expand them.

use shoal_types::service::{ContainerSpec, ServiceSpec};
use shoal_types::template::{self, Context};

use crate::error::ControlError;

/// Expands the spec's templates against placeholders, as swarmkit's control API does: parsing
/// finds bad syntax and unknown fields, and expanding finds `.Service.Labels.KEY` naming a label
/// the service does not have (Swarm expands with `missingkey=error`). Unlike swarmkit, the
/// service's real labels are used, so a label the spec sets may be named.
/// Returns the container as it would be with placeholders in, for checks of what templates
/// expand to (a volume named `data-{{.Task.Slot}}` is checked as `data-1`).
pub(crate) fn check_templates(spec: &ServiceSpec) -> Result<ContainerSpec, ControlError> {
    let ctx = Context {
        service_id: "serviceid".into(),
        service_name: spec.name.clone(),
        service_labels: spec.labels.clone(),
        node_id: "nodeid".into(),
        node_hostname: "nodehostname".into(),
        node_os: "os".into(),
        node_arch: "architecture".into(),
        task_id: "taskid".into(),
        task_name: "taskname".into(),
        task_slot: "1".into(),
    };
    match template::expand_container(&spec.task.container, &ctx) {
        Ok(c) => Ok(c),
        Err(e) => Err(ControlError::invalid(
            format!("TaskTemplate.ContainerSpec.{}", e.name),
            e.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::check_service_spec;

    fn spec(hostname: &str, env: &[&str]) -> ServiceSpec {
        let mut s = ServiceSpec {
            name: "web".into(),
            labels: [("tier".to_string(), "front".to_string())].into(),
            ..Default::default()
        };
        s.task.container.image = "host".into();
        s.task.container.hostname = hostname.into();
        s.task.container.env = env.iter().map(|e| e.to_string()).collect();
        s
    }

    fn invalid(r: Result<(), ControlError>) -> (String, String) {
        match r {
            Err(ControlError::InvalidArgument { field, why }) => (field, why),
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn good_templates_pass() {
        for s in [
            spec(
                "{{.Service.Name}}-{{.Task.Slot}}",
                &["NODE={{.Node.Hostname}}"],
            ),
            spec(
                "{{.Service.Labels.tier}}",
                &["A=1", "BARE", "X={{.Task.Name}}"],
            ),
            spec("", &[r#"Z={{index .Service.Labels "not.set"}}"#]),
            spec(
                "plain",
                &["OS={{.Node.Platform.OS}}/{{.Node.Platform.Architecture}}"],
            ),
        ] {
            assert_eq!(
                check_templates(&s).map(|_| ()).map_err(|e| e.to_string()),
                Ok(())
            );
        }
    }

    #[test]
    fn bad_templates_name_the_field_and_the_position() {
        let (field, why) = invalid(check_service_spec(&spec("{{.Service.Nmae}}", &[])));
        assert_eq!(field, "TaskTemplate.ContainerSpec.Hostname");
        assert_eq!(
            why,
            "template: Hostname:1:11: unknown field .Service.Nmae (did you mean .Service.Name?)"
        );

        let s = spec("ok", &["A=1", "B=2", "WHERE={{.Node.Hostnme}}"]);
        let (field, why) = invalid(check_service_spec(&s));
        assert_eq!(field, "TaskTemplate.ContainerSpec.Env[2]");
        assert_eq!(
            why,
            "template: Env[2]:1:14: unknown field .Node.Hostnme (did you mean .Node.Hostname?)"
        );

        let (field, why) = invalid(check_templates(&spec("{{.Task.Slot", &[])).map(|_| ()));
        assert_eq!(field, "TaskTemplate.ContainerSpec.Hostname");
        assert!(
            why.starts_with("template: Hostname:1:1: unclosed action"),
            "{why}"
        );
    }

    #[test]
    fn a_label_must_exist_unless_read_with_index() {
        let (field, why) =
            invalid(check_templates(&spec("", &["T={{.Service.Labels.zone}}"])).map(|_| ()));
        assert_eq!(field, "TaskTemplate.ContainerSpec.Env[0]");
        assert!(
            why.contains("template: Env[0]:1:20: the service has no label \"zone\""),
            "{why}"
        );
    }

    #[test]
    fn mount_sources_and_targets_are_templates_checked_as_expanded() {
        use shoal_types::container::{Mount, MountKind};
        let with_source = |source: &str| {
            let mut s = spec("", &[]);
            s.task.container.mounts = vec![Mount {
                kind: MountKind::Volume,
                source: source.into(),
                target: "/data/{{.Task.Slot}}".into(),
                ..Default::default()
            }];
            s
        };
        check_service_spec(&with_source("data-{{.Task.Slot}}")).expect("a per-slot volume");
        let (field, why) = invalid(check_service_spec(&with_source("data-{{.Task.Slott}}")));
        assert_eq!(field, "TaskTemplate.ContainerSpec.Mounts[0].Source");
        assert!(why.contains("Slott"), "{why}");
        // What the template expands to must still be a volume name.
        let (field, _) = invalid(check_service_spec(&with_source("{{.Service.Name}}/x")));
        assert_eq!(field, "TaskTemplate.ContainerSpec.Mounts[0].Source");
    }
}
