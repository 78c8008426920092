//! Docker's `filters` query parameter: a JSON object mapping a filter name to its values, either
//! as `{"name": {"value": true}}` (what clients send today) or `{"name": ["value"]}` (older ones).

use std::collections::BTreeMap;

use shoal_types::node::NodeRole;
use shoal_types::task::TaskState;

use crate::error::ApiError;

/// The filters `GET /services` takes.
pub const SERVICES: &[&str] = &["id", "label", "mode", "name"];
/// The filters `GET /nodes` takes.
pub const NODES: &[&str] = &["id", "label", "membership", "name", "node.label", "role"];
/// The filters `GET /networks` takes (`type` is `custom` or `builtin`; every swarm network is
/// custom).
pub const NETWORKS: &[&str] = &["driver", "id", "label", "name", "scope", "type"];
/// The filters `POST /networks/prune` takes.
pub const NETWORKS_PRUNE: &[&str] = &["label", "label!"];
/// The filters `GET /secrets` and `GET /configs` take.
pub const PAYLOADS: &[&str] = &["id", "label", "name", "names"];
/// The filters `GET /tasks` takes.
pub const TASKS: &[&str] = &[
    "id",
    "name",
    "service",
    "node",
    "label",
    "desired-state",
    "_up-to-date",
    "runtime",
];

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    pub fn parse(raw: Option<&String>, allowed: &[&str]) -> Result<Filters, ApiError> {
        let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
            return Ok(Filters::default());
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("filters: invalid JSON: {e}")))?;
        let serde_json::Value::Object(obj) = v else {
            return Err(ApiError::bad_request(
                "filters: expected a JSON object of filter names",
            ));
        };
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
            }
            let values: Vec<String> = match v {
                serde_json::Value::Object(m) => m
                    .into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(val, _)| val)
                    .collect(),
                serde_json::Value::Array(a) => a
                    .into_iter()
                    .map(|x| match x {
                        serde_json::Value::String(s) => Ok(s),
                        other => Err(ApiError::bad_request(format!(
                            "filters: {k}: expected strings, got {other}"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "filters: {k}: expected an object or a list, got {other}"
                    )));
                }
            };
            out.insert(k, values);
        }
        Ok(Filters(out))
    }

    /// `GET /services`' filters.
    pub fn for_services(raw: Option<&String>) -> Result<Filters, ApiError> {
        Filters::parse(raw, SERVICES)
    }

    /// `GET /nodes`' filters; a `role` is `manager` or `worker`.
    pub fn for_nodes(raw: Option<&String>) -> Result<Filters, ApiError> {
        let f = Filters::parse(raw, NODES)?;
        for r in f.get("role") {
            if r != NodeRole::Manager.as_str() && r != NodeRole::Worker.as_str() {
                return Err(ApiError::bad_request(format!("invalid filter 'role={r}'")));
            }
        }
        Ok(f)
    }

    /// `GET /tasks`' filters, with the desired states they ask for (Docker takes only running,
    /// shutdown and accepted there).
    pub fn for_tasks(raw: Option<&String>) -> Result<(Filters, Vec<TaskState>), ApiError> {
        let f = Filters::parse(raw, TASKS)?;
        let mut desired = Vec::new();
        for d in f.get("desired-state") {
            match TaskState::parse(d) {
                Some(s @ (TaskState::Running | TaskState::Shutdown | TaskState::Accepted)) => {
                    desired.push(s)
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid filter 'desired-state={d}': expected running, shutdown or accepted"
                    )));
                }
            }
        }
        Ok((f, desired))
    }

    /// Whether the filter was given at all (with or without values).
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// True when the filter is absent, or when any of its values matches.
    pub fn any(&self, key: &str, m: impl Fn(&str) -> bool) -> bool {
        let vals = self.get(key);
        vals.is_empty() || vals.iter().any(|v| m(v))
    }

    /// Label filters: `key` matches when the label exists, `key=value` when it has that value;
    /// every given label filter must match.
    pub fn labels(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.get(key).iter().all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(f),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_parse_and_unknown_names_are_refused() {
        let f = Filters::parse(
            Some(&r#"{"service":{"web":true},"desired-state":["running"]}"#.into()),
            &["service", "desired-state"],
        )
        .expect("parses");
        assert_eq!(f.get("service"), ["web"]);
        assert_eq!(f.get("desired-state"), ["running"]);
        assert!(f.any("node", |_| false));
        let e = Filters::parse(Some(&r#"{"bogus":{"x":true}}"#.into()), &["service"])
            .expect_err("refused");
        assert_eq!(e.message, "invalid filter 'bogus'");
        assert!(Filters::parse(Some(&"{".into()), &[]).is_err());
    }

    #[test]
    fn label_filters_need_every_label() {
        let f = Filters::parse(
            Some(&r#"{"label":{"a":true,"b=2":true}}"#.into()),
            &["label"],
        )
        .expect("parses");
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(!f.labels("label", &l));
        l.insert("b".into(), "2".into());
        assert!(f.labels("label", &l));
    }
}
