//! The real `docker-compose` (Debian's 1.29) against a shoal node, on each runtime: `up -d` of
//! a project with a published port, a named volume and a network; `ps`; `logs` and
//! `logs -f`; `exec` (which compose runs through the docker CLI); `run --rm`; `stop`;
//! `down --volumes` leaving nothing behind; and `build` refused with a clear message.
//!
//! Each daemon runs in a test host's network namespace, so its bridges, published ports and
//! rules go with it.

// The tests wait on real processes, in wall-clock time; no logic under test reads it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Daemon, wait_for};
use shoal_testkit::hosts::{Host, Hosts};
use shoal_testkit::{Need, need};

const ARCHIVE: &str = "/var/tmp/shoal-images/busybox.tar";
const MINUTE: Duration = Duration::from_secs(60);

const PROJECT: &str = r#"version: "3.8"
services:
  web:
    image: shoal-test/busybox:latest
    command: ["httpd", "-f", "-p", "80", "-h", "/var/www"]
    ports: ["18099:80"]
    networks: [backend]
  app:
    image: shoal-test/busybox:latest
    command: ["sh", "-c", "echo app started; echo kept > /data/note; while :; do echo tick; sleep 1; done"]
    volumes: ["appdata:/data"]
    networks: [backend]
networks:
  backend: {}
volumes:
  appdata: {}
"#;

fn ready(runtime: &str) -> bool {
    let base = need(&[
        Need::Root,
        Need::Tool("docker"),
        Need::Tool("docker-compose"),
    ]);
    base && match runtime {
        "docker" => need(&[Need::DockerEngine, Need::TestImage]),
        _ => need(&[Need::TestArchive, Need::AnyTool(&["crun", "runc"])]),
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Project<'a> {
    d: &'a Daemon,
    dir: tempfile::TempDir,
}

impl Project<'_> {
    fn compose(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker-compose");
        c.args(["-p", "probe"])
            .args(args)
            .current_dir(self.dir.path())
            .env("DOCKER_HOST", self.d.host())
            .env("DOCKER_CONFIG", self.d.data_dir().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env("COMPOSE_HTTP_TIMEOUT", "120")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.compose(args).output().expect("docker-compose")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let (o, e) = text(&out);
        assert!(
            out.status.success(),
            "docker-compose {args:?} failed:\n{o}\n{e}\ndaemon log:\n{}",
            self.d.log_tail()
        );
        o
    }
}

fn fetch(host: &Host, url: &str) -> Result<String, String> {
    // busybox's own `-T` crashes this static build; `timeout` bounds it instead.
    let out = host
        .command("timeout")
        .args(["5", "busybox", "wget", "-q", "-O", "-", url])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn compose_flow(runtime: &str) {
    let hosts = Hosts::new(&format!("co-{runtime}"), 1).expect("test host");
    let host = hosts.host(1);
    let d = Daemon::start_in(host.netns_path(), vec!["--runtime".into(), runtime.into()]);
    if runtime == "native" {
        let out = d.shoal(&["image", "load", "-i", ARCHIVE]);
        assert!(out.status.success(), "image load: {out:?}");
    }
    let p = Project {
        d: &d,
        dir: tempfile::tempdir().expect("project dir"),
    };
    std::fs::write(p.dir.path().join("docker-compose.yml"), PROJECT).expect("compose file");

    p.ok(&["up", "-d"]);
    let ps = p.ok(&["ps"]);
    for name in ["probe_web_1", "probe_app_1"] {
        assert!(ps.contains(name), "{ps}");
    }
    assert!(ps.contains("0.0.0.0:18099->80/tcp"), "{ps}");
    assert_eq!(ps.matches(" Up ").count(), 2, "{ps}");
    let page = wait_for("the published port", MINUTE, || {
        fetch(host, "http://127.0.0.1:18099/")
    });
    assert_eq!(page, "hello from shoal\n");
    // Services reach each other by name on the project's network.
    let out = wait_for("app to reach web by name", MINUTE, || {
        let out = p.run(&[
            "exec",
            "-T",
            "app",
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            "http://web/",
        ]);
        let (o, e) = text(&out);
        if out.status.success() {
            Ok(o)
        } else {
            Err(format!("{o}{e}"))
        }
    });
    assert_eq!(out, "hello from shoal\n");
    assert_eq!(p.ok(&["exec", "-T", "app", "cat", "/data/note"]), "kept\n");
    // A second `up -d` with nothing changed keeps the containers.
    let again = p.run(&["up", "-d"]);
    let (_, e) = text(&again);
    assert!(again.status.success(), "{e}");
    assert!(e.contains("is up-to-date"), "{e}");

    let logs = p.ok(&["logs", "app"]);
    assert!(logs.contains("app started"), "{logs}");
    // logs -f follows: ticks keep coming until it is stopped.
    let mut follow = p
        .compose(&["logs", "-f", "--tail", "1", "app"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("logs -f");
    std::thread::sleep(Duration::from_secs(3));
    let _ = follow.kill();
    let out = follow.wait_with_output().expect("logs -f output");
    let followed = String::from_utf8_lossy(&out.stdout);
    assert!(followed.matches("tick").count() >= 2, "{followed}");

    let out = p.ok(&["run", "--rm", "app", "echo", "one-off"]);
    assert!(out.contains("one-off"), "{out}");
    let all = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!all.contains("run"), "the one-off container is gone: {all}");

    p.ok(&["stop", "-t", "1"]);
    let ps = p.ok(&["ps"]);
    assert_eq!(ps.matches("Exit ").count(), 2, "{ps}");

    p.ok(&["down", "--volumes"]);
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains("probe_backend"), "{nets}");
    let vols = d.docker_ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(!vols.contains("probe_appdata"), "{vols}");

    // build is refused, saying why.
    std::fs::write(p.dir.path().join("Dockerfile"), "FROM scratch\n").expect("Dockerfile");
    std::fs::write(
        p.dir.path().join("docker-compose.yml"),
        "version: \"3.8\"\nservices:\n  built:\n    build: .\n",
    )
    .expect("compose file");
    let out = p.run(&["build"]);
    let (o, e) = text(&out);
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("shoal does not build images"), "{o}{e}");
}

#[test]
fn docker_compose_on_the_native_runtime() {
    if ready("native") {
        compose_flow("native");
    }
}

#[test]
fn docker_compose_on_the_docker_runtime() {
    if ready("docker") {
        compose_flow("docker");
    }
}
