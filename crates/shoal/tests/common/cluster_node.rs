//! One node of the multi-node harness (see `cluster.rs`): a `shoal daemon` process on its own
//! data dir, cgroup parent, hostname and cluster port; the docker CLI and raw API calls aimed at
//! it; crashing it (`kill -9` of the daemon, or of everything the machine ran), freezing it, and
//! cleaning up what it leaves. Dropping a [`Node`] stops it and removes its cgroups.
#![allow(dead_code)]
// The harness waits on real processes, in wall-clock time; no logic under test reads it.
#![allow(clippy::disallowed_methods)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::poll;
use crate::common::{
    SHOAL, daemon_command_in, daemon_dir, free_port, http, tail, urlencode, wait_or_kill,
};

/// How long a docker CLI call may take before the harness gives up on it (a write without a
/// leader fails within ~8 s; nothing a test runs should take longer).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cmd` with a deadline; a command still running then is killed (its output so far is
/// returned with a failed status).
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                break child.wait().expect("wait for killed command");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for a command: {e}"),
        }
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// The text of a command's stdout and stderr, for messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The docker CLI aimed at one node's API socket, with its own config dir.
#[derive(Clone, Debug)]
pub struct DockerClient {
    host: String,
    config: PathBuf,
}

impl DockerClient {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run_with_timeout(self.command(args), CLI_TIMEOUT)
    }
}

/// One node: a daemon process on its own data dir.
pub struct Node {
    /// `node1`, `node2`...: the `--hostname` it reports, as `node ls` shows it.
    pub name: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub log: PathBuf,
    pub cgroup_parent: String,
    /// Its node-to-node (cluster) address, `127.0.0.1:PORT`, used to listen and advertise.
    pub addr: String,
    /// The test host (network namespace) it runs in; `None`: the machine's own network.
    pub netns: Option<PathBuf>,
    /// Extra `shoal daemon` flags, on every (re)start.
    pub flags: Vec<String>,
}

impl Node {
    /// Creates the node's data dir and starts its daemon (does not wait for its API).
    pub fn launch(name: &str) -> Node {
        let (dir, log, cgroup_parent) = daemon_dir("cl");
        let mut n = Node {
            name: name.to_string(),
            dir,
            child: None,
            log,
            cgroup_parent,
            addr: format!("127.0.0.1:{}", free_port()),
            netns: None,
            flags: Vec::new(),
        };
        n.launch_process();
        n
    }

    /// A node whose daemon runs in the test host `host` (its own network namespace and
    /// underlay address, cluster port 2377), with `flags`.
    pub fn launch_on(name: &str, host: &shoal_testkit::hosts::Host, flags: &[&str]) -> Node {
        let (dir, log, cgroup_parent) = daemon_dir("cl");
        let mut n = Node {
            name: name.to_string(),
            dir,
            child: None,
            log,
            cgroup_parent,
            addr: format!("{}:2377", host.addr),
            netns: Some(host.netns_path()),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        n.launch_process();
        n
    }

    fn launch_process(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let child = daemon_command_in(
            self.netns.as_deref(),
            self.dir.path(),
            &self.host(),
            &self.cgroup_parent,
            &self.log,
        )
        .args(["--hostname", &self.name])
        .args(&self.flags)
        // Plain logs: they end up in files and in failure messages.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .spawn()
        .expect("start shoal daemon");
        self.child = Some(child);
    }

    /// Waits until the daemon answers on its API socket.
    pub fn wait_api(&self) {
        let sock = self.socket();
        poll(
            &format!("{}'s API", self.name),
            Duration::from_secs(30),
            || self.log_tail(30),
            || match http(&sock, "GET", "/_ping", None) {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }

    /// Starts the daemon again on the same data dir (after a kill or stop) and waits for its API.
    pub fn restart(&mut self) {
        self.launch_process();
        self.wait_api();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("shoal.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9` of the daemon only, as a crash: its tasks' shims live on.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `kill -9` of everything the node runs, as if the machine died: the daemon, its task
    /// shims (found by their task dir under this data dir) and the task processes (found in
    /// this node's cgroups).
    pub fn kill9_machine(&mut self) {
        self.kill9();
        self.kill_leftovers();
    }

    /// Kills shims and task processes of this data dir that outlived their daemon.
    fn kill_leftovers(&self) {
        shoal_testkit::reap::kill_processes_of(
            &self.dir.path().join("native"),
            &[&self.cgroup_parent],
        );
    }

    /// Freezes the daemon (SIGSTOP), as a hung machine: its connections stay open, it says
    /// nothing. Its tasks run on.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            kill(c.id() as i32, nix::sys::signal::Signal::SIGSTOP);
        }
    }

    /// Thaws a frozen daemon (SIGCONT).
    pub fn thaw(&self) {
        if let Some(c) = &self.child {
            kill(c.id() as i32, nix::sys::signal::Signal::SIGCONT);
        }
    }

    /// SIGTERM without waiting (see [`Node::wait_exit`]).
    pub fn term(&self) {
        if let Some(c) = &self.child {
            kill(c.id() as i32, nix::sys::signal::Signal::SIGTERM);
            kill(c.id() as i32, nix::sys::signal::Signal::SIGCONT);
        }
    }

    /// Waits for the daemon to exit, killing it after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) {
        if let Some(mut c) = self.child.take() {
            wait_or_kill(&mut c, limit);
        }
    }

    /// SIGTERM and wait: the daemon stops its tasks and exits.
    pub fn stop(&mut self) {
        self.term();
        self.wait_exit(Duration::from_secs(60));
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// A docker CLI aimed at this node that another thread can own.
    pub fn client(&self) -> DockerClient {
        DockerClient {
            host: self.host(),
            config: self.dir.path().join("docker-config"),
        }
    }

    /// The docker CLI against this node.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.client().run(args)
    }

    /// Runs docker and requires success; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} on {} failed: {}\n{}\ndaemon log:\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log_tail(30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// shoal's own CLI against this node, run in `dir` (compose files resolve paths there).
    pub fn shoal_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut c = Command::new(SHOAL);
        c.arg("-H").arg(self.host()).args(args).current_dir(dir);
        run_with_timeout(c, CLI_TIMEOUT)
    }

    /// Runs shoal's CLI in `dir` and requires success; returns stdout.
    pub fn shoal_ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.shoal_in(dir, args);
        assert!(
            out.status.success(),
            "shoal {args:?} on {} failed: {}\n{}\ndaemon log:\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log_tail(30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A raw Engine API call; the body as JSON (or as a string when it is not JSON).
    pub fn api(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
        match http(&self.socket(), method, path, body) {
            Ok((status, bytes)) => (
                status,
                serde_json::from_slice(&bytes)
                    .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
            ),
            Err(e) => (0, Value::String(format!("{} unreachable: {e}", self.name))),
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, String> {
        match self.api("GET", &format!("/v1.50{path}"), None) {
            (200, v) => Ok(v),
            (s, v) => Err(format!("GET {path} on {}: {s} {v}", self.name)),
        }
    }

    /// `GET /info`'s Swarm section.
    pub fn swarm_info(&self) -> Result<Value, String> {
        self.get("/info").map(|v| v["Swarm"].clone())
    }

    /// This node's ID in the swarm (empty when not in one).
    pub fn node_id(&self) -> String {
        self.swarm_info()
            .ok()
            .and_then(|s| s["NodeID"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The node's credentials file (key, certificate, trusted roots).
    pub fn credentials_path(&self) -> PathBuf {
        self.dir
            .path()
            .join("swarm/certs")
            .join(shoal_pki::CREDENTIALS_FILE)
    }

    /// Services as this node (a manager) sees them, by name.
    pub fn services(&self) -> Result<Vec<Value>, String> {
        self.get("/services")
            .map(|v| v.as_array().cloned().unwrap_or_default())
    }

    pub fn service(&self, name: &str) -> Result<Value, String> {
        self.get(&format!("/services/{name}"))
    }

    /// Tasks of `service` that run (observed and desired), as (task ID, node ID, slot).
    pub fn running_tasks(&self, service: &str) -> Result<Vec<(String, String, u64)>, String> {
        let filters = format!("{{\"service\":{{\"{service}\":true}}}}");
        let v = self.get(&format!("/tasks?filters={}", urlencode(&filters)))?;
        let mut out: Vec<_> = v
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
            .map(|t| {
                (
                    t["ID"].as_str().unwrap_or_default().to_string(),
                    t["NodeID"].as_str().unwrap_or_default().to_string(),
                    t["Slot"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// `docker node ls` as JSON from this node's API.
    pub fn nodes(&self) -> Result<Vec<Value>, String> {
        self.get("/nodes")
            .map(|v| v.as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
        shoal_testkit::reap(self.dir.path(), &self.cgroup_parent);
        // SHOAL_KEEP_LOGS=DIR keeps every daemon's log for a post-mortem.
        if let Some(dir) = std::env::var_os("SHOAL_KEEP_LOGS") {
            let dir = PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir);
            let tag = self
                .dir
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let _ = std::fs::copy(&self.log, dir.join(format!("{tag}-{}.log", self.name)));
        }
    }
}

fn kill(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}
