//! A task container's secret and config files: on a tmpfs of the node outside any data
//! directory (see `shoal_runtime::files`), bound into the container file by file; released when
//! its process exits, made again when it starts again.

use std::path::PathBuf;

use bollard::models::ContainerInspectResponse;
use shoal_runtime::{RuntimeError, TaskRun};
use shoal_types::Id;

use crate::DockerDriver;

impl DockerDriver {
    /// Where a task's secret and config files live: a tmpfs outside any data directory, bound
    /// into the container file by file.
    pub(crate) fn files_dir(&self, task: &Id) -> PathBuf {
        shoal_runtime::files::dir_for(&std::path::Path::new(&self.owner).join(task.as_str()))
    }

    pub(crate) async fn materialize_files(
        &self,
        run: &TaskRun,
    ) -> Result<Vec<shoal_runtime::files::Bound>, RuntimeError> {
        let (dir, files) = (self.files_dir(&run.task_id), run.files.clone());
        tokio::task::spawn_blocking(move || shoal_runtime::files::materialize(&dir, &files))
            .await
            .map_err(|e| RuntimeError::failed("writing the task's files", e))?
            .map_err(|e| RuntimeError::Io {
                context: format!(
                    "writing the secret and config files of task {}",
                    run.task_id
                ),
                source: e,
            })
    }

    /// Makes the secret and config files of an exited container again, where it binds them
    /// from; nothing for a container without any.
    pub(crate) async fn remake_files(
        &self,
        task: &Id,
        c: &ContainerInspectResponse,
    ) -> Result<(), RuntimeError> {
        let dir = self.files_dir(task);
        let binds_files = c.mounts.iter().flatten().any(|m| {
            m.source
                .as_deref()
                .is_some_and(|s| std::path::Path::new(s).starts_with(&dir))
        });
        if !binds_files {
            return Ok(());
        }
        let Some(files) = self.kept.get(task) else {
            return Err(RuntimeError::StartFailed(format!(
                "task {task} cannot start again: its secret and config files left the node when it exited, and this daemon no longer holds them (it restarted since the task was prepared); prepare it again"
            )));
        };
        let id = task.clone();
        tokio::task::spawn_blocking(move || {
            shoal_runtime::files::release(&dir)?;
            shoal_runtime::files::materialize(&dir, &files)
        })
        .await
        .map_err(|e| RuntimeError::failed("writing the task's files", e))?
        .map_err(|e| RuntimeError::Io {
            context: format!("writing the secret and config files of task {id} again"),
            source: e,
        })?;
        Ok(())
    }

    pub(crate) async fn release_files(&self, task: &Id) -> Result<(), RuntimeError> {
        let dir = self.files_dir(task);
        let id = task.clone();
        tokio::task::spawn_blocking(move || shoal_runtime::files::release(&dir))
            .await
            .map_err(|e| RuntimeError::failed("removing the task's files", e))?
            .map_err(|e| RuntimeError::Io {
                context: format!("removing the secret and config files of task {id}"),
                source: e,
            })
    }
}
