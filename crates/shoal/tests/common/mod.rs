//! Test harness: real `shoal` daemons on temporary data dirs, the real `docker` CLI and Python SDK
//! as clients, a tiny HTTP client for raw API calls, and polling with deadlines.
#![allow(dead_code)]
// The harness waits on real processes, in wall-clock time; no logic under test reads it.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// The columns of `node ls`, docker's.
pub const NODE_LS_COLUMNS: [&str; 6] = [
    "ID",
    "HOSTNAME",
    "STATUS",
    "AVAILABILITY",
    "MANAGER STATUS",
    "ENGINE VERSION",
];

/// A shell command that builds a 200 MB string: over a task's memory limit, it is OOM-killed.
pub const EAT_200MB: &str = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived";

/// Polls `f` until it returns Ok or `limit` passes; on timeout panics with the last observation.
pub fn wait_for<T>(what: &str, limit: Duration, f: impl FnMut() -> Result<T, String>) -> T {
    poll(what, limit, String::new, f)
}

/// Polls `f` every 100 ms until it returns Ok or `limit` passes; on timeout panics with the
/// last observation and `dump()`.
pub fn poll<T>(
    what: &str,
    limit: Duration,
    dump: impl Fn() -> String,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if Instant::now() > deadline {
                    panic!(
                        "timed out after {limit:?} waiting for {what}; last seen:\n{last}\n\n{}",
                        dump()
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub log: PathBuf,
    /// This daemon's own cgroup parent, removed when the test ends so no test leaks cgroups.
    pub cgroup_parent: String,
    /// Extra `-H` endpoints to listen on besides the unix socket.
    pub extra_hosts: Vec<String>,
    /// This daemon's cluster (node-to-node) address, unique per test daemon.
    pub cluster_addr: String,
    /// Extra `shoal daemon` flags, given on every (re)start.
    pub extra_flags: Vec<String>,
    /// The network namespace (a test host's) the daemon runs in; `None`: the machine's.
    pub netns: Option<PathBuf>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(Vec::new())
    }

    pub fn start_with(extra_hosts: Vec<String>) -> Daemon {
        Daemon::start_with_flags(extra_hosts, Vec::new())
    }

    /// A daemon listening on `extra_hosts` too, started with `extra_flags`.
    pub fn start_with_flags(extra_hosts: Vec<String>, extra_flags: Vec<String>) -> Daemon {
        let (dir, log, cgroup_parent) = daemon_dir("it");
        let mut d = Daemon {
            dir,
            child: None,
            log,
            cgroup_parent,
            extra_hosts,
            cluster_addr: format!("127.0.0.1:{}", free_port()),
            extra_flags,
            netns: None,
        };
        d.spawn();
        d
    }

    /// A daemon in the network namespace at `netns` (a test host's), so that what it makes
    /// there (local bridges, published ports, nftables) goes with the namespace.
    pub fn start_in(netns: PathBuf, extra_flags: Vec<String>) -> Daemon {
        let (dir, log, cgroup_parent) = daemon_dir("it");
        let mut d = Daemon {
            dir,
            child: None,
            log,
            cgroup_parent,
            extra_hosts: Vec::new(),
            cluster_addr: format!("127.0.0.1:{}", free_port()),
            extra_flags,
            netns: Some(netns),
        };
        d.spawn();
        d
    }

    /// `swarm init` flags that keep this daemon's cluster port its own.
    pub fn init_flags(&self) -> [String; 4] {
        [
            "--listen-addr".into(),
            self.cluster_addr.clone(),
            "--advertise-addr".into(),
            self.cluster_addr.clone(),
        ]
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

    /// Starts (or restarts) the daemon process on this data dir and waits for its API.
    pub fn spawn(&mut self) {
        let child = daemon_command_in(
            self.netns.as_deref(),
            self.dir.path(),
            &self.host(),
            &self.cgroup_parent,
            &self.log,
        )
        .args(self.extra_hosts.iter().flat_map(|h| ["-H", h.as_str()]))
        .args(&self.extra_flags)
        // The Kubernetes API only where a test asks for it: concurrent daemons would race for
        // its default port.
        .args(
            (!self.extra_flags.iter().any(|f| f == "--kube-addr"))
                .then_some(["--kube-addr", "none"])
                .into_iter()
                .flatten(),
        )
        .spawn()
        .expect("start shoal daemon");
        self.child = Some(child);
        let sock = self.socket();
        wait_for("the daemon's API", Duration::from_secs(20), || {
            match http(&sock, "GET", "/_ping", None) {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}\n{}", self.log_tail())),
            }
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("daemon running")
    }

    /// `kill -9` the daemon, as a crash: its tasks' shims live on.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: the daemon stops its tasks.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            wait_or_kill(&mut c, Duration::from_secs(60));
        }
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log, 30)
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        let cfg = self.dir.path().join("docker-config");
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", cfg)
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("run docker")
    }

    /// Runs docker and requires success; returns stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}\n{}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `swarm init` with [`Daemon::init_flags`] through `cli` (docker's or shoal's).
    fn with_init_args<T>(&self, cli: impl FnOnce(&[&str]) -> T) -> T {
        let flags = self.init_flags();
        let mut args = vec!["swarm", "init"];
        args.extend(flags.iter().map(String::as_str));
        cli(&args)
    }

    /// `shoal swarm init` on this daemon's own cluster port.
    pub fn shoal_swarm_init(&self) -> Output {
        self.with_init_args(|args| self.shoal(args))
    }

    /// `docker swarm init` on this daemon's own cluster port; returns this node's ID.
    pub fn swarm_init(&self) -> String {
        let out = self.with_init_args(|args| self.docker_ok(args));
        assert!(out.contains("Swarm initialized: current node"), "{out}");
        self.docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"])
            .trim()
            .to_string()
    }

    /// `docker service create --detach` with `words` split at white space, as a shell would
    /// split them; requires success and returns the service ID.
    pub fn service_create(&self, words: &str) -> String {
        self.service_create_with(words, &[])
    }

    /// [`Daemon::service_create`] with arguments after `words` given as they are (see
    /// [`create_args`]).
    pub fn service_create_with(&self, words: &str, rest: &[&str]) -> String {
        self.docker_ok(&create_args(words, rest))
    }

    /// `docker service ps --no-trunc`: a service's tasks, history included.
    pub fn ps(&self, service: &str) -> String {
        self.docker_ok(&["service", "ps", "--no-trunc", service])
    }

    /// Polls `docker service ps` of `service` until `done` holds for it; returns that listing.
    pub fn wait_ps(
        &self,
        what: &str,
        limit: Duration,
        service: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        wait_for(what, limit, || {
            let ps = self.ps(service);
            if done(&ps) { Ok(ps) } else { Err(ps) }
        })
    }

    /// Polls the running tasks of `service` (as [`Daemon::running_tasks`]) until `done` holds
    /// for them; returns them.
    pub fn wait_tasks(
        &self,
        what: &str,
        limit: Duration,
        service: &str,
        done: impl Fn(&[(u64, String, i64)]) -> bool,
    ) -> Vec<(u64, String, i64)> {
        wait_for(what, limit, || {
            let tasks = self.running_tasks(service);
            if done(&tasks) {
                Ok(tasks)
            } else {
                Err(format!("{tasks:?}\n{}", self.ps(service)))
            }
        })
    }

    /// `docker service inspect --format FORMAT`, trimmed.
    pub fn inspect(&self, service: &str, format: &str) -> String {
        self.docker_ok(&["service", "inspect", "--format", format, service])
            .trim()
            .to_string()
    }

    /// `docker service inspect`'s `.UpdateStatus.State`, polled until it is `want`.
    pub fn wait_update_state(&self, service: &str, want: &str, limit: Duration) {
        wait_for(&format!("{service}'s update {want}"), limit, || {
            let state = self.inspect(service, "{{.UpdateStatus.State}}");
            if state == want {
                Ok(())
            } else {
                Err(format!("{state}\n{}", self.ps(service)))
            }
        });
    }

    pub fn shoal(&self, args: &[&str]) -> Output {
        Command::new(SHOAL)
            .arg("-H")
            .arg(self.host())
            .args(args)
            .output()
            .expect("run shoal")
    }

    pub fn api(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, serde_json::Value) {
        let (status, bytes) = http(&self.socket(), method, path, body).expect("api call");
        let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
        (status, v)
    }

    /// (task ID, state, error) of every task of `service`, as the API lists them.
    pub fn task_states(&self, service: &str) -> Vec<(String, String, String)> {
        let filters = format!("{{\"service\":{{\"{service}\":true}}}}");
        let (_, v) = self.api(
            "GET",
            &format!("/v1.50/tasks?filters={}", urlencode(&filters)),
            None,
        );
        let field = |t: &serde_json::Value, a: &str, b: &str| {
            t[a][b].as_str().unwrap_or_default().to_string()
        };
        v.as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["ID"].as_str().unwrap_or_default().to_string(),
                    field(t, "Status", "State"),
                    field(t, "Status", "Err"),
                )
            })
            .collect()
    }

    /// The running tasks of a service as (slot, task id, pid).
    pub fn running_tasks(&self, service: &str) -> Vec<(u64, String, i64)> {
        let filters = format!("{{\"service\":{{\"{service}\":true}}}}");
        let (_, v) = self.api(
            "GET",
            &format!("/v1.50/tasks?filters={}", urlencode(&filters)),
            None,
        );
        let mut out: Vec<_> = v
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
            .map(|t| {
                (
                    t["Slot"].as_u64().unwrap_or(0),
                    t["ID"].as_str().unwrap_or_default().to_string(),
                    t["Status"]["ContainerStatus"]["PID"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        out.sort();
        out
    }

    pub fn wait_running(&self, service: &str, n: usize) -> Vec<(u64, String, i64)> {
        wait_for(
            &format!("{n} running tasks of {service}"),
            Duration::from_secs(60),
            || {
                let r = self.running_tasks(service);
                if r.len() == n {
                    Ok(r)
                } else {
                    Err(format!(
                        "{r:?}\n{}",
                        String::from_utf8_lossy(&self.docker(&["service", "ps", service]).stdout)
                    ))
                }
            },
        )
    }
}

impl Drop for Daemon {
    /// Stops the daemon, then kills what it leaves on purpose: its shims are built to outlive it
    /// (and `--live-restore` keeps its tasks and containers), which a test must not.
    fn drop(&mut self) {
        self.stop();
        shoal_testkit::reap(self.dir.path(), &self.cgroup_parent);
    }
}

/// The arguments of `docker service create --detach`: `words` split at white space (flags and
/// values without spaces, the image, a plain command), then `rest` as given (values with spaces
/// or computed ones, and what must follow them).
pub fn create_args<'a>(words: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["service", "create", "--detach"];
    args.extend(words.split_whitespace());
    args.extend_from_slice(rest);
    args
}

/// Runs a Python script (the docker SDK tests' client) and requires success; returns stdout.
pub fn python(script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `kill -9` of a task's process (by the PID the API reports), as a crash.
pub fn kill9(pid: i64) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9 a task");
}

/// A fresh data dir for one test daemon (`shoal-TAG-…`, removed when dropped), the path of its
/// log, and a cgroup parent of its own (so that what it leaves can be found and removed).
pub fn daemon_dir(tag: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("shoal-{tag}-"))
        .tempdir()
        .expect("tempdir");
    let log = dir.path().join("daemon.log");
    let cgroup_parent = shoal_testkit::scoped_name(
        tag,
        &dir.path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    (dir, log, cgroup_parent)
}

/// `shoal daemon` on data dir `dir`, serving its API on `host`, its tasks under
/// `cgroup_parent`, its logs appended to `log`. The caller adds its own flags and spawns it.
pub fn daemon_command(dir: &Path, host: &str, cgroup_parent: &str, log: &Path) -> Command {
    daemon_command_in(None, dir, host, cgroup_parent, log)
}

/// [`daemon_command`] inside the network namespace at `netns` (a test host), entered with
/// `nsenter --net` only, so the daemon keeps the node's mounts and cgroups.
pub fn daemon_command_in(
    netns: Option<&Path>,
    dir: &Path,
    host: &str,
    cgroup_parent: &str,
    log: &Path,
) -> Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", ns.display())).arg(SHOAL);
            c
        }
        None => Command::new(SHOAL),
    };
    c.args(["daemon", "--data-dir"])
        .arg(dir)
        .args(["-H", host, "--log-level", "info"])
        .args(["--cgroup-parent", cgroup_parent])
        .stdout(Stdio::null())
        .stderr(log);
    c
}

/// Waits up to `limit` for `child` to exit, then kills it.
pub fn wait_or_kill(child: &mut Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The last `n` lines of a log file (empty when it cannot be read).
pub fn tail(log: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A TCP port on loopback that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Announces a body of `len` bytes without sending it and returns the status: a server that
/// refuses by the length alone answers at once. (Sending the body too would race the server's
/// close against unread bytes, which the kernel turns into a connection reset.)
pub fn http_announce_body(sock: &Path, path: &str, len: usize) -> std::io::Result<u16> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: shoal\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf)? {
            0 => break,
            n => raw.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&raw)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))
}

/// A minimal HTTP/1.1 client over a unix socket (Connection: close), enough for API tests.
pub fn http(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: shoal\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    // A body over the limit may be refused before it is all sent.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let len = usize::from_str_radix(String::from_utf8_lossy(&b[..pos]).trim(), 16).unwrap_or(0);
        if len == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&b[start..(start + len).min(b.len())]);
        b = &b[(start + len + 2).min(b.len())..];
    }
    out
}

/// Runs `docker ARGS` against `d` inside a real pseudo-terminal (`script`, 33 rows by 77 columns),
/// typing `input`; what the terminal showed and the exit status.
pub fn on_a_terminal(d: &Daemon, args: &str, input: &str) -> (String, i32) {
    let cmd = format!("stty rows 33 cols 77; docker -H {} {args}", d.host());
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let typer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let _ = stdin.write_all(input.as_bytes());
        let _ = stdin.flush();
        std::thread::sleep(Duration::from_secs(5));
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("docker {args} on a terminal did not end");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = typer.join();
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    (out, status.code().unwrap_or(-1))
}
