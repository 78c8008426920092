//! Standalone containers on a shoal node, on each runtime, driven by the real `docker` CLI and
//! the Python SDK: `run --rm` in the foreground (streams, exit code, removal), `run -d -p`
//! reached at the published port, `-it` through a real pseudo-terminal, `cp` both ways,
//! `exec`, `rename`, `port`, restart policies, a user-defined network whose containers reach
//! each other by name, the errors Docker gives (a name taken, a port taken, a path outside),
//! standalone containers kept apart from services (`service ps`, the agent's stray sweep), and
//! a daemon restart that keeps them running.
//!
//! Each daemon runs in a test host's network namespace, so its bridges, published ports and
//! rules go with it.

// The tests wait on real processes, in wall-clock time; no logic under test reads it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Output;
use std::time::Duration;

use common::{Daemon, wait_for};
use shoal_testkit::hosts::{Host, Hosts};
use shoal_testkit::{Need, need};

const IMAGE: &str = "shoal-test/busybox:latest";
const ARCHIVE: &str = "/var/tmp/shoal-images/busybox.tar";
const MINUTE: Duration = Duration::from_secs(60);

fn ready(runtime: &str) -> bool {
    let base = need(&[Need::Root, Need::Tool("docker"), Need::Tool("script")]);
    base && match runtime {
        "docker" => need(&[Need::DockerEngine, Need::TestImage]),
        _ => need(&[Need::TestArchive, Need::AnyTool(&["crun", "runc"])]),
    }
}

fn start(host: &Host, runtime: &str) -> Daemon {
    let d = Daemon::start_in(host.netns_path(), vec!["--runtime".into(), runtime.into()]);
    if runtime == "native" {
        let out = d.shoal(&["image", "load", "-i", ARCHIVE]);
        assert!(out.status.success(), "image load: {out:?}");
    }
    d
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `GET url` from inside the host, with busybox's wget.
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

fn standalone_containers(runtime: &str) {
    let hosts = Hosts::new(&format!("sa-{runtime}"), 1).expect("test host");
    let host = hosts.host(1);
    let mut d = start(host, runtime);

    // run --rm in the foreground: streams apart, the exit code passed on, removed after.
    let out = d.docker(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo hi; echo err >&2; exit 3",
    ]);
    let (o, e) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{o}{e}\n{}", d.log_tail());
    assert_eq!(o, "hi\n");
    assert_eq!(e, "err\n");
    wait_for("the --rm container to be removed", MINUTE, || {
        let left = d.docker_ok(&["ps", "-aq"]);
        if left.trim().is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    });

    // run -d -p: reached at the published port, from the node and at its address.
    let id = d
        .docker_ok(&[
            "run", "-d", "--name", "web", "-p", "18080:80", IMAGE, "httpd", "-f", "-p", "80", "-h",
            "/var/www",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    for url in [
        "http://127.0.0.1:18080/",
        &format!("http://{}:18080/", host.addr),
    ] {
        let page = wait_for(&format!("GET {url}"), MINUTE, || fetch(host, url));
        assert_eq!(page, "hello from shoal\n");
    }
    assert_eq!(
        d.docker_ok(&["port", "web"]).trim(),
        "80/tcp -> 0.0.0.0:18080"
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Names}} {{.Ports}} {{.Status}}"]);
    assert!(ps.contains("web 0.0.0.0:18080->80/tcp Up"), "{ps}");

    // The errors Docker gives: a name taken, a port taken.
    let out = d.docker(&["run", "-d", "--name", "web", IMAGE, "true"]);
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert!(
        e.contains("The container name \"/web\" is already in use"),
        "{e}"
    );
    let out = d.docker(&[
        "run", "-d", "--name", "clash", "-p", "18080:80", IMAGE, "sleep", "100",
    ]);
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert!(e.contains("port is already allocated"), "{e}");
    // As with Docker, the container was made; only its start failed.
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "clash"])
            .trim(),
        "created"
    );
    d.docker_ok(&["rm", "clash"]);

    // cp in and out, and a path that is not there.
    let scratch = tempfile::tempdir().expect("tempdir");
    let page = scratch.path().join("page.html");
    std::fs::write(&page, "copied in\n").expect("write");
    d.docker_ok(&[
        "cp",
        page.to_str().expect("utf-8"),
        "web:/var/www/copied.html",
    ]);
    assert_eq!(
        fetch(host, "http://127.0.0.1:18080/copied.html").expect("copied page"),
        "copied in\n"
    );
    let back = scratch.path().join("back.html");
    d.docker_ok(&[
        "cp",
        "web:/var/www/index.html",
        back.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        std::fs::read_to_string(&back).expect("read"),
        "hello from shoal\n"
    );
    let out = d.docker(&["cp", "web:/nowhere/at/all", back.to_str().expect("utf-8")]);
    let (_, e) = text(&out);
    assert!(!out.status.success());
    assert!(e.contains("Could not find the file /nowhere/at/all"), "{e}");

    // exec and rename.
    assert_eq!(
        d.docker_ok(&["exec", "web", "cat", "/var/www/copied.html"]),
        "copied in\n"
    );
    d.docker_ok(&["rename", "web", "site"]);
    assert_eq!(
        d.docker_ok(&["inspect", "-f", "{{.Name}} {{.Id}}", "site"])
            .trim(),
        format!("/site {id}")
    );

    // -it through a real terminal: its stdin is a terminal of the CLI's size, typed input
    // runs, and the exit code is passed on.
    let (screen, code) = common::on_a_terminal(
        &d,
        &format!("run -it --rm {IMAGE} sh"),
        "[ -t 0 ] && echo on-a-tty; stty size; exit 5\n",
    );
    assert_eq!(code, 5, "{screen}");
    assert!(screen.contains("on-a-tty"), "{screen}");
    assert!(screen.contains("33 77"), "{screen}");

    // A restart policy: on-failure:2 runs it three times, then leaves it exited.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        IMAGE,
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    wait_for("flaky to use up its retries", MINUTE, || {
        let s = d.docker_ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}",
            "flaky",
        ]);
        if s.trim() == "2 exited 1" {
            Ok(())
        } else {
            Err(s)
        }
    });
    assert_eq!(d.docker_ok(&["logs", "flaky"]), "run\nrun\nrun\n");

    // A user-defined network: its containers reach each other by name.
    d.docker_ok(&["network", "create", "appnet"]);
    let ls = d.docker_ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert!(ls.contains("appnet bridge local"), "{ls}");
    assert!(ls.contains("bridge bridge local"), "{ls}");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "appnet",
        "--network-alias",
        "database",
        IMAGE,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/var/www",
    ]);
    for name in ["db", "database"] {
        let out = wait_for(&format!("{name} to answer by name"), MINUTE, || {
            let out = d.docker(&[
                "run",
                "--rm",
                "--network",
                "appnet",
                IMAGE,
                "timeout",
                "5",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{name}/"),
            ]);
            let (o, e) = text(&out);
            if out.status.success() { Ok(o) } else { Err(e) }
        });
        assert_eq!(out, "hello from shoal\n");
    }
    let inspect = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "appnet",
    ]);
    assert!(inspect.contains("db"), "{inspect}");
    let out = d.docker(&["network", "rm", "appnet"]);
    assert!(!out.status.success(), "removed while db is on it");

    // Kept apart from services: a swarm's agent leaves them running, service ps never shows
    // them, and they are not tasks.
    d.swarm_init();
    d.service_create(&format!("--name svc {IMAGE} sleep 1000"));
    d.wait_running("svc", 1);
    let tasks = d.docker_ok(&["service", "ps", "--format", "{{.Name}}", "svc"]);
    assert_eq!(tasks.trim(), "svc.1", "{tasks}");
    assert_eq!(
        fetch(host, "http://127.0.0.1:18080/").expect("site after swarm init"),
        "hello from shoal\n"
    );
    let labels = d.docker_ok(&["inspect", "-f", "{{json .Config.Labels}}", "site"]);
    assert!(!labels.contains("com.docker.swarm"), "{labels}");

    // The Python SDK: run with remove=True returns the output; run detached with ports.
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
print(c.containers.run("{IMAGE}", ["echo", "from python"], remove=True).decode().strip())
ct = c.containers.run("{IMAGE}", ["sleep", "1000"], detach=True, name="py", labels={{"by": "sdk"}})
ct.reload()
print(ct.name, ct.status, ct.labels["by"])
print(ct.exec_run(["sh", "-c", "echo $HOSTNAME"]).output.decode().strip() == ct.id[:12])
import io, tarfile
def tar_of(name, data):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()
print(ct.put_archive("/tmp", tar_of("sdk.txt", b"through the sdk\n")))
stream, stat = ct.get_archive("/tmp/sdk.txt")
got = tarfile.open(fileobj=io.BytesIO(b"".join(stream))).extractfile("sdk.txt").read().decode().strip()
print(got, stat["name"], stat["size"])
try:
    ct.put_archive("/tmp", tar_of("../../../escaped.txt", b"out"))
    print("escape accepted")
except docker.errors.APIError as e:
    print("escape refused", e.status_code)
ct.remove(force=True)
print(len(c.containers.list(all=True, filters={{"name": "^py$"}})))
"#,
        host = d.host()
    );
    let out = common::python(&script);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "from python",
            "py running sdk",
            "True",
            "True",
            "through the sdk sdk.txt 16",
            "escape refused 400",
            "0"
        ],
        "{out}"
    );

    // A daemon restart (a crash): the site keeps serving, and is still the engine's.
    d.kill9();
    d.spawn();
    assert_eq!(
        fetch(host, "http://127.0.0.1:18080/").expect("site after a daemon crash"),
        "hello from shoal\n"
    );
    let st = d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "site"]);
    assert_eq!(st.trim(), "running");
    d.docker_ok(&["rm", "-f", "site", "db", "flaky"]);
    d.docker_ok(&["network", "rm", "appnet"]);
    let left = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        left.lines().all(|n| n.starts_with("svc.1.")),
        "only the service's task is left: {left}"
    );
}

#[test]
fn standalone_containers_on_the_native_runtime() {
    if ready("native") {
        standalone_containers("native");
    }
}

#[test]
fn standalone_containers_on_the_docker_runtime() {
    if ready("docker") {
        standalone_containers("docker");
    }
}
