//! The behaviours of a task's resource limits: memory (the OOM kill), the limits the node
//! enforces on the task's process, and the PIDs limit.

use std::time::Duration;

use super::cases::{RUNS, codes};
use super::{Harness, output, start, task, until_output, wait};
use crate::RuntimeDriver;

/// The PIDs limit the suite sets, and how many background processes its task tries to start:
/// more than the limit allows, fewer than any node runs out of without one.
const PIDS_LIMIT: i64 = 6;
const PIDS_TRIES: usize = 12;

/// A task over its memory limit is killed, and the exit says it was the OOM killer.
pub async fn oom_is_reported<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let mut r = task(h, "oom", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done");
    r.resources.limits.memory_bytes = 16 << 20;
    start(h, &d, &r).await;
    let exit = wait(h, &d, &r.task_id).await;
    assert_eq!(
        codes(&exit),
        (137, Some(9), true),
        "{name}: an OOM kill: {exit:?}"
    );
}

/// The spec's memory and CPU limits are what the node enforces on the task's process.
pub async fn limits_reach_the_task<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let mut r = task(h, "limits", RUNS);
    r.resources.limits.memory_bytes = 64 << 20;
    r.resources.limits.nano_cpus = 500_000_000;
    let pid = start(h, &d, &r).await;
    until_output(h, &d, &r.task_id, "ready").await;
    match h.limits(&d, &r.task_id, pid).await {
        Some(l) => {
            assert_eq!(l.memory_bytes, Some(64 << 20), "{name}: memory limit");
            assert_eq!(l.nano_cpus, Some(500_000_000), "{name}: CPU limit");
        }
        None => eprintln!("{name}: cannot show the limits of a task's process"),
    }
    d.stop(&r.task_id, Duration::ZERO).await.expect("stop");
}

/// `n` background `sleep`s, with `started I` after each fork that succeeded, then `all`. A
/// shell that is not interactive exits (busybox `sh`: 2) at the first fork that fails, so the
/// `started` lines count the processes it could start besides itself.
fn forks(n: usize) -> String {
    let mut s: Vec<String> = (1..=n)
        .map(|i| format!("sleep 30 & echo started {i}"))
        .collect();
    s.push("echo all".into());
    s.join("; ")
}

/// A task with a PIDs limit of N has at most N processes at once, its shell among them: it
/// starts N-1 background processes, then its fork fails. The same script without the limit
/// starts them all, so the limit, not the node, stopped it.
pub async fn pids_limit_caps_the_processes<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let script = forks(PIDS_TRIES);
    let started = |out: &str| out.lines().filter(|l| l.starts_with("started ")).count();

    let free = task(h, "pids-free", &script);
    start(h, &d, &free).await;
    let exit = wait(h, &d, &free.task_id).await;
    let (out, err) = output(h, &d, &free.task_id).await;
    assert_eq!(
        (codes(&exit), started(&out), out.ends_with("all\n")),
        ((0, None, false), PIDS_TRIES, true),
        "{name}: without a PIDs limit all {PIDS_TRIES} background processes start; \
         exit {exit:?}, stdout {out:?}, stderr {err:?}"
    );

    let mut capped = task(h, "pids", &script);
    capped.resources.limits.pids = PIDS_LIMIT;
    start(h, &d, &capped).await;
    let exit = wait(h, &d, &capped.task_id).await;
    let (out, err) = output(h, &d, &capped.task_id).await;
    let n = started(&out);
    // Exactly the limit: the shell and N-1 others. Fewer would mean something of the
    // driver's own counts against the task's limit.
    assert!(
        n == PIDS_LIMIT as usize - 1 && !out.contains("all") && exit.code != 0,
        "{name}: with a PIDs limit of {PIDS_LIMIT}, {} background processes start besides the \
         shell, then a fork fails; {n} of {PIDS_TRIES} started; exit {exit:?}, stdout {out:?}, \
         stderr {err:?}",
        PIDS_LIMIT - 1
    );

    for r in [&free, &capped] {
        d.remove(&r.task_id).await.expect("remove");
        let left = h.leftovers(&d, &r.task_id).await;
        assert!(left.is_empty(), "{name}: left behind: {left:?}");
    }
}
