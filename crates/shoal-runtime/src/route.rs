//! The node's driver when it has more than one runtime: tasks of the reserved `host` image always
//! run natively (they need no image at all); other images run on the Docker runtime when the
//! node has one, natively otherwise. Per-task calls go to the runtime that holds the task.
//!
//! Concurrency: a mutex around the task → runtime table, never held across an await. A task the
//! table does not know (made by an earlier daemon) is looked up by listing both runtimes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use shoal_types::Id;

use crate::catalog::{ImageDetails, ImageHistoryEntry, VolumeCreate, VolumePrune, VolumesPruned};
use crate::image::is_host_image;
use crate::{
    ExitInfo, Health, ImageInfo, LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeTask,
    TaskRun, VolumeInfo,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Native,
    Docker,
}

pub struct RoutingDriver {
    native: Arc<dyn RuntimeDriver>,
    docker: Option<Arc<dyn RuntimeDriver>>,
    routes: Mutex<HashMap<Id, Route>>,
}

impl RoutingDriver {
    /// `docker`: the driver non-`host` images run on, when the node has one.
    pub fn new(native: Arc<dyn RuntimeDriver>, docker: Option<Arc<dyn RuntimeDriver>>) -> Self {
        RoutingDriver {
            native,
            docker,
            routes: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> MutexGuard<'_, HashMap<Id, Route>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn driver(&self, r: Route) -> &dyn RuntimeDriver {
        match (r, &self.docker) {
            (Route::Docker, Some(d)) => d.as_ref(),
            _ => self.native.as_ref(),
        }
    }

    /// Where a new task with this image runs.
    fn route_for(&self, image: &str) -> Route {
        if self.docker.is_some() && !is_host_image(image) {
            Route::Docker
        } else {
            Route::Native
        }
    }

    /// The driver that holds the task, or `NotFound`.
    async fn holder(&self, task_id: &Id) -> Result<&dyn RuntimeDriver, RuntimeError> {
        if let Some(r) = self.table().get(task_id).copied() {
            return Ok(self.driver(r));
        }
        self.list().await?;
        match self.table().get(task_id).copied() {
            Some(r) => Ok(self.driver(r)),
            None => Err(RuntimeError::NotFound(task_id.clone())),
        }
    }

    /// The drivers images and volumes are managed on: Docker's first, as it runs the images.
    fn stores(&self) -> Vec<&dyn RuntimeDriver> {
        self.docker
            .iter()
            .map(|d| d.as_ref())
            .chain([self.native.as_ref()])
            .collect()
    }
}

#[async_trait]
impl RuntimeDriver for RoutingDriver {
    /// The runtime a task with an image runs on by default.
    fn name(&self) -> &'static str {
        self.docker
            .as_ref()
            .map_or_else(|| self.native.name(), |d| d.name())
    }

    fn runtimes(&self) -> Vec<&'static str> {
        let mut v = self.native.runtimes();
        if let Some(d) = &self.docker {
            v.extend(d.runtimes());
        }
        v
    }

    async fn network_sandbox(
        &self,
        run: &TaskRun,
    ) -> Result<Option<std::path::PathBuf>, RuntimeError> {
        let route = self
            .table()
            .get(&run.task_id)
            .copied()
            .unwrap_or_else(|| self.route_for(&run.container.image));
        let made = self.driver(route).network_sandbox(run).await;
        if matches!(made, Ok(Some(_))) {
            // `remove` must reach the driver that holds the sandbox, prepared or not.
            self.table().insert(run.task_id.clone(), route);
        }
        made
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), RuntimeError> {
        let route = self
            .table()
            .get(&run.task_id)
            .copied()
            .unwrap_or_else(|| self.route_for(&run.container.image));
        self.table().insert(run.task_id.clone(), route);
        let res = self.driver(route).prepare(run).await;
        if res.is_err() {
            // Nothing was made (prepare leaves nothing behind on failure): forget the task.
            self.table().remove(&run.task_id);
        }
        res
    }

    async fn start(&self, task_id: &Id) -> Result<i64, RuntimeError> {
        self.holder(task_id).await?.start(task_id).await
    }

    async fn wait(&self, task_id: &Id) -> Result<ExitInfo, RuntimeError> {
        self.holder(task_id).await?.wait(task_id).await
    }

    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError> {
        self.holder(task_id).await?.stop(task_id, grace).await
    }

    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let res = self.holder(task_id).await?.remove(task_id).await;
        if res.is_ok() || matches!(res, Err(RuntimeError::NotFound(_))) {
            self.table().remove(task_id);
        }
        res
    }

    async fn list(&self) -> Result<Vec<RuntimeTask>, RuntimeError> {
        let mut all = Vec::new();
        for (route, driver) in [
            (Route::Native, Some(&self.native)),
            (Route::Docker, self.docker.as_ref()),
        ] {
            let Some(driver) = driver else { continue };
            let tasks = driver.list().await?;
            let mut table = self.table();
            for t in &tasks {
                table.insert(t.task_id.clone(), route);
            }
            drop(table);
            all.extend(tasks);
        }
        all.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(all)
    }

    async fn logs(&self, task_id: &Id, opts: LogOptions) -> Result<LogStream, RuntimeError> {
        self.holder(task_id).await?.logs(task_id, opts).await
    }

    async fn health(&self, task_id: &Id) -> Result<Health, RuntimeError> {
        self.holder(task_id).await?.health(task_id).await
    }

    async fn exec(
        &self,
        task_id: &Id,
        spec: crate::ExecSpec,
    ) -> Result<crate::ExecProcess, RuntimeError> {
        self.holder(task_id).await?.exec(task_id, spec).await
    }

    async fn signal(&self, task_id: &Id, signal: i32) -> Result<(), RuntimeError> {
        self.holder(task_id).await?.signal(task_id, signal).await
    }

    async fn processes(&self, task_id: &Id) -> Result<Vec<i64>, RuntimeError> {
        self.holder(task_id).await?.processes(task_id).await
    }

    async fn stats(&self, task_id: &Id) -> Result<crate::TaskStats, RuntimeError> {
        self.holder(task_id).await?.stats(task_id).await
    }

    async fn attach(&self, task_id: &Id) -> Result<crate::ExecProcess, RuntimeError> {
        self.holder(task_id).await?.attach(task_id).await
    }

    async fn path_stat(&self, task_id: &Id, path: &str) -> Result<crate::PathStat, RuntimeError> {
        self.holder(task_id).await?.path_stat(task_id, path).await
    }

    async fn archive_get(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<(crate::PathStat, crate::ArchiveStream), RuntimeError> {
        self.holder(task_id).await?.archive_get(task_id, path).await
    }

    async fn archive_put(
        &self,
        task_id: &Id,
        dir: &str,
        archive: crate::ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), RuntimeError> {
        self.holder(task_id)
            .await?
            .archive_put(task_id, dir, archive, no_overwrite_dir_non_dir)
            .await
    }

    async fn volumes(&self) -> Result<Vec<VolumeInfo>, RuntimeError> {
        let mut all = Vec::new();
        for d in self.stores() {
            all.extend(d.volumes().await?);
        }
        Ok(all)
    }

    async fn remove_volume(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        let mut last = RuntimeError::VolumeNotFound(name.to_string());
        for d in self.stores() {
            match d.remove_volume(name, force).await {
                Err(e @ RuntimeError::VolumeNotFound(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    async fn images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        let mut all = Vec::new();
        for d in self.stores() {
            all.extend(d.images().await?);
        }
        Ok(all)
    }

    async fn load_image(&self, archive: &std::path::Path) -> Result<Vec<String>, RuntimeError> {
        self.driver(self.route_for("")).load_image(archive).await
    }

    async fn pull_image(&self, reference: &str) -> Result<ImageInfo, RuntimeError> {
        self.driver(self.route_for(reference))
            .pull_image(reference)
            .await
    }

    async fn remove_image(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<Vec<String>, RuntimeError> {
        let mut last = RuntimeError::ImageNotFound(reference.to_string());
        for d in self.stores() {
            match d.remove_image(reference, force).await {
                Err(e @ RuntimeError::ImageNotFound(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageDetails, RuntimeError> {
        let mut last = RuntimeError::ImageNotFound(reference.to_string());
        for d in self.stores() {
            match d.inspect_image(reference).await {
                Err(e @ RuntimeError::ImageNotFound(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    async fn image_history(&self, reference: &str) -> Result<Vec<ImageHistoryEntry>, RuntimeError> {
        let mut last = RuntimeError::ImageNotFound(reference.to_string());
        for d in self.stores() {
            match d.image_history(reference).await {
                Err(e @ RuntimeError::ImageNotFound(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    /// Tags in the store that holds `source`.
    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        let mut last = RuntimeError::ImageNotFound(source.to_string());
        for d in self.stores() {
            match d.tag_image(source, target).await {
                Err(e @ RuntimeError::ImageNotFound(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    /// From the first store that holds every image named; one archive never mixes stores.
    async fn save_images(
        &self,
        references: &[String],
        archive: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        let mut last = RuntimeError::ImageNotFound(references.join(", "));
        for d in self.stores() {
            match d.save_images(references, archive).await {
                Err(e @ RuntimeError::ImageNotFound(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    /// A volume of that name in any store is returned as it is; a new one goes where image
    /// tasks run, as the tasks that will mount it do.
    async fn create_volume(&self, spec: &VolumeCreate) -> Result<VolumeInfo, RuntimeError> {
        for d in self.stores() {
            if let Some(v) = d.volumes().await?.into_iter().find(|v| v.name == spec.name) {
                return Ok(v);
            }
        }
        self.driver(self.route_for("")).create_volume(spec).await
    }

    async fn prune_volumes(&self, filter: &VolumePrune) -> Result<VolumesPruned, RuntimeError> {
        let mut all = VolumesPruned::default();
        for d in self.stores() {
            let p = d.prune_volumes(filter).await?;
            all.names.extend(p.names);
            all.space_reclaimed = all.space_reclaimed.saturating_add(p.space_reclaimed);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use shoal_types::service::{ContainerSpec, ResourceRequirements};

    use super::*;
    use crate::fake::FakeDriver;

    fn run(id: &str, image: &str) -> TaskRun {
        TaskRun {
            task_id: Id::from_raw(id),
            task_name: format!("web.1.{id}"),
            service_id: Id::from_raw("s"),
            service_name: "web".into(),
            node_id: Id::from_raw("n"),
            slot: 1,
            container: ContainerSpec {
                image: image.into(),
                ..Default::default()
            },
            resources: ResourceRequirements::default(),
            hostname: "h".into(),
            networks: Vec::new(),
            netns: None,
            files: Vec::new(),
            local_networks: Vec::new(),
            publish: Vec::new(),
        }
    }

    #[tokio::test]
    async fn host_runs_natively_and_images_on_docker() {
        let (native, docker) = (Arc::new(FakeDriver::new()), Arc::new(FakeDriver::new()));
        let r = RoutingDriver::new(native.clone(), Some(docker.clone()));
        r.prepare(&run("a", "host")).await.expect("prepare");
        r.prepare(&run("b", "busybox:latest"))
            .await
            .expect("prepare");
        r.start(&Id::from_raw("a")).await.expect("start");
        r.start(&Id::from_raw("b")).await.expect("start");
        assert_eq!(native.starts(&Id::from_raw("a")), 1);
        assert_eq!(docker.starts(&Id::from_raw("b")), 1);
        assert_eq!(docker.starts(&Id::from_raw("a")), 0);
        assert_eq!(r.list().await.expect("list").len(), 2);
    }

    #[tokio::test]
    async fn without_docker_everything_runs_natively() {
        let native = Arc::new(FakeDriver::new());
        let r = RoutingDriver::new(native.clone(), None);
        r.prepare(&run("b", "busybox")).await.expect("prepare");
        assert!(native.run(&Id::from_raw("b")).is_some());
        assert_eq!(r.runtimes(), vec!["native"]);
    }

    #[tokio::test]
    async fn adopted_tasks_are_found_where_they_are() {
        let (native, docker) = (Arc::new(FakeDriver::new()), Arc::new(FakeDriver::new()));
        let id = Id::from_raw("old");
        docker.preload(&id, crate::RuntimeTaskState::Running { pid: 7 });
        let r = RoutingDriver::new(native.clone(), Some(docker.clone()));
        r.stop(&id, Duration::ZERO).await.expect("stop");
        assert!(
            docker
                .calls()
                .contains(&crate::fake::FakeCall::Stop(id.clone(), Duration::ZERO))
        );
        assert!(matches!(
            r.start(&Id::from_raw("nobody")).await,
            Err(RuntimeError::NotFound(_))
        ));
    }
}
