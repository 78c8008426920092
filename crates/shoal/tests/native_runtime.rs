//! The native runtime's `host` image tasks (the node's own filesystem, namespaces the shim
//! makes itself): environment, working directory and user, namespaces, where limits land in the
//! cgroup files, and which images exist. The contract every driver keeps (exit codes, logs,
//! stop, OOM, adoption...) is the conformance suite's (`native_conformance.rs`).
//!
//! These need root (namespaces, cgroups, switching users): `shoal_testkit::need` fails them
//! without it. Each test has its own temporary root and its own cgroup parent, and kills its
//! shims and tasks and removes its cgroups even when it fails. Waits are bounded polls, never
//! sleeps.

#[path = "common/driver.rs"]
mod driver;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use shoal_native::{CgroupVersion, NativeConfig, NativeDriver};
use shoal_runtime::{ExitInfo, RuntimeDriver, RuntimeError, TaskRun};
use shoal_testkit::{Need, need};
use shoal_types::Id;
use shoal_types::service::{ContainerSpec, ResourceRequirements};

/// Root: namespaces, cgroups, switching users.
fn have_root() -> bool {
    need(&[Need::Root])
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
        cfg.cgroup_parent =
            shoal_testkit::scoped_name("rt", &format!("{}-{name}-{n}", std::process::id()));
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
    /// Kills the test's shims and tasks and removes its cgroups, even after a failure.
    fn drop(&mut self) {
        let probe = self.driver.task_cgroup_dirs(&Id::from_raw("probe"));
        let mut parents: Vec<String> = probe
            .iter()
            .filter_map(|d| Some(d.parent()?.file_name()?.to_string_lossy().into_owned()))
            .collect();
        parents.dedup();
        for parent in parents {
            shoal_testkit::reap(self._root.path(), &parent);
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
        networks: Vec::new(),
        netns: None,
        files: Vec::new(),
        local_networks: Vec::new(),
        publish: Vec::new(),
    }
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
async fn limits_are_in_the_cgroup_and_the_task_is_in_it() {
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
    r.resources.limits.memory_bytes = 64 * 1024 * 1024;
    env.start(&r).await;
    let memory_file = match env.driver.capabilities().cgroup_version {
        CgroupVersion::V2 => "memory.max",
        _ => "memory.limit_in_bytes",
    };
    assert_eq!(
        env.cgroup_file(&r.task_id, memory_file).as_deref(),
        Some("67108864")
    );
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
