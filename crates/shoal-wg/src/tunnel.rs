//! A running tunnel: its device and socket (made in its namespace by `setup`), the state its
//! threads share (`workers`), and the calls that change it.
//!
//! Concurrency: the peer table is read without locks, as a snapshot each thread refreshes when
//! the generation moves; changes (peers, keys, retirement) build a new table under the control
//! lock and swap it in. [`Tunnel`]'s methods take `&self` and may be called from any thread.

use std::io::{PipeReader, PipeWriter};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tun_rs::SyncDevice;

use crate::WgError;
use crate::config::{Peer, TunnelConfig, validate_peers};
use crate::datapath::{self, BUF_LEN, Counters};
use crate::keys::{PrivateKey, PublicKey};
use crate::peers::{Identity, IndexAlloc, PeerState, Table};
use crate::setup::open_in_netns;
use crate::workers::{RealIo, rx_loop, timer_loop, tx_loop};

/// Counters since the tunnel started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelStats {
    /// Packets from the device sent encrypted, and their plaintext bytes.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets from the device not sent: no peer has their destination (the kernel's own
    /// IPv6 multicast lands here too), or the socket refused them.
    pub tx_dropped: u64,
    /// Packets decrypted and written to the device, and their bytes.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Datagrams refused: malformed, unauthenticated, replayed, for no peer, or carrying a
    /// packet whose source is not the sending peer's tunnel address.
    pub rx_dropped: u64,
    /// Handshakes completed, as initiator or responder.
    pub handshakes: u64,
}

/// One peer as the tunnel sees it now.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerStats {
    pub public_key: PublicKey,
    pub inner: Ipv6Addr,
    pub endpoint: SocketAddrV4,
    /// Age of the session in use; `None` without one.
    pub session_age: Option<Duration>,
    /// Plaintext bytes through the current state (the one for the peer's present keys).
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// A state replaced by a key change still carries traffic until its successor does.
    pub rotating: bool,
}

/// What the tunnel's threads share.
pub(crate) struct Shared {
    pub device: String,
    pub table: RwLock<Arc<Table>>,
    pub generation: AtomicU64,
    /// Serializes table changes (set_peers, set_private_key, retirement).
    pub control: Mutex<Control>,
    pub counters: Counters,
    /// Timer ticks since the start ([`crate::peers::TICK_MS`] apart).
    pub tick: AtomicU64,
    pub stopping: AtomicBool,
    /// Readable (hung up) once the tunnel stops: every thread polls it.
    pub stop: PipeReader,
    pub socket: UdpSocket,
    pub dev: SyncDevice,
}

type Loop = fn(&Shared);

pub(crate) struct Control {
    ids: IndexAlloc,
    psk: Option<[u8; 32]>,
}

impl Shared {
    pub fn publish(&self, table: Table) {
        *self.table.write() = Arc::new(table);
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn io(&self) -> RealIo<'_> {
        RealIo { shared: self }
    }

    fn initiate(&self, states: &[Arc<PeerState>]) {
        if states.is_empty() {
            return;
        }
        let mut out = vec![0u8; BUF_LEN];
        let mut io = self.io();
        for s in states {
            datapath::initiate(s, &mut out, &mut io, &self.counters);
        }
    }
}

/// A thread's copy of the peer table, refreshed when the generation moves.
pub(crate) struct View {
    generation: u64,
    table: Arc<Table>,
}

impl View {
    pub fn new(shared: &Shared) -> View {
        View {
            generation: shared.generation.load(Ordering::Acquire),
            table: shared.table.read().clone(),
        }
    }

    pub fn get(&mut self, shared: &Shared) -> &Table {
        let g = shared.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.table = shared.table.read().clone();
            self.generation = g;
        }
        &self.table
    }
}

/// A running tunnel. Dropping it stops it as [`Tunnel::stop`] does.
pub struct Tunnel {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    stop: Option<PipeWriter>,
    netns: PathBuf,
    inner: Ipv6Addr,
    mtu: u32,
    listen: SocketAddrV4,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("device", &self.shared.device)
            .field("netns", &self.netns)
            .field("inner", &self.inner)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// Makes the device `cfg.device` inside the namespace at `netns` (`/run/netns/NAME`,
    /// `/proc/PID/ns/net`), with this node's tunnel address /96 and the inner MTU, up; binds
    /// the UDP socket at `cfg.listen` there; and starts moving packets.
    pub fn start(netns: &Path, cfg: TunnelConfig) -> Result<Tunnel, WgError> {
        cfg.validate()?;
        let inner = cfg.inner();
        let (dev, socket) = open_in_netns(netns, &cfg)?;
        let device_err = |what: &str, source| WgError::Device {
            device: cfg.device.clone(),
            netns: netns.to_path_buf(),
            what: what.into(),
            source,
        };
        dev.set_nonblocking(true)
            .map_err(|e| device_err("making it non-blocking", e))?;
        let listen = match socket.local_addr() {
            Ok(SocketAddr::V4(a)) => a,
            _ => cfg.listen,
        };
        let identity = Arc::new(Identity::new(cfg.private_key.clone()));
        let mut ids = IndexAlloc::new(1);
        let (table, _) = Table::new(identity.clone(), inner).with_peers(
            identity,
            &cfg.peers,
            cfg.preshared_key,
            &mut ids,
            0,
        );
        let (stop_r, stop_w) = std::io::pipe().map_err(|e| WgError::Thread {
            name: "stop pipe".into(),
            source: e,
        })?;
        let shared = Arc::new(Shared {
            device: cfg.device.clone(),
            table: RwLock::new(Arc::new(table)),
            generation: AtomicU64::new(0),
            control: Mutex::new(Control {
                ids,
                psk: cfg.preshared_key,
            }),
            counters: Counters::default(),
            tick: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            stop: stop_r,
            socket,
            dev,
        });
        let mut tunnel = Tunnel {
            shared,
            threads: Vec::new(),
            stop: Some(stop_w),
            netns: netns.to_path_buf(),
            inner,
            mtu: cfg.mtu(),
            listen,
        };
        let loops: [(&str, Loop); 3] = [("tx", tx_loop), ("rx", rx_loop), ("timer", timer_loop)];
        for (what, f) in loops {
            let name = format!("shwg-{what}-{}", cfg.device);
            let shared = tunnel.shared.clone();
            // On failure the threads already started stop with `tunnel`'s Drop.
            let handle = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || f(&shared))
                .map_err(|source| WgError::Thread { name, source })?;
            tunnel.threads.push(handle);
        }
        tracing::info!(device = %cfg.device, netns = %netns.display(), %inner, %listen, mtu = cfg.mtu(), peers = cfg.peers.len(), "tunnel started");
        Ok(tunnel)
    }

    /// Replaces the peer set. Peers whose public key is unchanged (and with an unchanged
    /// preshared key) keep their sessions; the endpoint may change under them. A peer whose
    /// key or the preshared key changed handshakes anew at once, while its previous session
    /// carries traffic until the new one does. Peers not listed are dropped at once.
    pub fn set_peers(
        &self,
        peers: Vec<Peer>,
        preshared_key: Option<[u8; 32]>,
    ) -> Result<(), WgError> {
        let rekeyed = {
            let mut ctl = self.shared.control.lock();
            let old = self.shared.table.read().clone();
            validate_peers(&old.identity.public, self.inner, &peers)?;
            let tick = self.shared.tick.load(Ordering::Relaxed);
            let (next, rekeyed) = old.with_peers(
                old.identity.clone(),
                &peers,
                preshared_key,
                &mut ctl.ids,
                tick,
            );
            ctl.psk = preshared_key;
            self.shared.publish(next);
            rekeyed
        };
        self.shared.initiate(&rekeyed);
        Ok(())
    }

    /// Takes a new private key (a node rotating its own). Every peer handshakes anew; the old
    /// sessions carry traffic until the new ones do, and the peers must be told the new
    /// public key ([`Tunnel::public_key`]) for their handshakes to succeed.
    pub fn set_private_key(&self, key: PrivateKey) -> Result<(), WgError> {
        let rekeyed = {
            let mut ctl = self.shared.control.lock();
            let old = self.shared.table.read().clone();
            let identity = Arc::new(Identity::new(key));
            let peers = old.peers();
            validate_peers(&identity.public, self.inner, &peers).map_err(|e| match e {
                WgError::InvalidArgument { why, .. } => WgError::invalid("private_key", why),
                e => e,
            })?;
            let tick = self.shared.tick.load(Ordering::Relaxed);
            let psk = ctl.psk;
            let (next, rekeyed) = old.with_peers(identity, &peers, psk, &mut ctl.ids, tick);
            self.shared.publish(next);
            rekeyed
        };
        self.shared.initiate(&rekeyed);
        Ok(())
    }

    pub fn public_key(&self) -> PublicKey {
        self.shared.table.read().identity.public
    }

    pub fn peers(&self) -> Vec<Peer> {
        self.shared.table.read().peers()
    }

    pub fn device(&self) -> &str {
        &self.shared.device
    }

    pub fn netns(&self) -> &Path {
        &self.netns
    }

    /// This node's tunnel address.
    pub fn inner_addr(&self) -> Ipv6Addr {
        self.inner
    }

    /// The device's MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// Where the socket is bound (the kernel's choice of port if the config said 0).
    pub fn listen_addr(&self) -> SocketAddrV4 {
        self.listen
    }

    pub fn stats(&self) -> TunnelStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TunnelStats {
            tx_packets: l(&c.tx.packets),
            tx_bytes: l(&c.tx.bytes),
            tx_dropped: l(&c.tx.dropped),
            rx_packets: l(&c.rx.packets),
            rx_bytes: l(&c.rx.bytes),
            rx_dropped: l(&c.rx.dropped),
            handshakes: l(&c.handshakes),
        }
    }

    pub fn peer_stats(&self) -> Vec<PeerStats> {
        let table = self.shared.table.read().clone();
        let mut out: Vec<PeerStats> = table
            .slots
            .values()
            .map(|slot| {
                let s = &slot.current;
                let (session_age, tx, rx, _, _) = s.tunn.lock().stats();
                PeerStats {
                    public_key: s.public_key,
                    inner: s.inner,
                    endpoint: s.endpoint(),
                    session_age,
                    tx_bytes: tx as u64,
                    rx_bytes: rx as u64,
                    rotating: slot.retiring.is_some(),
                }
            })
            .collect();
        out.sort_by_key(|p| p.inner);
        out
    }

    /// Stops the threads and closes the device, which removes it (it is not persistent), and
    /// the socket. Returns once all of that is done.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        // Closing the write end hangs the pipe up: every poll on it wakes.
        self.stop.take();
        for h in self.threads.drain(..) {
            if h.join().is_err() {
                tracing::error!(device = %self.shared.device, "a tunnel thread panicked");
            }
        }
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.stop.is_some() {
            self.shutdown();
            tracing::info!(device = %self.shared.device, netns = %self.netns.display(), "tunnel stopped");
        }
    }
}
