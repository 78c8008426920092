//! The driver contract as one suite every [`RuntimeDriver`] runs: native, Docker and the fake
//! the simulation uses, so the fake cannot drift from the real ones. Modelled on openraft's
//! storage suite: one `pub async fn` per behaviour taking a [`Harness`], [`run_all`] running
//! them all, and [`conformance_tests!`](crate::conformance_tests) expanding to one test per
//! behaviour, so a test run names the behaviour a driver broke.
//!
//! Every driver gets the same [`TaskRun`]s: `sh -c` scripts that a busybox or Debian shell
//! runs, and that the fake runs in its small shell. Every assertion names the driver.
//!
//! What a driver does beyond the contract (Docker's image pulls, the native runtime's rootfs
//! and cgroup files) keeps its own tests next to the driver. Later capabilities (secrets
//! mounts, exec) add their behaviours here (exec, signals, processes and usage: `exec`; a
//! task started again in place: `restart`; file archives: `archive`; attaching to a task's
//! own process: `attach`).
//!
//! A task with networks needs a network namespace: the driver's own (`network_sandbox`), else
//! one the harness makes ([`Harness::netns`]); the harness also marks it
//! ([`Harness::add_link`]) so the task shows it runs there. A harness that can do neither
//! (the fake) has the suite say so instead of checking.
//!
//! Waits are bounded ([`DEADLINE`]) and poll; nothing assumes how fast a driver is. Time is
//! tokio's, so the fake's suite can run with paused time.

mod archive;
mod attach;
mod cases;
mod exec;
mod images;
mod limits;
mod networks;
mod restart;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use shoal_types::Id;
use shoal_types::service::{ContainerSpec, ResourceRequirements};

use crate::{
    ExitInfo, LogOptions, LogStreamKind, RuntimeDriver, RuntimeError, TaskRun, next_log_line,
};

pub use archive::*;
pub use attach::*;
pub use cases::*;
pub use exec::*;
pub use images::*;
pub use limits::*;
pub use networks::*;
pub use restart::*;

/// How long any one wait of the suite may take before it fails, printing what it last saw.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// SIGKILL, SIGTERM, SIGUSR1 (the numbers every Linux architecture the project runs on shares).
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;
pub const SIGUSR1: i32 = 10;

/// The limits a task's process runs under, as the node enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub nano_cpus: Option<u64>,
}

/// One driver under test: how to make it, and what the suite cannot learn through the
/// contract itself. A harness owns what its tests leave on the node and removes it on drop.
#[async_trait]
pub trait Harness: Sized + Send + Sync + 'static {
    type Driver: RuntimeDriver;

    /// A harness for one behaviour (its name given, to name what it makes on the node).
    /// `None` when the machine lacks what the driver needs and the run opted out of it
    /// (`shoal_testkit::need`).
    async fn new(behaviour: &'static str) -> Option<Self>;

    /// The driver's name, for assertion messages.
    fn name(&self) -> &'static str;

    /// A driver over this harness's state: the first one, or after a "restart" (the previous
    /// one dropped) a new one that must adopt what the previous one left.
    async fn driver(&self) -> Self::Driver;

    /// A driver of another owner on the same node, whose tasks the harness's drivers must not
    /// see (another daemon on the same Docker Engine, another data directory, another node).
    async fn stranger(&self) -> Self::Driver;

    /// The image ordinary tasks run: it has `sh`, `echo`, `cat`, `sleep`, `touch`, `rm`.
    fn image(&self) -> String;

    /// Something unique to this harness, for names on engines other tests share.
    fn unique(&self) -> String;

    /// Sends `signal` to the task's process from outside, as `kill` on the node does; `pid` is
    /// what `start` returned.
    async fn kill(&self, driver: &Self::Driver, task: &Id, pid: i64, signal: i32);

    /// The limits the task's process runs under, read where the node enforces them (its
    /// cgroup); `None` when this driver cannot show them.
    async fn limits(&self, driver: &Self::Driver, task: &Id, pid: i64) -> Option<Limits>;

    /// A new directory of the node holding `files` (name, content), for bind mounts.
    async fn host_dir(&self, files: &[(&str, &str)]) -> String;

    /// What the driver left on the node of a removed task, in places the contract does not
    /// show (task directories, cgroups, containers); empty when it left nothing.
    async fn leftovers(&self, _driver: &Self::Driver, _task: &Id) -> Vec<String> {
        Vec::new()
    }

    /// A network namespace of the node for a task with networks, as the node's network layer
    /// makes one when the driver does not (`network_sandbox` is `None`); the harness removes
    /// it on drop (`ip netns add NAME` gives `/run/netns/NAME`). `None`: this harness has no
    /// namespaces to give, and the suite says it could not check what needs one.
    async fn netns(&self, _name: &str) -> Option<PathBuf> {
        None
    }

    /// The memory-backed mounts of the node whose mount point names `task` (where a driver
    /// keeps the task's secret files); `None`: this harness has no real mounts to show (see
    /// [`tmpfs_mounts_naming`] for the ones that do).
    async fn memory_mounts(&self, _task: &Id) -> Option<Vec<String>> {
        None
    }

    /// Adds an interface named `link` to the network namespace at `netns`, as the node's
    /// network layer adds a task's ([`add_link_with_ip`] does it with `ip`). False: this
    /// harness cannot, and the suite says it could not check what needs it.
    async fn add_link(&self, _netns: &Path, _link: &str) -> bool {
        false
    }
}

/// The tmpfs mounts of this machine whose mount point names `task`, from `/proc/self/mountinfo`.
pub fn tmpfs_mounts_naming(task: &Id) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let point = l.split_whitespace().nth(4)?;
            let fstype = l.split(" - ").nth(1)?.split_whitespace().next()?;
            (fstype == "tmpfs" && point.contains(task.as_str())).then(|| point.to_string())
        })
        .collect()
}

/// Adds a bridge named `link` to the network namespace at `netns` (`/run/netns/NAME`,
/// `/proc/PID/ns/net` or a bind mount of one), with `nsenter` and `ip`: a bridge needs no peer,
/// and the kernel has it wherever Docker's default network runs. Needs root; the error says
/// what failed.
pub fn add_link_with_ip(netns: &Path, link: &str) -> Result<(), String> {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["--", "ip", "link", "add", link, "type", "bridge"])
        .output()
        .map_err(|e| format!("running nsenter: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "adding {link} in {}: {}",
            netns.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A task of the harness's image running `sh -c script`.
pub fn task<H: Harness>(h: &H, name: &str, script: &str) -> TaskRun {
    command_task(h, name, &["sh", "-c", script])
}

/// A task of the harness's image running `argv`.
pub fn command_task<H: Harness>(h: &H, name: &str, argv: &[&str]) -> TaskRun {
    let id = format!("{name}-{}", h.unique());
    TaskRun {
        task_id: Id::from_raw(id.clone()),
        task_name: format!("conformance.1.{id}"),
        service_id: Id::from_raw("conformance"),
        service_name: "conformance".into(),
        node_id: Id::from_raw("node"),
        slot: 1,
        container: ContainerSpec {
            image: h.image(),
            command: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        resources: ResourceRequirements::default(),
        hostname: "conformance".into(),
        networks: Vec::new(),
        netns: None,
        files: Vec::new(),
        local_networks: Vec::new(),
        publish: Vec::new(),
    }
}

/// Prepares and starts `run`; its pid.
pub async fn start<H: Harness>(h: &H, d: &H::Driver, run: &TaskRun) -> i64 {
    let name = h.name();
    if let Err(e) = d.prepare(run).await {
        panic!("{name}: preparing {}: {e}", run.task_id);
    }
    match d.start(&run.task_id).await {
        Ok(pid) => pid,
        Err(e) => panic!("{name}: starting {}: {e}", run.task_id),
    }
}

/// The task's exit, within [`DEADLINE`].
pub async fn wait<H: Harness>(h: &H, d: &H::Driver, id: &Id) -> ExitInfo {
    match tokio::time::timeout(DEADLINE, d.wait(id)).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => panic!("{}: waiting for {id}: {e}", h.name()),
        Err(_) => panic!(
            "{}: task {id} did not end within {DEADLINE:?}; its output: {:?}",
            h.name(),
            output(h, d, id).await
        ),
    }
}

/// The lines of the task's log `opts` selects, to its end (with `follow`, the task's).
pub async fn lines<H: Harness>(h: &H, d: &H::Driver, id: &Id, opts: LogOptions) -> Vec<String> {
    let name = h.name();
    let mut s = match d.logs(id, opts).await {
        Ok(s) => s,
        Err(e) => panic!("{name}: logs of {id}: {e}"),
    };
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(DEADLINE, next_log_line(&mut s)).await {
            Err(_) => panic!("{name}: the log of {id} did not end; so far: {out:?}"),
            Ok(None) => return out,
            Ok(Some(Err(e))) => panic!("{name}: reading the log of {id}: {e}"),
            Ok(Some(Ok(l))) => {
                assert!(
                    l.time.unix_nanos() > 0,
                    "{name}: a log line of {id} has no time"
                );
                out.push(String::from_utf8_lossy(&l.line).into_owned());
            }
        }
    }
}

/// Both streams: what the task wrote to stdout, and to stderr.
pub async fn output<H: Harness>(h: &H, d: &H::Driver, id: &Id) -> (String, String) {
    let mut s = match d.logs(id, both()).await {
        Ok(s) => s,
        Err(e) => return (String::new(), format!("(no logs: {e})")),
    };
    let (mut out, mut err) = (String::new(), String::new());
    while let Ok(Some(l)) = tokio::time::timeout(DEADLINE, next_log_line(&mut s)).await {
        let Ok(l) = l else {
            break;
        };
        let text = String::from_utf8_lossy(&l.line);
        match l.stream {
            LogStreamKind::Stdout => out.push_str(&text),
            LogStreamKind::Stderr => err.push_str(&text),
        }
    }
    let _ = h;
    (out, err)
}

/// Both streams, all lines, no follow.
pub fn both() -> LogOptions {
    LogOptions {
        stdout: true,
        stderr: true,
        ..Default::default()
    }
}

/// Polls until the task has written `want` to stdout.
pub async fn until_output<H: Harness>(h: &H, d: &H::Driver, id: &Id, want: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (out, err) = output(h, d, id).await;
        if out.contains(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: task {id} never printed {want:?}; stdout {out:?}, stderr {err:?}, state {:?}",
            h.name(),
            d.list()
                .await
                .map(|l| l.into_iter().find(|t| &t.task_id == id))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `f` until it returns `Some`, or fails with what it last saw.
pub async fn poll<T, F, Fut>(h: &impl Harness, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "{}: timed out waiting for {what}; last seen: {seen}",
                h.name()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `r` is the error `want` names, for messages.
fn is_not_found<T>(r: &Result<T, RuntimeError>) -> bool {
    matches!(r, Err(RuntimeError::NotFound(_)))
}

/// Expands to one `#[tokio::test]` per behaviour for a harness type, each making its own
/// harness: `shoal_runtime::conformance_tests!(MyHarness);`, or with the test attribute given,
/// `conformance_tests!(MyHarness, [tokio::test(start_paused = true)]);`.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty) => {
        $crate::conformance_tests!($harness, [tokio::test]);
    };
    ($harness:ty, [$attr:meta]) => {
        $crate::conformance_tests!(@each $harness, [$attr],
            exit_code_and_split_output,
            exit_by_signal_is_128_plus_n,
            stop_ends_a_task_that_heeds_its_stop_signal,
            stop_kills_after_the_grace,
            logs_tail,
            logs_follow_until_exit,
            adoption_after_restart,
            other_owners_tasks_are_not_adopted,
            oom_is_reported,
            limits_reach_the_task,
            pids_limit_caps_the_processes,
            health_checks,
            named_volume_outlives_its_task,
            bind_mount_is_visible,
            missing_image_is_not_found,
            missing_executable_fails_the_start,
            remove_cleans_up,
            secret_and_config_files,
            a_task_with_networks_runs_in_its_namespace,
            exec_runs_inside_the_task,
            exec_reads_its_stdin,
            exec_on_a_tty,
            exec_needs_a_running_task,
            signal_processes_and_stats,
            image_inspect_and_history,
            image_tag_save_and_load,
            volume_create_and_prune,
            start_again_in_place,
            archive_put_then_get,
            archive_stays_in_the_task,
            attach_before_start_sees_the_first_output,
            attach_writes_the_stdin_of_an_open_stdin_task,
            attach_to_a_tty_task
        );
    };
    (@each $harness:ty, [$attr:meta], $($name:ident),*) => {
        $(
            #[$attr]
            async fn $name() {
                if let Some(h) =
                    <$harness as $crate::conformance::Harness>::new(stringify!($name)).await
                {
                    $crate::conformance::$name(&h).await;
                }
            }
        )*
    };
}

/// Every behaviour, one after the other, on one harness.
pub async fn run_all<H: Harness>(h: &H) {
    exit_code_and_split_output(h).await;
    exit_by_signal_is_128_plus_n(h).await;
    stop_ends_a_task_that_heeds_its_stop_signal(h).await;
    stop_kills_after_the_grace(h).await;
    logs_tail(h).await;
    logs_follow_until_exit(h).await;
    adoption_after_restart(h).await;
    other_owners_tasks_are_not_adopted(h).await;
    oom_is_reported(h).await;
    limits_reach_the_task(h).await;
    pids_limit_caps_the_processes(h).await;
    health_checks(h).await;
    named_volume_outlives_its_task(h).await;
    bind_mount_is_visible(h).await;
    missing_image_is_not_found(h).await;
    missing_executable_fails_the_start(h).await;
    remove_cleans_up(h).await;
    secret_and_config_files(h).await;
    a_task_with_networks_runs_in_its_namespace(h).await;
    exec_runs_inside_the_task(h).await;
    exec_reads_its_stdin(h).await;
    exec_on_a_tty(h).await;
    exec_needs_a_running_task(h).await;
    signal_processes_and_stats(h).await;
    image_inspect_and_history(h).await;
    image_tag_save_and_load(h).await;
    volume_create_and_prune(h).await;
    start_again_in_place(h).await;
    archive_put_then_get(h).await;
    archive_stays_in_the_task(h).await;
    attach_before_start_sees_the_first_output(h).await;
    attach_writes_the_stdin_of_an_open_stdin_task(h).await;
    attach_to_a_tty_task(h).await;
}
