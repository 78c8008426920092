//! Answers per second from the view: N UDP clients on loopback, each sending one A query for a
//! view name and waiting for its answer before the next, for a few seconds per N.
//!
//! `cargo bench -p shoal-dns --bench answers`; `SHOAL_DNS_BENCH_CLIENTS=1,8,64` and
//! `SHOAL_DNS_BENCH_SECS=3` change what is measured.
#![allow(clippy::disallowed_methods)] // measures wall-clock time

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use shoal_dns::{Resolver, View};
use tokio::net::UdpSocket;
use tokio::sync::watch;

fn main() {
    let clients: Vec<usize> = std::env::var("SHOAL_DNS_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    let secs: u64 = std::env::var("SHOAL_DNS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    runtime.block_on(async {
        let resolver = Resolver::new(Vec::new());
        let names: BTreeMap<String, Vec<Ipv4Addr>> = (0..1000u32)
            .map(|i| {
                let [_, _, a, b] = i.to_be_bytes();
                (format!("web{i}"), vec![Ipv4Addr::new(10, 0, a, b)])
            })
            .chain([(
                "tasks.web".to_owned(),
                (1..=5).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect(),
            )])
            .collect();
        let (_view_tx, view_rx) = watch::channel(Arc::new(View { names }));
        let udp = std::net::UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 11), 0))
            .expect("binding the server's UDP socket");
        let tcp = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 11), 0))
            .expect("binding the server's TCP listener");
        let server = udp.local_addr().expect("server address");
        let _handle = resolver
            .serve(udp, tcp, view_rx, None)
            .expect("serving DNS");

        for &n in &clients {
            let rate = measure(server, n, Duration::from_secs(secs)).await;
            println!("dns answers/s: {rate:.0} (clients={n})");
        }
    });
}

async fn measure(server: SocketAddr, clients: usize, length: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (stop, answered) = (Arc::clone(&stop), Arc::clone(&answered));
        tasks.push(tokio::spawn(async move {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("binding a client socket");
            socket
                .connect(server)
                .await
                .expect("connecting to the server");
            let name = if c % 2 == 0 { "tasks.web." } else { "web7." };
            let mut query = Message::query();
            query.add_query(Query::query(
                Name::from_ascii(name).expect("a valid name"),
                RecordType::A,
            ));
            let packet = query.to_vec().expect("encoding the query");
            let mut buf = [0u8; 1500];
            while !stop.load(Ordering::Relaxed) {
                socket.send(&packet).await.expect("sending a query");
                // A lost datagram is asked again, not waited on forever.
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await
                {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let count = answered.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for task in tasks {
        let _ = task.await;
    }
    count as f64 / elapsed
}
