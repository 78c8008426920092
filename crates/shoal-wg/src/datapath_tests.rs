//! The packet path in memory: two nodes' tables exchanging datagrams through vectors.

use std::net::Ipv4Addr;
use std::sync::Arc;

use rand::{Rng, RngCore, SeedableRng};

use super::*;
use crate::config::Peer;
use crate::inner_addr;
use crate::keys::PrivateKey;
use crate::mem::{Node, ipv6_packet, pump};
use crate::peers::{HANDSHAKES_PER_SECOND, Identity};

fn pair(psk: Option<[u8; 32]>) -> (Node, Node) {
    let (mut a, mut b) = (Node::new(1, 1), Node::new(2, 2));
    let (pa, pb) = (a.as_peer(), b.as_peer());
    a.set_peers(&[pb], psk);
    b.set_peers(&[pa], psk);
    (a, b)
}

/// Sends `payload` from `a` to `b` and returns what `b` wrote to its device.
fn exchange(a: &mut Node, b: &mut Node, payload: &[u8]) -> Vec<Vec<u8>> {
    let p = ipv6_packet(a.inner(), b.inner(), payload);
    a.send_packet(&p);
    pump(a, b);
    std::mem::take(&mut b.io.tun)
}

#[test]
fn packets_cross_after_a_handshake_both_ways() {
    let (mut a, mut b) = pair(Some([5; 32]));
    let got = exchange(&mut a, &mut b, b"hello b");
    assert_eq!(got, vec![ipv6_packet(a.inner(), b.inner(), b"hello b")]);
    let got = exchange(&mut b, &mut a, b"hello a");
    assert_eq!(got, vec![ipv6_packet(b.inner(), a.inner(), b"hello a")]);
    assert!(a.c.handshakes.load(Ordering::Relaxed) >= 1);
    assert!(b.c.handshakes.load(Ordering::Relaxed) >= 1);
    assert_eq!(b.c.rx.packets.load(Ordering::Relaxed), 1);
    assert_eq!(a.c.tx.packets.load(Ordering::Relaxed), 1);
    assert_eq!(a.c.tx.bytes.load(Ordering::Relaxed), 47);
}

#[test]
fn packets_for_no_peer_or_not_ipv6_are_dropped() {
    let (mut a, _b) = pair(None);
    a.send_packet(&ipv6_packet(
        a.inner(),
        inner_addr(Ipv4Addr::new(192, 0, 2, 99)),
        b"x",
    ));
    a.send_packet(&[0x45; 60]);
    a.send_packet(&[]);
    assert!(a.io.sent.is_empty());
    assert_eq!(a.c.tx.dropped.load(Ordering::Relaxed), 3);
}

#[test]
fn a_wrong_key_gets_nothing_through() {
    let (mut a, mut b) = (Node::new(1, 1), Node::new(2, 2));
    let wrong = Peer::new(PrivateKey::from_bytes([3; 32]).public_key(), b.addr);
    let pa = a.as_peer();
    a.set_peers(&[wrong], None);
    b.set_peers(&[pa], None);
    assert!(exchange(&mut a, &mut b, b"secret").is_empty());
    assert!(exchange(&mut b, &mut a, b"secret").is_empty());
    assert_eq!(a.c.handshakes.load(Ordering::Relaxed), 0);
    assert_eq!(b.c.handshakes.load(Ordering::Relaxed), 0);
    assert!(a.c.rx.dropped.load(Ordering::Relaxed) >= 1);
    assert!(b.c.rx.dropped.load(Ordering::Relaxed) >= 1);
}

#[test]
fn a_mismatched_preshared_key_gets_nothing_through() {
    let (mut a, mut b) = (Node::new(1, 1), Node::new(2, 2));
    let (pa, pb) = (a.as_peer(), b.as_peer());
    a.set_peers(&[pb], Some([1; 32]));
    b.set_peers(&[pa], Some([2; 32]));
    assert!(exchange(&mut a, &mut b, b"x").is_empty());
    assert!(exchange(&mut b, &mut a, b"x").is_empty());
}

#[test]
fn a_peer_may_only_send_from_its_own_address_to_ours() {
    let (mut a, mut b) = pair(None);
    assert_eq!(exchange(&mut a, &mut b, b"ok").len(), 1);
    // A spoofed source, and then a destination that is not b's own, are both refused by b.
    let spoofed = ipv6_packet(inner_addr(Ipv4Addr::new(192, 0, 2, 7)), b.inner(), b"x");
    a.send_packet(&spoofed);
    pump(&mut a, &mut b);
    assert!(b.io.tun.is_empty());
    let elsewhere = inner_addr(Ipv4Addr::new(192, 0, 2, 8));
    let mut pb = b.as_peer();
    pb.inner = elsewhere;
    a.set_peers(&[pb], None);
    a.send_packet(&ipv6_packet(a.inner(), elsewhere, b"x"));
    pump(&mut a, &mut b);
    assert!(b.io.tun.is_empty());
    assert!(b.c.rx.dropped.load(Ordering::Relaxed) >= 2);
}

#[test]
fn garbage_from_the_network_is_dropped_without_panic() {
    let (mut a, mut b) = pair(Some([4; 32]));
    // Real messages to mangle: the handshake and some data.
    let p = ipv6_packet(a.inner(), b.inner(), &[0xab; 200]);
    a.send_packet(&p);
    let mut samples = pump(&mut a, &mut b);
    a.send_packet(&p);
    samples.extend(pump(&mut a, &mut b));
    assert_eq!(b.io.tun.len(), 2, "both packets arrived");
    b.io.tun.clear();
    let delivered = b.c.rx.packets.load(Ordering::Relaxed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut garbage: Vec<Vec<u8>> = vec![vec![], vec![1], vec![4, 0, 0]];
    for len in [4usize, 31, 32, 33, 64, 92, 148, 149, 1500, 65535, 70000] {
        for kind in 0..=5u8 {
            let mut g = vec![0u8; len];
            rng.fill_bytes(&mut g);
            g[0] = kind;
            if len >= 4 {
                g[1..4].fill(0);
            }
            garbage.push(g);
        }
    }
    for s in &samples {
        for _ in 0..50 {
            let mut m = s.clone();
            let i = rng.random_range(0..m.len());
            m[i] ^= 1 << rng.random_range(0..8);
            garbage.push(m);
            let cut = rng.random_range(0..s.len());
            garbage.push(s[..cut].to_vec());
        }
    }
    let from = SocketAddr::V4(a.addr);
    let stranger = SocketAddr::from(([192, 0, 2, 66], 4444));
    for g in &garbage {
        for src in [from, stranger, SocketAddr::from(([0u16; 8], 1))] {
            incoming(&b.table, g, src, &mut b.out, &mut b.io, &b.c, 0);
        }
    }
    assert!(b.io.tun.is_empty(), "garbage reached the device");
    assert_eq!(b.c.rx.packets.load(Ordering::Relaxed), delivered);
    assert!(b.c.rx.dropped.load(Ordering::Relaxed) as usize >= garbage.len());
    // Replays of real data are refused too, and the session still works afterwards.
    for s in &samples {
        b.receive(s, a.addr);
    }
    assert!(b.io.tun.is_empty(), "a replay reached the device");
    b.io.sent.clear();
    assert_eq!(exchange(&mut a, &mut b, b"still fine").len(), 1);
}

/// Found with the `wg_datagram` fuzz harness: each handshake message counts twice against the
/// rate limit (here, and in the peer's state machine). When the second count tips over, the
/// state machine answers a handshake response with a cookie reply: no handshake completed, so
/// none is counted and the state is not in use (that would retire the state a key change
/// replaced before the new one has a session).
#[test]
fn a_response_that_tips_the_rate_limit_completes_nothing() {
    let (mut a, mut b) = pair(None);
    b.send_packet(&ipv6_packet(b.inner(), a.inner(), b"x"));
    let (init, _) = b.io.sent.pop().expect("b's initiation");
    a.receive(&init, b.addr);
    let (response, _) = a.io.sent.pop().expect("a's response");
    // One message short of b's allowance: the response passes our check, not the second.
    let from = Some(IpAddr::V4(*a.addr.ip()));
    let mut reply = [0u8; 64];
    for _ in 0..HANDSHAKES_PER_SECOND - 1 {
        let r = b
            .table
            .identity
            .rate_limiter
            .verify_packet(from, &response, &mut reply);
        assert!(r.is_ok(), "under load early");
    }
    b.receive(&response, a.addr);
    let sent: Vec<(u8, usize)> = b.io.sent.iter().map(|(m, _)| (m[0], m.len())).collect();
    assert_eq!(sent, vec![(MSG_COOKIE_REPLY, 64)]);
    assert_eq!(b.c.handshakes.load(Ordering::Relaxed), 0);
    let slot = b.table.slots.values().next().expect("one peer");
    assert!(!slot.current.is_used());
    assert!(
        slot.current
            .tunn
            .lock()
            .time_since_last_handshake()
            .is_none()
    );
}

#[test]
fn a_new_preshared_key_rekeys_without_a_gap() {
    let (mut a, mut b) = pair(Some([1; 32]));
    assert_eq!(exchange(&mut a, &mut b, b"before").len(), 1);
    let handshakes = b.c.handshakes.load(Ordering::Relaxed);
    let (pa, pb) = (a.as_peer(), b.as_peer());

    // a first: its new state's handshake fails against b's old key, yet traffic flows both
    // ways over the retiring state's session.
    a.set_peers(&[pb], Some([2; 32]));
    assert!(a.table.has_retiring());
    pump(&mut a, &mut b);
    assert_eq!(exchange(&mut a, &mut b, b"a moved").len(), 1);
    assert_eq!(exchange(&mut b, &mut a, b"a moved").len(), 1);

    // Then b: the handshake succeeds and the new sessions carry the traffic.
    b.set_peers(&[pa], Some([2; 32]));
    pump(&mut a, &mut b);
    assert!(b.c.handshakes.load(Ordering::Relaxed) > handshakes);
    assert_eq!(exchange(&mut a, &mut b, b"both moved").len(), 1);
    assert_eq!(exchange(&mut b, &mut a, b"both moved").len(), 1);
    for n in [&a, &b] {
        let slot = n.table.slots.values().next().expect("one peer");
        assert!(slot.current.is_used(), "the new state carries traffic");
    }
    // Once retired, only the new states are left and still work.
    for n in [&mut a, &mut b] {
        n.tick += crate::peers::RETIRE_AFTER_USE_TICKS + 1;
        n.table = n.table.without_retired(n.tick).expect("retired");
    }
    assert_eq!(exchange(&mut a, &mut b, b"after").len(), 1);
    assert_eq!(exchange(&mut b, &mut a, b"after").len(), 1);
}

#[test]
fn a_new_node_key_rekeys_without_a_gap() {
    let (mut a, mut b) = pair(None);
    assert_eq!(exchange(&mut a, &mut b, b"before").len(), 1);
    // a takes a new key; b learns it later.
    a.key = PrivateKey::from_bytes([8; 32]);
    let pb = b.as_peer();
    let (t, rekeyed) = a.table.with_peers(
        Arc::new(Identity::new(a.key.clone())),
        &[pb],
        None,
        &mut a.ids,
        1,
    );
    a.table = t;
    for s in rekeyed {
        initiate(&s, &mut a.out, &mut a.io, &a.c);
    }
    pump(&mut a, &mut b);
    assert_eq!(exchange(&mut a, &mut b, b"a moved").len(), 1);
    assert_eq!(exchange(&mut b, &mut a, b"a moved").len(), 1);
    let pa = a.as_peer();
    b.set_peers(&[pa], None);
    pump(&mut a, &mut b);
    assert_eq!(exchange(&mut a, &mut b, b"both moved").len(), 1);
    assert_eq!(exchange(&mut b, &mut a, b"both moved").len(), 1);
    assert!(a.table.slots.values().all(|s| s.current.is_used()));
}

#[test]
fn header_parsing_takes_only_whole_ipv6_headers() {
    let p = ipv6_packet(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED, b"");
    assert_eq!(ipv6_src(&p), Some(Ipv6Addr::LOCALHOST));
    assert_eq!(ipv6_dst(&p), Some(Ipv6Addr::UNSPECIFIED));
    assert_eq!(ipv6_dst(&p[..39]), None);
    assert_eq!(ipv6_dst(&[0x45; 60]), None);
}
