//! The real `docker` CLI and Python SDK against a real shoal daemon: the walking skeleton's user
//! journey, failures, crash recovery and bad input.

mod common;

use std::time::Duration;

use common::{Daemon, wait_for};
use shoal_testkit::{Need, need};

/// Root (namespaces, cgroups) and the docker CLI, which drives the daemon.
fn ready() -> bool {
    need(&[Need::Root, Need::Tool("docker")])
}

/// A daemon in a one-node swarm, and that node's ID, when the machine has what the tests need.
fn swarm() -> Option<(Daemon, String)> {
    if !ready() {
        return None;
    }
    let d = Daemon::start();
    let node = d.swarm_init();
    Some((d, node))
}

const SECS_30: Duration = Duration::from_secs(30);
const MINUTE: Duration = Duration::from_secs(60);

fn service_ls_replicas(d: &Daemon, name: &str) -> String {
    d.docker_ok(&[
        "service",
        "ls",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Replicas}}",
    ])
    .trim()
    .to_string()
}

fn wait_replicas(d: &Daemon, name: &str, want: &str) {
    wait_for(
        &format!("service ls to show {name} {want}"),
        Duration::from_secs(60),
        || {
            let r = service_ls_replicas(d, name);
            if r == want {
                Ok(())
            } else {
                Err(format!("{r}\n{}", d.ps(name)))
            }
        },
    );
}

/// The IDs of `name`'s running tasks.
fn running_ids(d: &Daemon, name: &str) -> Vec<String> {
    d.running_tasks(name)
        .into_iter()
        .map(|(_, id, _)| id)
        .collect()
}

fn env_of(d: &Daemon, name: &str) -> String {
    d.inspect(name, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}")
}

#[test]
fn docker_cli_drives_a_one_node_swarm() {
    let Some((d, node)) = swarm() else {
        return;
    };

    let info = d.docker_ok(&["info"]);
    assert!(
        info.contains("Swarm: active") && info.contains("Managers: 1") && info.contains("Nodes: 1"),
        "{info}"
    );
    let nodes = d.docker_ok(&["node", "ls"]);
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
    assert!(
        nodes.contains(" * ")
            && nodes.contains("Ready")
            && nodes.contains("Active")
            && nodes.contains("Leader"),
        "{nodes}"
    );
    d.docker_ok(&["node", "update", "--label-add", "zone=east", &node]);
    let labels = d.docker_ok(&[
        "node",
        "inspect",
        "--format",
        "{{json .Spec.Labels}}",
        &node,
    ]);
    assert_eq!(labels.trim(), r#"{"zone":"east"}"#);

    d.service_create("--name web --replicas 3 --stop-grace-period 1s host sleep 1000");
    wait_replicas(&d, "web", "3/3");
    let listing = d.docker_ok(&["service", "ls"]);
    assert!(
        listing.contains("web")
            && listing.contains("replicated")
            && listing.contains("3/3")
            && listing.contains("host:latest"),
        "{listing}"
    );
    let p = d.ps("web");
    assert_eq!(
        p.lines().filter(|l| l.contains("Running")).count(),
        3,
        "{p}"
    );

    d.docker_ok(&["service", "scale", "-d", "web=5"]);
    wait_replicas(&d, "web", "5/5");

    let before: Vec<String> = running_ids(&d, "web");
    d.docker_ok(&[
        "service",
        "update",
        "-d",
        "--env-add",
        "GREETING=hello",
        "web",
    ]);
    assert_eq!(env_of(&d, "web"), r#"["GREETING=hello"]"#);
    // Every task is replaced by one with the new spec.
    let replaced = "all tasks replaced after the update";
    d.wait_tasks(replaced, Duration::from_secs(90), "web", |now| {
        now.len() == 5 && now.iter().all(|(_, id, _)| !before.contains(id))
    });
    d.wait_update_state("web", "completed", Duration::from_secs(30));

    d.docker_ok(&["service", "rollback", "-d", "web"]);
    assert_eq!(env_of(&d, "web"), "null");
    d.wait_update_state("web", "rollback_completed", Duration::from_secs(90));
    wait_replicas(&d, "web", "5/5");

    d.docker_ok(&["service", "rm", "web"]);
    let ls = d.docker_ok(&["service", "ls", "-q"]);
    assert!(ls.trim().is_empty(), "{ls}");
    wait_for("web's processes to stop", Duration::from_secs(30), || {
        let (_, tasks) = d.api("GET", "/v1.50/tasks", None);
        if tasks.as_array().is_some_and(|a| a.is_empty()) {
            Ok(())
        } else {
            Err(tasks.to_string())
        }
    });
}

/// The docker CLI writes `:latest` out on every update; a service made without it (here through
/// the API, as the Python SDK and `shoal up` make them) and then scaled keeps its tasks.
#[test]
fn docker_service_scale_of_a_service_made_without_a_tag_restarts_nothing() {
    let Some((d, _)) = swarm() else {
        return;
    };
    let body = serde_json::json!({
        "Name": "plain",
        "Mode": {"Replicated": {"Replicas": 2}},
        "TaskTemplate": {"ContainerSpec": {"Image": "host", "Command": ["sleep", "1000"]}},
    });
    let (status, v) = d.api(
        "POST",
        "/v1.50/services/create",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(status, 201, "{v}");
    d.wait_running("plain", 2);
    let before: Vec<String> = running_ids(&d, "plain");
    d.docker_ok(&["service", "scale", "-d", "plain=3"]);
    wait_replicas(&d, "plain", "3/3");
    let now: Vec<String> = running_ids(&d, "plain");
    assert!(
        before.iter().all(|id| now.contains(id)),
        "the scale replaced running tasks: before {before:?}, now {now:?}\n{}",
        d.ps("plain")
    );
    assert_eq!(
        d.inspect("plain", "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
            .trim(),
        "host"
    );
}

#[test]
fn docker_service_logs_show_each_tasks_output() {
    let Some((d, _)) = swarm() else {
        return;
    };
    d.service_create_with(
        "--name talk --replicas 2 --stop-grace-period 1s host sh -c",
        &["echo hello from $(hostname); echo oops >&2; sleep 1000"],
    );
    d.wait_running("talk", 2);
    let logs = wait_for("both tasks' lines", Duration::from_secs(30), || {
        let out = d.docker(&["service", "logs", "talk"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.matches("hello from").count() == 2 && text.matches("oops").count() == 2 {
            Ok(text)
        } else {
            Err(text)
        }
    });
    // docker names each line's task and node from the details shoal sends.
    for line in logs.lines() {
        assert!(
            line.starts_with("talk.1.") || line.starts_with("talk.2."),
            "{line}"
        );
        assert!(line.contains('@') && line.contains(" | "), "{line}");
    }
    let out = d.docker(&["service", "logs", "--timestamps", "--tail", "1", "talk"]);
    let stamped =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(stamped.lines().count(), 2, "{stamped}");
    assert!(stamped.lines().all(|l| l.starts_with("20")), "{stamped}");
}

#[test]
fn python_docker_sdk_creates_and_lists_services() {
    if !need(&[Need::Root, Need::Tool("docker"), Need::PythonDockerSdk]) {
        return;
    }
    let d = Daemon::start();
    d.swarm_init();
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
s = c.services.create("host", command=["sleep", "1000"], name="py", mode=docker.types.ServiceMode("replicated", replicas=2), stop_grace_period=1000000000)
names = sorted(x.name for x in c.services.list())
print(s.id, ",".join(names))
"#,
        host = d.host()
    );
    let stdout = common::python(&script);
    assert!(stdout.trim().ends_with(" py"), "{stdout}");
    d.wait_running("py", 2);
}

#[test]
fn killed_task_is_replaced_and_shown_failed() {
    let Some((d, _)) = swarm() else {
        return;
    };
    d.service_create(
        "--name web --replicas 2 --restart-delay 1s --stop-grace-period 1s host sleep 1000",
    );
    let tasks = d.wait_running("web", 2);
    let (slot, victim, pid) = tasks[0].clone();
    assert!(pid > 1, "{tasks:?}");
    common::kill9(pid);
    d.wait_tasks("the killed task's replacement", MINUTE, "web", |now| {
        now.len() == 2
            && now.iter().all(|(_, id, _)| *id != victim)
            && now.iter().any(|(s, _, _)| *s == slot)
    });
    let p = d.ps("web");
    let old = p
        .lines()
        .find(|l| l.starts_with(&victim))
        .unwrap_or_else(|| panic!("old task missing:\n{p}"));
    assert!(
        old.contains("Shutdown")
            && old.contains("Failed")
            && old.contains("task: non-zero exit (137)"),
        "{p}"
    );
}

#[test]
fn kill9_of_the_daemon_keeps_state_and_readopts_tasks() {
    let Some((mut d, node)) = swarm() else {
        return;
    };
    d.docker_ok(&["node", "update", "--label-add", "rack=r1", &node]);
    d.service_create(
        "--name web --replicas 3 --restart-delay 1s --stop-grace-period 1s host sleep 1000",
    );
    let before = d.wait_running("web", 3);
    // Give the task history an entry: kill one task and wait for its replacement.
    common::kill9(before[0].2);
    let running = d.wait_tasks("replacement", MINUTE, "web", |r| {
        r.len() == 3 && r.iter().all(|t| t.1 != before[0].1)
    });
    let history_before = d.ps("web").lines().count();

    d.kill9();
    // The tasks outlive the daemon: their processes still run.
    for (_, _, pid) in &running {
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "task pid {pid} died with the daemon"
        );
    }
    d.spawn();

    let after = d.wait_running("web", 3);
    assert_eq!(after, running, "tasks were restarted instead of adopted");
    let p = d.ps("web");
    assert_eq!(p.lines().count(), history_before, "{p}");
    assert!(p.contains("Failed"), "task history lost:\n{p}");
    let labels = d.docker_ok(&[
        "node",
        "inspect",
        "--format",
        "{{json .Spec.Labels}}",
        &node,
    ]);
    assert_eq!(labels.trim(), r#"{"rack":"r1"}"#);
    // And a task that dies after the restart is still replaced.
    common::kill9(after[1].2);
    d.wait_tasks("replacement after restart", MINUTE, "web", |r| {
        r.len() == 3 && r.iter().all(|t| t.1 != after[1].1)
    });
}

#[test]
fn drained_node_gets_nothing_and_impossible_constraints_stay_pending() {
    let Some((d, node)) = swarm() else {
        return;
    };
    d.docker_ok(&["node", "update", "--availability", "drain", &node]);
    d.service_create("--name web --replicas 2 --stop-grace-period 1s host sleep 1000");
    let drained = "no suitable node (1 node not available for new tasks)";
    d.wait_ps("pending with the drain reason", SECS_30, "web", |p| {
        p.lines()
            .filter(|l| l.contains("Pending") && l.contains(drained))
            .count()
            == 2
    });
    assert!(d.running_tasks("web").is_empty());
    d.docker_ok(&["node", "update", "--availability", "active", &node]);
    d.wait_running("web", 2);

    d.service_create_with(
        "--name nowhere --constraint node.labels.zone==mars",
        &["--stop-grace-period", "1s", "host", "sleep", "1000"],
    );
    let unmatched = "no suitable node (scheduling constraints not satisfied on 1 node)";
    d.wait_ps(
        "pending with the constraint reason",
        SECS_30,
        "nowhere",
        |p| p.contains("Pending") && p.contains(unmatched),
    );
    d.service_create("--name huge --reserve-memory 100000g host sleep 1000");
    d.wait_ps("pending with the resources reason", SECS_30, "huge", |p| {
        p.contains("insufficient resources on 1 node")
    });
    // Draining moves running tasks off the node.
    d.docker_ok(&["node", "update", "--availability", "drain", &node]);
    d.wait_tasks("drained tasks stopped", MINUTE, "web", |r| r.is_empty());
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let Some((d, _)) = swarm() else {
        return;
    };
    d.service_create("--name web --replicas 0 host sleep 1");
    let (_, svc) = d.api("GET", "/v1.50/services/web", None);
    let version = svc["Version"]["Index"].as_u64().expect("version");
    let spec = svc["Spec"].to_string();
    let state_before = d.docker_ok(&["service", "inspect", "web"]);

    let create = |body: &str| d.api("POST", "/v1.50/services/create", Some(body.as_bytes()));
    let msg = |v: &serde_json::Value| v["message"].as_str().unwrap_or_default().to_string();

    let (s, v) = d.api("GET", "/v1.50/services/nosuch", None);
    assert_eq!((s, msg(&v).as_str()), (404, "service nosuch not found"));
    let (s, v) = d.api("GET", "/v1.50/nodes/nosuch", None);
    assert_eq!((s, msg(&v).as_str()), (404, "node nosuch not found"));
    let (s, v) = d.api(
        "POST",
        "/v1.50/nodes/nosuch/update?version=1",
        Some(br#"{"Role":"worker","Availability":"drain"}"#),
    );
    assert_eq!(s, 404, "{v}");
    let (s, v) = d.api("GET", "/v1.50/tasks/nosuch", None);
    assert_eq!(s, 404, "{v}");
    let (s, v) = create(
        r#"{"Name":"neg","TaskTemplate":{"ContainerSpec":{"Image":"host"}},"Mode":{"Replicated":{"Replicas":-1}}}"#,
    );
    assert_eq!(
        (s, msg(&v).as_str()),
        (400, "Mode.Replicated.Replicas: must be 0 or more, got -1")
    );
    let (s, v) = create(
        r#"{"Name":"c","TaskTemplate":{"ContainerSpec":{"Image":"host"},"Placement":{"Constraints":["node.role=manager"]}}}"#,
    );
    assert_eq!(s, 400);
    assert!(
        msg(&v).starts_with("TaskTemplate.Placement.Constraints:")
            && msg(&v).contains("node.role=manager"),
        "{v}"
    );
    let (s, v) =
        create(r#"{"Name":"j","TaskTemplate":{"ContainerSpec":{"Image":"host","Args":[1]}}}"#);
    assert_eq!(s, 400);
    assert!(
        msg(&v).contains("TaskTemplate.ContainerSpec.Args[0]"),
        "{v}"
    );
    let (s, v) = create("{not json");
    assert_eq!(s, 400, "{v}");
    let status = common::http_announce_body(&d.socket(), "/v1.50/services/create", 5 * 1024 * 1024)
        .expect("413 answer");
    assert_eq!(status, 413);
    let (s, v) = create(r#"{"Name":"web","TaskTemplate":{"ContainerSpec":{"Image":"host"}}}"#);
    assert_eq!(s, 409, "{v}");
    // A stale version is refused with the versions named.
    let (s, v) = d.api(
        "POST",
        &format!("/v1.50/services/web/update?version={}", version - 1),
        Some(spec.as_bytes()),
    );
    assert_eq!(s, 409, "{v}");
    assert!(msg(&v).contains("update out of sequence"), "{v}");
    let (s, _) = d.api("POST", "/v1.50/services/web/update", Some(spec.as_bytes()));
    assert_eq!(s, 400);
    let (s, v) = d.api("GET", "/v1.99/services", None);
    assert_eq!(s, 400, "{v}");
    let (s, v) = d.api("GET", "/v1.50/tasks?filters=%7Bbad", None);
    assert_eq!(s, 400, "{v}");

    // Ambiguous ID prefixes: with 37 services two IDs must share their first character.
    let mut ids: Vec<String> = vec![svc["ID"].as_str().expect("id").to_string()];
    for i in 0..36 {
        let (s, v) = create(&format!(
            r#"{{"Name":"s{i}","TaskTemplate":{{"ContainerSpec":{{"Image":"host"}}}},"Mode":{{"Replicated":{{"Replicas":0}}}}}}"#
        ));
        assert_eq!(s, 201, "{v}");
        ids.push(v["ID"].as_str().expect("id").to_string());
    }
    let prefix = ids
        .iter()
        .map(|i| &i[..1])
        .find(|p| ids.iter().filter(|i| i.starts_with(*p)).count() > 1)
        .expect("pigeonhole");
    let (s, v) = d.api("GET", &format!("/v1.50/services/{prefix}"), None);
    assert_eq!(s, 400, "{v}");
    assert!(msg(&v).contains("ambiguous"), "{v}");

    // The daemon still serves and `web` is exactly as it was.
    assert_eq!(d.docker_ok(&["service", "inspect", "web"]), state_before);
    let out = d.docker(&["service", "scale", "-d", "web=-1"]);
    assert!(!out.status.success());
}

#[test]
fn api_also_listens_on_tcp_and_swarm_update_leave_and_reinit_work() {
    if !ready() {
        return;
    }
    let port = common::free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_with(vec![tcp.clone()]);
    d.swarm_init();
    let over_tcp = std::process::Command::new("docker")
        .args([
            "-H",
            &tcp,
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ])
        .env("DOCKER_CONFIG", d.data_dir().join("docker-config"))
        .output()
        .expect("docker over tcp");
    assert_eq!(
        String::from_utf8_lossy(&over_tcp.stdout).trim(),
        "active true",
        "{over_tcp:?}\n{}",
        d.log_tail()
    );

    d.docker_ok(&["swarm", "update", "--task-history-limit", "2"]);
    let limit = d.docker_ok(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}}",
    ]);
    assert_eq!(limit.trim(), "2");
    // With a limit of 2, a slot keeps its running task and at most 2 ended ones.
    d.service_create_with(
        "--name flaky --restart-delay 100ms --stop-grace-period 1s host sh -c",
        &["sleep 0.3; exit 1"],
    );
    // Watch several restarts go by: every task ever seen is remembered, while the store keeps
    // only the live task and the 2 newest ended ones (one more may wait a moment for the reaper).
    let mut seen = std::collections::BTreeSet::new();
    let total = wait_for("six restarts", Duration::from_secs(60), || {
        let (_, tasks) = d.api("GET", "/v1.50/tasks", None);
        let tasks = tasks.as_array().cloned().unwrap_or_default();
        seen.extend(
            tasks
                .iter()
                .filter_map(|t| t["ID"].as_str().map(str::to_string)),
        );
        if seen.len() >= 6 {
            Ok(tasks.len())
        } else {
            Err(format!("{} seen\n{}", seen.len(), d.ps("flaky")))
        }
    });
    assert!(
        total <= 4,
        "history not pruned: {total} tasks kept\n{}",
        d.ps("flaky")
    );

    let refused = d.docker(&["swarm", "leave"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--force"),
        "{refused:?}"
    );
    d.docker_ok(&["swarm", "leave", "--force"]);
    let state = d.docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(state.trim(), "inactive");
    let out = d.docker(&["service", "ls"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a swarm manager"),
        "{out:?}"
    );
    // Leaving stopped the tasks; a new swarm starts empty.
    d.swarm_init();
    assert!(d.docker_ok(&["service", "ls", "-q"]).trim().is_empty());
}

#[test]
fn restart_conditions_follow_swarm() {
    let Some((d, _)) = swarm() else {
        return;
    };
    d.service_create_with(
        "--name once --restart-condition none host sh -c",
        &["exit 3"],
    );
    d.service_create("--name clean --restart-condition on-failure host true");
    d.service_create_with(
        "--name retry --restart-condition on-failure --restart-delay 200ms",
        &["--restart-max-attempts", "2", "host", "sh", "-c", "exit 1"],
    );
    wait_for("tasks to settle", Duration::from_secs(60), || {
        let once = d.ps("once");
        let clean = d.ps("clean");
        let retry = d.ps("retry");
        let ok = once.lines().count() == 2
            && once.contains("Failed")
            && once.contains("task: non-zero exit (3)")
            && clean.lines().count() == 2
            && clean.contains("Complete")
            // The first try plus two restarts, then it gives up.
            && retry.lines().filter(|l| l.contains("Failed")).count() == 3;
        if ok {
            Ok(())
        } else {
            Err(format!("{once}\n{clean}\n{retry}"))
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.ps("retry")
            .lines()
            .filter(|l| l.contains("Failed"))
            .count(),
        3,
        "{}",
        d.ps("retry")
    );
    assert_eq!(service_ls_replicas(&d, "once"), "0/1");
}

#[test]
fn docker_service_logs_follow_and_update_force() {
    let Some((d, _)) = swarm() else {
        return;
    };
    d.service_create_with(
        "--name tick --stop-grace-period 1s host sh -c",
        &["i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"],
    );
    d.wait_running("tick", 1);
    let mut follow = std::process::Command::new("docker")
        .args(["service", "logs", "-f", "--tail", "0", "tick"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.data_dir().join("docker-config"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("docker logs -f");
    let mut stdout = follow.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.iter().filter(|b| **b == b'\n').count() < 5 {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    wait_for("followed lines", Duration::from_secs(30), || {
        if reader.is_finished() {
            Ok(())
        } else {
            Err("still reading".into())
        }
    });
    let text = reader.join().expect("reader");
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        text.lines().count() >= 5 && text.lines().all(|l| l.contains("| tick ")),
        "{text}"
    );

    // --force replaces the task although nothing in the spec changed.
    let before = d.wait_running("tick", 1);
    d.docker_ok(&["service", "update", "-d", "--force", "tick"]);
    d.wait_tasks("forced replacement", MINUTE, "tick", |now| {
        now.len() == 1 && now[0].1 != before[0].1
    });
}

/// Mounts, health checks and kernel settings given to the real docker CLI are stored as sent
/// and read back by it; a bad one is refused naming the field, and nothing is created.
#[test]
fn container_extras_round_trip_through_the_docker_cli() {
    let Some((d, _)) = swarm() else {
        return;
    };
    d.service_create_with(
        concat!(
            "--name extras --replicas 0",
            " --mount type=volume,source=data-{{.Task.Slot}},target=/data,volume-label=team=a",
            " --mount type=tmpfs,target=/scratch,tmpfs-size=1m",
            " --health-interval 2s --health-retries 4 --cap-add NET_ADMIN",
            " --sysctl net.core.somaxconn=1024 --ulimit nofile=1024:2048 --read-only",
        ),
        &["--health-cmd", "test -f /tmp/ok", "host", "sleep", "1"],
    );
    let get = |f: &str| {
        d.docker_ok(&[
            "service",
            "inspect",
            "--format",
            &format!("{{{{json .Spec.TaskTemplate.ContainerSpec.{f}}}}}"),
            "extras",
        ])
        .trim()
        .to_string()
    };
    let mounts: serde_json::Value = serde_json::from_str(&get("Mounts")).expect("json");
    assert_eq!(mounts[0]["Source"], "data-{{.Task.Slot}}", "{mounts}");
    assert_eq!(
        mounts[0]["VolumeOptions"]["Labels"]["team"], "a",
        "{mounts}"
    );
    assert_eq!(mounts[1]["Type"], "tmpfs", "{mounts}");
    assert_eq!(mounts[1]["TmpfsOptions"]["SizeBytes"], 1 << 20, "{mounts}");
    let health: serde_json::Value = serde_json::from_str(&get("Healthcheck")).expect("json");
    assert_eq!(health["Test"][1], "test -f /tmp/ok", "{health}");
    assert_eq!(health["Interval"], 2_000_000_000i64, "{health}");
    assert_eq!(health["Retries"], 4, "{health}");
    assert_eq!(get("CapabilityAdd"), r#"["CAP_NET_ADMIN"]"#);
    assert_eq!(get("Sysctls"), r#"{"net.core.somaxconn":"1024"}"#);
    assert!(get("Ulimits").contains(r#""Hard":2048"#));
    assert_eq!(get("ReadOnly"), "true");

    // An update of one field keeps the others (the CLI sends back what it read).
    d.docker_ok(&["service", "update", "-d", "--health-retries", "5", "extras"]);
    let health: serde_json::Value = serde_json::from_str(&get("Healthcheck")).expect("json");
    assert_eq!(
        (health["Retries"].as_i64(), health["Test"][1].as_str()),
        (Some(5), Some("test -f /tmp/ok"))
    );
    assert!(get("Mounts").contains("/scratch"));

    let bad = d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "badmount",
        "--mount",
        "type=volume,source=-data,target=/x",
        "host",
        "sleep",
        "1",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("TaskTemplate.ContainerSpec.Mounts[0].Source")
            && err.contains("\"-data\" is not a volume name"),
        "{err}"
    );
    let ls = d.docker_ok(&["service", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.contains("badmount"), "{ls}");
}
