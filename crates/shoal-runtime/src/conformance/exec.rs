//! Exec into a running task, and what else the node asks of one from outside: a signal, its
//! processes, its usage.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::cases::RUNS;
use super::{DEADLINE, Harness, SIGUSR1, start, task, until_output, wait};
use crate::exec::{ExecProcess, ExecSpec};
use crate::{LogStreamKind, RuntimeDriver, RuntimeError};

/// Everything the exec (or attachment) wrote, stdout and stderr apart, and its exit code.
pub(super) async fn collect<H: Harness>(h: &H, p: ExecProcess) -> (String, String, i64) {
    let name = h.name();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut output = p.output;
    loop {
        match tokio::time::timeout(DEADLINE, output.next()).await {
            Err(_) => panic!(
                "{name}: the exec's output did not end; so far {:?} / {:?}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            ),
            Ok(None) => break,
            Ok(Some(Err(e))) => panic!("{name}: reading the exec's output: {e}"),
            Ok(Some(Ok((LogStreamKind::Stdout, b)))) => out.extend_from_slice(&b),
            Ok(Some(Ok((LogStreamKind::Stderr, b)))) => err.extend_from_slice(&b),
        }
    }
    let code = match tokio::time::timeout(DEADLINE, p.handle.wait()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("{name}: waiting for the exec: {e}"),
        Err(_) => panic!("{name}: the exec's output ended but it did not"),
    };
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        code,
    )
}

/// Ends a task the case started and removes it.
async fn stop_and_remove<H: Harness>(h: &H, d: &H::Driver, id: &shoal_types::Id) {
    let name = h.name();
    if let Err(e) = d.stop(id, Duration::from_secs(1)).await {
        panic!("{name}: stopping {id}: {e}");
    }
    if let Err(e) = d.remove(id).await {
        panic!("{name}: removing {id}: {e}");
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// An exec runs in the task: it sees the task's files and environment plus its own, keeps
/// stdout and stderr apart, and its exit code is final once it is waited for. The task runs on.
pub async fn exec_runs_inside_the_task<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let mut r = task(h, "exec", &format!("echo inside > /tmp/marker; {RUNS}"));
    r.container.env = vec!["FROM_TASK=task".into(), "BOTH=task".into()];
    start(h, &d, &r).await;
    until_output(h, &d, &r.task_id, "ready").await;
    let p = d
        .exec(
            &r.task_id,
            ExecSpec {
                cmd: sh("cat /tmp/marker; echo $FROM_TASK $BOTH $FROM_EXEC; echo oops >&2; exit 3"),
                env: vec!["BOTH=exec".into(), "FROM_EXEC=exec".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: exec: {e}"));
    assert!(p.input.is_none(), "{name}: no stdin was asked for");
    let (out, err, code) = collect(h, p).await;
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("inside\ntask exec exec\n", "oops\n", 3),
        "{name}: the exec's stdout, stderr and exit code"
    );
    assert!(
        matches!(
            d.list().await.map(|l| l
                .into_iter()
                .find(|t| t.task_id == r.task_id)
                .map(|t| t.state)),
            Ok(Some(crate::RuntimeTaskState::Running { .. }))
        ),
        "{name}: the task runs on after the exec"
    );
    stop_and_remove(h, &d, &r.task_id).await;
}

/// With stdin the exec reads what is written until the input is shut down.
pub async fn exec_reads_its_stdin<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "execin", RUNS);
    start(h, &d, &r).await;
    until_output(h, &d, &r.task_id, "ready").await;
    let mut p = d
        .exec(
            &r.task_id,
            ExecSpec {
                cmd: vec!["cat".into()],
                stdin: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: exec: {e}"));
    let mut input = p
        .input
        .take()
        .unwrap_or_else(|| panic!("{name}: an exec with stdin has an input"));
    input.write_all(b"ping\n").await.expect("write stdin");
    input.shutdown().await.expect("close stdin");
    drop(input);
    let (out, err, code) = collect(h, p).await;
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("ping\n", "", 0),
        "{name}: cat echoes its input and exits when it ends"
    );
    stop_and_remove(h, &d, &r.task_id).await;
}

/// On a TTY both streams are the terminal's (newlines as `\r\n`), and the terminal can be
/// resized; an exec without one refuses a resize.
pub async fn exec_on_a_tty<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "exectty", RUNS);
    start(h, &d, &r).await;
    until_output(h, &d, &r.task_id, "ready").await;
    let p = d
        .exec(
            &r.task_id,
            ExecSpec {
                cmd: sh("sleep 1; echo out; echo err >&2"),
                tty: true,
                size: Some((24, 80)),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: exec with a TTY: {e}"));
    p.handle
        .resize(40, 120)
        .await
        .unwrap_or_else(|e| panic!("{name}: resizing the exec's TTY: {e}"));
    let (out, err, code) = collect(h, p).await;
    assert_eq!(err, "", "{name}: nothing is on stderr with a TTY");
    assert!(
        out.contains("out\r\n") && out.contains("err\r\n"),
        "{name}: both streams on the terminal, with its newlines: {out:?}"
    );
    assert_eq!(code, 0, "{name}: the exec's exit code");

    let plain = d
        .exec(
            &r.task_id,
            ExecSpec {
                cmd: sh("sleep 1"),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: exec: {e}"));
    assert!(
        matches!(
            plain.handle.resize(40, 120).await,
            Err(RuntimeError::InvalidSpec { .. })
        ),
        "{name}: resizing an exec without a TTY is refused"
    );
    let (_, _, code) = collect(h, plain).await;
    assert_eq!(code, 0, "{name}: the plain exec's exit code");
    stop_and_remove(h, &d, &r.task_id).await;
}

/// Exec, signal, processes and usage need a running task: an exited one is `NotRunning`, an
/// unknown one `NotFound`.
pub async fn exec_needs_a_running_task<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "execdone", "exit 0");
    start(h, &d, &r).await;
    wait(h, &d, &r.task_id).await;
    let spec = ExecSpec {
        cmd: vec!["true".into()],
        ..Default::default()
    };
    assert!(
        matches!(
            d.exec(&r.task_id, spec.clone()).await,
            Err(RuntimeError::NotRunning(_))
        ),
        "{name}: exec into an exited task is NotRunning"
    );
    assert!(
        matches!(
            d.signal(&r.task_id, 15).await,
            Err(RuntimeError::NotRunning(_))
        ),
        "{name}: signalling an exited task is NotRunning"
    );
    assert!(
        matches!(d.stats(&r.task_id).await, Err(RuntimeError::NotRunning(_))),
        "{name}: the usage of an exited task is NotRunning"
    );
    let unknown = shoal_types::Id::from_raw(format!("nosuchtask-{}", h.unique()));
    assert!(
        matches!(d.exec(&unknown, spec).await, Err(RuntimeError::NotFound(_))),
        "{name}: exec into an unknown task is NotFound"
    );
    d.remove(&r.task_id).await.expect("remove");
}

/// A signal from the node reaches the task's process (its trap runs); while it runs, the task
/// shows at least one process and its usage.
pub async fn signal_processes_and_stats<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(
        h,
        "sigtrap",
        &format!("trap 'echo got; exit 7' USR1; {RUNS}"),
    );
    let pid = start(h, &d, &r).await;
    until_output(h, &d, &r.task_id, "ready").await;
    let procs = d
        .processes(&r.task_id)
        .await
        .unwrap_or_else(|e| panic!("{name}: processes: {e}"));
    assert!(
        !procs.is_empty() && (procs.contains(&pid) || pid == 0),
        "{name}: the task's processes {procs:?} include its main one {pid}"
    );
    let stats = d
        .stats(&r.task_id)
        .await
        .unwrap_or_else(|e| panic!("{name}: stats: {e}"));
    assert!(
        stats.pids >= 1 && stats.memory_limit > 0 && stats.read.unix_nanos() > 0,
        "{name}: usage of a running task: {stats:?}"
    );
    d.signal(&r.task_id, SIGUSR1)
        .await
        .unwrap_or_else(|e| panic!("{name}: signal: {e}"));
    let exit = wait(h, &d, &r.task_id).await;
    assert_eq!(exit.code, 7, "{name}: the trap's exit code: {exit:?}");
    until_output(h, &d, &r.task_id, "got").await;
    d.remove(&r.task_id).await.expect("remove");
}
