//! The Docker runtime against the real Docker Engine, with the locally built
//! `shoal-test/busybox:latest` (tests/images/build.sh), for what is Docker's own: Swarm's
//! container names and labels, how the spec maps to a container, docker-init, images, pulls,
//! archives, and network sandboxes (the `shoal/pause` image they run stays in the engine, as
//! the driver leaves it). The contract every driver keeps is the conformance suite's (`conformance.rs`). Without a Docker daemon or the image the
//! tests fail saying what to install (`shoal_testkit::need`). Each test has its own owner label,
//! and removes its containers and volumes even when it fails. Waits are bounded
//! polls, never sleeps.
// The tests wait on a real engine, in wall-clock time.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use shoal_docker::{
    DockerDriver, LABEL_OWNER, LABEL_SANDBOX_TASK_ID, LABEL_SERVICE_NAME, LABEL_TASK_ID,
};
use shoal_runtime::{ExitInfo, LogOptions, RuntimeDriver, RuntimeError, TaskRun};
use shoal_runtime::{Health, LogStreamKind, RuntimeTaskState, next_log_line};
use shoal_testkit::{Need, need};
use shoal_types::Id;
use shoal_types::container::{HealthConfig, Ulimit};
use shoal_types::service::{ContainerSpec, ResourceRequirements};
use shoal_types::task::NetworkAttachment;

const IMAGE: &str = "shoal-test/busybox:latest";
const DEADLINE: Duration = Duration::from_secs(60);

/// A test's driver and what it cleans up.
struct Env {
    driver: DockerDriver,
    owner: String,
    volumes: Vec<String>,
    images: Vec<String>,
}

impl Env {
    /// None when the engine or the test image is missing and the run opted out of them.
    async fn new(name: &str) -> Option<Env> {
        if !need(&[Need::Tool("docker"), Need::DockerEngine, Need::TestImage]) {
            return None;
        }
        // The cleanup finds a test's containers by the label the driver sets.
        assert_eq!(LABEL_OWNER, shoal_testkit::reap::OWNER_LABEL);
        let owner = shoal_testkit::scoped_name("docker", &format!("{}-{name}", std::process::id()));
        let driver = match DockerDriver::connect(&owner).await {
            Ok(d) => d,
            Err(e) => panic!("the Docker Engine answers the CLI but not the driver: {e}"),
        };
        Some(Env {
            driver,
            owner,
            volumes: Vec::new(),
            images: Vec::new(),
        })
    }

    fn run(&self, id: &str, args: &[&str]) -> TaskRun {
        let task_id = format!("{id}{}", std::process::id());
        TaskRun {
            task_id: Id::from_raw(task_id.clone()),
            task_name: format!("dt.1.{task_id}"),
            service_id: Id::from_raw("svc"),
            service_name: "dt".into(),
            node_id: Id::from_raw("node"),
            slot: 1,
            container: ContainerSpec {
                image: IMAGE.into(),
                args: args.iter().map(|s| s.to_string()).collect(),
                stop_grace_period: Some(Duration::from_secs(1)),
                ..Default::default()
            },
            resources: ResourceRequirements::default(),
            hostname: "dt-host".into(),
            networks: Vec::new(),
            netns: None,
            files: Vec::new(),
            local_networks: Vec::new(),
            publish: Vec::new(),
        }
    }

    async fn start(&self, run: &TaskRun) -> i64 {
        self.driver.prepare(run).await.expect("prepare");
        self.driver.start(&run.task_id).await.expect("start")
    }

    async fn wait(&self, id: &Id) -> ExitInfo {
        tokio::time::timeout(DEADLINE, self.driver.wait(id))
            .await
            .expect("task ends in time")
            .expect("wait")
    }

    async fn output(&self, id: &Id, follow: bool) -> (String, String) {
        let opts = LogOptions {
            follow,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut s = self.driver.logs(id, opts).await.expect("logs");
        let (mut out, mut err) = (String::new(), String::new());
        while let Some(l) = tokio::time::timeout(DEADLINE, next_log_line(&mut s))
            .await
            .expect("logs end in time")
        {
            let l = l.expect("log line");
            assert!(l.time.unix_nanos() > 0, "each line keeps its time");
            let text = String::from_utf8_lossy(&l.line).into_owned();
            match l.stream {
                LogStreamKind::Stdout => out.push_str(&text),
                LogStreamKind::Stderr => err.push_str(&text),
            }
        }
        (out, err)
    }

    fn inspect(&self, format: &str, id: &Id) -> String {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label={LABEL_TASK_ID}={id}"))
            .output()
            .expect("docker ps");
        let cid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let out = Command::new("docker")
            .args(["inspect", "-f", format, &cid])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        shoal_testkit::reap::remove_docker_objects(&self.owner);
        for v in &self.volumes {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", v])
                .output();
        }
        for i in &self.images {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

async fn poll<T>(what: &str, mut f: impl AsyncFnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) if start.elapsed() > DEADLINE => {
                panic!("timed out waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Swarm's container name and labels, so `docker ps` tells which task a container is.
#[tokio::test]
async fn containers_carry_swarm_s_name_and_labels() {
    let Some(env) = Env::new("life").await else {
        return;
    };
    let run = env.run("life", &["true"]);
    env.driver.prepare(&run).await.expect("prepare");
    assert_eq!(
        env.inspect("{{.Name}}", &run.task_id),
        format!("/dt.1.{}", run.task_id)
    );
    assert_eq!(
        env.inspect(
            &format!("{{{{index .Config.Labels \"{LABEL_SERVICE_NAME}\"}}}}"),
            &run.task_id
        ),
        "dt"
    );
}

#[tokio::test]
async fn the_spec_reaches_the_container() {
    let Some(env) = Env::new("spec").await else {
        return;
    };
    let mut run = env.run(
        "spec",
        &[
            "-c",
            "echo $FOO; pwd; id -u; hostname; ulimit -n; touch /x 2>/dev/null || echo read-only; \
             cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
        ],
    );
    run.container.command = vec!["/bin/sh".into()];
    run.container.env = vec!["FOO=bar".into()];
    run.container.dir = "/tmp".into();
    run.container.user = "65534".into();
    run.container.read_only = true;
    run.container.ulimits = vec![Ulimit {
        name: "nofile".into(),
        soft: 123,
        hard: 456,
    }];
    run.container.cap_drop = vec!["ALL".into()];
    run.container.sysctls =
        BTreeMap::from([("net.ipv4.ip_unprivileged_port_start".into(), "123".into())]);
    run.container.labels = BTreeMap::from([("app".to_string(), "x".to_string())]);
    run.resources.limits.nano_cpus = 500_000_000;
    env.start(&run).await;
    assert_eq!(env.wait(&run.task_id).await.code, 0);
    let (out, err) = env.output(&run.task_id, false).await;
    assert_eq!(
        out, "bar\n/tmp\n65534\ndt-host\n123\nread-only\n123\n",
        "stderr: {err}"
    );
    assert_eq!(
        env.inspect("{{.HostConfig.NanoCpus}}", &run.task_id),
        "500000000"
    );
    assert_eq!(
        env.inspect("{{.HostConfig.CapDrop}}", &run.task_id),
        "[ALL]"
    );
}

#[tokio::test]
async fn stop_sends_the_stop_signal_through_init_and_logs_follow_to_the_end() {
    let Some(env) = Env::new("stop").await else {
        return;
    };
    let mut run = env.run("stop", &["sh", "-c", "echo started; exec sleep 1000"]);
    run.container.init = Some(true);
    let pid = env.start(&run).await;
    assert!(pid > 0);
    assert!(matches!(
        env.driver.list().await.expect("list")[0].state,
        RuntimeTaskState::Running { .. }
    ));
    let mut follower = {
        let opts = LogOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        env.driver.logs(&run.task_id, opts).await.expect("logs")
    };
    // The first line while the task runs: sh has run its echo and exec'd sleep by then.
    let first = tokio::time::timeout(DEADLINE, next_log_line(&mut follower))
        .await
        .expect("a line in time")
        .expect("a line")
        .expect("line");
    assert_eq!(&first.line[..], b"started\n");
    env.driver
        .stop(&run.task_id, Duration::from_secs(10))
        .await
        .expect("stop");
    let exit = env.wait(&run.task_id).await;
    // docker-init passes SIGTERM on to sleep, which dies of it: well inside the grace period.
    assert_eq!((exit.code, exit.signal), (143, Some(15)), "{exit:?}");
    let rest = tokio::time::timeout(DEADLINE, next_log_line(&mut follower))
        .await
        .expect("follow ends with the task");
    assert!(rest.is_none(), "{rest:?}");
    env.driver
        .stop(&run.task_id, Duration::from_secs(1))
        .await
        .expect("stopping an exited task is a no-op");
}

#[tokio::test]
async fn images_are_docker_images() {
    let Some(env) = Env::new("images").await else {
        return;
    };
    let images = env.driver.images().await.expect("images");
    assert!(
        images
            .iter()
            .any(|i| i.repo_tags.iter().any(|t| t == IMAGE)),
        "{images:?}"
    );
    assert!(matches!(
        env.driver
            .remove_image("shoal-test/no-such-image:x", false)
            .await,
        Err(RuntimeError::ImageNotFound(_))
    ));
    assert!(matches!(
        env.driver.pull_image("shoal-test/no-such-image:x").await,
        Err(RuntimeError::Pull { .. })
    ));
    assert!(env.driver.api_version().starts_with("1."));
}

#[tokio::test]
async fn the_spec_s_check_wins_over_the_image_s() {
    let Some(mut env) = Env::new("imghealth").await else {
        return;
    };
    // An image whose own HEALTHCHECK always fails.
    let tag = format!("shoal-test/busybox-unhealthy:{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {IMAGE}\nHEALTHCHECK --interval=300ms --retries=1 CMD echo image-check; false\n"
        ),
    )
    .expect("Dockerfile");
    let built = Command::new("docker")
        .args(["build", "-q", "-t", &tag])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(built.status.success(), "{built:?}");
    env.images.push(tag.clone());
    let with = |id: &str, h: Option<HealthConfig>| {
        let mut r = env.run(id, &["sleep", "1000"]);
        r.container.image = tag.clone();
        r.container.healthcheck = h;
        r
    };
    let image_s = with("himg", None);
    let spec_s = with(
        "hspec",
        Some(HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            ..Default::default()
        }),
    );
    let none = with(
        "hoff",
        Some(HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        }),
    );
    for r in [&image_s, &spec_s, &none] {
        env.start(r).await;
    }
    let out = poll("the image's check to fail", async || {
        match env.driver.health(&image_s.task_id).await {
            Ok(Health::Unhealthy(out)) => Ok(out),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(out, "image-check");
    // The spec's command, with the image's interval and retries.
    poll("the spec's check to pass", async || {
        match env.driver.health(&spec_s.task_id).await {
            Ok(Health::Healthy) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        env.driver.health(&none.task_id).await.expect("health"),
        Health::None
    );
}

/// `docker-registry` on a loopback port for as long as the test runs.
struct Registry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// None when `docker-registry` is missing and the run opted out of it.
    fn start() -> Option<Registry> {
        if !need(&[Need::Tool("docker-registry")]) {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let addr = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("registry config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let start = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                start.elapsed() < DEADLINE,
                "the registry at {addr} never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Registry {
            child,
            addr,
            _dir: dir,
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_absent_image_is_pulled_before_the_task_runs() {
    let Some(mut env) = Env::new("pull").await else {
        return;
    };
    let Some(registry) = Registry::start() else {
        return;
    };
    // Docker trusts registries on loopback without TLS.
    let remote = format!("{}/shoal-pull:{}", registry.addr, std::process::id());
    env.images.push(remote.clone());
    let docker = |args: &[&str]| {
        let out = Command::new("docker").args(args).output().expect("docker");
        assert!(out.status.success(), "docker {args:?}: {out:?}");
    };
    docker(&["tag", IMAGE, &remote]);
    docker(&["push", &remote]);
    docker(&["rmi", &remote]);

    let mut run = env.run("pull", &["echo", "pulled"]);
    run.container.image = remote.clone();
    env.start(&run).await;
    assert_eq!(env.wait(&run.task_id).await.code, 0);
    assert_eq!(env.output(&run.task_id, false).await.0, "pulled\n");
    let images = env.driver.images().await.expect("images");
    assert!(
        images.iter().any(|i| i.repo_tags.contains(&remote)),
        "{images:?}"
    );
    env.driver.remove(&run.task_id).await.expect("remove");
    let removed = env.driver.remove_image(&remote, false).await.expect("rmi");
    assert!(
        removed.iter().any(|r| r == &format!("Untagged: {remote}")),
        "{removed:?}"
    );
    let info = env.driver.pull_image(&remote).await.expect("pull");
    assert!(info.repo_tags.contains(&remote), "{info:?}");
    assert!(info.id.starts_with("sha256:"), "{info:?}");
}

#[tokio::test]
async fn archives_load_into_docker() {
    let Some(env) = Env::new("load").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("busybox.tar");
    let saved = Command::new("docker")
        .args(["save", "-o"])
        .arg(&archive)
        .arg(IMAGE)
        .output()
        .expect("docker save");
    assert!(saved.status.success(), "{saved:?}");
    let refs = env.driver.load_image(&archive).await.expect("load");
    assert_eq!(refs, vec![IMAGE.to_string()]);

    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar archive").expect("junk");
    let err = env.driver.load_image(&junk).await.expect_err("junk");
    assert!(matches!(err, RuntimeError::InvalidImage(_)), "{err:?}");
    assert!(matches!(
        env.driver.load_image(&dir.path().join("absent.tar")).await,
        Err(RuntimeError::Io { .. })
    ));
}

/// `docker ARGS`' stdout, trimmed; the test fails with its stderr if it fails.
fn docker_out(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The IDs of the containers of the task's sandbox.
fn sandboxes_of(task: &Id) -> Vec<String> {
    docker_out(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={LABEL_SANDBOX_TASK_ID}={task}"),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// Which network namespace `/proc/PID/ns/net` (or any such path) is.
fn netns_id(path: &std::path::Path) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .display()
        .to_string()
}

fn with_network(mut run: TaskRun) -> TaskRun {
    run.networks = vec![NetworkAttachment {
        network: Id::from_raw("net1"),
        addr: "10.0.9.7/24".parse().expect("address"),
        aliases: Vec::new(),
    }];
    run
}

/// A task with networks runs in its sandbox's namespace; a restarted daemon finds the task's
/// container (not the sandbox) and the same sandbox; `stop` leaves the sandbox, `remove`
/// takes both.
#[tokio::test]
async fn a_networked_task_joins_its_sandbox_and_both_are_adopted() {
    let Some(env) = Env::new("netadopt").await else {
        return;
    };
    let mut run = with_network(env.run("netadopt", &["sleep", "1000"]));
    let netns = env
        .driver
        .network_sandbox(&run)
        .await
        .expect("sandbox")
        .expect("the docker runtime makes the namespace");
    let sandbox = sandboxes_of(&run.task_id);
    assert_eq!(sandbox.len(), 1, "{sandbox:?}");
    assert_eq!(
        docker_out(&["inspect", "-f", "{{.Name}}", &sandbox[0]]),
        format!("/dt.1.{}.sandbox", run.task_id)
    );
    run.netns = Some(netns.clone());
    let pid = env.start(&run).await;
    assert_eq!(
        env.inspect("{{.HostConfig.NetworkMode}}", &run.task_id),
        format!("container:{}", sandbox[0])
    );
    assert_eq!(
        netns_id(&PathBuf::from(format!("/proc/{pid}/ns/net"))),
        netns_id(&netns),
        "the task runs in the sandbox's namespace"
    );

    let again = DockerDriver::connect(&env.owner).await.expect("connect");
    let listed = again.list().await.expect("list");
    assert_eq!(listed.len(), 1, "the sandbox is no task: {listed:?}");
    assert_eq!(listed[0].task_id, run.task_id);
    assert_eq!(listed[0].state, RuntimeTaskState::Running { pid });
    assert_eq!(
        again.network_sandbox(&run).await.expect("sandbox"),
        Some(netns.clone()),
        "the same namespace"
    );
    assert_eq!(again.start(&run.task_id).await.expect("start"), pid);
    again
        .stop(&run.task_id, Duration::from_secs(1))
        .await
        .expect("stop");
    assert_eq!(
        docker_out(&["inspect", "-f", "{{.State.Running}}", &sandbox[0]]),
        "true",
        "a stopped task keeps its sandbox"
    );
    again.remove(&run.task_id).await.expect("remove");
    assert_eq!(sandboxes_of(&run.task_id), Vec::<String>::new());
    assert!(matches!(
        again.remove(&run.task_id).await,
        Err(RuntimeError::NotFound(_))
    ));
}

/// A sandbox whose task was never prepared: its driver's `list` leaves it, `stop` of its
/// container ends the pause program at once, asking again starts it again, and the task's
/// `remove` takes it. One an earlier daemon left, a new daemon's `list` removes.
#[tokio::test]
async fn a_sandbox_without_its_task() {
    let Some(env) = Env::new("netlone").await else {
        return;
    };
    let run = with_network(env.run("netlone", &["true"]));
    let first = env
        .driver
        .network_sandbox(&run)
        .await
        .expect("sandbox")
        .expect("a namespace");
    env.driver.list().await.expect("list");
    let sandbox = sandboxes_of(&run.task_id);
    assert_eq!(sandbox.len(), 1, "its own driver's list keeps it");

    let began = Instant::now();
    docker_out(&["stop", "-t", "30", &sandbox[0]]);
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "the pause program ends on SIGTERM: {:?}",
        began.elapsed()
    );
    assert_eq!(
        docker_out(&["inspect", "-f", "{{.State.ExitCode}}", &sandbox[0]]),
        "0"
    );
    let second = env
        .driver
        .network_sandbox(&run)
        .await
        .expect("sandbox")
        .expect("a namespace");
    assert_ne!(second, first, "started again, in a new process");
    assert!(second.exists());
    assert_eq!(sandboxes_of(&run.task_id), sandbox, "the same container");
    env.driver.remove(&run.task_id).await.expect("remove");
    assert_eq!(sandboxes_of(&run.task_id), Vec::<String>::new());
    assert!(matches!(
        env.driver.remove(&run.task_id).await,
        Err(RuntimeError::NotFound(_))
    ));

    let left = with_network(env.run("netstray", &["true"]));
    env.driver
        .network_sandbox(&left)
        .await
        .expect("sandbox")
        .expect("a namespace");
    let later = DockerDriver::connect(&env.owner).await.expect("connect");
    assert_eq!(later.list().await.expect("list"), Vec::new());
    assert_eq!(
        sandboxes_of(&left.task_id),
        Vec::<String>::new(),
        "a later daemon's list removes a sandbox left without its task"
    );
}

/// A networked task's spec DNS settings and extra hosts reach it through its sandbox: only the
/// node's DNS server (the spec's servers are its upstreams), the spec's search domains, its
/// options before `ndots:0`, and its extra hosts (one line per name) before its own address.
#[tokio::test]
async fn a_networked_task_gets_its_dns_settings_and_hosts_from_its_sandbox() {
    let Some(env) = Env::new("netdns").await else {
        return;
    };
    let mut run = with_network(env.run(
        "netdns",
        &["sh", "-c", "cat /etc/resolv.conf; echo ---; cat /etc/hosts"],
    ));
    run.container.dns_config = Some(shoal_types::dns::DnsConfig {
        nameservers: vec!["192.0.2.53".into()],
        search: vec!["example.org".into()],
        options: vec!["timeout:2".into()],
    });
    run.container.hosts = vec![
        "192.0.2.7 db.example".into(),
        "192.0.2.8 cache alias".into(),
    ];
    let netns = env
        .driver
        .network_sandbox(&run)
        .await
        .expect("sandbox")
        .expect("a namespace");
    run.netns = Some(netns);
    env.start(&run).await;
    let exit = env.wait(&run.task_id).await;
    let (out, err) = env.output(&run.task_id, false).await;
    assert_eq!(exit.code, 0, "stdout {out:?}, stderr {err:?}");
    let (resolv, hosts) = out.split_once("---\n").expect("both files");
    let lines: Vec<&str> = resolv.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "search example.org",
            "nameserver 127.0.0.11",
            "options timeout:2 ndots:0"
        ],
        "{resolv}"
    );
    assert!(
        hosts.ends_with(
            "192.0.2.7\tdb.example\n192.0.2.8\tcache\n192.0.2.8\talias\n10.0.9.7\tdt-host\n"
        ),
        "{hosts}"
    );
    env.driver.remove(&run.task_id).await.expect("remove");
}
