//! `shoal up`, the README's first command: a one-node swarm with a demo service you can curl,
//! stopped cleanly by Ctrl-C.

mod common;

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SHOAL, free_port, wait_for};
use shoal_testkit::{Need, need};

/// The data dir and cgroup of a `shoal up`: whatever is left of them goes when the test ends,
/// passed or failed (`shoal up` itself too, which names the dir on its command line).
struct Cleanup {
    dir: tempfile::TempDir,
    cgroup: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        shoal_testkit::reap(self.dir.path(), &self.cgroup);
    }
}

fn get(port: u16) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /hello HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// A `shoal up` on its own data dir, cgroup and ports, its output collected as it comes.
struct Up {
    cleanup: Cleanup,
    port: u16,
    child: std::process::Child,
    stdout: Arc<Mutex<String>>,
}

impl Up {
    fn start() -> Up {
        let port = free_port();
        let cleanup = Cleanup {
            dir: tempfile::Builder::new()
                .prefix("shoal-up-")
                .tempdir()
                .expect("tempdir"),
            cgroup: shoal_testkit::scoped_name("up", &port.to_string()),
        };
        let sock = format!("unix://{}/shoal.sock", cleanup.dir.path().display());
        let mut child = Command::new(SHOAL)
            .args([
                "-H",
                &sock,
                "up",
                "--port",
                &port.to_string(),
                "--cgroup-parent",
                &cleanup.cgroup,
                "--listen-addr",
                &format!("127.0.0.1:{}", free_port()),
                "--data-dir",
            ])
            .arg(cleanup.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("shoal up");
        let stdout = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            let collected = stdout.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    let mut s = collected.lock().unwrap_or_else(|p| p.into_inner());
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        Up {
            cleanup,
            port,
            child,
            stdout,
        }
    }

    fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn wait_printed(&self, line: &str) {
        wait_for(
            &format!("shoal up to print {line:?}"),
            Duration::from_secs(60),
            || {
                let out = self.stdout();
                if out.contains(line) { Ok(()) } else { Err(out) }
            },
        );
    }

    /// Ctrl-C, then its exit status and everything it printed.
    fn interrupt(&mut self) -> (std::process::ExitStatus, String) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("ctrl-c");
        let status = wait_for("shoal up to exit", Duration::from_secs(60), || {
            match self.child.try_wait() {
                Ok(Some(s)) => Ok(s),
                other => Err(format!("{other:?}")),
            }
        });
        // The reader ends with the pipe, once the exit has closed it.
        wait_for("shoal up's output to end", Duration::from_secs(10), || {
            let out = self.stdout();
            if out.contains("Stopped.") {
                Ok(())
            } else {
                Err(out)
            }
        });
        (status, self.stdout())
    }

    /// The demo's processes: whatever runs `shoal demo-http` on this run's port.
    fn demo_processes(&self) -> Vec<String> {
        let want = format!("demo-http\0--port\0{}\0", self.port);
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .filter(|c| c.contains(&want))
            .collect()
    }
}

#[test]
fn shoal_up_serves_a_demo_and_stops_on_ctrl_c() {
    if !need(&[Need::Root]) {
        return;
    }
    let mut up = Up::start();
    let port = up.port;

    // Both replicas answer on the one port.
    let mut hosts = std::collections::BTreeSet::new();
    wait_for(
        "answers from both demo replicas",
        Duration::from_secs(60),
        || {
            let body = get(port)?;
            if !body.starts_with("HTTP/1.1 200 OK")
                || !body.contains("Hello from shoal! This is task ")
            {
                return Err(body);
            }
            if let Some(task) = body
                .split("This is task ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                hosts.insert(task.to_string());
            }
            if hosts.len() >= 2 {
                Ok(())
            } else {
                Err(format!("only {hosts:?} so far"))
            }
        },
    );
    // The replicas may answer before `shoal up` has seen them run and said so.
    up.wait_printed("Press Ctrl-C to stop shoal");

    let (status, stdout) = up.interrupt();
    assert!(status.success(), "exit {status:?}\n{stdout}");
    for line in [
        "Swarm initialized: current node",
        "overall progress: 2 out of 2 tasks",
        "curl http://localhost:",
        "Stopped.",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // The demo's processes went with it.
    assert!(get(port).is_err(), "the demo still answers after Ctrl-C");
    assert_eq!(up.demo_processes(), Vec::<String>::new());
    drop(up.cleanup);
}

/// Ctrl-C before the demo has converged stops shoal and its tasks just the same, rather than
/// killing `shoal up` and leaving the demo running.
#[test]
fn ctrl_c_while_the_demo_comes_up_stops_it_cleanly() {
    if !need(&[Need::Root]) {
        return;
    }
    let mut up = Up::start();
    // Watched closely: the replicas may run a fraction of a second after they are created.
    // Up to a minute, in steps of a millisecond or more.
    for _ in 0..60_000 {
        if up.stdout().contains("Created service \"demo\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        up.stdout().contains("Created service \"demo\""),
        "no demo created:\n{}",
        up.stdout()
    );
    let (status, stdout) = up.interrupt();
    assert!(status.success(), "exit {status:?}\n{stdout}");
    assert!(
        !stdout.contains("Press Ctrl-C"),
        "the demo came up before the interrupt, so this proves nothing:\n{stdout}"
    );
    assert!(stdout.contains("Stopping shoal...\nStopped."), "{stdout}");
    assert!(get(up.port).is_err(), "the demo still answers after Ctrl-C");
    assert_eq!(up.demo_processes(), Vec::<String>::new());
    drop(up.cleanup);
}
