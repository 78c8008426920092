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
mod ports;

pub use ports::{HeldPort, hold_port};

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
    /// Refused because of what else exists (a name taken, a network still in use); the
    /// message names it.
    #[error("{0}")]
    Conflict(String),
    /// What the caller named does not exist; the message names it.
    #[error("{0}")]
    NotFound(String),
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
/// VXLAN over IPv6 (an encrypted overlay's tunnel addresses) adds 70.
pub const VXLAN6_OVERHEAD: u32 = 70;

/// One overlay network's presence on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlay {
    /// The VXLAN network identifier (24 bits).
    pub vni: u32,
    /// This node's underlay address, the tunnel's source: an encrypted overlay's is the
    /// node's IPv6 address inside its WireGuard tunnel.
    pub local: IpAddr,
    /// The data path port (`swarm init --data-path-port`, 4789 by default).
    pub port: u16,
    /// The MTU of what carries the VXLAN packets (the underlay, or the tunnel); the
    /// overlay's is that less [`VXLAN_OVERHEAD`] (or [`VXLAN6_OVERHEAD`]).
    pub underlay_mtu: u32,
}

impl Overlay {
    pub fn mtu(&self) -> u32 {
        let overhead = match self.local {
            IpAddr::V4(_) => VXLAN_OVERHEAD,
            IpAddr::V6(_) => VXLAN6_OVERHEAD,
        };
        self.underlay_mtu.saturating_sub(overhead)
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
        let vxlan = LinkVxlan::new(&vx_in, o.vni);
        let vxlan = match o.local {
            IpAddr::V4(a) => vxlan.local(a),
            IpAddr::V6(a) => vxlan.local6(a),
        };
        h.link()
            .add(
                vxlan
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
    /// Where the node's VXLAN packets go: its underlay address, or its tunnel address on an
    /// encrypted overlay.
    pub node: IpAddr,
}

pub fn add_remote(netns: &Path, vni: u32, r: RemoteTask) -> Result<(), NetError> {
    in_netns(netns, move |h| async move {
        let vx = vxlan_name(vni);
        let index = index_of(&h, &vx).await?;
        h.neighbours()
            .add_bridge(index, &r.mac)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .destination(r.node)
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
            rtnetlink::packet_route::neighbour::NeighbourAttribute::Destination(match r.node {
                IpAddr::V4(a) => rtnetlink::packet_route::neighbour::NeighbourAddress::Inet(a),
                IpAddr::V6(a) => rtnetlink::packet_route::neighbour::NeighbourAddress::Inet6(a),
            }),
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
    attach_to(node_netns, &bridge_name(vni), task_netns, a)
}

/// Connects the task whose namespace is `task_netns` to the bridge `bridge` in `netns`, as
/// [`attach`] does for an overlay's.
pub fn attach_to(
    netns: &Path,
    bridge: &str,
    task_netns: &Path,
    a: &Attachment,
) -> Result<(), NetError> {
    let node_netns = netns;
    let task_ns = std::fs::File::open(task_netns).map_err(|source| NetError::Netns {
        path: task_netns.to_path_buf(),
        source,
    })?;
    let tmp = format!("{}p", a.host_name);
    let (host_name, tmp_in) = (a.host_name.clone(), tmp.clone());
    let bridge = bridge.to_string();
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

/// The empty file a namespace is bind-mounted on, made new: a path in use is refused.
fn mount_point(path: &Path) -> Result<(), NetError> {
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
        .map(|_| ())
        .map_err(err)
}

/// Makes a new, empty network namespace and keeps it at `path` (a bind mount of the namespace
/// on an empty file, as `ip netns add` does), so it outlives the thread that made it and other
/// processes (a task's shim, a Docker sandbox) can join it by path.
pub fn create_netns(path: &Path) -> Result<(), NetError> {
    let err = |source: std::io::Error| NetError::Netns {
        path: path.to_path_buf(),
        source,
    };
    mount_point(path)?;
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

/// Keeps the namespace at `source` (another process's, such as `/proc/PID/ns/net`) at `path`
/// too, as [`create_netns`] keeps a new one, so it is wired and released the same way.
pub fn keep_netns(source: &Path, path: &Path) -> Result<(), NetError> {
    mount_point(path)?;
    if let Err(e) = nix::mount::mount(
        Some(source),
        path,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(path);
        return Err(NetError::Netns {
            path: source.to_path_buf(),
            source: e.into(),
        });
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

/// Where a node's own namespace joins an overlay: the end of a veth pair there (`name`, with
/// `mac`, no address), the other end on the overlay's bridge in its sandbox, and a route to
/// the overlay's subnet through it. The routing mesh sends published ports' connections into
/// the ingress network this way, and the tasks send their replies back to `mac`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLink {
    pub name: String,
    pub mac: [u8; 6],
    pub subnet: Ipv4Net,
    /// An address (/32) for the node's end: the node's own underlay address, so that what the
    /// node itself sends into the overlay (and masquerades there) has a source the tasks'
    /// replies find their way back to.
    pub addr: Option<Ipv4Addr>,
}

/// Makes [`NodeLink`] `l` between `node_netns` and the overlay `vni` in `sandbox`, or keeps
/// it when a restarted daemon finds it in place.
pub fn join_node(
    node_netns: &Path,
    sandbox: &Path,
    vni: u32,
    l: &NodeLink,
) -> Result<(), NetError> {
    let sandbox_fd = std::fs::File::open(sandbox).map_err(|source| NetError::Netns {
        path: sandbox.to_path_buf(),
        source,
    })?;
    let l = l.clone();
    let peer = format!("{}p", l.name);
    let peer_in = peer.clone();
    let bridge = bridge_name(vni);
    let mtu = in_netns(sandbox, {
        let bridge = bridge.clone();
        move |h| async move {
            let br = index_of(&h, &bridge).await?;
            let mut links = h.link().get().match_index(br).execute();
            let link = links
                .try_next()
                .await
                .map_err(nl("reading the bridge"))?
                .ok_or_else(|| NetError::Missing("the bridge vanished".into()))?;
            Ok(link.attributes.iter().find_map(|a| match a {
                rtnetlink::packet_route::link::LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            }))
        }
    })?;
    let made = in_netns(node_netns, move |h| async move {
        if index_of(&h, &l.name).await.is_ok() {
            return Ok(false);
        }
        let mut veth = LinkVeth::new(&l.name, &peer_in);
        if let Some(m) = mtu {
            veth = veth.mtu(m);
        }
        h.link()
            .add(veth.build())
            .execute()
            .await
            .map_err(nl(format!("creating veth {}", l.name)))?;
        let ours = index_of(&h, &l.name).await?;
        let theirs = index_of(&h, &peer_in).await?;
        h.link()
            .set(
                LinkUnspec::new_with_index(theirs)
                    .setns_by_fd(sandbox_fd.as_raw_fd())
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("moving {peer_in} into the overlay's namespace")))?;
        h.link()
            .set(
                LinkUnspec::new_with_index(ours)
                    .address(l.mac.to_vec())
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("bringing {} up", l.name)))?;
        if let Some(a) = l.addr {
            h.address()
                .add(ours, IpAddr::V4(a), 32)
                .execute()
                .await
                .map_err(nl(format!("addressing {} with {a}/32", l.name)))?;
        }
        h.route()
            .add(
                rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(l.subnet.network(), l.subnet.prefix_len())
                    .output_interface(ours)
                    .scope(rtnetlink::packet_route::route::RouteScope::Link)
                    .build(),
            )
            .replace()
            .execute()
            .await
            .map_err(nl(format!("route to {} dev {}", l.subnet, l.name)))?;
        Ok(true)
    })?;
    if !made {
        return Ok(());
    }
    in_netns(sandbox, move |h| async move {
        let br = index_of(&h, &bridge).await?;
        let end = index_of(&h, &peer).await?;
        h.link()
            .set(LinkUnspec::new_with_index(end).controller(br).up().build())
            .execute()
            .await
            .map_err(nl(format!("putting {peer} on {bridge}")))?;
        Ok(())
    })
}

/// Removes a link [`join_node`] made (its other end goes with it); absent is fine.
pub fn leave_node(node_netns: &Path, name: &str) -> Result<(), NetError> {
    let name = name.to_string();
    in_netns(node_netns, move |h| async move {
        match index_of(&h, &name).await {
            Ok(i) => ignore_missing(h.link().del(i).execute().await)
                .map_err(nl(format!("removing {name}"))),
            Err(_) => Ok(()),
        }
    })
}

/// Removes the link `name` from `netns` (a bridge takes its ports' links off it, a veth its
/// peer); absent is fine.
pub fn delete_link(netns: &Path, name: &str) -> Result<(), NetError> {
    leave_node(netns, name)
}

/// The names of the links in `netns`.
pub fn link_names(netns: &Path) -> Result<Vec<String>, NetError> {
    use rtnetlink::packet_route::link::LinkAttribute;
    in_netns(netns, |h| async move {
        let links: Vec<_> = h
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("listing links"))?;
        Ok(links
            .iter()
            .filter_map(|l| {
                l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })
            })
            .collect())
    })
}

/// A bridge in `netns` holding `addr` (its address and subnet), up; kept as it is when it
/// exists. A node's gateway network is one (Docker's `docker_gwbridge`).
pub fn ensure_bridge(netns: &Path, name: &str, addr: Ipv4Net) -> Result<(), NetError> {
    let name = name.to_string();
    in_netns(netns, move |h| async move {
        let index = match index_of(&h, &name).await {
            Ok(i) => i,
            Err(_) => {
                h.link()
                    .add(LinkBridge::new(&name).build())
                    .execute()
                    .await
                    .map_err(nl(format!("creating bridge {name}")))?;
                index_of(&h, &name).await?
            }
        };
        let present = h
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect::<Vec<_>>()
            .await
            .map_err(nl(format!("listing the addresses of {name}")))?
            .iter()
            .any(|m| {
                m.attributes.iter().any(|a| {
                    matches!(a, rtnetlink::packet_route::address::AddressAttribute::Address(IpAddr::V4(v)) if *v == addr.addr())
                })
            });
        if !present {
            h.address()
                .add(index, IpAddr::V4(addr.addr()), addr.prefix_len())
                .execute()
                .await
                .map_err(nl(format!("addressing {name} with {addr}")))?;
        }
        h.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl(format!("bringing {name} up")))?;
        Ok(())
    })
}

/// Sets the namespace's default route: via `gateway` on `dev`.
pub fn set_default_route(netns: &Path, dev: &str, gateway: Ipv4Addr) -> Result<(), NetError> {
    let dev = dev.to_string();
    in_netns(netns, move |h| async move {
        let index = index_of(&h, &dev).await?;
        h.route()
            .add(
                rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gateway)
                    .output_interface(index)
                    .build(),
            )
            .replace()
            .execute()
            .await
            .map_err(nl(format!("default route via {gateway} dev {dev}")))
    })
}

/// Lets the namespace forward packets between its interfaces (`net.ipv4.ip_forward`), as a
/// node that publishes ports and gives its tasks a way out must.
pub fn enable_forwarding(netns: &Path) -> Result<(), NetError> {
    let path = netns.to_path_buf();
    let err = |source: std::io::Error| NetError::Netns {
        path: netns.to_path_buf(),
        source,
    };
    std::thread::spawn(move || -> std::io::Result<()> {
        let ns = std::fs::File::open(&path)?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        // /proc/sys/net shows the namespace of the thread that opens it.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
    })
    .join()
    .map_err(|_| err(std::io::Error::other("the sysctl thread panicked")))?
    .map_err(err)
}

/// A MAC for a node's end of a [`NodeLink`]: `02:4e` and the four bytes of its underlay
/// address, apart from every task's ([`mac_for`]).
pub fn node_mac(underlay: Ipv4Addr) -> [u8; 6] {
    let o = underlay.octets();
    [0x02, 0x4e, o[0], o[1], o[2], o[3]]
}

/// The IPv4 destinations the namespace routes (every table but the local one) and the
/// subnets of its addresses: what a new subnet of the node must not overlap.
pub fn ipv4_in_use(netns: &Path) -> Result<Vec<Ipv4Net>, NetError> {
    use rtnetlink::packet_route::address::AddressAttribute;
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
    in_netns(netns, |h| async move {
        let mut out = Vec::new();
        let routes: Vec<_> = h
            .route()
            .get(rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(nl("listing routes"))?;
        for r in routes {
            let len = r.header.destination_prefix_length;
            if len == 0 {
                continue;
            }
            for a in &r.attributes {
                if let RouteAttribute::Destination(RouteAddress::Inet(d)) = a
                    && let Ok(n) = Ipv4Net::new(*d, len)
                {
                    out.push(n.trunc());
                }
            }
        }
        let addrs: Vec<_> = h
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("listing addresses"))?;
        for m in addrs {
            for a in &m.attributes {
                if let AddressAttribute::Address(IpAddr::V4(v)) = a
                    && let Ok(n) = Ipv4Net::new(*v, m.header.prefix_len)
                {
                    out.push(n.trunc());
                }
            }
        }
        Ok(out)
    })
}

/// The MTU of the interface in `netns` that holds `addr` (the node's underlay address), or
/// `None` when no interface there holds it.
pub fn mtu_of(netns: &Path, addr: Ipv4Addr) -> Result<Option<u32>, NetError> {
    use rtnetlink::packet_route::address::AddressAttribute;
    in_netns(netns, move |h| async move {
        let addrs: Vec<_> = h
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("listing addresses"))?;
        let Some(index) = addrs
            .iter()
            .find(|m| {
                m.attributes
                    .iter()
                    .any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(v)) if *v == addr))
            })
            .map(|m| m.header.index)
        else {
            return Ok(None);
        };
        let mut links = h.link().get().match_index(index).execute();
        let link = links
            .try_next()
            .await
            .map_err(nl(format!("reading the link that holds {addr}")))?;
        Ok(link.and_then(|l| {
            l.attributes.iter().find_map(|a| match a {
                rtnetlink::packet_route::link::LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            })
        }))
    })
}
