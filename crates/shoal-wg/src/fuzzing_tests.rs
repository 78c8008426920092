//! The harness and its input format, and the committed seeds of `wg_datagram`: made here, from
//! real messages, by `write_seed_corpus` (run by hand), and checked to reach past the decoder.

use std::path::Path;
use std::sync::atomic::Ordering;

use super::*;

/// The seeds: each kind of WireGuard message, real, in the situation where `b` gets it.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    // Initiations as `c` and `a` send them. `c`'s is new to every later `b`; `a`'s is older than
    // the handshake `a` and `b` complete in a harness, so `b` takes it for a replay.
    let initiation = |seed: u8, last: u8| {
        let mut n = Node::new(seed, last);
        let b = Node::new(2, 2);
        n.set_peers(&[b.as_peer()], Some(PRESHARED_KEY));
        let s = n.table.slots[&b.inner()].current.clone();
        initiate(&s, &mut n.out, &mut n.io, &n.c);
        n.io.sent.pop().expect("an initiation").0
    };
    let (c_init, a_init) = (initiation(3, 3), initiation(1, 1));
    let mut h = Harness::new(Options::default());
    let hello = ipv6_packet(h.a_inner(), h.b_inner(), b"hello b");
    let data = h.seal(&hello).expect("a transport data message");
    // From a tunnel address that is no peer's.
    let elsewhere = crate::inner_addr(Ipv4Addr::new(192, 0, 2, 9));
    let spoofed = ipv6_packet(elsewhere, h.b_inner(), b"spoofed");
    let initiates = Options {
        b_initiates: true,
        ..Options::default()
    };
    let c_loaded = Options {
        c_under_load: true,
        ..initiates
    };
    let response = Harness::new(initiates).answer().expect("c's response");
    let cookie = Harness::new(c_loaded).answer().expect("c's cookie reply");
    let b_loaded = Options {
        b_under_load: true,
        ..Options::default()
    };
    let b_near = Options {
        b_near_limit: true,
        ..Options::default()
    };
    let b_near_initiates = Options {
        b_near_limit: true,
        ..initiates
    };
    fn raw(from: Source, d: &[u8]) -> Vec<Record<'_>> {
        vec![Record {
            from,
            action: Action::Raw(d),
        }]
    }
    let seal = |p| Record {
        from: Source::A,
        action: Action::Seal(p),
    };
    let answer = vec![Record {
        from: Source::C,
        action: Action::Answer { flips: &[] },
    }];
    let replay = Record {
        from: Source::A,
        action: Action::Replay {
            which: 0,
            flips: &[],
        },
    };
    vec![
        (
            "handshake-initiation",
            encode(Options::default(), &raw(Source::C, &c_init)),
        ),
        (
            "handshake-initiation-under-load",
            encode(b_loaded, &raw(Source::C, &c_init)),
        ),
        (
            "handshake-initiation-near-limit",
            encode(b_near, &raw(Source::C, &c_init)),
        ),
        (
            "handshake-initiation-replayed",
            encode(Options::default(), &raw(Source::A, &a_init)),
        ),
        (
            "transport-data",
            encode(Options::default(), &raw(Source::A, &data)),
        ),
        (
            "handshake-response",
            encode(initiates, &raw(Source::C, &response)),
        ),
        ("cookie-reply", encode(initiates, &raw(Source::C, &cookie))),
        (
            "sealed-replayed-spoofed",
            encode(Options::default(), &[seal(&hello), replay, seal(&spoofed)]),
        ),
        ("answer-of-c", encode(initiates, &answer)),
        ("answer-of-c-under-load", encode(c_loaded, &answer)),
        ("answer-of-c-near-limit", encode(b_near_initiates, &answer)),
    ]
}

fn run(input: &[u8]) -> (Harness, Vec<Received>) {
    let (opts, records) = parse(input);
    let mut h = Harness::new(opts);
    let mut got = Vec::new();
    for r in &records {
        let (d, from) = h.datagram(r).expect("every seed record is a datagram");
        got.push(h.receive(&d, from));
    }
    (h, got)
}

fn types(r: &Received) -> Vec<(u8, usize, SocketAddrV4)> {
    r.sent.iter().map(|(m, to)| (m[0], m.len(), *to)).collect()
}

/// What `b` does with the seed `name`: each gets past the parser, the MACs and the lookup.
fn check_seed(name: &str, input: &[u8]) {
    let (h, got) = run(input);
    let c = h.c_addr();
    let dropped = h.b.c.rx.dropped.load(Ordering::Relaxed);
    let handshakes = h.b.c.handshakes.load(Ordering::Relaxed);
    match name {
        // b answers with a handshake response to c.
        "handshake-initiation" => assert_eq!(types(&got[0]), vec![(2, 92, c)], "{name}"),
        // Under load, or tipped over by the state machine's own count: a cookie reply, and no
        // handshake.
        "handshake-initiation-under-load" | "handshake-initiation-near-limit" => {
            assert_eq!(types(&got[0]), vec![(3, 64, c)], "{name}");
            assert_eq!(handshakes, 1, "{name}: a's only");
        }
        // Past the MACs and the decryption of the static key and timestamp, refused as a
        // replay; past the index, refused by the session or the handshake state.
        "handshake-initiation-replayed"
        | "transport-data"
        | "handshake-response"
        | "cookie-reply" => {
            assert!(got[0].sent.is_empty(), "{name}");
            assert_eq!(dropped, 1, "{name}");
        }
        "sealed-replayed-spoofed" => {
            let hello = ipv6_packet(h.a_inner(), h.b_inner(), b"hello b");
            assert_eq!(got[0].tun, vec![hello], "{name}");
            assert!(got[1].tun.is_empty() && got[2].tun.is_empty(), "{name}");
            assert_eq!(dropped, 2, "{name}: the replay and the spoofed source");
        }
        // b completes its handshake with c: a keepalive, then the packet it held for c.
        "answer-of-c" => {
            assert_eq!(
                types(&got[0]),
                vec![(4, 32, c), (4, 32 + 40 + 13, c)],
                "{name}"
            );
            assert_eq!(handshakes, 2, "{name}: a's and c's");
        }
        // The cookie is taken; nothing goes out until b's next initiation.
        "answer-of-c-under-load" => {
            assert!(got[0].sent.is_empty(), "{name}");
            assert_eq!(dropped, 0, "{name}");
        }
        // The response gets a cookie reply: the handshake is not done, and b's state for c has
        // carried nothing.
        "answer-of-c-near-limit" => {
            assert_eq!(types(&got[0]), vec![(3, 64, c)], "{name}");
            assert_eq!(handshakes, 1, "{name}: a's only");
            assert_eq!(h.b_used().len(), 1, "{name}: a's state only");
        }
        _ => panic!("no expectation for the seed {name}"),
    }
    for r in &got {
        if !name.starts_with("sealed") {
            assert!(r.tun.is_empty(), "{name}");
        }
    }
}

#[test]
fn the_seeds_reach_past_authentication() {
    for (name, input) in seeds() {
        check_seed(name, &input);
    }
}

/// The committed seeds are what `write_seed_corpus` makes now (the messages differ run to run,
/// what they do must not): a change to the format or the harness rewrites them.
#[test]
fn the_committed_seeds_are_current() {
    for (name, _) in seeds() {
        let path = corpus_dir().join(name);
        let input = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run write_seed_corpus", path.display()));
        check_seed(name, &input);
    }
}

fn corpus_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wg_datagram")
}

#[test]
fn inputs_parse_back_and_any_bytes_parse() {
    let records = [
        Record {
            from: Source::V6,
            action: Action::Raw(b"x"),
        },
        Record {
            from: Source::Stranger,
            action: Action::Replay {
                which: 3,
                flips: &[1, 2],
            },
        },
        Record {
            from: Source::C,
            action: Action::Answer { flips: &[] },
        },
        Record {
            from: Source::A,
            action: Action::Seal(&[6; 300]),
        },
    ];
    let opts = Options {
        b_under_load: true,
        b_initiates: false,
        c_under_load: true,
        b_near_limit: true,
    };
    let input = encode(opts, &records);
    assert_eq!(parse(&input), (opts, records.to_vec()));
    // A cut length takes what is left; a record without its length is empty.
    let (_, cut) = parse(&[0, 1, 200, 0, 9, 9]);
    assert_eq!(
        cut,
        vec![Record {
            from: Source::A,
            action: Action::Seal(&[9, 9])
        }]
    );
    assert_eq!(parse(&[0, 0x0f]).1[0].action, Action::Answer { flips: &[] });
    assert_eq!(parse(&[]), (Options::default(), Vec::new()));
    assert_eq!(parse(&[0; 1000]).1.len(), MAX_RECORDS);
}

#[test]
fn the_session_survives_garbage_and_replays() {
    let mut h = Harness::new(Options {
        b_under_load: true,
        b_initiates: true,
        ..Options::default()
    });
    let before = ipv6_packet(h.a_inner(), h.b_inner(), b"before");
    let first = h.seal(&before).expect("sealed");
    assert_eq!(h.receive(&first, h.a_addr().into()).tun, vec![before]);
    for len in [0, 1, 4, 32, 64, 92, 148, 1500] {
        for kind in 1..=4u8 {
            let mut d = vec![0x5c; len];
            if let Some(b) = d.first_mut() {
                *b = kind;
            }
            for s in [Source::A, Source::C, Source::Stranger, Source::V6] {
                let from = h.source(s);
                let got = h.receive(&d, from);
                assert!(got.sent.is_empty() && got.tun.is_empty());
            }
        }
    }
    let replayed = h.receive(&first, h.a_addr().into());
    assert!(replayed.tun.is_empty() && replayed.sent.is_empty());
    let p = ipv6_packet(h.a_inner(), h.b_inner(), b"after");
    let d = h.seal(&p).expect("sealed");
    assert_eq!(h.receive(&d, h.a_addr().into()).tun, vec![p]);
}

/// Rewrites `fuzz/corpus/wg_datagram/` (only the files named here). Run after changing the
/// harness or its input format:
/// `cargo test -p shoal-wg --features fuzzing -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes the committed seeds under fuzz/corpus/wg_datagram"]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("the corpus dir");
    for (name, input) in seeds() {
        std::fs::write(dir.join(name), input).expect("a seed");
    }
}
