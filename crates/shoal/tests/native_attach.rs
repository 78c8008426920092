//! Attaching to a native task's process beyond what the conformance suite covers with image
//! tasks: a `host` task's terminal (made by the shim itself, not by the OCI runtime), a task
//! directory too long for a socket address (a standalone container's 64-hex ID under a deep data
//! directory), and a client of a driver that restarted (the shim serves it). Also: `host` tasks
//! have no file archives.
//!
//! Needs root (namespaces, cgroups). Each test has its own temporary root and cgroup parent,
//! and kills its shims and tasks even when it fails. Waits are bounded.

#[path = "common/driver.rs"]
mod driver;

use std::path::{Path, PathBuf};

use futures::StreamExt;
use shoal_native::{NativeConfig, NativeDriver};
use shoal_runtime::exec::ExecProcess;
use shoal_runtime::{LogStreamKind, RuntimeDriver, RuntimeError, TaskRun};
use shoal_testkit::{Need, need};
use shoal_types::Id;
use shoal_types::service::{ContainerSpec, ResourceRequirements};
use tokio::io::AsyncWriteExt;

/// Kills what the test started and removes its cgroups, also when it fails.
struct Reap(PathBuf, String);

impl Drop for Reap {
    fn drop(&mut self) {
        shoal_testkit::reap(&self.0, &self.1);
    }
}

fn native(root: &Path, parent: &str) -> NativeDriver {
    let mut cfg = NativeConfig::new(
        root.to_path_buf(),
        PathBuf::from(env!("CARGO_BIN_EXE_shoal")),
    );
    cfg.cgroup_parent = parent.to_string();
    NativeDriver::new(cfg).expect("native driver")
}

fn host_task(id: &str, script: &str) -> TaskRun {
    TaskRun {
        task_id: Id::from_raw(id),
        task_name: format!("attach.1.{id}"),
        service_id: Id::from_raw("svc"),
        service_name: "attach".into(),
        node_id: Id::from_raw("node"),
        slot: 1,
        container: ContainerSpec {
            image: "host".into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        },
        resources: ResourceRequirements::default(),
        hostname: "attach".into(),
        networks: Vec::new(),
        netns: None,
        files: Vec::new(),
        local_networks: Vec::new(),
        publish: Vec::new(),
    }
}

/// What an attachment wrote on stdout (all of it, with a TTY), and the exit code.
async fn collect(p: ExecProcess) -> (String, i64) {
    let mut out = Vec::new();
    let mut output = p.output;
    loop {
        match tokio::time::timeout(driver::DEADLINE, output.next()).await {
            Err(_) => panic!(
                "the attachment's output did not end; so far {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(None) => break,
            Ok(Some(Err(e))) => panic!("reading the attachment: {e}"),
            Ok(Some(Ok((LogStreamKind::Stdout, b)))) => out.extend_from_slice(&b),
            Ok(Some(Ok((LogStreamKind::Stderr, b)))) => {
                panic!("stderr with a TTY: {:?}", String::from_utf8_lossy(&b))
            }
        }
    }
    let code = tokio::time::timeout(driver::DEADLINE, p.handle.wait())
        .await
        .expect("the exit comes with the end of the output")
        .expect("wait");
    (String::from_utf8_lossy(&out).into_owned(), code)
}

/// A `host` task on a terminal the shim made, in a task directory whose socket path does not
/// fit a socket address; attached again by a driver made after the first (a daemon restart).
#[tokio::test]
async fn a_host_task_on_a_terminal_with_a_long_directory() {
    if !need(&[Need::Root]) {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    // Deep enough that `<root>/tasks/<64 hex>/attach.sock` is past the 107 bytes of a
    // socket address.
    let root = tmp
        .path()
        .join("a-data-directory-deep-enough/for/the/sockets/native");
    let parent = shoal_testkit::scoped_name("attach", &format!("{}", std::process::id()));
    let _reap = Reap(tmp.path().to_path_buf(), parent.clone());
    let first = native(&root, &parent);
    let id = "ab".repeat(32);
    let mut r = host_task(
        &id,
        "[ -t 0 ] && echo is-a-tty; read x; stty size; echo got $x; read y; echo then $y",
    );
    r.container.tty = true;
    r.container.open_stdin = true;
    let task = r.task_id.clone();
    assert!(
        first.task_dir(&task).join("attach.sock").as_os_str().len() > 107,
        "the test's task directory is not long enough to need the long-path way"
    );
    first.prepare(&r).await.expect("prepare");
    let mut p = first.attach(&task).await.expect("attach before the start");
    let mut input = p.input.take().expect("open_stdin takes input");
    first.start(&task).await.expect("start");
    p.handle.resize(33, 99).await.expect("resize");
    input.write_all(b"go\n").await.expect("write");
    input.flush().await.expect("flush");

    // The daemon restarts: a new driver attaches to the running task through its shim.
    drop(first);
    let again = native(&root, &parent);
    let mut q = again
        .attach(&task)
        .await
        .expect("attach to the running task");
    let mut more = q.input.take().expect("open_stdin takes input");
    more.write_all(b"more\n").await.expect("write");
    more.flush().await.expect("flush");

    let (out, code) = collect(p).await;
    for want in ["is-a-tty\r\n", "33 99\r\n", "got go\r\n", "then more\r\n"] {
        assert!(out.contains(want), "{want:?} on the terminal: {out:?}");
    }
    assert_eq!(code, 0, "{out:?}");
    let (later, code) = collect(q).await;
    assert!(
        later.contains("then more\r\n") && !later.contains("is-a-tty"),
        "the later client gets the output from its attachment on: {later:?}"
    );
    assert_eq!(code, 0);
    drop((input, more));

    assert!(
        matches!(
            again.path_stat(&task, "/etc").await,
            Err(RuntimeError::Unsupported { .. })
        ),
        "a host task has no archives of its own"
    );
    again.remove(&task).await.expect("remove");
}
