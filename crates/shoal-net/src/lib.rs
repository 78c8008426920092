//! The overlay data plane's kernel side, through netlink (`rtnetlink`), never the `ip` tool.
//!
//! One overlay network on one node is a bridge with a VXLAN device as its port, both named
//! after the network's VNI. Nothing is learned or multicast: the VXLAN device forwards by static
//! entries (a task's MAC → the node it runs on) and answers ARP for remote tasks itself (`proxy`,
//! with a neighbour entry per remote task), as Swarm's overlay driver does. A task joins with a
//! veth pair whose inner end is moved into the task's namespace and named there.
//!
//! Every call takes the network namespace to act in (a path such as `/run/netns/NAME` or
//! `/proc/PID/ns/net`): a netlink socket belongs to the namespace of the thread that opens it,
//! so each call opens its socket on a thread of its own that has entered that namespace, and
//! the calling threads never change namespace.

pub mod nat;

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::neighbour::{NeighbourFlags, NeighbourState};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, LinkVxlan};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("entering the network namespace {path}")]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{0}")]
    Missing(String),
    /// `nft` or `iptables` refused a change or could not be run; `detail` is its stderr.
    #[error("{program} in the network namespace {}: {what}: {detail}", netns.display())]
    Tool {
        netns: PathBuf,
        program: String,
        what: String,
        detail: String,
    },
    /// An argument the caller can correct: `field` names it (`vips[2].vip`).
    #[error("{field}: {why}")]
    InvalidArgument { field: String, why: String },
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Netlink { what, source }
}

/// Runs `f` with a netlink handle opened inside the namespace at `netns`, on a thread of its
/// own (which alone enters the namespace).
fn in_netns<T, F, Fut>(netns: &Path, f: F) -> Result<T, NetError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, NetError>>,
{
    let path = netns.to_path_buf();
    let err = |source: std::io::Error| NetError::Netns {
        path: netns.to_path_buf(),
        source,
    };
    std::thread::spawn(move || {
        let ns_err = |source: std::io::Error| NetError::Netns {
            path: path.clone(),
            source,
        };
        let ns = std::fs::File::open(&path).map_err(ns_err)?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| ns_err(std::io::Error::from(e)))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(ns_err)?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection().map_err(ns_err)?;
            tokio::spawn(conn);
            f(handle).await
        })
    })
    .join()
    .map_err(|_| err(std::io::Error::other("the netlink thread panicked")))?
}

async fn index_of(h: &Handle, name: &str) -> Result<u32, NetError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(l.header.index),
        Ok(None) => Err(NetError::Missing(format!("no link named {name}"))),
        Err(e) => Err(nl(format!("looking up link {name}"))(e)),
    }
}

/// The names of an overlay's devices on a node: `shbr<VNI>` and `shvx<VNI>` (at most 12 bytes,
/// under the kernel's 15).
pub fn bridge_name(vni: u32) -> String {
    format!("shbr{vni}")
}

pub fn vxlan_name(vni: u32) -> String {
    format!("shvx{vni}")
}

/// VXLAN over IPv4 adds 50 bytes to every frame.
pub const VXLAN_OVERHEAD: u32 = 50;

/// One overlay network's presence on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlay {
    /// The VXLAN network identifier (24 bits).
    pub vni: u32,
    /// This node's underlay address, the tunnel's source.
    pub local: Ipv4Addr,
    /// The data path port (`swarm init --data-path-port`, 4789 by default).
    pub port: u16,
    /// The underlay's MTU; the overlay's is that less [`VXLAN_OVERHEAD`].
    pub underlay_mtu: u32,
}

impl Overlay {
    pub fn mtu(&self) -> u32 {
        self.underlay_mtu.saturating_sub(VXLAN_OVERHEAD)
    }
}

/// Creates the overlay's bridge and VXLAN device in `sandbox` (no learning, ARP answered by
/// the VXLAN device from its neighbour entries), both up. The VXLAN device is made in
/// `node_netns` first, where the underlay is: its UDP socket stays in the namespace it was made
/// in, while the bridge and the tasks' interfaces live in the sandbox, out of reach of the
/// node's own firewall and routes (as Swarm keeps each overlay in a namespace of its own).
pub fn create_overlay(node_netns: &Path, sandbox: &Path, o: Overlay) -> Result<(), NetError> {
    let sandbox_fd = std::fs::File::open(sandbox).map_err(|source| NetError::Netns {
        path: sandbox.to_path_buf(),
        source,
    })?;
    let same = std::fs::metadata(node_netns)
        .and_then(|a| std::fs::metadata(sandbox).map(|b| (a, b)))
        .map(|(a, b)| {
            use std::os::unix::fs::MetadataExt;
            (a.dev(), a.ino()) == (b.dev(), b.ino())
        })
        .unwrap_or(false);
    let vx = vxlan_name(o.vni);
    let vx_in = vx.clone();
    in_netns(node_netns, move |h| async move {
        h.link()
            .add(
                LinkVxlan::new(&vx_in, o.vni)
                    .local(o.local)
                    .port(o.port)
                    .learning(false)
                    .proxy(true)
                    .mtu(o.mtu())
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("creating VXLAN device {vx_in} (VNI {})", o.vni)))?;
        if !same {
            let index = index_of(&h, &vx_in).await?;
            h.link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .setns_by_fd(sandbox_fd.as_raw_fd())
                        .build(),
                )
                .execute()
                .await
                .map_err(nl(format!("moving {vx_in} into the overlay's namespace")))?;
        }
        Ok(())
    })?;
    in_netns(sandbox, move |h| async move {
        let br = bridge_name(o.vni);
        h.link()
            .add(LinkBridge::new(&br).mtu(o.mtu()).build())
            .execute()
            .await
            .map_err(nl(format!("creating bridge {br}")))?;
        let br_index = index_of(&h, &br).await?;
        let vx_index = index_of(&h, &vx).await?;
        h.link()
            .set(
                LinkUnspec::new_with_index(vx_index)
                    .controller(br_index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("putting {vx} on {br}")))?;
        h.link()
            .set(LinkUnspec::new_with_index(br_index).up().build())
            .execute()
            .await
            .map_err(nl(format!("bringing {br} up")))?;
        Ok(())
    })
}

/// Removes the overlay's devices from `netns` (the bridge's ports go with it).
pub fn delete_overlay(netns: &Path, vni: u32) -> Result<(), NetError> {
    in_netns(netns, move |h| async move {
        for name in [vxlan_name(vni), bridge_name(vni)] {
            let index = index_of(&h, &name).await?;
            h.link()
                .del(index)
                .execute()
                .await
                .map_err(nl(format!("removing {name}")))?;
        }
        Ok(())
    })
}

/// A task on another node: frames to `mac` go to `node`, and ARP for `ip` is answered with
/// `mac` here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteTask {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub node: Ipv4Addr,
}

pub fn add_remote(netns: &Path, vni: u32, r: RemoteTask) -> Result<(), NetError> {
    in_netns(netns, move |h| async move {
        let vx = vxlan_name(vni);
        let index = index_of(&h, &vx).await?;
        h.neighbours()
            .add_bridge(index, &r.mac)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .destination(IpAddr::V4(r.node))
            .replace()
            .execute()
            .await
            .map_err(nl(format!("forwarding entry for {} via {}", r.ip, r.node)))?;
        h.neighbours()
            .add(index, IpAddr::V4(r.ip))
            .link_layer_address(&r.mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(nl(format!("neighbour entry for {}", r.ip)))?;
        Ok(())
    })
}

/// Forgets a task that left another node: its forwarding and neighbour entries go. Entries
/// already gone are fine.
pub fn remove_remote(netns: &Path, vni: u32, r: RemoteTask) -> Result<(), NetError> {
    in_netns(netns, move |h| async move {
        let index = index_of(&h, &vxlan_name(vni)).await?;
        let mut msg = rtnetlink::packet_route::neighbour::NeighbourMessage::default();
        msg.header.family = rtnetlink::packet_route::AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes.push(
            rtnetlink::packet_route::neighbour::NeighbourAttribute::LinkLayerAddress(
                r.mac.to_vec(),
            ),
        );
        msg.attributes.push(
            rtnetlink::packet_route::neighbour::NeighbourAttribute::Destination(
                rtnetlink::packet_route::neighbour::NeighbourAddress::Inet(r.node),
            ),
        );
        ignore_missing(h.neighbours().del(msg).execute().await)
            .map_err(nl(format!("forgetting the forwarding entry for {}", r.ip)))?;
        let mut msg = rtnetlink::packet_route::neighbour::NeighbourMessage::default();
        msg.header.family = rtnetlink::packet_route::AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes.push(
            rtnetlink::packet_route::neighbour::NeighbourAttribute::Destination(
                rtnetlink::packet_route::neighbour::NeighbourAddress::Inet(r.ip),
            ),
        );
        ignore_missing(h.neighbours().del(msg).execute().await)
            .map_err(nl(format!("forgetting the neighbour entry for {}", r.ip)))?;
        Ok(())
    })
}

/// ENOENT from the kernel: what was to be removed is already gone.
fn ignore_missing(r: Result<(), rtnetlink::Error>) -> Result<(), rtnetlink::Error> {
    match r {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_enoent() => Ok(()),
        r => r,
    }
}

fn libc_enoent() -> i32 {
    nix::errno::Errno::ENOENT as i32
}

/// A task's interface on an overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The task's address and the network's prefix length.
    pub addr: Ipv4Net,
    pub mac: [u8; 6],
    /// The interface's name inside the task (`eth0`, `eth1`...).
    pub name: String,
    /// The host-side end's name (unique on the node, at most 15 bytes).
    pub host_name: String,
}

/// Connects the task whose namespace is `task_netns` to the overlay `vni` of the node whose
/// namespace is `node_netns`: a veth pair, the host end on the overlay's bridge, the task end
/// moved into the task's namespace, named, addressed and up (with the task's loopback).
pub fn attach(
    node_netns: &Path,
    vni: u32,
    task_netns: &Path,
    a: &Attachment,
) -> Result<(), NetError> {
    let task_ns = std::fs::File::open(task_netns).map_err(|source| NetError::Netns {
        path: task_netns.to_path_buf(),
        source,
    })?;
    let tmp = format!("{}p", a.host_name);
    let (host_name, tmp_in) = (a.host_name.clone(), tmp.clone());
    let bridge = bridge_name(vni);
    let mac = a.mac;
    in_netns(node_netns, move |h| async move {
        let br = index_of(&h, &bridge).await?;
        let mtu = {
            let mut links = h.link().get().match_index(br).execute();
            let link = links
                .try_next()
                .await
                .map_err(nl("reading the bridge"))?
                .ok_or_else(|| NetError::Missing("the bridge vanished".into()))?;
            link.attributes.iter().find_map(|a| match a {
                rtnetlink::packet_route::link::LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        };
        let mut veth = LinkVeth::new(&host_name, &tmp_in);
        if let Some(m) = mtu {
            veth = veth.mtu(m);
        }
        h.link()
            .add(veth.build())
            .execute()
            .await
            .map_err(nl(format!("creating veth {host_name}")))?;
        let host = index_of(&h, &host_name).await?;
        let inner = index_of(&h, &tmp_in).await?;
        let mut inner_link = LinkUnspec::new_with_index(inner)
            .address(mac.to_vec())
            .setns_by_fd(task_ns.as_raw_fd());
        if let Some(m) = mtu {
            inner_link = inner_link.mtu(m);
        }
        h.link()
            .set(inner_link.build())
            .execute()
            .await
            .map_err(nl(format!("moving {tmp_in} into the task")))?;
        h.link()
            .set(LinkUnspec::new_with_index(host).controller(br).up().build())
            .execute()
            .await
            .map_err(nl(format!("putting {host_name} on the bridge")))?;
        Ok(())
    })?;
    let (name, addr) = (a.name.clone(), a.addr);
    in_netns(task_netns, move |h| async move {
        let inner = index_of(&h, &tmp).await?;
        h.link()
            .set(
                LinkUnspec::new_with_index(inner)
                    .name(name.clone())
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("naming {name} in the task")))?;
        h.address()
            .add(inner, IpAddr::V4(addr.addr()), addr.prefix_len())
            .execute()
            .await
            .map_err(nl(format!("addressing {name} with {addr}")))?;
        let lo = index_of(&h, "lo").await?;
        h.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(nl("bringing the task's loopback up"))?;
        Ok(())
    })
}

/// Makes a new, empty network namespace and keeps it at `path` (a bind mount of the namespace
/// on an empty file, as `ip netns add` does), so it outlives the thread that made it and other
/// processes (a task's shim, a Docker sandbox) can join it by path.
pub fn create_netns(path: &Path) -> Result<(), NetError> {
    let err = |source: std::io::Error| NetError::Netns {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(err)?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<(), std::io::Error> {
        // A network namespace belongs to a thread: only this one moves into the new namespace.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        nix::mount::mount(
            Some(own.as_str()),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .map_err(|_| err(std::io::Error::other("the namespace thread panicked")))?;
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(err(e));
    }
    Ok(())
}

/// Releases a namespace kept by [`create_netns`]: it goes once nothing else holds it (its
/// interfaces with it). Missing is fine: deleting twice is not an error.
pub fn delete_netns(path: &Path) -> Result<(), NetError> {
    let err = |source: std::io::Error| NetError::Netns {
        path: path.to_path_buf(),
        source,
    };
    match nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(err(e.into())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// A MAC for a task address, as Docker derives them: `02:42` and the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}
