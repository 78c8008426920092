//! Generic resources: user-defined things a node has and a task reserves, beyond CPU and memory
//! (Swarm's `GenericResources`). A node advertises each kind either as named units (`gpu=GPU-a`,
//! `gpu=GPU-b`: specific devices, handed out one by one so two tasks never share one) or as a
//! discrete count (`ssd=3`: interchangeable units). A service reserves kinds by count only; the
//! scheduler then records on each task which named units it got (`Task::assigned_generic_resources`).
//!
//! The grammar is dockerd's `--node-generic-resource` and docker's `--generic-resource`:
//! `KIND=VALUE` terms, grouped by kind; a kind given once with an integer is discrete, a kind whose
//! every value is a non-integer is a set of named units, anything else is malformed.

use std::collections::BTreeMap;

/// One generic resource, as a node advertises it, a task reserves it or a task was assigned it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum GenericResource {
    /// One specific unit of `kind`, e.g. a GPU by its UUID.
    Named { kind: String, value: String },
    /// `value` interchangeable units of `kind`.
    Discrete { kind: String, value: i64 },
}

impl GenericResource {
    pub fn named(kind: impl Into<String>, value: impl Into<String>) -> Self {
        GenericResource::Named {
            kind: kind.into(),
            value: value.into(),
        }
    }

    pub fn discrete(kind: impl Into<String>, value: i64) -> Self {
        GenericResource::Discrete {
            kind: kind.into(),
            value,
        }
    }

    pub fn kind(&self) -> &str {
        match self {
            GenericResource::Named { kind, .. } | GenericResource::Discrete { kind, .. } => kind,
        }
    }

    /// The value as text: the unit's name, or the count.
    pub fn value_string(&self) -> String {
        match self {
            GenericResource::Named { value, .. } => value.clone(),
            GenericResource::Discrete { value, .. } => value.to_string(),
        }
    }
}

/// Why a list of `KIND=VALUE` terms is not a valid set of generic resources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenericResourceError {
    #[error("{term:?}: expected KIND=VALUE")]
    Malformed { term: String },
    #[error("{term:?}: the kind is empty")]
    EmptyKind { term: String },
    #[error("{term:?}: the value is empty")]
    EmptyValue { term: String },
    #[error("{kind}: a count must not be negative, got {value}")]
    Negative { kind: String, value: i64 },
    #[error(
        "{kind}: give either one count ({kind}=N) or names only ({kind}=ID1, {kind}=ID2), got {values:?}"
    )]
    Mixed { kind: String, values: Vec<String> },
    #[error("{kind}={value} is given twice")]
    Duplicate { kind: String, value: String },
    #[error(
        "{kind}={value}: a service reserves a count of a kind ({kind}=N); named resources are only advertised by nodes"
    )]
    NamedReservation { kind: String, value: String },
}

/// Parses `KIND=VALUE` terms as a node advertises them (dockerd's `--node-generic-resource`).
/// Kinds come out in the order first given, named units in the order given.
pub fn parse(terms: &[impl AsRef<str>]) -> Result<Vec<GenericResource>, GenericResourceError> {
    let mut order: Vec<String> = Vec::new();
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for term in terms {
        let term = term.as_ref();
        // docker splits on every '=' and wants exactly two parts.
        let mut parts = term.split('=');
        let (Some(k), Some(v), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(GenericResourceError::Malformed { term: term.into() });
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(GenericResourceError::EmptyKind { term: term.into() });
        }
        if v.is_empty() {
            return Err(GenericResourceError::EmptyValue { term: term.into() });
        }
        let values = by_kind.entry(k.to_owned()).or_insert_with(|| {
            order.push(k.to_owned());
            Vec::new()
        });
        if values.iter().any(|x| x == v) {
            return Err(GenericResourceError::Duplicate {
                kind: k.into(),
                value: v.into(),
            });
        }
        values.push(v.to_owned());
    }
    let mut out = Vec::new();
    for kind in order {
        let values = by_kind.remove(&kind).unwrap_or_default();
        let counts: Vec<Option<i64>> = values.iter().map(|v| v.parse::<i64>().ok()).collect();
        match counts.as_slice() {
            [Some(n)] if *n < 0 => {
                return Err(GenericResourceError::Negative { kind, value: *n });
            }
            [Some(n)] => out.push(GenericResource::discrete(kind, *n)),
            _ if counts.iter().all(Option::is_none) => {
                out.extend(
                    values
                        .into_iter()
                        .map(|v| GenericResource::named(kind.clone(), v)),
                );
            }
            _ => return Err(GenericResourceError::Mixed { kind, values }),
        }
    }
    Ok(out)
}

/// Parses `KIND=N` terms as a service reserves them (docker's `--generic-resource`): counts only,
/// since which unit a task gets is the scheduler's choice.
pub fn parse_reservations(
    terms: &[impl AsRef<str>],
) -> Result<Vec<GenericResource>, GenericResourceError> {
    let parsed = parse(terms)?;
    if let Some(GenericResource::Named { kind, value }) = parsed
        .iter()
        .find(|r| matches!(r, GenericResource::Named { .. }))
    {
        return Err(GenericResourceError::NamedReservation {
            kind: kind.clone(),
            value: value.clone(),
        });
    }
    Ok(parsed)
}

/// The environment a task sees for what it was assigned, as Docker sets it:
/// `DOCKER_RESOURCE_<KIND>=<value>[,<value>...]`, the kind upper-cased, named units joined with
/// commas in assignment order, a discrete assignment as its count. Sorted by variable name so the
/// environment is the same on every start (Docker's order follows a Go map).
pub fn env(assigned: &[GenericResource]) -> Vec<String> {
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in assigned {
        by_key
            .entry(format!("DOCKER_RESOURCE_{}", r.kind()).to_uppercase())
            .or_default()
            .push(r.value_string());
    }
    by_key
        .into_iter()
        .map(|(k, v)| format!("{k}={}", v.join(",")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(terms: &[&str]) -> Result<Vec<GenericResource>, GenericResourceError> {
        parse(terms)
    }

    #[test]
    fn named_sets_and_discrete_counts() {
        assert_eq!(
            p(&["gpu=GPU-a", "ssd=3", " gpu = GPU-b "]),
            Ok(vec![
                GenericResource::named("gpu", "GPU-a"),
                GenericResource::named("gpu", "GPU-b"),
                GenericResource::discrete("ssd", 3),
            ])
        );
        assert_eq!(p(&[] as &[&str]), Ok(vec![]));
        assert_eq!(p(&["ssd=0"]), Ok(vec![GenericResource::discrete("ssd", 0)]));
    }

    #[test]
    fn malformed_terms_are_refused_with_the_term() {
        for (terms, want) in [
            (&["gpu"][..], "\"gpu\": expected KIND=VALUE"),
            (&["gpu=a=b"][..], "\"gpu=a=b\": expected KIND=VALUE"),
            (&["=3"][..], "\"=3\": the kind is empty"),
            (&["gpu="][..], "\"gpu=\": the value is empty"),
            (&["ssd=-1"][..], "ssd: a count must not be negative, got -1"),
            (
                &["ssd=1", "ssd=2"][..],
                "ssd: give either one count (ssd=N) or names only (ssd=ID1, ssd=ID2), got [\"1\", \"2\"]",
            ),
            (
                &["gpu=a", "gpu=2"][..],
                "gpu: give either one count (gpu=N) or names only (gpu=ID1, gpu=ID2), got [\"a\", \"2\"]",
            ),
            (&["gpu=a", "gpu=a"][..], "gpu=a is given twice"),
        ] {
            let err = p(terms).err().map(|e| e.to_string());
            assert_eq!(err.as_deref(), Some(want), "{terms:?}");
        }
    }

    #[test]
    fn reservations_are_counts_only() {
        assert_eq!(
            parse_reservations(&["gpu=2"]),
            Ok(vec![GenericResource::discrete("gpu", 2)])
        );
        assert_eq!(
            parse_reservations(&["gpu=UUID1"]).map_err(|e| e.to_string()),
            Err(
                "gpu=UUID1: a service reserves a count of a kind (gpu=N); named resources are \
                 only advertised by nodes"
                    .to_owned()
            )
        );
    }

    #[test]
    fn env_joins_named_units_and_gives_counts() {
        let assigned = [
            GenericResource::named("gpu", "GPU-b"),
            GenericResource::discrete("ssd", 2),
            GenericResource::named("gpu", "GPU-a"),
        ];
        assert_eq!(
            env(&assigned),
            vec![
                "DOCKER_RESOURCE_GPU=GPU-b,GPU-a".to_owned(),
                "DOCKER_RESOURCE_SSD=2".to_owned()
            ]
        );
        assert!(env(&[]).is_empty());
    }

    #[test]
    fn serde_shape_is_tagged_and_stable() {
        let json = serde_json::to_string(&GenericResource::named("gpu", "a")).unwrap_or_default();
        assert_eq!(json, r#"{"named":{"kind":"gpu","value":"a"}}"#);
        let back: GenericResource =
            serde_json::from_str(r#"{"discrete":{"kind":"ssd","value":3}}"#)
                .unwrap_or(GenericResource::discrete("x", 0));
        assert_eq!(back, GenericResource::discrete("ssd", 3));
    }
}
