//! `--generic-resource` (create) and `--generic-resource-add`/`-rm` (update): counts of
//! user-defined resources each task reserves, sent as docker sends them
//! (`Reservations.GenericResources: [{"DiscreteResourceSpec":{"Kind":"gpu","Value":1}}]`).
//! As in docker, a service reserves counts only; named units are the node's to advertise.

use bollard_stubs::models::{
    GenericResources, GenericResourcesInner, GenericResourcesInnerDiscreteResourceSpec,
};
use shoal_types::GenericResource;
use shoal_types::generic::parse_reservations;

use crate::error::{CliError, Result};

/// Parses the flag's values into the wire list (None when the flag was not given).
pub fn parse(flag: &str, values: &[String]) -> Result<Option<GenericResources>> {
    if values.is_empty() {
        return Ok(None);
    }
    // Each term on its own first, so an error names the term that is wrong.
    for v in values {
        parse_reservations(std::slice::from_ref(v))
            .map_err(|e| CliError::invalid_flag(flag, v, e.to_string()))?;
    }
    let all = parse_reservations(values)
        .map_err(|e| CliError::invalid_flag(flag, &values.join(","), e.to_string()))?;
    Ok(Some(all.iter().filter_map(to_wire).collect()))
}

fn to_wire(r: &GenericResource) -> Option<GenericResourcesInner> {
    match r {
        GenericResource::Discrete { kind, value } => Some(GenericResourcesInner {
            named_resource_spec: None,
            discrete_resource_spec: Some(GenericResourcesInnerDiscreteResourceSpec {
                kind: Some(kind.clone()),
                value: Some(*value),
            }),
        }),
        // parse_reservations never yields one.
        GenericResource::Named { .. } => None,
    }
}

fn kind_of(r: &GenericResourcesInner) -> Option<&str> {
    r.discrete_resource_spec
        .as_ref()
        .and_then(|d| d.kind.as_deref())
}

/// docker's `addGenericResources` then `removeGenericResources`: an added kind replaces the
/// service's count of that kind; a removed kind must be reserved now.
pub fn update(
    current: Option<GenericResources>,
    add: &[String],
    rm: &[String],
) -> Result<Option<GenericResources>> {
    let mut list = current.unwrap_or_default();
    if list.iter().any(|r| r.discrete_resource_spec.is_none()) {
        return Err(CliError::Usage(
            "the service reserves a named generic resource; only counts can be updated".into(),
        ));
    }
    for r in parse("generic-resource-add", add)?.unwrap_or_default() {
        match list.iter_mut().find(|cur| kind_of(cur) == kind_of(&r)) {
            Some(cur) => *cur = r,
            None => list.push(r),
        }
    }
    for kind in rm {
        let before = list.len();
        list.retain(|r| kind_of(r) != Some(kind.as_str()));
        if list.len() == before {
            return Err(CliError::invalid_flag(
                "generic-resource-rm",
                kind,
                format!("could not find generic-resource `{kind}` to remove it"),
            ));
        }
    }
    Ok((!list.is_empty()).then_some(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn json(v: &Option<GenericResources>) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }

    #[test]
    fn counts_become_discrete_specs() {
        let got = parse("generic-resource", &strs(&["gpu=1", "ssd=2"]));
        assert_eq!(
            got.as_ref().map(json).ok(),
            Some(
                r#"[{"DiscreteResourceSpec":{"Kind":"gpu","Value":1}},{"DiscreteResourceSpec":{"Kind":"ssd","Value":2}}]"#
                    .to_owned()
            )
        );
        assert!(matches!(parse("generic-resource", &[]), Ok(None)));
    }

    #[test]
    fn bad_terms_name_the_flag_and_the_term() {
        let err = |v: &[&str]| {
            parse("generic-resource", &strs(v))
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(
            err(&["gpu"]),
            Some(r#"invalid argument "gpu" for "--generic-resource" flag: "gpu": expected KIND=VALUE"#.to_owned())
        );
        assert_eq!(
            err(&["gpu=1", "gpu=UUID1"]),
            Some(
                r#"invalid argument "gpu=UUID1" for "--generic-resource" flag: gpu=UUID1: a service reserves a count of a kind (gpu=N); named resources are only advertised by nodes"#
                    .to_owned()
            )
        );
        assert!(
            err(&["gpu=1", "gpu=2"])
                .is_some_and(|e| e.starts_with(r#"invalid argument "gpu=1,gpu=2" for "--generic-resource" flag: gpu: give either one count"#)),
        );
    }

    #[test]
    fn update_replaces_adds_and_removes_by_kind() {
        let current = parse("generic-resource", &strs(&["gpu=1", "ssd=2"]))
            .ok()
            .flatten();
        let got = update(
            current.clone(),
            &strs(&["gpu=3", "fpga=1"]),
            &strs(&["ssd"]),
        );
        assert_eq!(
            got.as_ref().map(json).ok(),
            Some(
                r#"[{"DiscreteResourceSpec":{"Kind":"gpu","Value":3}},{"DiscreteResourceSpec":{"Kind":"fpga","Value":1}}]"#
                    .to_owned()
            )
        );
        assert_eq!(
            update(current.clone(), &[], &strs(&["gpu", "ssd"])).ok(),
            Some(None)
        );
        assert_eq!(
            update(current, &[], &strs(&["tpu"]))
                .err()
                .map(|e| e.to_string()),
            Some(
                r#"invalid argument "tpu" for "--generic-resource-rm" flag: could not find generic-resource `tpu` to remove it"#
                    .to_owned()
            )
        );
    }
}
