//! Swarm's service templates end to end: the real `docker` CLI and shoal's own CLI create services
//! whose hostname and environment use `{{.Service.Name}}`-style placeholders, the node expands
//! them in the running process, and a misspelt placeholder is refused at create and update time
//! with the field and the position.

mod common;

use std::time::Duration;

use common::{Daemon, wait_for};
use shoal_testkit::{Need, need};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until a line of `logs` output (after docker's `task@node | ` prefix) is exactly `want`.
fn wait_log_line(d: &Daemon, cli: &str, service: &str, want: &str) {
    wait_for(
        &format!("{service}'s logs to show {want:?}"),
        Duration::from_secs(60),
        || {
            let out = match cli {
                "docker" => d.docker(&["service", "logs", service]),
                _ => d.shoal(&["service", "logs", service]),
            };
            let all = text(&out);
            let found = all
                .lines()
                .any(|l| l.rsplit_once("| ").map_or(l, |(_, msg)| msg).trim() == want);
            if found {
                Ok(())
            } else {
                Err(format!(
                    "{all}\n{}",
                    text(&d.docker(&["service", "ps", "--no-trunc", service]))
                ))
            }
        },
    );
}

#[test]
fn templates_expand_on_the_node_and_typos_are_refused_with_their_position() {
    if !need(&[Need::Root, Need::Tool("docker")]) {
        return;
    }
    let d = Daemon::start();
    d.swarm_init();
    let node_hostname = d
        .docker_ok(&[
            "node",
            "inspect",
            "self",
            "--format",
            "{{.Description.Hostname}}",
        ])
        .trim()
        .to_string();
    assert!(!node_hostname.is_empty());

    d.service_create_with(
        concat!(
            "--name tpl --stop-grace-period 1s --hostname {{.Service.Name}}-{{.Task.Slot}}",
            " --env WHERE={{.Node.Hostname}} host sh -c",
        ),
        &["echo $(hostname) $WHERE; sleep 1000"],
    );
    d.wait_running("tpl", 1);
    wait_log_line(&d, "docker", "tpl", &format!("tpl-1 {node_hostname}"));
    // The stored spec keeps the template: the node expands it, so tasks compare as up to date.
    let stored = d.docker_ok(&[
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Hostname}} {{json .Spec.TaskTemplate.ContainerSpec.Env}}",
        "tpl",
    ]);
    assert_eq!(
        stored.trim(),
        r#"{{.Service.Name}}-{{.Task.Slot}} ["WHERE={{.Node.Hostname}}"]"#
    );

    let refused = d.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "typo",
        "--hostname",
        "{{.Service.Nmae}}",
        "host",
        "sleep",
        "1000",
    ]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(
            "TaskTemplate.ContainerSpec.Hostname: template: Hostname:1:11: unknown field \
             .Service.Nmae (did you mean .Service.Name?)"
        ),
        "{}",
        text(&refused)
    );
    let ls = d.docker_ok(&["service", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.trim(), "tpl", "a refused service is not stored");

    // Updates are checked too, and leave the service as it was.
    let refused = d.docker(&[
        "service",
        "update",
        "-d",
        "--env-add",
        "X={{.Task.Slot",
        "tpl",
    ]);
    assert!(!refused.status.success(), "{}", text(&refused));
    // docker rebuilds the env list from a map, so the entry's index is not fixed.
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("TaskTemplate.ContainerSpec.Env[") && err.contains(":1:3: unclosed action"),
        "{}",
        text(&refused)
    );

    // shoal's own CLI passes templates through, and shows the daemon's refusal as it is.
    let out = d.shoal(&[
        "service",
        "create",
        "-d",
        "--name",
        "stpl",
        "--stop-grace-period",
        "1s",
        "--hostname",
        "{{.Service.Name}}",
        "--env",
        "OS={{.Node.Platform.OS}}",
        "host",
        "sh",
        "-c",
        "echo $(hostname) $OS; sleep 1000",
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.log_tail());
    wait_log_line(&d, "shoal", "stpl", "stpl linux");
    let out = d.shoal(&[
        "service",
        "create",
        "-d",
        "--name",
        "styp",
        "--env",
        "A={{.Node.Hostnme}}",
        "host",
        "sleep",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error response from daemon: TaskTemplate.ContainerSpec.Env[0]: template: Env[0]:1:10: \
         unknown field .Node.Hostnme (did you mean .Node.Hostname?)"
    );
}
