//! Figures for the native runtime, printed, never asserted: how long a 100-replica service takes
//! from `POST /services/create` to 100 running tasks; each task's start latency (from the
//! task's creation to the agent reporting it running), one task at a time and in the 100-task
//! burst, p50 and p99; and the memory the agent spends per idle task (the daemon's growth and
//! each task's shim). Run with `cargo bench -p shoal --bench startup` (as root; add
//! `-- --runs N` for more runs, `--image REF` to run an image loaded with `--load ARCHIVE`
//! rather than the `host` image).

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

/// Nanoseconds since the epoch of an RFC 3339 time with up to 9 fraction digits, UTC (`Z`).
fn rfc3339_nanos(ts: &str) -> Option<i128> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    let nanos: i64 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) as i128) * 1_000_000_000 + nanos as i128)
}

/// Start latency (s) of every running task of `service`: creation to the running report.
fn latencies(d: &Daemon, service: &str) -> Vec<(String, f64)> {
    let (_, tasks) = d.api("GET", "/v1.50/tasks", None);
    let Some(svc_id) = d.api("GET", &format!("/v1.50/services/{service}"), None).1["ID"]
        .as_str()
        .map(str::to_string)
    else {
        return Vec::new();
    };
    tasks
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["ServiceID"] == svc_id.as_str() && t["Status"]["State"] == "running")
        .filter_map(|t| {
            let created = rfc3339_nanos(t["CreatedAt"].as_str()?)?;
            let running = rfc3339_nanos(t["Status"]["Timestamp"].as_str()?)?;
            Some((
                t["ID"].as_str()?.to_string(),
                (running - created) as f64 / 1e9,
            ))
        })
        .collect()
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

fn service_body(name: &str, image: &str, replicas: u64) -> String {
    format!(
        r#"{{"Name":"{name}","TaskTemplate":{{"ContainerSpec":{{"Image":"{image}","Args":["sleep","1000"],"StopGracePeriod":1000000000}}}},"Mode":{{"Replicated":{{"Replicas":{replicas}}}}}}}"#
    )
}

/// One task at a time: scale up by one, wait for it to run, `n` times.
fn sequential_latencies(d: &Daemon, image: &str, n: u64) -> Vec<f64> {
    let (s, v) = d.api(
        "POST",
        "/v1.50/services/create",
        Some(service_body("lat", image, 0).as_bytes()),
    );
    assert_eq!(s, 201, "{v}");
    let mut seen = std::collections::BTreeMap::new();
    for i in 1..=n {
        let (_, svc) = d.api("GET", "/v1.50/services/lat", None);
        let version = svc["Version"]["Index"].as_u64().unwrap_or(0);
        let mut spec = svc["Spec"].clone();
        spec["Mode"]["Replicated"]["Replicas"] = i.into();
        let (s, v) = d.api(
            "POST",
            &format!("/v1.50/services/lat/update?version={version}"),
            Some(spec.to_string().as_bytes()),
        );
        assert_eq!(s, 200, "{v}");
        wait_for("the new task running", Duration::from_secs(60), || {
            let n = running(d, "lat");
            if n >= i {
                Ok(())
            } else {
                Err(format!("{n} running"))
            }
        });
        for (id, l) in latencies(d, "lat") {
            seen.entry(id).or_insert(l);
        }
    }
    let _ = d.api("DELETE", "/v1.50/services/lat", None);
    seen.into_values().collect()
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
    // Native: the figures are the native runtime's, whatever engine the machine has.
    let d = Daemon::start_with_flags(Vec::new(), vec!["--runtime".into(), "native".into()]);
    let init = format!(
        r#"{{"ListenAddr":"{0}","AdvertiseAddr":"{0}"}}"#,
        d.cluster_addr
    );
    let (s, v) = d.api("POST", "/v1.50/swarm/init", Some(init.as_bytes()));
    assert_eq!(s, 200, "{v}");
    std::thread::sleep(Duration::from_secs(3));
    let idle = rss_kib(d.pid());

    let image = args
        .iter()
        .position(|a| a == "--image")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "host".to_string());
    if let Some(archive) = args
        .iter()
        .position(|a| a == "--load")
        .and_then(|i| args.get(i + 1))
    {
        let out = d.shoal(&["image", "load", "-i", archive]);
        assert!(out.status.success(), "image load: {out:?}");
    }
    let sequential = sequential_latencies(&d, &image, 50);
    wait_for("latency tasks gone", Duration::from_secs(120), || {
        let (_, t) = d.api("GET", "/v1.50/tasks", None);
        if t.as_array().is_some_and(|a| a.is_empty()) {
            Ok(())
        } else {
            Err("tasks remain".into())
        }
    });
    let body_string = service_body("bench", &image, 100);
    let body = body_string.as_bytes();
    let mut burst = Vec::new();
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
        burst.extend(latencies(&d, "bench").into_iter().map(|(_, l)| l));
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
    println!("image: {image}");
    println!(
        "task start latency, one at a time (n={}): p50 {:.3} s, p99 {:.3} s",
        sequential.len(),
        percentile(&sequential, 50.0),
        percentile(&sequential, 99.0)
    );
    println!(
        "task start latency in a 100-task burst (n={}): p50 {:.3} s, p99 {:.3} s",
        burst.len(),
        percentile(&burst, 50.0),
        percentile(&burst, 99.0)
    );
    println!(
        "service create --replicas 100 {image} sleep 1000 -> 100/100 running (native runtime):"
    );
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
    println!(
        "agent memory per idle task: {} KiB (daemon growth / 100 + one shim)",
        (busy.saturating_sub(idle)) / 100 + shim_rss
    );
}
