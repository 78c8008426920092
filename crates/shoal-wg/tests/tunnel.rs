//! Tunnels in real namespaces: two `ip netns` nodes on a veth pair (192.0.2.1 and .2), a
//! [`Tunnel`] in each, traffic between their tunnel addresses. Needs root (namespaces, TUN) and
//! `ip`; the capture test needs `tcpdump`.

#![allow(clippy::disallowed_methods)] // deadlines for polling real namespaces and streams

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shoal_testkit::{Need, need};
use shoal_wg::{Keypair, Peer, Tunnel, WgError};
use support::{DEVICE, PORT, Pair, connect_tcp, inside, ip, tcp_echo};

fn needs_root() -> bool {
    need(&[Need::Root, Need::Tool("ip")])
}

/// Polls `f` until it returns `Some` or `secs` pass; on timeout, fails with the last state
/// `describe` gives.
fn eventually<T>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("{what}: not within {secs}s; last state: {}", describe());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn marker_payload(marker: &[u8], n: usize) -> Vec<u8> {
    marker.iter().copied().cycle().take(n).collect()
}

#[test]
fn tunnel_addresses_talk_both_ways() {
    if !needs_root() {
        return;
    }
    let pair = Pair::new("talk");
    let (a, b, _, _) = pair.tunnels(Some([3; 32]));
    assert_eq!(a.mtu(), 1420);
    assert_eq!(a.inner_addr().to_string(), "fd53:686f:616c:1::c000:201");

    // TCP both ways, with payloads larger than a window's worth of packets.
    let payload = marker_payload(b"shoal tunnel ", 300_000);
    let to_b = SocketAddr::new(IpAddr::V6(b.inner_addr()), 7001);
    let back = tcp_echo(&pair.path(1), &pair.path(0), to_b, &payload).expect("a -> b");
    assert!(back == payload, "the echo from b differs");
    let to_a = SocketAddr::new(IpAddr::V6(a.inner_addr()), 7002);
    let back = tcp_echo(&pair.path(0), &pair.path(1), to_a, &payload).expect("b -> a");
    assert!(back == payload, "the echo from a differs");

    // UDP, and b sees a's own tunnel address as the source.
    let b_addr = SocketAddr::new(IpAddr::V6(b.inner_addr()), 7003);
    let rx = inside(&pair.path(1), move || UdpSocket::bind(b_addr)).expect("bind in b");
    rx.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let a_inner = a.inner_addr();
    let tx = inside(&pair.path(0), move || UdpSocket::bind((a_inner, 0))).expect("bind in a");
    tx.send_to(b"datagram", b_addr).expect("send");
    let mut buf = [0u8; 64];
    let (n, from) = rx.recv_from(&mut buf).expect("b receives the datagram");
    assert_eq!(&buf[..n], b"datagram");
    assert_eq!(from.ip(), IpAddr::V6(a.inner_addr()));

    let (sa, sb) = (a.stats(), b.stats());
    assert!(sa.tx_bytes >= payload.len() as u64, "{sa:?}");
    assert!(sb.rx_bytes >= payload.len() as u64, "{sb:?}");
    assert!(sa.handshakes + sb.handshakes >= 2, "{sa:?} {sb:?}");
    let peers = a.peer_stats();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].inner, b.inner_addr());
    assert!(peers[0].session_age.is_some(), "{peers:?}");
}

/// The frames of a pcap file (Ethernet link type), or why it is not one.
fn pcap_frames(file: &[u8]) -> Result<Vec<&[u8]>, String> {
    let head = file.get(..24).ok_or("shorter than a pcap header")?;
    let le = match head[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err("not a pcap file".into()),
    };
    let u32_at = |b: &[u8], at: usize| -> u32 {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    if u32_at(head, 20) != 1 {
        return Err(format!("link type {}, expected Ethernet", u32_at(head, 20)));
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= file.len() {
        let len = u32_at(file, at + 8) as usize;
        let frame = file
            .get(at + 16..at + 16 + len)
            .ok_or("a truncated record")?;
        frames.push(frame);
        at += 16 + len;
    }
    Ok(frames)
}

#[test]
fn the_underlay_carries_only_wireguard_udp_and_never_the_plaintext() {
    if !needs_root() || !need(&[Need::Tool("tcpdump")]) {
        return;
    }
    let pair = Pair::new("capture");
    let (a, b, _, _) = pair.tunnels(None);
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("underlay.pcap");
    let mut tcpdump = std::process::Command::new("nsenter")
        .arg(format!("--net={}", pair.path(0).display()))
        .args([
            "--", "tcpdump", "-i", "eth0", "-n", "-U", "-s", "0", "-Z", "root", "-w",
        ])
        .arg(&pcap)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    // tcpdump says "listening on eth0" once it captures.
    let stderr = tcpdump.stderr.take().expect("stderr");
    let (said, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = said.send(line);
        }
    });
    let mut lines = Vec::new();
    loop {
        match listening.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.contains("listening on") => break,
            Ok(l) => lines.push(l),
            Err(_) => panic!("tcpdump did not start capturing: {lines:?}"),
        }
    }

    let marker = b"SHOAL-PLAINTEXT-MARKER-7f3a9c";
    let payload = marker_payload(marker, 200_000);
    let to_b = SocketAddr::new(IpAddr::V6(b.inner_addr()), 7101);
    let back = tcp_echo(&pair.path(1), &pair.path(0), to_b, &payload).expect("a -> b");
    assert!(back == payload);
    let sent = a.stats().tx_packets;

    // Every frame is on disk once tcpdump has seen them all (-U writes each at once).
    let frames_on_disk = || {
        std::fs::read(&pcap)
            .ok()
            .and_then(|f| pcap_frames(&f).ok().map(|fr| fr.len()))
    };
    eventually(
        10,
        "tcpdump writes the frames",
        || frames_on_disk().filter(|n| *n as u64 > sent),
        || format!("{:?} frames, {sent} sent", frames_on_disk()),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tcpdump.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("stop tcpdump");
    tcpdump.wait().expect("tcpdump exits");

    let file = std::fs::read(&pcap).expect("read the capture");
    assert!(
        !file.windows(marker.len()).any(|w| w == marker),
        "the plaintext marker is on the underlay"
    );
    let frames = pcap_frames(&file).expect("parse the capture");
    let mut wireguard = 0;
    for f in &frames {
        let ethertype = u16::from_be_bytes([f[12], f[13]]);
        match ethertype {
            0x0800 => {
                let ihl = usize::from(f[14] & 0x0f) * 4;
                let proto = f[14 + 9];
                assert_eq!(proto, 17, "an IPv4 packet that is not UDP on the underlay");
                let udp = &f[14 + ihl..];
                let (sport, dport) = (
                    u16::from_be_bytes([udp[0], udp[1]]),
                    u16::from_be_bytes([udp[2], udp[3]]),
                );
                assert!(
                    sport == PORT && dport == PORT,
                    "UDP {sport} -> {dport} on the underlay"
                );
                wireguard += 1;
            }
            // ARP, and the kernel's own IPv6 neighbour discovery and MLD on the veth (MLD
            // behind a hop-by-hop header).
            0x0806 => {}
            0x86dd => {
                let next = match f[14 + 6] {
                    0 => f[14 + 40],
                    n => n,
                };
                assert_eq!(next, 58, "IPv6 other than ICMPv6 on the underlay");
            }
            other => panic!("ethertype {other:#06x} on the underlay"),
        }
    }
    assert!(
        wireguard as u64 > sent,
        "{wireguard} WireGuard datagrams captured, {sent} packets sent"
    );
}

#[test]
fn a_peer_with_a_wrong_key_gets_nothing_through() {
    if !needs_root() {
        return;
    }
    let pair = Pair::new("wrongkey");
    let ka = Keypair::from_os_rng().expect("key");
    let kb = Keypair::from_os_rng().expect("key");
    let wrong = Keypair::from_os_rng().expect("key");
    // a thinks b's key is another; b has a's right.
    let a = Tunnel::start(&pair.path(0), pair.config(0, &ka, wrong.public, None)).expect("a");
    let b = Tunnel::start(&pair.path(1), pair.config(1, &kb, ka.public, None)).expect("b");

    let to_b = SocketAddr::new(IpAddr::V6(b.inner_addr()), 7201);
    let _listener = support::listen_tcp(&pair.path(1), to_b);
    let to_a = SocketAddr::new(IpAddr::V6(a.inner_addr()), 7202);
    let _listener_a = support::listen_tcp(&pair.path(0), to_a);
    let r = connect_tcp(&pair.path(0), to_b, Duration::from_secs(2));
    assert!(r.is_err(), "a reached b with a wrong key");
    let r = connect_tcp(&pair.path(1), to_a, Duration::from_secs(2));
    assert!(r.is_err(), "b reached a though a does not know its key");

    // Both sides did try, and refused what came.
    eventually(
        10,
        "both sides refuse the other's handshakes",
        || (a.stats().rx_dropped > 0 && b.stats().rx_dropped > 0).then_some(()),
        || format!("a {:?}, b {:?}", a.stats(), b.stats()),
    );
    for (side, s) in [("a", a.stats()), ("b", b.stats())] {
        assert_eq!(s.rx_packets, 0, "{side}: {s:?}");
        assert_eq!(s.handshakes, 0, "{side}: {s:?}");
    }
}

/// A stream of numbered datagrams from `from_ns` to `to` (inside `to_ns`), one every 5 ms
/// until `stop`; returns how many were sent and the numbers received.
fn stream(
    from_ns: &Path,
    from: Ipv6Addr,
    to_ns: &Path,
    to: SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u32, BTreeSet<u32>)> {
    let rx = inside(to_ns, move || UdpSocket::bind(to)).expect("bind");
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let tx = inside(from_ns, move || UdpSocket::bind((from, 0))).expect("bind");
    let stop_rx = stop.clone();
    let receiver = std::thread::spawn(move || {
        let mut got = BTreeSet::new();
        let mut buf = [0u8; 16];
        // Ends once the sender has stopped and nothing more is in flight.
        let mut idle = 0;
        while !(stop_rx.load(Ordering::Relaxed) && idle >= 5) {
            match rx.recv(&mut buf) {
                Ok(4) => {
                    got.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
                    idle = 0;
                }
                Ok(_) => {}
                Err(_) => idle += 1,
            }
        }
        got
    });
    std::thread::spawn(move || {
        let mut sent: u32 = 0;
        while !stop.load(Ordering::Relaxed) {
            let _ = tx.send_to(&sent.to_be_bytes(), to);
            sent += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        (sent, receiver.join().expect("receiver"))
    })
}

/// The longest run of numbers below `sent` that never arrived.
fn longest_gap(sent: u32, got: &BTreeSet<u32>) -> u32 {
    let mut longest = 0;
    let mut run = 0;
    for i in 0..sent {
        if got.contains(&i) {
            run = 0;
        } else {
            run += 1;
            longest = longest.max(run);
        }
    }
    longest
}

#[test]
fn rotating_the_preshared_key_and_a_node_key_keeps_traffic_flowing() {
    if !needs_root() {
        return;
    }
    let pair = Pair::new("rotate");
    let (a, b, _ka, kb) = pair.tunnels(Some([1; 32]));
    let stop = Arc::new(AtomicBool::new(false));
    let a_to_b = stream(
        &pair.path(0),
        a.inner_addr(),
        &pair.path(1),
        SocketAddr::new(IpAddr::V6(b.inner_addr()), 7301),
        stop.clone(),
    );
    let b_to_a = stream(
        &pair.path(1),
        b.inner_addr(),
        &pair.path(0),
        SocketAddr::new(IpAddr::V6(a.inner_addr()), 7302),
        stop.clone(),
    );
    let flowing = |t: &Tunnel, more_than: u64| {
        eventually(
            10,
            "traffic arrives",
            || (t.stats().rx_packets > more_than + 20).then_some(()),
            || format!("{:?}", t.stats()),
        )
    };
    flowing(&a, 0);
    flowing(&b, 0);

    let rotated_by = |t: &Tunnel, handshakes: u64| {
        eventually(
            15,
            "a new handshake, and the replaced session retired",
            || {
                let p = t.peer_stats();
                (t.stats().handshakes > handshakes && !p[0].rotating).then_some(())
            },
            || format!("{:?} {:?}", t.stats(), t.peer_stats()),
        )
    };

    // A new cluster PSK: a takes it first; traffic goes on over the old sessions until b
    // has it too.
    let (ha, hb) = (a.stats().handshakes, b.stats().handshakes);
    let peer_of = |i: usize, key| vec![Peer::new(key, pair.listen(i))];
    let a_peers = a.peers();
    a.set_peers(a_peers.clone(), Some([2; 32]))
        .expect("a rotates");
    assert!(a.peer_stats()[0].rotating);
    let (ra, rb) = (a.stats().rx_packets, b.stats().rx_packets);
    flowing(&a, ra);
    flowing(&b, rb);
    b.set_peers(b.peers(), Some([2; 32])).expect("b rotates");
    rotated_by(&a, ha);
    rotated_by(&b, hb);
    let (ra, rb) = (a.stats().rx_packets, b.stats().rx_packets);
    flowing(&a, ra);
    flowing(&b, rb);

    // b takes a new node key; a learns it a moment later.
    let (ha, hb) = (a.stats().handshakes, b.stats().handshakes);
    let kb2 = Keypair::from_os_rng().expect("key");
    b.set_private_key(kb2.private.clone()).expect("b's new key");
    assert_eq!(b.public_key(), kb2.public);
    assert_ne!(kb2.public, kb.public);
    let (ra, rb) = (a.stats().rx_packets, b.stats().rx_packets);
    flowing(&a, ra);
    flowing(&b, rb);
    a.set_peers(peer_of(1, kb2.public), Some([2; 32]))
        .expect("a learns b's key");
    rotated_by(&a, ha);
    rotated_by(&b, hb);
    let (ra, rb) = (a.stats().rx_packets, b.stats().rx_packets);
    flowing(&a, ra);
    flowing(&b, rb);

    stop.store(true, Ordering::Relaxed);
    for (dir, s) in [("a -> b", a_to_b), ("b -> a", b_to_a)] {
        let (sent, got) = s.join().expect("stream");
        let gap = longest_gap(sent, &got);
        // 5 ms apart: 20 missing in a row would be a 100 ms hole.
        assert!(
            gap < 20,
            "{dir}: {gap} datagrams in a row lost ({} of {sent} received)",
            got.len()
        );
        assert!(sent > 200, "{dir}: only {sent} sent");
    }
    // Setting the same peers again changes nothing.
    let h = a.stats().handshakes;
    a.set_peers(a.peers(), Some([2; 32])).expect("same peers");
    assert!(!a.peer_stats()[0].rotating);
    assert_eq!(a.stats().handshakes, h);
    assert_eq!(a_peers.len(), 1);
}

fn device_exists(ns: &str) -> bool {
    ip(&["-n", ns, "link", "show", "dev", DEVICE]).is_ok()
}

#[test]
fn stop_and_drop_remove_the_device_and_start_says_what_failed() {
    if !needs_root() {
        return;
    }
    let pair = Pair::new("stop");
    let ka = Keypair::from_os_rng().expect("key");
    let kb = Keypair::from_os_rng().expect("key");
    let cfg = pair.config(0, &ka, kb.public, None);
    let t = Tunnel::start(&pair.path(0), cfg.clone()).expect("start");
    let link = ip(&["-n", pair.name(0), "link", "show", "dev", DEVICE]).expect("the device exists");
    assert!(link.contains("mtu 1420") && link.contains(",UP"), "{link}");
    let addrs = ip(&["-n", pair.name(0), "-6", "addr", "show", "dev", DEVICE]).expect("addresses");
    assert!(addrs.contains(&format!("{}/96", t.inner_addr())), "{addrs}");

    // The same device name, then the same port, in the same namespace: refused, naming why.
    let e = Tunnel::start(&pair.path(0), cfg.clone()).expect_err("a second shwg0");
    assert!(
        matches!(e, WgError::Device { .. }) && e.to_string().contains("TUN device shwg0"),
        "{e}"
    );
    let mut other = cfg.clone();
    other.device = "shwg1".into();
    let e = Tunnel::start(&pair.path(0), other).expect_err("the same port");
    assert!(matches!(e, WgError::Socket { .. }), "{e}");
    assert!(
        !ip(&["-n", pair.name(0), "link"])
            .expect("links")
            .contains("shwg1"),
        "a failed start leaves no device"
    );
    let e = Tunnel::start(Path::new("/run/netns/no-such-wgt"), cfg.clone()).expect_err("no netns");
    assert!(e.to_string().contains("/run/netns/no-such-wgt"), "{e}");

    t.stop();
    eventually(
        5,
        "the device goes with stop",
        || (!device_exists(pair.name(0))).then_some(()),
        || "still there".into(),
    );

    let t = Tunnel::start(&pair.path(0), cfg).expect("start again");
    assert!(device_exists(pair.name(0)));
    drop(t);
    eventually(
        5,
        "the device goes with drop",
        || (!device_exists(pair.name(0))).then_some(()),
        || "still there".into(),
    );
}
