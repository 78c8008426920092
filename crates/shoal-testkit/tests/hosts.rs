//! The multi-node harness: hosts reach each other over the underlay bridge and nothing else
//! does, and dropping them leaves no namespace and no process behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use shoal_testkit::hosts::{Hosts, processes_in_netns};
use shoal_testkit::{Need, need};

#[test]
fn hosts_talk_over_the_underlay_and_leave_nothing_behind() {
    if !need(&[Need::Root]) {
        return;
    }
    let hosts = Hosts::new("harness", 3).expect("hosts");
    let a = hosts.host(1);
    let c = hosts.host(3);
    assert_eq!(a.addr.to_string(), "192.0.2.11");
    assert_eq!(c.addr.to_string(), "192.0.2.13");

    // A listener opened inside host 1 stays there; host 3 reaches it across the bridge.
    let at = SocketAddr::from((a.addr, 7000));
    let listener = a
        .in_netns(move || TcpListener::bind(at))
        .expect("enter host 1")
        .expect("bind in host 1");
    let mut out = c
        .in_netns(move || TcpStream::connect_timeout(&at, Duration::from_secs(5)))
        .expect("enter host 3")
        .expect("host 3 connects to host 1");
    out.write_all(b"over the underlay").expect("write");
    drop(out);
    let (mut conn, from) = listener.accept().expect("accept");
    assert_eq!(from.ip(), std::net::IpAddr::V4(c.addr));
    let mut got = String::new();
    conn.read_to_string(&mut got).expect("read");
    assert_eq!(got, "over the underlay");

    // The machine's own namespace has no route to the underlay.
    assert!(TcpStream::connect_timeout(&at, Duration::from_millis(300)).is_err());

    // A process left running in a host goes with the hosts.
    let mut sleeper = a
        .command("sleep")
        .arg("1000")
        .spawn()
        .expect("sleep in host 1");
    let path = a.netns_path();
    let names: Vec<String> = std::iter::once(hosts.bridge_netns.clone())
        .chain(hosts.hosts.iter().map(|h| h.netns.clone()))
        .collect();
    for _ in 0..50 {
        if processes_in_netns(&path).contains(&(sleeper.id() as i32)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(processes_in_netns(&path).contains(&(sleeper.id() as i32)));
    drop(hosts);
    let status = sleeper.wait().expect("wait");
    assert!(!status.success(), "the sleeper was killed: {status:?}");
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let left = String::from_utf8_lossy(&left.stdout);
    for n in names {
        assert!(!left.contains(&n), "{n} is still there:\n{left}");
    }
}
