//! Turning a [`TaskRun`] into the shim's [`ShimConfig`]: the image check, the argv, the
//! environment Docker would give, the user, the working directory and the stop signal. Errors
//! here reject the task and name the field. Pure except for reading the node's passwd/group files
//! and checking that the working directory exists (the `host` image is the node's filesystem).

use std::path::PathBuf;

use super::layout::{Creds, Namespaces, ShimConfig};
use super::logs::DEFAULT_MAX_BYTES;
use super::user;
use shoal_runtime::{RuntimeError, TaskRun, is_host_image};

/// The PATH Docker sets when the image (here: the spec) gives none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The task's environment: the spec's `KEY=VALUE` entries in order (an entry without `=`
/// unsets, as in the Engine API), then PATH and HOSTNAME when the spec did not set them.
pub(crate) fn environment(spec_env: &[String], hostname: &str) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    for e in spec_env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        env.retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
        if e.contains('=') {
            env.push(e.clone());
        }
    }
    let has = |env: &[String], k: &str| {
        env.iter()
            .any(|e| e.split_once('=').is_some_and(|(key, _)| key == k))
    };
    if !has(&env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={hostname}"));
    }
    env
}

fn invalid(field: &'static str, why: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec {
        field,
        why: why.into(),
    }
}

/// What the driver decided about the node, needed to build a config.
pub(crate) struct NodeFacts {
    pub namespaces: Namespaces,
    pub is_root: bool,
    /// The daemon's own user and group (what a task runs as when the daemon is not root).
    pub uid: u32,
    pub gid: u32,
}

/// Checks the spec and builds the shim's config (cgroup fields left empty for the caller).
pub(crate) fn shim_config(run: &TaskRun, node: &NodeFacts) -> Result<ShimConfig, RuntimeError> {
    let c = &run.container;
    if !is_host_image(&c.image) {
        return Err(RuntimeError::ImageNotFound(c.image.clone()));
    }
    let argv = c.argv();
    if argv.is_empty() || argv[0].is_empty() {
        return Err(invalid(
            "command",
            "no command given, and the host image has no default command",
        ));
    }
    let stop_signal = shoal_runtime::parse_stop_signal(&c.stop_signal)
        .map_err(|why| invalid("stop_signal", why))?;
    // Its /etc files are the node's: the manager refuses these settings, and so does the node.
    if c.dns_config.as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(invalid(
            "dns_config",
            "tasks of the host image use the node's own /etc/resolv.conf",
        ));
    }
    if !c.hosts.is_empty() {
        return Err(invalid(
            "hosts",
            "tasks of the host image use the node's own /etc/hosts",
        ));
    }

    let creds: Option<Creds> = if node.is_root {
        Some(user::resolve_host(&c.user, &c.groups).map_err(|why| invalid("user", why))?)
    } else if c.user.is_empty() && c.groups.is_empty() {
        None
    } else {
        // Without root the task can only be who the daemon is.
        let want = user::resolve_host(&c.user, &c.groups).map_err(|why| invalid("user", why))?;
        if (want.uid, want.gid) != (node.uid, node.gid) || !c.groups.is_empty() {
            return Err(invalid(
                "user",
                format!(
                    "cannot run as {:?}: the daemon is not running as root",
                    c.user
                ),
            ));
        }
        None
    };

    let dir = if c.dir.is_empty() {
        PathBuf::from("/")
    } else {
        PathBuf::from(&c.dir)
    };
    if !dir.is_absolute() {
        return Err(invalid(
            "dir",
            format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                c.dir
            ),
        ));
    }
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(invalid(
                "dir",
                format!("{}: not a directory", dir.display()),
            ));
        }
        Err(_) => {
            return Err(invalid(
                "dir",
                format!("{}: no such file or directory", dir.display()),
            ));
        }
    }

    let hostname = if run.hostname.is_empty() {
        run.task_id.short().to_string()
    } else {
        run.hostname.clone()
    };
    Ok(ShimConfig {
        task_id: run.task_id.to_string(),
        argv,
        env: environment(&c.env, &hostname),
        dir,
        creds,
        hostname,
        namespaces: node.namespaces,
        cgroup_procs: Vec::new(),
        oom: None,
        stop_signal,
        log_max_bytes: DEFAULT_MAX_BYTES,
        oci: None,
        health: super::image_task::health_spec(c.healthcheck.as_ref(), None),
        volumes: Vec::new(),
        image_id: String::new(),
        netns: run.netns.clone(),
        limits: run.resources.limits,
        files: Vec::new(),
        tty: c.tty,
        open_stdin: c.open_stdin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::Id;
    use shoal_types::service::{ContainerSpec, ResourceRequirements};

    fn run(c: ContainerSpec) -> TaskRun {
        TaskRun {
            task_id: Id::from_raw("abcdefghijklmnopqrstuvwxy"),
            task_name: "web.1.abc".into(),
            service_id: Id::from_raw("svc"),
            service_name: "web".into(),
            node_id: Id::from_raw("node"),
            slot: 1,
            container: c,
            resources: ResourceRequirements::default(),
            hostname: "web-1".into(),
            networks: Vec::new(),
            netns: None,
            files: Vec::new(),
            local_networks: Vec::new(),
            publish: Vec::new(),
        }
    }

    fn spec(cmd: &[&str]) -> ContainerSpec {
        ContainerSpec {
            image: "host".into(),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    const NODE: NodeFacts = NodeFacts {
        uid: 0,
        gid: 0,
        namespaces: Namespaces::ALL,
        is_root: true,
    };

    #[test]
    fn environment_is_the_specs_plus_docker_defaults() {
        let env = environment(&["A=1".into(), "B=2".into()], "h1");
        assert_eq!(
            env,
            vec![
                "A=1".to_string(),
                "B=2".into(),
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=h1".into()
            ]
        );
        let env = environment(
            &[
                "PATH=/x".into(),
                "HOSTNAME=mine".into(),
                "A=1".into(),
                "A".into(),
            ],
            "h1",
        );
        assert_eq!(env, vec!["PATH=/x".to_string(), "HOSTNAME=mine".into()]);
        let env = environment(&["A=1".into(), "A=2".into()], "h");
        assert_eq!(env[0], "A=2");
    }

    #[test]
    fn rejects_what_cannot_run_naming_the_field() {
        let mut bad = spec(&["true"]);
        bad.image = "busybox:latest".into();
        assert!(
            matches!(shim_config(&run(bad), &NODE), Err(RuntimeError::ImageNotFound(i)) if i == "busybox:latest")
        );
        assert!(matches!(
            shim_config(&run(spec(&[])), &NODE),
            Err(RuntimeError::InvalidSpec {
                field: "command",
                ..
            })
        ));
        let mut s = spec(&["true"]);
        s.stop_signal = "SIGWHAT".into();
        assert!(matches!(
            shim_config(&run(s), &NODE),
            Err(RuntimeError::InvalidSpec {
                field: "stop_signal",
                ..
            })
        ));
        let mut s = spec(&["true"]);
        s.user = "no-such-user-xyz".into();
        match shim_config(&run(s), &NODE) {
            Err(RuntimeError::InvalidSpec { field: "user", why }) => {
                assert!(why.contains("no-such-user-xyz"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let mut s = spec(&["true"]);
        s.dir = "/no/such/dir".into();
        match shim_config(&run(s), &NODE) {
            Err(RuntimeError::InvalidSpec { field: "dir", why }) => {
                assert!(why.contains("/no/such/dir"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        let mut s = spec(&["true"]);
        s.hosts = vec!["192.0.2.7 db".into()];
        assert!(matches!(
            shim_config(&run(s), &NODE),
            Err(RuntimeError::InvalidSpec { field: "hosts", .. })
        ));
        let mut s = spec(&["true"]);
        s.dns_config = Some(shoal_types::dns::DnsConfig {
            search: vec!["example.org".into()],
            ..Default::default()
        });
        assert!(matches!(
            shim_config(&run(s), &NODE),
            Err(RuntimeError::InvalidSpec {
                field: "dns_config",
                ..
            })
        ));
        let mut s = spec(&["true"]);
        s.dir = "relative".into();
        assert!(matches!(
            shim_config(&run(s), &NODE),
            Err(RuntimeError::InvalidSpec { field: "dir", .. })
        ));
        let mut s = spec(&["true"]);
        s.user = "root".into();
        let not_root = NodeFacts {
            namespaces: Namespaces::default(),
            is_root: false,
            uid: 1000,
            gid: 1000,
        };
        assert!(matches!(
            shim_config(&run(s), &not_root),
            Err(RuntimeError::InvalidSpec { field: "user", .. })
        ));
        // Asking to be who the daemon already is needs no privilege.
        let mut s = spec(&["true"]);
        s.user = "1000:1000".into();
        let cfg = shim_config(&run(s), &not_root).expect("same user");
        assert_eq!(cfg.creds, None);
    }

    #[test]
    fn builds_a_config() {
        let mut s = spec(&["sh", "-c"]);
        s.args = vec!["echo hi".into()];
        s.stop_signal = "INT".into();
        let cfg = shim_config(&run(s), &NODE).expect("valid");
        assert_eq!(cfg.argv, vec!["sh", "-c", "echo hi"]);
        assert_eq!(cfg.stop_signal, nix::sys::signal::Signal::SIGINT as i32);
        assert_eq!(cfg.dir, PathBuf::from("/"));
        assert_eq!(cfg.hostname, "web-1");
        assert_eq!(cfg.creds.as_ref().map(|c| (c.uid, c.gid)), Some((0, 0)));
        assert!(cfg.env.contains(&"HOSTNAME=web-1".to_string()));
    }

    /// `shoal-runtime` spells out Linux's signal numbers so the contract needs no libc; they
    /// must be the ones this runtime signals with.
    #[test]
    fn stop_signal_numbers_are_the_c_librarys() {
        use nix::sys::signal::Signal;
        for sig in Signal::iterator() {
            assert_eq!(
                shoal_runtime::parse_stop_signal(sig.as_str()),
                Ok(sig as i32),
                "{sig}"
            );
        }
        for n in -1..=70 {
            assert_eq!(
                shoal_runtime::parse_stop_signal(&n.to_string()).is_ok(),
                Signal::try_from(n).is_ok(),
                "signal number {n}"
            );
        }
    }
}
