//! Health checks end to end on the native runtime: a real daemon, shoal's CLI and the docker
//! CLI. A task with a check is `starting` until the check passes, and a task whose check fails
//! is replaced, with the check's output in its error.

mod common;

use std::time::Duration;

use common::{Daemon, wait_for};
use shoal_testkit::{Need, need};

#[test]
fn a_checked_task_starts_healthy_and_is_replaced_once_unhealthy() {
    if !need(&[Need::Root, Need::Tool("docker")]) {
        return;
    }
    let d = Daemon::start();
    assert!(d.shoal_swarm_init().status.success());
    // The task's health hangs on a file the test controls (the `host` image sees the node's
    // filesystem).
    let flag_dir = tempfile::tempdir().expect("tempdir");
    let ok_file = flag_dir.path().join("ok");
    let check = format!("test -f {}", ok_file.display());
    d.service_create_with(
        "--name checked --health-interval 200ms --health-retries 2 --health-start-period 60s",
        &[
            "--restart-delay",
            "100ms",
            "--health-cmd",
            &check,
            "host",
            "sleep",
            "1000",
        ],
    );
    let first = wait_for("a starting task", Duration::from_secs(30), || {
        let s = d.task_states("checked");
        match s.iter().find(|t| t.1 == "starting") {
            Some(t) => Ok(t.0.clone()),
            None => Err(format!("{s:?}")),
        }
    });
    // Failing checks inside the start period do not count: it stays starting.
    std::thread::sleep(Duration::from_secs(1));
    let s = d.task_states("checked");
    assert!(s.iter().any(|t| t.0 == first && t.1 == "starting"), "{s:?}");
    std::fs::write(&ok_file, b"").expect("flag file");
    wait_for("a running task", Duration::from_secs(30), || {
        let s = d.task_states("checked");
        if s.iter().any(|t| t.1 == "running") {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    let running: Vec<_> = d
        .task_states("checked")
        .into_iter()
        .filter(|t| t.1 == "running")
        .collect();
    assert_eq!(running.len(), 1, "{running:?}");
    let healthy = running[0].0.clone();
    assert_eq!(healthy, first, "the same task became healthy");

    std::fs::remove_file(&ok_file).expect("remove flag");
    let failed = wait_for("the unhealthy task failed", Duration::from_secs(30), || {
        let s = d.task_states("checked");
        match s.iter().find(|t| t.0 == healthy && t.1 == "failed") {
            Some(t) => Ok(t.2.clone()),
            None => Err(format!("{s:?}")),
        }
    });
    assert!(failed.starts_with("task: unhealthy container"), "{failed}");
    // A success ended the start period, so the failures counted. A replacement comes, and
    // stays starting (no file, and a new start period).
    wait_for("a replacement", Duration::from_secs(30), || {
        let s = d.task_states("checked");
        if s.iter().any(|t| t.0 != healthy && t.1 == "starting") {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    let ps = d.docker_ok(&["service", "ps", "--no-trunc", "checked"]);
    assert!(ps.contains("unhealthy container"), "{ps}");
}
