//! Figures for a node as a Docker Engine, printed, never asserted: the exec round trip (create
//! the exec, start it on a hijacked connection and read its output to the end, read its exit
//! code) of `true` in a running container, p50 and p99, on shoal's native runtime, on shoal's
//! Docker runtime, and on this machine's Docker Engine itself, the three interleaved so that
//! load on the machine falls on all alike; and the wall time of `docker run --rm IMAGE true`
//! (the real docker CLI: create, attach, wait, start, removal) on the same three. Run with
//! `cargo bench -p shoal --bench engine` (as root; `-- --runs N`, default 200 exec round trips
//! per target, and N/10 runs of `docker run`). Needs the test image (`tests/images/build.sh`)
//! and a running Docker Engine. The shoal daemons run in test hosts' network namespaces, so
//! their bridges go with them.

#![allow(clippy::disallowed_methods)] // measures wall-clock time of real processes

#[path = "../tests/common/mod.rs"]
mod common;
mod util;

use std::time::{Duration, Instant};

use common::{Daemon, wait_for};
use serde_json::{Value, json};
use shoal_cli::Client;
use tokio::io::AsyncReadExt;

const IMAGE: &str = "shoal-test/busybox:latest";
const ARCHIVE: &str = "/var/tmp/shoal-images/busybox.tar";

/// One exec of `true`: create, start (hijacked, output read to its end), exit code.
async fn round_trip(c: &Client, container: &str) -> Duration {
    let t = Instant::now();
    let created: Value = c
        .post(
            &format!("/containers/{container}/exec"),
            &[],
            &json!({ "Cmd": ["true"], "AttachStdout": true, "AttachStderr": true }),
        )
        .await
        .expect("exec create");
    let id = created["Id"].as_str().expect("exec id").to_string();
    let mut io = c
        .hijack(
            &format!("/exec/{id}/start"),
            &[],
            &json!({ "Detach": false, "Tty": false }),
        )
        .await
        .expect("exec start");
    let mut sink = Vec::new();
    io.read_to_end(&mut sink).await.expect("exec output");
    let info: Value = c
        .get(&format!("/exec/{id}/json"), &[])
        .await
        .expect("exec inspect");
    assert_eq!(info["ExitCode"], 0, "{info}");
    t.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A shoal daemon on `runtime` running one task of the test image; the daemon and the
/// task's container ID.
fn shoal_target(host: &shoal_testkit::hosts::Host, runtime: &str) -> (Daemon, String) {
    let d = Daemon::start_in(host.netns_path(), vec!["--runtime".into(), runtime.into()]);
    d.swarm_init();
    if runtime == "native" {
        let out = d.shoal(&["image", "load", "-i", ARCHIVE]);
        assert!(out.status.success(), "image load: {out:?}");
    }
    d.service_create_with("--name bench", &[IMAGE, "sleep", "100000"]);
    let id = wait_for("the task's container", Duration::from_secs(60), || {
        let out = d.docker_ok(&["ps", "-q", "--no-trunc", "--filter", "status=running"]);
        out.split_whitespace().next().map(str::to_string).ok_or(out)
    });
    (d, id)
}

/// `docker run --rm IMAGE true` by the docker CLI, `runs` times on each target, interleaved:
/// p50 and p99 wall time, and the ratios to the Docker Engine's.
fn docker_run_rm(native: &Daemon, dockerrt: &Daemon, runs: usize) {
    let hosts = [
        ("shoal native", native.host()),
        ("shoal docker runtime", dockerrt.host()),
        ("Docker Engine", "unix:///var/run/docker.sock".to_string()),
    ];
    let once = |host: &str| {
        let t = Instant::now();
        let out = std::process::Command::new("docker")
            .args(["-H", host, "run", "--rm", IMAGE, "true"])
            .output()
            .expect("docker run");
        assert!(out.status.success(), "docker -H {host} run --rm: {out:?}");
        t.elapsed()
    };
    for (_, h) in &hosts {
        once(h);
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); hosts.len()];
    for _ in 0..runs {
        for (i, (_, h)) in hosts.iter().enumerate() {
            times[i].push(once(h));
        }
    }
    println!(
        "`docker run --rm {IMAGE} true` wall time (the docker CLI), {runs} runs each, interleaved:"
    );
    let mut p50s = Vec::new();
    for (i, (name, _)) in hosts.iter().enumerate() {
        let mut t = times[i].clone();
        t.sort();
        let (p50, p99) = (percentile(&t, 0.5), percentile(&t, 0.99));
        p50s.push(p50);
        println!(
            "  {name:<22} p50 {:>7.1} ms   p99 {:>7.1} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    for (i, (name, _)) in hosts.iter().enumerate().take(2) {
        println!(
            "  {name} / Docker Engine (p50): {:.2}",
            p50s[i].as_secs_f64() / p50s[2].as_secs_f64()
        );
    }
}

fn main() {
    let runs: usize = util::arg("--runs", 200);
    let hosts = shoal_testkit::hosts::Hosts::new("bench-engine", 2).expect("test hosts");
    let (native, native_id) = shoal_target(hosts.host(1), "native");
    let (dockerrt, docker_id) = shoal_target(hosts.host(2), "docker");
    let engine_id = {
        let out = std::process::Command::new("docker")
            .args(["run", "-d", "--rm", IMAGE, "sleep", "100000"])
            .output()
            .expect("docker run");
        assert!(out.status.success(), "docker run: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let targets = [
        (
            "shoal native",
            Client::new(&native.host()).expect("client"),
            native_id,
        ),
        (
            "shoal docker runtime",
            Client::new(&dockerrt.host()).expect("client"),
            docker_id,
        ),
        (
            "Docker Engine",
            Client::new("unix:///var/run/docker.sock").expect("client"),
            engine_id.clone(),
        ),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); targets.len()];
    rt.block_on(async {
        for (_, c, id) in &targets {
            for _ in 0..10 {
                round_trip(c, id).await;
            }
        }
        for _ in 0..runs {
            for (i, (_, c, id)) in targets.iter().enumerate() {
                times[i].push(round_trip(c, id).await);
            }
        }
    });
    let _ = std::process::Command::new("docker")
        .args(["rm", "-f", &engine_id])
        .output();
    println!(
        "exec round trip of `true` (create, start hijacked, exit code), {runs} runs each, interleaved:"
    );
    let mut p50s = Vec::new();
    for (i, (name, _, _)) in targets.iter().enumerate() {
        let mut t = times[i].clone();
        t.sort();
        let (p50, p99) = (percentile(&t, 0.5), percentile(&t, 0.99));
        p50s.push(p50);
        println!(
            "  {name:<22} p50 {:>7.2} ms   p99 {:>7.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    let engine = p50s[2].as_secs_f64();
    for (i, (name, _, _)) in targets.iter().enumerate().take(2) {
        println!(
            "  {name} / Docker Engine (p50): {:.2}",
            p50s[i].as_secs_f64() / engine
        );
    }
    docker_run_rm(&native, &dockerrt, (runs / 10).max(3));
    for d in [&native, &dockerrt] {
        let _ = d.docker(&["service", "rm", "bench"]);
    }
    wait_for("the bench services to go", Duration::from_secs(60), || {
        let left: String = [&native, &dockerrt]
            .iter()
            .map(|d| d.docker_ok(&["ps", "-aq"]))
            .collect();
        if left.trim().is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    });
}
