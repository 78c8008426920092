use super::*;
use proptest::prelude::*;
use serde_json::json;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn ok(kind: Kind, original: &Value, patch: Value) -> Value {
    apply(kind, original, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"))
}

fn fails(kind: Kind, original: &Value, patch: Value) -> SmpError {
    match apply(kind, original, &patch) {
        Ok(v) => panic!("{patch} applied, giving {v}"),
        Err(e) => e,
    }
}

/// A Deployment as the API shows it after `kubectl apply`.
fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {LAST_APPLIED: "{\"old\":true}\n"},
            "generation": 1,
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "args": ["--a", "--x"],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "resources": {},
                            "imagePullPolicy": "IfNotPresent",
                        },
                        {"name": "log", "image": "busybox:1.36"},
                    ],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst",
                },
            },
        },
        "status": {"replicas": 2},
    })
}

fn containers(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]["containers"]
}

fn names(list: &Value, key: &str) -> Vec<Value> {
    list.as_array()
        .map(|a| a.iter().map(|e| e[key].clone()).collect())
        .unwrap_or_default()
}

#[test]
fn kubectl_apply_of_a_changed_image_keeps_the_containers_other_fields() {
    let d = deployment();
    let got = ok(
        Kind::Deployment,
        &d,
        json!({
            "metadata": {"annotations": {LAST_APPLIED: "{\"new\":true}\n"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
                "containers": [{"image": "nginx:1.26", "name": "web"}],
            }}},
        }),
    );
    let mut want = d.clone();
    want["metadata"]["annotations"][LAST_APPLIED] = json!("{\"new\":true}\n");
    want["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    assert_eq!(got, want);
}

#[test]
fn kubectl_apply_with_the_exact_patch_of_a_one_container_deployment() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"] =
        json!([d["spec"]["template"]["spec"]["containers"][0].clone()]);
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"metadata":{"annotations":{LAST_APPLIED:"{\"apiVersion\":\"apps/v1\"}\n"}},"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"web"}],"containers":[{"image":"nginx:1.26","name":"web"}]}}}}),
    );
    let c = &containers(&got)[0];
    assert_eq!(c["image"], "nginx:1.26");
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(
        c["env"],
        d["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(containers(&got).as_array().map(Vec::len), Some(1));
}

#[test]
fn kubectl_apply_removing_an_env_var() {
    let got = ok(
        Kind::Deployment,
        &deployment(),
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "B"}],
                "env": [{"$patch": "delete", "name": "A"}],
                "name": "web",
            }],
        }}}}),
    );
    assert_eq!(
        containers(&got)[0]["env"],
        json!([{"name": "B", "value": "2"}])
    );
    assert_eq!(containers(&got)[0]["image"], "nginx:1.25");
    assert_eq!(
        names(containers(&got), "name"),
        [json!("web"), json!("log")]
    );
}

#[test]
fn kubectl_apply_adding_a_container_puts_it_where_the_manifest_has_it() {
    let d = deployment();
    let sidecar = json!({"image": "busybox:1.36", "name": "sidecar", "command": ["sleep", "1d"]});
    for (order, want) in [
        (["web", "log", "sidecar"], ["web", "log", "sidecar"]),
        (["sidecar", "web", "log"], ["sidecar", "web", "log"]),
        (["web", "sidecar", "log"], ["web", "sidecar", "log"]),
    ] {
        let order: Vec<Value> = order.iter().map(|n| json!({"name": n})).collect();
        let got = ok(
            Kind::Deployment,
            &d,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": order,
                "containers": [sidecar.clone()],
            }}}}),
        );
        assert_eq!(names(containers(&got), "name"), want.map(Value::from));
        let added = containers(&got)
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "sidecar"));
        assert_eq!(added, Some(&sidecar));
    }
}

#[test]
fn ports_merge_by_container_port() {
    let d = deployment();
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"spec": {"template": {"spec": {"containers": [{
            "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
            "name": "web",
            "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "https"}],
        }]}}}}),
    );
    assert_eq!(
        containers(&got)[0]["ports"],
        json!([
            {"containerPort": 80, "protocol": "TCP", "name": "http"},
            {"containerPort": 443, "name": "https"},
        ])
    );
}

#[test]
fn null_removes_labels() {
    let d = deployment();
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"metadata": {"labels": {"tier": null}}}),
    );
    assert_eq!(got["metadata"]["labels"], json!({"app": "web"}));
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"metadata": {"labels": {"tier": null, "app": null, "absent": null}}}),
    );
    assert_eq!(got["metadata"]["labels"], json!({}));
    let got = ok(Kind::Deployment, &d, json!({"metadata": {"labels": null}}));
    assert!(got["metadata"].get("labels").is_none());
}

#[test]
fn kubectl_set_image_changes_one_container_and_keeps_the_order() {
    let d = deployment();
    for name in ["web", "log"] {
        let got = ok(
            Kind::Deployment,
            &d,
            json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.27", "name": name}]}}}}),
        );
        assert_eq!(
            names(containers(&got), "name"),
            [json!("web"), json!("log")]
        );
        let mut want = d.clone();
        let i = usize::from(name == "log");
        want["spec"]["template"]["spec"]["containers"][i]["image"] = json!("nginx:1.27");
        assert_eq!(got, want);
    }
}

#[test]
fn kubectl_rollout_restart_adds_the_template_annotation() {
    let d = deployment();
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-05-01T10:00:00Z"
    }}}}});
    let got = ok(Kind::Deployment, &d, patch.clone());
    let mut want = d.clone();
    want["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/restartedAt": "2026-05-01T10:00:00Z"});
    assert_eq!(got, want);
    // Again: the annotation changes.
    let again = ok(
        Kind::Deployment,
        &got,
        json!({"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2026-05-02T10:00:00Z"
        }}}}}),
    );
    assert_eq!(
        again["spec"]["template"]["metadata"]["annotations"],
        json!({"kubectl.kubernetes.io/restartedAt": "2026-05-02T10:00:00Z"})
    );
}

#[test]
fn node_cordon_and_uncordon() {
    let node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {"podCIDRs": ["10.0.0.0/24"]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    });
    let cordoned = ok(Kind::Node, &node, json!({"spec": {"unschedulable": true}}));
    let mut want = node.clone();
    want["spec"]["unschedulable"] = json!(true);
    assert_eq!(cordoned, want);
    let uncordoned = ok(
        Kind::Node,
        &cordoned,
        json!({"spec": {"unschedulable": null}}),
    );
    assert_eq!(uncordoned, node);
}

#[test]
fn strategy_change_with_retain_keys_clears_the_rolling_update() {
    let d = deployment();
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
    );
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
    // $retainKeys alone clears, even without the null.
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
    // And back.
    let back = ok(
        Kind::Deployment,
        &got,
        json!({"spec": {"strategy": {
            "$retainKeys": ["rollingUpdate", "type"],
            "rollingUpdate": {"maxSurge": 1},
            "type": "RollingUpdate",
        }}}),
    );
    assert_eq!(
        back["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    );
}

#[test]
fn retain_keys_must_list_what_the_patch_sets() {
    let e = fails(
        Kind::Deployment,
        &deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}}),
    );
    assert_eq!(
        e.to_string(),
        "spec.strategy: \"rollingUpdate\" is set by the patch but not listed in $retainKeys"
    );
    let e = fails(
        Kind::Deployment,
        &deployment(),
        json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
    );
    assert!(matches!(e, SmpError::BadDirective { .. }), "{e}");
}

#[test]
fn a_new_key_keeps_no_directives() {
    let mut d = deployment();
    if let Some(spec) = d["spec"].as_object_mut() {
        spec.remove("strategy");
    }
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
    );
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "log"}, {"name": "new"}],
            "containers": [{
                "name": "new", "image": "x", "workingDir": null,
                "$setElementOrder/env": [{"name": "C"}],
                "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "D"}],
                "resources": {"$patch": "replace", "limits": {"cpu": "1"}},
            }],
        }}}}),
    );
    assert_eq!(
        containers(&got)[2],
        json!({"name": "new", "image": "x", "env": [{"name": "C", "value": "3"}],
               "resources": {"limits": {"cpu": "1"}}})
    );
}

#[test]
fn pod_volumes_merge_by_name_and_retain_keys() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "x"}],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "old"}},
            ],
        },
    });
    let got = ok(
        Kind::Pod,
        &pod,
        json!({"spec": {
            "$setElementOrder/volumes": [{"name": "data"}, {"name": "conf"}],
            "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}, "name": "data"}],
        }}),
    );
    assert_eq!(
        got["spec"]["volumes"],
        json!([
            {"name": "data", "configMap": {"name": "cm"}},
            {"name": "conf", "configMap": {"name": "old"}},
        ])
    );
}

#[test]
fn patch_replace_in_a_list_replaces_it() {
    let got = ok(
        Kind::Deployment,
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"},
            {"name": "only", "image": "x", "env": [{"$patch": "delete", "name": "Z"}]},
        ]}}}}),
    );
    assert_eq!(
        containers(&got),
        &json!([{"name": "only", "image": "x", "env": []}])
    );
}

#[test]
fn patch_replace_and_delete_on_maps() {
    let d = deployment();
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}}),
    );
    assert_eq!(got["metadata"]["labels"], json!({"new": "1"}));
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"spec": {"strategy": {"$patch": "delete"}}}),
    );
    assert_eq!(got["spec"]["strategy"], json!({}));
    let got = ok(
        Kind::Deployment,
        &d,
        json!({"$patch": "replace", "kind": "Deployment"}),
    );
    assert_eq!(got, json!({"kind": "Deployment"}));
}

#[test]
fn finalizers_are_a_union_with_deletions_and_order() {
    let d = json!({"metadata": {"name": "ns", "finalizers": ["a", "b"]}});
    let got = ok(
        Kind::Namespace,
        &d,
        json!({"metadata": {
            "$setElementOrder/finalizers": ["b", "c"],
            "$deleteFromPrimitiveList/finalizers": ["a"],
            "finalizers": ["c"],
        }}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["b", "c"]));
    let got = ok(
        Kind::Namespace,
        &d,
        json!({"metadata": {"finalizers": ["b", "x"]}}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "x"]));
    let got = ok(
        Kind::Namespace,
        &d,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["a"]));
    // Not there: nothing to delete from, nothing added.
    let got = ok(
        Kind::Node,
        &json!({"spec": {}}),
        json!({"spec": {"$deleteFromPrimitiveList/podCIDRs": ["10.0.0.0/24"]}}),
    );
    assert_eq!(got, json!({"spec": {}}));
}

#[test]
fn delete_from_primitive_list_works_on_a_list_replaced_otherwise() {
    let got = ok(
        Kind::Deployment,
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "$deleteFromPrimitiveList/args": ["--x"]}
        ]}}}}),
    );
    assert_eq!(containers(&got)[0]["args"], json!(["--a"]));
}

#[test]
fn a_list_without_merge_strategy_is_replaced() {
    let got = ok(
        Kind::Deployment,
        &deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["--b"]}]}}}}),
    );
    assert_eq!(containers(&got)[0]["args"], json!(["--b"]));
}

/// Orders from apimachinery's own test cases.
#[test]
fn merged_lists_are_ordered_as_the_api_server_orders_them() {
    let pod = |names: &[&str]| {
        let list: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
        json!({"spec": {"containers": list}})
    };
    let order = |got: &Value| names(&got["spec"]["containers"], "name");
    let want = |names: &[&str]| names.iter().map(|n| json!(n)).collect::<Vec<_>>();
    // The patch's order, the original's other elements where they were.
    let got = ok(
        Kind::Pod,
        &pod(&["1", "2", "3"]),
        json!({"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}),
    );
    assert_eq!(order(&got), want(&["2", "3", "1"]));
    let got = ok(
        Kind::Pod,
        &pod(&["1", "2", "3"]),
        json!({"spec": {"containers": [{"name": "3"}, {"name": "1"}, {"name": "2"}]}}),
    );
    assert_eq!(order(&got), want(&["3", "1", "2"]));
    // A new element without $setElementOrder goes first.
    let got = ok(
        Kind::Pod,
        &pod(&["a", "b"]),
        json!({"spec": {"containers": [{"name": "c"}]}}),
    );
    assert_eq!(order(&got), want(&["c", "a", "b"]));
    // $setElementOrder with elements only the server has.
    let got = ok(
        Kind::Pod,
        &pod(&["1", "2", "9", "3", "4"]),
        json!({"spec": {"$setElementOrder/containers": [{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]}}),
    );
    assert_eq!(order(&got), want(&["2", "1", "9", "4", "3"]));
    let got = ok(
        Kind::Pod,
        &pod(&["1", "2", "7", "9", "8", "3", "4"]),
        json!({"spec": {"$setElementOrder/containers": [{"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]}}),
    );
    assert_eq!(order(&got), want(&["2", "1", "7", "9", "8", "4", "3"]));
    let got = ok(
        Kind::Pod,
        &pod(&["1", "3", "4", "2", "9"]),
        json!({"spec": {"$setElementOrder/containers": [{"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}]}}),
    );
    assert_eq!(order(&got), want(&["4", "2", "3", "1", "9"]));
    // An element $setElementOrder names that is in neither list.
    let got = ok(
        Kind::Pod,
        &pod(&["1", "3"]),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
            "containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}],
        }}),
    );
    assert_eq!(order(&got), want(&["3", "1"]));
    // Primitives alike.
    let ns = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
    let got = ok(
        Kind::Namespace,
        &ns,
        json!({"metadata": {"finalizers": ["c", "a"]}}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["b", "c", "a"]));
    let got = ok(
        Kind::Namespace,
        &ns,
        json!({"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"]}}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["c", "a", "b"]));
}

#[test]
fn a_delete_removes_every_element_with_the_key() {
    let pod = json!({"spec": {"containers": [
        {"name": "1"}, {"name": "1"}, {"name": "2", "image": "a"}, {"name": "3"}, {"name": "3"}
    ]}});
    let got = ok(
        Kind::Pod,
        &pod,
        json!({"spec": {"containers": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]}}),
    );
    assert_eq!(
        got["spec"]["containers"],
        json!([{"name": "2", "image": "a"}])
    );
}

#[test]
fn errors_name_the_path() {
    let d = deployment();
    let e = fails(
        Kind::Deployment,
        &d,
        json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
    );
    assert_eq!(
        e.to_string(),
        "spec.template.spec.containers[0]: the element does not contain the merge key \"name\""
    );
    let e = fails(
        Kind::Deployment,
        &d,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "$foo": 1}]}}}}),
    );
    assert_eq!(
        e.to_string(),
        "spec.template.spec.containers[0]: unknown patch directive $foo"
    );
    let e = fails(Kind::Deployment, &d, json!({"spec": {"$patch": "merge"}}));
    assert_eq!(
        e.to_string(),
        "spec: unknown patch directive $patch: \"merge\""
    );
    let e = fails(Kind::Deployment, &d, json!({"$patch": 1}));
    assert_eq!(e.to_string(), "(root): unknown patch directive $patch: 1");
    let e = fails(
        Kind::Deployment,
        &d,
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}}),
    );
    assert!(
        matches!(e, SmpError::BadDirective { ref path, .. } if path == "spec.template.spec.containers[0]"),
        "{e}"
    );
    let e = fails(
        Kind::Deployment,
        &d,
        json!({"spec": {"$setElementOrderx": []}}),
    );
    assert!(matches!(e, SmpError::UnknownDirective { .. }), "{e}");
    let e = fails(
        Kind::Deployment,
        &d,
        json!({"spec": {"$setElementOrder/replicas": []}}),
    );
    assert!(matches!(e, SmpError::NotMergeList { .. }), "{e}");
    let e = fails(Kind::Deployment, &d, json!([]));
    assert_eq!(e.to_string(), "(root): the patch is not a JSON object");
    let e = fails(Kind::Deployment, &json!("x"), json!({}));
    assert!(matches!(e, SmpError::NotAnObject { .. }), "{e}");
}

#[test]
fn set_element_order_must_agree_with_the_patch_list() {
    let pod = json!({"spec": {"containers": [{"name": "1"}, {"name": "3"}, {"name": "2"}]}});
    let e = fails(
        Kind::Pod,
        &pod,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
            "containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}],
        }}),
    );
    assert!(matches!(e, SmpError::OrderMismatch { .. }), "{e}");
    let ns = json!({"metadata": {"finalizers": ["1", "3", "2"]}});
    let e = fails(
        Kind::Namespace,
        &ns,
        json!({"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"], "finalizers": ["3", "1"]}}),
    );
    assert!(matches!(e, SmpError::OrderMismatch { .. }), "{e}");
}

#[test]
fn mixed_and_keyless_lists_are_refused() {
    let ns = json!({"metadata": {"finalizers": ["a"]}});
    let e = fails(
        Kind::Namespace,
        &ns,
        json!({"metadata": {"finalizers": [1]}}),
    );
    assert!(matches!(e, SmpError::MixedList { .. }), "{e}");
    let e = fails(
        Kind::Namespace,
        &ns,
        json!({"metadata": {"finalizers": [["a"]]}}),
    );
    assert!(matches!(e, SmpError::ListOfLists { .. }), "{e}");
    let ns = json!({"metadata": {"finalizers": [{"a": 1}]}});
    let e = fails(
        Kind::Namespace,
        &ns,
        json!({"metadata": {"finalizers": [{"b": 1}]}}),
    );
    assert!(matches!(e, SmpError::NoMergeKey { .. }), "{e}");
    let e = fails(
        Kind::Deployment,
        &deployment(),
        json!({"spec": {"template": {"spec": {"$deleteFromPrimitiveList/containers": [{"name": "web"}]}}}}),
    );
    assert!(matches!(e, SmpError::BadDirective { .. }), "{e}");
}

#[test]
fn other_kinds_merge_maps_and_replace_lists() {
    let o = json!({"spec": {"containers": [{"name": "a", "image": "x"}], "m": {"k": 1, "j": 2}}});
    let got = ok(
        Kind::Other,
        &o,
        json!({"spec": {"containers": [{"name": "a"}], "m": {"j": null, "l": 3}}}),
    );
    assert_eq!(
        got,
        json!({"spec": {"containers": [{"name": "a"}], "m": {"k": 1, "l": 3}}})
    );
    let e = fails(
        Kind::Other,
        &o,
        json!({"spec": {"$setElementOrder/containers": [{"name": "a"}]}}),
    );
    assert!(matches!(e, SmpError::NotMergeList { .. }), "{e}");
}

#[test]
fn other_workload_kinds_find_their_pod_templates() {
    let template = json!({"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}]}});
    let patch = json!({"containers": [{"name": "a", "env": [{"name": "F", "value": "2"}]}]});
    let want = json!([{"name": "a", "image": "x", "env": [{"name": "F", "value": "2"}, {"name": "E", "value": "1"}]}]);
    for (kind, original, patch, at) in [
        (
            Kind::Pod,
            template.clone(),
            json!({"spec": patch}),
            "/spec/containers",
        ),
        (
            Kind::DaemonSet,
            json!({"spec": {"template": template}}),
            json!({"spec": {"template": {"spec": patch}}}),
            "/spec/template/spec/containers",
        ),
        (
            Kind::ReplicaSet,
            json!({"spec": {"template": template}}),
            json!({"spec": {"template": {"spec": patch}}}),
            "/spec/template/spec/containers",
        ),
        (
            Kind::Job,
            json!({"spec": {"template": template}}),
            json!({"spec": {"template": {"spec": patch}}}),
            "/spec/template/spec/containers",
        ),
        (
            Kind::CronJob,
            json!({"spec": {"jobTemplate": {"spec": {"template": template}}}}),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": patch}}}}}),
            "/spec/jobTemplate/spec/template/spec/containers",
        ),
    ] {
        let got = ok(kind, &original, patch);
        assert_eq!(got.pointer(at), Some(&want), "{kind:?}");
    }
    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let got = ok(
        Kind::Service,
        &svc,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    );
    assert_eq!(
        got["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
    let cm = json!({"data": {"a": "1", "b": "2"}, "metadata": {"name": "c"}});
    let got = ok(Kind::ConfigMap, &cm, json!({"data": {"a": null, "c": "3"}}));
    assert_eq!(got["data"], json!({"b": "2", "c": "3"}));
    let secret = json!({"data": {"a": "MQ=="}, "type": "Opaque"});
    let got = ok(Kind::Secret, &secret, json!({"stringData": {"b": "2"}}));
    assert_eq!(
        got,
        json!({"data": {"a": "MQ=="}, "type": "Opaque", "stringData": {"b": "2"}})
    );
}

/// The field at `path` from `kind`, stepping into list elements.
fn walk(kind: Kind, path: &[&str]) -> Field {
    let mut schema = root_schema(kind);
    let mut f = Field::default();
    for name in path {
        f = field(schema, name);
        schema = items(f.schema).or(f.schema);
    }
    f
}

#[test]
fn every_kind_has_its_patch_strategies() {
    for kind in [
        Kind::Pod,
        Kind::Deployment,
        Kind::DaemonSet,
        Kind::ReplicaSet,
        Kind::Job,
        Kind::CronJob,
        Kind::Node,
        Kind::Namespace,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::Service,
    ] {
        assert!(root_schema(kind).is_some(), "{kind:?}");
        let f = walk(kind, &["metadata", "finalizers"]);
        assert!(f.merge && f.key.is_none(), "{kind:?}");
        let f = walk(kind, &["metadata", "ownerReferences"]);
        assert_eq!((f.merge, f.key), (true, Some("uid")), "{kind:?}");
    }
    assert!(root_schema(Kind::Other).is_none());
    for (kind, path, key) in [
        (Kind::Pod, &["spec", "containers"][..], "name"),
        (Kind::Pod, &["spec", "containers", "env"][..], "name"),
        (
            Kind::Pod,
            &["spec", "initContainers", "volumeMounts"][..],
            "mountPath",
        ),
        (Kind::Pod, &["spec", "volumes"][..], "name"),
        (
            Kind::Deployment,
            &["spec", "template", "spec", "containers", "ports"][..],
            "containerPort",
        ),
        (
            Kind::CronJob,
            &[
                "spec",
                "jobTemplate",
                "spec",
                "template",
                "spec",
                "containers",
            ][..],
            "name",
        ),
        (Kind::Service, &["spec", "ports"][..], "port"),
        (Kind::Node, &["status", "addresses"][..], "type"),
    ] {
        let f = walk(kind, path);
        assert_eq!((f.merge, f.key), (true, Some(key)), "{kind:?} {path:?}");
    }
    let f = walk(Kind::Deployment, &["spec", "strategy"]);
    assert!(!f.merge && f.schema.is_some());
    let f = walk(Kind::Node, &["spec", "podCIDRs"]);
    assert!(f.merge && f.key.is_none());
    let f = walk(Kind::Pod, &["spec", "containers", "args"]);
    assert!(!f.merge && f.schema.is_some());
    assert_eq!(Kind::from_name("CronJob"), Kind::CronJob);
    assert_eq!(Kind::from_name("Widget"), Kind::Other);
}

#[test]
fn deep_patches_are_refused() {
    let mut patch = json!(1);
    for _ in 0..200 {
        patch = json!({"a": patch});
    }
    let e = fails(Kind::Other, &json!({}), patch);
    assert!(matches!(e, SmpError::TooDeep { .. }), "{e}");
}

// ---- properties ----------------------------------------------------------------------

const KINDS: [Kind; 12] = [
    Kind::Pod,
    Kind::Deployment,
    Kind::DaemonSet,
    Kind::ReplicaSet,
    Kind::Job,
    Kind::CronJob,
    Kind::Node,
    Kind::Namespace,
    Kind::ConfigMap,
    Kind::Secret,
    Kind::Service,
    Kind::Other,
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "spec", "template", "containers", "name", "env", "metadata", "labels",
            "finalizers", "ports", "containerPort", "image", "strategy", "type", "volumes",
            "args", "$patch", "$retainKeys", "$setElementOrder/containers",
            "$setElementOrder/env", "$setElementOrder/finalizers",
            "$deleteFromPrimitiveList/finalizers", "$deleteFromPrimitiveList/args",
        ])
        .prop_map(String::from),
        1 => "[a-c$]{1,3}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-2i64..100).prop_map(Value::from),
        prop::sample::select(vec![
            "replace", "delete", "merge", "web", "log", "A", "B", "name", "type", "image",
        ])
        .prop_map(Value::from),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn any_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), any_json()), 0..5)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

/// JSON without `$` keys and without null or nested values in lists.
fn plain_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..5).prop_map(Value::from),
        "[xy]".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(
                prop_oneof![
                    (0i64..5).prop_map(Value::from),
                    "[xy]".prop_map(Value::from)
                ],
                0..4
            )
            .prop_map(Value::Array),
            prop::collection::btree_map("[a-c]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// RFC 7386, the reference for patches without directives or merged lists.
fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(t) => t.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

fn has_dollar_key(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_dollar_key(v)),
        Value::Array(a) => a.iter().any(has_dollar_key),
        _ => false,
    }
}

proptest! {
    #[test]
    fn never_panics_on_a_deployment(patch in any_object()) {
        let d = deployment();
        for kind in KINDS {
            if let Ok(v) = apply(kind, &d, &patch) {
                prop_assert!(!has_dollar_key(&v), "{patch} left a directive: {v}");
            }
        }
    }

    #[test]
    fn never_panics_on_anything(original in any_json(), patch in any_json()) {
        for kind in KINDS {
            let got = apply(kind, &original, &patch);
            if let Ok(v) = got {
                prop_assert!(v.is_object());
                if !has_dollar_key(&original) {
                    prop_assert!(!has_dollar_key(&v), "{patch} left a directive: {v}");
                }
            }
        }
    }

    #[test]
    fn an_empty_patch_changes_nothing(original in any_object()) {
        for kind in KINDS {
            prop_assert_eq!(apply(kind, &original, &json!({})), Ok(original.clone()));
        }
    }

    #[test]
    fn without_directives_or_schema_it_is_a_json_merge_patch(
        original in prop::collection::btree_map("[a-c]", plain_json(), 0..4),
        patch in prop::collection::btree_map("[a-c]", plain_json(), 0..4),
    ) {
        let original = Value::Object(original.into_iter().collect());
        let patch = Value::Object(patch.into_iter().collect());
        prop_assert_eq!(
            apply(Kind::Other, &original, &patch),
            Ok(merge_patch(&original, &patch))
        );
    }
}
