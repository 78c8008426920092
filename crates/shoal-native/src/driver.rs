//! The [`RuntimeDriver`] side of the native runtime: each call reads the task's directory (see
//! `layout`) to learn where the task is, so calls work the same for tasks a previous driver
//! started. Process identity is always checked by pid and start time before anything is signalled.

use std::time::Duration;

use async_trait::async_trait;
use shoal_types::Id;

use super::layout::{self, HealthStatus, RunningInfo, ShimConfig, TaskDir};
use super::{
    KILL_TIMEOUT, LOST_EXIT_CODE, NativeDriver, blocking, cgroup, cgroup_err, crun, image_task, io,
    logread, prepare, proc, volumes,
};
use shoal_runtime::{
    ExitInfo, Health, ImageInfo, LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeTask,
    RuntimeTaskState, TaskRun, VolumeInfo,
};

impl NativeDriver {
    /// The running task's directory and process, or `NotFound` / `NotRunning`.
    fn running_info(&self, task_id: &Id) -> Result<(TaskDir, RunningInfo), RuntimeError> {
        let dir = self.known(task_id)?;
        if !matches!(self.observe(&dir)?, RuntimeTaskState::Running { .. }) {
            return Err(RuntimeError::NotRunning(task_id.clone()));
        }
        let r = dir
            .running()
            .map_err(|e| io(format!("reading {}", dir.path().display()), e))?
            .ok_or_else(|| RuntimeError::NotRunning(task_id.clone()))?;
        Ok((dir, r))
    }

    /// Records that the process vanished with its shim, so later calls agree on how it ended.
    fn record_lost(&self, dir: &TaskDir) -> Result<ExitInfo, RuntimeError> {
        let info = ExitInfo {
            code: LOST_EXIT_CODE,
            signal: None,
            oom_killed: false,
            finished_at: self.clock.now(),
        };
        layout::write_json_atomic(&dir.file(layout::EXIT), &info)
            .map_err(|e| io("recording lost task", e))?;
        Ok(info)
    }

    /// The task's state from its directory: see [`RuntimeTaskState`].
    pub(crate) fn observe(&self, dir: &TaskDir) -> Result<RuntimeTaskState, RuntimeError> {
        let ctx = |e| io(format!("reading {}", dir.path().display()), e);
        if let Some(exit) = dir.exit().map_err(ctx)? {
            return Ok(RuntimeTaskState::Exited(exit));
        }
        let Some(r) = dir.running().map_err(ctx)? else {
            return Ok(RuntimeTaskState::Created);
        };
        if proc::is_same_and_alive(r.shim_pid, r.shim_start_time)
            || proc::is_same_and_alive(r.pid, r.start_time)
        {
            return Ok(RuntimeTaskState::Running {
                pid: i64::from(r.pid),
            });
        }
        // Both gone: the shim writes exit.json before it exits, so read it again now.
        match dir.exit().map_err(ctx)? {
            Some(exit) => Ok(RuntimeTaskState::Exited(exit)),
            None => self.record_lost(dir).map(RuntimeTaskState::Exited),
        }
    }

    /// Waits for exit.json, following the shim and then the process itself.
    async fn wait_dir(&self, task_id: &Id, dir: &TaskDir) -> Result<ExitInfo, RuntimeError> {
        let ctx = |e| io(format!("waiting for task {task_id}"), e);
        loop {
            match self.observe(dir)? {
                RuntimeTaskState::Exited(exit) => return Ok(exit),
                RuntimeTaskState::Created => {
                    return Err(RuntimeError::StartFailed(format!(
                        "task {task_id} was never started"
                    )));
                }
                RuntimeTaskState::Running { .. } => {}
            }
            let r = dir
                .running()
                .map_err(ctx)?
                .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
            if proc::is_same_and_alive(r.shim_pid, r.shim_start_time) {
                proc::wait_exit(r.shim_pid, r.shim_start_time)
                    .await
                    .map_err(ctx)?;
            } else {
                // The shim died but the process lives on: nobody will record its exit code.
                proc::wait_exit(r.pid, r.start_time).await.map_err(ctx)?;
            }
        }
    }

    /// Signals the running process (verified by pid + start time) and waits up to `grace`, then
    /// SIGKILLs it. Returns once it is gone and its exit is recorded.
    async fn stop_running(
        &self,
        task_id: &Id,
        dir: &TaskDir,
        r: RunningInfo,
        sig: nix::sys::signal::Signal,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let ctx = |e| io(format!("stopping task {task_id}"), e);
        match proc::PidFd::open_verified(r.pid, r.start_time) {
            Ok(Some(fd)) => {
                let fd = fd.into_async().map_err(ctx)?;
                fd.signal(sig).map_err(ctx)?;
                if !fd.exited_within(grace).await.map_err(ctx)? {
                    tracing::info!(task.id = %task_id, ?grace, "native: grace period over, killing");
                    fd.signal(nix::sys::signal::Signal::SIGKILL).map_err(ctx)?;
                    if !fd.exited_within(KILL_TIMEOUT).await.map_err(ctx)? {
                        return Err(ctx(std::io::Error::other("the process survived SIGKILL")));
                    }
                }
            }
            Ok(None) => {}
            // No pidfds on this kernel: kill(2) right after the start-time check; the window for
            // pid reuse is a few microseconds.
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                let pid = nix::unistd::Pid::from_raw(r.pid);
                if proc::is_same_and_alive(r.pid, r.start_time) {
                    let _ = nix::sys::signal::kill(pid, sig);
                }
                let _ = tokio::time::timeout(grace, proc::wait_exit(r.pid, r.start_time)).await;
                if proc::is_same_and_alive(r.pid, r.start_time) {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
            }
            Err(e) => return Err(ctx(e)),
        }
        match tokio::time::timeout(KILL_TIMEOUT, self.wait_dir(task_id, dir)).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(ctx(std::io::Error::other(
                "the shim did not record the exit",
            ))),
        }
    }
}

#[async_trait]
impl RuntimeDriver for NativeDriver {
    fn name(&self) -> &'static str {
        "native"
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), RuntimeError> {
        let dir = self.dir(&run.task_id)?;
        if dir.exists() {
            // A prepared task gets its files back into this driver's memory (one that
            // restarted since the first prepare lost them) for a start again in place.
            self.kept.keep(&run.task_id, &run.files);
            return Ok(());
        }
        if !shoal_runtime::is_host_image(&run.container.image) {
            let prepared = self.prepare_image(run, dir).await;
            if prepared.is_ok() {
                self.kept.keep(&run.task_id, &run.files);
            }
            return prepared;
        }
        if !run.files.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                field: "secrets",
                why: "a task of the host image shares the node's filesystem, so it cannot be given secret or config files; use an image".into(),
            });
        }
        let node = prepare::NodeFacts {
            namespaces: self.namespaces,
            is_root: self.caps.root,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        let mut cfg = prepare::shim_config(run, &node)?;
        let cg = match self.task_cgroup(run).await? {
            Ok(cg) => cg,
            Err(why) if run.resources.limits.is_zero() => {
                // Nothing was asked of the cgroup: run unaccounted rather than not at all.
                tracing::warn!(task.id = %run.task_id, error = %why, "native: running without a cgroup");
                None
            }
            Err(why) => {
                return Err(RuntimeError::InvalidSpec {
                    field: "resources.limits",
                    why,
                });
            }
        };
        if let Some(cg) = cg {
            cfg.cgroup_procs = cg.procs;
            cfg.oom = cg.oom;
        }
        // config.json is written last: its presence is what makes the task "prepared".
        let written = std::fs::create_dir_all(dir.path())
            .and_then(|()| layout::write_json_atomic(&dir.file(layout::CONFIG), &cfg));
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(dir.path());
            let (support, parent, id) = (
                self.cgroups,
                self.cfg.cgroup_parent.clone(),
                run.task_id.to_string(),
            );
            let _ = blocking(move || cgroup::remove(&support, &parent, &id)).await;
            return Err(io(
                format!("writing {}", dir.file(layout::CONFIG).display()),
                e,
            ));
        }
        Ok(())
    }

    async fn start(&self, task_id: &Id) -> Result<i64, RuntimeError> {
        let dir = self.known(task_id)?;
        match self.observe(&dir)? {
            // Already started (by us or a previous driver): never start twice.
            RuntimeTaskState::Running { pid } => Ok(pid),
            RuntimeTaskState::Created => self.spawn_shim(task_id, &dir).await,
            RuntimeTaskState::Exited(exit) => {
                self.reset_for_restart(task_id, &dir, &exit).await?;
                let started = self.spawn_shim(task_id, &dir).await;
                if started.is_err() {
                    self.restart_failed(&dir, &exit).await;
                }
                started
            }
        }
    }

    async fn wait(&self, task_id: &Id) -> Result<ExitInfo, RuntimeError> {
        let dir = self.known(task_id)?;
        let exit = self.wait_dir(task_id, &dir).await?;
        // Its secrets leave the node with its process, not with its record, which the task
        // history keeps for a while.
        let path = dir.path().display().to_string();
        blocking(move || image_task::release_files(&dir))
            .await?
            .map_err(|e| io(format!("removing the secret files of {path}"), e))?;
        Ok(exit)
    }

    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError> {
        let dir = self.known(task_id)?;
        let RuntimeTaskState::Running { .. } = self.observe(&dir)? else {
            return Ok(());
        };
        let cfg = dir
            .config()
            .map_err(|e| io("reading task config", e))?
            .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        let sig = nix::sys::signal::Signal::try_from(cfg.stop_signal)
            .unwrap_or(nix::sys::signal::Signal::SIGTERM);
        let Some(r) = dir.running().map_err(|e| io("reading task state", e))? else {
            return Ok(());
        };
        self.stop_running(task_id, &dir, r, sig, grace).await
    }

    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let dir = self.dir(task_id)?;
        if !dir.path().exists() {
            return Err(RuntimeError::NotFound(task_id.clone()));
        }
        if dir.exists()
            && let RuntimeTaskState::Running { .. } = self.observe(&dir)?
            && let Some(r) = dir.running().map_err(|e| io("reading task state", e))?
        {
            tracing::warn!(task.id = %task_id, "native: removing a running task; killing it");
            self.stop_running(
                task_id,
                &dir,
                r,
                nix::sys::signal::Signal::SIGKILL,
                Duration::ZERO,
            )
            .await?;
        }
        if let Ok(Some(ShimConfig { oci: Some(oci), .. })) = dir.config() {
            blocking(move || crun::delete(&oci))
                .await?
                .map_err(|e| io("removing the container", std::io::Error::other(e)))?;
        }
        let (support, parent, id) = (
            self.cgroups,
            self.cfg.cgroup_parent.clone(),
            task_id.to_string(),
        );
        blocking(move || cgroup::remove(&support, &parent, &id))
            .await?
            .map_err(cgroup_err)?;
        let path = dir.path().display().to_string();
        blocking(move || image_task::cleanup(&dir))
            .await?
            .map_err(|e| io(format!("removing {path}"), e))?;
        self.kept.forget(task_id);
        // Clients waiting for a start that will not come: their streams end.
        self.take_pending(task_id);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<RuntimeTask>, RuntimeError> {
        let tasks = self.cfg.root.join("tasks");
        let entries =
            std::fs::read_dir(&tasks).map_err(|e| io(format!("listing {}", tasks.display()), e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(format!("listing {}", tasks.display()), e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let dir = TaskDir::from_path(entry.path());
            if !dir.exists() {
                continue; // half-prepared or half-removed: not a task yet / any more
            }
            match self.observe(&dir) {
                Ok(state) => out.push(RuntimeTask {
                    task_id: Id::from_raw(name),
                    state,
                    container_id: None,
                    // The shim writes running.json once, when the process has started.
                    started_at: std::fs::metadata(dir.file(layout::RUNNING))
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .and_then(|d| i64::try_from(d.as_nanos()).ok())
                        .map_or(shoal_types::Timestamp::ZERO, shoal_types::Timestamp),
                }),
                Err(e) => {
                    tracing::warn!(task.id = %name, error = %shoal_types::error::Chain(&e), "native: unreadable task directory")
                }
            }
        }
        out.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(out)
    }

    async fn logs(&self, task_id: &Id, opts: LogOptions) -> Result<LogStream, RuntimeError> {
        let dir = self.known(task_id)?;
        logread::stream(dir, opts)
    }

    async fn health(&self, task_id: &Id) -> Result<Health, RuntimeError> {
        let dir = self.known(task_id)?;
        let ctx = |e| io(format!("reading the health of task {task_id}"), e);
        let Some(cfg) = dir.config().map_err(ctx)? else {
            return Err(RuntimeError::NotFound(task_id.clone()));
        };
        if cfg.health.is_none() {
            return Ok(Health::None);
        }
        Ok(match dir.health().map_err(ctx)? {
            None => Health::Starting,
            Some(r) => match r.status {
                HealthStatus::Starting => Health::Starting,
                HealthStatus::Healthy => Health::Healthy,
                HealthStatus::Unhealthy => Health::Unhealthy(r.last_output),
            },
        })
    }

    async fn exec(
        &self,
        task_id: &Id,
        spec: shoal_runtime::ExecSpec,
    ) -> Result<shoal_runtime::ExecProcess, RuntimeError> {
        self.exec_in(task_id, spec).await
    }

    async fn signal(&self, task_id: &Id, signal: i32) -> Result<(), RuntimeError> {
        let (_, r) = self.running_info(task_id)?;
        let sig =
            nix::sys::signal::Signal::try_from(signal).map_err(|_| RuntimeError::InvalidSpec {
                field: "signal",
                why: format!("{signal} is not a signal"),
            })?;
        let ctx = |e| io(format!("signalling task {task_id}"), e);
        match proc::PidFd::open_verified(r.pid, r.start_time).map_err(ctx)? {
            Some(fd) => fd.into_async().map_err(ctx)?.signal(sig).map_err(ctx),
            None => Err(RuntimeError::NotRunning(task_id.clone())),
        }
    }

    async fn processes(&self, task_id: &Id) -> Result<Vec<i64>, RuntimeError> {
        let (_, r) = self.running_info(task_id)?;
        blocking(move || super::usage::processes(r.pid)).await
    }

    async fn attach(&self, task_id: &Id) -> Result<shoal_runtime::ExecProcess, RuntimeError> {
        self.attach_to(task_id).await
    }

    async fn path_stat(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<shoal_runtime::PathStat, RuntimeError> {
        self.stat_path(task_id, path).await
    }

    async fn archive_get(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<(shoal_runtime::PathStat, shoal_runtime::ArchiveStream), RuntimeError> {
        self.get_archive(task_id, path).await
    }

    async fn archive_put(
        &self,
        task_id: &Id,
        dir: &str,
        archive: shoal_runtime::ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), RuntimeError> {
        self.put_archive(task_id, dir, archive, no_overwrite_dir_non_dir)
            .await
    }

    async fn stats(&self, task_id: &Id) -> Result<shoal_runtime::TaskStats, RuntimeError> {
        let (_, r) = self.running_info(task_id)?;
        let now = self.clock.now();
        let memory = node_memory();
        blocking(move || super::usage::read(r.pid, memory, now)).await
    }

    async fn volumes(&self) -> Result<Vec<VolumeInfo>, RuntimeError> {
        let root = self.cfg.volumes_root.clone();
        let metas = blocking(move || volumes::list(&root))
            .await?
            .map_err(|e| io("listing volumes", e))?;
        let users = self.volume_users()?;
        Ok(metas
            .into_iter()
            .map(|m| self.volume_info(m, &users))
            .collect())
    }

    async fn remove_volume(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        if !volumes::exists(&self.cfg.volumes_root, name) {
            return Err(RuntimeError::VolumeNotFound(name.to_string()));
        }
        if let Some((task, _)) = self
            .volume_users()?
            .into_iter()
            .find(|(_, vols)| vols.iter().any(|v| v == name))
            && !force
        {
            return Err(RuntimeError::VolumeInUse {
                name: name.to_string(),
                task,
            });
        }
        let (root, n) = (self.cfg.volumes_root.clone(), name.to_string());
        blocking(move || volumes::remove(&root, &n))
            .await?
            .map_err(|e| io(format!("removing volume {name}"), e))
    }

    async fn images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        match &self.cfg.images {
            Some(store) => store.list().await,
            None => Ok(Vec::new()),
        }
    }

    async fn load_image(&self, archive: &std::path::Path) -> Result<Vec<String>, RuntimeError> {
        match &self.cfg.images {
            Some(store) => store.load(archive).await,
            None => Err(RuntimeError::Unsupported {
                runtime: "native",
                what: "images without an image store",
            }),
        }
    }

    async fn pull_image(&self, reference: &str) -> Result<ImageInfo, RuntimeError> {
        match &self.cfg.images {
            Some(store) => store.pull(reference).await,
            None => Err(RuntimeError::Pull {
                reference: reference.to_string(),
                why: "this node has no image store".into(),
            }),
        }
    }

    async fn inspect_image(
        &self,
        reference: &str,
    ) -> Result<shoal_runtime::ImageDetails, RuntimeError> {
        self.image_details(reference).await
    }

    async fn image_history(
        &self,
        reference: &str,
    ) -> Result<Vec<shoal_runtime::ImageHistoryEntry>, RuntimeError> {
        self.image_store(reference)?.history(reference).await
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        self.image_store(source)?
            .tag(source, target, self.clock.now())
            .await
    }

    async fn save_images(
        &self,
        references: &[String],
        archive: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        self.image_store(&references.join(", "))?
            .save(references, archive)
            .await
    }

    async fn create_volume(
        &self,
        spec: &shoal_runtime::VolumeCreate,
    ) -> Result<VolumeInfo, RuntimeError> {
        self.make_volume(spec).await
    }

    async fn prune_volumes(
        &self,
        filter: &shoal_runtime::VolumePrune,
    ) -> Result<shoal_runtime::VolumesPruned, RuntimeError> {
        self.prune(filter).await
    }

    async fn remove_image(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<Vec<String>, RuntimeError> {
        let Some(store) = &self.cfg.images else {
            return Err(RuntimeError::ImageNotFound(reference.to_string()));
        };
        let mut in_use: Vec<String> = self
            .task_configs()?
            .into_iter()
            .map(|(_, c)| c.image_id)
            .filter(|i| !i.is_empty())
            .collect();
        in_use.sort();
        in_use.dedup();
        store.remove(reference, force, &in_use).await
    }
}

/// The node's memory, what a task without a memory limit may use.
fn node_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}
