//! What the API serves, held to what Docker serves, through a real shoal daemon driven by the real
//! `docker` CLI, the Python SDK and raw API calls: a spec comes back as it was sent, Swarm's
//! defaults are filled in only when asked (`insertDefaults`, which `docker service inspect`
//! sends), the health check is spelt `Healthcheck`, updates answer `Warnings`, what shoal keeps
//! but cannot apply is reported rather than refused, platforms and spread preferences place
//! tasks, and an update to the same spec is a revision `docker service rollback` can undo.

mod common;

use std::time::Duration;

use common::{Daemon, urlencode, wait_for};
use serde_json::{Value, json};
use shoal_testkit::{Need, need};

const MINUTE: Duration = Duration::from_secs(60);

/// A daemon in a one-node swarm, when the machine has root and the docker CLI.
fn swarm() -> Option<Daemon> {
    if !need(&[Need::Root, Need::Tool("docker")]) {
        return None;
    }
    let d = Daemon::start();
    d.swarm_init();
    Some(d)
}

/// A raw API call with a JSON body; the status and the JSON answer.
fn call(d: &Daemon, method: &str, path: &str, body: &Value) -> (u16, Value) {
    d.api(method, path, Some(body.to_string().as_bytes()))
}

/// `GET /services/{name}` (with `query`, e.g. `?insertDefaults=true`), which must succeed.
fn service(d: &Daemon, name: &str, query: &str) -> Value {
    let (status, v) = d.api("GET", &format!("/v1.50/services/{name}{query}"), None);
    assert_eq!(status, 200, "{v}");
    v
}

/// Creates a service through the API, which must succeed; its create answer.
fn create(d: &Daemon, spec: &Value) -> Value {
    let (status, v) = call(d, "POST", "/v1.50/services/create", spec);
    assert_eq!(status, 201, "{v}\n{}", d.log_tail());
    v
}

/// Updates `name` to `spec` through the API at its current version; the status and answer. The
/// orchestrator moves the service's update status on its own, so a version read may be stale by
/// the time the update arrives: that conflict is retried, as a client would.
fn update(d: &Daemon, name: &str, spec: &Value) -> (u16, Value) {
    wait_for(&format!("an update of {name} in sequence"), MINUTE, || {
        let version = service(d, name, "")["Version"]["Index"]
            .as_u64()
            .expect("a version");
        let (status, answer) = call(
            d,
            "POST",
            &format!("/v1.50/services/{name}/update?version={version}"),
            spec,
        );
        if status == 409 {
            Err(answer.to_string())
        } else {
            Ok((status, answer))
        }
    })
}

/// The update settings Swarm fills in where a spec has none.
fn swarm_update_defaults() -> Value {
    json!({
        "Parallelism": 1,
        "FailureAction": "pause",
        "Monitor": 5_000_000_000i64,
        "MaxFailureRatio": 0.0,
        "Order": "stop-first"
    })
}

/// A spec written without a window, an update config or resources comes back without them;
/// `?insertDefaults=true` (and so `docker service inspect`) shows Swarm's defaults instead.
#[test]
fn inspect_shows_the_spec_as_sent_and_insert_defaults_fills_swarms_defaults() {
    let Some(d) = swarm() else {
        return;
    };
    let sent = json!({
        "Name": "bare",
        "TaskTemplate": {
            "ContainerSpec": {"Image": "host", "Command": ["sleep", "1000"], "StopGracePeriod": 1_000_000_000},
            "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3}
        }
    });
    let answer = create(&d, &sent);
    assert!(answer["ID"].is_string(), "{answer}");
    assert_eq!(answer.get("Warnings"), Some(&Value::Null), "{answer}");

    // As sent, plus what Docker itself adds: the labels map, the mode, the runtime.
    let as_sent = json!({
        "Name": "bare",
        "Labels": {},
        "TaskTemplate": {
            "ContainerSpec": {"Image": "host", "Command": ["sleep", "1000"], "StopGracePeriod": 1_000_000_000},
            "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3},
            "ForceUpdate": 0,
            "Runtime": "container"
        },
        "Mode": {"Replicated": {"Replicas": 1}}
    });
    assert_eq!(service(&d, "bare", "")["Spec"], as_sent);
    assert_eq!(
        service(&d, "bare", "?insertDefaults=false")["Spec"],
        as_sent
    );

    // (The grace period was given, to stop quickly; the 10 s default is the unit tests'.)
    let with_defaults = json!({
        "Name": "bare",
        "Labels": {},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "host",
                "Command": ["sleep", "1000"],
                "StopGracePeriod": 1_000_000_000,
                "DNSConfig": {}
            },
            "Resources": {},
            "RestartPolicy": {"Condition": "on-failure", "Delay": 5_000_000_000i64, "MaxAttempts": 3},
            "Placement": {},
            "ForceUpdate": 0,
            "Runtime": "container"
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "UpdateConfig": swarm_update_defaults(),
        "RollbackConfig": swarm_update_defaults()
    });
    assert_eq!(
        service(&d, "bare", "?insertDefaults=true")["Spec"],
        with_defaults
    );
    // `docker service inspect` asks for the defaults, as against Swarm.
    assert_eq!(
        d.inspect("bare", "{{json .Spec.UpdateConfig}}"),
        r#"{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"}"#
    );
    assert_eq!(
        d.inspect("bare", "{{json .Spec.TaskTemplate.RestartPolicy}}"),
        r#"{"Condition":"on-failure","Delay":5000000000,"MaxAttempts":3}"#
    );

    let (status, v) = d.api("GET", "/v1.50/services/bare?insertDefaults=maybe", None);
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("insertDefaults"), "{v}");
}

/// The docker CLI's own spec comes back as it sent it (no restart policy, update config or
/// window it did not send), and keeps that shape through its read-modify-write updates.
#[test]
fn docker_cli_specs_come_back_as_the_cli_sent_them() {
    let Some(d) = swarm() else {
        return;
    };
    d.service_create("--name web --stop-grace-period 1s --health-cmd true host sleep 1000");
    let check = |what: &str| {
        let spec = &service(&d, "web", "")["Spec"];
        let t = &spec["TaskTemplate"];
        for absent in ["RestartPolicy", "LogDriver"] {
            assert!(t.get(absent).is_none(), "{what}: {absent} in {t}");
        }
        for absent in ["UpdateConfig", "RollbackConfig"] {
            assert!(spec.get(absent).is_none(), "{what}: {absent} in {spec}");
        }
        assert_eq!(
            t["Resources"],
            json!({"Limits": {}, "Reservations": {}}),
            "{what}"
        );
        assert_eq!(t["Placement"], json!({}), "{what}");
        assert_eq!(spec["EndpointSpec"], json!({"Mode": "vip"}), "{what}");
        let c = &t["ContainerSpec"];
        assert_eq!(c["Init"], false, "{what}: {c}");
        assert_eq!(c["DNSConfig"], json!({}), "{what}: {c}");
        assert_eq!(
            c["Healthcheck"]["Test"],
            json!(["CMD-SHELL", "true"]),
            "{what}: {c}"
        );
        assert!(c.get("HealthCheck").is_none(), "{what}: {c}");
    };
    check("after create");
    d.docker_ok(&["service", "update", "--detach", "--env-add", "A=1", "web"]);
    check("after update");
    assert_eq!(
        d.inspect("web", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}"),
        r#"["A=1"]"#
    );
}

/// `docker service update --image` to the image the service runs, as `--force` would without
/// the restart: a new revision, which `docker service rollback` can undo. No task is replaced.
#[test]
fn an_update_to_the_same_image_is_a_revision_that_rollback_undoes() {
    let Some(d) = swarm() else {
        return;
    };
    d.service_create("--name same --replicas 2 --stop-grace-period 1s host sleep 1000");
    let before = d.wait_running("same", 2);
    let version = |d: &Daemon| {
        d.inspect("same", "{{.Version.Index}}")
            .parse::<u64>()
            .expect("a version")
    };
    let v0 = version(&d);
    assert_eq!(d.inspect("same", "{{json .PreviousSpec}}"), "null");

    d.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--image",
        "host:latest",
        "same",
    ]);
    assert!(version(&d) > v0);
    let prev = service(&d, "same", "");
    assert_eq!(prev["PreviousSpec"], prev["Spec"], "{prev}");

    let out = d.docker_ok(&["service", "rollback", "--detach", "same"]);
    assert!(out.contains("same"), "{out}");
    d.wait_update_state("same", "rollback_completed", MINUTE);
    let now = d.wait_running("same", 2);
    assert_eq!(
        before.iter().map(|(_, id, _)| id).collect::<Vec<_>>(),
        now.iter().map(|(_, id, _)| id).collect::<Vec<_>>(),
        "no task is replaced for a spec that did not change\n{}",
        d.ps("same")
    );
}

/// An update answers `{"Warnings": null}` or a list, never `{}`; the log driver, privileges and
/// health check a client sends are kept and shown (as `Healthcheck`, in the service and its
/// tasks), and what shoal cannot apply is reported in `Warnings`, through the Python SDK too.
#[test]
fn updates_answer_warnings_and_what_shoal_cannot_apply_is_kept_and_reported() {
    if !need(&[Need::PythonDockerSdk]) {
        return;
    }
    let Some(d) = swarm() else {
        return;
    };
    let script = format!(
        r#"
import json, docker
from docker import types
c = docker.DockerClient(base_url="{host}")
tt = types.TaskTemplate(
    container_spec=types.ContainerSpec("host", command=["sleep", "1000"], stop_grace_period=10**9,
        healthcheck=types.Healthcheck(test=["CMD", "true"], retries=2)),
    log_driver=types.DriverConfig("syslog", {{"tag": "web"}}))
created = c.api.create_service(tt, name="logged")
spec = c.api.inspect_service(created["ID"])["Spec"]
version = c.api.inspect_service(created["ID"])["Version"]["Index"]
updated = c.api.update_service(created["ID"], version, task_template=tt, name="logged")
print(json.dumps({{"created": created, "spec": spec, "updated": updated}}))
"#,
        host = d.host()
    );
    let out: Value = serde_json::from_str(common::python(&script).trim()).expect("json");
    let log_warning = "TaskTemplate.LogDriver: the \"syslog\" log driver is kept in the spec but \
                       not used: shoal captures each task's output itself (see docker service logs)";
    assert_eq!(out["created"]["Warnings"], json!([log_warning]), "{out}");
    assert_eq!(out["updated"], json!({"Warnings": [log_warning]}), "{out}");
    let t = &out["spec"]["TaskTemplate"];
    assert_eq!(
        t["LogDriver"],
        json!({"Name": "syslog", "Options": {"tag": "web"}})
    );
    assert_eq!(t["ContainerSpec"]["Healthcheck"]["Retries"], 2, "{t}");
    assert!(t["ContainerSpec"].get("HealthCheck").is_none(), "{t}");

    // A task's spec spells it so too.
    let filters = urlencode(r#"{"service":{"logged":true}}"#);
    let task = wait_for("a task of logged", MINUTE, || {
        let (_, tasks) = d.api("GET", &format!("/v1.50/tasks?filters={filters}"), None);
        tasks
            .as_array()
            .and_then(|a| a.first().cloned())
            .ok_or_else(|| tasks.to_string())
    });
    assert_eq!(
        task["Spec"]["ContainerSpec"]["Healthcheck"]["Retries"], 2,
        "{task}"
    );

    // Nothing to report: null, not `{}` and not left out.
    let plain = json!({
        "Name": "logged",
        "TaskTemplate": {"ContainerSpec": {"Image": "host", "Command": ["sleep", "1000"], "StopGracePeriod": 1_000_000_000}}
    });
    let (status, answer) = update(&d, "logged", &plain);
    assert_eq!((status, answer), (200, json!({"Warnings": null})));

    // Privileges are kept and shown as sent, and reported; `docker stack deploy`'s empty ones
    // are not.
    let mut privileged = plain.clone();
    privileged["TaskTemplate"]["ContainerSpec"]["Privileges"] =
        json!({"NoNewPrivileges": true, "AppArmor": {"Mode": "disabled"}});
    let (status, answer) = update(&d, "logged", &privileged);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"Warnings": ["TaskTemplate.ContainerSpec.Privileges: AppArmor, NoNewPrivileges \
                             kept in the spec but not applied: no shoal runtime sets them yet"]})
    );
    assert_eq!(
        service(&d, "logged", "")["Spec"]["TaskTemplate"]["ContainerSpec"]["Privileges"],
        json!({
            "CredentialSpec": null,
            "SELinuxContext": null,
            "NoNewPrivileges": true,
            "AppArmor": {"Mode": "disabled"}
        })
    );
    let mut stack = plain.clone();
    stack["TaskTemplate"]["ContainerSpec"]["Privileges"] =
        json!({"CredentialSpec": null, "SELinuxContext": null, "NoNewPrivileges": false});
    assert_eq!(
        update(&d, "logged", &stack),
        (200, json!({"Warnings": null}))
    );
    // A bad credential spec is refused by name, as Docker refuses it.
    let mut bad = plain.clone();
    bad["TaskTemplate"]["ContainerSpec"]["Privileges"] = json!({"CredentialSpec": {}});
    let (status, answer) = update(&d, "logged", &bad);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("TaskTemplate.ContainerSpec.Privileges.CredentialSpec"),
        "{answer}"
    );
}

/// The node's architecture as the docker CLI names an image's (`amd64` for `x86_64`).
fn image_arch(d: &Daemon) -> String {
    let arch = d
        .docker_ok(&[
            "node",
            "inspect",
            "self",
            "--format",
            "{{.Description.Platform.Architecture}}",
        ])
        .trim()
        .to_string();
    match arch.as_str() {
        "x86_64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        _ => arch,
    }
}

/// `Placement.Platforms` is kept and honoured: a service for this node's platform runs, one for
/// another stays pending with Swarm's reason.
#[test]
fn platforms_place_tasks_on_nodes_of_those_platforms_only() {
    let Some(d) = swarm() else {
        return;
    };
    let spec = |name: &str, platforms: Value| {
        json!({
            "Name": name,
            "TaskTemplate": {
                "ContainerSpec": {"Image": "host", "Command": ["sleep", "1000"], "StopGracePeriod": 1_000_000_000},
                "Placement": {"Platforms": platforms}
            }
        })
    };
    let here = json!([{"Architecture": image_arch(&d), "OS": "linux"}]);
    create(&d, &spec("fits", here.clone()));
    d.wait_running("fits", 1);
    assert_eq!(
        service(&d, "fits", "")["Spec"]["TaskTemplate"]["Placement"],
        json!({"Platforms": here})
    );

    create(&d, &spec("elsewhere", json!([{"OS": "windows"}])));
    wait_for("elsewhere's task to say why it waits", MINUTE, || {
        let states = d.task_states("elsewhere");
        let want = (
            "pending".to_string(),
            "no suitable node (unsupported platform on 1 node)".to_string(),
        );
        if states
            .iter()
            .any(|(_, s, e)| (s.clone(), e.clone()) == want)
        {
            Ok(())
        } else {
            Err(format!("{states:?}"))
        }
    });
}

/// Spread preferences over any node attribute a constraint names, not only node labels; one that
/// names none is refused by field.
#[test]
fn spread_preferences_take_any_node_attribute() {
    let Some(d) = swarm() else {
        return;
    };
    d.service_create(
        "--name spread --replicas 2 --stop-grace-period 1s --placement-pref spread=node.platform.os --placement-pref spread=engine.labels.zone host sleep 1000",
    );
    d.wait_running("spread", 2);
    d.service_create(
        "--name byhost --stop-grace-period 1s --placement-pref spread=node.hostname host sleep 1000",
    );
    assert_eq!(
        d.inspect(
            "spread",
            "{{range .Spec.TaskTemplate.Placement.Preferences}}{{.Spread.SpreadDescriptor}} {{end}}"
        ),
        "node.platform.os engine.labels.zone"
    );

    let out = d.docker(&common::create_args(
        "--name typo --placement-pref spread=node.lables.zone host sleep 1000",
        &[],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("TaskTemplate.Placement.Preferences[0].Spread.SpreadDescriptor")
            && err.contains("node.lables.zone"),
        "{err}"
    );
}
