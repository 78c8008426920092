//! Real images on the native runtime, end to end: a real daemon, the busybox image built by
//! `tests/images/build.sh` loaded with `shoal image load`, services driven by the docker CLI.
//! Replicas run in their own root filesystems, a killed process is replaced, a daemon restart
//! adopts them, a named volume outlives a task, a memory limit OOM-kills, bad images and
//! archives are refused clearly, and `--dns*`/`--host` reach a task's `/etc` files.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Daemon, free_port, wait_for};
use shoal_testkit::{Need, need};

const ARCHIVE: &str = "/var/tmp/shoal-images/busybox.tar";
const IMAGE: &str = "shoal-test/busybox:latest";

/// Root, the docker CLI (drives the daemon), the image archive and an OCI runtime.
fn ready() -> bool {
    need(&[
        Need::Root,
        Need::Tool("docker"),
        Need::TestArchive,
        Need::AnyTool(&["crun", "runc"]),
    ])
}

fn shoal_ok(d: &Daemon, args: &[&str]) -> String {
    let out = d.shoal(args);
    assert!(
        out.status.success(),
        "shoal {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_tail()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn http_get(port: u16) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn busybox_services_run_from_a_loaded_image() {
    if !ready() {
        return;
    }
    let mut d = Daemon::start_with_flags(
        Vec::new(),
        vec!["--live-restore".into(), "--runtime".into(), "native".into()],
    );
    d.swarm_init();
    let loaded = shoal_ok(&d, &["image", "load", "-i", ARCHIVE]);
    assert!(
        loaded.contains("Loaded image: shoal-test/busybox:latest"),
        "{loaded}"
    );
    let ls = shoal_ok(&d, &["image", "ls"]);
    assert!(
        ls.contains("shoal-test/busybox") && ls.contains("latest"),
        "{ls}"
    );
    let dls = d.docker_ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(dls.contains(IMAGE), "docker image ls: {dls}");

    // Replicas, each in its own root filesystem.
    d.service_create_with(
        "--name web --replicas 3 --restart-delay 1s --stop-grace-period 1s",
        &[IMAGE, "sh", "-c", "echo $HOSTNAME > /tmp/me; sleep 1000"],
    );
    let before = d.wait_running("web", 3);
    for (_, id, pid) in &before {
        // The task's /tmp is its own: what it wrote is there, the node's /tmp is not.
        let mine = std::fs::read_to_string(format!("/proc/{pid}/root/tmp/me"))
            .expect("the task's own /tmp");
        assert!(!mine.trim().is_empty(), "task {id}");
        assert!(
            std::fs::metadata(format!("/proc/{pid}/root/bin/busybox")).is_ok(),
            "task {id} runs from the image"
        );
    }
    // A killed process is replaced.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before[0].2 as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let running = wait_for("a replacement", Duration::from_secs(60), || {
        let r = d.running_tasks("web");
        if r.len() == 3 && r.iter().all(|t| t.1 != before[0].1) {
            Ok(r)
        } else {
            Err(format!("{r:?}"))
        }
    });
    // The daemon restarts (live restore): the same tasks are adopted, not duplicated.
    d.stop();
    d.spawn();
    let after = d.wait_running("web", 3);
    assert_eq!(after, running, "tasks were restarted instead of adopted");

    // A web server from the image answers on the node (host network for now).
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    d.service_create_with(
        "--name www",
        &[IMAGE, "httpd", "-f", "-p", &addr, "-h", "/var/www"],
    );
    d.wait_running("www", 1);
    let page = wait_for("httpd answers", Duration::from_secs(30), || http_get(port));
    assert!(page.contains("hello from shoal"), "{page}");

    // A named volume keeps its files across a task replacement.
    d.service_create_with(
        "--name vol --stop-grace-period 1s --mount type=volume,source=keep,target=/data",
        &[IMAGE, "sh", "-c", "echo run >> /data/log; sleep 1000"],
    );
    let first = d.wait_running("vol", 1);
    d.docker_ok(&["service", "update", "-d", "--force", "vol"]);
    wait_for("the replacement running", Duration::from_secs(60), || {
        let r = d.running_tasks("vol");
        if r.len() == 1 && r[0].1 != first[0].1 {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    let inspect: serde_json::Value =
        serde_json::from_str(&shoal_ok(&d, &["volume", "inspect", "keep"])).expect("json");
    let mountpoint = inspect[0]["Mountpoint"]
        .as_str()
        .expect("mountpoint")
        .to_string();
    let log = wait_for("two runs logged", Duration::from_secs(30), || {
        let l = std::fs::read_to_string(Path::new(&mountpoint).join("log"))
            .map_err(|e| e.to_string())?;
        if l.lines().count() == 2 {
            Ok(l)
        } else {
            Err(l)
        }
    });
    assert_eq!(log, "run\nrun\n");
    assert!(shoal_ok(&d, &["volume", "ls"]).contains("keep"));
    let rm = d.shoal(&["volume", "rm", "keep"]);
    assert!(!rm.status.success(), "a volume in use is kept");
    assert!(
        String::from_utf8_lossy(&rm.stderr).contains("in use"),
        "{rm:?}"
    );

    // Over its memory limit, a task is OOM-killed and shown failed with the reason.
    d.service_create_with(
        "--name hog --limit-memory 16m --restart-condition none",
        &[IMAGE, "sh", "-c", common::EAT_200MB],
    );
    let err = wait_for("the hog failed", Duration::from_secs(60), || {
        let t = d.task_states("hog");
        match t.iter().find(|t| t.1 == "failed") {
            Some(t) => Ok(t.2.clone()),
            None => Err(format!("{t:?}")),
        }
    });
    assert!(err.contains("OOM"), "{err}");

    // An image the node does not have: the task is rejected, saying so.
    d.service_create("--name ghost --restart-condition none nosuch/image:1 true");
    let err = wait_for("the ghost rejected", Duration::from_secs(60), || {
        let t = d.task_states("ghost");
        match t.iter().find(|t| t.1 == "rejected") {
            Some(t) => Ok(t.2.clone()),
            None => Err(format!("{t:?}")),
        }
    });
    assert!(err.contains("No such image"), "{err}");

    // A corrupt archive is refused and changes nothing.
    let junk = d.data_dir().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive at all").expect("junk");
    let out = d.shoal(&["image", "load", "-i", &junk.display().to_string()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid image"), "{err}");
    let ls_after = shoal_ok(&d, &["image", "ls"]);
    assert_eq!(ls_after.lines().count(), ls.lines().count(), "{ls_after}");
    // An image in use cannot be removed.
    let rm = d.shoal(&["image", "rm", IMAGE]);
    assert!(!rm.status.success(), "{rm:?}");
    let err = String::from_utf8_lossy(&rm.stderr);
    assert!(
        err.contains("conflict") && err.contains("used by a running task"),
        "{err}"
    );
    assert!(shoal_ok(&d, &["image", "ls"]).contains("shoal-test/busybox"));
}

/// A registry on loopback (Debian's `docker-registry`, fed by the real docker CLI): `shoal image
/// pull` fills the node's store, and a task whose image the node lacks pulls it on demand.
#[test]
fn images_are_pulled_from_a_registry_by_hand_and_on_demand() {
    // The real engine pushes the image to the registry.
    if !(ready() && need(&[Need::Tool("docker-registry"), Need::DockerEngine])) {
        return;
    }
    let registry_bin =
        shoal_testkit::need::find_tool("docker-registry").expect("docker-registry, found above");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _registry = Killed(
        std::process::Command::new(registry_bin)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker-registry starts"),
    );
    wait_for("the registry", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())
    });
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .expect("docker runs");
        assert!(out.status.success(), "docker {args:?}: {out:?}");
    };
    if !std::process::Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        docker(&["load", "-i", ARCHIVE]);
    }
    let by_hand = format!("127.0.0.1:{port}/busybox:hand");
    let on_demand = format!("127.0.0.1:{port}/busybox:demand");
    for r in [&by_hand, &on_demand] {
        docker(&["tag", IMAGE, r]);
        docker(&["push", r]);
        docker(&["rmi", r]);
    }

    let d = Daemon::start_with_flags(Vec::new(), vec!["--runtime".into(), "native".into()]);
    d.swarm_init();
    let pulled = shoal_ok(&d, &["image", "pull", &by_hand]);
    assert!(pulled.contains("Downloaded"), "{pulled}");
    let ls = shoal_ok(&d, &["image", "ls"]);
    assert!(
        ls.contains(&format!("127.0.0.1:{port}/busybox")) && ls.contains("hand"),
        "{ls}"
    );
    assert!(!ls.contains("demand"), "{ls}");

    d.service_create_with(
        "--no-resolve-image --name pulled",
        &[&on_demand, "sleep", "1000"],
    );
    d.wait_running("pulled", 1);
    let ls = shoal_ok(&d, &["image", "ls"]);
    assert!(ls.contains("demand"), "pulled on demand: {ls}");

    // A registry that does not answer: the pull fails naming it, and nothing is added.
    let dead = format!("127.0.0.1:{}/busybox:x", free_port());
    let out = d.shoal(&["image", "pull", &dead]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&dead),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The raw output of one task (`docker service logs --raw TASK`), polled until it holds every
/// line of `want`.
fn wait_task_log(d: &Daemon, task: &str, want: &[&str]) -> String {
    wait_for(
        &format!("task {task}'s log to show {want:?}"),
        Duration::from_secs(60),
        || {
            let out = d.docker(&["service", "logs", "--raw", task]);
            let log = String::from_utf8_lossy(&out.stdout).into_owned();
            let lines: Vec<&str> = log.lines().collect();
            if want.iter().all(|w| lines.contains(w)) {
                Ok(log)
            } else {
                Err(format!(
                    "{log}{}\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    d.log_tail()
                ))
            }
        },
    )
}

/// `service create --dns --dns-search --dns-option --host` through the real docker CLI: the task
/// of a real image has them in its `/etc/resolv.conf` and `/etc/hosts`, `service inspect`
/// shows them as Docker does, `service update --dns-add/-rm --dns-option-add/-rm
/// --host-add/-rm` rolls the task onto the new ones. A task of the `host` image (the node's
/// own files) and a malformed option are refused, naming the field.
#[test]
fn dns_settings_and_hosts_reach_tasks_and_round_trip_through_the_docker_cli() {
    if !ready() {
        return;
    }
    let d = Daemon::start_with_flags(Vec::new(), vec!["--runtime".into(), "native".into()]);
    d.swarm_init();
    shoal_ok(&d, &["image", "load", "-i", ARCHIVE]);
    d.service_create_with(
        concat!(
            "--name dns --stop-grace-period 1s --dns 192.0.2.53 --dns-search example.org",
            " --dns-option timeout:2 --host db.example:192.0.2.7",
        ),
        &[
            IMAGE,
            "sh",
            "-c",
            "cat /etc/resolv.conf /etc/hosts; sleep 1000",
        ],
    );
    let first = d.wait_running("dns", 1);
    let log = wait_task_log(
        &d,
        &first[0].1,
        &[
            "search example.org",
            "nameserver 192.0.2.53",
            "options timeout:2",
            "192.0.2.7\tdb.example",
        ],
    );
    assert_eq!(
        log.lines().filter(|l| l.starts_with("nameserver")).count(),
        1,
        "only the service's name server: {log}"
    );
    let spec = |f: &str| {
        d.inspect(
            "dns",
            &format!("{{{{json .Spec.TaskTemplate.ContainerSpec.{f}}}}}"),
        )
    };
    assert_eq!(
        spec("DNSConfig"),
        r#"{"Nameservers":["192.0.2.53"],"Search":["example.org"],"Options":["timeout:2"]}"#
    );
    assert_eq!(spec("Hosts"), r#"["192.0.2.7 db.example"]"#);

    d.docker_ok(&[
        "service",
        "update",
        "-d",
        "--dns-add",
        "192.0.2.54",
        "--dns-rm",
        "192.0.2.53",
        "--dns-option-rm",
        "timeout:2",
        "--dns-option-add",
        "attempts:3",
        "--host-add",
        "cache.example:192.0.2.8",
        "--host-rm",
        "db.example",
        "dns",
    ]);
    let second = d.wait_tasks("the task rolled", Duration::from_secs(60), "dns", |t| {
        t.len() == 1 && t[0].1 != first[0].1
    });
    let log = wait_task_log(
        &d,
        &second[0].1,
        &[
            "search example.org",
            "nameserver 192.0.2.54",
            "options attempts:3",
            "192.0.2.8\tcache.example",
        ],
    );
    assert!(
        !log.contains("192.0.2.53") && !log.contains("db.example") && !log.contains("timeout"),
        "what was removed is gone: {log}"
    );
    assert_eq!(
        spec("DNSConfig"),
        r#"{"Nameservers":["192.0.2.54"],"Search":["example.org"],"Options":["attempts:3"]}"#
    );
    assert_eq!(spec("Hosts"), r#"["192.0.2.8 cache.example"]"#);

    // `docker service create -d --name refused FLAG VALUE IMAGE sleep 1` fails, saying `want`.
    let refused = |flag: &str, value: &str, image: &str, want: &str| {
        let out = d.docker(&[
            "service", "create", "-d", "--name", "refused", flag, value, image, "sleep", "1",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{flag} {value} {image}: {err}"
        );
    };
    refused(
        "--dns",
        "192.0.2.53",
        "host",
        "TaskTemplate.ContainerSpec.DNSConfig: tasks of the host image use the node's own \
         /etc/resolv.conf",
    );
    refused(
        "--host",
        "db:192.0.2.7",
        "host",
        "TaskTemplate.ContainerSpec.Hosts: tasks of the host image",
    );
    refused(
        "--dns-option",
        "timeout: 2",
        IMAGE,
        "TaskTemplate.ContainerSpec.DNSConfig.Options[0]",
    );
    let ls = d.docker_ok(&["service", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.contains("refused"), "{ls}");
}
