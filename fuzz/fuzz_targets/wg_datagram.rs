//! Datagrams from the network to the embedded WireGuard: `shoal_wg::fuzzing`'s harness runs the
//! receive thread's code path (`datapath::incoming`) on a node `b` that holds a live session with
//! its peer `a` and knows a second peer `c`. The input (see `shoal_wg::fuzzing` for its format) is
//! a flag byte (`b` or `c` under load, `b` one handshake message short of it, `b` waiting on a
//! handshake with `c`) and records: raw datagrams from `a`, `c`, a stranger or an IPv6 address;
//! packets `a` encrypts under the session (any bytes), so the checks after decryption are
//! reached; replays and bit-flipped copies of those; and `c`'s answer to `b`'s initiation, also
//! flipped. The seeds hold real messages: a handshake initiation, a handshake response, a
//! transport data message and a cookie reply.
//!
//! Checks, per datagram:
//! - the device gets a packet only from a datagram `a` sealed, once, and only what the cryptokey
//!   routing lets through: an IPv6 packet from `a`'s tunnel address to `b`'s, cut to its length
//!   field; such a packet always gets through (nothing else reaches the device: not raw bytes,
//!   not a replay, not `c`'s messages);
//! - what `b` sends is a well-formed WireGuard message: to the datagram's source, a handshake
//!   response (to an initiation, naming its sender index) or a cookie reply (to a handshake
//!   message, naming its sender index), or after `c`'s answer a keepalive; to `c`'s endpoint,
//!   what `b` held for `c` (its initiation, or data once the handshake is done) — and nothing at
//!   all to an IPv6 source;
//! - a state of `b`'s counts as carrying traffic (which decides when the state a key change
//!   replaced retires) only after a packet `a` sealed or a handshake `b` completed;
//!
//! and once the input is done, the session with `a` still carries a packet: no datagram that is
//! not `a`'s tears it down.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use shoal_wg::fuzzing::{self, Action, Harness, MAX_PACKET, Received, Record};

const INIT: (u8, usize) = (1, 148);
const RESPONSE: (u8, usize) = (2, 92);
const COOKIE: (u8, usize) = (3, 64);
const KEEPALIVE: (u8, usize) = (4, 32);

/// The message type of a well-formed WireGuard message: its type byte, three zero bytes, and
/// the type's size (data: at least a header and a tag).
fn kind(msg: &[u8]) -> Option<u8> {
    let (&t, rest) = msg.split_first()?;
    if rest.get(..3) != Some(&[0, 0, 0]) {
        return None;
    }
    let ok = match t {
        1 => msg.len() == INIT.1,
        2 => msg.len() == RESPONSE.1,
        3 => msg.len() == COOKIE.1,
        4 => msg.len() >= KEEPALIVE.1,
        _ => false,
    };
    ok.then_some(t)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

fn shape(d: &[u8]) -> (u8, usize) {
    (d.first().copied().unwrap_or(0), d.len())
}

/// What `b` must write to its device for `plaintext` sealed by `a`: the packet cut to its IPv6
/// length field, if it is an IPv6 packet from `a`'s tunnel address to `b`'s.
fn routed(h: &Harness, plaintext: &[u8]) -> Option<Vec<u8>> {
    if plaintext.len() < 40 || plaintext[0] >> 4 != 6 {
        return None;
    }
    let len = 40 + usize::from(u16::from_be_bytes([plaintext[4], plaintext[5]]));
    let src: [u8; 16] = plaintext[8..24].try_into().ok()?;
    let dst: [u8; 16] = plaintext[24..40].try_into().ok()?;
    (len <= plaintext.len() && src == h.a_inner().octets() && dst == h.b_inner().octets())
        .then(|| plaintext[..len].to_vec())
}

fn check_device(h: &Harness, r: &Record<'_>, datagram: &[u8], from: SocketAddr, got: &Received) {
    let expected: Vec<Vec<u8>> = match r.action {
        Action::Seal(plaintext) if from.is_ipv4() && datagram.len() <= MAX_PACKET => {
            routed(h, plaintext).into_iter().collect()
        }
        _ => Vec::new(),
    };
    assert_eq!(
        got.tun, expected,
        "the device got the wrong packets for {:?} from {from}",
        r.action
    );
}

fn check_sent(h: &Harness, r: &Record<'_>, datagram: &[u8], from: SocketAddr, got: &Received) {
    if from.is_ipv6() {
        assert!(
            got.sent.is_empty(),
            "b answered an IPv6 source: {:02x?}",
            got.sent
        );
        return;
    }
    let answer = matches!(r.action, Action::Answer { .. });
    let replied = got
        .sent
        .iter()
        .any(|(m, to)| SocketAddr::from(*to) == from && matches!(shape(m), RESPONSE | KEEPALIVE));
    for (msg, to) in &got.sent {
        let t = kind(msg).unwrap_or_else(|| panic!("b sent a malformed message {msg:02x?}"));
        let to_source = SocketAddr::from(*to) == from;
        let to_c = *to == h.c_addr();
        match (t, msg.len()) {
            RESPONSE => {
                assert!(to_source, "a handshake response to {to}, not to {from}");
                assert_eq!(
                    shape(datagram),
                    INIT,
                    "a handshake response to something else"
                );
                assert_eq!(
                    le32(msg, 8),
                    le32(datagram, 4),
                    "the response names another sender"
                );
                assert!(
                    h.b_indices().contains(&(le32(msg, 4) >> 8)),
                    "the response's sender index is no state of b's"
                );
            }
            COOKIE => {
                assert!(to_source, "a cookie reply to {to}, not to {from}");
                assert!(
                    [INIT, RESPONSE].contains(&shape(datagram)),
                    "a cookie reply to something else than a handshake message"
                );
                assert_eq!(
                    le32(msg, 4),
                    le32(datagram, 4),
                    "the cookie names another sender"
                );
            }
            KEEPALIVE if to_source && answer => {}
            (4, _) if to_c && answer => {}
            INIT if to_c && replied => {}
            _ => panic!(
                "b sent a {}-byte type {t} message to {to} after {:?} from {from}",
                msg.len(),
                r.action
            ),
        }
    }
}

/// `b`'s states in use change only with authenticated traffic: a packet `a` sealed, or `c`'s
/// answer completing `b`'s handshake (which `b` confirms with a keepalive).
fn check_used(h: &Harness, r: &Record<'_>, before: &[u32], got: &Received) {
    let after = h.b_used();
    let completed = got.sent.iter().any(|(m, _)| shape(m) == KEEPALIVE);
    let authenticated = match r.action {
        Action::Seal(_) => true,
        Action::Answer { .. } => completed,
        _ => false,
    };
    assert!(
        after == before || authenticated,
        "{:?} put b's states {before:?} in use as {after:?}",
        r.action
    );
}

fuzz_target!(|data: &[u8]| {
    let (opts, records) = fuzzing::parse(data);
    let mut h = Harness::new(opts);
    for r in &records {
        let Some((datagram, from)) = h.datagram(r) else {
            continue;
        };
        let used = h.b_used();
        let got = h.receive(&datagram, from);
        check_device(&h, r, &datagram, from, &got);
        check_sent(&h, r, &datagram, from, &got);
        check_used(&h, r, &used, &got);
    }
    let probe = fuzzing::ipv6_packet(h.a_inner(), h.b_inner(), b"still there");
    let sealed = h.seal(&probe).expect("a keeps its session");
    let got = h.receive(&sealed, h.a_addr().into());
    assert_eq!(
        got.tun,
        vec![probe],
        "the session with a stopped carrying packets"
    );
});
