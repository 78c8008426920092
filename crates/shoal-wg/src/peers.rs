//! The peer set: one WireGuard state machine (boringtun's `Tunn`) per node, found by tunnel
//! address (packets from the device), by session index (data from the network) or by public key
//! (handshake initiations).
//!
//! A [`Table`] is an immutable snapshot; a change builds the next one and swaps it in whole
//! (`tunnel.rs`), so the packet threads read a table without locks and only lock the one peer's
//! `Tunn` they use. Only one writer builds tables at a time (the tunnel's control lock).
//!
//! Make before break: when a peer's key material changes (its public key, the preshared key, or
//! our own private key), the peer gets a new `Tunn` and the old one stays as `retiring`. The old
//! one keeps decrypting what arrives on its sessions and keeps carrying outgoing traffic until
//! the new one has a session of its own; it never starts a handshake. So the nodes of a cluster
//! can take a new key one after another without a gap in traffic. A retiring state goes a few
//! seconds after its successor is in use, or after [`RETIRE_AFTER_TICKS`] regardless.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use boringtun::noise::Tunn;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::x25519;
use parking_lot::Mutex;

use crate::config::Peer;
use crate::keys::{PrivateKey, PublicKey};

/// How often the timer thread runs (boringtun's timers have a one-second grain; WireGuard's
/// retransmission jitter is a third of a second).
pub const TICK_MS: u64 = 250;
/// A retiring state goes this long after its successor first carried traffic...
pub const RETIRE_AFTER_USE_TICKS: u64 = 8;
/// ...or this long after it retired (two minutes: WireGuard renews sessions that often).
pub const RETIRE_AFTER_TICKS: u64 = 480;
/// Handshake messages accepted per second before cookies are demanded (WireGuard's DoS
/// defence). Each handshake message is counted twice: once to find its peer, once by the
/// peer's own state machine.
pub(crate) const HANDSHAKES_PER_SECOND: u64 = 2 * 100;
/// Session indices carry the peer's index in their upper 24 bits (boringtun's layout).
const INDEX_BITS: u32 = 24;

/// This node's static key and what is derived from it.
pub(crate) struct Identity {
    pub private: PrivateKey,
    pub public: PublicKey,
    pub public_x: x25519::PublicKey,
    /// Shared by every peer's state machine, so the handshake rate is limited per node.
    pub rate_limiter: Arc<RateLimiter>,
}

impl Identity {
    pub fn new(private: PrivateKey) -> Identity {
        let public = private.public_key();
        let public_x = public.to_x25519();
        Identity {
            rate_limiter: Arc::new(RateLimiter::new(&public_x, HANDSHAKES_PER_SECOND)),
            private,
            public,
            public_x,
        }
    }
}

/// One WireGuard state machine for one peer.
pub(crate) struct PeerState {
    /// Unique among the tunnel's live states; its sessions' indices are `index << 8 | n`.
    pub index: u32,
    pub public_key: PublicKey,
    pub psk: Option<[u8; 32]>,
    pub inner: Ipv6Addr,
    endpoint: AtomicU64,
    pub tunn: Mutex<Tunn>,
    /// The tick at which a session of this state first carried authenticated traffic (a
    /// handshake response or data received); `u64::MAX` until then.
    used_since: AtomicU64,
}

impl PeerState {
    fn new(identity: &Identity, peer: &Peer, psk: Option<[u8; 32]>, index: u32) -> PeerState {
        PeerState {
            index,
            public_key: peer.public_key,
            psk,
            inner: peer.inner,
            endpoint: AtomicU64::new(pack(peer.endpoint)),
            tunn: Mutex::new(Tunn::new(
                identity.private.secret().clone(),
                peer.public_key.to_x25519(),
                psk,
                None,
                index,
                Some(identity.rate_limiter.clone()),
            )),
            used_since: AtomicU64::new(u64::MAX),
        }
    }

    pub fn endpoint(&self) -> SocketAddrV4 {
        unpack(self.endpoint.load(Ordering::Relaxed))
    }

    pub fn is_used(&self) -> bool {
        self.used_since.load(Ordering::Relaxed) != u64::MAX
    }

    pub fn mark_used(&self, tick: u64) {
        if !self.is_used() {
            self.used_since.store(tick, Ordering::Relaxed);
        }
    }

    fn used_since(&self) -> Option<u64> {
        Some(self.used_since.load(Ordering::Relaxed)).filter(|t| *t != u64::MAX)
    }
}

fn pack(a: SocketAddrV4) -> u64 {
    (u64::from(a.ip().to_bits()) << 16) | u64::from(a.port())
}

fn unpack(v: u64) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from_bits((v >> 16) as u32), v as u16)
}

/// One peer node: the state in use and, during a key change, the one it replaces.
#[derive(Clone)]
pub(crate) struct Slot {
    pub current: Arc<PeerState>,
    pub retiring: Option<Retiring>,
}

#[derive(Clone)]
pub(crate) struct Retiring {
    pub state: Arc<PeerState>,
    pub since: u64,
}

/// A snapshot of the peer set.
pub(crate) struct Table {
    pub identity: Arc<Identity>,
    pub local_inner: Ipv6Addr,
    pub slots: HashMap<Ipv6Addr, Slot>,
    /// Every live state, current and retiring, by its index.
    pub by_index: HashMap<u32, Arc<PeerState>>,
    /// Current states only: new handshakes go to the current state.
    pub by_key: HashMap<PublicKey, Arc<PeerState>>,
}

/// Hands out state indices, never one still in use.
pub(crate) struct IndexAlloc {
    next: u32,
}

impl IndexAlloc {
    pub fn new(start: u32) -> IndexAlloc {
        IndexAlloc {
            next: start & mask(),
        }
    }

    fn take(&mut self, in_use: impl Fn(u32) -> bool) -> u32 {
        // At most 2^24 live states exist only if the peer list is absurd; validation of peer
        // counts lives with the caller, and the loop ends once a free index turns up.
        loop {
            let i = self.next;
            self.next = (self.next + 1) & mask();
            if !in_use(i) {
                return i;
            }
        }
    }
}

fn mask() -> u32 {
    (1 << INDEX_BITS) - 1
}

/// The most peers one tunnel takes: far above any cluster, far below the index space (each
/// peer may hold two states).
pub const MAX_PEERS: usize = 1 << 16;

impl Table {
    pub fn new(identity: Arc<Identity>, local_inner: Ipv6Addr) -> Table {
        Table {
            identity,
            local_inner,
            slots: HashMap::new(),
            by_index: HashMap::new(),
            by_key: HashMap::new(),
        }
    }

    /// The table for `peers` and `psk` under `identity`. Peers whose key material is unchanged
    /// keep their state (and its sessions); their endpoint is updated in place. Peers whose key
    /// material changed get a new state, returned in the second value so the caller can start
    /// their handshakes at once; the old state retires. Peers not listed are dropped.
    pub fn with_peers(
        &self,
        identity: Arc<Identity>,
        peers: &[Peer],
        psk: Option<[u8; 32]>,
        ids: &mut IndexAlloc,
        tick: u64,
    ) -> (Table, Vec<Arc<PeerState>>) {
        let same_identity = Arc::ptr_eq(&self.identity, &identity);
        let mut next = Table::new(identity, self.local_inner);
        let mut rekeyed = Vec::new();
        for peer in peers {
            let old = self.slots.get(&peer.inner);
            let slot = match old {
                Some(slot)
                    if same_identity
                        && slot.current.public_key == peer.public_key
                        && slot.current.psk == psk =>
                {
                    slot.current
                        .endpoint
                        .store(pack(peer.endpoint), Ordering::Relaxed);
                    slot.clone()
                }
                _ => {
                    let index = ids
                        .take(|i| self.by_index.contains_key(&i) || next.by_index.contains_key(&i));
                    let state = Arc::new(PeerState::new(&next.identity, peer, psk, index));
                    let retiring = old.and_then(|slot| {
                        // Retire the state that carried traffic; one that never did has
                        // nothing to bridge, so an older retiring state (if any) stays.
                        if slot.current.is_used() {
                            Some(Retiring {
                                state: slot.current.clone(),
                                since: tick,
                            })
                        } else {
                            slot.retiring.clone()
                        }
                    });
                    if old.is_some() {
                        rekeyed.push(state.clone());
                    }
                    Slot {
                        current: state,
                        retiring,
                    }
                }
            };
            next.insert(peer.inner, slot);
        }
        (next, rekeyed)
    }

    fn insert(&mut self, inner: Ipv6Addr, slot: Slot) {
        self.by_index
            .insert(slot.current.index, slot.current.clone());
        if let Some(r) = &slot.retiring {
            self.by_index.insert(r.state.index, r.state.clone());
        }
        self.by_key
            .insert(slot.current.public_key, slot.current.clone());
        self.slots.insert(inner, slot);
    }

    pub fn has_retiring(&self) -> bool {
        self.slots.values().any(|s| s.retiring.is_some())
    }

    /// This table less the retiring states whose time is up at `tick`, or `None` when none is.
    pub fn without_retired(&self, tick: u64) -> Option<Table> {
        let done = |s: &Slot| {
            s.retiring.as_ref().is_some_and(|r| {
                let replaced = s
                    .current
                    .used_since()
                    .is_some_and(|t| tick.saturating_sub(t) >= RETIRE_AFTER_USE_TICKS);
                replaced || tick.saturating_sub(r.since) >= RETIRE_AFTER_TICKS
            })
        };
        if !self.slots.values().any(done) {
            return None;
        }
        let mut next = Table::new(self.identity.clone(), self.local_inner);
        for (inner, slot) in &self.slots {
            let mut slot = slot.clone();
            if done(&slot) {
                slot.retiring = None;
            }
            next.insert(*inner, slot);
        }
        Some(next)
    }

    /// The peers this table was built from.
    pub fn peers(&self) -> Vec<Peer> {
        let mut peers: Vec<Peer> = self
            .slots
            .values()
            .map(|s| Peer {
                public_key: s.current.public_key,
                endpoint: s.current.endpoint(),
                inner: s.current.inner,
            })
            .collect();
        peers.sort_by_key(|p| p.inner);
        peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inner_addr;

    fn identity(b: u8) -> Arc<Identity> {
        Arc::new(Identity::new(PrivateKey::from_bytes([b; 32])))
    }

    fn peer(b: u8, last: u8) -> Peer {
        Peer::new(
            PrivateKey::from_bytes([b; 32]).public_key(),
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, last), 51820),
        )
    }

    #[test]
    fn unchanged_peers_keep_their_state_and_changed_ones_retire_theirs() {
        let me = identity(1);
        let empty = Table::new(me.clone(), inner_addr(Ipv4Addr::new(192, 0, 2, 1)));
        let mut ids = IndexAlloc::new(5);
        let (p2, p3) = (peer(2, 2), peer(3, 3));
        let (t1, rekeyed) = empty.with_peers(me.clone(), &[p2, p3], None, &mut ids, 0);
        assert!(rekeyed.is_empty(), "new peers are not rekeys");
        assert_eq!(t1.by_index.len(), 2);
        let s2 = t1.slots[&p2.inner].current.clone();
        s2.mark_used(1);

        // Same keys, new endpoint for 3: both states kept.
        let mut p3_moved = p3;
        p3_moved.endpoint.set_port(51821);
        let (t2, rekeyed) = t1.with_peers(me.clone(), &[p2, p3_moved], None, &mut ids, 2);
        assert!(rekeyed.is_empty());
        assert!(Arc::ptr_eq(&t2.slots[&p2.inner].current, &s2));
        assert_eq!(t2.slots[&p3.inner].current.endpoint().port(), 51821);

        // A new PSK: new states; 2's old one (used) retires, 3's (never used) does not.
        let (t3, rekeyed) = t2.with_peers(me.clone(), &[p2, p3], Some([7; 32]), &mut ids, 3);
        assert_eq!(rekeyed.len(), 2);
        let slot2 = &t3.slots[&p2.inner];
        assert!(!Arc::ptr_eq(&slot2.current, &s2));
        assert!(Arc::ptr_eq(
            &slot2.retiring.as_ref().expect("retiring").state,
            &s2
        ));
        assert!(t3.slots[&p3.inner].retiring.is_none());
        assert_eq!(t3.by_index.len(), 3, "the retiring state still receives");
        assert!(Arc::ptr_eq(&t3.by_key[&p2.public_key], &slot2.current));
        let indices: std::collections::HashSet<u32> = t3.by_index.keys().copied().collect();
        assert_eq!(indices.len(), 3, "indices are unique");

        // Retired a while after the new state carries traffic, or after the limit.
        assert!(t3.without_retired(4).is_none());
        slot2.current.mark_used(5);
        assert!(t3.without_retired(5 + RETIRE_AFTER_USE_TICKS - 1).is_none());
        let t4 = t3
            .without_retired(5 + RETIRE_AFTER_USE_TICKS)
            .expect("retired");
        assert!(!t4.has_retiring());
        assert_eq!(t4.by_index.len(), 2);
        assert!(t3.without_retired(3 + RETIRE_AFTER_TICKS).is_some());

        // A peer left out is dropped; a new own key renews every state.
        let (t5, _) = t4.with_peers(me, &[p3], Some([7; 32]), &mut ids, 6);
        assert_eq!(t5.peers(), vec![p3]);
        let (t6, rekeyed) = t5.with_peers(identity(9), &[p3], Some([7; 32]), &mut ids, 7);
        assert_eq!(rekeyed.len(), 1);
        assert!(!Arc::ptr_eq(
            &t6.slots[&p3.inner].current,
            &t5.slots[&p3.inner].current
        ));
    }

    #[test]
    fn indices_skip_those_in_use_and_wrap() {
        let mut ids = IndexAlloc::new(mask());
        assert_eq!(ids.take(|_| false), mask());
        assert_eq!(ids.take(|i| i == 0), 1);
    }
}
