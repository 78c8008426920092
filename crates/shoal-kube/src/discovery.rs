//! Discovery: what kubectl reads to learn the kinds (`/api`, `/apis` as the aggregated
//! `APIGroupDiscoveryList` kubectl 1.32 asks for, or the legacy lists), and `/version`.
//!
//! Concurrency: pure functions of the registry.

use serde_json::{Value, json};

use crate::registry::{self, ResourceInfo};

/// The media type of aggregated discovery: kubectl reads the body by it.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// Whether the `Accept` header asks for aggregated discovery (v2, or v2beta1 which kubectl
/// reads the same v2 body for).
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    if accept.contains("g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList") {
        Some(AGGREGATED_V2)
    } else if accept.contains("g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList") {
        Some(AGGREGATED_V2BETA1)
    } else {
        None
    }
}

/// `/version`: 1.32, so the machine's kubectl dispatcher runs its kubectl 1.32.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": format!("v1.32.0-shoal.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn groups(core: bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (g, _) in registry::group_versions() {
        if g.is_empty() == core && !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

fn versions_of(group: &str) -> Vec<&'static str> {
    registry::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(_, v)| v)
        .collect()
}

fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    registry::all()
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    json!({
        "resource": r.plural,
        "responseKind": { "group": r.group, "version": r.version, "kind": r.kind },
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
        "shortNames": r.short_names,
        "categories": r.categories,
        "subresources": r.subresources.iter().map(|s| json!({
            "subresource": s.name,
            "responseKind": { "group": s.group, "version": s.version, "kind": s.kind },
            "verbs": s.verbs,
        })).collect::<Vec<_>>(),
    })
}

/// `/api` (core) or `/apis` as an `APIGroupDiscoveryList`.
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = groups(core)
        .into_iter()
        .map(|g| {
            json!({
                "metadata": { "name": g },
                "versions": versions_of(g).into_iter().map(|v| json!({
                    "version": v,
                    "freshness": "Current",
                    "resources": in_group_version(g, v).map(aggregated_resource).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// `/api` as the legacy `APIVersions`.
pub fn legacy_core() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

fn group_json(g: &str) -> Value {
    let versions: Vec<Value> = versions_of(g)
        .into_iter()
        .map(|v| json!({ "groupVersion": format!("{g}/{v}"), "version": v }))
        .collect();
    json!({
        "name": g,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis` as the legacy `APIGroupList`.
pub fn legacy_groups() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups(false).into_iter().map(group_json).collect::<Vec<_>>(),
    })
}

/// `/apis/{group}` as an `APIGroup`.
pub fn legacy_group(group: &str) -> Option<Value> {
    if groups(false).contains(&group) {
        let mut g = group_json(group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        Some(g)
    } else {
        None
    }
}

/// `/api/v1` or `/apis/{group}/{version}` as an `APIResourceList`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in in_group_version(group, version) {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for s in r.subresources {
            resources.push(json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": s.group,
                "version": s.version,
                "kind": s.kind,
                "verbs": s.verbs,
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_group_is_under_api_and_the_rest_under_apis() {
        let core = aggregated(true);
        assert_eq!(core["items"][0]["metadata"]["name"], "");
        let pods = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .map(|rs| rs.iter().any(|r| r["resource"] == "pods"));
        assert_eq!(pods, Some(true));
        let apps = aggregated(false);
        assert!(
            apps["items"]
                .as_array()
                .is_some_and(|i| i.iter().all(|g| g["metadata"]["name"] != ""))
        );
        assert!(resource_list("apps", "v1").is_some());
        assert!(resource_list("nope", "v1").is_none());
        assert_eq!(
            wants_aggregated(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
            ),
            Some(AGGREGATED_V2)
        );
        assert_eq!(wants_aggregated("application/json, */*"), None);
    }
}
