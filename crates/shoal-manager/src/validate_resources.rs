//! Checks of a service's generic resource reservations (`--generic-resource`), kept apart from
//! `validate` so the two can change independently. Errors name the wire field, with the entry's
//! index, as `validate` does.
//!
//! As in Swarm, a service reserves counts (`DiscreteResourceSpec`), never specific named units:
//! which GPU a task gets is the scheduler's choice, recorded on the task. docker's CLI refuses
//! named reservations before sending them; swarmkit's own check is written to refuse them too,
//! but discards its result, so Swarm stores such a service and its tasks stay pending forever.
//! Refusing here gives the user the reason at once.

use shoal_types::GenericResource;
use shoal_types::service::ServiceSpec;

use crate::error::ControlError;

const FIELD: &str = "TaskTemplate.Resources.Reservations.GenericResources";

pub fn check_generic_reservations(spec: &ServiceSpec) -> Result<(), ControlError> {
    let list = &spec.task.resources.generic_reservations;
    for (i, r) in list.iter().enumerate() {
        let field = || format!("{FIELD}[{i}]");
        let kind = r.kind();
        if kind.trim().is_empty() {
            return Err(ControlError::invalid(field(), "the kind must not be empty"));
        }
        if kind
            .chars()
            .any(|c| c == '=' || c == ',' || c.is_whitespace() || c.is_control())
        {
            return Err(ControlError::invalid(
                field(),
                format!("kind {kind:?} must not contain '=', ',' or spaces"),
            ));
        }
        match r {
            GenericResource::Named { value, .. } => {
                return Err(ControlError::invalid(
                    field(),
                    format!(
                        "{kind}={value}: a service reserves a count of a kind \
                         (DiscreteResourceSpec, e.g. {kind}=1), not a named resource; \
                         the scheduler picks which units each task gets"
                    ),
                ));
            }
            GenericResource::Discrete { value, .. } if *value < 1 => {
                return Err(ControlError::invalid(
                    field(),
                    format!("{kind}: the count must be at least 1, got {value}"),
                ));
            }
            GenericResource::Discrete { .. } => {}
        }
        if list[..i].iter().any(|o| o.kind() == kind) {
            return Err(ControlError::invalid(
                field(),
                format!("{kind} is reserved twice; give one count per kind"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(list: Vec<GenericResource>) -> ServiceSpec {
        let mut s = ServiceSpec::default();
        s.task.resources.generic_reservations = list;
        s
    }

    fn refusal(list: Vec<GenericResource>) -> Option<String> {
        check_generic_reservations(&with(list))
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn counts_of_distinct_kinds_pass() {
        assert_eq!(refusal(vec![]), None);
        assert_eq!(
            refusal(vec![
                GenericResource::discrete("gpu", 1),
                GenericResource::discrete("ssd", 4),
            ]),
            None
        );
    }

    #[test]
    fn each_bad_entry_is_named_with_its_index() {
        let f = "TaskTemplate.Resources.Reservations.GenericResources";
        for (list, want) in [
            (
                vec![GenericResource::discrete(" ", 1)],
                format!("{f}[0]: the kind must not be empty"),
            ),
            (
                vec![GenericResource::discrete("a=b", 1)],
                format!("{f}[0]: kind \"a=b\" must not contain '=', ',' or spaces"),
            ),
            (
                vec![
                    GenericResource::discrete("ssd", 1),
                    GenericResource::discrete("gpu", 0),
                ],
                format!("{f}[1]: gpu: the count must be at least 1, got 0"),
            ),
            (
                vec![GenericResource::named("gpu", "UUID1")],
                format!(
                    "{f}[0]: gpu=UUID1: a service reserves a count of a kind \
                     (DiscreteResourceSpec, e.g. gpu=1), not a named resource; the scheduler \
                     picks which units each task gets"
                ),
            ),
            (
                vec![
                    GenericResource::discrete("gpu", 1),
                    GenericResource::discrete("gpu", 2),
                ],
                format!("{f}[1]: gpu is reserved twice; give one count per kind"),
            ),
        ] {
            assert_eq!(refusal(list), Some(want));
        }
    }
}
