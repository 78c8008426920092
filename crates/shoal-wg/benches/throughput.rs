//! TCP throughput between two namespaces, over the plain veth and over the tunnel, in one run:
//! `cargo bench -p shoal-wg --bench throughput` (as root). Each measurement is one stream from
//! a to b for `SHOAL_WG_BENCH_SECS` seconds (3 by default); prints Mbit/s and the ratio.

#![allow(clippy::disallowed_methods)] // measures wall-clock time

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use shoal_testkit::{Need, need};
use support::{Pair, connect_tcp, listen_tcp};

/// Sends for `secs` from a to `addr` in b; returns the receiver's Mbit/s.
fn measure(pair: &Pair, addr: SocketAddr, secs: f64) -> f64 {
    let listener = listen_tcp(&pair.path(1), addr);
    let server = std::thread::spawn(move || -> std::io::Result<(u64, Duration)> {
        let (mut c, _) = listener.accept()?;
        let mut buf = vec![0u8; 256 << 10];
        let mut total = 0u64;
        let mut first: Option<Instant> = None;
        loop {
            let n = c.read(&mut buf)?;
            if n == 0 {
                break;
            }
            first.get_or_insert_with(Instant::now);
            total += n as u64;
        }
        Ok((total, first.map(|f| f.elapsed()).unwrap_or_default()))
    });
    let mut c = connect_tcp(&pair.path(0), addr, Duration::from_secs(5)).expect("connect");
    let chunk = vec![0x5au8; 128 << 10];
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        c.write_all(&chunk).expect("write");
    }
    c.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let (bytes, took) = server.join().expect("server").expect("receive");
    bytes as f64 * 8.0 / took.as_secs_f64().max(1e-9) / 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that does not name us skips the run.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.iter().any(|f| !"throughput".contains(f.as_str())) {
        return;
    }
    if !need(&[Need::Root, Need::Tool("ip")]) {
        return;
    }
    let secs: f64 = std::env::var("SHOAL_WG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let pair = Pair::new("bench");
    let (a, b, _, _) = pair.tunnels(Some([7; 32]));

    let veth = measure(
        &pair,
        SocketAddr::new(IpAddr::V4(pair.underlay(1)), 5201),
        secs,
    );
    let tunnel = measure(
        &pair,
        SocketAddr::new(IpAddr::V6(b.inner_addr()), 5202),
        secs,
    );
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("shoal-wg throughput: one TCP stream a -> b, {secs} s each, {cpus} CPUs");
    println!("  veth (plain)        {veth:>10.1} Mbit/s  (MTU 1500)");
    println!(
        "  tunnel (WireGuard)  {tunnel:>10.1} Mbit/s  (MTU {})",
        a.mtu()
    );
    println!("  tunnel / veth       {:>10.3}", tunnel / veth);
    println!("  a: {:?}", a.stats());
    println!("  b: {:?}", b.stats());
}
