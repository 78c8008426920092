//! Figures for the walking skeleton, printed, never asserted: how long a 100-replica service takes
//! from `POST /services/create` to 100 running tasks on the native runtime, and the daemon's
//! resident memory idle and with 100 tasks. Run with `cargo bench -p shoal --bench startup`
//! (as root; add `-- --runs N` for more runs).

#![allow(clippy::disallowed_methods)] // measures wall-clock time of real processes

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Daemon, wait_for};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
            })
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn running(d: &Daemon, name: &str) -> u64 {
    let (_, v) = d.api("GET", "/v1.50/services?status=true", None);
    v.as_array()
        .and_then(|a| a.iter().find(|s| s["Spec"]["Name"] == name))
        .and_then(|s| s["ServiceStatus"]["RunningTasks"].as_u64())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    if !nix::unistd::geteuid().is_root() {
        eprintln!("startup bench: needs root (namespaces and cgroups); skipped");
        return;
    }
    let d = Daemon::start();
    let init = format!(
        r#"{{"ListenAddr":"{0}","AdvertiseAddr":"{0}"}}"#,
        d.cluster_addr
    );
    let (s, v) = d.api("POST", "/v1.50/swarm/init", Some(init.as_bytes()));
    assert_eq!(s, 200, "{v}");
    std::thread::sleep(Duration::from_secs(3));
    let idle = rss_kib(d.pid());

    let body = br#"{"Name":"bench","TaskTemplate":{"ContainerSpec":{"Image":"host","Args":["sleep","1000"],"StopGracePeriod":1000000000}},"Mode":{"Replicated":{"Replicas":100}}}"#;
    let mut times = Vec::new();
    let mut busy = 0;
    let mut shim_rss = 0;
    for run in 0..runs {
        let t0 = Instant::now();
        let (s, v) = d.api("POST", "/v1.50/services/create", Some(body));
        assert_eq!(s, 201, "{v}");
        wait_for("100 running", Duration::from_secs(300), || {
            let n = running(&d, "bench");
            if n >= 100 {
                Ok(())
            } else {
                Err(format!("{n} running"))
            }
        });
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "run {}: 100 replicas running {:.2} s after create",
            run + 1,
            secs
        );
        times.push(secs);
        if run == 0 {
            std::thread::sleep(Duration::from_secs(2));
            busy = rss_kib(d.pid());
            let shims: Vec<u32> = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| {
                    std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                        c.split(|b| *b == 0).nth(1) == Some(b"shim")
                            && c.windows(d.data_dir().as_os_str().len())
                                .any(|w| w == d.data_dir().as_os_str().as_encoded_bytes())
                    })
                })
                .collect();
            shim_rss = shims.iter().map(|p| rss_kib(*p)).sum::<u64>() / shims.len().max(1) as u64;
        }
        let (s, v) = d.api("DELETE", "/v1.50/services/bench", None);
        assert_eq!(s, 200, "{v}");
        wait_for("tasks gone", Duration::from_secs(120), || {
            let (_, t) = d.api("GET", "/v1.50/tasks", None);
            if t.as_array().is_some_and(|a| a.is_empty()) {
                Ok(())
            } else {
                Err("tasks remain".into())
            }
        });
    }
    println!();
    println!("service create --replicas 100 host sleep 1000 -> 100/100 running (native runtime):");
    println!(
        "  median {:.2} s over {} runs (min {:.2} s, max {:.2} s)",
        median(times.clone()),
        runs,
        times.iter().cloned().fold(f64::MAX, f64::min),
        times.iter().cloned().fold(0.0, f64::max)
    );
    println!(
        "daemon RSS: idle {} MiB, with 100 tasks {} MiB",
        idle / 1024,
        busy / 1024
    );
    println!("per-task shim RSS: {} KiB", shim_rss);
}
