//! A shoal node as a Docker Engine for its tasks, on each runtime, driven by the real `docker`
//! CLI, the Python SDK and `shoal exec`: `ps` with filters, `inspect`, `logs -f`, `top`,
//! `stats --no-stream`, `exec` (streams kept apart, exit codes, `-u`, `-w`, `-e`, `-i` input,
//! `-it` through a real pseudo-terminal), a task's secret read through exec, `stop` and
//! `rm -f` ending a task that its service then replaces, and the errors Docker gives.

// The tests wait on real processes, in wall-clock time; no logic under test reads it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, wait_for};
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

fn start(runtime: &str) -> Daemon {
    let d = Daemon::start_with_flags(Vec::new(), vec!["--runtime".into(), runtime.into()]);
    d.swarm_init();
    if runtime == "native" {
        let out = d.shoal(&["image", "load", "-i", ARCHIVE]);
        assert!(out.status.success(), "image load: {out:?}");
    }
    d
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The ID of the one running container of `service` that `docker ps` lists.
fn container_of(d: &Daemon, service: &str) -> String {
    wait_for(
        &format!("docker ps to list a running container of {service}"),
        MINUTE,
        || {
            let out = d.docker_ok(&[
                "ps",
                "-q",
                "--no-trunc",
                "--filter",
                &format!("label=com.docker.swarm.service.name={service}"),
                "--filter",
                "status=running",
            ]);
            let ids: Vec<&str> = out.split_whitespace().collect();
            match ids.as_slice() {
                [one] => Ok(one.to_string()),
                _ => Err(format!("{out}\n{}", d.ps(service))),
            }
        },
    )
}

/// Lines `docker logs -f` prints within `limit`, until `enough` says stop.
fn follow_logs(
    d: &Daemon,
    container: &str,
    limit: Duration,
    enough: impl Fn(&str) -> bool,
) -> String {
    let mut child = Command::new("docker")
        .args(["-H", &d.host(), "logs", "-f", "--tail", "1", container])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker logs -f");
    let mut out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut seen = String::new();
    while Instant::now() < deadline && !enough(&seen) {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

fn a_node_answers_for_its_containers(runtime: &str) {
    let d = start(runtime);
    let secret = format!("s3cret-{runtime}-{}", std::process::id());
    let mut create = Command::new("docker")
        .args(["-H", &d.host(), "secret", "create", "greeting", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("docker secret create");
    create
        .stdin
        .take()
        .expect("stdin")
        .write_all(secret.as_bytes())
        .expect("write secret");
    assert!(create.wait().expect("wait").success(), "secret create");
    d.service_create_with(
        "--name web --secret greeting --env FROM_SPEC=spec",
        &[
            IMAGE,
            "sh",
            "-c",
            "echo hello; echo oops >&2; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.3; done",
        ],
    );
    let id = container_of(&d, "web");
    assert_eq!(id.len(), 64, "a container ID is 64 hex digits: {id}");

    // ps: the task's container, named and labelled as Swarm names it.
    let ps = d.docker_ok(&[
        "ps",
        "--format",
        "{{.ID}} {{.Names}} {{.Image}} {{.Status}}",
    ]);
    let line = ps
        .lines()
        .find(|l| id.starts_with(l.split_whitespace().next().unwrap_or("-")))
        .unwrap_or_else(|| panic!("docker ps lists {id}: {ps}"));
    assert!(
        line.contains(" web.1.") && line.contains(IMAGE) && line.contains(" Up "),
        "{line}"
    );
    let by_name = d.docker_ok(&["ps", "-q", "--filter", "name=web.1"]);
    assert!(id.starts_with(by_name.trim()), "name filter: {by_name}");
    let none = d.docker_ok(&["ps", "-q", "--filter", "status=exited"]);
    assert_eq!(none.trim(), "", "no exited containers yet");

    // inspect, by ID and by name.
    let name = d.docker_ok(&["inspect", "--format", "{{.Name}}", &id]);
    let name = name.trim().trim_start_matches('/').to_string();
    let state = d.docker_ok(&[
        "inspect",
        "--format",
        "{{.State.Running}} {{index .Config.Labels \"com.docker.swarm.service.name\"}}",
        &name,
    ]);
    assert_eq!(state.trim(), "true web");

    // logs: both streams, then live lines with -f.
    let logs = d.docker(&["logs", &id]);
    let (out, err) = text(&logs);
    assert!(
        out.contains("hello\n") && err.contains("oops\n"),
        "{out} / {err}"
    );
    let followed = follow_logs(&d, &id, Duration::from_secs(20), |s| {
        s.matches("tick").count() >= 3
    });
    assert!(
        followed.matches("tick").count() >= 3,
        "docker logs -f shows new lines as they come: {followed:?}"
    );

    // top and stats.
    let top = d.docker_ok(&["top", &id]);
    assert!(top.contains("PID") && top.contains("sh"), "{top}");
    let stats = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
        &id[..12],
    ]);
    assert!(stats.starts_with(&name), "{stats}");

    // exec: the secret, streams, exit code, user, directory, environment, input.
    let read = d.docker_ok(&["exec", &id, "cat", "/run/secrets/greeting"]);
    assert_eq!(read, secret, "docker exec reads the task's secret");
    let out = d.docker(&["exec", &name, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(text(&out), ("out\n".to_string(), "err\n".to_string()));
    let who = d.docker_ok(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "FROM_EXEC=exec",
        &id,
        "sh",
        "-c",
        "id -u; pwd; echo $FROM_SPEC $FROM_EXEC",
    ]);
    assert_eq!(who, "65534\n/tmp\nspec exec\n");
    let mut cat = Command::new("docker")
        .args(["-H", &d.host(), "exec", "-i", &id, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker exec -i");
    cat.stdin
        .take()
        .expect("stdin")
        .write_all(b"ping\n")
        .expect("write");
    let echoed = cat.wait_with_output().expect("docker exec -i");
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), "ping\n");

    // exec -it through a real terminal: the shell's input is a terminal of the client's size,
    // typed input runs, the output comes back raw.
    let (screen, code) = common::on_a_terminal(
        &d,
        &format!("exec -it {id} sh"),
        "[ -t 0 ] && echo on-a-tty; stty size; echo $((6*7)); exit 5\n",
    );
    assert!(
        screen.contains("on-a-tty"),
        "the exec's stdin is a terminal: {screen:?}"
    );
    assert!(
        screen.contains("33 77"),
        "the exec's terminal has the client's size: {screen:?}"
    );
    assert!(
        screen.contains("42"),
        "the terminal shows the answer: {screen:?}"
    );
    assert_eq!(
        code, 5,
        "docker exec -it passes on the shell's exit code: {screen:?}"
    );

    // The raw API: a TTY exec starts at the size it asked for and follows a resize. (An engine
    // before API 1.42 sizes the terminal just after the start, hence the pause.)
    let sized = common::python(&format!(
        r#"
import json, socket, time
def call(method, path, body=None, upgrade=False):
    s = socket.socket(socket.AF_UNIX)
    s.connect("{sock}")
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{{method}} {{path}} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {{len(data)}}\r\n"
    if upgrade:
        head += "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    s.sendall(head.encode() + b"\r\n" + data)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    status, rest = buf.split(b"\r\n\r\n", 1)
    return s, int(status.split()[1]), rest
s, st, rest = call("POST", "/v1.41/containers/{id}/exec", {{"Cmd": ["sh", "-c", "sleep 0.5; stty size; sleep 1.5; stty size"], "Tty": True, "AttachStdout": True, "ConsoleSize": [33, 77]}})
while not rest.rstrip().endswith(b"}}"):
    rest += s.recv(4096)
eid = json.loads(rest[rest.index(b"{{"):])["Id"]
s, st, out = call("POST", f"/v1.41/exec/{{eid}}/start", {{"Detach": False, "Tty": True}}, upgrade=True)
assert st == 101, st
time.sleep(1)
_, rs, _ = call("POST", f"/v1.41/exec/{{eid}}/resize?h=40&w=100")
assert rs == 200, rs
while True:
    d = s.recv(4096)
    if not d:
        break
    out += d
print(out.decode().replace("\r", ""))
"#,
        sock = d.socket().display()
    ));
    assert_eq!(
        sized.trim_end(),
        "33 77\n40 100",
        "a TTY exec's size, then its resize"
    );

    // shoal exec does the same.
    let out = d.shoal(&["exec", &id, "sh", "-c", "echo via-shoal; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(text(&out).0, "via-shoal\n");

    // The Python SDK.
    let py = common::python(&format!(
        r#"
import docker
c = docker.DockerClient(base_url="unix://{sock}")
found = c.containers.list(filters={{"label": "com.docker.swarm.service.name=web"}})
assert [x.id for x in found] == ["{id}"], found
r = found[0].exec_run(["sh", "-c", "echo py; exit 6"])
assert r.exit_code == 6 and r.output == b"py\n", r
print("ok")
"#,
        sock = d.socket().display()
    ));
    assert_eq!(py.trim(), "ok");

    // Errors, with Docker's statuses.
    let missing = d.docker(&["exec", "nosuchcontainer", "true"]);
    assert!(
        !missing.status.success()
            && text(&missing)
                .1
                .contains("No such container: nosuchcontainer"),
        "{missing:?}"
    );
    let (status, body) = d.api(
        "POST",
        &format!("/containers/{id}/exec"),
        Some(br#"{"Cmd":["sleep","2"],"AttachStdout":true}"#),
    );
    assert_eq!(status, 201, "{body}");
    let exec = body["Id"].as_str().expect("exec id").to_string();
    let (status, body) = d.api("POST", &format!("/exec/{exec}/resize?h=10&w=20"), None);
    assert_eq!(status, 409, "resizing an exec that has no TTY: {body}");
    let (status, body) = d.api("POST", "/exec/nosuchexec/resize?h=10&w=20", None);
    assert_eq!(status, 404, "{body}");

    // stop ends the task; its service replaces it with a new container.
    d.docker_ok(&["stop", "-t", "1", &id]);
    let replacement = wait_for("a replacement container", MINUTE, || {
        let now = container_of(&d, "web");
        if now != id { Ok(now) } else { Err(now) }
    });
    let stopped = d.docker(&["exec", &id, "true"]);
    assert!(
        !stopped.status.success(),
        "exec into a stopped container fails: {stopped:?}"
    );

    // rm -f on a running task's container ends it the same way.
    d.docker_ok(&["rm", "-f", &replacement]);
    wait_for("another replacement container", MINUTE, || {
        let now = container_of(&d, "web");
        if now != replacement && now != id {
            Ok(())
        } else {
            Err(now)
        }
    });
    d.docker_ok(&["service", "rm", "web"]);
    wait_for("the service's containers to go", MINUTE, || {
        let left = d.docker_ok(&["ps", "-aq"]);
        if left.trim().is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    });
}

#[test]
fn native_node_answers_for_its_containers() {
    if ready("native") {
        a_node_answers_for_its_containers("native");
    }
}

#[test]
fn docker_node_answers_for_its_containers() {
    if ready("docker") {
        a_node_answers_for_its_containers("docker");
    }
}

/// What a background `docker ARGS` has printed so far, and the handle that stops it.
struct Background {
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Background {
    fn start(d: &Daemon, args: &[&str]) -> Background {
        let mut child = Command::new("docker")
            .args(["-H", &d.host()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker");
        let mut out = child.stdout.take().expect("stdout");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut g) = s.lock() {
                    g.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Background { child, seen }
    }

    fn seen(&self) -> String {
        self.seen.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ID of one running container of `service`.
fn container_of_any(d: &Daemon, service: &str) -> String {
    let out = d.docker_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    out.split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("no running container of {service}"))
        .to_string()
}

fn lines_with(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// `docker events` while a service scales: the service's update, its new containers'
/// create and start, the removed ones' die and destroy; `--since/--until` replays them and
/// ends by itself; filters select.
#[test]
fn docker_events_while_a_service_scales() {
    if !ready("native") {
        return;
    }
    let d = start("native");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs())
        .unwrap_or_default();
    let live = Background::start(
        &d,
        &[
            "events",
            "--filter",
            "type=service",
            "--filter",
            "type=container",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ],
    );
    let dies = Background::start(
        &d,
        &[
            "events",
            "--filter",
            "event=die",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
    );
    d.service_create_with("--name web", &[IMAGE, "sleep", "100000"]);
    d.wait_running("web", 1);
    d.docker_ok(&["service", "scale", "web=3"]);
    d.wait_running("web", 3);
    wait_for("the scale-up's events", MINUTE, || {
        let s = live.seen();
        let ok = s.contains("service create web")
            && s.contains("service update web")
            && lines_with(&s, "container create web.") >= 3
            && lines_with(&s, "container start web.") >= 3;
        if ok { Ok(()) } else { Err(s) }
    });
    let one = container_of_any(&d, "web");
    d.docker_ok(&["exec", &one, "true"]);
    wait_for("the exec's events", MINUTE, || {
        let s = live.seen();
        let ok = s.contains("container exec_create: true web.")
            && s.contains("container exec_start: true")
            && s.contains("container exec_die");
        if ok { Ok(()) } else { Err(s) }
    });
    d.docker_ok(&["service", "scale", "web=1"]);
    wait_for("the scale-down's events", MINUTE, || {
        let s = live.seen();
        let ok = lines_with(&s, "container die web.") >= 2
            && lines_with(&s, "container destroy web.") >= 2;
        if ok { Ok(()) } else { Err(s) }
    });
    wait_for("only die events through the filter", MINUTE, || {
        let s = dies.seen();
        if lines_with(&s, "die web.") >= 2 && s.lines().all(|l| l.starts_with("die ")) {
            Ok(())
        } else {
            Err(s)
        }
    });
    // A replay of a past window ends by itself.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs() + 1)
        .unwrap_or_default();
    let replay = Command::new("docker")
        .args([
            "-H",
            &d.host(),
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
        ])
        .args([
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .output()
        .expect("docker events --until");
    let text = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{replay:?}");
    assert!(
        lines_with(&text, "create web.") >= 3 && lines_with(&text, "destroy web.") >= 2,
        "the replay holds the window's events: {text}"
    );
    d.docker_ok(&["service", "rm", "web"]);
    wait_for("the service's containers to go", MINUTE, || {
        let left = d.docker_ok(&["ps", "-aq"]);
        if left.trim().is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    });
}
