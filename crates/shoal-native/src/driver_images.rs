//! The native driver's work for image tasks and named volumes: `prepare` of a real image
//! (resolve, cgroup, then rootfs, bundle and volumes on a blocking thread, config.json last, all
//! undone on failure), which tasks use which volumes and images (read from the task
//! directories, so it holds for tasks a previous driver started too), and what an engine serves
//! of images and volumes (details from the image store, volumes made and pruned on request).

use std::sync::Arc;

use shoal_types::Id;

use super::layout::{self, ShimConfig, TaskDir};
use super::volumes::{self, VolumeMeta};
use super::{NativeDriver, blocking, cgroup, image_task, io};
use shoal_runtime::catalog::{ImageDetails, VolumeCreate, VolumePrune, VolumesPruned};
use shoal_runtime::image::ImageStore;
use shoal_runtime::{RuntimeError, TaskRun, VolumeInfo};

impl NativeDriver {
    /// Checks the task's limits against what this node's cgroups can enforce (a refusal names
    /// the field), then makes its cgroup. Making it can still fail; each caller decides what
    /// that means for its kind of task, so that failure comes back as the inner result.
    pub(crate) async fn task_cgroup(
        &self,
        run: &TaskRun,
    ) -> Result<Result<Option<cgroup::TaskCgroup>, String>, RuntimeError> {
        cgroup::validate_limits(&run.resources.limits, &self.cgroups, self.ncpus)
            .map_err(|(field, why)| RuntimeError::InvalidSpec { field, why })?;
        let (support, parent, id, limits) = (
            self.cgroups,
            self.cfg.cgroup_parent.clone(),
            run.task_id.to_string(),
            run.resources.limits,
        );
        blocking(move || cgroup::create(&support, &parent, &id, &limits)).await
    }

    /// Every prepared task's config.
    pub(super) fn task_configs(&self) -> Result<Vec<(Id, ShimConfig)>, RuntimeError> {
        let tasks = self.cfg.root.join("tasks");
        let entries =
            std::fs::read_dir(&tasks).map_err(|e| io(format!("listing {}", tasks.display()), e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Ok(Some(cfg)) = TaskDir::from_path(entry.path()).config() {
                out.push((Id::from_raw(name), cfg));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The node's image store; without one, no image (named by `reference`) exists.
    pub(super) fn image_store(
        &self,
        reference: &str,
    ) -> Result<&Arc<dyn ImageStore>, RuntimeError> {
        self.cfg
            .images
            .as_ref()
            .ok_or_else(|| RuntimeError::ImageNotFound(reference.to_string()))
    }

    pub(super) async fn image_details(
        &self,
        reference: &str,
    ) -> Result<ImageDetails, RuntimeError> {
        let mut d = self.image_store(reference)?.inspect(reference).await?;
        // Docker's names for the same two ways of giving a task its image's files.
        d.storage_driver = if self.overlay { "overlay" } else { "vfs" }.into();
        Ok(d)
    }

    pub(super) fn volume_info(&self, m: VolumeMeta, users: &[(Id, Vec<String>)]) -> VolumeInfo {
        VolumeInfo {
            mountpoint: volumes::data_dir(&self.cfg.volumes_root, &m.name)
                .display()
                .to_string(),
            in_use_by: users
                .iter()
                .filter(|(_, vols)| vols.contains(&m.name))
                .map(|(id, _)| id.clone())
                .collect(),
            name: m.name,
            labels: m.labels,
            options: Default::default(),
            created_at: m.created_at,
        }
    }

    /// Makes the volume, or returns the one of that name as it is.
    pub(super) async fn make_volume(
        &self,
        spec: &VolumeCreate,
    ) -> Result<VolumeInfo, RuntimeError> {
        if !volumes::valid_name(&spec.name) {
            return Err(RuntimeError::InvalidSpec {
                field: "Name",
                why: format!(
                    "{:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
                    spec.name
                ),
            });
        }
        if !spec.options.is_empty() {
            let names: Vec<&str> = spec.options.keys().map(String::as_str).collect();
            return Err(RuntimeError::InvalidSpec {
                field: "DriverOpts",
                why: format!(
                    "the native runtime's volumes are plain directories and take no driver options (got {})",
                    names.join(", ")
                ),
            });
        }
        let (root, name, labels, now) = (
            self.cfg.volumes_root.clone(),
            spec.name.clone(),
            spec.labels.clone(),
            self.clock.now(),
        );
        let meta = blocking(move || {
            volumes::ensure(&root, &name, &labels, now, None)?;
            volumes::read(&root, &name)
        })
        .await?
        .map_err(|e| io(format!("creating volume {}", spec.name), e))?;
        Ok(self.volume_info(meta, &self.volume_users()?))
    }

    /// Removes the unused volumes `filter` selects; a volume that cannot be removed is left
    /// and named in the log, as Docker's prune does.
    pub(super) async fn prune(&self, filter: &VolumePrune) -> Result<VolumesPruned, RuntimeError> {
        let root = self.cfg.volumes_root.clone();
        let metas = blocking(move || volumes::list(&root))
            .await?
            .map_err(|e| io("listing volumes", e))?;
        let users = self.volume_users()?;
        let chosen: Vec<String> = metas
            .into_iter()
            .map(|m| self.volume_info(m, &users))
            .filter(|v| filter.selects(v))
            .map(|v| v.name)
            .collect();
        let root = self.cfg.volumes_root.clone();
        let (names, space_reclaimed) = blocking(move || {
            let mut out = (Vec::new(), 0u64);
            for name in chosen {
                let size = volumes::size(&root, &name);
                match volumes::remove(&root, &name) {
                    Ok(()) => {
                        out.0.push(name);
                        out.1 = out.1.saturating_add(size);
                    }
                    Err(e) => {
                        tracing::warn!(volume = %name, error = %e, "native: pruning a volume failed");
                    }
                }
            }
            out
        })
        .await?;
        Ok(VolumesPruned {
            names,
            space_reclaimed,
        })
    }

    /// The tasks on the node and the named volumes each mounts. A task uses its volumes for as
    /// long as it exists (running or not), as a container does in Docker.
    pub(super) fn volume_users(&self) -> Result<Vec<(Id, Vec<String>)>, RuntimeError> {
        Ok(self
            .task_configs()?
            .into_iter()
            .filter(|(_, c)| !c.volumes.is_empty())
            .map(|(id, c)| (id, c.volumes))
            .collect())
    }

    /// `prepare` for a real image: resolve it, make the task's cgroup, then its rootfs, bundle
    /// and volumes (blocking work), and last its config.json. Any failure undoes it all.
    pub(super) async fn prepare_image(
        &self,
        run: &TaskRun,
        dir: TaskDir,
    ) -> Result<(), RuntimeError> {
        let c = &run.container;
        let Some(store) = &self.cfg.images else {
            return Err(RuntimeError::ImageNotFound(c.image.clone()));
        };
        // A pull that fails leaves the node without the image: say that first, as Swarm's
        // "No such image", with why the pull did not help.
        let image = store.resolve(&c.image, true).await.map_err(|e| match e {
            RuntimeError::Pull { why, .. } => {
                RuntimeError::ImageNotFound(format!("{} (pulling it failed: {why})", c.image))
            }
            other => other,
        })?;
        if !self.cfg.oci_runtime.is_file() {
            return Err(RuntimeError::InvalidSpec {
                field: "image",
                why: format!(
                    "cannot run image {}: no OCI runtime on this node ({} not found; install crun or runc)",
                    c.image,
                    self.cfg.oci_runtime.display()
                ),
            });
        }
        if !self.caps.root {
            return Err(RuntimeError::InvalidSpec {
                field: "image",
                why: format!(
                    "cannot run image {}: the native runtime needs root for images",
                    c.image
                ),
            });
        }
        // Left over from a prepare that was cut short: start again from nothing.
        if dir.path().exists() {
            let d = dir.clone();
            blocking(move || image_task::cleanup(&d))
                .await?
                .map_err(|e| io("clearing a half-prepared task", e))?;
        }
        let created = self
            .task_cgroup(run)
            .await?
            .map_err(|why| RuntimeError::InvalidSpec {
                field: "resources.limits",
                why,
            })?;
        let cgroups_path = created
            .as_ref()
            .map(|_| format!("/{}/{}", self.cfg.cgroup_parent, run.task_id));
        let (run2, dir2, overlay, runtime, vols, now) = (
            run.clone(),
            dir.clone(),
            self.overlay,
            self.cfg.oci_runtime.clone(),
            self.cfg.volumes_root.clone(),
            self.clock.now(),
        );
        let made = blocking(move || {
            let node = image_task::ImageNode {
                overlay,
                runtime: &runtime,
                volumes_root: &vols,
                cgroups_path,
                now,
            };
            let mut cfg = image_task::materialize(&run2, &image, &dir2, &node)?;
            if let Some(cg) = created {
                cfg.cgroup_procs = cg.procs;
                cfg.oom = cg.oom;
            }
            // config.json is written last: its presence is what makes the task "prepared".
            layout::write_json_atomic(&dir2.file(layout::CONFIG), &cfg).map_err(|e| {
                io(
                    format!("writing {}", dir2.file(layout::CONFIG).display()),
                    e,
                )
            })
        })
        .await?;
        if let Err(e) = made {
            let d = dir.clone();
            if let Ok(Err(ce)) = blocking(move || image_task::cleanup(&d)).await {
                tracing::warn!(task.id = %run.task_id, error = %ce, "native: cleaning up a failed prepare");
            }
            let (support, parent, id) = (
                self.cgroups,
                self.cfg.cgroup_parent.clone(),
                run.task_id.to_string(),
            );
            let _ = blocking(move || cgroup::remove(&support, &parent, &id)).await;
            return Err(e);
        }
        Ok(())
    }
}
