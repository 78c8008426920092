//! Preparing a task of a real image: its root filesystem (see `rootfs`), its OCI bundle (see
//! `oci`), its `/etc` files, volumes and health check, and the shim config that runs it all
//! through the OCI runtime. Errors name the spec field and reject the task.
//!
//! [`resolve_process`] is pure (image config + spec → argv, env, dir, user, stop signal);
//! [`materialize`] does the blocking filesystem work in the task directory and leaves it for the
//! caller to clean up on error ([`cleanup`]).

use std::path::{Path, PathBuf};

use shoal_types::Timestamp;
use shoal_types::container::{HealthConfig, MountKind};

use super::layout::{self, Creds, HealthSpec, Namespaces, OciRun, ShimConfig, TaskDir};
use super::logs::DEFAULT_MAX_BYTES;
use super::oci::{self, Bundle, ExtraMount, Process};
use super::{etc_files, prepare, rootfs, user, volumes};
use shoal_runtime::image::{ImageConfig, ResolvedImage};
use shoal_runtime::{RuntimeError, TaskRun};

/// The tmpfs holding the task's secret and config files: outside the data directory (see
/// `shoal_runtime::files`), at a path derived from the task's directory so a restarted driver
/// finds it again.
fn files_dir(dir: &TaskDir) -> PathBuf {
    shoal_runtime::files::dir_for(dir.path())
}

fn invalid(field: &'static str, why: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec {
        field,
        why: why.into(),
    }
}

/// The argv as Docker builds it: the spec's command replaces the image's entrypoint (and then
/// the image's cmd is dropped), the spec's args replace the image's cmd.
pub(crate) fn argv(spec_cmd: &[String], spec_args: &[String], image: &ImageConfig) -> Vec<String> {
    let entry = if spec_cmd.is_empty() {
        &image.entrypoint
    } else {
        spec_cmd
    };
    let args: &[String] = if !spec_args.is_empty() {
        spec_args
    } else if spec_cmd.is_empty() {
        &image.cmd
    } else {
        &[]
    };
    entry.iter().chain(args).cloned().collect()
}

/// The effective health check: the spec's over the image's; `None` without one or with `NONE`.
pub(crate) fn health_spec(
    spec: Option<&HealthConfig>,
    image: Option<&HealthConfig>,
) -> Option<HealthSpec> {
    let h = spec
        .cloned()
        .unwrap_or_default()
        .over(&image.cloned().unwrap_or_default());
    if h.disabled() {
        return None;
    }
    Some(HealthSpec {
        argv: h.argv()?,
        interval: h.effective_interval(),
        timeout: h.effective_timeout(),
        start_period: h.effective_start_period(),
        retries: h.effective_retries(),
    })
}

/// What the driver knows of the node for an image task.
pub(crate) struct ImageNode<'a> {
    pub overlay: bool,
    pub runtime: &'a Path,
    pub volumes_root: &'a Path,
    pub cgroups_path: Option<String>,
    pub now: Timestamp,
}

/// Unmounts the task's secret and config files (nothing there is not an error).
pub(crate) fn release_files(dir: &TaskDir) -> std::io::Result<()> {
    shoal_runtime::files::release(&files_dir(dir))
}

/// Puts the task's secret and config files on a new tmpfs where its bundle binds them from:
/// the same files in the same order land at the same places as at prepare.
pub(crate) fn remake_files(
    dir: &TaskDir,
    files: &[shoal_runtime::TaskFile],
) -> std::io::Result<()> {
    let at = files_dir(dir);
    shoal_runtime::files::release(&at)?;
    shoal_runtime::files::materialize(&at, files).map(|_| ())
}

/// Removes whatever a (possibly half-done) image task left in its directory: the rootfs mount,
/// then the directory. Refuses to delete through a rootfs that is still mounted.
pub(crate) fn cleanup(dir: &TaskDir) -> std::io::Result<()> {
    shoal_runtime::files::release(&files_dir(dir))?;
    let root = dir.file(layout::ROOTFS);
    rootfs::unmount(&root)?;
    if rootfs::is_mount_point(&root) {
        return Err(std::io::Error::other(format!(
            "{} is still mounted",
            root.display()
        )));
    }
    match std::fs::remove_dir_all(dir.path()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Builds everything in the task directory (which must not exist yet) and returns the shim
/// config, without the cgroup fields. On error the caller runs [`cleanup`].
pub(crate) fn materialize(
    run: &TaskRun,
    image: &ResolvedImage,
    dir: &TaskDir,
    node: &ImageNode<'_>,
) -> Result<ShimConfig, RuntimeError> {
    let c = &run.container;
    let ioe = |what: &str, e: std::io::Error| RuntimeError::Io {
        context: format!("{what} for task {}", run.task_id),
        source: e,
    };
    // Everything that needs no filesystem first, so a bad spec leaves nothing behind.
    let args = argv(&c.command, &c.args, &image.config);
    if args.is_empty() || args[0].is_empty() {
        return Err(invalid("command", "no command specified"));
    }
    let stop = if c.stop_signal.is_empty() {
        &image.config.stop_signal
    } else {
        &c.stop_signal
    };
    let stop_signal =
        shoal_runtime::parse_stop_signal(stop).map_err(|why| invalid("stop_signal", why))?;
    let caps = oci::capabilities(&c.cap_add, &c.cap_drop, oci::known_caps())
        .map_err(|why| invalid("cap_add", why))?;
    let rlimits = oci::rlimits(&c.ulimits).map_err(|why| invalid("ulimits", why))?;
    oci::check_sysctls(&c.sysctls).map_err(|why| invalid("sysctls", why))?;
    let cwd = [c.dir.as_str(), image.config.working_dir.as_str()]
        .into_iter()
        .find(|d| !d.is_empty())
        .unwrap_or("/")
        .to_string();
    if !cwd.starts_with('/') {
        return Err(invalid(
            "dir",
            format!("the working directory '{cwd}' is invalid, it needs to be an absolute path"),
        ));
    }
    let mut targets: Vec<&str> = c
        .mounts
        .iter()
        .map(|m| m.target.trim_end_matches('/'))
        .collect();
    targets.sort_unstable();
    if let Some(w) = targets.windows(2).find(|w| w[0] == w[1]) {
        return Err(invalid(
            "mounts",
            format!("Duplicate mount point: {}", w[0]),
        ));
    }
    for m in &c.mounts {
        if !m.target.starts_with('/') || m.target == "/" {
            return Err(invalid(
                "mounts",
                format!(
                    "invalid mount target {:?}: must be an absolute path other than /",
                    m.target
                ),
            ));
        }
        match m.kind {
            MountKind::Volume if !m.source.is_empty() && !volumes::valid_name(&m.source) => {
                return Err(invalid(
                    "mounts",
                    format!(
                        "invalid volume name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                        m.source
                    ),
                ));
            }
            MountKind::Bind if !Path::new(&m.source).is_absolute() => {
                return Err(invalid(
                    "mounts",
                    format!(
                        "invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute",
                        m.source
                    ),
                ));
            }
            MountKind::Bind if !Path::new(&m.source).exists() => {
                return Err(invalid(
                    "mounts",
                    format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {}",
                        m.source
                    ),
                ));
            }
            _ => {}
        }
    }
    let hostname = if run.hostname.is_empty() {
        run.task_id.short().to_string()
    } else {
        run.hostname.clone()
    };
    if c.init == Some(true) {
        // No init binary is shipped into containers yet; the command is PID 1 itself.
        tracing::warn!(task.id = %run.task_id, "native: --init is not supported yet; running without it");
    }

    // The root filesystem.
    let root = dir.file(layout::ROOTFS);
    std::fs::create_dir_all(&root).map_err(|e| ioe("creating the rootfs", e))?;
    let mounted = node.overlay
        && {
            let (upper, work) = (dir.file("upper"), dir.file("work"));
            std::fs::create_dir_all(&upper)
            .and_then(|()| std::fs::create_dir_all(&work))
            .and_then(|()| rootfs::mount_overlay(&image.layers, &upper, &work, &root))
            .inspect_err(|e| {
                tracing::warn!(task.id = %run.task_id, error = %shoal_types::error::Chain(e), "native: overlay mount failed; copying the image");
            })
            .is_ok()
        };
    if !mounted {
        rootfs::copy_layers(&image.layers, &root).map_err(|e| ioe("copying the image", e))?;
    }

    // Who it runs as, from the image's own passwd and group files.
    let user_spec = if c.user.is_empty() {
        &image.config.user
    } else {
        &c.user
    };
    let read = |p: &str| std::fs::read_to_string(rootfs::secure_join(&root, p)).unwrap_or_default();
    let creds: Creds = user::resolve(
        user_spec,
        &c.groups,
        &read("/etc/passwd"),
        &read("/etc/group"),
    )
    .map_err(|why| invalid("user", why))?;
    std::fs::create_dir_all(rootfs::secure_join(&root, &cwd))
        .map_err(|e| ioe("creating the working directory", e))?;

    // The task's own /etc files. With the node's network, the node's hosts and resolver apply;
    // with networks of its own, its address and the cluster's DNS server, as Docker writes them;
    // the spec's DNS settings and extra hosts over either (see `etc_files`).
    let etc = dir.file("etc");
    std::fs::create_dir_all(&etc).map_err(|e| ioe("creating etc", e))?;
    let node_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let own = run
        .networks
        .first()
        .filter(|_| run.netns.is_some())
        .map(|a| std::net::IpAddr::from(a.addr.addr()));
    // A standalone container on local networks has a namespace of its own behind the embedded
    // DNS server too, though its address (made by the network layer) is not known here.
    let networked = run.netns.is_some() && run.has_own_network();
    let node_hosts = match networked {
        true => None,
        false => std::fs::read_to_string("/etc/hosts").ok(),
    };
    let hosts = etc_files::hosts(node_hosts.as_deref(), &c.hosts, &hostname, own);
    let resolv = etc_files::resolv_conf(&node_resolv, c.dns_config.as_ref(), networked);
    std::fs::write(etc.join("hostname"), format!("{hostname}\n"))
        .and_then(|()| std::fs::write(etc.join("hosts"), hosts))
        .and_then(|()| std::fs::write(etc.join("resolv.conf"), resolv))
        .map_err(|e| ioe("writing /etc files", e))?;

    // Mounts: the spec's, then an anonymous volume for each of the image's VOLUMEs not covered.
    let mut extra = Vec::new();
    let mut named = Vec::new();
    let mut anon_n = 0;
    let mut anon = |fill: Option<PathBuf>| -> Result<PathBuf, RuntimeError> {
        anon_n += 1;
        let d = dir.file("anon").join(anon_n.to_string());
        std::fs::create_dir_all(&d).map_err(|e| ioe("creating an anonymous volume", e))?;
        if let Some(src) = fill.filter(|s| s.is_dir()) {
            rootfs::copy_tree(&src, &d).map_err(|e| ioe("filling an anonymous volume", e))?;
        }
        Ok(d)
    };
    for m in &c.mounts {
        let fill = (!m.volume_nocopy).then(|| rootfs::secure_join(&root, &m.target));
        match m.kind {
            MountKind::Volume => {
                let source = if m.source.is_empty() {
                    anon(fill)?
                } else {
                    named.push(m.source.clone());
                    volumes::ensure(
                        node.volumes_root,
                        &m.source,
                        &m.volume_labels,
                        node.now,
                        fill.as_deref(),
                    )
                    .map_err(|e| ioe(&format!("creating volume {}", m.source), e))?
                };
                extra.push(ExtraMount::Bind {
                    source,
                    target: m.target.clone(),
                    read_only: m.read_only,
                });
            }
            MountKind::Bind => extra.push(ExtraMount::Bind {
                source: PathBuf::from(&m.source),
                target: m.target.clone(),
                read_only: m.read_only,
            }),
            MountKind::Tmpfs => extra.push(ExtraMount::Tmpfs {
                target: m.target.clone(),
                size: m.tmpfs_size,
                mode: m.tmpfs_mode,
                read_only: m.read_only,
            }),
        }
    }
    // Secrets and configs: from a tmpfs of the task's own, each file bound read-only.
    if !run.files.is_empty() {
        let bound = shoal_runtime::files::materialize(&files_dir(dir), &run.files)
            .map_err(|e| ioe("writing the task's secret and config files", e))?;
        extra.extend(bound.into_iter().map(|b| ExtraMount::Bind {
            source: b.source,
            target: b.target,
            read_only: true,
        }));
    }
    let norm = |p: &str| p.trim_end_matches('/').to_string();
    for v in &image.config.volumes {
        if c.mounts.iter().any(|m| norm(&m.target) == norm(v)) || !v.starts_with('/') {
            continue;
        }
        let source = anon(Some(rootfs::secure_join(&root, v)))?;
        extra.push(ExtraMount::Bind {
            source,
            target: v.clone(),
            read_only: false,
        });
    }

    let env = prepare::environment(
        &image
            .config
            .env
            .iter()
            .chain(&c.env)
            .cloned()
            .collect::<Vec<_>>(),
        &hostname,
    );
    let process = Process {
        args: args.clone(),
        env: env.clone(),
        cwd: cwd.clone(),
        uid: creds.uid,
        gid: creds.gid,
        groups: creds.groups.clone(),
        caps,
        rlimits,
    };
    let health = health_spec(c.healthcheck.as_ref(), image.config.healthcheck.as_ref());
    if let Some(h) = &health {
        let p = Process {
            args: h.argv.clone(),
            ..process.clone()
        };
        layout::write_json_atomic(&dir.file(layout::HEALTH_PROCESS), &p.to_oci())
            .map_err(|e| ioe("writing the health check process", e))?;
    }
    let bundle = Bundle {
        process,
        hostname: hostname.clone(),
        rootfs: root,
        read_only: c.read_only,
        etc_dir: etc,
        cgroups_path: node.cgroups_path.clone(),
        sysctls: c.sysctls.clone(),
        mounts: extra,
        netns: run.netns.clone(),
        terminal: c.tty,
    };
    let bundle_dir = dir.file(layout::BUNDLE);
    layout::write_json_atomic(&bundle_dir.join("config.json"), &bundle.to_oci())
        .map_err(|e| ioe("writing the OCI bundle", e))?;
    named.sort();
    named.dedup();
    Ok(ShimConfig {
        task_id: run.task_id.to_string(),
        argv: args,
        env,
        dir: PathBuf::from(cwd),
        creds: Some(creds),
        hostname,
        namespaces: Namespaces::ALL,
        cgroup_procs: Vec::new(),
        oom: None,
        stop_signal,
        log_max_bytes: DEFAULT_MAX_BYTES,
        oci: Some(OciRun {
            runtime: node.runtime.to_path_buf(),
            state_root: dir.file("runtime"),
            bundle: bundle_dir,
            container_id: run.task_id.to_string(),
        }),
        health,
        volumes: named,
        image_id: image.id.clone(),
        netns: run.netns.clone(),
        limits: run.resources.limits,
        files: run.files.iter().map(|f| f.path.clone()).collect(),
        tty: c.tty,
        open_stdin: c.open_stdin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn argv_like_docker() {
        let img = ImageConfig {
            entrypoint: s(&["/entry"]),
            cmd: s(&["default"]),
            ..Default::default()
        };
        assert_eq!(argv(&[], &[], &img), s(&["/entry", "default"]));
        assert_eq!(argv(&[], &s(&["x"]), &img), s(&["/entry", "x"]));
        assert_eq!(argv(&s(&["sh"]), &[], &img), s(&["sh"]));
        assert_eq!(
            argv(&s(&["sh"]), &s(&["-c", "y"]), &img),
            s(&["sh", "-c", "y"])
        );
        let plain = ImageConfig {
            cmd: s(&["/bin/sh"]),
            ..Default::default()
        };
        assert_eq!(argv(&[], &[], &plain), s(&["/bin/sh"]));
    }

    #[test]
    fn health_spec_merges_and_disables() {
        let image = HealthConfig {
            test: s(&["CMD-SHELL", "probe"]),
            retries: Some(5),
            ..Default::default()
        };
        let h = health_spec(None, Some(&image)).expect("image's check");
        assert_eq!(h.argv, s(&["/bin/sh", "-c", "probe"]));
        assert_eq!(h.retries, 5);
        let none = HealthConfig {
            test: s(&["NONE"]),
            ..Default::default()
        };
        assert_eq!(health_spec(Some(&none), Some(&image)), None);
        assert_eq!(health_spec(None, None), None);
        let interval = HealthConfig {
            interval: Some(std::time::Duration::from_secs(1)),
            ..Default::default()
        };
        let h = health_spec(Some(&interval), Some(&image)).expect("merged");
        assert_eq!(h.interval, std::time::Duration::from_secs(1));
        assert_eq!(h.retries, 5);
    }
}
