//! shoal's own CLI against a real shoal daemon: docker's verbs, tables, progress and exit codes.

mod common;

use std::time::Duration;

use common::{Daemon, wait_for};
use shoal_testkit::{Need, need};

fn ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.shoal(args);
    assert!(
        out.status.success(),
        "shoal {args:?} exited {:?}: {}\n{}\ndaemon log:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        d.log_tail()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn shoal_cli_runs_the_service_life_cycle() {
    if !need(&[Need::Root]) {
        return;
    }
    let d = Daemon::start();
    let out = d.shoal_swarm_init();
    assert!(out.status.success(), "{out:?}");
    let init = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        init.starts_with("Swarm initialized: current node ("),
        "{init}"
    );
    let nodes = ok(&d, &["node", "ls"]);
    let header = nodes.lines().next().unwrap_or_default();
    for col in common::NODE_LS_COLUMNS {
        assert!(header.contains(col), "{nodes}");
    }
    let node = nodes
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("a node row")
        .to_string();
    ok(&d, &["node", "update", "--label-add", "disk=ssd", &node]);
    let pretty = ok(&d, &["node", "inspect", "--pretty", &node]);
    assert!(
        pretty.contains("disk=ssd") || pretty.contains("disk = ssd"),
        "{pretty}"
    );

    // Without -d the command waits for convergence and shows docker's progress.
    let created = ok(
        &d,
        &[
            "service",
            "create",
            "--name",
            "web",
            "--replicas",
            "2",
            "--stop-grace-period",
            "1s",
            "--update-monitor",
            "1s",
            "host",
            "sleep",
            "1000",
        ],
    );
    assert!(
        created.contains("overall progress: 2 out of 2 tasks"),
        "{created}"
    );
    assert!(
        created.contains("verify: Service") && created.contains("converged"),
        "{created}"
    );
    let ls = ok(&d, &["service", "ls"]);
    assert!(ls.contains("web") && ls.contains("2/2"), "{ls}");

    let scaled = ok(&d, &["service", "scale", "web=3"]);
    assert!(scaled.contains("web scaled to 3"), "{scaled}");
    assert_eq!(d.running_tasks("web").len(), 3);

    ok(&d, &["service", "update", "--env-add", "COLOR=blue", "web"]);
    let inspect = ok(&d, &["service", "inspect", "--pretty", "web"]);
    assert!(inspect.contains("COLOR=blue"), "{inspect}");
    let ps = ok(&d, &["service", "ps", "web"]);
    assert!(
        ps.contains(" \\_ web."),
        "old tasks shown under their slot:\n{ps}"
    );

    ok(&d, &["service", "rollback", "web"]);
    // Like docker's, the CLI returns once tasks are stable; the swarm marks the rollback
    // complete when its own monitor window passes.
    let inspect = wait_for("rollback completed", Duration::from_secs(30), || {
        let i = ok(&d, &["service", "inspect", "--pretty", "web"]);
        if i.contains("rollback_completed") {
            Ok(i)
        } else {
            Err(i)
        }
    });
    assert!(!inspect.contains("COLOR=blue"), "{inspect}");

    ok(
        &d,
        &[
            "service",
            "create",
            "-d",
            "--name",
            "talk",
            "--stop-grace-period",
            "1s",
            "host",
            "sh",
            "-c",
            "echo hi from shoal; sleep 1000",
        ],
    );
    let logs = wait_for("talk's output", Duration::from_secs(30), || {
        let l = ok(&d, &["service", "logs", "talk"]);
        if l.contains("hi from shoal") {
            Ok(l)
        } else {
            Err(l)
        }
    });
    assert!(logs.starts_with("talk.1."), "{logs}");

    ok(&d, &["service", "rm", "web", "talk"]);
    assert!(ok(&d, &["service", "ls", "-q"]).trim().is_empty());
}

#[test]
fn shoal_cli_errors_name_the_problem_with_docker_exit_codes() {
    if !need(&[Need::Root]) {
        return;
    }
    let d = Daemon::start();
    assert!(d.shoal_swarm_init().status.success());
    let out = d.shoal(&["service", "create", "--replicas", "-1", "host", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--replicas"),
        "{out:?}"
    );
    let out = d.shoal(&["service", "create", "--limit-memory", "12q", "host", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--limit-memory"),
        "{out:?}"
    );
    let out = d.shoal(&["service", "inspect", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("no such service: nosuch"),
        "{out:?}"
    );
    let out = d.shoal(&[
        "service",
        "create",
        "-d",
        "--constraint",
        "node.role=manager",
        "host",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error response from daemon") && err.contains("node.role=manager"),
        "{err}"
    );
    // `--host` after `service create` is docker's extra host (`-H` before it, the daemon): it
    // reaches the spec, where a task of the host image cannot take it.
    let out = d.shoal(&[
        "service",
        "create",
        "-d",
        "--host",
        "db.example:192.0.2.7",
        "host",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TaskTemplate.ContainerSpec.Hosts: tasks of the host image"),
        "{err}"
    );
    let out = d.shoal(&["service", "create", "--host", "db:nowhere", "host", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid IP address in add-host"),
        "{out:?}"
    );
    let out = d.shoal_swarm_init();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already part of a swarm"),
        "{out:?}"
    );
}
