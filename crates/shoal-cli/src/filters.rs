//! docker's `--filter key=value` flags and their wire form, `filters={"key":{"value":true}}`.

use std::collections::BTreeMap;

use crate::error::{CliError, Result};

/// Filter terms by key; both levels sorted so the encoded query is stable (Go marshals maps
/// sorted too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, BTreeMap<String, bool>>);

impl Filters {
    pub fn new() -> Filters {
        Filters::default()
    }

    /// Parses `--filter` values like docker's `FilterOpt`: `name=value`, key lower-cased and both
    /// sides trimmed.
    pub fn parse(flags: &[String]) -> Result<Filters> {
        let mut f = Filters::new();
        for raw in flags {
            let Some((k, v)) = raw.split_once('=') else {
                return Err(CliError::invalid_flag(
                    "filter",
                    raw,
                    "bad format of filter (expected name=value)",
                ));
            };
            f.add(&k.trim().to_lowercase(), v.trim());
        }
        Ok(f)
    }

    pub fn add(&mut self, key: &str, value: &str) -> &mut Self {
        self.0
            .entry(key.to_string())
            .or_default()
            .insert(value.to_string(), true);
        self
    }

    pub fn get(&self, key: &str) -> Vec<String> {
        self.0
            .get(key)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn remove(&mut self, key: &str) -> Vec<String> {
        self.0
            .remove(key)
            .map(|m| m.into_keys().collect())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON text sent as the `filters` query parameter.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_string())
    }

    /// `[("filters", json)]` when there is anything to filter, else nothing.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        if self.is_empty() {
            Vec::new()
        } else {
            vec![("filters", self.to_json())]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_docker() {
        let mut f = Filters::new();
        f.add("service", "o1na3s1s76cga4717peya4f45")
            .add("_up-to-date", "true");
        assert_eq!(
            f.to_json(),
            r#"{"_up-to-date":{"true":true},"service":{"o1na3s1s76cga4717peya4f45":true}}"#
        );
        let mut f = Filters::new();
        f.add("id", "web").add("id", "plain");
        assert_eq!(f.to_json(), r#"{"id":{"plain":true,"web":true}}"#);
        assert!(Filters::new().query().is_empty());
    }

    #[test]
    fn parses_flags() {
        let f = Filters::parse(&[" Desired-State = running".into(), "name=web".into()]);
        let f = f.expect("valid filters");
        assert_eq!(f.get("desired-state"), vec!["running".to_string()]);
        assert_eq!(f.get("name"), vec!["web".to_string()]);
        let err = Filters::parse(&["nokey".into()])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                r#"invalid argument "nokey" for "--filter" flag: bad format of filter (expected name=value)"#
            )
        );
    }
}
