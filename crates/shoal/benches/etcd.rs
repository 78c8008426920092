//! shoal against etcd, side by side: durable replicated writes per second and their latency
//! (p50, p99) on 3 members on loopback, with 1 and 64 concurrent writers, on an empty store and
//! with 40,000 objects stored, and the ratio shoal/etcd. Printed, never asserted.
//!
//! Both are driven by the same client code: each writer holds one hyper HTTP/1.1 keep-alive
//! connection to each member and sends its writes to them in turn (followers forward to the
//! leader, on both systems), its next write when the previous one is answered. A lone writer
//! thus sees the leader for a third of its writes whichever member leads, so an election
//! between two measurements does not move a figure.
//! - shoal: `POST /services/create` through the Docker Engine API of 3 manager daemons (the
//!   cluster harness, `tests/common/cluster.rs`): each write is one Raft entry committed on a
//!   majority and synced, then applied and run through the manager's loops.
//! - etcd (Debian's `etcd-server`): `POST /v3/kv/put` on its v3 JSON gateway, a new key per
//!   write, with values as long as a stored shoal service (measured, so both stores hold
//!   objects of the same size).
//!
//! The 40,000 objects are written first by 64 concurrent writers (the time it takes is
//! printed). Every process and temp dir the bench makes is removed when it ends, also when it
//! fails (the daemons and etcd members are owned by values dropped on unwinding).
//!
//! Run as root with etcd installed (`apt-get install -y etcd-server`):
//! `cargo bench -p shoal --bench etcd` (`-- --seconds S` per measurement, default 10;
//! `--stored N` instead of 40,000; `--only shoal|etcd`).

#![allow(clippy::disallowed_methods)] // measures wall-clock time of real processes

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/cluster.rs"]
mod harness;
mod util;

use util::arg;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Where one member answers: shoal's API socket, or etcd's client port.
#[derive(Clone, Debug)]
enum Target {
    Unix(PathBuf),
    Tcp(String),
}

/// One keep-alive HTTP/1.1 connection to `t`, the same hyper client for both systems.
async fn connect(t: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
    let (send, conn) = match t {
        Target::Unix(p) => {
            let s = tokio::net::UnixStream::connect(p)
                .await
                .map_err(|e| format!("{}: {e}", p.display()))?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .map_err(|e| e.to_string())?;
            (send, tokio::spawn(conn))
        }
        Target::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a)
                .await
                .map_err(|e| format!("{a}: {e}"))?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .map_err(|e| e.to_string())?;
            (send, tokio::spawn(conn))
        }
    };
    drop(conn); // runs on its own until the connection closes
    Ok(send)
}

/// Sends one request and reads the whole answer; Ok only for the expected status.
async fn send(
    c: &mut SendRequest<Full<Bytes>>,
    path: &str,
    body: Vec<u8>,
    expect: u16,
) -> Result<(), String> {
    c.ready().await.map_err(|e| e.to_string())?;
    let req = hyper::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = c.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status == expect {
        Ok(())
    } else {
        Err(format!("{status} {}", String::from_utf8_lossy(&body)))
    }
}

/// A system under test: its members and how a write of key `k` looks.
struct System {
    name: &'static str,
    members: Vec<Target>,
    /// Bytes of padding in each value (etcd), to match a stored shoal service's size.
    value_len: usize,
}

impl System {
    fn write(&self, key: &str) -> (&'static str, Vec<u8>, u16) {
        match self.name {
            "shoal" => (
                "/v1.50/services/create",
                format!(
                    r#"{{"Name":"{key}","TaskTemplate":{{"ContainerSpec":{{"Image":"host","Args":["true"]}}}},"Mode":{{"Replicated":{{"Replicas":0}}}}}}"#
                )
                .into_bytes(),
                201,
            ),
            _ => {
                let b64 = base64::engine::general_purpose::STANDARD;
                let value = "x".repeat(self.value_len);
                (
                    "/v3/kv/put",
                    serde_json::json!({
                        "key": b64.encode(format!("/services/{key}")),
                        "value": b64.encode(value),
                    })
                    .to_string()
                    .into_bytes(),
                    200,
                )
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Figures {
    writes_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
    /// The first failure's message, so a figure with failures says what they were.
    first_failure: Option<String>,
}

/// `clients` writers over the members for `seconds`: every write's latency.
async fn measure(sys: &Arc<System>, clients: usize, seconds: u64, prefix: &str) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let start = Instant::now();
    let mut handles = Vec::new();
    for k in 0..clients {
        let (sys, stop, failed) = (sys.clone(), stop.clone(), failed.clone());
        let first_failure = first_failure.clone();
        let note = move |e: String| {
            failed.fetch_add(1, Ordering::Relaxed);
            first_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        };
        let prefix = format!("{prefix}-{k}");
        handles.push(tokio::spawn(async move {
            // Each writer sends its writes to the members in turn (one keep-alive connection
            // to each), so a figure never depends on whether the member a lone writer happens
            // to use is the leader: any number of writers spreads evenly over the members.
            let n = sys.members.len();
            let mut lat = Vec::new();
            let mut conns: Vec<Option<SendRequest<Full<Bytes>>>> = (0..n).map(|_| None).collect();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let m = (k + i as usize) % n;
                if conns[m].is_none() {
                    match connect(&sys.members[m]).await {
                        Ok(c) => conns[m] = Some(c),
                        Err(e) => {
                            note(format!("connecting: {e}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = conns[m].as_mut() else { continue };
                let (path, body, expect) = sys.write(&format!("{prefix}-{i}"));
                i += 1;
                let t0 = Instant::now();
                match send(c, path, body, expect).await {
                    Ok(()) => lat.push(t0.elapsed()),
                    Err(e) => {
                        note(e);
                        conns[m] = None;
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap_or_default());
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    Figures {
        writes_per_s: all.len() as f64 / secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        failed: failed.load(Ordering::Relaxed),
        first_failure: first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(),
    }
}

/// Writes `n` objects with 64 concurrent writers; returns how long it took.
async fn fill(sys: &Arc<System>, n: u64) -> Result<Duration, String> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for k in 0..64 {
        let (sys, next) = (sys.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let target = &sys.members[k % sys.members.len()];
            let mut conn = connect(target).await?;
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), String>(());
                }
                let (path, body, expect) = sys.write(&format!("fill-{i}"));
                // A write that fails is tried again (with a fresh connection), a few times.
                while let Err(e) = send(&mut conn, path, body.clone(), expect).await {
                    errors += 1;
                    if errors > 20 {
                        return Err(format!("{}: filling failed: {e}", sys.name));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    conn = connect(target).await?;
                }
            }
        }));
    }
    for h in handles {
        h.await.map_err(|e| e.to_string())??;
    }
    Ok(start.elapsed())
}

/// Three etcd members on loopback, each with its own data dir under one temp dir; killed and
/// removed when dropped.
struct Etcd {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    client_urls: Vec<String>,
}

impl Etcd {
    fn start(n: usize) -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("shoal-etcd-")
            .tempdir()
            .expect("tempdir");
        let mut e = Etcd {
            dir,
            children: Vec::new(),
            client_urls: Vec::new(),
        };
        let peers: Vec<(String, u16, u16)> = (1..=n)
            .map(|i| (format!("e{i}"), common::free_port(), common::free_port()))
            .collect();
        let cluster = peers
            .iter()
            .map(|(name, _, peer)| format!("{name}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        for (name, client, peer) in &peers {
            let log = std::fs::File::create(e.dir.path().join(format!("{name}.log"))).expect("log");
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let child = Command::new("etcd")
                .arg("--name")
                .arg(name)
                .arg("--data-dir")
                .arg(e.dir.path().join(name))
                .args(["--listen-client-urls", &client_url])
                .args(["--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url])
                .args(["--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &cluster])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "shoal-bench"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start etcd (apt-get install -y etcd-server)");
            e.children.push(child);
            e.client_urls.push(format!("127.0.0.1:{client}"));
        }
        e
    }

    fn log_tails(&self) -> String {
        std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|f| f.path().extension().is_some_and(|x| x == "log"))
            .map(|f| {
                let s = std::fs::read_to_string(f.path()).unwrap_or_default();
                let lines: Vec<&str> = s.lines().collect();
                format!(
                    "{}:\n{}",
                    f.path().display(),
                    lines[lines.len().saturating_sub(10)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

struct Row {
    stored: &'static str,
    clients: usize,
    figures: Figures,
}

fn print_rows(name: &str, rows: &[Row]) {
    for r in rows {
        println!(
            "  {name:<5} {:>6} stored, {:>2} writer(s): {:>7.0} writes/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} failed)",
            r.stored,
            r.clients,
            r.figures.writes_per_s,
            r.figures.p50_ms,
            r.figures.p99_ms,
            r.figures.failed
        );
        if let Some(e) = &r.figures.first_failure {
            println!("        the first failure: {}", e.trim());
        }
    }
}

/// Runs the four measurements on `sys`: empty (1, 64 writers), fill to `stored`, then again.
/// `leader` names the member leading before each measurement, where the system says.
fn run_all(
    rt: &tokio::runtime::Runtime,
    sys: &Arc<System>,
    seconds: u64,
    stored: u64,
    leader: &dyn Fn() -> Option<String>,
) -> Vec<Row> {
    let say_leader = |what: &str| {
        if let Some(l) = leader() {
            println!("  {} {what}: {l} leads", sys.name);
        }
    };
    let mut rows = Vec::new();
    let mut written = 0u64;
    for clients in [1, 64] {
        say_leader(&format!("empty, {clients} writer(s)"));
        let f = rt.block_on(measure(sys, clients, seconds, &format!("empty{clients}")));
        written += (f.writes_per_s * seconds as f64) as u64;
        rows.push(Row {
            stored: "empty",
            clients,
            figures: f,
        });
    }
    // The measurements wrote some already; fill up to `stored` objects in all.
    let more = stored.saturating_sub(written);
    match rt.block_on(fill(sys, more)) {
        Ok(took) => println!(
            "  {}: filled {more} objects with 64 concurrent writers in {:.1} s ({:.0}/s)",
            sys.name,
            took.as_secs_f64(),
            more as f64 / took.as_secs_f64()
        ),
        Err(e) => panic!("{e}"),
    }
    for clients in [1, 64] {
        say_leader(&format!("full, {clients} writer(s)"));
        let f = rt.block_on(measure(sys, clients, seconds, &format!("full{clients}")));
        rows.push(Row {
            stored: "full",
            clients,
            figures: f,
        });
    }
    rows
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("etcd bench: needs root (shoal's daemons use namespaces and cgroups)");
        std::process::exit(1);
    }
    let seconds: u64 = arg("--seconds", 10);
    let stored: u64 = arg("--stored", 40_000);
    let only: String = arg("--only", String::new());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "durable writes, 3 members on loopback, the same hyper client; {seconds} s per figure; \"full\" = {stored} objects stored"
    );
    // A stored shoal service's size, for etcd's values; measured when shoal runs.
    let mut value_len = 600;
    let mut shoal_rows = Vec::new();
    if only.is_empty() || only == "shoal" {
        let c = harness::Cluster::form(3, 0, &[]);
        let sys = Arc::new(System {
            name: "shoal",
            members: (1..=3).map(|i| Target::Unix(c.n(i).socket())).collect(),
            value_len: 0,
        });
        let leader = || Some(format!("node{}", c.wait_leader(Duration::from_secs(30))));
        shoal_rows = run_all(&rt, &sys, seconds, stored, &leader);
        if let Ok(v) = c.n(1).service("fill-0") {
            value_len = v.to_string().len();
        }
        print_rows("shoal", &shoal_rows);
        drop(c);
    }
    let mut etcd_rows = Vec::new();
    if only.is_empty() || only == "etcd" {
        let etcd_here = Command::new("etcd")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !etcd_here {
            eprintln!("etcd bench: etcd is missing: apt-get install -y etcd-server");
            std::process::exit(1);
        }
        let e = Etcd::start(3);
        let sys = Arc::new(System {
            name: "etcd",
            members: e.client_urls.iter().cloned().map(Target::Tcp).collect(),
            value_len,
        });
        // Up when every member takes a write.
        let up = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(30);
            for m in &sys.members {
                loop {
                    let (path, body, expect) = sys.write("probe");
                    let ok = match connect(m).await {
                        Ok(mut c) => send(&mut c, path, body, expect).await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        break;
                    }
                    if Instant::now() > deadline {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            true
        });
        assert!(up, "etcd did not come up:\n{}", e.log_tails());
        etcd_rows = run_all(&rt, &sys, seconds, stored, &|| None);
        print_rows("etcd", &etcd_rows);
        drop(e);
    }
    if !shoal_rows.is_empty() && !etcd_rows.is_empty() {
        println!(
            "\n| stored | writers | etcd writes/s | etcd p50/p99 ms | shoal writes/s | shoal p50/p99 ms | shoal/etcd |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for (s, e) in shoal_rows.iter().zip(&etcd_rows) {
            println!(
                "| {} | {} | {:.0} | {:.1} / {:.1} | {:.0} | {:.1} / {:.1} | {:.2} |",
                if s.stored == "full" {
                    stored.to_string()
                } else {
                    "empty".into()
                },
                s.clients,
                e.figures.writes_per_s,
                e.figures.p50_ms,
                e.figures.p99_ms,
                s.figures.writes_per_s,
                s.figures.p50_ms,
                s.figures.p99_ms,
                s.figures.writes_per_s / e.figures.writes_per_s
            );
        }
    }
}
