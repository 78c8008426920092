//! What the `wg_datagram` fuzz target (`fuzz/fuzz_targets/wg_datagram.rs`) drives: the tunnel's
//! receive path (`datapath::incoming`, what the receive thread runs for each datagram) on a node
//! in memory that holds real sessions, and the input format that says which datagrams it gets.
//! Behind the `fuzzing` feature (off by default) and hidden from the documentation: not API.
//!
//! A [`Harness`] is three nodes built as the datapath tests build them, with fixed keys and a
//! preshared key: `b`, the node under test, whose peers are `a` and `c`. At the start `a` has
//! completed a handshake with `b`, so `b` holds a live session and what `a` encrypts reaches
//! `b`'s device. As [`Options`] say, `b` also has a packet waiting for `c` and the handshake
//! initiation it sent for it unanswered, and `b` or `c` has used up its handshake allowance, so
//! that handshakes take a cookie (WireGuard's defence under load), or `b` is one message short
//! of that.
//!
//! Input ([`parse`], [`encode`]): one byte of [`Options`] (bit 0 `b_under_load`, bit 1
//! `b_initiates`, bit 2 `c_under_load`, bit 3 `b_near_limit`), then up to [`MAX_RECORDS`]
//! records, each a tag byte, a length (u16, little-endian; cut to what is left) and that many
//! bytes of payload. The tag's low two bits say what the payload is ([`Action`]), the next two
//! where the datagram comes from ([`Source`]):
//!
//! - 0 `Raw`: the datagram itself.
//! - 1 `Seal`: any bytes, which `a` encrypts under its session with `b`: the fuzzer cannot forge
//!   an authenticated message, so this is how it reaches what `b` checks after decryption.
//! - 2 `Replay`: an earlier sealed datagram again (the first payload byte picks which), with the
//!   rest of the payload XORed over its start.
//! - 3 `Answer`: `c`'s answer to `b`'s initiation (a handshake response, or a cookie reply when
//!   `c` is under load), with the payload XORed over its start; nothing without `b_initiates`.
//!
//! The static keys are fixed, so a handshake initiation `c` made once stays valid for a later
//! run's `b`, whose state for `c` has seen no handshake: the committed seeds hold real messages.
//! Ephemeral keys are random (boringtun takes them from the OS), so a sealed datagram decrypts
//! only in the run that made it.
//!
//! Concurrency: none; a harness belongs to one thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::OnceLock;

use boringtun::noise::TunnResult;
use boringtun::noise::rate_limiter::RateLimiter;

use crate::config::Peer;
pub use crate::datapath::MAX_PACKET;
use crate::datapath::initiate;
pub use crate::mem::ipv6_packet;
use crate::mem::{MemIo, Node, pump};
use crate::peers::HANDSHAKES_PER_SECOND;

/// The most records one input holds, so one input stays cheap.
pub const MAX_RECORDS: usize = 32;
/// The preshared key all three nodes use, as a cluster does.
pub const PRESHARED_KEY: [u8; 32] = [0x5a; 32];
/// Sources that are no peer: an IPv4 address, and IPv6 (the tunnel's socket is IPv4).
const STRANGER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 4444);
const V6_SOURCE: SocketAddrV6 =
    SocketAddrV6::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7), 51820, 0, 0);

/// How the harness starts (the input's first byte).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `b` has used up its handshake allowance: handshake messages need a valid cookie MAC,
    /// and get a cookie reply otherwise.
    pub b_under_load: bool,
    /// `b` has a packet queued for `c` and has sent `c` a handshake initiation for it.
    pub b_initiates: bool,
    /// `c` answers `b`'s initiation with a cookie reply (only with `b_initiates`).
    pub c_under_load: bool,
    /// `b` is one handshake message short of its allowance (without `b_under_load`). `b` counts
    /// each handshake message twice, in `incoming` and in the peer's state machine, so the next
    /// one passes the first check and gets a cookie reply from the second.
    pub b_near_limit: bool,
}

impl Options {
    fn from_byte(b: u8) -> Options {
        Options {
            b_under_load: b & 1 != 0,
            b_initiates: b & 2 != 0,
            c_under_load: b & 4 != 0,
            b_near_limit: b & 8 != 0,
        }
    }

    fn to_byte(self) -> u8 {
        u8::from(self.b_under_load)
            | u8::from(self.b_initiates) << 1
            | u8::from(self.c_under_load) << 2
            | u8::from(self.b_near_limit) << 3
    }
}

/// Where a datagram comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `a`'s endpoint.
    A,
    /// `c`'s endpoint.
    C,
    /// An IPv4 address that is no peer's.
    Stranger,
    /// An IPv6 address (dropped at once: the socket is IPv4).
    V6,
}

/// What a record's payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    Raw(&'a [u8]),
    Seal(&'a [u8]),
    Replay { which: u8, flips: &'a [u8] },
    Answer { flips: &'a [u8] },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub from: Source,
    pub action: Action<'a>,
}

/// The options and records an input holds; any bytes are an input.
pub fn parse(data: &[u8]) -> (Options, Vec<Record<'_>>) {
    let Some((&first, mut rest)) = data.split_first() else {
        return (Options::default(), Vec::new());
    };
    let mut records = Vec::new();
    while !rest.is_empty() && records.len() < MAX_RECORDS {
        let (head, body) = rest.split_at(rest.len().min(3));
        let tag = head[0];
        let len = match head {
            [_, lo, hi] => usize::from(u16::from_le_bytes([*lo, *hi])),
            _ => 0,
        };
        let (payload, after) = body.split_at(len.min(body.len()));
        rest = after;
        let from = match (tag >> 2) & 3 {
            0 => Source::A,
            1 => Source::C,
            2 => Source::Stranger,
            _ => Source::V6,
        };
        let action = match tag & 3 {
            0 => Action::Raw(payload),
            1 => Action::Seal(payload),
            2 => match payload.split_first() {
                Some((&which, flips)) => Action::Replay { which, flips },
                None => Action::Replay {
                    which: 0,
                    flips: &[],
                },
            },
            _ => Action::Answer { flips: payload },
        };
        records.push(Record { from, action });
    }
    (Options::from_byte(first), records)
}

/// The input [`parse`] reads as `opts` and `records` (for the seeds).
pub fn encode(opts: Options, records: &[Record<'_>]) -> Vec<u8> {
    let mut out = vec![opts.to_byte()];
    for r in records {
        let source = match r.from {
            Source::A => 0,
            Source::C => 1,
            Source::Stranger => 2,
            Source::V6 => 3,
        };
        let (kind, payload) = match r.action {
            Action::Raw(p) => (0, p.to_vec()),
            Action::Seal(p) => (1, p.to_vec()),
            Action::Replay { which, flips } => (2, [&[which], flips].concat()),
            Action::Answer { flips } => (3, flips.to_vec()),
        };
        let len = u16::try_from(payload.len()).expect("a seed record fits 64 KiB");
        out.push(source << 2 | kind);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&payload);
    }
    out
}

/// What `b` did with one datagram.
#[derive(Debug, Default)]
pub struct Received {
    /// Datagrams sent to the network, with their destination, in order.
    pub sent: Vec<(Vec<u8>, SocketAddrV4)>,
    /// Packets written to the device.
    pub tun: Vec<Vec<u8>>,
}

/// The three nodes as peers: `a`, `b` and `c` are `Node::new(1, 1)`, `(2, 2)` and `(3, 3)`.
/// Worked out once: every harness needs them, and each public key costs a scalar
/// multiplication.
fn peers() -> &'static [Peer; 3] {
    static PEERS: OnceLock<[Peer; 3]> = OnceLock::new();
    PEERS.get_or_init(|| [1, 2, 3].map(|n| Node::new(n, n).as_peer()))
}

/// `b` with its peers `a` (session established) and `c`; see the module doc.
pub struct Harness {
    a: Node,
    b: Node,
    /// `c` and `b`'s handshake initiation to it, with `b_initiates` (only `Answer` needs `c`,
    /// and a node costs a few scalar multiplications).
    c: Option<(Node, Vec<u8>)>,
    /// `c`'s answer to the initiation, made at the first `Answer` record.
    answer: Option<Vec<u8>>,
    /// What `a` sealed so far, for `Replay`.
    sealed: Vec<Vec<u8>>,
}

impl Harness {
    pub fn new(opts: Options) -> Harness {
        let [pa, pb, pc] = *peers();
        let psk = Some(PRESHARED_KEY);
        let (mut a, mut b) = (Node::new(1, 1), Node::new(2, 2));
        a.set_peers(&[pb], psk);
        b.set_peers(&[pa, pc], psk);

        let to_b = a.table.slots[&pb.inner].current.clone();
        initiate(&to_b, &mut a.out, &mut a.io, &a.c);
        let crossed = pump(&mut a, &mut b);
        assert!(
            to_b.tunn.lock().time_since_last_handshake().is_some(),
            "a and b completed a handshake"
        );
        let a_init = crossed.first().cloned().expect("a's initiation crossed");
        let limiter = &b.table.identity.rate_limiter;
        if opts.b_under_load {
            exhaust(limiter, &a_init, pa.endpoint);
        } else if opts.b_near_limit {
            // a's initiation has been counted twice already.
            for _ in 0..HANDSHAKES_PER_SECOND - 3 {
                let mut reply = [0u8; 64];
                let r =
                    limiter.verify_packet(Some(IpAddr::V4(*pa.endpoint.ip())), &a_init, &mut reply);
                assert!(r.is_ok(), "b came under load early");
            }
        }

        let c = opts.b_initiates.then(|| {
            let mut c = Node::new(3, 3);
            c.set_peers(&[pb], psk);
            b.send_packet(&ipv6_packet(pb.inner, pc.inner, b"waiting for c"));
            let (init, to) = b.io.sent.pop().expect("b's initiation to c");
            assert_eq!(to, pc.endpoint);
            if opts.c_under_load {
                exhaust(&c.table.identity.rate_limiter, &init, pb.endpoint);
            }
            (c, init)
        });
        a.io = MemIo::default();
        b.io = MemIo::default();
        Harness {
            a,
            b,
            c,
            answer: None,
            sealed: Vec::new(),
        }
    }

    pub fn a_addr(&self) -> SocketAddrV4 {
        self.a.addr
    }

    pub fn c_addr(&self) -> SocketAddrV4 {
        peers()[2].endpoint
    }

    pub fn a_inner(&self) -> Ipv6Addr {
        self.a.inner()
    }

    pub fn b_inner(&self) -> Ipv6Addr {
        self.b.inner()
    }

    /// The indices of `b`'s peer states: the upper 24 bits of every session index `b` hands out.
    pub fn b_indices(&self) -> Vec<u32> {
        self.b.table.by_index.keys().copied().collect()
    }

    /// The indices of `b`'s peer states that have carried authenticated traffic (what decides
    /// when a state replaced by a key change retires), in order.
    pub fn b_used(&self) -> Vec<u32> {
        let mut used: Vec<u32> = (self.b.table.by_index.values())
            .filter(|s| s.is_used())
            .map(|s| s.index)
            .collect();
        used.sort_unstable();
        used
    }

    pub fn source(&self, s: Source) -> SocketAddr {
        match s {
            Source::A => self.a.addr.into(),
            Source::C => self.c_addr().into(),
            Source::Stranger => STRANGER.into(),
            Source::V6 => V6_SOURCE.into(),
        }
    }

    /// `plaintext` encrypted by `a` under its session with `b`: a data message for `b`, kept for
    /// `Replay`. `None` if `a` had no session (never, after `new`).
    pub fn seal(&mut self, plaintext: &[u8]) -> Option<Vec<u8>> {
        let state = self.a.table.slots.get(&self.b.inner())?.current.clone();
        let mut tunn = state.tunn.lock();
        match tunn.encapsulate(plaintext, &mut self.a.out) {
            TunnResult::WriteToNetwork(msg) => {
                self.sealed.push(msg.to_vec());
                Some(msg.to_vec())
            }
            _ => None,
        }
    }

    /// `c`'s answer to `b`'s initiation; the same bytes each time. `None` without one.
    pub fn answer(&mut self) -> Option<Vec<u8>> {
        if self.answer.is_none() {
            let (c, init) = self.c.as_mut()?;
            c.receive(init, self.b.addr);
            let msg = c.io.sent.first()?.0.clone();
            c.io = MemIo::default();
            self.answer = Some(msg);
        }
        self.answer.clone()
    }

    /// The datagram `r` stands for and its source; `None` when there is none (a replay before
    /// anything was sealed, an answer without `b_initiates`).
    pub fn datagram(&mut self, r: &Record<'_>) -> Option<(Vec<u8>, SocketAddr)> {
        let d = match r.action {
            Action::Raw(d) => d.to_vec(),
            Action::Seal(p) => self.seal(p)?,
            Action::Replay { which, flips } => {
                let i = usize::from(which) % self.sealed.len().max(1);
                xor(self.sealed.get(i)?, flips)
            }
            Action::Answer { flips } => xor(&self.answer()?, flips),
        };
        Some((d, self.source(r.from)))
    }

    /// `datagram` from `from` to `b`, through the receive thread's code path.
    pub fn receive(&mut self, datagram: &[u8], from: SocketAddr) -> Received {
        self.b.receive(datagram, from);
        Received {
            sent: std::mem::take(&mut self.b.io.sent),
            tun: std::mem::take(&mut self.b.io.tun),
        }
    }
}

/// `msg` with `flips` XORed over its start.
fn xor(msg: &[u8], flips: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for (b, f) in m.iter_mut().zip(flips) {
        *b ^= f;
    }
    m
}

/// Counts handshake messages against `limiter` until it is under load (it answers with a
/// cookie reply). `handshake` must carry a valid MAC for the limiter's node.
fn exhaust(limiter: &RateLimiter, handshake: &[u8], from: SocketAddrV4) {
    let mut reply = [0u8; 64];
    for _ in 0..100_000 {
        if let Err(TunnResult::WriteToNetwork(_)) =
            limiter.verify_packet(Some(IpAddr::V4(*from.ip())), handshake, &mut reply)
        {
            return;
        }
    }
    panic!("the handshake allowance never ran out");
}

#[cfg(test)]
#[path = "fuzzing_tests.rs"]
mod tests;
