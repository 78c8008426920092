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

/// Whether a tool the test needs is here. Missing in CI is a failure; locally the test is skipped
/// with a note, so a developer without Docker can still run the rest.
pub fn require(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("this test needs `{tool}` (probed with {probe:?}); install it in .ci/run");
        }
        eprintln!("SKIPPED: `{tool}` is not available");
    }
    ok
}

pub fn require_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        if std::env::var_os("CI").is_some() {
            panic!("this test needs root (namespaces and cgroups for the native runtime)");
        }
        eprintln!("SKIPPED: not root");
    }
    root
}

/// Polls `f` until it returns Ok or `limit` passes; on timeout panics with the last observation.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if Instant::now() > deadline {
                    panic!("timed out after {limit:?} waiting for {what}; last seen:\n{last}");
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
        let dir = tempfile::Builder::new()
            .prefix("shoal-it-")
            .tempdir()
            .expect("tempdir");
        let log = dir.path().join("daemon.log");
        let cgroup_parent = format!(
            "shoal-it-{}",
            dir.path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let mut d = Daemon {
            dir,
            child: None,
            log,
            cgroup_parent,
            extra_hosts,
            cluster_addr: format!("127.0.0.1:{}", free_port()),
            extra_flags,
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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(SHOAL)
            .args(["daemon", "--data-dir"])
            .arg(self.dir.path())
            .args([
                "-H",
                &self.host(),
                "--log-level",
                "info",
                "--cgroup-parent",
                &self.cgroup_parent,
            ])
            .args(self.extra_hosts.iter().flat_map(|h| ["-H", h.as_str()]))
            .args(&self.extra_flags)
            .stdout(Stdio::null())
            .stderr(log)
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
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }

    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
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
    fn drop(&mut self) {
        self.stop();
        remove_cgroup_tree(&self.cgroup_parent);
    }
}

/// Removes `<controller>/<name>` and the task cgroups under it, on v1 and v2 hierarchies.
pub fn remove_cgroup_tree(name: &str) {
    let roots = std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for root in roots.into_iter().chain([PathBuf::from("/sys/fs/cgroup")]) {
        let parent = root.join(name);
        if let Ok(children) = std::fs::read_dir(&parent) {
            for c in children
                .filter_map(Result::ok)
                .filter(|c| c.path().is_dir())
            {
                let _ = std::fs::remove_dir(c.path());
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
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
