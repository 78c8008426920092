//! Bodies the real kubectl 1.32 sent (`tests/fixtures/proto/<command>.pb`, recorded against a
//! stub server), and bodies built here with prost the way Go writes them (every non-pointer
//! field present, zero or not).

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as pbapps;
use k8s_pb::api::batch::v1 as pbbatch;
use k8s_pb::api::core::v1 as pbcore;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pbmeta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/proto/",
            $name,
            ".pb"
        ))
    };
}

/// Every fixture, with the JSON it decodes to: the same object kubectl prints for the command
/// with `--dry-run=client -o json`, less `creationTimestamp: null` and the empty status.
const FIXTURES: &[(&str, &[u8], &str)] = &[
    (
        "create secret generic s --from-literal=a=b",
        fixture!("secret-generic"),
        r#"{"apiVersion":"v1","data":{"a":"Yg=="},"kind":"Secret","metadata":{"name":"s"}}"#,
    ),
    (
        "create secret docker-registry r --docker-server=reg.example --docker-username=u --docker-password=p --docker-email=e@x",
        fixture!("secret-docker-registry"),
        r#"{"apiVersion":"v1","data":{".dockerconfigjson":"eyJhdXRocyI6eyJyZWcuZXhhbXBsZSI6eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAiLCJlbWFpbCI6ImVAeCIsImF1dGgiOiJkVHB3In19fQ=="},"kind":"Secret","metadata":{"name":"r"},"type":"kubernetes.io/dockerconfigjson"}"#,
    ),
    (
        "create configmap c --from-literal=k=v --from-file=text.txt --from-file=bin.dat",
        fixture!("configmap"),
        r#"{"apiVersion":"v1","binaryData":{"bin.dat":"AAH//g=="},"data":{"k":"v","text.txt":"hello\n"},"kind":"ConfigMap","metadata":{"name":"c"}}"#,
    ),
    (
        "create namespace ns1",
        fixture!("namespace"),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"ns1"},"spec":{}}"#,
    ),
    (
        "create deployment web --image=nginx --replicas=2",
        fixture!("deployment"),
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"labels":{"app":"web"},"name":"web"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"strategy":{},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"nginx","name":"nginx","resources":{}}]}}}}"#,
    ),
    (
        "create deployment web2 --image=nginx --image=redis:7 --port=80 -n team",
        fixture!("deployment-port"),
        r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"labels":{"app":"web2"},"name":"web2","namespace":"team"},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"web2"}},"strategy":{},"template":{"metadata":{"labels":{"app":"web2"}},"spec":{"containers":[{"image":"nginx","name":"nginx","ports":[{"containerPort":80}],"resources":{}},{"image":"redis:7","name":"redis","resources":{}}]}}}}"#,
    ),
    (
        "create job j --image=busybox -- echo hi",
        fixture!("job"),
        r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"metadata":{},"spec":{"containers":[{"command":["echo","hi"],"image":"busybox","name":"j","resources":{}}],"restartPolicy":"Never"}}}}"#,
    ),
    (
        "create cronjob cj --image=busybox --schedule='*/5 * * * *' --restart=OnFailure -- sh -c date",
        fixture!("cronjob"),
        r#"{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"cj"},"spec":{"jobTemplate":{"metadata":{"name":"cj"},"spec":{"template":{"metadata":{},"spec":{"containers":[{"command":["sh","-c","date"],"image":"busybox","name":"cj","resources":{}}],"restartPolicy":"OnFailure"}}}},"schedule":"*/5 * * * *"}}"#,
    ),
    (
        "create job manual --from=cronjob/cj (a CronJob with env, probe, limits, volumes)",
        fixture!("job-from-cronjob"),
        r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"annotations":{"cronjob.kubernetes.io/instantiate":"manual"},"labels":{"l":"v"},"name":"manual","ownerReferences":[{"apiVersion":"batch/v1","controller":true,"kind":"CronJob","name":"cj","uid":"0b9c1e2a-1111-2222-3333-444455556666"}]},"spec":{"backoffLimit":3,"template":{"metadata":{"annotations":{"a":"b"}},"spec":{"containers":[{"command":["sh","-c","date"],"env":[{"name":"A","value":"1"},{"name":"N","valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}],"image":"busybox","livenessProbe":{"exec":{"command":["true"]},"periodSeconds":7},"name":"c","resources":{"limits":{"cpu":"500m","memory":"64Mi"}},"volumeMounts":[{"mountPath":"/d","name":"d"}]}],"restartPolicy":"OnFailure","terminationGracePeriodSeconds":5,"volumes":[{"emptyDir":{},"name":"d"}]}}}}"#,
    ),
    (
        "create service clusterip my --tcp=80:8080",
        fixture!("service-clusterip"),
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"labels":{"app":"my"},"name":"my"},"spec":{"ports":[{"name":"80-8080","port":80,"protocol":"TCP","targetPort":8080}],"selector":{"app":"my"},"type":"ClusterIP"}}"#,
    ),
    (
        "create service nodeport np --tcp=80:8080 --node-port=30080",
        fixture!("service-nodeport"),
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"labels":{"app":"np"},"name":"np"},"spec":{"ports":[{"name":"80-8080","nodePort":30080,"port":80,"protocol":"TCP","targetPort":8080}],"selector":{"app":"np"},"type":"NodePort"}}"#,
    ),
    (
        "create service loadbalancer lb --tcp=443:8443 --tcp=80",
        fixture!("service-loadbalancer"),
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"labels":{"app":"lb"},"name":"lb"},"spec":{"ports":[{"name":"443-8443","port":443,"protocol":"TCP","targetPort":8443},{"name":"80","port":80,"protocol":"TCP","targetPort":80}],"selector":{"app":"lb"},"type":"LoadBalancer"}}"#,
    ),
    (
        "create service externalname ex --external-name=db.example.com",
        fixture!("service-externalname"),
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"labels":{"app":"ex"},"name":"ex"},"spec":{"externalName":"db.example.com","selector":{"app":"ex"},"type":"ExternalName"}}"#,
    ),
    (
        "create service clusterip hl --clusterip=None",
        fixture!("service-headless"),
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"labels":{"app":"hl"},"name":"hl"},"spec":{"clusterIP":"None","selector":{"app":"hl"},"type":"ClusterIP"}}"#,
    ),
    (
        "debug node/n1 --image=busybox --profile=general",
        fixture!("debug-node"),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"node-debugger-n1-9b89c"},"spec":{"containers":[{"image":"busybox","name":"debugger","resources":{},"terminationMessagePolicy":"File","volumeMounts":[{"mountPath":"/host","name":"host-root"}]}],"hostIPC":true,"hostNetwork":true,"hostPID":true,"nodeName":"n1","restartPolicy":"Never","tolerations":[{"operator":"Exists"}],"volumes":[{"hostPath":{"path":"/"},"name":"host-root"}]}}"#,
    ),
    (
        "debug p --copy-to=p2 --image=busybox --share-processes",
        fixture!("debug-copy"),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p2","namespace":"default"},"spec":{"containers":[{"image":"nginx","name":"p","ports":[{"containerPort":80}],"resources":{"requests":{"cpu":"100m"}}},{"image":"busybox","name":"debugger-ffx2s","resources":{},"terminationMessagePolicy":"File"}],"restartPolicy":"Always","shareProcessNamespace":true}}"#,
    ),
    (
        "debug p --copy-to=p3 --set-image=*=busybox",
        fixture!("debug-copy-set"),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"run":"p"},"name":"p3","namespace":"default"},"spec":{"containers":[{"image":"busybox","name":"p","ports":[{"containerPort":80}],"resources":{"requests":{"cpu":"100m"}}}],"restartPolicy":"Always"}}"#,
    ),
    (
        "drain n1 --force --grace-period=10 (a pod's DELETE body, without eviction)",
        fixture!("drain-delete"),
        r#"{"apiVersion":"v1","gracePeriodSeconds":10,"kind":"DeleteOptions"}"#,
    ),
];

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn ok(body: &[u8]) -> Value {
    let v = decode(body).unwrap_or_else(|e| panic!("does not decode: {e}"));
    reparses(&v).unwrap_or_else(|e| panic!("{v} does not read back as its kind: {e}"));
    v
}

/// Whether the JSON reads back as the k8s-openapi type of its kind, as a JSON body would.
fn reparses(v: &Value) -> Result<(), String> {
    fn read<T: serde::de::DeserializeOwned>(v: &Value) -> Result<(), String> {
        serde_json::from_value::<T>(v.clone())
            .map(drop)
            .map_err(|e| e.to_string())
    }
    match v["kind"].as_str().unwrap_or("") {
        "Secret" => read::<core::Secret>(v),
        "ConfigMap" => read::<core::ConfigMap>(v),
        "Namespace" => read::<core::Namespace>(v),
        "Service" => read::<core::Service>(v),
        "Pod" => read::<core::Pod>(v),
        "Node" => read::<core::Node>(v),
        "Deployment" => read::<apps::Deployment>(v),
        "DaemonSet" => read::<apps::DaemonSet>(v),
        "Job" => read::<batch::Job>(v),
        "CronJob" => read::<batch::CronJob>(v),
        "Eviction" => read::<policy::Eviction>(v),
        "DeleteOptions" => read::<metav1::DeleteOptions>(v),
        other => Err(format!("kind {other:?}")),
    }
}

fn err(body: &[u8]) -> ProtoError {
    match decode(body) {
        Ok(v) => panic!("decodes, to {v}"),
        Err(e) => e,
    }
}

/// ObjectMeta as Go writes it: every string present, empty ones too, and a zero time.
fn go_meta(name: &str, labels: &[(&str, &str)]) -> pbmeta::ObjectMeta {
    pbmeta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(pbmeta::Time::default()),
        labels: map(labels),
        ..Default::default()
    }
}

fn int(v: i32) -> IntOrString {
    IntOrString {
        r#type: Some(0),
        int_val: Some(v),
        str_val: s(""),
    }
}

fn string(v: &str) -> IntOrString {
    IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(v),
    }
}

fn qty(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

#[test]
fn fixtures_decode_as_kubectl_writes_them_in_json() {
    for (command, body, want) in FIXTURES {
        let want: Value = serde_json::from_str(want).unwrap_or_else(|e| panic!("{command}: {e}"));
        match decode(body) {
            Ok(got) => {
                assert_eq!(got, want, "kubectl {command}");
                reparses(&got).unwrap_or_else(|e| panic!("kubectl {command}: {e}"));
            }
            Err(e) => panic!("kubectl {command}: {e}"),
        }
    }
}

#[test]
fn the_observed_secret() {
    // As seen on the wire: name "s" and the other ObjectMeta strings empty, data a=b, type "".
    let secret = pbcore::Secret {
        metadata: Some(go_meta("s", &[])),
        data: [("a".to_owned(), b"b".to_vec())].into_iter().collect(),
        r#type: s(""),
        ..Default::default()
    };
    let body = envelope("v1", "Secret", secret.encode_to_vec());
    assert_eq!(
        ok(&body),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "Yg=="}})
    );
    assert_eq!(ok(fixture!("secret-generic")), ok(&body));
}

#[test]
fn secret_string_data_immutable_and_type() {
    let secret = pbcore::Secret {
        metadata: Some(pbmeta::ObjectMeta {
            generate_name: s("tok-"),
            namespace: s("team"),
            annotations: map(&[("a", "1")]),
            finalizers: vec!["x/y".to_owned()],
            ..go_meta("", &[("app", "web")])
        }),
        immutable: Some(false),
        data: [("bin".to_owned(), vec![0, 255])].into_iter().collect(),
        string_data: map(&[("k", "v")]),
        r#type: s("kubernetes.io/tls"),
    };
    assert_eq!(
        ok(&envelope("v1", "Secret", secret.encode_to_vec())),
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"generateName": "tok-", "namespace": "team", "labels": {"app": "web"},
                         "annotations": {"a": "1"}, "finalizers": ["x/y"]},
            "immutable": false,
            "data": {"bin": "AP8="},
            "stringData": {"k": "v"},
            "type": "kubernetes.io/tls",
        })
    );
}

#[test]
fn configmap_with_data_and_binary_data() {
    let cm = pbcore::ConfigMap {
        metadata: Some(go_meta("c", &[])),
        immutable: Some(true),
        data: map(&[("a.conf", "x=1\n"), ("empty", "")]),
        binary_data: [
            ("blob".to_owned(), vec![1, 2, 3]),
            ("none".to_owned(), vec![]),
        ]
        .into_iter()
        .collect(),
    };
    assert_eq!(
        ok(&envelope("v1", "ConfigMap", cm.encode_to_vec())),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "immutable": true,
            "data": {"a.conf": "x=1\n", "empty": ""},
            "binaryData": {"blob": "AQID", "none": ""},
        })
    );
}

#[test]
fn namespace_with_finalizers_and_owner() {
    let ns = pbcore::Namespace {
        metadata: Some(pbmeta::ObjectMeta {
            owner_references: vec![pbmeta::OwnerReference {
                api_version: s("v1"),
                kind: s("Thing"),
                name: s("t"),
                uid: s("u-1"),
                controller: Some(false),
                block_owner_deletion: None,
            }],
            creation_timestamp: Some(pbmeta::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(0),
            }),
            ..go_meta("ns1", &[])
        }),
        spec: Some(pbcore::NamespaceSpec {
            finalizers: vec!["kubernetes".to_owned()],
        }),
        status: Some(pbcore::NamespaceStatus {
            phase: s("Active"),
            ..Default::default()
        }),
    };
    assert_eq!(
        ok(&envelope("v1", "Namespace", ns.encode_to_vec())),
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "ns1", "creationTimestamp": "2023-11-14T22:13:20Z",
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Thing", "name": "t",
                                              "uid": "u-1", "controller": false}]},
            "spec": {"finalizers": ["kubernetes"]},
        })
    );
}

/// A container with what kubectl users write in manifests, as Go writes it: every
/// non-pointer field present, zeros too.
fn rich_container() -> pbcore::Container {
    let http_probe = pbcore::Probe {
        handler: Some(pbcore::ProbeHandler {
            http_get: Some(pbcore::HttpGetAction {
                path: s("/healthz"),
                port: Some(string("http")),
                host: s(""),
                scheme: s("HTTP"),
                http_headers: vec![pbcore::HttpHeader {
                    name: s("X-A"),
                    value: s("1"),
                }],
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(5),
        timeout_seconds: Some(0),
        period_seconds: Some(10),
        success_threshold: Some(0),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    };
    let tcp_probe = pbcore::Probe {
        handler: Some(pbcore::ProbeHandler {
            tcp_socket: Some(pbcore::TcpSocketAction {
                port: Some(int(8080)),
                host: s(""),
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(0),
        timeout_seconds: Some(2),
        period_seconds: Some(0),
        success_threshold: Some(0),
        failure_threshold: Some(0),
        termination_grace_period_seconds: Some(0),
    };
    let grpc_probe = pbcore::Probe {
        handler: Some(pbcore::ProbeHandler {
            grpc: Some(pbcore::GrpcAction {
                port: Some(9090),
                service: s("health"),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let local = |n: &str| Some(pbcore::LocalObjectReference { name: s(n) });
    pbcore::Container {
        name: s("app"),
        image: s("registry.example/app:1"),
        command: vec!["/app".to_owned()],
        args: vec!["--port".to_owned(), "8080".to_owned()],
        working_dir: s("/srv"),
        ports: vec![
            pbcore::ContainerPort {
                name: s("http"),
                host_port: Some(0),
                container_port: Some(8080),
                protocol: s("TCP"),
                host_ip: s(""),
            },
            pbcore::ContainerPort {
                name: s(""),
                host_port: Some(5353),
                container_port: Some(53),
                protocol: s("UDP"),
                host_ip: s("127.0.0.1"),
            },
        ],
        env_from: vec![
            pbcore::EnvFromSource {
                prefix: s("CM_"),
                config_map_ref: Some(pbcore::ConfigMapEnvSource {
                    local_object_reference: local("cm"),
                    optional: None,
                }),
                secret_ref: None,
            },
            pbcore::EnvFromSource {
                prefix: s(""),
                config_map_ref: None,
                secret_ref: Some(pbcore::SecretEnvSource {
                    local_object_reference: local("sec"),
                    optional: Some(true),
                }),
            },
        ],
        env: vec![
            pbcore::EnvVar {
                name: s("PLAIN"),
                value: s("v"),
                value_from: None,
            },
            pbcore::EnvVar {
                name: s("EMPTY"),
                value: s(""),
                value_from: None,
            },
            pbcore::EnvVar {
                name: s("FROM_CM"),
                value: s(""),
                value_from: Some(pbcore::EnvVarSource {
                    config_map_key_ref: Some(pbcore::ConfigMapKeySelector {
                        local_object_reference: local("cm"),
                        key: s("k"),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
            pbcore::EnvVar {
                name: s("FROM_SECRET"),
                value: s(""),
                value_from: Some(pbcore::EnvVarSource {
                    secret_key_ref: Some(pbcore::SecretKeySelector {
                        local_object_reference: local("sec"),
                        key: s("password"),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            },
            pbcore::EnvVar {
                name: s("NODE"),
                value: s(""),
                value_from: Some(pbcore::EnvVarSource {
                    field_ref: Some(pbcore::ObjectFieldSelector {
                        api_version: s("v1"),
                        field_path: s("spec.nodeName"),
                    }),
                    ..Default::default()
                }),
            },
            pbcore::EnvVar {
                name: s("MEM"),
                value: s(""),
                value_from: Some(pbcore::EnvVarSource {
                    resource_field_ref: Some(pbcore::ResourceFieldSelector {
                        container_name: s(""),
                        resource: s("limits.memory"),
                        divisor: Some(qty("1Mi")),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(pbcore::ResourceRequirements {
            limits: [
                ("cpu".to_owned(), qty("1")),
                ("memory".to_owned(), qty("128Mi")),
            ]
            .into_iter()
            .collect(),
            requests: [("cpu".to_owned(), qty("250m"))].into_iter().collect(),
            claims: vec![],
        }),
        volume_mounts: vec![
            pbcore::VolumeMount {
                name: s("conf"),
                read_only: Some(true),
                mount_path: s("/etc/app"),
                sub_path: s(""),
                sub_path_expr: s(""),
                ..Default::default()
            },
            pbcore::VolumeMount {
                name: s("data"),
                read_only: Some(false),
                mount_path: s("/data"),
                sub_path: s("x"),
                ..Default::default()
            },
        ],
        liveness_probe: Some(http_probe),
        readiness_probe: Some(tcp_probe),
        startup_probe: Some(grpc_probe),
        lifecycle: Some(pbcore::Lifecycle {
            pre_stop: Some(pbcore::LifecycleHandler {
                sleep: Some(pbcore::SleepAction { seconds: Some(5) }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_path: s("/dev/termination-log"),
        termination_message_policy: s("File"),
        image_pull_policy: s("IfNotPresent"),
        security_context: Some(pbcore::SecurityContext {
            capabilities: Some(pbcore::Capabilities {
                add: vec!["NET_ADMIN".to_owned()],
                drop: vec!["ALL".to_owned()],
            }),
            privileged: Some(false),
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            seccomp_profile: Some(pbcore::SeccompProfile {
                r#type: s("RuntimeDefault"),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        stdin: Some(true),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    }
}

fn rich_container_json() -> Value {
    json!({
        "name": "app",
        "image": "registry.example/app:1",
        "command": ["/app"],
        "args": ["--port", "8080"],
        "workingDir": "/srv",
        "ports": [
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"},
        ],
        "envFrom": [
            {"prefix": "CM_", "configMapRef": {"name": "cm"}},
            {"secretRef": {"name": "sec", "optional": true}},
        ],
        "env": [
            {"name": "PLAIN", "value": "v"},
            {"name": "EMPTY"},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": false}}},
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        ],
        "resources": {"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
        "volumeMounts": [
            {"name": "conf", "readOnly": true, "mountPath": "/etc/app"},
            {"name": "data", "mountPath": "/data", "subPath": "x"},
        ],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP",
                        "httpHeaders": [{"name": "X-A", "value": "1"}]},
            "initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 3,
        },
        "readinessProbe": {"tcpSocket": {"port": 8080}, "timeoutSeconds": 2, "terminationGracePeriodSeconds": 0},
        "startupProbe": {"grpc": {"port": 9090, "service": "health"}},
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "privileged": false, "runAsUser": 0, "runAsNonRoot": false,
            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "stdin": true,
    })
}

fn rich_pod_spec() -> pbcore::PodSpec {
    let local = |n: &str| Some(pbcore::LocalObjectReference { name: s(n) });
    let volume = |name: &str, source: pbcore::VolumeSource| pbcore::Volume {
        name: s(name),
        volume_source: Some(source),
    };
    pbcore::PodSpec {
        volumes: vec![
            volume(
                "conf",
                pbcore::VolumeSource {
                    config_map: Some(pbcore::ConfigMapVolumeSource {
                        local_object_reference: local("cm"),
                        items: vec![pbcore::KeyToPath {
                            key: s("a"),
                            path: s("a.conf"),
                            mode: Some(0o644),
                        }],
                        default_mode: Some(0o420),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ),
            volume(
                "sec",
                pbcore::VolumeSource {
                    secret: Some(pbcore::SecretVolumeSource {
                        secret_name: s("sec"),
                        items: vec![],
                        default_mode: None,
                        optional: Some(false),
                    }),
                    ..Default::default()
                },
            ),
            volume(
                "data",
                pbcore::VolumeSource {
                    persistent_volume_claim: Some(pbcore::PersistentVolumeClaimVolumeSource {
                        claim_name: s("pvc"),
                        read_only: Some(false),
                    }),
                    ..Default::default()
                },
            ),
            volume(
                "host",
                pbcore::VolumeSource {
                    host_path: Some(pbcore::HostPathVolumeSource {
                        path: s("/var/log"),
                        r#type: s("Directory"),
                    }),
                    ..Default::default()
                },
            ),
            volume(
                "scratch",
                pbcore::VolumeSource {
                    empty_dir: Some(pbcore::EmptyDirVolumeSource {
                        medium: s("Memory"),
                        size_limit: Some(qty("64Mi")),
                    }),
                    ..Default::default()
                },
            ),
        ],
        init_containers: vec![pbcore::Container {
            name: s("init"),
            image: s("busybox"),
            command: vec!["true".to_owned()],
            resources: Some(pbcore::ResourceRequirements::default()),
            stdin: Some(false),
            stdin_once: Some(false),
            tty: Some(false),
            ..Default::default()
        }],
        containers: vec![rich_container()],
        restart_policy: s("Always"),
        termination_grace_period_seconds: Some(0),
        active_deadline_seconds: None,
        dns_policy: s("ClusterFirst"),
        node_selector: map(&[("disk", "ssd")]),
        service_account_name: s("runner"),
        service_account: s(""),
        automount_service_account_token: Some(false),
        node_name: s(""),
        host_network: Some(false),
        host_pid: Some(false),
        host_ipc: Some(false),
        security_context: Some(pbcore::PodSecurityContext {
            run_as_user: Some(1000),
            fs_group: Some(2000),
            supplemental_groups: vec![3000],
            ..Default::default()
        }),
        image_pull_secrets: vec![pbcore::LocalObjectReference { name: s("regcred") }],
        hostname: s("h"),
        subdomain: s("sub"),
        affinity: Some(pbcore::Affinity {
            node_affinity: Some(pbcore::NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(pbcore::NodeSelector {
                    node_selector_terms: vec![pbcore::NodeSelectorTerm {
                        match_expressions: vec![pbcore::NodeSelectorRequirement {
                            key: s("zone"),
                            operator: s("In"),
                            values: vec!["a".to_owned()],
                        }],
                        match_fields: vec![],
                    }],
                }),
                preferred_during_scheduling_ignored_during_execution: vec![],
            }),
            ..Default::default()
        }),
        scheduler_name: s("default-scheduler"),
        tolerations: vec![pbcore::Toleration {
            key: s("dedicated"),
            operator: s("Equal"),
            value: s("gpu"),
            effect: s("NoExecute"),
            toleration_seconds: Some(0),
        }],
        ..Default::default()
    }
}

fn rich_pod_spec_json() -> Value {
    json!({
        "volumes": [
            {"name": "conf", "configMap": {"name": "cm", "items": [{"key": "a", "path": "a.conf", "mode": 420}], "defaultMode": 272}},
            {"name": "sec", "secret": {"secretName": "sec", "optional": false}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"], "resources": {}}],
        "containers": [rich_container_json()],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 0,
        "dnsPolicy": "ClusterFirst",
        "nodeSelector": {"disk": "ssd"},
        "serviceAccountName": "runner",
        "automountServiceAccountToken": false,
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3000]},
        "imagePullSecrets": [{"name": "regcred"}],
        "hostname": "h",
        "subdomain": "sub",
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
        "schedulerName": "default-scheduler",
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute", "tolerationSeconds": 0}],
    })
}

fn template(labels: &[(&str, &str)], spec: pbcore::PodSpec) -> Option<pbcore::PodTemplateSpec> {
    Some(pbcore::PodTemplateSpec {
        metadata: Some(go_meta("", labels)),
        spec: Some(spec),
    })
}

fn selector(labels: &[(&str, &str)]) -> Option<pbmeta::LabelSelector> {
    Some(pbmeta::LabelSelector {
        match_labels: map(labels),
        match_expressions: vec![],
    })
}

#[test]
fn deployment_with_a_rich_pod_template() {
    let deployment = pbapps::Deployment {
        metadata: Some(go_meta("web", &[("app", "web")])),
        spec: Some(pbapps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(pbmeta::LabelSelector {
                match_labels: map(&[("app", "web")]),
                match_expressions: vec![pbmeta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("NotIn"),
                    values: vec!["db".to_owned()],
                }],
            }),
            template: template(&[("app", "web")], rich_pod_spec()),
            strategy: Some(pbapps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(pbapps::RollingUpdateDeployment {
                    max_unavailable: Some(int(0)),
                    max_surge: Some(string("25%")),
                }),
            }),
            min_ready_seconds: Some(0),
            revision_history_limit: Some(0),
            paused: Some(false),
            progress_deadline_seconds: Some(600),
        }),
        status: Some(pbapps::DeploymentStatus::default()),
    };
    assert_eq!(
        ok(&envelope(
            "apps/v1",
            "Deployment",
            deployment.encode_to_vec()
        )),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                // Pointers: zero is a value.
                "replicas": 0,
                "revisionHistoryLimit": 0,
                "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": {"app": "web"},
                             "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": rich_pod_spec_json()},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            },
        })
    );
}

#[test]
fn daemonset_pod_and_node() {
    let ds = pbapps::DaemonSet {
        metadata: Some(go_meta("agent", &[])),
        spec: Some(pbapps::DaemonSetSpec {
            selector: selector(&[("app", "agent")]),
            template: template(
                &[("app", "agent")],
                pbcore::PodSpec {
                    containers: vec![pbcore::Container {
                        name: s("a"),
                        image: s("agent"),
                        ..Default::default()
                    }],
                    host_network: Some(true),
                    ..Default::default()
                },
            ),
            update_strategy: Some(pbapps::DaemonSetUpdateStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(pbapps::RollingUpdateDaemonSet {
                    max_unavailable: Some(int(1)),
                    max_surge: None,
                }),
            }),
            min_ready_seconds: Some(3),
            revision_history_limit: None,
        }),
        status: None,
    };
    assert_eq!(
        ok(&envelope("apps/v1", "DaemonSet", ds.encode_to_vec())),
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                             "spec": {"containers": [{"name": "a", "image": "agent"}], "hostNetwork": true}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "minReadySeconds": 3,
            },
        })
    );

    let pod = pbcore::Pod {
        metadata: Some(go_meta("p", &[("run", "p")])),
        spec: Some(rich_pod_spec()),
        status: Some(pbcore::PodStatus {
            phase: s("Pending"),
            ..Default::default()
        }),
    };
    assert_eq!(
        ok(&envelope("v1", "Pod", pod.encode_to_vec())),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"run": "p"}}, "spec": rich_pod_spec_json()})
    );

    let node = pbcore::Node {
        metadata: Some(go_meta("n1", &[])),
        spec: Some(pbcore::NodeSpec {
            pod_cidr: s("10.0.0.0/24"),
            pod_cid_rs: vec!["10.0.0.0/24".to_owned()],
            provider_id: s(""),
            unschedulable: Some(true),
            taints: vec![pbcore::Taint {
                key: s("k"),
                value: s(""),
                effect: s("NoSchedule"),
                time_added: Some(pbmeta::Time {
                    seconds: Some(86_400),
                    nanos: Some(0),
                }),
            }],
            config_source: None,
            external_id: s(""),
        }),
        status: None,
    };
    assert_eq!(
        ok(&envelope("v1", "Node", node.encode_to_vec())),
        json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"podCIDR": "10.0.0.0/24", "podCIDRs": ["10.0.0.0/24"], "unschedulable": true,
                     "taints": [{"key": "k", "effect": "NoSchedule", "timeAdded": "1970-01-02T00:00:00Z"}]},
        })
    );
}

fn job_spec() -> pbbatch::JobSpec {
    pbbatch::JobSpec {
        parallelism: Some(2),
        completions: Some(4),
        active_deadline_seconds: Some(600),
        backoff_limit: Some(0),
        ttl_seconds_after_finished: Some(0),
        completion_mode: s("Indexed"),
        suspend: Some(false),
        template: template(
            &[],
            pbcore::PodSpec {
                containers: vec![pbcore::Container {
                    name: s("c"),
                    image: s("busybox"),
                    resources: Some(pbcore::ResourceRequirements::default()),
                    ..Default::default()
                }],
                restart_policy: s("Never"),
                ..Default::default()
            },
        ),
        pod_failure_policy: Some(pbbatch::PodFailurePolicy {
            rules: vec![pbbatch::PodFailurePolicyRule {
                action: s("FailJob"),
                on_exit_codes: Some(pbbatch::PodFailurePolicyOnExitCodesRequirement {
                    container_name: s("c"),
                    operator: s("In"),
                    values: vec![42],
                }),
                on_pod_conditions: vec![],
            }],
        }),
        ..Default::default()
    }
}

fn job_spec_json() -> Value {
    json!({
        "parallelism": 2, "completions": 4, "activeDeadlineSeconds": 600, "backoffLimit": 0,
        "ttlSecondsAfterFinished": 0, "completionMode": "Indexed", "suspend": false,
        "template": {"metadata": {}, "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {}}], "restartPolicy": "Never"}},
        "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}}]},
    })
}

#[test]
fn job_and_cronjob() {
    let job = pbbatch::Job {
        metadata: Some(go_meta("j", &[])),
        spec: Some(job_spec()),
        status: None,
    };
    assert_eq!(
        ok(&envelope("batch/v1", "Job", job.encode_to_vec())),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": job_spec_json()})
    );

    let cronjob = pbbatch::CronJob {
        metadata: Some(go_meta("cj", &[])),
        spec: Some(pbbatch::CronJobSpec {
            schedule: s("0 3 * * *"),
            time_zone: s("Europe/Paris"),
            starting_deadline_seconds: Some(120),
            concurrency_policy: s("Forbid"),
            suspend: Some(true),
            job_template: Some(pbbatch::JobTemplateSpec {
                metadata: Some(go_meta("", &[("l", "v")])),
                spec: Some(job_spec()),
            }),
            successful_jobs_history_limit: Some(0),
            failed_jobs_history_limit: Some(1),
        }),
        status: Some(pbbatch::CronJobStatus::default()),
    };
    assert_eq!(
        ok(&envelope("batch/v1", "CronJob", cronjob.encode_to_vec())),
        json!({
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
            "spec": {
                "schedule": "0 3 * * *", "timeZone": "Europe/Paris", "startingDeadlineSeconds": 120,
                "concurrencyPolicy": "Forbid", "suspend": true,
                "jobTemplate": {"metadata": {"labels": {"l": "v"}}, "spec": job_spec_json()},
                "successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 1,
            },
        })
    );
}

#[test]
fn service_zero_ports_and_affinity() {
    let service = pbcore::Service {
        metadata: Some(go_meta("svc", &[])),
        spec: Some(pbcore::ServiceSpec {
            ports: vec![pbcore::ServicePort {
                name: s(""),
                protocol: s("UDP"),
                app_protocol: None,
                port: Some(53),
                target_port: Some(int(0)),
                node_port: Some(0),
            }],
            selector: map(&[("app", "dns")]),
            cluster_ip: s(""),
            r#type: s("ClusterIP"),
            session_affinity: s("ClientIP"),
            session_affinity_config: Some(pbcore::SessionAffinityConfig {
                client_ip: Some(pbcore::ClientIpConfig {
                    timeout_seconds: Some(60),
                }),
            }),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ip_families: vec!["IPv4".to_owned()],
            ..Default::default()
        }),
        status: Some(pbcore::ServiceStatus::default()),
    };
    assert_eq!(
        ok(&envelope("v1", "Service", service.encode_to_vec())),
        json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
            "spec": {
                "ports": [{"protocol": "UDP", "port": 53}],
                "selector": {"app": "dns"},
                "type": "ClusterIP",
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                "ipFamilies": ["IPv4"],
            },
        })
    );
}

#[test]
fn eviction_and_delete_options() {
    let eviction = k8s_pb::api::policy::v1::Eviction {
        metadata: Some(pbmeta::ObjectMeta {
            namespace: s("default"),
            ..go_meta("p", &[])
        }),
        delete_options: Some(pbmeta::DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(pbmeta::Preconditions {
                uid: s("u-1"),
                resource_version: None,
            }),
            propagation_policy: s("Foreground"),
            dry_run: vec!["All".to_owned()],
            ..Default::default()
        }),
    };
    assert_eq!(
        ok(&envelope("policy/v1", "Eviction", eviction.encode_to_vec())),
        json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": "p", "namespace": "default"},
            "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"},
                              "propagationPolicy": "Foreground", "dryRun": ["All"]},
        })
    );
    let delete = pbmeta::DeleteOptions {
        orphan_dependents: Some(false),
        ..Default::default()
    };
    assert_eq!(
        ok(&envelope(
            "apps/v1",
            "DeleteOptions",
            delete.encode_to_vec()
        )),
        json!({"apiVersion": "apps/v1", "kind": "DeleteOptions", "orphanDependents": false})
    );
}

#[test]
fn envelope_errors() {
    assert_eq!(err(b""), ProtoError::NoPrefix);
    assert_eq!(err(b"{\"kind\":\"Secret\"}"), ProtoError::NoPrefix);
    assert_eq!(err(b"k8s"), ProtoError::NoPrefix);
    // An empty envelope has no kind.
    assert_eq!(
        err(b"k8s\0"),
        ProtoError::UnsupportedKind {
            api_version: String::new(),
            kind: String::new()
        }
    );
    assert_eq!(
        ProtoError::NoPrefix.to_string(),
        "not a Kubernetes protobuf body (no k8s\\0 prefix)"
    );

    // Truncated: the last byte of the observed Secret is the length of contentType.
    let secret = fixture!("secret-generic");
    assert!(matches!(
        err(&secret[..secret.len() - 1]),
        ProtoError::Envelope(_)
    ));
    // Cut inside the Secret's bytes: the envelope's length runs past the end.
    assert!(matches!(err(&secret[..30]), ProtoError::Envelope(_)));
    // Every cut decodes or fails, never panics.
    for (_, body, _) in FIXTURES {
        for n in 0..body.len() {
            let _ = decode(&body[..n]);
        }
    }

    let mut gzip = Unknown::decode(&secret[4..]).unwrap_or_else(|e| panic!("{e}"));
    gzip.content_encoding = s("gzip");
    let mut body = MAGIC.to_vec();
    body.extend(gzip.encode_to_vec());
    assert_eq!(err(&body), ProtoError::ContentEncoding("gzip".to_owned()));

    // A malformed object inside a well-formed envelope.
    let e = err(&envelope("v1", "Secret", vec![0x0a, 0x05, 0x0a]));
    assert!(
        matches!(&e, ProtoError::Malformed { kind, .. } if kind == "Secret"),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("malformed Secret: "), "{e}");
}

#[test]
fn unknown_kinds() {
    assert_eq!(
        err(fixture!("serviceaccount")),
        ProtoError::UnsupportedKind {
            api_version: "v1".to_owned(),
            kind: "ServiceAccount".to_owned()
        }
    );
    assert_eq!(
        err(fixture!("auth-can-i")).to_string(),
        "unsupported kind authorization.k8s.io/v1 SelfSubjectAccessReview in a protobuf body; send it as JSON"
    );
    let secret = pbcore::Secret::default().encode_to_vec();
    assert!(matches!(
        err(&envelope("apps/v1", "Secret", secret.clone())),
        ProtoError::UnsupportedKind { .. }
    ));
    assert!(matches!(
        err(&envelope("v1", "Deployment", secret.clone())),
        ProtoError::UnsupportedKind { .. }
    ));
    assert!(matches!(
        err(&envelope("", "DeleteOptions", secret)),
        ProtoError::UnsupportedKind { .. }
    ));
}

fn deployment_with(spec: pbcore::PodSpec) -> Vec<u8> {
    let d = pbapps::Deployment {
        metadata: Some(go_meta("web", &[])),
        spec: Some(pbapps::DeploymentSpec {
            selector: selector(&[("app", "web")]),
            template: template(&[("app", "web")], spec),
            ..Default::default()
        }),
        status: None,
    };
    envelope("apps/v1", "Deployment", d.encode_to_vec())
}

#[test]
fn fields_not_carried_are_errors_when_set() {
    let git = pbcore::PodSpec {
        volumes: vec![
            pbcore::Volume {
                name: s("ok"),
                volume_source: Some(pbcore::VolumeSource::default()),
            },
            pbcore::Volume {
                name: s("src"),
                volume_source: Some(pbcore::VolumeSource {
                    git_repo: Some(pbcore::GitRepoVolumeSource {
                        repository: s("https://x"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            },
        ],
        ..Default::default()
    };
    assert_eq!(
        err(&deployment_with(git)).to_string(),
        "unsupported field spec.template.spec.volumes[1].gitRepo in a protobuf Deployment body; send it as JSON (kubectl apply)"
    );

    let rules = pbcore::PodSpec {
        containers: vec![pbcore::Container {
            name: s("c"),
            restart_policy_rules: vec![pbcore::ContainerRestartRule::default()],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(
        err(&deployment_with(rules)),
        ProtoError::UnsupportedField {
            kind: "Deployment".to_owned(),
            field: "spec.template.spec.containers[0].restartPolicyRules".to_owned(),
        }
    );

    let ephemeral = pbcore::PodSpec {
        ephemeral_containers: vec![pbcore::EphemeralContainer::default()],
        ..Default::default()
    };
    assert!(
        matches!(err(&deployment_with(ephemeral)), ProtoError::UnsupportedField { field, .. } if field == "spec.template.spec.ephemeralContainers")
    );

    let file_key = pbcore::PodSpec {
        containers: vec![pbcore::Container {
            env: vec![pbcore::EnvVar {
                name: s("X"),
                value_from: Some(pbcore::EnvVarSource {
                    file_key_ref: Some(pbcore::FileKeySelector {
                        key: s("k"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(
        matches!(err(&deployment_with(file_key)), ProtoError::UnsupportedField { field, .. } if field == "spec.template.spec.containers[0].env[0].valueFrom.fileKeyRef")
    );

    let managed = pbcore::ConfigMap {
        metadata: Some(pbmeta::ObjectMeta {
            managed_fields: vec![pbmeta::ManagedFieldsEntry {
                manager: s("kubectl"),
                ..Default::default()
            }],
            ..go_meta("c", &[])
        }),
        ..Default::default()
    };
    assert!(
        matches!(err(&envelope("v1", "ConfigMap", managed.encode_to_vec())), ProtoError::UnsupportedField { field, .. } if field == "metadata.managedFields")
    );

    let node = pbcore::Node {
        spec: Some(pbcore::NodeSpec {
            config_source: Some(pbcore::NodeConfigSource {
                config_map: Some(pbcore::ConfigMapNodeConfigSource {
                    name: s("kubelet"),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(
        matches!(err(&envelope("v1", "Node", node.encode_to_vec())), ProtoError::UnsupportedField { field, .. } if field == "spec.configSource")
    );
}

#[test]
fn unset_fields_not_carried_pass() {
    // As Go writes them: present, but zero (an empty message, empty strings, zero numbers).
    let zero = pbcore::PodSpec {
        volumes: vec![pbcore::Volume {
            name: s("v"),
            volume_source: Some(pbcore::VolumeSource {
                empty_dir: Some(pbcore::EmptyDirVolumeSource::default()),
                git_repo: Some(pbcore::GitRepoVolumeSource {
                    repository: s(""),
                    revision: s(""),
                    directory: s(""),
                }),
                csi: Some(pbcore::CSIVolumeSource::default()),
                ..Default::default()
            }),
        }],
        workload_ref: Some(pbcore::WorkloadReference {
            name: s(""),
            ..Default::default()
        }),
        hostname_override: s(""),
        ..Default::default()
    };
    let got = ok(&deployment_with(zero));
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "v", "emptyDir": {}}])
    );
}

#[test]
fn invalid_values() {
    let bad_port = pbcore::PodSpec {
        containers: vec![pbcore::Container {
            name: s("c"),
            liveness_probe: Some(pbcore::Probe {
                handler: Some(pbcore::ProbeHandler {
                    tcp_socket: Some(pbcore::TcpSocketAction {
                        port: Some(IntOrString {
                            r#type: Some(7),
                            ..Default::default()
                        }),
                        host: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let e = err(&deployment_with(bad_port));
    assert!(
        matches!(&e, ProtoError::Invalid { field, .. } if field == "spec.template.spec.containers[0].livenessProbe.tcpSocket.port"),
        "{e:?}"
    );

    let far = pbcore::Secret {
        metadata: Some(pbmeta::ObjectMeta {
            creation_timestamp: Some(pbmeta::Time {
                seconds: Some(i64::MAX),
                nanos: Some(0),
            }),
            ..go_meta("s", &[])
        }),
        ..Default::default()
    };
    let e = err(&envelope("v1", "Secret", far.encode_to_vec()));
    assert!(
        matches!(&e, ProtoError::Invalid { field, .. } if field == "metadata.creationTimestamp"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with("invalid metadata.creationTimestamp in a protobuf Secret body: "),
        "{e}"
    );
}

/// A body of a supported kind with arbitrary object bytes, for the fuzz-like properties.
fn kinds() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop_oneof![
        Just(("v1", "Secret")),
        Just(("v1", "ConfigMap")),
        Just(("v1", "Namespace")),
        Just(("v1", "Service")),
        Just(("v1", "Pod")),
        Just(("v1", "Node")),
        Just(("apps/v1", "Deployment")),
        Just(("apps/v1", "DaemonSet")),
        Just(("batch/v1", "Job")),
        Just(("batch/v1", "CronJob")),
        Just(("policy/v1", "Eviction")),
        Just(("v1", "DeleteOptions")),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&bytes);
        let _ = decode(&body);
    }

    #[test]
    fn never_panics_on_any_object((api_version, kind) in kinds(), raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = decode(&envelope(api_version, kind, raw)) {
            prop_assert_eq!(v["kind"].as_str(), Some(kind));
            prop_assert_eq!(v["apiVersion"].as_str(), Some(api_version));
            prop_assert_eq!(reparses(&v), Ok(()), "{}", v);
        }
    }

    #[test]
    fn never_panics_on_mutated_fixtures(i in 0..FIXTURES.len(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut body = FIXTURES[i].1.to_vec();
        let at = at.index(body.len());
        body[at] = byte;
        if let Ok(v) = decode(&body) {
            prop_assert_eq!(reparses(&v), Ok(()), "{}", v);
        }
        body.insert(at, byte);
        if let Ok(v) = decode(&body) {
            prop_assert_eq!(reparses(&v), Ok(()), "{}", v);
        }
    }
}
