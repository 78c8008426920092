//! [`RuntimeDriver`] for Docker: one container per task, found by its task label, and a network
//! sandbox beside it for a task with networks (`crate::sandbox`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, RemoveContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use shoal_runtime::{
    ExitInfo, Health, ImageInfo, LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeTask,
    RuntimeTaskState, TaskRun, VolumeInfo,
};
use shoal_types::image_ref::ImageRef;
use shoal_types::{Id, Timestamp};

use crate::{DockerDriver, LABEL_TASK_ID, api_err, message_of, parse_time, spec, status_of};

/// Highest signal number an exit code above 128 is read as (`SIGRTMAX` on Linux).
/// How long, in steps, `wait` gives Docker to report an OOM kill after the exit.
const OOM_SETTLE_TRIES: u32 = 10;
const OOM_SETTLE_STEP: Duration = Duration::from_millis(200);
const MAX_SIGNAL: i64 = 64;

impl DockerDriver {
    /// The container ID of the task's container, or `NotFound`.
    pub(crate) async fn container_of(&self, task_id: &Id) -> Result<String, RuntimeError> {
        if let Some(c) = self.cache().get(task_id) {
            return Ok(c.clone());
        }
        let found = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(self.filters(&[format!("{LABEL_TASK_ID}={task_id}")])),
                ..Default::default()
            }))
            .await
            .map_err(|e| api_err(format!("finding the container of task {task_id}"), e))?;
        let id = found
            .into_iter()
            .find_map(|c| c.id)
            .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        self.cache().insert(task_id.clone(), id.clone());
        Ok(id)
    }

    /// Inspects the task's container; a container removed behind our back is `NotFound`.
    pub(crate) async fn inspect(
        &self,
        task_id: &Id,
    ) -> Result<ContainerInspectResponse, RuntimeError> {
        let id = self.container_of(task_id).await?;
        match self.docker.inspect_container(&id, None).await {
            Ok(c) => Ok(c),
            Err(e) if status_of(&e) == Some(404) => {
                self.cache().remove(task_id);
                Err(RuntimeError::NotFound(task_id.clone()))
            }
            Err(e) => Err(api_err(
                format!("inspecting the container of task {task_id}"),
                e,
            )),
        }
    }

    /// Makes sure the image is here: pulls it only when it is absent, and reports a failed pull
    /// as a missing image with Docker's reason.
    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(api_err(format!("inspecting image {image}"), e)),
        }
        tracing::info!(image, "docker runtime: image absent, pulling");
        match self.pull(image).await {
            Ok(()) => Ok(()),
            Err(why) => Err(RuntimeError::ImageNotFound(format!("{image} ({why})"))),
        }
    }

    /// Pulls `reference` (`:latest` when it names no tag, never every tag); Docker's reason on
    /// failure.
    pub(crate) async fn pull(&self, reference: &str) -> Result<(), String> {
        let (name, tag) = split_reference(reference)?;
        let mut stream = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(name),
                tag,
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(msg) = info.error_detail.and_then(|d| d.message) {
                        return Err(msg);
                    }
                }
                Err(e) => return Err(message_of(&e)),
            }
        }
        Ok(())
    }

    /// Creates the task's container (joined to its sandbox's namespace when it has one).
    async fn create_task_container(&self, run: &TaskRun) -> Result<(), RuntimeError> {
        let sandbox = match &run.netns {
            Some(_) => self.sandbox_of(&run.task_id).await?,
            None => None,
        };
        let mut body = spec::create_body(run, &self.owner, sandbox.as_deref())?;
        self.ensure_image(&run.container.image).await?;
        if !run.files.is_empty() {
            let bound = self.materialize_files(run).await?;
            body.host_config
                .get_or_insert_default()
                .mounts
                .get_or_insert_default()
                .extend(bound.into_iter().map(|b| bollard::models::Mount {
                    target: Some(b.target),
                    source: Some(b.source.display().to_string()),
                    typ: Some(bollard::models::MountType::BIND),
                    read_only: Some(true),
                    ..Default::default()
                }));
        }
        let name = spec::container_name(run);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await;
        match created {
            Ok(r) => {
                for w in r.warnings.iter().filter(|w| !w.is_empty()) {
                    tracing::warn!(task.id = %run.task_id, warning = %w, "docker runtime: create");
                }
                self.cache().insert(run.task_id.clone(), r.id);
                tracing::debug!(task.id = %run.task_id, container = %name, "docker runtime: created");
                Ok(())
            }
            // Made concurrently by another call for the same task: prepared all the same.
            Err(e) if status_of(&e) == Some(409) => {
                self.container_of(&run.task_id).await.map(|_| ())
            }
            Err(e) => {
                // Not created: its files go now, not at a removal that may never come.
                self.release_files(&run.task_id).await?;
                Err(Self::create_error(run, &name, e))
            }
        }
    }

    fn create_error(run: &TaskRun, name: &str, e: bollard::errors::Error) -> RuntimeError {
        match e {
            e if status_of(&e) == Some(404) => {
                RuntimeError::ImageNotFound(run.container.image.clone())
            }
            e if status_of(&e) == Some(400) => RuntimeError::InvalidSpec {
                field: "container",
                why: message_of(&e),
            },
            e => api_err(format!("creating container {name}"), e),
        }
    }

    /// Waits for the task's container to exit; its exit.
    async fn wait_exit(&self, task_id: &Id) -> Result<ExitInfo, RuntimeError> {
        let c = self.inspect(task_id).await?;
        match Self::state_of(&c) {
            RuntimeTaskState::Exited(e) => return Ok(e),
            RuntimeTaskState::Created => {
                return Err(RuntimeError::StartFailed(format!(
                    "task {task_id} was never started"
                )));
            }
            RuntimeTaskState::Running { .. } => {}
        }
        let id = c.id.clone().unwrap_or_default();
        // The wait call has no deadline of its own: a task may run for months.
        let patient = self
            .docker
            .clone()
            .with_timeout(Duration::from_secs(u64::from(u32::MAX)));
        let mut waited = patient.wait_container(
            &id,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        match waited.next().await {
            // A non-zero exit comes back as an error carrying the code: the container is done.
            Some(Ok(_))
            | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. }))
            | None => {}
            Some(Err(e)) if status_of(&e) == Some(404) => {
                self.cache().remove(task_id);
                return Err(RuntimeError::NotFound(task_id.clone()));
            }
            Some(Err(e)) => return Err(api_err(format!("waiting for task {task_id}"), e)),
        }
        let mut c = self.inspect(task_id).await?;
        // Docker learns of an OOM kill from an event that can arrive after the exit: a
        // SIGKILLed container with a memory limit is asked again for a moment before its
        // exit is taken as a plain kill.
        let limited = c
            .host_config
            .as_ref()
            .and_then(|h| h.memory)
            .is_some_and(|m| m > 0);
        for _ in 0..OOM_SETTLE_TRIES {
            let e = Self::exit_info(&c);
            if !(limited && e.code == 128 + 9 && !e.oom_killed) {
                break;
            }
            tokio::time::sleep(OOM_SETTLE_STEP).await;
            c = self.inspect(task_id).await?;
        }
        Ok(Self::exit_info(&c))
    }

    fn exit_info(c: &ContainerInspectResponse) -> ExitInfo {
        let st = c.state.clone().unwrap_or_default();
        let code = st.exit_code.unwrap_or(0);
        ExitInfo {
            code,
            // Docker reports a signal death as 128+N and nothing else; a process that exits
            // with such a code itself reads the same.
            signal: (code > 128 && code <= 128 + MAX_SIGNAL).then(|| (code - 128) as i32),
            oom_killed: st.oom_killed.unwrap_or(false),
            finished_at: parse_time(st.finished_at.as_deref().unwrap_or("")),
        }
    }

    fn state_of(c: &ContainerInspectResponse) -> RuntimeTaskState {
        let st = c.state.clone().unwrap_or_default();
        match st.status {
            Some(ContainerStateStatusEnum::CREATED) => RuntimeTaskState::Created,
            Some(
                ContainerStateStatusEnum::RUNNING
                | ContainerStateStatusEnum::PAUSED
                | ContainerStateStatusEnum::RESTARTING
                | ContainerStateStatusEnum::STOPPING,
            ) => RuntimeTaskState::Running {
                pid: st.pid.unwrap_or(0),
            },
            _ => RuntimeTaskState::Exited(Self::exit_info(c)),
        }
    }
}

/// `name` and `tag`, or `name@digest` and no tag, as the pull endpoint takes them (never no
/// tag for a name: Docker would pull every tag). shoal-types' parser decides which is which.
pub(crate) fn split_reference(reference: &str) -> Result<(String, Option<String>), String> {
    let r = ImageRef::parse(reference).map_err(|e| e.to_string())?;
    Ok(match r.digest() {
        Some(d) => (format!("{}@{d}", r.familiar_name()), None),
        None => (r.familiar_name(), r.tag().map(str::to_string)),
    })
}

#[async_trait]
impl RuntimeDriver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn network_sandbox(&self, run: &TaskRun) -> Result<Option<PathBuf>, RuntimeError> {
        if !run.has_own_network() {
            return Ok(None);
        }
        self.network_sandbox_of(run).await.map(Some)
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), RuntimeError> {
        match self.container_of(&run.task_id).await {
            Ok(_) => {
                // A driver that restarted since the first prepare gets the files back.
                self.kept.keep(&run.task_id, &run.files);
                return Ok(());
            }
            Err(RuntimeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let created = self.create_task_container(run).await;
        if created.is_ok() {
            self.kept.keep(&run.task_id, &run.files);
        }
        // A task that cannot be prepared is rejected: its sandbox goes with it.
        if created.is_err()
            && run.has_own_network()
            && let Err(e) = self.remove_sandbox(&run.task_id).await
        {
            tracing::warn!(task.id = %run.task_id, error = %shoal_types::error::Chain(&e), "docker runtime: removing the network sandbox of a rejected task");
        }
        created
    }

    /// An exited container is started again as `docker start` does; its secret and config
    /// files, which its exit released, are made again first.
    async fn start(&self, task_id: &Id) -> Result<i64, RuntimeError> {
        let c = self.inspect(task_id).await?;
        let again = match Self::state_of(&c) {
            RuntimeTaskState::Created => false,
            // Already started (by us or an earlier driver): never start twice.
            RuntimeTaskState::Running { pid } => return Ok(pid),
            RuntimeTaskState::Exited(_) => true,
        };
        if again {
            self.remake_files(task_id, &c).await?;
        }
        let id = c.id.clone().unwrap_or_default();
        let started =
            self.docker
                .start_container(&id, None)
                .await
                .map_err(|e| match status_of(&e) {
                    Some(404) => RuntimeError::NotFound(task_id.clone()),
                    // The daemon's own answer (e.g. the executable is missing) is the message
                    // Docker users know; a failed call keeps bollard's error as the cause.
                    Some(_) => RuntimeError::StartFailed(message_of(&e)),
                    None => RuntimeError::failed("starting the container", e),
                });
        if let Err(e) = started {
            if again {
                self.release_files(task_id).await?;
            }
            return Err(e);
        }
        let c = self.inspect(task_id).await?;
        Ok(c.state.and_then(|s| s.pid).unwrap_or(0))
    }

    async fn wait(&self, task_id: &Id) -> Result<ExitInfo, RuntimeError> {
        let exit = self.wait_exit(task_id).await?;
        // Its secrets leave the node with its process, not with its container, which the task
        // history keeps for a while.
        self.release_files(task_id).await?;
        Ok(exit)
    }

    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError> {
        let id = self.container_of(task_id).await?;
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let res = self
            .patient(grace)
            .stop_container(
                &id,
                Some(StopContainerOptions {
                    t: Some(i32::try_from(secs).unwrap_or(i32::MAX)),
                    signal: None,
                }),
            )
            .await;
        match res {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => {
                self.cache().remove(task_id);
                Err(RuntimeError::NotFound(task_id.clone()))
            }
            Err(e) => Err(api_err(format!("stopping task {task_id}"), e)),
        }
    }

    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let mut removed = false;
        match self.container_of(task_id).await {
            Ok(id) => {
                let res = self
                    .patient(Duration::ZERO)
                    .remove_container(
                        &id,
                        Some(RemoveContainerOptions {
                            // Anonymous volumes go with the task; named ones outlive it.
                            v: true,
                            force: true,
                            link: false,
                        }),
                    )
                    .await;
                self.cache().remove(task_id);
                match res {
                    Ok(()) => removed = true,
                    Err(e) if status_of(&e) == Some(404) => {}
                    Err(e) => return Err(api_err(format!("removing task {task_id}"), e)),
                }
            }
            Err(RuntimeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        // After the container that bound them.
        self.release_files(task_id).await?;
        self.kept.forget(task_id);
        // After the task's container, which lives in its namespace; also when the task was
        // never prepared.
        if self.remove_sandbox(task_id).await? {
            removed = true;
        }
        if removed {
            Ok(())
        } else {
            Err(RuntimeError::NotFound(task_id.clone()))
        }
    }

    async fn list(&self) -> Result<Vec<RuntimeTask>, RuntimeError> {
        let found = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(self.filters(&[])),
                ..Default::default()
            }))
            .await
            .map_err(|e| api_err("listing containers", e))?;
        let mut out = Vec::new();
        // Every task that has a container, even one gone since: its sandbox is not a stray.
        let mut tasks = HashSet::new();
        for c in &found {
            // Sandboxes are not tasks; they carry no task label.
            let (Some(cid), Some(task)) = (
                c.id.clone(),
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_TASK_ID))
                    .cloned(),
            ) else {
                continue;
            };
            let task_id = Id::from_raw(task);
            tasks.insert(task_id.clone());
            self.cache().insert(task_id.clone(), cid.clone());
            match self.docker.inspect_container(&cid, None).await {
                Ok(i) => out.push(RuntimeTask {
                    state: Self::state_of(&i),
                    task_id,
                    started_at: i
                        .state
                        .as_ref()
                        .and_then(|s| s.started_at.as_deref())
                        .map_or(Timestamp::ZERO, crate::parse_time),
                    container_id: Some(cid.clone()),
                }),
                // Removed between the list and now: not a task any more.
                Err(e) if status_of(&e) == Some(404) => {
                    self.cache().remove(&task_id);
                }
                Err(e) => return Err(api_err(format!("inspecting container {cid}"), e)),
            }
        }
        self.remove_lone_sandboxes(&found, &tasks).await;
        out.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(out)
    }

    async fn logs(&self, task_id: &Id, opts: LogOptions) -> Result<LogStream, RuntimeError> {
        let id = self.container_of(task_id).await?;
        Ok(crate::logs::stream(&self.docker, &id, opts))
    }

    async fn health(&self, task_id: &Id) -> Result<Health, RuntimeError> {
        let c = self.inspect(task_id).await?;
        let Some(h) = c.state.and_then(|s| s.health) else {
            return Ok(Health::None);
        };
        Ok(match h.status {
            Some(HealthStatusEnum::STARTING) => Health::Starting,
            Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
            Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy(
                h.log
                    .unwrap_or_default()
                    .last()
                    .and_then(|r| r.output.clone())
                    .unwrap_or_default()
                    .trim_end()
                    .to_string(),
            ),
            _ => Health::None,
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
        self.signal_task(task_id, signal).await
    }

    async fn processes(&self, task_id: &Id) -> Result<Vec<i64>, RuntimeError> {
        self.task_processes(task_id).await
    }

    async fn stats(&self, task_id: &Id) -> Result<shoal_runtime::TaskStats, RuntimeError> {
        self.task_stats(task_id).await
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

    async fn volumes(&self) -> Result<Vec<VolumeInfo>, RuntimeError> {
        self.list_volumes().await
    }

    async fn remove_volume(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        self.delete_volume(name, force).await
    }

    async fn images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.list_images().await
    }

    async fn load_image(&self, archive: &std::path::Path) -> Result<Vec<String>, RuntimeError> {
        self.load(archive).await
    }

    async fn pull_image(&self, reference: &str) -> Result<ImageInfo, RuntimeError> {
        self.pull(reference)
            .await
            .map_err(|why| RuntimeError::Pull {
                reference: reference.to_string(),
                why,
            })?;
        self.image_info(reference).await
    }

    async fn remove_image(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<Vec<String>, RuntimeError> {
        self.delete_image(reference, force).await
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
        self.history(reference).await
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        self.tag(source, target).await
    }

    async fn save_images(
        &self,
        references: &[String],
        archive: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        self.save(references, archive).await
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_their_tag_or_get_latest() {
        let s = |r: &str| split_reference(r).unwrap_or_else(|e| panic!("{r}: {e}"));
        let some = |n: &str, t: &str| (n.to_string(), Some(t.to_string()));
        assert_eq!(s("busybox"), some("busybox", "latest"));
        assert_eq!(s("busybox:1.36"), some("busybox", "1.36"));
        assert_eq!(s("reg:5000/team/app"), some("reg:5000/team/app", "latest"));
        assert_eq!(s("reg:5000/team/app:v2"), some("reg:5000/team/app", "v2"));
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(s(&format!("app@{d}")), (format!("app@{d}"), None));
        assert_eq!(s(&format!("app:1@{d}")), (format!("app@{d}"), None));
        let bad = split_reference("App:1").err().unwrap_or_default();
        assert!(bad.contains("lowercase"), "{bad}");
    }
}
