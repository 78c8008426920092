//! Generic resources on the wire: `[{"NamedResourceSpec":{"Kind","Value"}} |
//! {"DiscreteResourceSpec":{"Kind","Value"}}]`, in node descriptions, reservations and tasks'
//! `AssignedGenericResources`.

use bollard_stubs::models as w;
use shoal_types::GenericResource;

use crate::error::ApiError;

/// The model's list on the wire; absent when empty, as Docker leaves it out.
pub fn list_out(list: &[GenericResource]) -> Option<w::GenericResources> {
    (!list.is_empty()).then(|| list.iter().map(one_out).collect())
}

fn one_out(r: &GenericResource) -> w::GenericResourcesInner {
    match r {
        GenericResource::Named { kind, value } => w::GenericResourcesInner {
            named_resource_spec: Some(w::GenericResourcesInnerNamedResourceSpec {
                kind: Some(kind.clone()),
                value: Some(value.clone()),
            }),
            discrete_resource_spec: None,
        },
        GenericResource::Discrete { kind, value } => w::GenericResourcesInner {
            named_resource_spec: None,
            discrete_resource_spec: Some(w::GenericResourcesInnerDiscreteResourceSpec {
                kind: Some(kind.clone()),
                value: Some(*value),
            }),
        },
    }
}

/// The wire's list in the model. Each entry must be exactly one of the two forms; what the
/// values mean (kind set, count at least 1, no named reservation) is the manager's check, so that
/// every front end gets the same answer.
pub fn list_in(
    field: &str,
    list: Option<w::GenericResources>,
) -> Result<Vec<GenericResource>, ApiError> {
    let mut out = Vec::new();
    for (i, r) in list.unwrap_or_default().into_iter().enumerate() {
        out.push(match (r.named_resource_spec, r.discrete_resource_spec) {
            (Some(n), None) => GenericResource::Named {
                kind: n.kind.unwrap_or_default(),
                value: n.value.unwrap_or_default(),
            },
            (None, Some(d)) => GenericResource::Discrete {
                kind: d.kind.unwrap_or_default(),
                value: d.value.unwrap_or_default(),
            },
            _ => {
                return Err(ApiError::invalid(
                    &format!("{field}[{i}]"),
                    "give exactly one of NamedResourceSpec and DiscreteResourceSpec",
                ));
            }
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_engine_json() {
        let list = vec![
            GenericResource::named("gpu", "GPU-a"),
            GenericResource::discrete("ssd", 3),
        ];
        let wire = list_out(&list);
        let json = serde_json::to_string(&wire).unwrap_or_default();
        assert_eq!(
            json,
            r#"[{"NamedResourceSpec":{"Kind":"gpu","Value":"GPU-a"}},{"DiscreteResourceSpec":{"Kind":"ssd","Value":3}}]"#
        );
        assert_eq!(list_in("F", wire).ok(), Some(list));
        assert_eq!(list_out(&[]), None);
        assert_eq!(list_in("F", None).ok(), Some(vec![]));
    }

    #[test]
    fn an_entry_must_be_one_form() {
        let both: w::GenericResources =
            serde_json::from_str(r#"[{"DiscreteResourceSpec":{"Kind":"a","Value":1}},{}]"#)
                .unwrap_or_default();
        assert_eq!(
            list_in("R.GenericResources", Some(both))
                .err()
                .map(|e| e.message),
            Some(
                "R.GenericResources[1]: give exactly one of NamedResourceSpec and \
                 DiscreteResourceSpec"
                    .to_owned()
            )
        );
    }
}
