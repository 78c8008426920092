//! Volumes as Docker's volume endpoints show and take them: the volume object, `docker volume
//! create`'s body, and the filters of `docker volume ls` and `docker volume prune`. Pure; the
//! handlers are in `routes::volumes`.

use std::collections::BTreeMap;

use bollard_stubs::models::VolumeCreateRequest;
use serde_json::{Value, json};
use shoal_runtime::VolumeInfo;
use shoal_runtime::catalog::{ANONYMOUS_VOLUME_LABEL, VolumeCreate, VolumePrune};
use shoal_types::Timestamp;
use shoal_types::clock::format_rfc3339;

use crate::error::ApiError;
use crate::filters::Filters;

/// The filters `GET /volumes` takes.
pub const VOLUMES: &[&str] = &["dangling", "driver", "label", "name"];
/// The filters `POST /volumes/prune` takes (`all` from API 1.42).
pub const VOLUMES_PRUNE: &[&str] = &["all", "label", "label!"];

/// The only volume driver shoal has; every volume is the node's own.
pub const LOCAL_DRIVER: &str = "local";

/// Docker's volume time: RFC 3339 to the second.
fn created_at(t: Timestamp) -> String {
    let s = format_rfc3339(t);
    match s.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => s,
    }
}

/// The volume object of `GET /volumes/{name}`, `POST /volumes/create` and `GET /volumes`.
pub fn volume_json(v: &VolumeInfo) -> Value {
    json!({
        "CreatedAt": created_at(v.created_at),
        "Driver": LOCAL_DRIVER,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    })
}

/// `POST /volumes/create`'s body as the runtime takes it. A volume without a name gets
/// `anonymous_name()` and Docker's anonymous label, as Docker (23+) gives one. A driver other
/// than `local` is refused as Docker refuses an unknown plugin (404).
pub fn volume_create(
    body: VolumeCreateRequest,
    anonymous_name: impl FnOnce() -> String,
) -> Result<VolumeCreate, ApiError> {
    if body.cluster_volume_spec.is_some() {
        return Err(ApiError::invalid(
            "ClusterVolumeSpec",
            "cluster volumes are not supported; volumes are the node's own",
        ));
    }
    let driver = body.driver.unwrap_or_default();
    if !driver.is_empty() && driver != LOCAL_DRIVER {
        return Err(ApiError::not_found(format!(
            "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
        )));
    }
    let mut labels: BTreeMap<String, String> =
        body.labels.unwrap_or_default().into_iter().collect();
    let name = match body.name.filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => {
            labels.insert(ANONYMOUS_VOLUME_LABEL.to_string(), String::new());
            anonymous_name()
        }
    };
    Ok(VolumeCreate {
        name,
        labels,
        options: body.driver_opts.unwrap_or_default().into_iter().collect(),
    })
}

/// A boolean filter as Docker reads it (`GetBoolOrDefault`): `true`/`1` or `false`/`0`, and
/// nothing else nor both; `None` when absent.
fn bool_filter(f: &Filters, key: &str) -> Result<Option<bool>, ApiError> {
    if !f.has(key) {
        return Ok(None);
    }
    let vals = f.get(key);
    let yes = vals.iter().any(|v| v == "true" || v == "1");
    let no = vals.iter().any(|v| v == "false" || v == "0");
    if yes == no {
        return Err(ApiError::bad_request(format!(
            "invalid filter '{key}={}'",
            vals.join(",")
        )));
    }
    Ok(Some(yes))
}

/// `GET /volumes`' filters, checked.
#[derive(Debug)]
pub struct VolumeFilters {
    f: Filters,
    dangling: Option<bool>,
    names: Vec<Option<regex::Regex>>,
}

/// Names are matched as Docker matches them: equal, or a regular expression found in the name;
/// an expression that does not compile matches only itself.
fn name_pattern(p: &str) -> Option<regex::Regex> {
    regex::RegexBuilder::new(p).size_limit(1 << 20).build().ok()
}

impl VolumeFilters {
    pub fn parse(raw: Option<&String>) -> Result<VolumeFilters, ApiError> {
        let f = Filters::parse(raw, VOLUMES)?;
        let dangling = bool_filter(&f, "dangling")?;
        let names = f.get("name").iter().map(|p| name_pattern(p)).collect();
        Ok(VolumeFilters { f, dangling, names })
    }

    pub fn matches(&self, v: &VolumeInfo) -> bool {
        let name_ok =
            self.f.get("name").is_empty()
                || self.f.get("name").iter().zip(&self.names).any(|(p, re)| {
                    *p == v.name || re.as_ref().is_some_and(|re| re.is_match(&v.name))
                });
        name_ok
            && self.f.any("driver", |d| d == LOCAL_DRIVER)
            && self.f.labels("label", &v.labels)
            && self.dangling.is_none_or(|d| d == v.in_use_by.is_empty())
    }
}

/// `POST /volumes/prune`'s filters for a client speaking API `version`: before 1.42 every
/// unused volume goes (Docker adds `all` for those clients), from 1.42 only anonymous ones
/// unless `all` says otherwise.
pub fn volume_prune(raw: Option<&String>, version: (u32, u32)) -> Result<VolumePrune, ApiError> {
    let f = Filters::parse(raw, VOLUMES_PRUNE)?;
    let all = bool_filter(&f, "all")?;
    Ok(VolumePrune {
        all: version < (1, 42) || all.unwrap_or(false),
        labels: f.get("label").to_vec(),
        not_labels: f.get("label!").to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::Id;

    fn vol(name: &str, labels: &[(&str, &str)], used: bool) -> VolumeInfo {
        VolumeInfo {
            name: name.into(),
            mountpoint: format!("/v/{name}"),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            options: BTreeMap::new(),
            created_at: Timestamp::from_unix_nanos(1_700_000_000_500_000_000),
            in_use_by: if used {
                vec![Id::from_raw("t")]
            } else {
                Vec::new()
            },
        }
    }

    fn filters(raw: &str) -> Result<VolumeFilters, ApiError> {
        VolumeFilters::parse(Some(&raw.to_string()))
    }

    #[test]
    fn the_volume_object() {
        let v = volume_json(&vol("data", &[("a", "1")], false));
        assert_eq!(v["CreatedAt"], "2023-11-14T22:13:20Z");
        assert_eq!(v["Labels"], json!({"a": "1"}));
        assert_eq!(
            (v["Driver"].as_str(), v["Scope"].as_str()),
            (Some("local"), Some("local"))
        );
    }

    #[test]
    fn nameless_volumes_are_anonymous_and_drivers_are_local() {
        let body: VolumeCreateRequest =
            serde_json::from_value(json!({"Labels": {"x": "y"}})).expect("body");
        let c = volume_create(body, || "ab".repeat(32)).expect("create");
        assert_eq!(c.name, "ab".repeat(32));
        assert_eq!(
            c.labels.get(ANONYMOUS_VOLUME_LABEL).map(String::as_str),
            Some("")
        );
        let body: VolumeCreateRequest =
            serde_json::from_value(json!({"Name": "n", "Driver": "local"})).expect("body");
        let c = volume_create(body, || unreachable!("named")).expect("create");
        assert!(c.labels.is_empty());
        let body: VolumeCreateRequest =
            serde_json::from_value(json!({"Name": "n", "Driver": "nfs-plugin"})).expect("body");
        let e = volume_create(body, String::new).expect_err("unknown driver");
        assert_eq!(e.status, http::StatusCode::NOT_FOUND);
        assert!(
            e.message.contains("plugin \"nfs-plugin\" not found"),
            "{}",
            e.message
        );
    }

    #[test]
    fn list_filters_match_like_dockers() {
        let (a, b) = (
            vol("proj_web", &[("team", "a")], true),
            vol("other", &[], false),
        );
        let f = filters(r#"{"name":{"^proj_":true}}"#).expect("filters");
        assert!(f.matches(&a) && !f.matches(&b));
        let f = filters(r#"{"name":["web"]}"#).expect("filters");
        assert!(
            f.matches(&a) && !f.matches(&b),
            "a part of the name matches"
        );
        let f = filters(r#"{"name":["(unclosed"]}"#).expect("filters");
        assert!(!f.matches(&a), "a bad expression matches only itself");
        let f = filters(r#"{"dangling":["true"]}"#).expect("filters");
        assert!(!f.matches(&a) && f.matches(&b));
        let f = filters(r#"{"dangling":{"0":true}}"#).expect("filters");
        assert!(f.matches(&a) && !f.matches(&b));
        let f = filters(r#"{"label":["team=a"],"driver":["local"]}"#).expect("filters");
        assert!(f.matches(&a) && !f.matches(&b));
        let f = filters(r#"{"driver":["nfs"]}"#).expect("filters");
        assert!(!f.matches(&a));
        for bad in [
            r#"{"dangling":["maybe"]}"#,
            r#"{"dangling":["true","false"]}"#,
            r#"{"bogus":["x"]}"#,
            "{",
        ] {
            let e = filters(bad).expect_err(bad);
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn prune_follows_the_clients_api_version() {
        let none = volume_prune(None, (1, 41)).expect("filters");
        assert!(none.all, "before 1.42 every unused volume goes");
        let none = volume_prune(None, (1, 50)).expect("filters");
        assert!(!none.all, "from 1.42 only anonymous ones");
        let all = volume_prune(Some(&r#"{"all":{"true":true}}"#.to_string()), (1, 50));
        assert!(all.is_ok_and(|p| p.all));
        let p = volume_prune(
            Some(&r#"{"label":["a=1"],"label!":["b"]}"#.to_string()),
            (1, 50),
        )
        .expect("filters");
        assert_eq!(
            (p.labels, p.not_labels),
            (vec!["a=1".to_string()], vec!["b".to_string()])
        );
        assert!(volume_prune(Some(&r#"{"all":["yes"]}"#.to_string()), (1, 50)).is_err());
        assert!(volume_prune(Some(&r#"{"dangling":["true"]}"#.to_string()), (1, 50)).is_err());
    }
}
