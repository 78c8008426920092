//! `shoal up`, the README's first command: a one-node swarm with a demo service you can curl,
//! stopped cleanly by Ctrl-C.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
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

#[test]
fn shoal_up_serves_a_demo_and_stops_on_ctrl_c() {
    if !need(&[Need::Root]) {
        return;
    }
    let port = free_port();
    let cleanup = Cleanup {
        dir: tempfile::Builder::new()
            .prefix("shoal-up-")
            .tempdir()
            .expect("tempdir"),
        cgroup: shoal_testkit::scoped_name("up", &port.to_string()),
    };
    let (dir, cgroup) = (&cleanup.dir, &cleanup.cgroup);
    let sock = format!("unix://{}/shoal.sock", dir.path().display());
    let mut up = Command::new(SHOAL)
        .args([
            "-H",
            &sock,
            "up",
            "--port",
            &port.to_string(),
            "--cgroup-parent",
            cgroup,
            "--listen-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shoal up");

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

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(up.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("ctrl-c");
    let status = wait_for("shoal up to exit", Duration::from_secs(60), || {
        match up.try_wait() {
            Ok(Some(s)) => Ok(s),
            other => Err(format!("{other:?}")),
        }
    });
    let mut stdout = String::new();
    if let Some(mut o) = up.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
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
}
