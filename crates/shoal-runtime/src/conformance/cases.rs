//! The behaviours, one function each; see the module above for how drivers run them.

use std::collections::BTreeMap;
use std::time::Duration;

use shoal_types::container::{HealthConfig, Mount, MountKind};

use super::{
    Harness, SIGKILL, SIGUSR1, both, command_task, is_not_found, lines, output, poll, start, task,
    until_output, wait,
};
use crate::{
    ExitInfo, Health, LogOptions, RuntimeDriver, RuntimeError, RuntimeTask, RuntimeTaskState,
};

/// A script that says it is up, then runs until killed; it ignores nothing itself, but as PID
/// 1 of its container the kernel gives it no default action for catchable signals.
pub(super) const RUNS: &str = "echo ready; while :; do sleep 0.1; done";

fn state_of(listed: &[RuntimeTask], id: &shoal_types::Id) -> Option<RuntimeTaskState> {
    listed
        .iter()
        .find(|t| &t.task_id == id)
        .map(|t| t.state.clone())
}

pub(super) fn codes(e: &ExitInfo) -> (i64, Option<i32>, bool) {
    (e.code, e.signal, e.oom_killed)
}

/// Prepare (twice: a no-op), start, the exit code, stdout and stderr kept apart, and what
/// `list` says at each step.
pub async fn exit_code_and_split_output<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "exit", "echo out; echo err >&2; echo more; exit 3");
    d.prepare(&r).await.expect("prepare");
    d.prepare(&r).await.expect("prepare again is a no-op");
    let listed = d.list().await.expect("list");
    assert_eq!(
        state_of(&listed, &r.task_id),
        Some(RuntimeTaskState::Created),
        "{name}: a prepared task is listed as created: {listed:?}"
    );
    assert!(
        matches!(d.wait(&r.task_id).await, Err(RuntimeError::StartFailed(_))),
        "{name}: waiting for a task never started is StartFailed"
    );
    d.start(&r.task_id).await.expect("start");
    let exit = wait(h, &d, &r.task_id).await;
    assert_eq!(codes(&exit), (3, None, false), "{name}: exit {exit:?}");
    assert!(
        exit.finished_at.unix_nanos() > 0,
        "{name}: finished_at is set"
    );
    assert_eq!(
        output(h, &d, &r.task_id).await,
        ("out\nmore\n".to_string(), "err\n".to_string()),
        "{name}: stdout and stderr"
    );
    let only_err = LogOptions {
        stderr: true,
        ..Default::default()
    };
    assert_eq!(
        lines(h, &d, &r.task_id, only_err).await,
        vec!["err\n"],
        "{name}: stderr alone"
    );
    let listed = d.list().await.expect("list");
    assert!(
        matches!(state_of(&listed, &r.task_id), Some(RuntimeTaskState::Exited(e)) if e == exit),
        "{name}: an exited task is listed with its exit: {listed:?}"
    );
}

/// A process killed by signal N exits 128+N, with the signal.
pub async fn exit_by_signal_is_128_plus_n<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "signal", RUNS);
    let pid = start(h, &d, &r).await;
    assert!(pid > 0, "{name}: start returns the process's pid");
    until_output(h, &d, &r.task_id, "ready").await;
    h.kill(&d, &r.task_id, pid, SIGKILL).await;
    let exit = wait(h, &d, &r.task_id).await;
    assert_eq!(codes(&exit), (137, Some(9), false), "{name}: {exit:?}");
}

/// `stop` sends the spec's stop signal (SIGTERM by default); a task that exits on it ends
/// with its own code, long before the grace. Stopping an exited task is a no-op.
pub async fn stop_ends_a_task_that_heeds_its_stop_signal<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let term = task(h, "stopterm", &format!("trap 'exit 0' TERM; {RUNS}"));
    // Only SIGINT is trapped: were SIGTERM sent, the task would last the whole grace.
    let mut int = task(h, "stopint", &format!("trap 'exit 7' INT; {RUNS}"));
    int.container.stop_signal = "SIGINT".into();
    for (r, code) in [(&term, 0), (&int, 7)] {
        start(h, &d, r).await;
        until_output(h, &d, &r.task_id, "ready").await;
        // A grace as long as the suite's deadline: a KILL would show as 137, not as `code`.
        d.stop(&r.task_id, super::DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{name}: stop: {e}"));
        let exit = wait(h, &d, &r.task_id).await;
        assert_eq!(
            codes(&exit),
            (code, None, false),
            "{name}: {} exits of its trap: {exit:?}",
            r.task_id
        );
        d.stop(&r.task_id, Duration::from_secs(1))
            .await
            .unwrap_or_else(|e| panic!("{name}: stopping an exited task is a no-op: {e}"));
    }
}

/// A task that ignores its stop signal is killed once the grace is over: 137, SIGKILL.
pub async fn stop_kills_after_the_grace<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "stubborn", &format!("trap '' TERM; {RUNS}"));
    start(h, &d, &r).await;
    until_output(h, &d, &r.task_id, "ready").await;
    let grace = Duration::from_secs(1);
    let began = tokio::time::Instant::now();
    match tokio::time::timeout(super::DEADLINE, d.stop(&r.task_id, grace)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{name}: stop: {e}"),
        Err(_) => panic!("{name}: stop did not return"),
    }
    let took = began.elapsed();
    // A lower bound only: the grace was given, however slow the machine.
    assert!(took >= grace, "{name}: killed before the grace: {took:?}");
    let exit = wait(h, &d, &r.task_id).await;
    assert_eq!(codes(&exit), (137, Some(9), false), "{name}: {exit:?}");
}

/// `tail` gives the last N lines. (Of one stream: with both streams written, Docker counts
/// the lines of both before it drops the stream not asked for, so the contract leaves that
/// case open.)
pub async fn logs_tail<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "tail", "echo 1; echo 2; echo 3");
    start(h, &d, &r).await;
    assert_eq!(wait(h, &d, &r.task_id).await.code, 0, "{name}");
    let tail = |n| LogOptions {
        tail: Some(n),
        ..both()
    };
    assert_eq!(
        lines(h, &d, &r.task_id, tail(2)).await,
        vec!["2\n", "3\n"],
        "{name}: tail 2"
    );
    assert_eq!(
        lines(h, &d, &r.task_id, tail(10)).await,
        vec!["1\n", "2\n", "3\n"],
        "{name}: tail longer than the log"
    );
}

/// `follow` gives lines as the task writes them and ends when it exits; following an exited
/// task gives what it wrote and ends.
pub async fn logs_follow_until_exit<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(
        h,
        "follow",
        "echo a; sleep 0.5; echo b >&2; sleep 0.5; echo c",
    );
    start(h, &d, &r).await;
    let follow = LogOptions {
        follow: true,
        ..both()
    };
    assert_eq!(
        lines(h, &d, &r.task_id, follow.clone()).await,
        vec!["a\n", "b\n", "c\n"],
        "{name}: followed to the end"
    );
    assert_eq!(wait(h, &d, &r.task_id).await.code, 0, "{name}");
    let last = LogOptions {
        tail: Some(1),
        stderr: false,
        ..follow
    };
    assert_eq!(
        lines(h, &d, &r.task_id, last).await,
        vec!["c\n"],
        "{name}: following an exited task"
    );
}

/// A new driver over the same state (the daemon restarted) lists what the previous one left,
/// running, created and exited; starting a running task again is a no-op; it waits for,
/// reads and kills what it did not start.
pub async fn adoption_after_restart<H: Harness>(h: &H) {
    let name = h.name();
    let first = h.driver().await;
    let running = task(h, "adoptrun", &format!("echo up; {RUNS}"));
    let created = task(h, "adoptnew", "exit 0");
    let exited = task(h, "adoptdone", "exit 4");
    let pid = start(h, &first, &running).await;
    first.prepare(&created).await.expect("prepare");
    start(h, &first, &exited).await;
    let done = wait(h, &first, &exited.task_id).await;
    until_output(h, &first, &running.task_id, "ready").await;
    drop(first);

    let again = h.driver().await;
    let listed = again.list().await.expect("list");
    assert_eq!(
        state_of(&listed, &running.task_id),
        Some(RuntimeTaskState::Running { pid }),
        "{name}: the running task is adopted: {listed:?}"
    );
    assert_eq!(
        state_of(&listed, &created.task_id),
        Some(RuntimeTaskState::Created),
        "{name}: the created task is adopted: {listed:?}"
    );
    assert_eq!(
        state_of(&listed, &exited.task_id),
        Some(RuntimeTaskState::Exited(done)),
        "{name}: the exited task is adopted with its exit: {listed:?}"
    );
    assert_eq!(
        again.start(&running.task_id).await.expect("start"),
        pid,
        "{name}: starting a running task returns its process"
    );
    assert_eq!(
        output(h, &again, &running.task_id).await.0,
        "up\nready\n",
        "{name}: the adopted task's log"
    );
    let (waited, ()) = tokio::join!(wait(h, &again, &running.task_id), async {
        h.kill(&again, &running.task_id, pid, SIGKILL).await
    });
    assert_eq!(codes(&waited), (137, Some(9), false), "{name}: {waited:?}");
}

/// A driver of another owner does not list, stop or remove this one's tasks.
pub async fn other_owners_tasks_are_not_adopted<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "mine", RUNS);
    start(h, &d, &r).await;
    let other = h.stranger().await;
    let listed = other.list().await.expect("list");
    assert_eq!(
        state_of(&listed, &r.task_id),
        None,
        "{name}: another owner's driver lists this task: {listed:?}"
    );
    assert!(
        is_not_found(&other.stop(&r.task_id, Duration::ZERO).await),
        "{name}: another owner's driver stops this task"
    );
    assert!(
        is_not_found(&other.remove(&r.task_id).await),
        "{name}: another owner's driver removes this task"
    );
    assert!(
        matches!(
            state_of(&d.list().await.expect("list"), &r.task_id),
            Some(RuntimeTaskState::Running { .. })
        ),
        "{name}: the task still runs"
    );
    d.stop(&r.task_id, Duration::ZERO).await.expect("stop");
}

/// A task's check makes it healthy, then unhealthy with the check's output once it fails; a
/// task without a check has no health.
pub async fn health_checks<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let mut checked = task(
        h,
        "health",
        &format!("echo fine > /tmp/ok; trap 'rm /tmp/ok' USR1; {RUNS}"),
    );
    checked.container.healthcheck = Some(HealthConfig {
        test: vec!["CMD-SHELL".into(), "cat /tmp/ok".into()],
        interval: Some(Duration::from_millis(500)),
        timeout: Some(Duration::from_secs(10)),
        retries: Some(1),
        ..Default::default()
    });
    let plain = task(h, "nohealth", RUNS);
    let pid = start(h, &d, &checked).await;
    start(h, &d, &plain).await;
    let id = &checked.task_id;
    until_output(h, &d, id, "ready").await;
    assert_eq!(
        d.health(&plain.task_id).await.expect("health"),
        Health::None,
        "{name}: no check, no health"
    );
    poll(h, "the check to pass", || async {
        match d.health(id).await {
            Ok(Health::Healthy) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    h.kill(&d, id, pid, SIGUSR1).await;
    let out = poll(h, "the check to fail", || async {
        match d.health(id).await {
            Ok(Health::Unhealthy(out)) => Ok(out),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        out.contains("/tmp/ok"),
        "{name}: unhealthy with the check's output: {out:?}"
    );
    for r in [&checked, &plain] {
        d.stop(&r.task_id, Duration::ZERO).await.expect("stop");
    }
}

/// What a task writes to a named volume, the next task using it reads; the volume is listed
/// with its labels and users, refused removal while used, and removed after.
pub async fn named_volume_outlives_its_task<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let vol = format!("conformance-{}", h.unique());
    let with_volume = |mut r: crate::TaskRun| {
        r.container.mounts = vec![Mount {
            kind: MountKind::Volume,
            source: vol.clone(),
            target: "/data".into(),
            volume_labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
            ..Default::default()
        }];
        r
    };
    let first = with_volume(task(h, "volw", "echo kept > /data/f"));
    start(h, &d, &first).await;
    let exit = wait(h, &d, &first.task_id).await;
    assert_eq!(
        exit.code,
        0,
        "{name}: writing the volume: {:?}",
        output(h, &d, &first.task_id).await
    );
    let listed = d.volumes().await.expect("volumes");
    let v = listed
        .iter()
        .find(|v| v.name == vol)
        .unwrap_or_else(|| panic!("{name}: the volume is listed: {listed:?}"));
    assert_eq!(
        v.labels.get("team").map(String::as_str),
        Some("a"),
        "{name}: its labels"
    );
    assert_eq!(v.in_use_by, vec![first.task_id.clone()], "{name}: its user");
    assert!(
        matches!(
            d.remove_volume(&vol, false).await,
            Err(RuntimeError::VolumeInUse { .. })
        ),
        "{name}: a volume in use is not removed"
    );
    d.remove(&first.task_id).await.expect("remove");

    let second = with_volume(task(h, "volr", "cat /data/f"));
    start(h, &d, &second).await;
    assert_eq!(wait(h, &d, &second.task_id).await.code, 0, "{name}");
    assert_eq!(
        output(h, &d, &second.task_id).await.0,
        "kept\n",
        "{name}: the next task reads the volume"
    );
    d.remove(&second.task_id).await.expect("remove");
    d.remove_volume(&vol, false)
        .await
        .unwrap_or_else(|e| panic!("{name}: removing the unused volume: {e}"));
    assert!(
        matches!(
            d.remove_volume(&vol, false).await,
            Err(RuntimeError::VolumeNotFound(_))
        ),
        "{name}: a removed volume is gone"
    );
}

/// A bind mount shows the node's directory; read-only, it refuses writes.
pub async fn bind_mount_is_visible<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let dir = h.host_dir(&[("f", "from the node\n")]).await;
    let mut r = task(h, "bind", "cat /host/f; echo x > /host/g || echo refused");
    r.container.mounts = vec![Mount {
        kind: MountKind::Bind,
        source: dir,
        target: "/host".into(),
        read_only: true,
        ..Default::default()
    }];
    start(h, &d, &r).await;
    let exit = wait(h, &d, &r.task_id).await;
    let (out, err) = output(h, &d, &r.task_id).await;
    assert_eq!(
        (exit.code, out.as_str()),
        (0, "from the node\nrefused\n"),
        "{name}: stderr {err:?}"
    );
}

/// An image the node does not have (and cannot pull) rejects the task, naming it.
pub async fn missing_image_is_not_found<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let mut r = task(h, "noimage", "exit 0");
    r.container.image = "shoal-test/missing:latest".into();
    match d.prepare(&r).await {
        Err(RuntimeError::ImageNotFound(what)) => assert!(
            what.contains("shoal-test/missing:latest"),
            "{name}: the error names the image: {what}"
        ),
        other => panic!("{name}: expected ImageNotFound, got {other:?}"),
    }
    let listed = d.list().await.expect("list");
    assert_eq!(
        state_of(&listed, &r.task_id),
        None,
        "{name}: nothing is kept of a rejected task"
    );
}

/// A command that does not exist is prepared, but fails the start, naming it.
pub async fn missing_executable_fails_the_start<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    for (n, argv0) in [
        ("noexec", "no-such-binary-xyz"),
        ("nopath", "/no-such-dir/program"),
    ] {
        let r = command_task(h, n, &[argv0, "arg"]);
        d.prepare(&r)
            .await
            .unwrap_or_else(|e| panic!("{name}: the executable is checked at start: {e}"));
        match d.start(&r.task_id).await {
            Err(RuntimeError::StartFailed(why)) => {
                assert!(
                    why.contains(argv0),
                    "{name}: the error names {argv0}: {why}"
                )
            }
            other => panic!("{name}: expected StartFailed for {argv0}, got {other:?}"),
        }
        d.remove(&r.task_id).await.expect("remove");
    }
}

/// Removing a task leaves nothing of it: not listed, no logs, unknown to every call.
pub async fn remove_cleans_up<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "remove", "echo bye");
    start(h, &d, &r).await;
    wait(h, &d, &r.task_id).await;
    d.remove(&r.task_id).await.expect("remove");
    let id = &r.task_id;
    let listed = d.list().await.expect("list");
    assert_eq!(state_of(&listed, id), None, "{name}: still listed");
    assert!(
        matches!(d.logs(id, both()).await, Err(RuntimeError::NotFound(_))),
        "{name}: logs of a removed task"
    );
    assert!(is_not_found(&d.wait(id).await), "{name}: wait");
    assert!(is_not_found(&d.start(id).await), "{name}: start");
    assert!(is_not_found(&d.remove(id).await), "{name}: remove twice");
    let left = h.leftovers(&d, id).await;
    assert!(left.is_empty(), "{name}: left behind: {left:?}");
}

/// Secrets and configs: each file at its path with its content, read-only, from memory while
/// the task runs (a tmpfs, where the harness can show mounts), and gone from the node once the
/// task has exited.
pub async fn secret_and_config_files<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let mut r = task(
        h,
        "files",
        "cat /run/secrets/pw; cat /etc/app.conf; echo x > /run/secrets/pw || echo refused; echo ready; while :; do sleep 0.1; done",
    );
    let file = |path: &str, mode: u32, data: &str| crate::TaskFile {
        path: path.into(),
        uid: 0,
        gid: 0,
        mode,
        data: shoal_types::payload::Bytes::new(data.as_bytes().to_vec()),
    };
    r.files = vec![
        file("/run/secrets/pw", 0o400, "s3cret\n"),
        file("/etc/app.conf", 0o444, "conf=1\n"),
    ];
    start(h, &d, &r).await;
    until_output(h, &d, &r.task_id, "ready").await;
    let (out, err) = output(h, &d, &r.task_id).await;
    assert_eq!(
        out, "s3cret\nconf=1\nrefused\nready\n",
        "{name}: stderr {err:?}"
    );
    if let Some(mounts) = h.memory_mounts(&r.task_id).await {
        assert!(
            !mounts.is_empty(),
            "{name}: the files are not on a memory-backed mount"
        );
    }
    d.stop(&r.task_id, Duration::from_secs(1))
        .await
        .expect("stop");
    wait(h, &d, &r.task_id).await;
    // Gone with the process, not only with the task's record (which the task history keeps).
    if let Some(mounts) = h.memory_mounts(&r.task_id).await {
        assert!(
            mounts.is_empty(),
            "{name}: still mounted after exit: {mounts:?}"
        );
    }
    d.remove(&r.task_id).await.expect("remove");
    let left = h.leftovers(&d, &r.task_id).await;
    assert!(left.is_empty(), "{name}: left behind: {left:?}");
}
