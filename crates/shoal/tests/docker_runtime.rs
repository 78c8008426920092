//! A real `shoal daemon --runtime docker` running services as containers of the real Docker
//! Engine, driven with the real `docker` CLI: against shoal for the swarm side, against the engine
//! (`docker -H unix:///var/run/docker.sock`) to see and break the containers. Uses the locally
//! built `shoal-test/busybox:latest` (tests/images/build.sh).
//!
//! They need root, a Docker Engine and the image (`shoal_testkit::need`). Each daemon's
//! containers and volumes carry its data dir as owner label and are removed when the test ends
//! (the harness's `Daemon` drop).

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{Daemon, wait_for};
use shoal_testkit::{Need, need};

const IMAGE: &str = "shoal-test/busybox:latest";
const ENGINE: &str = "unix:///var/run/docker.sock";

fn ready() -> bool {
    need(&[
        Need::Root,
        Need::Tool("docker"),
        Need::DockerEngine,
        Need::TestImage,
    ])
}

/// The real `docker` CLI against the real engine.
fn engine(args: &[&str]) -> Output {
    Command::new("docker")
        .arg("-H")
        .arg(ENGINE)
        .args(args)
        .env_remove("DOCKER_CONTEXT")
        .output()
        .expect("run docker")
}

/// A daemon on the Docker runtime (its containers go with its `Daemon` when the test ends).
struct DockerDaemon {
    d: Daemon,
    node: String,
}

impl DockerDaemon {
    /// `live_restore`: keep containers across a daemon restart (the harness's drop removes
    /// them, and any native task, when the test ends).
    fn start(live_restore: bool) -> DockerDaemon {
        let mut flags = vec!["--runtime".to_string(), "docker".to_string()];
        if live_restore {
            flags.push("--live-restore".into());
        }
        let d = Daemon::start_with_flags(Vec::new(), flags);
        let node = d.swarm_init();
        DockerDaemon { d, node }
    }

    /// IDs of this node's containers of `service` on the engine (running or not, with `all`).
    fn containers(&self, service: &str, all: bool) -> Vec<String> {
        let node = format!("label=com.docker.swarm.node.id={}", self.node);
        let svc = format!("label=com.docker.swarm.service.name={service}");
        let mut args = vec![
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &node,
            "--filter",
            &svc,
        ];
        if all {
            args.push("-a");
        }
        let out = engine(&args);
        let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    }
}

/// The container of a task, by its label.
fn container_of(task: &str) -> String {
    let label = format!("label=com.docker.swarm.task.id={task}");
    let out = engine(&["ps", "-aq", "--no-trunc", "--filter", &label]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn replicas_run_as_containers_are_replaced_and_adopted_after_a_restart() {
    if !ready() {
        return;
    }
    let mut dd = DockerDaemon::start(true);
    let driver = dd.d.docker_ok(&["info", "--format", "{{.Driver}}"]);
    assert_eq!(driver.trim(), "docker", "images run on the Docker runtime");
    dd.d.service_create_with(
        "--name web --replicas 3 --stop-grace-period 1s",
        &[IMAGE, "sleep", "1000"],
    );
    dd.d.wait_running("web", 3);
    let before = wait_for("3 containers", Duration::from_secs(60), || {
        let c = dd.containers("web", false);
        if c.len() == 3 {
            Ok(c)
        } else {
            Err(format!("{c:?}\n{}", dd.d.ps("web")))
        }
    });
    let name = engine(&["inspect", "-f", "{{.Name}}", &before[0]]);
    assert!(
        String::from_utf8_lossy(&name.stdout)
            .trim()
            .starts_with("/web."),
        "{name:?}"
    );

    // A container removed behind shoal's back is a failed task, replaced.
    let rm = engine(&["rm", "-f", &before[0]]);
    assert!(rm.status.success(), "{rm:?}");
    let after = wait_for("a replacement container", Duration::from_secs(60), || {
        let c = dd.containers("web", false);
        let running = dd.d.running_tasks("web");
        if c.len() == 3 && !c.contains(&before[0]) && running.len() == 3 {
            Ok(c)
        } else {
            Err(format!("{c:?}\n{}", dd.d.ps("web")))
        }
    });

    // Live restore: the containers outlive the daemon and the next one adopts them.
    dd.d.stop();
    assert_eq!(
        dd.containers("web", false),
        after,
        "containers kept running"
    );
    dd.d.spawn();
    dd.d.wait_running("web", 3);
    let tasks = dd.d.running_tasks("web");
    // Once a service made after the restart runs, the new agent has acted on every assignment,
    // so a duplicate of an adopted task would exist by now.
    dd.d.service_create_with("--name probe", &[IMAGE, "sleep", "1000"]);
    dd.d.wait_running("probe", 1);
    assert_eq!(
        dd.d.running_tasks("web"),
        tasks,
        "the same tasks, still running"
    );
    assert_eq!(dd.containers("web", true), after, "adopted, not duplicated");
}

#[test]
fn missing_images_and_out_of_memory_tasks_fail_with_docker_s_reason() {
    if !ready() {
        return;
    }
    let dd = DockerDaemon::start(false);
    // The reserved `host` image needs no image at all: it runs natively even on `--runtime docker`.
    dd.d.service_create("--name here host sleep 1000");
    dd.d.wait_running("here", 1);
    assert!(dd.containers("here", true).is_empty());

    dd.d.service_create("--name ghost shoal-test/no-such-image:latest");
    wait_for("the task to be rejected", Duration::from_secs(60), || {
        let ps = dd.d.ps("ghost");
        if ps.contains("Rejected") && ps.contains("No such image") {
            Ok(())
        } else {
            Err(ps)
        }
    });

    dd.d.service_create_with(
        "--name hog --restart-condition none --limit-memory 20MiB",
        &[IMAGE, "sh", "-c", common::EAT_200MB],
    );
    wait_for("the task to be OOM-killed", Duration::from_secs(60), || {
        let ps = dd.d.ps("hog");
        if ps.contains("Failed") && ps.contains("OOM") {
            Ok(())
        } else {
            Err(ps)
        }
    });
    let c = dd.containers("hog", true);
    assert_eq!(c.len(), 1, "{c:?}");
    let oom = engine(&[
        "inspect",
        "-f",
        "{{.State.OOMKilled}} {{.HostConfig.Memory}}",
        &c[0],
    ]);
    assert_eq!(String::from_utf8_lossy(&oom.stdout).trim(), "true 20971520");
}

#[test]
fn a_named_volume_keeps_its_files_across_a_task_replacement() {
    if !ready() {
        return;
    }
    let dd = DockerDaemon::start(false);
    let vol = format!("shoal-it-vol-{}", std::process::id());
    let mount = format!("type=volume,source={vol},target=/data");
    dd.d.service_create_with(
        "--name keeper --stop-grace-period 1s",
        &[
            "--mount",
            &mount,
            IMAGE,
            "sh",
            "-c",
            "echo run >> /data/runs; exec sleep 1000",
        ],
    );
    let first = dd.d.wait_running("keeper", 1)[0].1.clone();
    let c1 = container_of(&first);
    let runs = |c: &str| {
        let out = engine(&["exec", c, "cat", "/data/runs"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for("the first run's line", Duration::from_secs(30), || {
        let r = runs(&c1);
        if r == "run\n" { Ok(()) } else { Err(r) }
    });
    let rm = engine(&["rm", "-f", &c1]);
    assert!(rm.status.success(), "{rm:?}");
    let c2 = wait_for("a replacement", Duration::from_secs(60), || {
        let r = dd.d.running_tasks("keeper");
        match r.first() {
            Some(t) if t.1 != first => Ok(container_of(&t.1)),
            _ => Err(format!("{r:?}\n{}", dd.d.ps("keeper"))),
        }
    });
    wait_for("both runs' lines", Duration::from_secs(30), || {
        let r = runs(&c2);
        if r == "run\nrun\n" { Ok(()) } else { Err(r) }
    });
    let ls = dd.d.docker_ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(ls.lines().any(|l| l == vol), "{ls}");
}

#[test]
fn a_checked_container_is_starting_until_healthy_and_replaced_when_unhealthy() {
    if !ready() {
        return;
    }
    let dd = DockerDaemon::start(false);
    dd.d.service_create_with(
        "--name checked --health-interval 200ms --health-retries 2 --stop-grace-period 1s",
        &["--health-cmd", "test -f /tmp/ok", IMAGE, "sleep", "1000"],
    );
    let first = wait_for("a starting task", Duration::from_secs(60), || {
        let s = dd.d.task_states("checked");
        match s.iter().find(|t| t.1 == "starting") {
            Some(t) => Ok(t.0.clone()),
            None => Err(format!("{s:?}")),
        }
    });
    let c = container_of(&first);
    let touch = engine(&["exec", &c, "touch", "/tmp/ok"]);
    assert!(touch.status.success(), "{touch:?}");
    wait_for(
        "the task to run once healthy",
        Duration::from_secs(60),
        || {
            let s = dd.d.task_states("checked");
            if s.iter().any(|t| t.0 == first && t.1 == "running") {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        },
    );
    let rm = engine(&["exec", &c, "rm", "/tmp/ok"]);
    assert!(rm.status.success(), "{rm:?}");
    let err = wait_for(
        "the unhealthy task to fail",
        Duration::from_secs(60),
        || {
            let s = dd.d.task_states("checked");
            match s.iter().find(|t| t.0 == first && t.1 == "failed") {
                Some(t) => Ok(t.2.clone()),
                None => Err(format!("{s:?}")),
            }
        },
    );
    assert!(err.contains("unhealthy"), "{err}");
    wait_for("a replacement", Duration::from_secs(60), || {
        let s = dd.d.task_states("checked");
        if s.iter().any(|t| t.0 != first && t.1 == "starting") {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
}

#[test]
fn runtime_docker_without_a_docker_daemon_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("shoal.sock");
    let out = Command::new(common::SHOAL)
        .args(["daemon", "--runtime", "docker", "--data-dir"])
        .arg(dir.path())
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .env(
            "DOCKER_HOST",
            format!("unix://{}", dir.path().join("no-docker.sock").display()),
        )
        .output()
        .expect("run shoal daemon");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--runtime docker: cannot reach the Docker daemon"),
        "{err}"
    );
}

/// `--dns --dns-search --dns-option --host` on the Docker runtime: the container (on the
/// engine's own network) gets them as Swarm's agent gives them, `Dns`, `DnsSearch`, `DnsOptions`
/// and `ExtraHosts` (`name:ip`, one per name), and dockerd writes them into its files.
#[test]
fn dns_settings_and_hosts_reach_the_container() {
    if !ready() {
        return;
    }
    let dd = DockerDaemon::start(false);
    dd.d.service_create_with(
        concat!(
            "--name dns --dns 192.0.2.53 --dns-search example.org --dns-option timeout:2",
            " --host db.example:192.0.2.7",
        ),
        &[IMAGE, "sleep", "1000"],
    );
    let task = dd.d.wait_running("dns", 1)[0].1.clone();
    let c = container_of(&task);
    let inspect = engine(&[
        "inspect",
        "-f",
        "{{json .HostConfig.Dns}} {{json .HostConfig.DnsSearch}} {{json .HostConfig.DnsOptions}} {{json .HostConfig.ExtraHosts}}",
        &c,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        r#"["192.0.2.53"] ["example.org"] ["timeout:2"] ["db.example:192.0.2.7"]"#,
        "{inspect:?}"
    );
    let files = engine(&["exec", &c, "cat", "/etc/resolv.conf", "/etc/hosts"]);
    let files = String::from_utf8_lossy(&files.stdout);
    let lines: Vec<&str> = files.lines().collect();
    for want in [
        "search example.org",
        "nameserver 192.0.2.53",
        "options timeout:2",
        "192.0.2.7\tdb.example",
    ] {
        assert!(lines.contains(&want), "{want:?} in {files}");
    }
}
