//! The native runtime running real images through the real `shoal shim` and `crun`, for what
//! is the native runtime's own: an image rootfs (overlay or copy), isolation between tasks and
//! from the node, volumes filled from the image, read-only roots, tmpfs mounts, the image's
//! health check under the spec's, the spec's DNS settings and extra hosts in the task's `/etc`
//! files, and bad specs. The contract every driver keeps is the conformance suite's
//! (`native_conformance.rs`).
//!
//! The image is `shoal-test/busybox:latest` (built by `tests/images/build.sh`), unpacked once
//! into /var/tmp/shoal-images/busybox-rootfs with `docker create` + `docker export`; without
//! Docker the same tree is assembled from the node's static busybox. A tiny `ImageStore` serves
//! it. These need root and crun (or runc): `shoal_testkit::need` fails them, saying what is
//! missing. Waits are bounded polls, never sleeps.

#[path = "common/busybox.rs"]
mod busybox;
#[path = "common/driver.rs"]
mod driver;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use busybox::{DirStore, IMAGE, busybox_rootfs, have_prerequisites};
use driver::DEADLINE;
use shoal_native::{NativeConfig, NativeDriver};
use shoal_runtime::{ExitInfo, Health, RuntimeDriver, RuntimeError, TaskRun};
use shoal_types::Id;
use shoal_types::container::{HealthConfig, Mount, MountKind};
use shoal_types::service::{ContainerSpec, ResourceRequirements};

static SEQ: AtomicUsize = AtomicUsize::new(0);

struct Env {
    driver: NativeDriver,
    root: tempfile::TempDir,
    parent: String,
}

impl Env {
    fn new(name: &str) -> Env {
        Self::with_image_health(name, None)
    }

    fn with_image_health(name: &str, healthcheck: Option<HealthConfig>) -> Env {
        Self::build(name, healthcheck, true)
    }

    fn build(name: &str, healthcheck: Option<HealthConfig>, allow_overlay: bool) -> Env {
        let root = tempfile::tempdir().expect("tempdir");
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let parent =
            shoal_testkit::scoped_name("img", &format!("{}-{name}-{n}", std::process::id()));
        let driver = Self::driver_on(root.path(), &parent, healthcheck, allow_overlay);
        Env {
            driver,
            root,
            parent,
        }
    }

    fn driver_on(
        root: &Path,
        parent: &str,
        healthcheck: Option<HealthConfig>,
        allow_overlay: bool,
    ) -> NativeDriver {
        let mut cfg = NativeConfig::new(
            root.join("native"),
            PathBuf::from(env!("CARGO_BIN_EXE_shoal")),
        );
        cfg.cgroup_parent = parent.to_string();
        cfg.allow_overlay = allow_overlay;
        cfg.images = Some(Arc::new(DirStore {
            rootfs: busybox_rootfs(),
            healthcheck,
        }));
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

    /// Runs a task to its end; returns its exit and output, and removes it.
    async fn run_to_end(&self, run: &TaskRun) -> (ExitInfo, String, String) {
        self.start(run).await;
        let exit = self.wait(&run.task_id).await;
        let (out, err) = self.output(&run.task_id).await;
        self.driver.remove(&run.task_id).await.expect("remove");
        (exit, out, err)
    }
}

impl Drop for Env {
    /// Kills the test's shims and tasks, unmounts what it left mounted under its root and
    /// removes its cgroups (in every hierarchy: the OCI runtime makes some the driver does not),
    /// even after a failure.
    fn drop(&mut self) {
        shoal_testkit::reap(self.root.path(), &self.parent);
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
            image: IMAGE.into(),
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

/// Polls `f` until it returns `Some`, or fails with the last observed state.
async fn poll_until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (Option<T>, String)>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (got, seen) = f().await;
        if let Some(v) = got {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last seen: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn runs_an_image_with_its_own_root_and_hostname() {
    if !have_prerequisites() {
        return;
    }
    let env = Env::new("hello");
    // Overlay on this node's test filesystems; the copy is covered by the next test.
    eprintln!("rootfs by overlay: {}", env.driver.uses_overlay());
    let marker = format!("/tmp/shoal-host-marker-{}", std::process::id());
    std::fs::write(&marker, "node").expect("write marker");
    let r = run(
        "hello",
        &[
            "sh",
            "-c",
            &format!(
                "echo hi; cat /etc/hostname; echo $PATH; test -e {marker} && echo LEAK; echo $$; ls /bin/busybox"
            ),
        ],
    );
    let (exit, out, err) = env.run_to_end(&r).await;
    let _ = std::fs::remove_file(&marker);
    assert_eq!(exit.code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(out, "hi\nh-hello\n/bin\n1\n/bin/busybox\n", "stderr: {err}");
    assert!(!env.driver.task_dir(&r.task_id).exists(), "removed");

    // What one task writes into its root, the next one does not see.
    let a = run(
        "writer",
        &["sh", "-c", "echo secret > /tmp/mine; cat /tmp/mine"],
    );
    let (exit, out, _) = env.run_to_end(&a).await;
    assert_eq!((exit.code, out.as_str()), (0, "secret\n"));
    let b = run(
        "reader",
        &["sh", "-c", "test -e /tmp/mine && echo SEEN || echo clean"],
    );
    let (_, out, _) = env.run_to_end(&b).await;
    assert_eq!(out, "clean\n");
    // ... and the image itself is untouched.
    assert!(!busybox_rootfs().join("tmp/mine").exists());
    // The image's default command runs when the spec gives none.
    let mut d = run("default", &[]);
    d.container.args = vec![];
    let (exit, _, _) = env.run_to_end(&d).await;
    assert_eq!(exit.code, 0, "/bin/sh with stdin at EOF exits 0");
}

#[tokio::test]
async fn unknown_image_and_bad_specs_are_rejected() {
    if !have_prerequisites() {
        return;
    }
    let env = Env::new("bad");
    let mut r = run("nosuch", &["true"]);
    r.container.image = "no-such-image:1".into();
    match env.driver.prepare(&r).await {
        Err(e @ RuntimeError::ImageNotFound(_)) => {
            assert_eq!(e.to_string(), "No such image: no-such-image:1")
        }
        other => panic!("expected ImageNotFound, got {other:?}"),
    }
    assert!(!env.driver.task_dir(&r.task_id).exists());

    let mut r = run("badmount", &["true"]);
    r.container.mounts = vec![Mount {
        kind: MountKind::Bind,
        source: "/no/such/source".into(),
        target: "/data".into(),
        ..Default::default()
    }];
    assert!(matches!(
        env.driver.prepare(&r).await,
        Err(RuntimeError::InvalidSpec {
            field: "mounts",
            ..
        })
    ));
    let mut r = run("badcap", &["true"]);
    r.container.cap_add = vec!["NOT_A_CAP".into()];
    assert!(matches!(
        env.driver.prepare(&r).await,
        Err(RuntimeError::InvalidSpec {
            field: "cap_add",
            ..
        })
    ));
}

#[tokio::test]
async fn named_volumes_outlive_tasks_and_tmpfs_and_read_only_root() {
    if !have_prerequisites() {
        return;
    }
    let env = Env::new("vol");
    let vol = |target: &str| Mount {
        kind: MountKind::Volume,
        source: "data".into(),
        target: target.into(),
        volume_labels: [("team".to_string(), "a".to_string())].into(),
        ..Default::default()
    };
    // The image's files at the target fill a new volume.
    let mut w = run(
        "volw",
        &["sh", "-c", "echo kept > /data/f; cat /var/www/index.html"],
    );
    w.container.mounts = vec![
        vol("/data"),
        Mount {
            source: "site".into(),
            ..vol("/var/www")
        },
    ];
    env.start(&w).await;
    let exit = env.wait(&w.task_id).await;
    let (out, err) = env.output(&w.task_id).await;
    assert_eq!(
        (exit.code, out.as_str()),
        (0, "hello from shoal\n"),
        "{err}"
    );

    // In use while the task exists, even exited.
    let vols = env.driver.volumes().await.expect("volumes");
    let data = vols
        .iter()
        .find(|v| v.name == "data")
        .expect("data volume listed");
    assert_eq!(data.in_use_by, vec![w.task_id.clone()]);
    assert_eq!(data.labels.get("team").map(String::as_str), Some("a"));
    assert!(data.created_at.unix_nanos() > 0);
    assert!(vols.iter().any(|v| v.name == "site"));
    assert!(matches!(
        env.driver.remove_volume("data", false).await,
        Err(RuntimeError::VolumeInUse { .. })
    ));
    env.driver.remove(&w.task_id).await.expect("remove");

    // A second task sees the file; its root is read-only, its tmpfs is writable.
    let mut r = run(
        "volr",
        &[
            "sh",
            "-c",
            "cat /data/f; touch /nope 2>/dev/null && echo WROTE || echo ro; \
             echo t > /scratch/x && cat /scratch/x; grep -c ' /scratch tmpfs ' /proc/mounts; \
             cat /www/index.html; touch /www/x 2>/dev/null && echo WROTE || echo ro",
        ],
    );
    r.container.mounts = vec![
        vol("/data"),
        Mount {
            kind: MountKind::Tmpfs,
            target: "/scratch".into(),
            tmpfs_size: 1 << 20,
            ..Default::default()
        },
        Mount {
            source: "site".into(),
            read_only: true,
            ..vol("/www")
        },
    ];
    r.container.read_only = true;
    let (exit, out, err) = env.run_to_end(&r).await;
    assert_eq!(
        (exit.code, out.as_str()),
        (0, "kept\nro\nt\n1\nhello from shoal\nro\n"),
        "{err}"
    );

    let vols = env.driver.volumes().await.expect("volumes");
    assert!(vols.iter().all(|v| v.in_use_by.is_empty()));
    env.driver
        .remove_volume("data", false)
        .await
        .expect("remove volume");
    assert!(matches!(
        env.driver.remove_volume("data", false).await,
        Err(RuntimeError::VolumeNotFound(_))
    ));
}

#[tokio::test]
async fn health_check_goes_starting_healthy_unhealthy() {
    if !have_prerequisites() {
        return;
    }
    // The image's check, with the spec's interval and retries over it.
    let image_check = HealthConfig {
        test: vec!["CMD-SHELL".into(), "test -f /tmp/ok".into()],
        ..Default::default()
    };
    let env = Env::with_image_health("health", Some(image_check));
    let mut r = run(
        "health",
        &[
            "sh",
            "-c",
            "sleep 2; touch /tmp/ok; while [ ! -e /tmp/stop ]; do sleep 0.2; done; rm /tmp/ok; exec sleep 100",
        ],
    );
    r.container.healthcheck = Some(HealthConfig {
        interval: Some(Duration::from_secs(1)),
        timeout: Some(Duration::from_secs(5)),
        retries: Some(2),
        ..Default::default()
    });
    env.start(&r).await;
    assert_eq!(
        env.driver.health(&r.task_id).await.expect("health"),
        Health::Starting
    );
    let id = r.task_id.clone();
    poll_until("healthy", || async {
        let h = env.driver.health(&id).await.expect("health");
        ((h == Health::Healthy).then_some(()), format!("{h:?}"))
    })
    .await;
    // The task removes the file once told to (through its own root, seen from the node).
    let stop = env
        .root
        .path()
        .join("native/tasks/health/bundle/rootfs/tmp/stop");
    std::fs::write(&stop, "").expect("signal the task");
    poll_until("unhealthy", || async {
        let h = env.driver.health(&id).await.expect("health");
        (
            matches!(h, Health::Unhealthy(_)).then_some(()),
            format!("{h:?}"),
        )
    })
    .await;
    env.driver
        .stop(&r.task_id, Duration::from_secs(1))
        .await
        .expect("stop");
    env.driver.remove(&r.task_id).await.expect("remove");

    // `NONE` disables the image's check.
    let mut n = run("nohealth", &["true"]);
    n.container.healthcheck = Some(HealthConfig {
        test: vec!["NONE".into()],
        ..Default::default()
    });
    env.driver.prepare(&n).await.expect("prepare");
    assert_eq!(
        env.driver.health(&n.task_id).await.expect("health"),
        Health::None
    );
    env.driver.remove(&n.task_id).await.expect("remove");
}

#[tokio::test]
async fn copied_rootfs_when_overlay_is_off() {
    if !have_prerequisites() {
        return;
    }
    let env = Env::build("copy", None, false);
    assert!(!env.driver.uses_overlay());
    let a = run(
        "cwriter",
        &["sh", "-c", "echo x > /tmp/mine; cat /etc/hostname"],
    );
    let (exit, out, err) = env.run_to_end(&a).await;
    assert_eq!((exit.code, out.as_str()), (0, "h-cwriter\n"), "{err}");
    let b = run(
        "creader",
        &["sh", "-c", "test -e /tmp/mine && echo SEEN || echo clean"],
    );
    let (_, out, _) = env.run_to_end(&b).await;
    assert_eq!(out, "clean\n");
    assert!(!busybox_rootfs().join("tmp/mine").exists());
}

#[tokio::test]
async fn host_image_tasks_get_health_checks_in_their_namespaces() {
    if !have_prerequisites() {
        return;
    }
    let env = Env::new("hosthealth");
    let flag = env.root.path().join("flag");
    let mut r = run(
        "hosthealth",
        &["sh", "-c", "hostname > /tmp/seen-by-task; exec sleep 100"],
    );
    r.container.image = "host".into();
    // Passes only in the task's UTS namespace (its hostname) and while the flag file exists.
    r.container.healthcheck = Some(HealthConfig {
        test: vec![
            "CMD-SHELL".into(),
            format!(
                "test \"$(hostname)\" = h-hosthealth && test -f {}",
                flag.display()
            ),
        ],
        interval: Some(Duration::from_secs(1)),
        retries: Some(1),
        ..Default::default()
    });
    std::fs::write(&flag, "").expect("flag");
    env.start(&r).await;
    let id = r.task_id.clone();
    poll_until("healthy", || async {
        let h = env.driver.health(&id).await.expect("health");
        ((h == Health::Healthy).then_some(()), format!("{h:?}"))
    })
    .await;
    std::fs::remove_file(&flag).expect("remove flag");
    poll_until("unhealthy", || async {
        let h = env.driver.health(&id).await.expect("health");
        (
            matches!(h, Health::Unhealthy(_)).then_some(()),
            format!("{h:?}"),
        )
    })
    .await;
    env.driver
        .stop(&r.task_id, Duration::from_secs(1))
        .await
        .expect("stop");
    env.driver.remove(&r.task_id).await.expect("remove");
}

/// `ip netns add`: a namespace for a task with networks, as the node's network layer makes one
/// (named for this run, so `tests/run` finds it if a crash leaves it); deleted on drop.
struct Netns(String);

impl Netns {
    fn add(name: &str) -> Netns {
        let n = shoal_testkit::scoped_name("netns", &format!("{}-{name}", std::process::id()));
        let out = std::process::Command::new("ip")
            .args(["netns", "add", &n])
            .output()
            .expect("run ip");
        assert!(out.status.success(), "ip netns add {n}: {out:?}");
        Netns(n)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        shoal_testkit::hosts::kill_processes_in_netns(&self.path());
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .output();
    }
}

/// `--dns 192.0.2.53 --dns-search example.org --dns-option timeout:2 --host db.example:192.0.2.7
/// --host cache:192.0.2.8` with an alias: what a task writes of its `/etc` files.
fn with_dns(mut r: TaskRun) -> TaskRun {
    r.container.dns_config = Some(shoal_types::dns::DnsConfig {
        nameservers: vec!["192.0.2.53".into()],
        search: vec!["example.org".into()],
        options: vec!["timeout:2".into()],
    });
    r.container.hosts = vec![
        "192.0.2.7 db.example".into(),
        "192.0.2.8 cache alias".into(),
    ];
    r.container.command = ["sh", "-c", "cat /etc/resolv.conf; echo ---; cat /etc/hosts"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    r
}

/// The spec's resolver settings and extra hosts in a task's `/etc/resolv.conf` and
/// `/etc/hosts`: over the node's on the node's network; behind the embedded server (its
/// search domains and options, `ndots:0` after them) with networks of its own.
#[tokio::test]
async fn dns_settings_and_extra_hosts_reach_the_task_s_etc_files() {
    if !have_prerequisites() || !shoal_testkit::need(&[shoal_testkit::Need::Tool("ip")]) {
        return;
    }
    let env = Env::new("dns");
    let extra = "192.0.2.7\tdb.example\n192.0.2.8\tcache\n192.0.2.8\talias\n";

    let r = with_dns(run("dnsnode", &[]));
    let (exit, out, err) = env.run_to_end(&r).await;
    assert_eq!(exit.code, 0, "stdout: {out}\nstderr: {err}");
    let (resolv, hosts) = out.split_once("---\n").expect("both files");
    assert_eq!(
        resolv,
        "search example.org\nnameserver 192.0.2.53\noptions timeout:2\n"
    );
    let node_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    assert!(
        hosts.starts_with(node_hosts.trim_end()),
        "the node's entries first: {hosts:?}"
    );
    assert!(
        hosts.ends_with(&format!("{extra}127.0.1.1\th-dnsnode\n")),
        "the extra hosts, one per name, then the task's own: {hosts:?}"
    );

    let netns = Netns::add("dns");
    let mut r = with_dns(run("dnsnet", &[]));
    r.networks = vec![shoal_types::task::NetworkAttachment {
        network: Id::from_raw("net1"),
        addr: "10.0.9.5/24".parse().expect("address"),
        aliases: Vec::new(),
    }];
    r.netns = Some(netns.path());
    let (exit, out, err) = env.run_to_end(&r).await;
    assert_eq!(exit.code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(
        out,
        format!(
            "search example.org\nnameserver 127.0.0.11\noptions timeout:2 ndots:0\n---\n\
             127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{extra}\
             10.0.9.5\th-dnsnet\n"
        ),
        "the embedded server, which forwards to the spec's servers"
    );
}
