//! The documents against what kubectl reads from them.

use super::*;

fn doc(group: &str, version: &str) -> Value {
    group_version_doc(group, version).unwrap_or_else(|| panic!("no document for {group}/{version}"))
}

fn schemas(doc: &Value) -> &Map<String, Value> {
    doc.pointer("/components/schemas")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no components.schemas"))
}

/// The schema a property's `allOf: [{$ref}]` (or bare `$ref`) names, or the property itself.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let r = schema
        .pointer("/allOf/0/$ref")
        .or_else(|| schema.get("$ref"))
        .and_then(Value::as_str);
    match r.and_then(|r| r.strip_prefix(SCHEMAS)) {
        Some(name) => schemas(doc)
            .get(name)
            .unwrap_or_else(|| panic!("unresolved {name}")),
        None => schema,
    }
}

fn walk<'a>(v: &'a Value, f: &mut impl FnMut(&'a str, &'a Value)) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                f(k, x);
                walk(x, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        _ => {}
    }
}

#[test]
fn the_index_lists_the_served_group_versions_with_hashed_urls() {
    let index = index();
    let Some(paths) = index["paths"].as_object() else {
        panic!("no paths in {index}")
    };
    let gvs = registry::group_versions();
    assert_eq!(paths.len(), gvs.len());
    for (group, version) in gvs {
        let key = gv_path(group, version);
        let url = format!("/openapi/v3/{key}?hash={}", doc_hash(&doc(group, version)));
        assert_eq!(paths[&key]["serverRelativeURL"], json!(url), "{key}");
    }
    assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
}

#[test]
fn unserved_group_versions_have_no_document() {
    assert!(group_version_doc("nope", "v1").is_none());
    assert!(group_version_doc("apps", "v2").is_none());
}

#[test]
fn hashes_are_stable_and_tell_documents_apart() {
    let (core, apps) = (doc("", "v1"), doc("apps", "v1"));
    assert_eq!(doc_hash(&core), doc_hash(&doc("", "v1")));
    assert_ne!(doc_hash(&core), doc_hash(&apps));
    assert!(doc_hash(&core).chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn every_registry_kind_has_a_schema() {
    let mut g = SchemaSettings::openapi3().into_generator();
    for r in registry::all() {
        assert!(
            kind_schema(&mut g, r.group, r.version, r.kind).is_some(),
            "no schema for {}/{}",
            r.api_version(),
            r.kind
        );
        // Connect subresources (exec) take options, not an object: k8s-openapi has no type
        // for them, and kubectl reads no schema of theirs.
        for s in r.subresources.iter().filter(|s| s.kind != "PodExecOptions") {
            assert!(
                kind_schema(&mut g, s.group, s.version, s.kind).is_some(),
                "no schema for {}/{}",
                s.group,
                s.kind
            );
        }
    }
}

#[test]
fn every_kind_is_patchable_with_field_validation() {
    for r in registry::all()
        .iter()
        .filter(|r| r.verbs.contains(&"patch"))
    {
        let doc = doc(r.group, r.version);
        let path = if r.namespaced {
            format!(
                "{}/namespaces/{{namespace}}/{}/{{name}}",
                r.prefix(),
                r.plural
            )
        } else {
            format!("{}/{}/{{name}}", r.prefix(), r.plural)
        };
        let patch = &doc["paths"][&path]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"],
            gvk(r.group, r.version, r.kind),
            "{path}"
        );
        assert_eq!(patch["x-kubernetes-action"], "patch");
        let content = &patch["requestBody"]["content"];
        for t in [
            "json-patch+json",
            "merge-patch+json",
            "apply-patch+yaml",
            "strategic-merge-patch+json",
        ] {
            assert!(
                content.get(format!("application/{t}")).is_some(),
                "{path}: no {t}"
            );
        }
    }
    // kubectl takes the first patch operation with the kind's GVK, in map order: every one
    // must carry the parameter.
    for (group, version) in registry::group_versions() {
        let doc = doc(group, version);
        let Some(paths) = doc["paths"].as_object() else {
            panic!("no paths")
        };
        for (path, item) in paths {
            for method in ["patch", "post", "put"] {
                let Some(op) = item.get(method) else { continue };
                let Some(params) = op["parameters"].as_array() else {
                    panic!("{path} {method}: no parameters")
                };
                let found = params.iter().any(|p| {
                    p["name"] == "fieldValidation"
                        && p["in"] == "query"
                        && p["schema"]["type"] == "string"
                });
                assert!(found, "{path} {method}: no fieldValidation");
                assert!(
                    op["x-kubernetes-group-version-kind"].is_object(),
                    "{path} {method}: no GVK"
                );
            }
        }
    }
}

#[test]
fn the_scale_subresource_is_served_with_its_schema() {
    let doc = doc("apps", "v1");
    let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    for method in ["get", "put", "patch"] {
        assert_eq!(
            scale[method]["x-kubernetes-group-version-kind"],
            gvk("autoscaling", "v1", "Scale"),
            "{method}"
        );
    }
    let s = &schemas(&doc)["io.k8s.api.autoscaling.v1.Scale"];
    assert_eq!(
        s["x-kubernetes-group-version-kind"],
        json!([gvk("autoscaling", "v1", "Scale")])
    );
}

#[test]
fn kubectl_explain_finds_every_kind_and_its_descriptions() {
    for r in registry::all() {
        let doc = doc(r.group, r.version);
        let want = gvk(r.group, r.version, r.kind);
        // The template's search: the collection or item path, namespaced or not.
        let coll = format!("{}/{}", r.prefix(), r.plural);
        let ns_coll = format!("{}/namespaces/{{namespace}}/{}", r.prefix(), r.plural);
        let found_op = [
            coll.clone(),
            format!("{coll}/{{name}}"),
            ns_coll.clone(),
            format!("{ns_coll}/{{name}}"),
        ]
        .iter()
        .filter_map(|p| doc["paths"].get(p))
        .flat_map(|item| ["get", "post", "put", "patch", "delete"].map(|m| item.get(m)))
        .flatten()
        .any(|op| op["x-kubernetes-group-version-kind"] == want);
        assert!(found_op, "{} has no operation with its GVK", r.kind);
        let kind_schemas: Vec<&Value> = schemas(&doc)
            .values()
            .filter(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(&want))
            })
            .collect();
        assert_eq!(kind_schemas.len(), 1, "{}", r.kind);
        assert!(
            kind_schemas[0]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{}",
            r.kind
        );
    }
    let core = doc("", "v1");
    let pod = &schemas(&core)["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        json!([{ "group": "", "kind": "Pod", "version": "v1" }])
    );
    let spec = &pod["properties"]["spec"];
    assert_eq!(
        spec["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.PodSpec"
    );
    assert!(spec["description"].is_string());
    let pod_spec = resolve(&core, spec);
    assert!(pod_spec["description"].is_string());
    assert!(pod_spec["properties"]["containers"]["description"].is_string());
    assert_eq!(pod_spec["required"], json!(["containers"]));
}

#[test]
fn every_ref_resolves_within_its_document() {
    for (group, version) in registry::group_versions() {
        let doc = doc(group, version);
        let schemas = schemas(&doc);
        let mut refs = 0;
        walk(&doc, &mut |k, v| {
            assert_ne!(
                k, "$defs",
                "{group}/{version}: definitions outside components"
            );
            if k == "$ref" {
                refs += 1;
                let name = v.as_str().and_then(|r| r.strip_prefix(SCHEMAS));
                assert!(
                    name.is_some_and(|n| schemas.contains_key(n)),
                    "{group}/{version}: {v} unresolved"
                );
            }
        });
        assert!(refs > 50, "{group}/{version}: only {refs} refs");
    }
}

#[test]
fn list_fields_carry_kubernetes_patch_strategies() {
    let apps = doc("apps", "v1");
    // Deployment → spec → template → spec → containers → env, as kubectl walks it.
    let mut s = &schemas(&apps)["io.k8s.api.apps.v1.Deployment"];
    for field in ["spec", "template", "spec"] {
        s = resolve(&apps, &s["properties"][field]);
    }
    let containers = &s["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    let container = resolve(&apps, &containers["items"]);
    assert_eq!(
        container["properties"]["env"]["x-kubernetes-patch-merge-key"],
        "name"
    );
    assert_eq!(
        container["properties"]["ports"]["x-kubernetes-patch-merge-key"],
        "containerPort"
    );
    let meta = &schemas(&apps)["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
    assert_eq!(
        meta["properties"]["ownerReferences"]["x-kubernetes-patch-merge-key"],
        "uid"
    );
    // A merge strategy on a list of objects without a key fails kubectl's patch.
    for (group, version) in registry::group_versions() {
        let doc = doc(group, version);
        walk(&doc, &mut |_, v| {
            let Some(strategy) = v.get("x-kubernetes-patch-strategy").and_then(Value::as_str)
            else {
                return;
            };
            let of_objects = v
                .get("items")
                .is_some_and(|i| resolve(&doc, i)["type"] == "object");
            if strategy.split(',').any(|s| s == "merge") && of_objects {
                assert!(
                    v["x-kubernetes-patch-merge-key"].is_string(),
                    "{group}/{version}: {v}"
                );
            }
        });
    }
}

#[test]
fn the_patch_strategy_table_names_real_properties() {
    let mut g = SchemaSettings::openapi3().into_generator();
    for (group, kind) in [
        ("", "Pod"),
        ("", "Node"),
        ("", "Namespace"),
        ("", "Service"),
        ("apps", "Deployment"),
    ] {
        assert!(kind_schema(&mut g, group, "v1", kind).is_some());
    }
    add::<apps::DaemonSet>(&mut g);
    add::<apps::ReplicaSet>(&mut g);
    add::<apps::StatefulSet>(&mut g);
    add::<batch::Job>(&mut g);
    let defs = g.take_definitions(true);
    for (schema, prop, _, _) in PATCH_STRATEGIES {
        assert!(
            defs.get(&full_name(schema))
                .and_then(|s| s.pointer(&format!("/properties/{prop}")))
                .is_some(),
            "{schema}.{prop}"
        );
    }
}

#[test]
fn every_covered_kind_has_a_self_contained_schema() {
    let covered = [
        ("", "Namespace"),
        ("", "Node"),
        ("", "Pod"),
        ("", "ConfigMap"),
        ("", "Secret"),
        ("", "Event"),
        ("", "Service"),
        ("apps", "Deployment"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("autoscaling", "Scale"),
    ];
    let mut g = SchemaSettings::openapi3().into_generator();
    for (group, kind) in covered {
        let Some(name) = kind_schema(&mut g, group, "v1", kind) else {
            panic!("no schema for {group}/{kind}")
        };
        assert!(name.ends_with(&format!("v1.{kind}")), "{name}");
    }
    let defs = Value::Object(g.take_definitions(true));
    walk(&defs, &mut |k, v| {
        if k == "$ref" {
            let name = v.as_str().and_then(|r| r.strip_prefix(SCHEMAS));
            assert!(
                name.is_some_and(|n| defs.get(n).is_some()),
                "{v} unresolved"
            );
        }
    });
}
