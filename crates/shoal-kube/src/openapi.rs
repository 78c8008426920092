//! The OpenAPI v3 documents kubectl reads: `GET /openapi/v3` (the index) and one document per
//! served group-version (`/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`).
//!
//! kubectl uses them three ways, and each shapes the documents:
//! - `apply`/`create` look for a `patch` operation carrying the kind's
//!   `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter; finding it they
//!   send `fieldValidation=Strict` and leave validation to the server.
//! - `apply` computes its strategic merge patch from the component schemas when the kind's
//!   `patch` operation accepts `application/strategic-merge-patch+json`, reading
//!   `x-kubernetes-patch-strategy`/`-merge-key` off the properties (hence [`PATCH_STRATEGIES`]:
//!   k8s-openapi's schemas lack them).
//! - `explain` finds the kind through an operation's GVK, then the component schema whose
//!   `x-kubernetes-group-version-kind` list holds it, and prints descriptions and `$ref` names.
//!
//! The schemas come from k8s-openapi's `JsonSchema` impls through schemars' OpenAPI 3.0
//! settings: definitions under `#/components/schemas`, a `$ref` with siblings wrapped in
//! `allOf`, as Kubernetes writes them. The paths and operations are in [`paths`].
//!
//! Concurrency: the documents are built once, on first use, behind a `OnceLock`.

mod paths;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::{apps::v1 as apps, autoscaling::v1 as autoscaling, batch::v1 as batch};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::registry;

const SCHEMAS: &str = "#/components/schemas/";
/// The server version the documents name (`info.version`).
const KUBE_VERSION: &str = "v1.32.0";

/// `GET /openapi/v3`: the index of group-version documents.
pub fn index() -> Value {
    built().index.clone()
}

/// `GET /openapi/v3/api/v1` (group "") or `/openapi/v3/apis/{group}/{version}`: that
/// group-version's document, or None if not served.
pub fn group_version_doc(group: &str, version: &str) -> Option<Value> {
    let docs = &built().docs;
    docs.iter()
        .find(|d| d.group == group && d.version == version)
        .map(|d| d.doc.clone())
}

/// A stable short hash of a document (hex), used in the index URLs `?hash=...`: 128-bit FNV-1a
/// over the compact JSON, so a document's URL changes exactly when the document does.
pub fn doc_hash(doc: &Value) -> String {
    struct Fnv1a(u128);
    impl std::io::Write for Fnv1a {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
            for b in buf {
                self.0 = (self.0 ^ u128::from(*b)).wrapping_mul(PRIME);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut h = Fnv1a(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
    // Serializing a `Value` into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut h, doc);
    format!("{:032X}", h.0)
}

struct GvDoc {
    group: &'static str,
    version: &'static str,
    doc: Value,
}

struct Built {
    docs: Vec<GvDoc>,
    index: Value,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let docs: Vec<GvDoc> = registry::group_versions()
            .into_iter()
            .map(|(group, version)| GvDoc {
                group,
                version,
                doc: build_doc(group, version),
            })
            .collect();
        let mut paths = Map::new();
        for d in &docs {
            let key = gv_path(d.group, d.version);
            let url = format!("/openapi/v3/{key}?hash={}", doc_hash(&d.doc));
            paths.insert(key, json!({ "serverRelativeURL": url }));
        }
        Built {
            docs,
            index: json!({ "paths": paths }),
        }
    })
}

/// `api/v1` or `apis/apps/v1`: the index key, and the document's URL under `/openapi/v3/`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Adds `T`'s schema, and every schema it references, to the generator's definitions.
fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Adds the schema of `group/version` `kind` to `generator`, returning its component name; None
/// for a kind without a schema here (a unit test keeps every kind of the registry covered).
fn kind_schema(g: &mut SchemaGenerator, group: &str, version: &str, kind: &str) -> Option<String> {
    Some(match (group, version, kind) {
        ("", "v1", "Namespace") => add::<core::Namespace>(g),
        ("", "v1", "Node") => add::<core::Node>(g),
        ("", "v1", "Pod") => add::<core::Pod>(g),
        ("", "v1", "ConfigMap") => add::<core::ConfigMap>(g),
        ("", "v1", "Secret") => add::<core::Secret>(g),
        ("", "v1", "Event") => add::<core::Event>(g),
        ("", "v1", "Service") => add::<core::Service>(g),
        ("apps", "v1", "Deployment") => add::<apps::Deployment>(g),
        ("apps", "v1", "DaemonSet") => add::<apps::DaemonSet>(g),
        ("apps", "v1", "ReplicaSet") => add::<apps::ReplicaSet>(g),
        ("batch", "v1", "Job") => add::<batch::Job>(g),
        ("batch", "v1", "CronJob") => add::<batch::CronJob>(g),
        ("autoscaling", "v1", "Scale") => add::<autoscaling::Scale>(g),
        _ => return None,
    })
}

/// Kubernetes' `patchStrategy`/`patchMergeKey` struct tags (k8s.io/api and k8s.io/apimachinery
/// v0.33), which its OpenAPI documents carry as `x-kubernetes-patch-strategy`/`-merge-key`:
/// (schema, property, strategy, merge key); schemas are named without `io.k8s.api.` or, for
/// `meta.v1`, `io.k8s.apimachinery.pkg.apis.`. Applied where the schema is in a document; the
/// other rows wait for their kinds. Every `merge` on a list of objects has its key: kubectl's
/// patch fails without it. `retainKeys` alone and `merge` on lists of strings need none.
#[rustfmt::skip]
pub(crate) const PATCH_STRATEGIES: &[(&str, &str, &str, &str)] = &[
    ("meta.v1.ObjectMeta", "ownerReferences", "merge", "uid"),
    ("meta.v1.ObjectMeta", "finalizers", "merge", ""),
    ("core.v1.PodSpec", "volumes", "merge,retainKeys", "name"),
    ("core.v1.PodSpec", "initContainers", "merge", "name"),
    ("core.v1.PodSpec", "containers", "merge", "name"),
    ("core.v1.PodSpec", "ephemeralContainers", "merge", "name"),
    ("core.v1.PodSpec", "imagePullSecrets", "merge", "name"),
    ("core.v1.PodSpec", "hostAliases", "merge", "ip"),
    ("core.v1.PodSpec", "topologySpreadConstraints", "merge", "topologyKey"),
    ("core.v1.PodSpec", "schedulingGates", "merge", "name"),
    ("core.v1.PodSpec", "resourceClaims", "merge,retainKeys", "name"),
    ("core.v1.Container", "ports", "merge", "containerPort"),
    ("core.v1.Container", "env", "merge", "name"),
    ("core.v1.Container", "volumeMounts", "merge", "mountPath"),
    ("core.v1.Container", "volumeDevices", "merge", "devicePath"),
    ("core.v1.EphemeralContainer", "ports", "merge", "containerPort"),
    ("core.v1.EphemeralContainer", "env", "merge", "name"),
    ("core.v1.EphemeralContainer", "volumeMounts", "merge", "mountPath"),
    ("core.v1.EphemeralContainer", "volumeDevices", "merge", "devicePath"),
    ("core.v1.ContainerStatus", "volumeMounts", "merge", "mountPath"),
    ("core.v1.ContainerStatus", "allocatedResourcesStatus", "merge", "name"),
    ("core.v1.PodStatus", "conditions", "merge", "type"),
    ("core.v1.PodStatus", "hostIPs", "merge", "ip"),
    ("core.v1.PodStatus", "podIPs", "merge", "ip"),
    ("core.v1.PodStatus", "resourceClaimStatuses", "merge,retainKeys", "name"),
    ("core.v1.ServiceSpec", "ports", "merge", "port"),
    ("core.v1.ServiceStatus", "conditions", "merge", "type"),
    ("core.v1.NodeSpec", "podCIDRs", "merge", ""),
    ("core.v1.NodeStatus", "conditions", "merge", "type"),
    ("core.v1.NodeStatus", "addresses", "merge", "type"),
    ("core.v1.NamespaceStatus", "conditions", "merge", "type"),
    ("apps.v1.DeploymentSpec", "strategy", "retainKeys", ""),
    ("apps.v1.DeploymentStatus", "conditions", "merge", "type"),
    ("apps.v1.DaemonSetStatus", "conditions", "merge", "type"),
    ("apps.v1.ReplicaSetStatus", "conditions", "merge", "type"),
    ("apps.v1.StatefulSetStatus", "conditions", "merge", "type"),
    ("batch.v1.JobStatus", "conditions", "merge", "type"),
];

/// The component name of a [`PATCH_STRATEGIES`] schema.
fn full_name(short: &str) -> String {
    match short.strip_prefix("meta.") {
        Some(_) => format!("io.k8s.apimachinery.pkg.apis.{short}"),
        None => format!("io.k8s.api.{short}"),
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "version": version, "kind": kind })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMAS}{name}") })
}

fn build_doc(group: &'static str, version: &'static str) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let g = &mut generator;
    let gv = paths::GroupVersion::new(
        group,
        version,
        add::<meta::Patch>(g),
        add::<meta::Status>(g),
        add::<meta::DeleteOptions>(g),
    );
    let list_meta = add::<meta::ListMeta>(g);
    let mut paths = Map::new();
    // Component names with the GVK their schema gets; lists are written here (k8s-openapi has
    // no schemas for them): (list name, item name, list GVK).
    let mut kinds: Vec<(String, Value)> = Vec::new();
    let mut lists: Vec<(String, String, Value)> = Vec::new();
    for r in registry::all()
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let Some(name) = kind_schema(g, r.group, r.version, r.kind) else {
            continue;
        };
        let list = format!("{name}List");
        let list_gvk = gvk(r.group, r.version, &format!("{}List", r.kind));
        gv.add_resource(&mut paths, r, &name, &list);
        kinds.push((name.clone(), gvk(r.group, r.version, r.kind)));
        lists.push((list, name, list_gvk));
        for sub in r.subresources {
            let Some(sub_name) = kind_schema(g, sub.group, sub.version, sub.kind) else {
                continue;
            };
            gv.add_subresource(&mut paths, r, sub, &sub_name);
            kinds.push((sub_name, gvk(sub.group, sub.version, sub.kind)));
        }
    }
    let mut schemas = generator.take_definitions(true);
    for (list, item, list_gvk) in lists {
        schemas.insert(list, list_schema(&item, &list_meta, list_gvk));
    }
    for (name, kind_gvk) in kinds {
        let Some(Value::Object(s)) = schemas.get_mut(&name) else {
            continue;
        };
        s.insert("x-kubernetes-group-version-kind".into(), json!([kind_gvk]));
        // k8s-openapi requires `metadata` (its field is not an `Option`); Kubernetes does not,
        // and `explain` would print it `-required-`.
        if let Some(Value::Array(required)) = s.get_mut("required") {
            required.retain(|r| r != "metadata");
            if required.is_empty() {
                s.remove("required");
            }
        }
    }
    for (schema, prop, strategy, key) in PATCH_STRATEGIES {
        let property = schemas
            .get_mut(&full_name(schema))
            .and_then(|s| s.pointer_mut(&format!("/properties/{prop}")));
        let Some(Value::Object(p)) = property else {
            continue;
        };
        p.insert("x-kubernetes-patch-strategy".into(), json!(strategy));
        if !key.is_empty() {
            p.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": KUBE_VERSION },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

/// `io.k8s.api.apps.v1.DeploymentList`, as Kubernetes describes its lists.
fn list_schema(item: &str, list_meta: &str, list_gvk: Value) -> Value {
    let kind = item.rsplit('.').next().unwrap_or(item);
    let conventions =
        "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md";
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": format!("APIVersion defines the versioned schema of this \
                    representation of an object. Servers should convert recognized schemas to the \
                    latest internal value, and may reject unrecognized values. More info: \
                    {conventions}#resources"),
                "type": "string",
            },
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": schema_ref(item),
            },
            "kind": {
                "description": format!("Kind is a string value representing the REST resource \
                    this object represents. Servers may infer this from the endpoint the client \
                    submits requests to. Cannot be updated. In CamelCase. More info: \
                    {conventions}#types-kinds"),
                "type": "string",
            },
            "metadata": {
                "allOf": [schema_ref(list_meta)],
                "description": format!("Standard list metadata. More info: {conventions}#metadata"),
            },
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [list_gvk],
    })
}
