use super::*;

fn key(b: u8) -> SecretKey {
    SecretKey::from_bytes([b; 32])
}

#[test]
fn a_sealed_value_opens_with_the_same_key_context_and_row() {
    let s = Sealer::new(&key(1));
    let sealed = s.seal("objects", b"service/a", b"{\"x\":1}").expect("ok");
    assert_eq!(sealed[0], b'S');
    assert_eq!(sealed.len(), 2 + 24 + 7 + 16);
    assert!(!sealed.windows(7).any(|w| w == b"{\"x\":1}"));
    assert_eq!(
        s.open("objects", b"service/a", &sealed).expect("ok"),
        b"{\"x\":1}"
    );
}

#[test]
fn every_seal_takes_a_fresh_nonce() {
    let s = Sealer::new(&key(1));
    let a = s.seal("t", b"k", b"same").expect("ok");
    let b = s.seal("t", b"k", b"same").expect("ok");
    assert_ne!(a, b);
}

#[test]
fn tampering_anywhere_is_detected() {
    let s = Sealer::new(&key(1));
    let sealed = s.seal("objects", b"k", b"hello world").expect("ok");
    // Every byte after the header (nonce, ciphertext, tag) is covered.
    for i in 2..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            s.open("objects", b"k", &bad),
            Err(SealError::Rejected),
            "byte {i}"
        );
    }
    let mut cut = sealed.clone();
    cut.truncate(sealed.len() - 1);
    assert_eq!(s.open("objects", b"k", &cut), Err(SealError::Rejected));
    assert!(matches!(
        s.open("objects", b"k", &sealed[..10]),
        Err(SealError::Truncated { len: 10 })
    ));
    let mut version = sealed.clone();
    version[1] = 9;
    assert_eq!(
        s.open("objects", b"k", &version),
        Err(SealError::UnknownVersion(9))
    );
}

#[test]
fn a_wrong_key_is_refused_with_a_clear_error() {
    let sealed = Sealer::new(&key(1)).seal("t", b"k", b"v").expect("ok");
    let err = Sealer::new(&key(2))
        .open("t", b"k", &sealed)
        .expect_err("an error");
    assert_eq!(err, SealError::Rejected);
    assert!(err.to_string().contains("the key is wrong"), "{err}");
}

#[test]
fn values_are_bound_to_their_table_and_row() {
    let s = Sealer::new(&key(1));
    let sealed = s.seal("objects", b"service/a", b"v").expect("ok");
    // Swapped into another row, or another table, it does not open.
    assert_eq!(
        s.open("objects", b"service/b", &sealed),
        Err(SealError::Rejected)
    );
    assert_eq!(
        s.open("sm_meta", b"service/a", &sealed),
        Err(SealError::Rejected)
    );
    // The NUL between table and key keeps ("ab", "c") and ("a", "bc") apart.
    let sealed = s.seal("ab", b"c", b"v").expect("ok");
    assert_eq!(s.open("a", b"bc", &sealed), Err(SealError::Rejected));
}

#[test]
fn plaintext_from_before_encryption_at_rest_is_named_as_such() {
    let s = Sealer::new(&key(1));
    let err = s
        .open("objects", b"k", b"{\"kind\":\"service\"}")
        .expect_err("an error");
    assert_eq!(err, SealError::NotSealed);
    assert!(err.to_string().contains("before encryption at rest"));
    assert_eq!(
        s.open("objects", b"k", b""),
        Err(SealError::Truncated { len: 0 })
    );
}

#[test]
fn keys_sealed_under_a_kek_open_only_under_it_and_their_context() {
    let kek = Kek(key(7));
    let dek = key(9);
    let sealed = kek.seal_key(DEK_CONTEXT, &dek).expect("ok");
    assert_eq!(kek.open_key(DEK_CONTEXT, &sealed).expect("ok"), dek);
    assert_eq!(
        kek.open_key(TLS_KEY_CONTEXT, &sealed),
        Err(SealError::Rejected)
    );
    assert_eq!(
        Kek(key(8)).open_key(DEK_CONTEXT, &sealed),
        Err(SealError::Rejected)
    );
}

#[test]
fn unlock_keys_round_trip_in_dockers_form() {
    let k = UnlockKey::generate().expect("ok");
    let text = k.to_human();
    assert!(text.starts_with("SWMKEY-1-"));
    // 32 bytes in unpadded base64: 43 characters.
    assert_eq!(text.len(), 9 + 43);
    assert_eq!(UnlockKey::parse(&text).expect("ok"), k);
    assert_eq!(UnlockKey::parse(&format!("  {text}\n")).expect("ok"), k);
    assert_eq!(UnlockKey::parse(&format!("{text}=")).expect("ok"), k);
    // A key Docker printed.
    let docker = "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8";
    assert!(UnlockKey::parse(docker).is_ok());
}

#[test]
fn malformed_unlock_keys_say_what_is_wrong() {
    assert_eq!(UnlockKey::parse(""), Err(UnlockKeyError::Prefix));
    assert_eq!(
        UnlockKey::parse("SWMTKN-1-abc"),
        Err(UnlockKeyError::Prefix)
    );
    assert_eq!(
        UnlockKey::parse("SWMKEY-1-!!!"),
        Err(UnlockKeyError::Encoding)
    );
    assert_eq!(
        UnlockKey::parse("SWMKEY-1-AAAA"),
        Err(UnlockKeyError::Length(3))
    );
    for e in [
        UnlockKeyError::Prefix,
        UnlockKeyError::Encoding,
        UnlockKeyError::Length(3),
    ] {
        assert!(e.to_string().starts_with("invalid key string"), "{e}");
    }
}
