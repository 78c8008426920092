//! A task's network sandbox: a container of the pause image ([`crate::pause`]) on
//! `--network none`, holding the network namespace that the node's network layer wires and the
//! task's container joins (`container:<sandbox>`). Under that mode dockerd refuses the task's
//! own hostname, DNS servers and extra hosts, and gives it the sandbox's hostname,
//! `/etc/hosts` and `/etc/resolv.conf`: the sandbox carries them for the task.
//!
//! Life: `network_sandbox` makes (or finds) it before `prepare`; it goes with `remove`, with a
//! failing `prepare`, or with `list` once its task has no container and this driver did not
//! make it (an earlier daemon died between making it and preparing the task). `stop` leaves
//! it: a stopped task keeps its namespace until it is removed.
//!
//! The create request is pure ([`sandbox_body`]); the rest talks to the engine.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummary, HostConfig,
    HostConfigLogConfig,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, RemoveContainerOptions,
};
use futures::StreamExt;
use shoal_runtime::{RuntimeError, TaskRun};
use shoal_types::Id;

use crate::pause::{PAUSE_IMAGE, PAUSE_PATH};
use crate::spec::container_name;
use crate::{
    DockerDriver, LABEL_MANAGED, LABEL_OWNER, LABEL_SANDBOX_TASK_ID, api_err, message_of, status_of,
};

/// Held while the pause image is checked and imported: every import makes a new image, and the
/// tag moves to the last one, so concurrent imports would leave untagged copies behind. For the
/// whole process, as tests run several drivers at once.
static PAUSE_IMPORT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The node's DNS server as a task with networks sees it, inside its own namespace.
pub const TASK_DNS_SERVER: &str = shoal_types::dns::EMBEDDED_DNS_SERVER;

/// The name of a task's sandbox: its container's, so `docker ps` shows the two together.
pub fn sandbox_name(run: &TaskRun) -> String {
    format!("{}.sandbox", container_name(run))
}

/// The sandbox's labels: this daemon's, and which task it serves. It carries none of Swarm's
/// task labels, so nothing that finds a task's container by them finds the sandbox.
pub fn sandbox_labels(run: &TaskRun, owner: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_SANDBOX_TASK_ID.to_string(), run.task_id.to_string()),
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_OWNER.to_string(), owner.to_string()),
    ])
}

/// The create request for a task's network sandbox: the pause program holding a namespace of
/// its own without interfaces (the node's network layer adds the task's), and what dockerd
/// gives a `container:` task from it: the task's hostname; the node's DNS server inside the
/// namespace (the spec's name servers are that server's upstreams, the network layer's part)
/// with the spec's search domains and options and Docker's `ndots:0` unless they set ndots;
/// the spec's extra hosts, then the hostname mapped to the task's first overlay address. No
/// restart policy: it lives and goes with its task.
pub fn sandbox_body(run: &TaskRun, owner: &str) -> ContainerCreateBody {
    let hostname = (!run.hostname.is_empty()).then(|| run.hostname.clone());
    let spec_dns = run.container.dns_config.clone().unwrap_or_default();
    let mut extra_hosts = crate::spec::extra_hosts(&run.container.hosts);
    if let (Some(h), Some(a)) = (&hostname, run.networks.first()) {
        extra_hosts.push(format!("{h}:{}", a.addr.addr()));
    }
    ContainerCreateBody {
        image: Some(PAUSE_IMAGE.to_string()),
        entrypoint: Some(vec![PAUSE_PATH.to_string()]),
        hostname,
        labels: Some(sandbox_labels(run, owner)),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            dns: Some(vec![TASK_DNS_SERVER.into()]),
            dns_search: (!spec_dns.search.is_empty()).then(|| spec_dns.search.clone()),
            dns_options: Some(spec_dns.options_behind_embedded_server()),
            extra_hosts: (!extra_hosts.is_empty()).then_some(extra_hosts),
            // The pause program ends on SIGTERM by itself as PID 1; a daemon configured with
            // `init: true` would only put docker-init in front of it.
            init: Some(false),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            // It never writes a line.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where a process's network namespace is, as dockerd reports its PID (the node's PID
/// namespace).
fn netns_of(pid: i64) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

fn force_remove() -> Option<RemoveContainerOptions> {
    Some(RemoveContainerOptions {
        v: true,
        force: true,
        link: false,
    })
}

impl DockerDriver {
    /// This owner's sandbox containers of the task: one, or none.
    async fn sandbox_containers(&self, task_id: &Id) -> Result<Vec<String>, RuntimeError> {
        let found = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(self.filters(&[format!("{LABEL_SANDBOX_TASK_ID}={task_id}")])),
                ..Default::default()
            }))
            .await
            .map_err(|e| api_err(format!("finding the network sandbox of task {task_id}"), e))?;
        Ok(found.into_iter().filter_map(|c| c.id).collect())
    }

    /// The container ID of the task's sandbox, if it has one.
    pub(crate) async fn sandbox_of(&self, task_id: &Id) -> Result<Option<String>, RuntimeError> {
        Ok(self.sandbox_containers(task_id).await?.into_iter().next())
    }

    /// The task's sandbox running, made if need be; the path of its network namespace. A
    /// sandbox this call made and could not start is removed; one that was there stays (its
    /// task may run in it, and the error may pass).
    pub(crate) async fn network_sandbox_of(&self, run: &TaskRun) -> Result<PathBuf, RuntimeError> {
        // Before anything exists on the engine, so a concurrent `list` never takes the new
        // sandbox for a stray.
        self.sandboxes().insert(run.task_id.clone());
        let (id, made) = match self.sandbox_of(&run.task_id).await? {
            Some(id) => (id, false),
            None => match self.create_sandbox(run).await {
                Ok(id) => (id, true),
                Err(e) => {
                    self.sandboxes().remove(&run.task_id);
                    return Err(e);
                }
            },
        };
        let started = self.start_sandbox(&id).await;
        if started.is_err()
            && made
            && let Err(e) = self.remove_sandbox(&run.task_id).await
        {
            tracing::warn!(task.id = %run.task_id, error = %shoal_types::error::Chain(&e), "docker runtime: removing a network sandbox that did not start");
        }
        let pid = started?;
        tracing::debug!(task.id = %run.task_id, container = %id, pid, "docker runtime: network sandbox");
        Ok(netns_of(pid))
    }

    /// Starts the sandbox unless it runs; its PID.
    async fn start_sandbox(&self, id: &str) -> Result<i64, RuntimeError> {
        if let Some(pid) = self.sandbox_pid(id).await? {
            return Ok(pid);
        }
        let doing = || format!("starting the network sandbox {id}");
        match self.docker.start_container(id, None).await {
            Ok(()) => {}
            // Started concurrently by another call for the same task.
            Err(e) if status_of(&e) == Some(304) => {}
            Err(e) => return Err(api_err(doing(), e)),
        }
        self.sandbox_pid(id).await?.ok_or_else(|| {
            RuntimeError::failed(
                doing(),
                shoal_types::error::Remote(format!("container {id} is not running")),
            )
        })
    }

    /// The sandbox's PID while it runs.
    async fn sandbox_pid(&self, id: &str) -> Result<Option<i64>, RuntimeError> {
        let c = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| api_err(format!("inspecting the network sandbox {id}"), e))?;
        let st = c.state.unwrap_or_default();
        Ok(match (st.status, st.pid) {
            (Some(ContainerStateStatusEnum::RUNNING), Some(pid)) if pid > 0 => Some(pid),
            _ => None,
        })
    }

    async fn create_sandbox(&self, run: &TaskRun) -> Result<String, RuntimeError> {
        self.ensure_pause_image().await?;
        let name = sandbox_name(run);
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                sandbox_body(run, &self.owner),
            )
            .await;
        match created {
            Ok(r) => Ok(r.id),
            // Made concurrently by another call for the same task, or the name is another's.
            Err(e) if status_of(&e) == Some(409) => {
                self.sandbox_of(&run.task_id).await?.ok_or_else(|| {
                    RuntimeError::Conflict(format!(
                        "the network sandbox of task {}: {}",
                        run.task_id,
                        message_of(&e)
                    ))
                })
            }
            Err(e) => Err(api_err(format!("creating the network sandbox {name}"), e)),
        }
    }

    /// Imports the pause image unless the engine has it.
    async fn ensure_pause_image(&self) -> Result<(), RuntimeError> {
        let _one_import = PAUSE_IMPORT.lock().await;
        match self.docker.inspect_image(PAUSE_IMAGE).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(api_err(format!("inspecting image {PAUSE_IMAGE}"), e)),
        }
        let rootfs = crate::pause::rootfs()?;
        let (repo, tag) = PAUSE_IMAGE
            .rsplit_once(':')
            .unwrap_or((PAUSE_IMAGE, "latest"));
        tracing::info!(
            image = PAUSE_IMAGE,
            "docker runtime: importing the network sandbox image"
        );
        let mut progress = self.docker.create_image(
            Some(CreateImageOptions {
                from_src: Some("-".into()),
                repo: Some(repo.into()),
                tag: Some(tag.into()),
                message: Some("shoal's network sandbox".into()),
                changes: vec![format!("CMD [\"{PAUSE_PATH}\"]")],
                ..Default::default()
            }),
            Some(bollard::body_full(rootfs.into())),
            None,
        );
        while let Some(item) = progress.next().await {
            item.map_err(|e| api_err(format!("importing image {PAUSE_IMAGE}"), e))?;
        }
        Ok(())
    }

    /// Removes the task's sandbox; whether there was one.
    pub(crate) async fn remove_sandbox(&self, task_id: &Id) -> Result<bool, RuntimeError> {
        self.sandboxes().remove(task_id);
        let mut removed = false;
        for id in self.sandbox_containers(task_id).await? {
            match self
                .patient(Duration::ZERO)
                .remove_container(&id, force_remove())
                .await
            {
                Ok(()) => removed = true,
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => {
                    return Err(api_err(
                        format!("removing the network sandbox of task {task_id}"),
                        e,
                    ));
                }
            }
        }
        Ok(removed)
    }

    /// Removes the sandboxes among `listed` whose task has no container (`tasks`) and that this
    /// driver did not make: their task was never prepared, and no call will remove them.
    /// Failures are logged; the next `list` tries again.
    pub(crate) async fn remove_lone_sandboxes(
        &self,
        listed: &[ContainerSummary],
        tasks: &HashSet<Id>,
    ) {
        for c in listed {
            let (Some(id), Some(task)) = (
                c.id.as_deref(),
                c.labels.as_ref().and_then(|l| l.get(LABEL_SANDBOX_TASK_ID)),
            ) else {
                continue;
            };
            let task = Id::from_raw(task.clone());
            if tasks.contains(&task) || self.sandboxes().contains(&task) {
                continue;
            }
            tracing::info!(task.id = %task, container = %id, "docker runtime: removing a network sandbox left without its task");
            match self
                .patient(Duration::ZERO)
                .remove_container(id, force_remove())
                .await
            {
                Ok(()) => {}
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => {
                    tracing::warn!(task.id = %task, container = %id, error = %message_of(&e), "docker runtime: removing a stray network sandbox");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LABEL_TASK_ID;
    use crate::spec::tests::networked;

    #[test]
    fn the_sandbox_gives_the_task_its_name_resolver_and_address() {
        let r = networked(None);
        let b = sandbox_body(&r, "owner-1");
        assert_eq!(b.image.as_deref(), Some(PAUSE_IMAGE));
        assert_eq!(b.entrypoint, Some(vec!["/pause".to_string()]));
        assert_eq!(b.hostname.as_deref(), Some("h"));
        let h = b.host_config.expect("host config");
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        assert_eq!(h.dns, Some(vec!["127.0.0.11".to_string()]));
        assert_eq!(h.dns_options, Some(vec!["ndots:0".to_string()]));
        assert_eq!(h.extra_hosts, Some(vec!["h:10.0.9.5".to_string()]));
        assert_eq!(
            h.restart_policy, None,
            "it goes with its task, never restarts alone"
        );
        let l = b.labels.expect("labels");
        assert_eq!(l[LABEL_SANDBOX_TASK_ID], "t1");
        assert_eq!(l[LABEL_OWNER], "owner-1");
        assert_eq!(l[LABEL_MANAGED], "true");
        assert!(
            !l.contains_key(LABEL_TASK_ID),
            "not found as the task's container"
        );
        assert_eq!(sandbox_name(&r), "web.2.t1.sandbox");

        let mut unnamed = r;
        unnamed.hostname.clear();
        let b = sandbox_body(&unnamed, "o");
        assert_eq!(b.hostname, None, "Docker's default");
        assert_eq!(b.host_config.and_then(|h| h.extra_hosts), None);
    }

    /// The spec's search domains, options and extra hosts reach the task through its sandbox;
    /// its name servers do not (the embedded server forwards to them).
    #[test]
    fn the_sandbox_carries_the_spec_s_dns_settings_and_extra_hosts() {
        let r = crate::spec::tests::with_dns(networked(None));
        let h = sandbox_body(&r, "o").host_config.expect("host config");
        assert_eq!(h.dns, Some(vec!["127.0.0.11".to_string()]));
        assert_eq!(h.dns_search, Some(vec!["example.org".to_string()]));
        assert_eq!(
            h.dns_options,
            Some(vec!["timeout:2".to_string(), "ndots:0".into()])
        );
        assert_eq!(
            h.extra_hosts,
            Some(vec![
                "db.example:192.0.2.7".to_string(),
                "cache:2001:db8::8".into(),
                "alias:2001:db8::8".into(),
                "h:10.0.9.5".into()
            ])
        );

        let mut own_ndots = r;
        if let Some(d) = own_ndots.container.dns_config.as_mut() {
            d.options = vec!["ndots:2".into()];
        }
        let h = sandbox_body(&own_ndots, "o")
            .host_config
            .expect("host config");
        assert_eq!(
            h.dns_options,
            Some(vec!["ndots:2".to_string()]),
            "the user's"
        );
    }

    #[test]
    fn the_namespace_is_the_sandbox_process_s() {
        assert_eq!(netns_of(4242), PathBuf::from("/proc/4242/ns/net"));
    }
}
