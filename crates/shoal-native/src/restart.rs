//! Starting a task again in place once its process has exited (`docker start` of an exited
//! container): the same task directory, root filesystem (an overlay's upper layer, or the copy,
//! keeps what the last run changed) and log; a new shim, a new process.
//!
//! What a run leaves that the next must not inherit goes first: the OCI runtime's container
//! (runc and crun run a container once; `delete` frees its ID for a new `create`), the task's
//! cgroup (made again with the task's limits, so a fresh OOM counter judges the new run, and
//! because the runtime may take it with the container), the run's records (`running.json`,
//! `exit.json`, `health.json`, `container.pid`). The secret and config files come back on a new
//! tmpfs from the driver's memory (`KeptFiles`). When any of it fails, the task's exit record is
//! put back: the task stays exited as it was.

use shoal_runtime::{ExitInfo, RuntimeError};
use shoal_types::Id;

use super::layout::{self, ShimConfig, TaskDir};
use super::{KILL_TIMEOUT, NativeDriver, blocking, cgroup, crun, image_task, io, proc};

impl NativeDriver {
    /// Clears what the last run left so the task can be started again; `exit` is its record.
    pub(crate) async fn reset_for_restart(
        &self,
        task_id: &Id,
        dir: &TaskDir,
        exit: &ExitInfo,
    ) -> Result<(), RuntimeError> {
        let ctx = |e| io(format!("starting task {task_id} again"), e);
        let cfg = dir
            .config()
            .map_err(ctx)?
            .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        let files = if cfg.files.is_empty() {
            Vec::new()
        } else {
            self.kept.get(task_id).ok_or_else(|| {
                RuntimeError::StartFailed(format!(
                    "task {task_id} cannot start again: its secret and config files left the node when it exited, and this daemon no longer holds them (it restarted since the task was prepared); prepare it again"
                ))
            })?
        };
        // The shim writes exit.json before it exits: let it finish, so nothing of the last run
        // acts on the directory the new one uses.
        if let Some(r) = dir.running().map_err(ctx)?
            && proc::is_same_and_alive(r.shim_pid, r.shim_start_time)
        {
            let gone =
                tokio::time::timeout(KILL_TIMEOUT, proc::wait_exit(r.shim_pid, r.shim_start_time))
                    .await;
            if !matches!(gone, Ok(Ok(()))) {
                return Err(RuntimeError::StartFailed(format!(
                    "task {task_id} cannot start again: the shim of its last run (pid {}) has not exited",
                    r.shim_pid
                )));
            }
        }
        let (support, parent, d) = (self.cgroups, self.cfg.cgroup_parent.clone(), dir.clone());
        let id = task_id.to_string();
        let cleared = blocking(move || clear_run(&d, &cfg, &support, &parent, &id, &files)).await?;
        if let Err(why) = cleared {
            // Still exited: its records say so again.
            let _ = layout::write_json_atomic(&dir.file(layout::EXIT), exit);
            return Err(RuntimeError::StartFailed(format!(
                "task {task_id} cannot start again: {why}"
            )));
        }
        Ok(())
    }

    /// After a restart's shim failed: the task is exited as it was, its files released.
    pub(crate) async fn restart_failed(&self, dir: &TaskDir, exit: &ExitInfo) {
        let _ = std::fs::remove_file(dir.file(layout::RUNNING));
        let _ = layout::write_json_atomic(&dir.file(layout::EXIT), exit);
        let d = dir.clone();
        let _ = blocking(move || image_task::release_files(&d)).await;
    }
}

/// The blocking part of a restart: the old container, the cgroup, the files, the records.
fn clear_run(
    dir: &TaskDir,
    cfg: &ShimConfig,
    support: &cgroup::CgroupSupport,
    parent: &str,
    task_id: &str,
    files: &[shoal_runtime::TaskFile],
) -> Result<(), String> {
    if let Some(oci) = &cfg.oci {
        crun::delete(oci)?;
    }
    if !cfg.cgroup_procs.is_empty() || cfg.oom.is_some() {
        cgroup::remove(support, parent, task_id)?;
        cgroup::create(support, parent, task_id, &cfg.limits)?;
    }
    if !files.is_empty() {
        image_task::remake_files(dir, files)
            .map_err(|e| format!("writing its secret and config files: {e}"))?;
    }
    // The running record first: without both the task reads as created, never as a running
    // process whose exit is already known.
    for name in [
        layout::RUNNING,
        layout::HEALTH,
        "container.pid",
        layout::EXIT,
    ] {
        match std::fs::remove_file(dir.file(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("removing {}: {e}", dir.file(name).display()));
            }
            _ => {}
        }
    }
    Ok(())
}
