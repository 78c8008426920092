//! A task container's files as archives (`docker cp`), through the engine's own archive
//! endpoints: `HEAD` for a path's stat (the `X-Docker-Container-Path-Stat` header), `GET` for
//! the tar, `PUT` to extract one. The engine resolves paths in the container's root itself; the
//! driver adds what the contract asks beyond it: a path that would leave the root is refused
//! rather than cleaned, and an archive whose entries would land outside the directory is
//! refused before the engine sees any of it (it is spooled to an unnamed temporary file, checked,
//! then sent).

use std::io::{Seek, Write};

use bollard::query_parameters::{
    ContainerArchiveInfoOptions, DownloadFromContainerOptions, UploadToContainerOptions,
};
use futures::StreamExt;
use shoal_runtime::RuntimeError;
use shoal_runtime::archive::{ArchiveStream, PathStat, check_entries, clean_path};
use shoal_types::Id;
use tokio::io::AsyncReadExt;

use crate::{DockerDriver, api_err, message_of, parse_time, status_of};

/// How much of the spooled archive one chunk of the upload carries.
const CHUNK: usize = 64 * 1024;

fn blocking_failed(e: tokio::task::JoinError) -> RuntimeError {
    RuntimeError::failed("a blocking archive worker", e)
}

impl DockerDriver {
    /// The task's container, checked to exist now (an archive call's 404 then means the path).
    async fn archive_container(&self, task_id: &Id) -> Result<String, RuntimeError> {
        let c = self.inspect(task_id).await?;
        c.id.ok_or_else(|| RuntimeError::NotFound(task_id.clone()))
    }

    pub(crate) async fn stat_path(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<PathStat, RuntimeError> {
        let clean = clean_path(path)?;
        let id = self.archive_container(task_id).await?;
        let s = self
            .docker
            .get_container_archive_info(&id, Some(ContainerArchiveInfoOptions { path: clean }))
            .await
            .map_err(|e| match status_of(&e) {
                Some(404) => RuntimeError::PathNotFound {
                    path: path.to_string(),
                },
                Some(400) => RuntimeError::InvalidSpec {
                    field: "path",
                    why: format!("{path}: {}", message_of(&e)),
                },
                _ => api_err(format!("stat of {path} in task {task_id}"), e),
            })?;
        Ok(PathStat {
            name: s.name,
            size: s.size,
            mode: s.file_mode,
            mtime: parse_time(s.modification_time.as_deref().unwrap_or("")),
            link_target: s.link_target,
        })
    }

    pub(crate) async fn get_archive(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<(PathStat, ArchiveStream), RuntimeError> {
        let stat = self.stat_path(task_id, path).await?;
        let id = self.archive_container(task_id).await?;
        let doing = format!("reading the archive of {path} in task {task_id}");
        let (p, t) = (path.to_string(), task_id.clone());
        let stream = self
            .docker
            .download_from_container(
                &id,
                Some(DownloadFromContainerOptions {
                    path: clean_path(path)?,
                }),
            )
            .map(move |item| {
                item.map_err(|e| match status_of(&e) {
                    // Gone between the stat and the read.
                    Some(404) => RuntimeError::PathNotFound { path: p.clone() },
                    _ => api_err(format!("{doing} ({t})"), e),
                })
            })
            .boxed();
        Ok((stat, stream))
    }

    pub(crate) async fn put_archive(
        &self,
        task_id: &Id,
        dir: &str,
        mut archive: ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), RuntimeError> {
        let clean = clean_path(dir)?;
        let id = self.archive_container(task_id).await?;
        let spool_err = |e: std::io::Error| RuntimeError::Io {
            context: format!("spooling the archive for task {task_id}"),
            source: e,
        };
        let mut spool = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(blocking_failed)?
            .map_err(spool_err)?;
        while let Some(chunk) = archive.next().await {
            let chunk = chunk?;
            spool = tokio::task::spawn_blocking(move || spool.write_all(&chunk).map(|()| spool))
                .await
                .map_err(blocking_failed)?
                .map_err(spool_err)?;
        }
        let spool = tokio::task::spawn_blocking(move || -> Result<_, RuntimeError> {
            spool.rewind().map_err(|e| RuntimeError::Io {
                context: "rewinding the spooled archive".into(),
                source: e,
            })?;
            check_entries(&spool)?;
            let mut spool = spool;
            spool.rewind().map_err(|e| RuntimeError::Io {
                context: "rewinding the spooled archive".into(),
                source: e,
            })?;
            Ok(spool)
        })
        .await
        .map_err(blocking_failed)??;
        let file = tokio::fs::File::from_std(spool);
        let body = futures::stream::unfold(Some(file), |f| async move {
            let mut f = f?;
            let mut buf = vec![0u8; CHUNK];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), Some(f)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        self.docker
            .upload_to_container(
                &id,
                Some(UploadToContainerOptions {
                    path: clean,
                    no_overwrite_dir_non_dir: no_overwrite_dir_non_dir.then(|| "1".to_string()),
                    copy_uidgid: None,
                }),
                bollard::body_try_stream(body),
            )
            .await
            .map_err(|e| {
                let msg = message_of(&e);
                match status_of(&e) {
                    Some(404) => RuntimeError::PathNotFound {
                        path: dir.to_string(),
                    },
                    // The engine's untar refusing to replace one kind by the other.
                    Some(_) if msg.contains("cannot overwrite") => RuntimeError::InvalidSpec {
                        field: "noOverwriteDirNonDir",
                        why: msg,
                    },
                    // Engines before 23 answer 500 for a refusal that is the request's fault.
                    Some(_) if msg.contains("not a directory") => RuntimeError::InvalidSpec {
                        field: "path",
                        why: format!("{dir}: {msg}"),
                    },
                    Some(400 | 403) => RuntimeError::InvalidSpec {
                        field: "path",
                        why: format!("{dir}: {msg}"),
                    },
                    _ => api_err(
                        format!("extracting an archive into {dir} in task {task_id}"),
                        e,
                    ),
                }
            })
    }
}
