//! Generic resources end to end: a daemon advertising two named GPUs, the real `docker` CLI
//! reserving `--generic-resource gpu=1`, tasks seeing their own GPU in `DOCKER_RESOURCE_GPU`, a
//! third task waiting with the reason, scaling that frees exactly what it should.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::{Daemon, SHOAL, urlencode, wait_for};
use shoal_testkit::{Need, need};

/// Root (namespaces, cgroups) and the docker CLI, which drives the daemon.
fn ready() -> bool {
    need(&[Need::Root, Need::Tool("docker")])
}

fn gpu_daemon() -> Daemon {
    let flags = [
        "--node-generic-resource",
        "gpu=GPU-a",
        "--node-generic-resource",
        "gpu=GPU-b",
    ];
    let d = Daemon::start_with_flags(Vec::new(), flags.iter().map(|s| s.to_string()).collect());
    d.swarm_init();
    d
}

/// Live tasks of `service` by ID: (state, slot, GPUs assigned).
fn gpu_tasks(d: &Daemon, service: &str) -> BTreeMap<String, (String, u64, Vec<String>)> {
    let filters =
        format!("{{\"service\":{{\"{service}\":true}},\"desired-state\":{{\"running\":true}}}}");
    let (_, v) = d.api(
        "GET",
        &format!("/v1.50/tasks?filters={}", urlencode(&filters)),
        None,
    );
    v.as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let gpus = t["AssignedGenericResources"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .filter(|r| r["NamedResourceSpec"]["Kind"] == "gpu")
                .filter_map(|r| r["NamedResourceSpec"]["Value"].as_str().map(str::to_owned))
                .collect();
            (
                t["ID"].as_str().unwrap_or_default().to_owned(),
                (
                    t["Status"]["State"].as_str().unwrap_or_default().to_owned(),
                    t["Slot"].as_u64().unwrap_or(0),
                    gpus,
                ),
            )
        })
        .collect()
}

fn running_gpus(tasks: &BTreeMap<String, (String, u64, Vec<String>)>) -> Vec<String> {
    let mut g: Vec<String> = tasks
        .values()
        .filter(|(state, _, _)| state == "running")
        .flat_map(|(_, _, gpus)| gpus.clone())
        .collect();
    g.sort();
    g
}

#[test]
fn gpus_are_advertised_reserved_given_once_and_freed_on_scale_down() {
    if !ready() {
        return;
    }
    let d = gpu_daemon();

    let advertised = d.docker_ok(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{json .Description.Resources.GenericResources}}",
    ]);
    assert_eq!(
        advertised.trim(),
        r#"[{"NamedResourceSpec":{"Kind":"gpu","Value":"GPU-a"}},{"NamedResourceSpec":{"Kind":"gpu","Value":"GPU-b"}}]"#
    );

    d.service_create_with(
        "--name train --generic-resource gpu=1 --replicas 3 --stop-grace-period 1s host sh -c",
        &["echo gpu=$DOCKER_RESOURCE_GPU; sleep 1000"],
    );
    let reserved = d.docker_ok(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.Resources.Reservations.GenericResources}}",
        "train",
    ]);
    assert_eq!(
        reserved.trim(),
        r#"[{"DiscreteResourceSpec":{"Kind":"gpu","Value":1}}]"#
    );

    d.wait_running("train", 2);
    // The third task waits, and says why.
    let ps = wait_for(
        "the third task pending with the reason",
        Duration::from_secs(30),
        || {
            let p = d.docker_ok(&["service", "ps", "--no-trunc", "train"]);
            let waiting = p
                .lines()
                .filter(|l| {
                    l.contains("Pending")
                        && l.contains("no suitable node (insufficient generic resources on 1 node)")
                })
                .count();
            if waiting == 1 { Ok(p) } else { Err(p) }
        },
    );
    let before = gpu_tasks(&d, "train");
    assert_eq!(
        running_gpus(&before),
        vec!["GPU-a".to_owned(), "GPU-b".to_owned()],
        "{before:?}\n{ps}"
    );

    // Each task sees its own GPU.
    let logs = wait_for("both tasks' GPU lines", Duration::from_secs(30), || {
        let out = d.docker(&["service", "logs", "--raw", "train"]);
        let mut seen: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("gpu=").map(str::to_owned))
            .collect();
        seen.sort();
        if seen.len() == 2 {
            Ok(seen)
        } else {
            Err(format!(
                "{seen:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    assert_eq!(logs, vec!["GPU-a".to_owned(), "GPU-b".to_owned()]);

    // Down to 2: the waiting task goes, the running ones keep their GPUs.
    d.docker_ok(&["service", "scale", "-d", "train=2"]);
    wait_for("the pending task to go", Duration::from_secs(30), || {
        let now = gpu_tasks(&d, "train");
        let kept: BTreeMap<_, _> = before
            .iter()
            .filter(|(_, (state, _, _))| state == "running")
            .map(|(id, v)| (id.clone(), v.clone()))
            .collect();
        if now == kept {
            Ok(())
        } else {
            Err(format!("{now:?}\nwanted {kept:?}"))
        }
    });

    // Down to 1 frees one GPU, and the next task gets exactly that one.
    d.docker_ok(&["service", "scale", "-d", "train=1"]);
    let left = wait_for("one running task", Duration::from_secs(30), || {
        let now = gpu_tasks(&d, "train");
        let g = running_gpus(&now);
        if now.len() == 1 && g.len() == 1 {
            Ok(g)
        } else {
            Err(format!("{now:?}"))
        }
    });
    d.docker_ok(&["service", "scale", "-d", "train=2"]);
    d.wait_running("train", 2);
    let after = gpu_tasks(&d, "train");
    assert_eq!(
        running_gpus(&after),
        vec!["GPU-a".to_owned(), "GPU-b".to_owned()],
        "kept {left:?}, now {after:?}"
    );

    // docker's update flags read our wire shape back (they refuse anything but counts), and
    // shoal's own CLI sends the same.
    let reservation = |d: &Daemon| {
        d.docker_ok(&[
            "service",
            "inspect",
            "--format",
            "{{json .Spec.TaskTemplate.Resources.Reservations.GenericResources}}",
            "train",
        ])
        .trim()
        .to_owned()
    };
    d.docker_ok(&[
        "service",
        "update",
        "-d",
        "--generic-resource-rm",
        "gpu",
        "train",
    ]);
    assert_eq!(reservation(&d), "null");
    let out = d.shoal(&[
        "service",
        "update",
        "-d",
        "--generic-resource-add",
        "gpu=1",
        "train",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        reservation(&d),
        r#"[{"DiscreteResourceSpec":{"Kind":"gpu","Value":1}}]"#
    );
    d.docker_ok(&["service", "rm", "train"]);
}

#[test]
fn named_reservations_and_bad_daemon_flags_are_refused() {
    // The daemon refuses a bad flag before it starts anything (no root needed).
    let dir = tempfile::tempdir().expect("tempdir");
    for (flags, want) in [
        (
            vec!["gpu"],
            r#"--node-generic-resource: "gpu": expected KIND=VALUE"#,
        ),
        (
            vec!["gpu=a", "gpu=2"],
            "--node-generic-resource: gpu: give either one count (gpu=N) or names only",
        ),
        (
            vec!["ssd=-1"],
            "--node-generic-resource: ssd: a count must not be negative, got -1",
        ),
    ] {
        let out = Command::new(SHOAL)
            .args(["daemon", "--data-dir"])
            .arg(dir.path())
            .args(flags.iter().flat_map(|f| ["--node-generic-resource", f]))
            .output()
            .expect("run shoal daemon");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains(want), "{flags:?}: {err}");
    }

    if !ready() {
        return;
    }
    let d = gpu_daemon();
    // docker's CLI refuses a named reservation itself; the API refuses one sent directly.
    let out = d.docker(&[
        "service",
        "create",
        "-d",
        "--generic-resource",
        "gpu=GPU-a",
        "host",
        "sleep",
        "1",
    ]);
    assert!(!out.status.success());
    let body = br#"{"Name":"named","TaskTemplate":{"ContainerSpec":{"Image":"host"},"Resources":{"Reservations":{"GenericResources":[{"NamedResourceSpec":{"Kind":"gpu","Value":"GPU-a"}}]}}}}"#;
    let (status, v) = d.api("POST", "/v1.50/services/create", Some(body));
    assert_eq!(status, 400, "{v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("TaskTemplate.Resources.Reservations.GenericResources[0]")
            && msg.contains("not a named resource"),
        "{msg}"
    );
    let zero = br#"{"Name":"zero","TaskTemplate":{"ContainerSpec":{"Image":"host"},"Resources":{"Reservations":{"GenericResources":[{"DiscreteResourceSpec":{"Kind":"gpu","Value":0}}]}}}}"#;
    let (status, v) = d.api("POST", "/v1.50/services/create", Some(zero));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("gpu: the count must be at least 1, got 0")),
        "{v}"
    );
    // Nothing was created.
    let (_, services) = d.api("GET", "/v1.50/services", None);
    assert_eq!(services, serde_json::json!([]));
}

#[test]
fn python_sdk_reserves_generic_resources() {
    if !need(&[Need::Root, Need::Tool("docker"), Need::PythonDockerSdk]) {
        return;
    }
    let d = gpu_daemon();
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
res = docker.types.Resources(generic_resources={{"gpu": 1}})
c.services.create("host", command=["sleep", "1000"], name="py", resources=res, stop_grace_period=1000000000)
node = c.nodes.list()[0]
print(sorted(g["NamedResourceSpec"]["Value"] for g in node.attrs["Description"]["Resources"]["GenericResources"]))
"#,
        host = d.host()
    );
    let stdout = common::python(&script);
    assert_eq!(stdout.trim(), "['GPU-a', 'GPU-b']");
    d.wait_running("py", 1);
    let tasks = gpu_tasks(&d, "py");
    assert_eq!(running_gpus(&tasks), vec!["GPU-a".to_owned()], "{tasks:?}");
}
