//! A task's resource limits end to end: given to the real `docker` CLI and to shoal's, stored,
//! shown back as docker shows them, refused by field when wrong, and enforced on the task's
//! process (its cgroup). What each driver does with a limit is the conformance suite's
//! (`shoal_runtime::conformance`); this checks the way there.

mod common;

use std::time::Duration;

use common::{Daemon, wait_for};
use shoal_testkit::{Need, need};

/// The `pids.max` of `pid`'s cgroup ("max" when unlimited); `None` when it has none to read.
fn pids_max(pid: i64) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        let roots: &[&str] = if controllers.is_empty() {
            &["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        } else if controllers.split(',').any(|c| c == "pids") {
            &["/sys/fs/cgroup/pids"]
        } else {
            &[]
        };
        roots.iter().find_map(|root| {
            let file = std::path::Path::new(root).join(rel).join("pids.max");
            Some(std::fs::read_to_string(file).ok()?.trim().to_string())
        })
    })
}

/// Waits until `service` runs one task whose cgroup's `pids.max` is `want`.
fn wait_pids_max(d: &Daemon, service: &str, want: &str) {
    wait_for(
        &format!("a task of {service} with pids.max {want}"),
        Duration::from_secs(60),
        || {
            let tasks = d.running_tasks(service);
            match tasks.as_slice() {
                [(_, _, pid)] if pids_max(*pid).as_deref() == Some(want) => Ok(()),
                _ => Err(format!(
                    "running {tasks:?}, pids.max {:?}\n{}",
                    tasks.iter().map(|t| pids_max(t.2)).collect::<Vec<_>>(),
                    d.ps(service)
                )),
            }
        },
    );
}

/// The `PIDs:` line of `service inspect --pretty`, trimmed; `None` without one.
fn pretty_pids(pretty: &str) -> Option<String> {
    pretty
        .lines()
        .find(|l| l.trim_start().starts_with("PIDs:"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[test]
fn pids_limit_through_both_clis_to_the_tasks_cgroup() {
    if !need(&[Need::Root, Need::Tool("docker")]) {
        return;
    }
    let d = Daemon::start();
    d.swarm_init();
    d.service_create("--name capped --limit-pids 5 --stop-grace-period 1s host sleep 1000");
    let limits = || d.inspect("capped", "{{json .Spec.TaskTemplate.Resources.Limits}}");
    assert_eq!(limits(), r#"{"Pids":5}"#);
    wait_pids_max(&d, "capped", "5");

    // Shown under Limits, as docker shows it, by both CLIs.
    let docker_pretty = d.docker_ok(&["service", "inspect", "--pretty", "capped"]);
    assert_eq!(
        pretty_pids(&docker_pretty).as_deref(),
        Some("PIDs: 5"),
        "{docker_pretty}"
    );
    let shoal_pretty = d.shoal(&["service", "inspect", "--pretty", "capped"]);
    let shoal_pretty = String::from_utf8_lossy(&shoal_pretty.stdout);
    assert_eq!(
        pretty_pids(&shoal_pretty).as_deref(),
        Some("PIDs: 5"),
        "{shoal_pretty}"
    );
    assert!(
        shoal_pretty.contains(" Limits:\n  PIDs:"),
        "PIDs under Limits: {shoal_pretty}"
    );

    // A negative count is refused by field, and changes nothing.
    let bad = d.docker(&["service", "update", "-d", "--limit-pids", "-1", "capped"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("TaskTemplate.Resources.Limits.Pids"),
        "{err}"
    );
    assert_eq!(limits(), r#"{"Pids":5}"#);

    // shoal's CLI changes it; docker's removes it (0 is unlimited, and not shown).
    let out = d.shoal(&["service", "update", "-d", "--limit-pids", "7", "capped"]);
    assert!(out.status.success(), "{out:?}\n{}", d.log_tail());
    assert_eq!(limits(), r#"{"Pids":7}"#);
    wait_pids_max(&d, "capped", "7");
    d.docker_ok(&["service", "update", "-d", "--limit-pids", "0", "capped"]);
    assert_eq!(limits(), "{}");
    wait_pids_max(&d, "capped", "max");
    let docker_pretty = d.docker_ok(&["service", "inspect", "--pretty", "capped"]);
    assert_eq!(pretty_pids(&docker_pretty), None, "{docker_pretty}");
}
