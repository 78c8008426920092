//! Attaching to a task's own process (`docker attach`, `docker run -it`, `docker start -ai`).

use tokio::io::AsyncWriteExt;

use super::exec::collect;
use super::{Harness, output, start, task, until_output, wait};
use crate::{RuntimeDriver, RuntimeError};

/// Attached before it starts, a client gets the process's output from its first byte, stdout
/// and stderr apart, and its exit code; attached to an exited task, the next run's. Without
/// `open_stdin` there is no input, without `tty` no terminal to resize; an unknown task is
/// `NotFound`.
pub async fn attach_before_start_sees_the_first_output<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let r = task(h, "attachfirst", "echo first; echo second >&2; exit 3");
    let id = &r.task_id;
    d.prepare(&r).await.expect("prepare");
    for run in ["first", "second"] {
        let p = d
            .attach(id)
            .await
            .unwrap_or_else(|e| panic!("{name}: attaching before the {run} run: {e}"));
        assert!(p.input.is_none(), "{name}: no stdin without open_stdin");
        assert!(
            matches!(
                p.handle.resize(24, 80).await,
                Err(RuntimeError::InvalidSpec { .. })
            ),
            "{name}: no terminal to resize without tty"
        );
        d.start(id)
            .await
            .unwrap_or_else(|e| panic!("{name}: starting the {run} run: {e}"));
        let (out, err, code) = collect(h, p).await;
        assert_eq!(
            (out.as_str(), err.as_str(), code),
            ("first\n", "second\n", 3),
            "{name}: what the {run} run wrote, from its first byte, and its exit"
        );
        assert_eq!(
            wait(h, &d, id).await.code,
            3,
            "{name}: the {run} run's exit"
        );
    }
    let unknown = shoal_types::Id::from_raw(format!("nosuchtask-{}", h.unique()));
    assert!(
        matches!(d.attach(&unknown).await, Err(RuntimeError::NotFound(_))),
        "{name}: attaching to an unknown task is NotFound"
    );
    d.remove(id).await.expect("remove");
}

/// With `open_stdin` the process reads what an attached client writes, and its input ends when
/// the client shuts it down; the client gets what the process writes from the attachment on.
pub async fn attach_writes_the_stdin_of_an_open_stdin_task<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let mut r = task(h, "attachin", "echo ready; cat; echo done");
    r.container.open_stdin = true;
    let id = &r.task_id;
    start(h, &d, &r).await;
    until_output(h, &d, id, "ready").await;
    let mut p = d
        .attach(id)
        .await
        .unwrap_or_else(|e| panic!("{name}: attaching: {e}"));
    let mut input = p
        .input
        .take()
        .unwrap_or_else(|| panic!("{name}: a task with open_stdin takes input"));
    input.write_all(b"ping\n").await.expect("write stdin");
    input.shutdown().await.expect("close stdin");
    drop(input);
    let (out, err, code) = collect(h, p).await;
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("ping\ndone\n", "", 0),
        "{name}: cat echoes the input, which ends when the client shuts it down"
    );
    assert_eq!(wait(h, &d, id).await.code, 0, "{name}: the task's exit");
    assert_eq!(
        output(h, &d, id).await.0,
        "ready\nping\ndone\n",
        "{name}: the log has it all"
    );
    d.remove(id).await.expect("remove");
}

/// With `tty` the process runs on a terminal: it sees one, its newlines are `\r\n`, what is
/// typed is echoed, and a resize is what `stty size` reads.
pub async fn attach_to_a_tty_task<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let mut r = task(
        h,
        "attachtty",
        "[ -t 0 ] && echo is-a-tty; read x; stty size; echo got $x",
    );
    r.container.tty = true;
    r.container.open_stdin = true;
    let id = &r.task_id;
    d.prepare(&r).await.expect("prepare");
    let mut p = d
        .attach(id)
        .await
        .unwrap_or_else(|e| panic!("{name}: attaching: {e}"));
    let mut input = p
        .input
        .take()
        .unwrap_or_else(|| panic!("{name}: a task with open_stdin takes input"));
    d.start(id)
        .await
        .unwrap_or_else(|e| panic!("{name}: starting: {e}"));
    p.handle
        .resize(40, 120)
        .await
        .unwrap_or_else(|e| panic!("{name}: resizing the task's terminal: {e}"));
    // Only now does the script go on to `stty`: the resize is in place by then.
    input.write_all(b"go\n").await.expect("write stdin");
    input.flush().await.expect("flush stdin");
    let (out, err, code) = collect(h, p).await;
    drop(input);
    for want in ["is-a-tty\r\n", "40 120\r\n", "got go\r\n"] {
        assert!(
            out.contains(want),
            "{name}: {want:?} on the terminal: {out:?} (stderr {err:?})"
        );
    }
    assert_eq!(err, "", "{name}: nothing is on stderr with a TTY");
    assert_eq!(code, 0, "{name}: the exit code; output {out:?}");
    until_output(h, &d, id, "got go\r\n").await;
    d.remove(id).await.expect("remove");
}
