//! Starting a task again in place (`docker start` of an exited container): the engine's
//! standalone containers and their restart policies rely on it.

use std::time::Duration;

use super::{DEADLINE, Harness, output, poll, start, task, until_output, wait};
use crate::{RuntimeDriver, RuntimeTaskState};

/// A task that exited starts again in place: what its first run wrote to its filesystem is
/// there, its secret is there again, its log keeps the first run's lines and goes on, `list`
/// shows it running with a later `started_at`, and `wait` resolves with the second run's exit.
pub async fn start_again_in_place<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    // The first run leaves a mark and exits 3 (after a moment, so the runs' times differ
    // however coarse a driver's clock); the second finds the mark and runs until stopped.
    let mut r = task(
        h,
        "restart",
        "cat /run/secrets/pw; [ -f /tmp/ran ] && echo second && trap 'exit 5' TERM && while :; do sleep 0.1; done; touch /tmp/ran; echo first; sleep 0.1; exit 3",
    );
    r.files = vec![crate::TaskFile {
        path: "/run/secrets/pw".into(),
        uid: 0,
        gid: 0,
        mode: 0o400,
        data: shoal_types::payload::Bytes::new(b"s3cret\n".to_vec()),
    }];
    let id = &r.task_id;
    start(h, &d, &r).await;
    let first = wait(h, &d, id).await;
    assert_eq!(
        first.code,
        3,
        "{name}: the first run's exit: {first:?}; output {:?}",
        output(h, &d, id).await
    );
    let started_at = |listed: Vec<crate::RuntimeTask>| {
        listed
            .into_iter()
            .find(|t| &t.task_id == id)
            .map(|t| (t.state, t.started_at))
    };
    let Some((_, first_started)) = started_at(d.list().await.expect("list")) else {
        panic!("{name}: the exited task is listed");
    };

    let pid = d
        .start(id)
        .await
        .unwrap_or_else(|e| panic!("{name}: starting the exited task again: {e}"));
    assert!(pid > 0, "{name}: the new run's pid: {pid}");
    until_output(h, &d, id, "second").await;
    let (state, second_started) = poll(h, "the task to be listed as running", || async {
        match started_at(d.list().await.map_err(|e| e.to_string())?) {
            Some((s @ RuntimeTaskState::Running { .. }, at)) => Ok((s, at)),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        second_started > first_started && second_started >= first.finished_at,
        "{name}: the second run started at {second_started:?}, the first at {first_started:?} and it ended at {:?} ({state:?})",
        first.finished_at
    );
    assert_eq!(
        output(h, &d, id).await.0,
        "s3cret\nfirst\ns3cret\nsecond\n",
        "{name}: the log keeps the first run's lines and goes on with the second's"
    );
    assert_eq!(
        d.start(id).await.expect("start"),
        pid,
        "{name}: starting the running task again returns its process"
    );
    d.stop(id, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{name}: stopping the second run: {e}"));
    let second = wait(h, &d, id).await;
    assert_eq!(
        (second.code, second.finished_at > first.finished_at),
        (5, true),
        "{name}: wait resolves with the second run's exit: {second:?} (the first: {first:?})"
    );
    d.stop(id, Duration::from_secs(1))
        .await
        .unwrap_or_else(|e| panic!("{name}: stopping an exited task is a no-op: {e}"));
    d.remove(id)
        .await
        .unwrap_or_else(|e| panic!("{name}: removing {id}: {e}"));
    let left = h.leftovers(&d, id).await;
    assert!(left.is_empty(), "{name}: left behind: {left:?}");
}
