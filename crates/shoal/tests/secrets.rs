//! Secrets and configs end to end, on real daemons driven by the real `docker` CLI, the Python
//! SDK and `shoal`: a task reads its secret at `/run/secrets/NAME` (or its target, with its
//! owner and mode) from a tmpfs, on both runtimes; no secret's bytes appear in a data dir, a
//! daemon log or any `inspect` output; a secret in use cannot be removed; `secret rotate` rolls
//! the services that follow the newest version, one task at a time, and leaves pinned ones
//! alone; bad input is refused naming the field, and nothing is stored half-way.
// The tests wait on real processes in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, python, wait_for};
use shoal_testkit::{Need, need};

const IMAGE: &str = "shoal-test/busybox:latest";
const ARCHIVE: &str = "/var/tmp/shoal-images/busybox.tar";
const MINUTE: Duration = Duration::from_secs(60);

fn ready(runtime: &str) -> bool {
    let base = need(&[Need::Root, Need::Tool("docker"), Need::Tool("sha256sum")]);
    base && match runtime {
        "docker" => need(&[Need::DockerEngine, Need::TestImage]),
        _ => need(&[Need::TestArchive, Need::AnyTool(&["crun", "runc"])]),
    }
}

/// A value no other test or file on the machine holds.
fn marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{tag}-{nanos:x}-{:x}", std::process::id())
}

/// `sha256sum` of `data`, given on stdin so it never shows in a command line.
fn sha256(data: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Runs `docker ARGS` against `d` with `input` on stdin.
fn docker_in(d: &Daemon, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new("docker")
        .args(["-H", &d.host()])
        .args(args)
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("docker")
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every regular file under `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file()
                && let Ok(bytes) = std::fs::read(e.path())
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                found.push(e.path());
            }
        }
    }
    found
}

/// The tmpfs mounts of this machine whose mount point names `what` (a task ID).
fn memory_mounts(what: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let point = l.split_whitespace().nth(4)?;
            let fstype = l.split(" - ").nth(1)?.split_whitespace().next()?;
            (fstype == "tmpfs" && point.contains(what)).then(|| point.to_string())
        })
        .collect()
}

fn start(runtime: &str) -> Daemon {
    let d = Daemon::start_with_flags(Vec::new(), vec!["--runtime".into(), runtime.into()]);
    d.swarm_init();
    if runtime == "native" {
        ok(d.shoal(&["image", "load", "-i", ARCHIVE]), "image load");
    }
    d
}

/// The IDs of the running tasks of `service`.
fn running(d: &Daemon, service: &str) -> Vec<String> {
    d.docker_ok(&[
        "service",
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "desired-state=running",
        service,
    ])
    .split_whitespace()
    .filter(|id| {
        d.docker_ok(&[
            "inspect",
            "--type",
            "task",
            "--format",
            "{{.Status.State}}",
            id,
        ])
        .trim()
            == "running"
    })
    .map(String::from)
    .collect()
}

/// What every `inspect` shows of the cluster's objects, concatenated.
fn every_inspect(d: &Daemon, service: &str) -> String {
    let mut all = String::new();
    for args in [
        vec!["secret", "ls"],
        vec!["secret", "inspect", "pw"],
        vec!["config", "inspect", "app.conf"],
        vec!["service", "inspect", service],
        vec!["service", "ps", "--no-trunc", service],
    ] {
        all.push_str(&d.docker_ok(&args));
    }
    let tasks = d.docker_ok(&["service", "ps", "-q", "--no-trunc", service]);
    for id in tasks.split_whitespace() {
        all.push_str(&d.docker_ok(&["inspect", "--type", "task", id]));
    }
    let (_, v) = d.api("GET", "/secrets", None);
    all.push_str(&v.to_string());
    all
}

fn secrets_reach_tasks_from_memory_only(runtime: &str) {
    let d = start(runtime);
    let secret = marker("secret");
    let config = marker("config");
    let id = ok(
        docker_in(
            &d,
            &["secret", "create", "--label", "team=db", "pw", "-"],
            &secret,
        ),
        "secret create",
    );
    assert_eq!(id.trim().len(), 25, "{id}");
    ok(
        docker_in(&d, &["config", "create", "app.conf", "-"], &config),
        "config create",
    );
    // A template, expanded for each task as Swarm does.
    ok(
        docker_in(
            &d,
            &[
                "config",
                "create",
                "--template-driver",
                "golang",
                "tmpl",
                "-",
            ],
            "svc={{.Service.Name}} slot={{.Task.Slot}}\n",
        ),
        "config create --template-driver",
    );
    // A config's data is shown, as Docker shows it; a secret's never.
    let conf = d.docker_ok(&["config", "inspect", "--pretty", "app.conf"]);
    assert!(conf.contains(&config), "{conf}");
    let ls = d.docker_ok(&["secret", "ls", "--format", "{{.Name}} {{.Labels}}"]);
    assert!(ls.contains("pw") && ls.contains("team=db"), "{ls}");

    let script = "sha256sum /run/secrets/pw /etc/pw2; stat -c 'mode=%a uid=%u' /etc/pw2; \
                  sha256sum /etc/app.conf; cat /etc/tmpl; echo x > /run/secrets/pw || echo refused; \
                  echo ready; sleep 1000";
    ok(
        d.docker(&[
            "service",
            "create",
            "--detach",
            "--no-resolve-image",
            "--name",
            "web",
            "--secret",
            "pw",
            "--secret",
            "source=pw,target=/etc/pw2,mode=0400,uid=1000",
            "--config",
            "source=app.conf,target=/etc/app.conf",
            "--config",
            "source=tmpl,target=/etc/tmpl",
            IMAGE,
            "sh",
            "-c",
            script,
        ]),
        "service create",
    );
    let logs = wait_for("the task's report", MINUTE, || {
        let out = d.docker(&["service", "logs", "--raw", "web"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("ready") {
            Ok(text)
        } else {
            Err(format!(
                "{text}{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                d.ps("web")
            ))
        }
    });
    let (hs, hc) = (sha256(&secret), sha256(&config));
    assert!(logs.contains(&format!("{hs}  /run/secrets/pw")), "{logs}");
    assert!(logs.contains(&format!("{hs}  /etc/pw2")), "{logs}");
    assert!(logs.contains("mode=400 uid=1000"), "{logs}");
    assert!(logs.contains(&format!("{hc}  /etc/app.conf")), "{logs}");
    assert!(logs.contains("refused"), "read-only: {logs}");
    assert!(
        logs.contains("svc=web slot=1"),
        "the template, expanded: {logs}"
    );

    // From memory: the task's files sit on a tmpfs of its own, outside the data dir.
    // The task's output can come before the agent's report of it running.
    let task = wait_for("the task to be reported running", MINUTE, || {
        running(&d, "web").pop().ok_or_else(|| d.ps("web"))
    });
    let mounts = memory_mounts(&task);
    assert!(!mounts.is_empty(), "no tmpfs holds task {task}'s files");
    assert!(
        mounts
            .iter()
            .all(|m| !m.starts_with(&*d.data_dir().to_string_lossy())),
        "{mounts:?}"
    );

    // In use: refused, naming the service; nothing removed.
    let rm = d.docker(&["secret", "rm", "pw"]);
    let err = String::from_utf8_lossy(&rm.stderr);
    assert!(!rm.status.success() && err.contains("web"), "{err}");
    assert!(d.docker_ok(&["secret", "ls", "-q"]).contains(id.trim()));

    // An update keeps the files.
    d.docker_ok(&["service", "update", "--detach", "--env-add", "X=1", "web"]);
    wait_for("the updated task", MINUTE, || {
        let t = running(&d, "web");
        match t.first() {
            Some(t) if *t != task => Ok(()),
            _ => Err(d.ps("web")),
        }
    });

    let seen = every_inspect(&d, "web");
    assert!(!seen.contains(&secret), "a secret in inspect output");
    let found = files_holding(d.data_dir(), &secret);
    assert!(found.is_empty(), "the secret in the data dir: {found:?}");
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    assert!(!log.contains(&secret), "the secret in the daemon's log");

    let tasks = d.docker_ok(&["service", "ps", "-q", "--no-trunc", "web"]);
    d.docker_ok(&["service", "rm", "web"]);
    wait_for("the tasks' files to go", MINUTE, || {
        let left: Vec<String> = tasks.split_whitespace().flat_map(memory_mounts).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    });
    d.docker_ok(&["secret", "rm", "pw"]);
    d.docker_ok(&["config", "rm", "app.conf", "tmpl"]);
    assert_eq!(d.docker_ok(&["secret", "ls", "-q"]).trim(), "");
    let found = files_holding(d.data_dir(), &secret);
    assert!(
        found.is_empty(),
        "the secret in the data dir after rm: {found:?}"
    );
}

#[test]
fn secrets_reach_native_tasks_from_memory_only() {
    if ready("native") {
        secrets_reach_tasks_from_memory_only("native");
    }
}

#[test]
fn secrets_reach_docker_tasks_from_memory_only() {
    if ready("docker") {
        secrets_reach_tasks_from_memory_only("docker");
    }
}

/// `shoal secret rotate` rolls the services that follow the newest version with their update
/// policy (one task at a time here), each new task reads the new value, a service pinned to
/// version 1 keeps it, and `service rollback` returns to the old version.
#[test]
fn rotate_rolls_services_one_task_at_a_time() {
    if !ready("native") {
        return;
    }
    let d = start("native");
    let (v1, v2) = (marker("one"), marker("two"));
    ok(
        docker_in(&d, &["secret", "create", "pw", "-"], &v1),
        "create",
    );
    let script = "sha256sum /run/secrets/pw; sleep 1000";
    d.service_create_with(
        "--name follow --replicas 3 --update-parallelism 1 --update-delay 0s --stop-grace-period 1s --secret pw",
        &[IMAGE, "sh", "-c", script],
    );
    ok(
        d.shoal(&[
            "service",
            "create",
            "--detach",
            "--name",
            "pinned",
            "--stop-grace-period",
            "1s",
            "--secret",
            "source=pw,version=1",
            IMAGE,
            "sh",
            "-c",
            script,
        ]),
        "shoal service create, pinned",
    );
    d.wait_running("follow", 3);
    d.wait_running("pinned", 1);
    let before: Vec<String> = running(&d, "follow");

    let mut rotate = Command::new(common::SHOAL)
        .args(["-H", &d.host(), "secret", "rotate", "--detach", "pw", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shoal secret rotate");
    rotate
        .stdin
        .take()
        .expect("stdin")
        .write_all(v2.as_bytes())
        .expect("write");
    let out = ok(rotate.wait_with_output().expect("rotate"), "secret rotate");
    assert!(out.contains("rotated to version 2"), "{out}");

    // One at a time: never fewer than two of the three run while the update goes on.
    let deadline = Instant::now() + 2 * MINUTE;
    let mut fewest = 3;
    loop {
        let now = running(&d, "follow");
        fewest = fewest.min(now.len());
        if now.len() == 3 && now.iter().all(|t| !before.contains(t)) {
            break;
        }
        assert!(Instant::now() < deadline, "not rolled: {}", d.ps("follow"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(fewest >= 2, "{fewest} tasks ran at one point");
    let logs = |service: &str| {
        String::from_utf8_lossy(&d.docker(&["service", "logs", "--raw", service]).stdout)
            .into_owned()
    };
    let (h1, h2) = (sha256(&v1), sha256(&v2));
    wait_for("each new task to read the new value", MINUTE, || {
        let l = logs("follow");
        if l.matches(&h2).count() >= 3 {
            Ok(())
        } else {
            Err(l)
        }
    });
    assert_eq!(
        logs("follow").matches(&h1).count(),
        3,
        "the old tasks' reads"
    );
    // Each task shows the version it was given.
    let given = |task: &str| {
        let (_, t) = d.api("GET", &format!("/v1.50/tasks/{task}"), None);
        t["Spec"]["ContainerSpec"]["Secrets"][0]["Version"].clone()
    };
    for t in running(&d, "follow") {
        assert_eq!(given(&t), 2, "task {t}");
    }
    for t in running(&d, "pinned") {
        assert_eq!(given(&t), 1, "task {t}");
    }
    let pinned = logs("pinned");
    assert!(pinned.contains(&h1) && !pinned.contains(&h2), "{pinned}");
    // shoal's own field, which the docker CLI does not show.
    let (_, inspect) = d.api("GET", "/v1.50/secrets/pw", None);
    assert_eq!(inspect["DataVersion"], 2, "{inspect}");
    let (_, spec) = d.api("GET", "/v1.50/services/pinned", None);
    let pin = &spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["Version"];
    assert_eq!(*pin, 1, "the pin is shown: {spec}");
    // A client that reads the spec and writes it back keeps the pin.
    d.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--env-add",
        "X=1",
        "pinned",
    ]);
    wait_for("the pinned service's update", MINUTE, || {
        let l = logs("pinned");
        if l.matches(&h1).count() >= 2 {
            Ok(())
        } else {
            Err(l)
        }
    });
    assert!(!logs("pinned").contains(&h2));

    // Rollback returns to the version before the rotation.
    d.docker_ok(&["service", "rollback", "--detach", "follow"]);
    wait_for("the rollback to read the old value", 2 * MINUTE, || {
        let l = logs("follow");
        if l.matches(&h1).count() >= 6 {
            Ok(())
        } else {
            Err(format!("{l}\n{}", d.ps("follow")))
        }
    });
    for v in [&v1, &v2] {
        assert!(files_holding(d.data_dir(), v).is_empty());
    }
}

/// Bad input through the API, the docker CLI and `shoal`: each refused naming the field, nothing
/// stored, and the daemon goes on serving.
#[test]
fn bad_secrets_are_refused_naming_the_field() {
    if !need(&[Need::Root, Need::Tool("docker")]) {
        return;
    }
    let d = Daemon::start();
    d.swarm_init();
    let create = |body: serde_json::Value| {
        d.api(
            "POST",
            "/v1.50/secrets/create",
            Some(body.to_string().as_bytes()),
        )
    };
    let b64 = |s: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let big = vec![b'x'; 500 * 1024];
    for (body, status, words) in [
        (
            serde_json::json!({"Name": "a/b", "Data": b64(b"x")}),
            400,
            "Name",
        ),
        (
            serde_json::json!({"Name": "", "Data": b64(b"x")}),
            400,
            "Name",
        ),
        (serde_json::json!({"Name": "e", "Data": ""}), 400, "Data"),
        (
            serde_json::json!({"Name": "big", "Data": b64(&big)}),
            400,
            "500 KiB",
        ),
        (
            serde_json::json!({"Name": "b", "Data": "%%%"}),
            400,
            "base64",
        ),
        (
            serde_json::json!({"Name": "v", "Data": b64(b"x"), "Driver": {"Name": "vault"}}),
            400,
            "Driver",
        ),
        (
            serde_json::json!({"Name": "t", "Data": b64(b"x"), "Templating": {"Name": "jinja"}}),
            400,
            "Templating.Name",
        ),
        (
            serde_json::json!({"Name": "t2", "Data": b64(b"{{.Nope}"), "Templating": {"Name": "golang"}}),
            400,
            "Data",
        ),
    ] {
        let (code, v) = create(body.clone());
        assert_eq!(code, status, "{body}: {v}");
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(msg.contains(words), "{body}: {msg}");
    }
    assert_eq!(
        d.docker_ok(&["secret", "ls", "-q"]).trim(),
        "",
        "nothing stored"
    );
    let (code, _) = create(serde_json::json!({"Name": "pw", "Data": b64(b"x")}));
    assert_eq!(code, 201);
    let (code, v) = create(serde_json::json!({"Name": "pw", "Data": b64(b"y")}));
    assert_eq!(code, 409, "a duplicate name: {v}");

    // References: a target outside the task, a mode beyond 0777, a secret that does not exist.
    let service = |secrets: serde_json::Value| {
        let body = serde_json::json!({
            "Name": "s",
            "TaskTemplate": {"ContainerSpec": {"Image": "host", "Args": ["sleep", "100"], "Secrets": secrets}},
        });
        d.api(
            "POST",
            "/v1.50/services/create",
            Some(body.to_string().as_bytes()),
        )
    };
    for (refs, words) in [
        (
            serde_json::json!([{"SecretName": "pw", "File": {"Name": "../../etc/shadow", "Mode": 292}}]),
            "Secrets[0].File.Name",
        ),
        (
            serde_json::json!([{"SecretName": "pw", "File": {"Name": "pw", "Mode": 4095}}]),
            "Secrets[0].File.Mode",
        ),
        (
            serde_json::json!([{"SecretName": "nope", "File": {"Name": "x", "Mode": 292}}]),
            "secret nope not found",
        ),
        (
            serde_json::json!([{"SecretName": "pw", "File": {"Name": "x", "UID": "root", "Mode": 292}}]),
            "File.UID",
        ),
        (
            serde_json::json!([{"SecretName": "pw", "Version": 7, "File": {"Name": "x", "Mode": 292}}]),
            "no version 7",
        ),
    ] {
        let (code, v) = service(refs.clone());
        let msg = v["message"].as_str().unwrap_or_default();
        assert!(code == 400 && msg.contains(words), "{refs}: {code} {msg}");
    }
    assert_eq!(d.docker_ok(&["service", "ls", "-q"]).trim(), "");

    // The CLIs: an external driver, a mode that is not octal.
    let out = d.shoal(&["secret", "create", "--driver", "vault", "x", "-"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--driver"));
    let out = d.shoal(&[
        "service",
        "create",
        "--detach",
        "--secret",
        "source=pw,mode=abc",
        "host",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("mode"));
    let (code, _) = d.api("GET", "/_ping", None);
    assert_eq!(code, 200, "still serving");
}

/// The Python SDK: secrets and configs created, listed, used by a service, removed.
#[test]
fn python_sdk_drives_secrets_and_configs() {
    if !need(&[Need::Root, Need::PythonDockerSdk]) {
        return;
    }
    let d = Daemon::start();
    d.swarm_init();
    let out = python(&format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
s = c.secrets.create(name="py-pw", data=b"py-secret-value", labels={{"a": "b"}})
assert "Data" not in s.attrs["Spec"], s.attrs
assert [x.name for x in c.secrets.list()] == ["py-pw"]
assert c.secrets.get("py-pw").attrs["Spec"]["Labels"] == {{"a": "b"}}
cf = c.configs.create(name="py-conf", data=b"k=v")
import base64
assert base64.b64decode(c.configs.get("py-conf").attrs["Spec"]["Data"]) == b"k=v"
ref = docker.types.SecretReference(s.id, "py-pw", filename="pw", mode=0o400)
cref = docker.types.ConfigReference(cf.id, "py-conf", filename="/etc/k")
svc = c.services.create("host", ["sleep", "1000"], name="py-svc", secrets=[ref], configs=[cref])
spec = c.api.inspect_service(svc.id)["Spec"]["TaskTemplate"]["ContainerSpec"]
assert spec["Secrets"][0]["SecretName"] == "py-pw", spec
assert spec["Configs"][0]["File"]["Name"] == "/etc/k", spec
try:
    s.remove()
    raise SystemExit("removed a secret in use")
except docker.errors.APIError as e:
    assert "py-svc" in str(e), e
svc.remove()
s.remove()
cf.remove()
assert c.secrets.list() == [] and c.configs.list() == []
print("ok")
"#,
        host = d.host()
    ));
    assert!(out.contains("ok"), "{out}");
}

/// `shoal`'s own commands against a real daemon: create from a file, ls, inspect, and a
/// service's references added, pinned and removed with `service update`.
#[test]
fn shoal_cli_manages_secrets_and_references() {
    if !need(&[Need::Root]) {
        return;
    }
    let d = Daemon::start();
    d.swarm_init();
    let file = d.data_dir().join("pw.txt");
    std::fs::write(&file, "from-a-file").expect("write");
    let shoal_ok = |args: &[&str]| ok(d.shoal(args), &format!("shoal {args:?}"));
    let file_arg = file.to_string_lossy().into_owned();
    shoal_ok(&["secret", "create", "--label", "k=v", "pw", &file_arg]);
    std::fs::remove_file(&file).expect("rm");
    let ls = shoal_ok(&["secret", "ls"]);
    assert!(ls.starts_with("ID") && ls.contains("pw"), "{ls}");
    let inspect = shoal_ok(&["secret", "inspect", "pw"]);
    assert!(
        inspect.contains("\"k\": \"v\"") && !inspect.contains("from-a-file"),
        "{inspect}"
    );
    let conf = d.data_dir().join("app.conf");
    std::fs::write(&conf, "k=v\n").expect("write");
    shoal_ok(&["config", "create", "app.conf", &conf.to_string_lossy()]);
    let shown = shoal_ok(&["config", "inspect", "--pretty", "app.conf"]);
    assert!(shown.contains("k=v"), "{shown}");
    shoal_ok(&[
        "service", "create", "--detach", "--name", "s", "--secret", "pw", "host", "sleep", "100",
    ]);
    let refs = |d: &Daemon| {
        let (_, s) = d.api("GET", "/v1.50/services/s", None);
        s["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"].clone()
    };
    assert_eq!(refs(&d)[0]["File"]["Name"], "pw", "{}", refs(&d));
    shoal_ok(&[
        "service",
        "update",
        "--detach",
        "--secret-rm",
        "pw",
        "--secret-add",
        "source=pw,target=/etc/pw,mode=0440,version=1",
        "s",
    ]);
    let r = refs(&d);
    assert_eq!(r.as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(
        (
            &r[0]["File"]["Name"],
            &r[0]["File"]["Mode"],
            &r[0]["Version"]
        ),
        (
            &serde_json::json!("/etc/pw"),
            &serde_json::json!(0o440),
            &serde_json::json!(1)
        ),
        "{r}"
    );
    let rm = d.shoal(&["secret", "rm", "pw"]);
    assert_eq!(rm.status.code(), Some(1), "in use: {rm:?}");
    shoal_ok(&["service", "rm", "s"]);
    let out = shoal_ok(&["secret", "rm", "pw"]);
    assert!(out.contains("pw"), "{out}");
    shoal_ok(&["config", "rm", "app.conf"]);
}
