//! Nodes in memory for the packet path: a peer table, an [`Io`] that collects what would go to
//! the socket and the device, and a [`pump`] that carries datagrams between two nodes. The
//! datapath tests and the fuzzing harness (`fuzzing`, behind the `fuzzing` feature) drive
//! `datapath` through these; nothing here runs in a tunnel.
//!
//! Concurrency: none; a node belongs to the one thread that drives it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use crate::config::Peer;
use crate::datapath::{BUF_LEN, Counters, Io, incoming, initiate, outgoing};
use crate::inner_addr;
use crate::keys::PrivateKey;
use crate::peers::{Identity, IndexAlloc, Table};

/// What a node wrote, in order.
#[derive(Default)]
pub struct MemIo {
    pub sent: Vec<(Vec<u8>, SocketAddrV4)>,
    pub tun: Vec<Vec<u8>>,
}

impl Io for MemIo {
    fn send(&mut self, datagram: &[u8], to: SocketAddrV4) -> bool {
        self.sent.push((datagram.to_vec(), to));
        true
    }

    fn write_tun(&mut self, packet: &[u8]) -> bool {
        self.tun.push(packet.to_vec());
        true
    }
}

/// One node: its key, its underlay address, its peer table and what it wrote.
pub struct Node {
    pub key: PrivateKey,
    pub addr: SocketAddrV4,
    pub table: Table,
    pub ids: IndexAlloc,
    pub io: MemIo,
    pub c: Counters,
    pub out: Vec<u8>,
    pub tick: u64,
}

impl Node {
    /// The node with private key `[seed; 32]` at `192.0.2.<last>:51820`.
    pub fn new(seed: u8, last: u8) -> Node {
        let key = PrivateKey::from_bytes([seed; 32]);
        let addr = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, last), 51820);
        Node {
            table: Table::new(Arc::new(Identity::new(key.clone())), inner_addr(*addr.ip())),
            key,
            addr,
            ids: IndexAlloc::new(u32::from(seed) << 8),
            io: MemIo::default(),
            c: Counters::default(),
            out: vec![0; BUF_LEN],
            tick: 0,
        }
    }

    pub fn inner(&self) -> Ipv6Addr {
        self.table.local_inner
    }

    pub fn as_peer(&self) -> Peer {
        Peer::new(self.key.public_key(), self.addr)
    }

    /// Replaces the peer set, starting handshakes for rekeyed peers as the tunnel does.
    pub fn set_peers(&mut self, peers: &[Peer], psk: Option<[u8; 32]>) {
        self.tick += 1;
        let (t, rekeyed) = self.table.with_peers(
            self.table.identity.clone(),
            peers,
            psk,
            &mut self.ids,
            self.tick,
        );
        self.table = t;
        for s in rekeyed {
            initiate(&s, &mut self.out, &mut self.io, &self.c);
        }
    }

    /// A packet from this node's device.
    pub fn send_packet(&mut self, packet: &[u8]) {
        outgoing(&self.table, packet, &mut self.out, &mut self.io, &self.c);
    }

    /// A datagram from the network, as the tunnel's receive thread hands it over.
    pub fn receive(&mut self, datagram: &[u8], from: impl Into<SocketAddr>) {
        incoming(
            &self.table,
            datagram,
            from.into(),
            &mut self.out,
            &mut self.io,
            &self.c,
            self.tick,
        );
    }
}

/// Delivers what each node sent to the other until both are quiet; returns every datagram
/// that crossed, for tests that replay or mangle them.
pub fn pump(a: &mut Node, b: &mut Node) -> Vec<Vec<u8>> {
    let mut crossed = Vec::new();
    for _ in 0..20 {
        let from_a = std::mem::take(&mut a.io.sent);
        let from_b = std::mem::take(&mut b.io.sent);
        if from_a.is_empty() && from_b.is_empty() {
            break;
        }
        for (d, to) in from_a {
            if to == b.addr {
                b.receive(&d, a.addr);
                crossed.push(d);
            }
        }
        for (d, to) in from_b {
            if to == a.addr {
                a.receive(&d, b.addr);
                crossed.push(d);
            }
        }
    }
    crossed
}

/// An IPv6 packet (next header UDP, no UDP header) from `src` to `dst` carrying `payload`.
pub fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}
