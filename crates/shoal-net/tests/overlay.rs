//! Two tasks on two hosts (`ip netns` hosts on an underlay bridge, `shoal_testkit::hosts`)
//! talk over a VXLAN overlay built only by this crate: no learning, no multicast, ARP answered
//! from static entries, the task end of each veth named `eth0` inside its task.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use shoal_net::{
    Attachment, Overlay, RemoteTask, add_remote, attach, create_netns, create_overlay,
    delete_netns, delete_overlay, mac_for, remove_remote,
};
use shoal_testkit::hosts::Hosts;
use shoal_testkit::{Need, need};

/// Task namespaces made for the test by [`create_netns`] in a temp dir, released when it ends,
/// passed or failed.
struct TaskNamespaces {
    dir: tempfile::TempDir,
    names: Vec<String>,
}

impl TaskNamespaces {
    fn new(names: &[&str]) -> TaskNamespaces {
        let made = TaskNamespaces {
            dir: tempfile::Builder::new()
                .prefix("shoal-netns-")
                .tempdir()
                .expect("tempdir"),
            names: names.iter().map(|n| n.to_string()).collect(),
        };
        for i in 0..names.len() {
            create_netns(&made.path(i)).expect("create_netns");
        }
        made
    }

    fn path(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.names[i])
    }
}

impl Drop for TaskNamespaces {
    fn drop(&mut self) {
        for i in 0..self.names.len() {
            let _ = delete_netns(&self.path(i));
        }
    }
}

/// Runs `f` on a thread inside the namespace at `path`: sockets it opens live there.
fn inside<T: Send + 'static>(path: PathBuf, f: impl FnOnce() -> T + Send + 'static) -> T {
    shoal_testkit::hosts::in_netns(&path, f).expect("enter the namespace")
}

#[test]
fn two_tasks_on_two_hosts_talk_over_a_vxlan_overlay() {
    if !need(&[Need::Root]) {
        return;
    }
    let hosts = Hosts::new("overlay", 2).expect("hosts");
    // Two tasks, and each host's namespace for the overlay (its bridge and VXLAN device).
    let tasks = TaskNamespaces::new(&["a", "b", "overlay-1", "overlay-2"]);
    let vni = 4097;
    let ips = [Ipv4Addr::new(10, 0, 9, 2), Ipv4Addr::new(10, 0, 9, 3)];
    for (i, ip) in ips.iter().enumerate() {
        let host = hosts.host(i + 1);
        let sandbox = tasks.path(2 + i);
        create_overlay(
            &host.netns_path(),
            &sandbox,
            Overlay {
                vni,
                local: host.addr.into(),
                port: 4789,
                underlay_mtu: 1500,
            },
        )
        .expect("overlay");
        attach(
            &sandbox,
            vni,
            &tasks.path(i),
            &Attachment {
                addr: format!("{ip}/24").parse().expect("cidr"),
                mac: mac_for(*ip),
                name: "eth0".into(),
                host_name: format!("shv{i}"),
            },
        )
        .expect("attach");
        // The other task, on the other host.
        let (other, other_host) = (ips[1 - i], hosts.host(2 - i));
        add_remote(
            &sandbox,
            vni,
            RemoteTask {
                ip: other,
                mac: mac_for(other),
                node: other_host.addr.into(),
            },
        )
        .expect("remote");
    }

    // Task b reaches task a across the underlay, with a payload larger than one frame.
    let at = SocketAddr::from((ips[0], 8080));
    let listener = inside(tasks.path(0), move || TcpListener::bind(at)).expect("bind in task a");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sent = payload.clone();
    let mut out = inside(tasks.path(1), move || {
        TcpStream::connect_timeout(&at, Duration::from_secs(5))
    })
    .expect("task b connects to task a over the overlay");
    let writer = std::thread::spawn(move || {
        out.write_all(&sent).expect("write");
    });
    let (mut conn, from) = listener.accept().expect("accept");
    assert_eq!(
        from.ip(),
        std::net::IpAddr::V4(ips[1]),
        "task a sees task b's own address"
    );
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    conn.read_to_end(&mut got).expect("read");
    writer.join().expect("writer");
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "the payload arrived changed");

    // The hosts themselves are not on the overlay.
    let from_host = hosts
        .host(2)
        .in_netns(move || TcpStream::connect_timeout(&at, Duration::from_millis(500)))
        .expect("enter host 2");
    assert!(from_host.is_err(), "host 2 reached a task address directly");

    // Once host 2 forgets task a, task b no longer reaches it; told again, it does.
    let a_on_1 = RemoteTask {
        ip: ips[0],
        mac: mac_for(ips[0]),
        node: hosts.host(1).addr.into(),
    };
    remove_remote(&tasks.path(3), vni, a_on_1).expect("forget a");
    remove_remote(&tasks.path(3), vni, a_on_1).expect("forgetting twice is fine");
    let forgotten = inside(tasks.path(1), move || {
        TcpStream::connect_timeout(&at, Duration::from_millis(500))
    });
    assert!(
        forgotten.is_err(),
        "task a reachable after host 2 forgot it"
    );
    add_remote(&tasks.path(3), vni, a_on_1).expect("remember a");
    inside(tasks.path(1), move || {
        TcpStream::connect_timeout(&at, Duration::from_secs(5))
    })
    .expect("task a reachable again");

    // Without the overlay on host 1, task b no longer reaches task a.
    delete_overlay(&tasks.path(2), vni).expect("delete overlay");
    let again = inside(tasks.path(1), move || {
        TcpStream::connect_timeout(&at, Duration::from_millis(500))
    });
    assert!(
        again.is_err(),
        "task a still reachable after its overlay was removed"
    );
    drop(tasks);
    drop(hosts);
}

/// A namespace made by `create_netns` is a real, separate one (its own loopback only), can be
/// joined by path, and is gone, mount and file, after `delete_netns`, which may run twice.
#[test]
fn namespaces_are_made_joined_and_released_by_path() {
    if !need(&[Need::Root]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t1");
    create_netns(&path).expect("create");
    assert!(
        create_netns(&path).is_err(),
        "a second namespace on the same path"
    );
    let ours =
        std::fs::metadata("/proc/self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let (theirs, links) = inside(path.clone(), || {
        let ino = std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .expect("ns inode");
        // A fresh namespace's loopback is down: a listener can bind but nothing reaches it.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let at = l.local_addr().expect("addr");
        (
            ino,
            TcpStream::connect_timeout(&at, Duration::from_millis(300)).is_ok(),
        )
    });
    assert_ne!(Some(theirs), ours.ok(), "the namespace is the test's own");
    assert!(
        !links,
        "the new namespace's loopback is up: not a fresh namespace"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        mounts.contains(path.to_str().expect("utf-8")),
        "not mounted"
    );
    delete_netns(&path).expect("delete");
    delete_netns(&path).expect("delete twice");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(path.to_str().expect("utf-8")),
        "still mounted"
    );
    assert!(!path.exists());
}

/// The underlay's MTU is read off the interface that holds the node's address, so overlays
/// subtract their encapsulation from what the wire really takes.
#[test]
fn the_underlay_mtu_is_the_interface_s_that_holds_the_address() {
    if !need(&[Need::Root, Need::Tool("ip")]) {
        return;
    }
    let hosts = Hosts::new("mtu", 1).expect("hosts");
    let host = hosts.host(1);
    let set = std::process::Command::new("ip")
        .args(["-n", &host.netns, "link", "set", "eth0", "mtu", "1400"])
        .status()
        .expect("ip link set");
    assert!(set.success());
    assert_eq!(
        shoal_net::mtu_of(&host.netns_path(), host.addr).expect("read"),
        Some(1400)
    );
    assert_eq!(
        shoal_net::mtu_of(&host.netns_path(), Ipv4Addr::new(192, 0, 2, 250)).expect("read"),
        None,
        "no interface holds that address"
    );
}
