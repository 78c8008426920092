//! Making the tunnel's TUN device and UDP socket inside a network namespace.
//!
//! A TUN device and a socket belong to the namespace of the thread that makes them, and stay
//! there wherever they are used from. So both are made on a short-lived thread that enters the
//! namespace and ends right after; no other thread ever changes namespace.

use std::fs::File;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;

use tun_rs::{DeviceBuilder, SyncDevice};

use crate::config::TunnelConfig;
use crate::{INNER_PREFIX_LEN, WgError};

/// Socket buffers deep enough for bursts at hundreds of Mbit/s (the kernel caps them at
/// `net.core.rmem_max`/`wmem_max`).
const SOCKET_BUFFER: usize = 4 << 20;

/// Makes the device and the socket on a thread that enters `netns` (and ends right after).
pub(crate) fn open_in_netns(
    netns: &Path,
    cfg: &TunnelConfig,
) -> Result<(SyncDevice, UdpSocket), WgError> {
    let ns_err = |source| WgError::Netns {
        path: netns.to_path_buf(),
        source,
    };
    let ns = File::open(netns).map_err(ns_err)?;
    let (path, device, listen, mtu, inner) = (
        netns.to_path_buf(),
        cfg.device.clone(),
        cfg.listen,
        cfg.mtu(),
        cfg.inner(),
    );
    std::thread::Builder::new()
        .name("shwg-setup".into())
        .spawn(move || {
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                WgError::Netns {
                    path: path.clone(),
                    source: e.into(),
                }
            })?;
            let dev_err = |what: String| {
                let (device, netns) = (device.clone(), path.clone());
                move |source| WgError::Device {
                    device,
                    netns,
                    what,
                    source,
                }
            };
            // Step by step, so an error says which step failed. Dropping the device on an
            // error removes it again.
            let dev = DeviceBuilder::new()
                .name(device.clone())
                .enable(false)
                .build_sync()
                .map_err(dev_err("creating it".into()))?;
            // The configuration checked 1360 <= MTU + 80 <= 65535.
            let mtu16 = u16::try_from(mtu).unwrap_or(u16::MAX);
            dev.set_mtu(mtu16)
                .map_err(dev_err(format!("setting the MTU to {mtu}")))?;
            dev.add_address_v6(inner, INNER_PREFIX_LEN)
                .map_err(dev_err(format!(
                    "adding the address {inner}/{INNER_PREFIX_LEN}"
                )))?;
            dev.enabled(true)
                .map_err(dev_err("bringing it up".into()))?;
            let socket = bind_udp(listen).map_err(|source| WgError::Socket {
                addr: listen,
                netns: path.clone(),
                source,
            })?;
            Ok((dev, socket))
        })
        .map_err(|source| WgError::Thread {
            name: "shwg-setup".into(),
            source,
        })?
        .join()
        .map_err(|_| WgError::Thread {
            name: "shwg-setup".into(),
            source: std::io::Error::other("it panicked"),
        })?
}

fn bind_udp(listen: SocketAddrV4) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_nonblocking(true)?;
    s.set_recv_buffer_size(SOCKET_BUFFER)?;
    s.set_send_buffer_size(SOCKET_BUFFER)?;
    s.bind(&SocketAddr::V4(listen).into())?;
    Ok(s.into())
}
