//! The packet path, free of sockets and devices so it can be driven in memory: what to do with a
//! packet read from the device ([`outgoing`]), a datagram received from the network
//! ([`incoming`]) and a timer tick ([`on_tick`]). The tunnel's threads call these with their own
//! buffers and an [`Io`] that writes to the real socket and device.
//!
//! Everything arriving from the network is untrusted: a datagram that is malformed, fails
//! authentication, belongs to no peer, or decrypts to a packet whose source is not the sending
//! peer's tunnel address (cryptokey routing) or whose destination is not this node's is counted
//! and dropped. Nothing here panics on any input (see the tests with garbage).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, TunnResult};

use crate::keys::PublicKey;
use crate::peers::{PeerState, Slot, Table};

/// The largest packet either side handles (the largest IP packet), and the buffer size that
/// holds it encrypted.
pub const MAX_PACKET: usize = 65535;
pub const BUF_LEN: usize = MAX_PACKET + 256;

/// WireGuard's data message: type, receiver index, counter (16 bytes) and the AEAD tag (16).
const DATA_OVERHEAD: usize = 32;
const MSG_HANDSHAKE_INIT: u8 = 1;
const MSG_COOKIE_REPLY: u8 = 3;
const MSG_DATA: u8 = 4;
/// More than boringtun ever queues for one peer (256), so a flush always ends.
const MAX_FLUSH: usize = 300;

/// Where the packet path writes.
pub(crate) trait Io {
    /// Sends one datagram to the underlay; false when it could not be sent.
    fn send(&mut self, datagram: &[u8], to: SocketAddrV4) -> bool;
    /// Writes one plaintext packet to the device; false when it could not be written.
    fn write_tun(&mut self, packet: &[u8]) -> bool;
}

/// Counters for [`crate::TunnelStats`]; each side's own cache line, as two threads write them.
#[derive(Default)]
pub(crate) struct Counters {
    pub tx: Side,
    pub rx: Side,
    pub handshakes: AtomicU64,
}

#[derive(Default)]
#[repr(align(64))]
pub(crate) struct Side {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub dropped: AtomicU64,
}

impl Side {
    fn count(&self, bytes: usize) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The destination of an IPv6 packet; `None` for anything else.
pub fn ipv6_dst(packet: &[u8]) -> Option<Ipv6Addr> {
    ipv6_addr(packet, 24)
}

/// The source of an IPv6 packet; `None` for anything else.
#[cfg(test)]
pub fn ipv6_src(packet: &[u8]) -> Option<Ipv6Addr> {
    ipv6_addr(packet, 8)
}

fn ipv6_addr(packet: &[u8], at: usize) -> Option<Ipv6Addr> {
    if packet.len() < 40 || packet[0] >> 4 != 6 {
        return None;
    }
    let b: [u8; 16] = packet.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

/// Sends one WireGuard message, counting the plaintext a data message carries.
fn send(io: &mut impl Io, c: &Counters, msg: &[u8], to: SocketAddrV4) {
    let data = msg.first() == Some(&MSG_DATA) && msg.len() > DATA_OVERHEAD;
    if io.send(msg, to) {
        if data {
            c.tx.count(msg.len() - DATA_OVERHEAD);
        }
    } else if data {
        c.tx.drop_one();
    }
}

/// A packet the device gave us: encrypted for the peer whose tunnel address is its
/// destination, or dropped if there is none. `out` must be [`BUF_LEN`] long.
pub(crate) fn outgoing(
    table: &Table,
    packet: &[u8],
    out: &mut [u8],
    io: &mut impl Io,
    c: &Counters,
) {
    let Some(slot) = ipv6_dst(packet).and_then(|d| table.slots.get(&d)) else {
        // Not IPv6, or for no peer: the kernel's own multicast (MLD, router solicitations) on
        // the device ends here too.
        c.tx.drop_one();
        return;
    };
    if packet.len() > MAX_PACKET {
        c.tx.drop_one();
        return;
    }
    let (state, result) = encapsulate(slot, packet, out);
    match result {
        TunnResult::WriteToNetwork(msg) => send(io, c, msg, state.endpoint()),
        // Queued in the state machine until its handshake completes.
        TunnResult::Done => {}
        TunnResult::Err(e) => {
            tracing::trace!(peer.inner = %state.inner, error = ?e, "cannot encrypt");
            c.tx.drop_one();
        }
        TunnResult::WriteToTunnelV4(..) | TunnResult::WriteToTunnelV6(..) => c.tx.drop_one(),
    }
}

/// Encrypts with the current state once it has carried traffic; before that, with the
/// retiring one while it still has a session (make before break, see `peers`).
fn encapsulate<'a, 'o>(
    slot: &'a Slot,
    packet: &[u8],
    out: &'o mut [u8],
) -> (&'a PeerState, TunnResult<'o>) {
    if !slot.current.is_used()
        && let Some(r) = &slot.retiring
    {
        let mut t = r.state.tunn.lock();
        if t.time_since_last_handshake().is_some() {
            return (&r.state, t.encapsulate(packet, out));
        }
    }
    let result = slot.current.tunn.lock().encapsulate(packet, out);
    (&slot.current, result)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Init,
    Response,
    Cookie,
    Data,
}

/// A datagram from `from`: handshake messages answered, data decrypted and written to the
/// device if the cryptokey routing allows it. `out` must be [`BUF_LEN`] long; `tick` is the
/// timer's count (for retiring replaced states).
pub(crate) fn incoming(
    table: &Table,
    datagram: &[u8],
    from: SocketAddr,
    out: &mut [u8],
    io: &mut impl Io,
    c: &Counters,
    tick: u64,
) {
    let SocketAddr::V4(from) = from else {
        c.rx.drop_one();
        return;
    };
    if datagram.is_empty() || datagram.len() > MAX_PACKET {
        c.rx.drop_one();
        return;
    }
    let id = &table.identity;
    let src_ip = Some(IpAddr::V4(*from.ip()));
    // The MAC check and the handshake rate limit come before any Diffie-Hellman: a flood of
    // forged initiations costs a hash each, and under load the sender must prove its address.
    let mut cookie = [0u8; 64];
    let packet = match id.rate_limiter.verify_packet(src_ip, datagram, &mut cookie) {
        Ok(p) => p,
        Err(TunnResult::WriteToNetwork(reply)) => {
            send(io, c, reply, from);
            return;
        }
        Err(_) => {
            c.rx.drop_one();
            return;
        }
    };
    let (kind, state) = match &packet {
        Packet::HandshakeInit(p) => (
            Kind::Init,
            parse_handshake_anon(id.private.secret(), &id.public_x, p)
                .ok()
                .and_then(|h| {
                    table
                        .by_key
                        .get(&PublicKey::from_bytes(h.peer_static_public))
                }),
        ),
        Packet::HandshakeResponse(p) => {
            (Kind::Response, table.by_index.get(&(p.receiver_idx >> 8)))
        }
        Packet::PacketCookieReply(p) => (Kind::Cookie, table.by_index.get(&(p.receiver_idx >> 8))),
        Packet::PacketData(p) => (Kind::Data, table.by_index.get(&(p.receiver_idx >> 8))),
    };
    let Some(state) = state else {
        tracing::trace!(from = %from, "datagram for no peer");
        c.rx.drop_one();
        return;
    };
    let mut tunn = state.tunn.lock();
    match tunn.decapsulate(src_ip, datagram, out) {
        TunnResult::WriteToNetwork(reply) => {
            // The state machine checks the handshake rate again, counting each message a
            // second time: when that check tips over after ours passed, the reply is a cookie
            // and no handshake happened.
            let completed = reply.first() != Some(&MSG_COOKIE_REPLY);
            if completed && matches!(kind, Kind::Init | Kind::Response) {
                c.handshakes.fetch_add(1, Ordering::Relaxed);
            }
            if completed && kind == Kind::Response {
                state.mark_used(tick);
            }
            send(io, c, reply, from);
            // Packets queued while the handshake ran go out now.
            for _ in 0..MAX_FLUSH {
                match tunn.decapsulate(None, &[], out) {
                    TunnResult::WriteToNetwork(msg) => send(io, c, msg, state.endpoint()),
                    _ => break,
                }
            }
        }
        TunnResult::WriteToTunnelV6(plain, src) => {
            state.mark_used(tick);
            if src == state.inner && ipv6_dst(plain) == Some(table.local_inner) {
                if io.write_tun(plain) {
                    c.rx.count(plain.len());
                } else {
                    c.rx.drop_one();
                }
            } else {
                // The peer may only speak from its own tunnel address, and only to ours:
                // nothing that arrives through the tunnel is forwarded.
                tracing::debug!(peer.inner = %state.inner, src = %src, "packet from a source the peer does not own");
                c.rx.drop_one();
            }
        }
        TunnResult::WriteToTunnelV4(..) => c.rx.drop_one(),
        TunnResult::Done => {
            // An authenticated keepalive also shows the session works.
            if kind == Kind::Data {
                state.mark_used(tick);
            }
        }
        TunnResult::Err(e) => {
            tracing::trace!(peer.inner = %state.inner, error = ?e, "datagram rejected");
            c.rx.drop_one();
        }
    }
}

/// One timer tick: every state machine's retransmissions, keepalives and rekeys, and the
/// handshake rate limit's reset. A retiring state never starts a handshake.
pub(crate) fn on_tick(table: &Table, out: &mut [u8], io: &mut impl Io, c: &Counters) {
    table.identity.rate_limiter.reset_count();
    for slot in table.slots.values() {
        tick_one(&slot.current, false, out, io, c);
        if let Some(r) = &slot.retiring {
            tick_one(&r.state, true, out, io, c);
        }
    }
}

fn tick_one(state: &PeerState, retiring: bool, out: &mut [u8], io: &mut impl Io, c: &Counters) {
    let mut tunn = state.tunn.lock();
    if let TunnResult::WriteToNetwork(msg) = tunn.update_timers(out)
        && !(retiring && msg.first() == Some(&MSG_HANDSHAKE_INIT))
    {
        send(io, c, msg, state.endpoint());
    }
}

/// Starts a handshake now rather than at the first packet (after a key change, so the new
/// state is ready before the retiring one goes).
pub(crate) fn initiate(state: &PeerState, out: &mut [u8], io: &mut impl Io, c: &Counters) {
    let mut tunn = state.tunn.lock();
    if let TunnResult::WriteToNetwork(msg) = tunn.format_handshake_initiation(out, false) {
        send(io, c, msg, state.endpoint());
    }
}

#[cfg(test)]
#[path = "datapath_tests.rs"]
mod tests;
