//! The native runtime with real processes through the real `shoal shim`: exit codes and logs,
//! environment, working directory and user, namespaces, cgroup limits, stop and kill, start
//! failures, images, and adoption by a new driver.
//!
//! These need root (namespaces, cgroups, switching users). Without root they skip, except in CI
//! (CI=true), where they fail saying so. Each test has its own temporary root and its own cgroup
//! parent, and removes its cgroups even when it fails. Waits are bounded polls, never sleeps.

#[path = "common/driver.rs"]
mod driver;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use driver::{DEADLINE, remove_cgroup};
use shoal_agent::native::{CgroupVersion, NativeConfig, NativeDriver};
use shoal_agent::runtime::{LogStreamKind, RuntimeTaskState, next_log_line};
use shoal_agent::{ExitInfo, LogOptions, RuntimeDriver, RuntimeError, TaskRun};
use shoal_types::clock::SystemClock;
use shoal_types::service::{ContainerSpec, ResourceRequirements};
use shoal_types::{Clock, Id};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// False (skip) without root, except in CI where missing root is a failure.
fn have_root() -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "native runtime tests need root (namespaces, cgroups, users); CI must run them as root"
        );
    }
    eprintln!("skipping: native runtime tests need root");
    false
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

struct Env {
    driver: NativeDriver,
    _root: tempfile::TempDir,
}

impl Env {
    fn new(name: &str) -> Env {
        let root = tempfile::tempdir().expect("tempdir");
        Env {
            driver: Self::driver_on(root.path().to_path_buf(), name),
            _root: root,
        }
    }

    fn driver_on(root: PathBuf, name: &str) -> NativeDriver {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let mut cfg = NativeConfig::new(root, PathBuf::from(env!("CARGO_BIN_EXE_shoal")));
        cfg.cgroup_parent = format!("shoal-test-{}-{name}-{n}", std::process::id());
        NativeDriver::new(cfg).expect("native driver")
    }

    async fn start(&self, run: &TaskRun) -> i64 {
        driver::start(&self.driver, run).await
    }

    async fn wait(&self, id: &Id) -> ExitInfo {
        driver::wait(&self.driver, id).await
    }

    /// (stdout, stderr) of a task, all of it.
    async fn output(&self, id: &Id) -> (String, String) {
        driver::output(&self.driver, id).await
    }

    /// The content of a file in the task's cgroup (whichever hierarchy has it).
    fn cgroup_file(&self, id: &Id, name: &str) -> Option<String> {
        self.driver
            .task_cgroup_dirs(id)
            .iter()
            .find_map(|d| std::fs::read_to_string(d.join(name)).ok())
            .map(|s| s.trim().to_string())
    }
}

impl Drop for Env {
    /// Removes every cgroup the test made, killing what is left in them, even after a failure.
    fn drop(&mut self) {
        let probe = self.driver.task_cgroup_dirs(&Id::from_raw("probe"));
        for parent in probe.iter().filter_map(|d| d.parent()) {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                remove_cgroup(&e.path());
            }
            remove_cgroup(parent);
        }
    }
}

fn run(id: &str, cmd: &[&str]) -> TaskRun {
    TaskRun {
        task_id: Id::from_raw(id),
        task_name: format!("web.1.{id}"),
        service_id: Id::from_raw("svc"),
        service_name: "web".into(),
        node_id: Id::from_raw("node"),
        slot: 1,
        container: ContainerSpec {
            image: "host".into(),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        resources: ResourceRequirements::default(),
        hostname: format!("h-{id}"),
    }
}

fn kill9(pid: i64) {
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

#[tokio::test]
async fn exit_codes_and_logs() {
    if !have_root() {
        return;
    }
    let env = Env::new("exit");
    let r = run(
        "exit",
        &["sh", "-c", "echo out; echo err >&2; echo more; exit 3"],
    );
    env.start(&r).await;
    let exit = env.wait(&r.task_id).await;
    assert_eq!((exit.code, exit.signal, exit.oom_killed), (3, None, false));
    assert!(exit.finished_at.unix_nanos() > 0);
    assert_eq!(
        env.output(&r.task_id).await,
        ("out\nmore\n".to_string(), "err\n".to_string())
    );

    let only_err = LogOptions {
        stderr: true,
        ..Default::default()
    };
    let mut s = env.driver.logs(&r.task_id, only_err).await.expect("logs");
    let l = next_log_line(&mut s).await.expect("a line").expect("ok");
    assert_eq!(
        (l.stream, &l.line[..]),
        (LogStreamKind::Stderr, &b"err\n"[..])
    );
    assert!(next_log_line(&mut s).await.is_none());

    // (Order across the two streams is not defined: they are separate pipes.)
    let tail = LogOptions {
        stdout: true,
        tail: Some(1),
        follow: true,
        ..Default::default()
    };
    let mut s = env.driver.logs(&r.task_id, tail).await.expect("logs");
    assert_eq!(
        &next_log_line(&mut s).await.expect("line").expect("ok").line[..],
        b"more\n"
    );
    let end = tokio::time::timeout(DEADLINE, next_log_line(&mut s))
        .await
        .expect("follow of an exited task ends");
    assert!(end.is_none());

    let since = LogOptions {
        stdout: true,
        since: SystemClock.now(),
        ..Default::default()
    };
    let mut s = env.driver.logs(&r.task_id, since).await.expect("logs");
    assert!(next_log_line(&mut s).await.is_none(), "nothing after now");

    let listed = env.driver.list().await.expect("list");
    assert!(
        matches!(&listed[..], [t] if t.task_id == r.task_id && matches!(&t.state, RuntimeTaskState::Exited(e) if e.code == 3))
    );
    env.driver.remove(&r.task_id).await.expect("remove");
    assert!(!env.driver.task_dir(&r.task_id).exists());
    assert!(
        env.driver
            .task_cgroup_dirs(&r.task_id)
            .iter()
            .all(|d| !d.exists()),
        "cgroup removed"
    );
    assert!(env.driver.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn follow_streams_until_the_task_exits() {
    if !have_root() {
        return;
    }
    let env = Env::new("follow");
    let r = run("follow", &["sh", "-c", "echo a; sleep 0.3; echo b"]);
    env.start(&r).await;
    let opts = LogOptions {
        stdout: true,
        stderr: true,
        follow: true,
        ..Default::default()
    };
    let mut s = env.driver.logs(&r.task_id, opts).await.expect("logs");
    let mut lines = Vec::new();
    while let Some(l) = tokio::time::timeout(DEADLINE, next_log_line(&mut s))
        .await
        .expect("line or end in time")
    {
        lines.push(String::from_utf8_lossy(&l.expect("ok").line).into_owned());
    }
    assert_eq!(lines, vec!["a\n", "b\n"]);
    assert_eq!(env.wait(&r.task_id).await.code, 0);
}

#[tokio::test]
async fn env_dir_and_user() {
    if !have_root() {
        return;
    }
    let env = Env::new("user");
    let mut r = run(
        "user",
        &["sh", "-c", "echo \"$FOO|$HOSTNAME\"; pwd; id -u; id -g"],
    );
    r.container.env = vec!["FOO=bar".into()];
    r.container.dir = "/tmp".into();
    r.container.user = "nobody".into();
    env.start(&r).await;
    assert_eq!(env.wait(&r.task_id).await.code, 0);
    let (out, err) = env.output(&r.task_id).await;
    assert_eq!(out, "bar|h-user\n/tmp\n65534\n65534\n", "stderr: {err}");

    // Exactly the spec's environment plus Docker's PATH and HOSTNAME.
    let mut r = run("envonly", &["env"]);
    r.container.env = vec!["A=1".into(), "B=two words".into()];
    env.start(&r).await;
    assert_eq!(env.wait(&r.task_id).await.code, 0);
    let (out, _) = env.output(&r.task_id).await;
    let mut vars: Vec<&str> = out.lines().collect();
    vars.sort_unstable();
    assert_eq!(
        vars,
        vec![
            "A=1",
            "B=two words",
            "HOSTNAME=h-envonly",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]
    );

    let mut bad = run("nouser", &["true"]);
    bad.container.user = "no-such-user-xyz".into();
    match env.driver.prepare(&bad).await {
        Err(RuntimeError::InvalidSpec { field: "user", why }) => {
            assert!(why.contains("no-such-user-xyz"), "{why}")
        }
        other => panic!("expected an invalid user, got {other:?}"),
    }
    let mut bad = run("nodir", &["true"]);
    bad.container.dir = "/no/such/dir".into();
    match env.driver.prepare(&bad).await {
        Err(RuntimeError::InvalidSpec { field: "dir", why }) => {
            assert!(why.contains("/no/such/dir"), "{why}")
        }
        other => panic!("expected an invalid dir, got {other:?}"),
    }
}

#[tokio::test]
async fn hostname_and_pid_1_in_own_namespaces() {
    if !have_root() {
        return;
    }
    let env = Env::new("ns");
    let caps = env.driver.capabilities();
    assert!(
        caps.pid_ns && caps.mount_ns && caps.uts_ns && caps.ipc_ns && caps.proc_mount,
        "{caps:?}"
    );
    let r = run(
        "ns",
        &[
            "sh",
            "-c",
            "echo $$; hostname; cat /proc/1/comm; ls /proc | grep -c '^[0-9][0-9]*$'",
        ],
    );
    let pid = env.start(&r).await;
    assert!(pid > 1, "the host sees the real pid");
    assert_eq!(env.wait(&r.task_id).await.code, 0);
    let (out, err) = env.output(&r.task_id).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.get(..3),
        Some(&["1", "h-ns", "sh"][..]),
        "stdout: {out} stderr: {err}"
    );
    let visible: usize = lines.get(3).and_then(|n| n.parse().ok()).expect("a count");
    assert!(
        visible <= 4,
        "only the task's own processes are visible, saw {visible}"
    );
    let host = nix_hostname();
    assert_ne!(host, "h-ns", "the node's hostname is untouched");
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test]
async fn memory_limit_gets_oom_killed() {
    if !have_root() {
        return;
    }
    let env = Env::new("oom");
    assert!(
        env.driver.capabilities().cgroup_memory,
        "memory cgroup controller needed"
    );
    let mut r = run("oom", &["python3", "-c", "b = bytearray(300*1024*1024)"]);
    r.resources.limits.memory_bytes = 64 * 1024 * 1024;
    env.start(&r).await;
    let limit_file = match env.driver.capabilities().cgroup_version {
        CgroupVersion::V2 => "memory.max",
        _ => "memory.limit_in_bytes",
    };
    assert_eq!(
        env.cgroup_file(&r.task_id, limit_file).as_deref(),
        Some("67108864")
    );
    let exit = env.wait(&r.task_id).await;
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (137, Some(9), true),
        "{exit:?}"
    );
}

#[tokio::test]
async fn cpu_limit_is_in_the_cgroup_and_the_task_is_in_it() {
    if !have_root() {
        return;
    }
    let env = Env::new("cpu");
    assert!(
        env.driver.capabilities().cgroup_cpu,
        "cpu cgroup controller needed"
    );
    let mut r = run("cpu", &["cat", "/proc/self/cgroup"]);
    r.resources.limits.nano_cpus = 500_000_000;
    env.start(&r).await;
    match env.driver.capabilities().cgroup_version {
        CgroupVersion::V2 => assert_eq!(
            env.cgroup_file(&r.task_id, "cpu.max").as_deref(),
            Some("50000 100000")
        ),
        _ => {
            assert_eq!(
                env.cgroup_file(&r.task_id, "cpu.cfs_quota_us").as_deref(),
                Some("50000")
            );
            assert_eq!(
                env.cgroup_file(&r.task_id, "cpu.cfs_period_us").as_deref(),
                Some("100000")
            );
        }
    }
    assert_eq!(env.wait(&r.task_id).await.code, 0);
    let (out, _) = env.output(&r.task_id).await;
    assert!(
        out.contains(&format!("/{}", r.task_id)),
        "the process joined its cgroup: {out}"
    );

    let mut too_much = run("cpu2", &["true"]);
    too_much.resources.limits.nano_cpus = 1_000_000_000_000;
    assert!(matches!(
        env.driver.prepare(&too_much).await,
        Err(RuntimeError::InvalidSpec {
            field: "resources.limits.nano_cpus",
            ..
        })
    ));
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_the_grace() {
    if !have_root() {
        return;
    }
    let env = Env::new("stop");
    let r = run(
        "stubborn",
        &["sh", "-c", "trap '' TERM; echo ready; sleep 100"],
    );
    env.start(&r).await;
    wait_for_output(&env, &r.task_id, "ready").await;
    let began = SystemClock.now();
    tokio::time::timeout(
        DEADLINE,
        env.driver.stop(&r.task_id, Duration::from_millis(500)),
    )
    .await
    .expect("stop in time")
    .expect("stop");
    let took = SystemClock.now().since(began);
    assert!(
        took >= Duration::from_millis(500),
        "the grace was honoured: {took:?}"
    );
    let exit = env.wait(&r.task_id).await;
    assert_eq!((exit.code, exit.signal), (137, Some(9)));

    // A process that handles the stop signal exits within the grace.
    let mut r = run(
        "polite",
        &[
            "sh",
            "-c",
            "trap 'exit 0' INT; echo ready; while :; do sleep 0.05; done",
        ],
    );
    r.container.stop_signal = "SIGINT".into();
    env.start(&r).await;
    wait_for_output(&env, &r.task_id, "ready").await;
    env.driver
        .stop(&r.task_id, Duration::from_secs(20))
        .await
        .expect("stop");
    assert_eq!(env.wait(&r.task_id).await.code, 0);
    // Stopping an exited task is a no-op.
    env.driver
        .stop(&r.task_id, Duration::from_secs(1))
        .await
        .expect("second stop");
}

async fn wait_for_output(env: &Env, id: &Id, want: &str) {
    let mut last = String::new();
    for _ in 0..300 {
        last = env.output(id).await.0;
        if last.contains(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("task {id} never printed {want:?}; last output: {last:?}");
}

#[tokio::test]
async fn kill_9_of_the_process_is_exit_137() {
    if !have_root() {
        return;
    }
    let env = Env::new("kill");
    let r = run("kill", &["sleep", "100"]);
    let pid = env.start(&r).await;
    kill9(pid);
    let exit = env.wait(&r.task_id).await;
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (137, Some(9), false)
    );
}

#[tokio::test]
async fn missing_executable_fails_the_start_naming_it() {
    if !have_root() {
        return;
    }
    let env = Env::new("noexec");
    let r = run("noexec", &["no-such-binary-xyz", "arg"]);
    env.driver
        .prepare(&r)
        .await
        .expect("prepare: the executable is checked at start");
    match env.driver.start(&r.task_id).await {
        Err(RuntimeError::StartFailed(msg)) => assert!(msg.contains("no-such-binary-xyz"), "{msg}"),
        other => panic!("expected StartFailed, got {other:?}"),
    }
    let r = run("noexec2", &["/no/such/path"]);
    env.driver.prepare(&r).await.expect("prepare");
    match env.driver.start(&r.task_id).await {
        Err(RuntimeError::StartFailed(msg)) => assert!(msg.contains("/no/such/path"), "{msg}"),
        other => panic!("expected StartFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn host_image_runs_and_others_are_not_found() {
    if !have_root() {
        return;
    }
    let env = Env::new("image");
    let mut r = run("tagged", &["true"]);
    r.container.image = "host:latest".into();
    env.start(&r).await;
    assert_eq!(env.wait(&r.task_id).await.code, 0);
    let mut r = run("busybox", &["true"]);
    r.container.image = "busybox".into();
    assert!(
        matches!(env.driver.prepare(&r).await, Err(RuntimeError::ImageNotFound(i)) if i == "busybox")
    );
    let r = run("empty", &[]);
    assert!(matches!(
        env.driver.prepare(&r).await,
        Err(RuntimeError::InvalidSpec {
            field: "command",
            ..
        })
    ));
}

#[tokio::test]
async fn a_new_driver_adopts_running_tasks() {
    if !have_root() {
        return;
    }
    let env = Env::new("adopt");
    let r = run("adopt", &["sh", "-c", "echo hello; exec sleep 100"]);
    let pid = env.start(&r).await;
    wait_for_output(&env, &r.task_id, "hello").await;
    let created = run("created", &["true"]);
    env.driver.prepare(&created).await.expect("prepare");

    // The daemon goes away; a new one starts on the same root.
    let cfg = env.driver.config().clone();
    let again = NativeDriver::new(cfg).expect("second driver");
    let listed = again.list().await.expect("list");
    let states: Vec<(String, RuntimeTaskState)> = listed
        .into_iter()
        .map(|t| (t.task_id.to_string(), t.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("adopt".to_string(), RuntimeTaskState::Running { pid }),
            ("created".to_string(), RuntimeTaskState::Created)
        ]
    );
    // Starting it again is a no-op that returns the same process.
    assert_eq!(again.start(&r.task_id).await.expect("start"), pid);
    // Waiting works for a process this driver never started.
    let again = std::sync::Arc::new(again);
    let waiter = tokio::spawn({
        let (again, id) = (again.clone(), r.task_id.clone());
        async move { again.wait(&id).await }
    });
    kill9(pid);
    let exit = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("wait returns")
        .expect("join")
        .expect("wait");
    assert_eq!((exit.code, exit.signal), (137, Some(9)));
    assert_eq!(env.output(&r.task_id).await.0, "hello\n");
}
