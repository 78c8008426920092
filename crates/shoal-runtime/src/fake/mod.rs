//! An in-memory [`RuntimeDriver`] for tests and simulation: no OS processes, every call
//! recorded, time from tokio (which the simulation pauses), nothing random. It passes the same
//! conformance suite as the real drivers ([`crate::conformance`]), so what the agent sees of it
//! is what it would see of them.
//!
//! - A task whose command is `sh -c SCRIPT` runs SCRIPT in a small shell (see `shell`, `proc`):
//!   output goes to its log, files to its own root, its volumes or the node's files (binds), and
//!   it behaves as PID 1 (signals without a trap are ignored; SIGKILL always kills). Its
//!   background jobs (`CMD &`) are processes of the task, counted against its PIDs limit as the
//!   pids cgroup counts them. Its health check runs the same way.
//! - Any other command is an opaque process: it runs until told to ([`FakeDriver::exit`]) or
//!   stopped (it dies of the stop signal at once), and its health moves only by
//!   [`FakeDriver::set_health`].
//! - An exec runs its argv in the task's shell the same way (see `exec`); an attached client
//!   gets the task's output as its log does and writes its stdin (`cat`, `read`), and a task
//!   with `tty` has a terminal (`[ -t 0 ]`, `stty size`, `\r\n`) (see `attach`).
//! - Archives (`docker cp`) read and write the same files, with what `archive` keeps beside
//!   them (modes, times, directories, symlinks; `ln -s` in a script makes one too).
//! - Images all exist for tasks except one named `missing` (any repository or tag); a task's
//!   image enters the node's image table at `prepare`, as if pulled (see `catalog`, which also
//!   holds the volume calls an engine serves). Executables all exist except `fail-start` and
//!   paths with a component starting `no-such`.
//!
//! The node's primitives (clock, exits, signals, files) are `node`'s; a process's stdin and
//! terminal, `stdio`'s.
//!
//! The state is a [`FakeNode`]: a new driver made [`FakeDriver::on`] the node of a previous one
//! adopts its tasks, as a real driver does after a restart. Processes outlive the driver that
//! started them (as shims do) but not the node.
//!
//! Concurrency: one mutex around the node's tables, never held across an await; waiters are
//! woken through a watch channel bumped on every change.

mod archive;
mod attach;
mod catalog;
mod exec;
mod node;
mod proc;
mod shell;
mod stdio;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use shoal_types::container::MountKind;
use shoal_types::service::ResourceRequirements;
use shoal_types::{Id, Timestamp};
use tokio::sync::watch;

use crate::{
    ExitInfo, Health, LogLine, LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeTask,
    RuntimeTaskState, TaskRun, VolumeInfo, parse_stop_signal,
};

/// One recorded driver call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    Prepare(Id),
    Start(Id),
    Stop(Id, Duration),
    Remove(Id),
}

/// The fake's wall clock starts here (2023-11-14), so times look like real ones.
const EPOCH_NANOS: i64 = 1_700_000_000_000_000_000;

struct Task {
    run: Option<TaskRun>,
    state: RuntimeTaskState,
    logs: Vec<LogLine>,
    /// The task's own root filesystem (and tmpfs mounts), path → content.
    files: BTreeMap<String, Bytes>,
    /// What is kept of its paths beside contents: modes, times, directories, symlinks (see
    /// `archive`).
    meta: BTreeMap<String, archive::Meta>,
    /// Signals sent to a scripted process, handled between its commands.
    signals: Vec<i32>,
    scripted: bool,
    /// The task's scripted processes alive now: its main one and its background jobs.
    procs: i64,
    /// When its process last started (zero before its first start).
    started_at: Timestamp,
    /// Which run of the task is the current one (each start makes a new one): what a process
    /// of an earlier run does is no longer the task's, as a real run's processes die with it.
    run_gen: u64,
    /// Who is attached to its process (see `attach`): its current run's, or its next run's
    /// when it is not running. They go when the run ends, which ends their output.
    attachers: Vec<tokio::sync::mpsc::UnboundedSender<(crate::LogStreamKind, Bytes)>>,
    /// Its running process's stdin, with `open_stdin` (dropped: the end of its input).
    stdin_tx: Option<tokio::sync::mpsc::UnboundedSender<Bytes>>,
    /// What was written to its stdin before it started (and whether the writer closed it).
    stdin_early: Vec<u8>,
    stdin_closed: bool,
    /// Its terminal's size, with `tty`.
    tty_size: (u16, u16),
}

struct Volume {
    labels: BTreeMap<String, String>,
    options: BTreeMap<String, String>,
    created_at: Timestamp,
    files: BTreeMap<String, Bytes>,
}

#[derive(Default)]
struct Inner {
    tasks: BTreeMap<Id, Task>,
    calls: Vec<FakeCall>,
    next_pid: i64,
    health: BTreeMap<Id, Health>,
    volumes: BTreeMap<String, Volume>,
    /// The node's own files, which bind mounts show.
    host_files: BTreeMap<String, Bytes>,
    images: catalog::Images,
}

struct Node {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    epoch: tokio::time::Instant,
}

/// The machine a fake driver runs on: its tasks, volumes and files. Cloning shares it.
#[derive(Clone)]
pub struct FakeNode(Arc<Node>);

impl Default for FakeNode {
    fn default() -> Self {
        FakeNode(Arc::new(Node {
            inner: Mutex::new(Inner {
                next_pid: 100,
                ..Default::default()
            }),
            changed: watch::channel(0).0,
            epoch: tokio::time::Instant::now(),
        }))
    }
}

impl FakeNode {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a file of the node (what a bind mount of its directory shows).
    pub fn write_file(&self, path: &str, content: &[u8]) {
        self.0
            .lock()
            .host_files
            .insert(path.to_string(), Bytes::copy_from_slice(content));
        self.0.bump();
    }
}

/// Whether an image reference names the image the fake does not have: `missing`, in any
/// repository, with any tag or digest.
fn image_missing(image: &str) -> bool {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split(':').next() == Some("missing")
}

/// Why starting `argv0` fails, worded as Docker's runtimes word it; `None` when it exists.
fn missing_executable(argv0: &str) -> Option<String> {
    let absent = argv0 == "fail-start" || argv0.split('/').any(|c| c.starts_with("no-such"));
    if !absent {
        return None;
    }
    Some(if argv0.contains('/') {
        format!("exec: \"{argv0}\": stat {argv0}: no such file or directory")
    } else {
        format!("exec: \"{argv0}\": executable file not found in $PATH")
    })
}

pub struct FakeDriver {
    node: Arc<Node>,
}

impl Default for FakeDriver {
    fn default() -> Self {
        Self::on(&FakeNode::new())
    }
}

impl FakeDriver {
    /// A driver on a node of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// A driver on `node`: after a "restart", it adopts what the node's previous driver left.
    pub fn on(node: &FakeNode) -> Self {
        FakeDriver {
            node: node.0.clone(),
        }
    }

    /// The node this driver runs on.
    pub fn node(&self) -> FakeNode {
        FakeNode(self.node.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.node.lock()
    }

    fn bump(&self) {
        self.node.bump();
    }

    /// Puts a task in the runtime as if a previous agent had left it there.
    pub fn preload(&self, task_id: &Id, state: RuntimeTaskState) {
        self.lock().tasks.insert(
            task_id.clone(),
            Task {
                run: None,
                state,
                logs: Vec::new(),
                files: BTreeMap::new(),
                meta: BTreeMap::new(),
                signals: Vec::new(),
                scripted: false,
                procs: 0,
                started_at: Timestamp::ZERO,
                run_gen: 0,
                attachers: Vec::new(),
                stdin_tx: None,
                stdin_early: Vec::new(),
                stdin_closed: false,
                tty_size: (0, 0),
            },
        );
        self.bump();
    }

    /// Makes a running task exit with `code`.
    pub fn exit(&self, task_id: &Id, code: i64) {
        self.node.exited(task_id, code, None, false);
    }

    /// Sends `signal` to the task's process from outside, as `kill` on the node would.
    pub fn kill(&self, task_id: &Id, signal: i32) {
        self.node.kill(task_id, signal);
    }

    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    pub fn state(&self, task_id: &Id) -> Option<RuntimeTaskState> {
        self.node.state(task_id)
    }

    /// What the agent last asked to prepare for the task (templates already expanded).
    pub fn run(&self, task_id: &Id) -> Option<TaskRun> {
        self.lock().tasks.get(task_id).and_then(|t| t.run.clone())
    }

    /// The limits the task's process runs under (what a real node's cgroup would hold).
    pub fn limits(&self, task_id: &Id) -> Option<ResourceRequirements> {
        self.run(task_id).map(|r| r.resources)
    }

    /// What the task's health check now says.
    pub fn set_health(&self, task_id: &Id, health: Health) {
        self.node.set_health(task_id, health);
    }

    /// How many times `start` was called for the task.
    pub fn starts(&self, task_id: &Id) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| **c == FakeCall::Start(task_id.clone()))
            .count()
    }

    fn in_use_by(g: &Inner, volume: &str) -> Vec<Id> {
        g.tasks
            .iter()
            .filter(|(_, t)| {
                t.run.as_ref().is_some_and(|r| {
                    r.container
                        .mounts
                        .iter()
                        .any(|m| m.kind == MountKind::Volume && m.source == volume)
                })
            })
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[async_trait]
impl RuntimeDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "native"
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), RuntimeError> {
        let now = self.node.now();
        let mut g = self.lock();
        g.calls.push(FakeCall::Prepare(run.task_id.clone()));
        if g.tasks.contains_key(&run.task_id) {
            return Ok(());
        }
        let image = &run.container.image;
        if image_missing(image) {
            return Err(RuntimeError::ImageNotFound(image.clone()));
        }
        // As a real runtime pulls the task's image.
        g.images.pull(image, now);
        for m in &run.container.mounts {
            if m.kind == MountKind::Volume && !m.source.is_empty() {
                g.volumes.entry(m.source.clone()).or_insert_with(|| Volume {
                    labels: m.volume_labels.clone(),
                    options: BTreeMap::new(),
                    created_at: now,
                    files: BTreeMap::new(),
                });
            }
        }
        g.tasks.insert(
            run.task_id.clone(),
            Task {
                run: Some(run.clone()),
                state: RuntimeTaskState::Created,
                logs: Vec::new(),
                // Its secrets and configs, as a real driver binds them.
                files: run
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), Bytes::copy_from_slice(f.data.as_slice())))
                    .collect(),
                meta: archive::IMAGE_DIRS
                    .iter()
                    .map(|d| (d.to_string(), archive::Meta::dir(0o755, now)))
                    .chain(run.files.iter().map(|f| {
                        let mut m = archive::Meta::file(f.mode & 0o7777, now);
                        (m.uid, m.gid) = (u64::from(f.uid), u64::from(f.gid));
                        (f.path.clone(), m)
                    }))
                    .collect(),
                signals: Vec::new(),
                scripted: false,
                procs: 0,
                started_at: Timestamp::ZERO,
                run_gen: 0,
                attachers: Vec::new(),
                stdin_tx: None,
                stdin_early: Vec::new(),
                stdin_closed: false,
                tty_size: (0, 0),
            },
        );
        drop(g);
        self.bump();
        Ok(())
    }

    /// A task that exited starts again in place: its files (secrets included) and log are
    /// kept, and what the previous run's processes still do is no longer the task's.
    async fn start(&self, task_id: &Id) -> Result<i64, RuntimeError> {
        let now = self.node.now();
        let mut g = self.lock();
        g.calls.push(FakeCall::Start(task_id.clone()));
        let pid = g.next_pid;
        let Some(t) = g.tasks.get_mut(task_id) else {
            return Err(RuntimeError::NotFound(task_id.clone()));
        };
        if let RuntimeTaskState::Running { pid } = t.state {
            return Ok(pid);
        }
        let argv = t
            .run
            .as_ref()
            .map(|r| r.container.argv())
            .unwrap_or_default();
        if let Some(why) = argv.first().and_then(|a| missing_executable(a)) {
            return Err(RuntimeError::StartFailed(why));
        }
        let script = match argv.as_slice() {
            [sh, c, script, ..] if proc::is_sh(sh) && c == "-c" => Some(script.clone()),
            _ => None,
        };
        t.state = RuntimeTaskState::Running { pid };
        t.scripted = script.is_some();
        t.procs = 1;
        t.signals.clear();
        t.started_at = now;
        t.run_gen += 1;
        let (tty, open_stdin) = t.run.as_ref().map_or((false, false), |r| {
            (r.container.tty, r.container.open_stdin)
        });
        let stdin = if open_stdin {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let early = std::mem::take(&mut t.stdin_early);
            if !early.is_empty() {
                let _ = tx.send(Bytes::from(early));
            }
            if !std::mem::take(&mut t.stdin_closed) {
                t.stdin_tx = Some(tx);
            }
            stdio::Input::Live {
                rx,
                buf: Vec::new(),
            }
        } else {
            stdio::Input::Empty
        };
        let run = t.run.clone();
        let check = run
            .as_ref()
            .and_then(|r| r.container.healthcheck.clone())
            .filter(|h| h.argv().is_some());
        g.next_pid += 1;
        if check.is_some() {
            g.health.insert(task_id.clone(), Health::Starting);
        }
        drop(g);
        if let (Some(script), Some(run)) = (script, &run) {
            let env = &run.container.env;
            let limit = u64::try_from(run.resources.limits.memory_bytes).unwrap_or(0);
            proc::spawn_main(&self.node, task_id, &script, env, limit, tty, stdin);
            if let Some(check) = &check {
                proc::spawn_health(&self.node, task_id, check, env);
            }
        }
        self.bump();
        Ok(pid)
    }

    async fn wait(&self, task_id: &Id) -> Result<ExitInfo, RuntimeError> {
        let mut rx = self.node.changed.subscribe();
        loop {
            match self.state(task_id) {
                None => return Err(RuntimeError::NotFound(task_id.clone())),
                Some(RuntimeTaskState::Exited(e)) => return Ok(e),
                Some(RuntimeTaskState::Created) => {
                    return Err(RuntimeError::StartFailed(format!(
                        "task {task_id} was never started"
                    )));
                }
                Some(RuntimeTaskState::Running { .. }) => {}
            }
            if rx.changed().await.is_err() {
                return Err(RuntimeError::NotFound(task_id.clone()));
            }
        }
    }

    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError> {
        let signal = {
            let mut g = self.lock();
            g.calls.push(FakeCall::Stop(task_id.clone(), grace));
            let Some(t) = g.tasks.get(task_id) else {
                return Err(RuntimeError::NotFound(task_id.clone()));
            };
            t.run
                .as_ref()
                .and_then(|r| parse_stop_signal(&r.container.stop_signal).ok())
                .unwrap_or(15)
        };
        self.node.kill(task_id, signal);
        if tokio::time::timeout(grace, self.node.until_not_running(task_id))
            .await
            .is_err()
        {
            self.node.kill(task_id, 9);
        }
        Ok(())
    }

    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let mut g = self.lock();
        g.calls.push(FakeCall::Remove(task_id.clone()));
        if g.tasks.remove(task_id).is_none() {
            return Err(RuntimeError::NotFound(task_id.clone()));
        }
        g.health.remove(task_id);
        drop(g);
        self.bump();
        Ok(())
    }

    async fn list(&self) -> Result<Vec<RuntimeTask>, RuntimeError> {
        Ok(self
            .lock()
            .tasks
            .iter()
            .map(|(id, t)| RuntimeTask {
                task_id: id.clone(),
                state: t.state.clone(),
                container_id: None,
                started_at: t.started_at,
            })
            .collect())
    }

    async fn health(&self, task_id: &Id) -> Result<Health, RuntimeError> {
        Ok(self.lock().health.get(task_id).cloned().unwrap_or_default())
    }

    async fn exec(
        &self,
        task_id: &Id,
        spec: crate::ExecSpec,
    ) -> Result<crate::ExecProcess, RuntimeError> {
        self.exec_in(task_id, spec)
    }

    async fn signal(&self, task_id: &Id, signal: i32) -> Result<(), RuntimeError> {
        self.signal_task(task_id, signal)
    }

    async fn processes(&self, task_id: &Id) -> Result<Vec<i64>, RuntimeError> {
        self.task_processes(task_id)
    }

    async fn stats(&self, task_id: &Id) -> Result<crate::TaskStats, RuntimeError> {
        self.task_stats(task_id)
    }

    async fn attach(&self, task_id: &Id) -> Result<crate::ExecProcess, RuntimeError> {
        self.attach_to(task_id)
    }

    async fn path_stat(&self, task_id: &Id, path: &str) -> Result<crate::PathStat, RuntimeError> {
        self.stat_path(task_id, path)
    }

    async fn archive_get(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<(crate::PathStat, crate::ArchiveStream), RuntimeError> {
        self.get_archive(task_id, path)
    }

    async fn archive_put(
        &self,
        task_id: &Id,
        dir: &str,
        archive: crate::ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), RuntimeError> {
        self.put_archive(task_id, dir, archive, no_overwrite_dir_non_dir)
            .await
    }

    async fn logs(&self, task_id: &Id, opts: LogOptions) -> Result<LogStream, RuntimeError> {
        let g = self.lock();
        let Some(t) = g.tasks.get(task_id) else {
            return Err(RuntimeError::NotFound(task_id.clone()));
        };
        let (stdout, stderr, since) = (opts.stdout, opts.stderr, opts.since);
        let wanted = move |l: &LogLine| {
            let stream = match l.stream {
                crate::LogStreamKind::Stdout => stdout,
                crate::LogStreamKind::Stderr => stderr,
            };
            stream && (since == Timestamp::ZERO || l.time >= since)
        };
        let matching: Vec<usize> = (0..t.logs.len()).filter(|&i| wanted(&t.logs[i])).collect();
        let from = match opts.tail {
            Some(n) => matching
                .get(matching.len().saturating_sub(n))
                .copied()
                .unwrap_or(t.logs.len()),
            None => 0,
        };
        drop(g);
        let rx = self.node.changed.subscribe();
        let state = (self.node.clone(), task_id.clone(), from, rx);
        let follow = opts.follow;
        use futures::StreamExt;
        Ok(
            futures::stream::unfold(state, move |(node, id, mut at, mut rx)| async move {
                loop {
                    {
                        let g = node.lock();
                        let t = g.tasks.get(&id)?;
                        while let Some(l) = t.logs.get(at) {
                            at += 1;
                            if wanted(l) {
                                let l = l.clone();
                                drop(g);
                                return Some((Ok(l), (node, id, at, rx)));
                            }
                        }
                        if !follow || !matches!(t.state, RuntimeTaskState::Running { .. }) {
                            return None;
                        }
                    }
                    rx.changed().await.ok()?;
                }
            })
            .boxed(),
        )
    }

    async fn volumes(&self) -> Result<Vec<VolumeInfo>, RuntimeError> {
        let g = self.lock();
        Ok(g.volumes
            .iter()
            .map(|(name, v)| Self::volume_info(&g, name, v))
            .collect())
    }

    async fn remove_volume(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        let mut g = self.lock();
        if !g.volumes.contains_key(name) {
            return Err(RuntimeError::VolumeNotFound(name.to_string()));
        }
        if let Some(task) = Self::in_use_by(&g, name).into_iter().next()
            && !force
        {
            return Err(RuntimeError::VolumeInUse {
                name: name.to_string(),
                task,
            });
        }
        g.volumes.remove(name);
        Ok(())
    }

    async fn images(&self) -> Result<Vec<crate::ImageInfo>, RuntimeError> {
        Ok(self.image_list())
    }

    /// Reads the fake's own archives (see `catalog`) from the node's files.
    async fn load_image(&self, archive: &std::path::Path) -> Result<Vec<String>, RuntimeError> {
        self.load(&archive.display().to_string())
    }

    async fn remove_image(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<Vec<String>, RuntimeError> {
        self.untag(reference, force)
    }

    async fn inspect_image(&self, reference: &str) -> Result<crate::ImageDetails, RuntimeError> {
        self.image_details(reference)
    }

    async fn image_history(
        &self,
        reference: &str,
    ) -> Result<Vec<crate::ImageHistoryEntry>, RuntimeError> {
        self.history_of(reference)
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        self.tag(source, target)
    }

    /// Writes the fake's own archive among the node's files.
    async fn save_images(
        &self,
        references: &[String],
        archive: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        self.save(references, &archive.display().to_string())
    }

    async fn create_volume(&self, spec: &crate::VolumeCreate) -> Result<VolumeInfo, RuntimeError> {
        self.make_volume(spec)
    }

    async fn prune_volumes(
        &self,
        filter: &crate::VolumePrune,
    ) -> Result<crate::VolumesPruned, RuntimeError> {
        Ok(self.prune(filter))
    }
}
