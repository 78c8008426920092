//! Autolock unlock keys (`shoal_store::seal::UnlockKey::parse`), as `POST /swarm/unlock` and
//! `swarm unlock` take them from outside. A parsed key prints as Docker's form and parses back to
//! itself, its KEK seals and opens; an error is one of a closed set of messages, so it never
//! repeats the (maybe secret) input. The same bytes as a sealed value: opening never panics and,
//! without the key that sealed it, never succeeds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::digits_as_hash;
use shoal_store::Sealer;
use shoal_store::seal::{DEK_CONTEXT, SecretKey, UnlockKey};

fuzz_target!(|data: &[u8]| {
    let sealer = Sealer::new(&SecretKey::from_bytes([3; 32]));
    assert!(sealer.open("objects", b"k", data).is_err());
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match UnlockKey::parse(text) {
        Ok(k) => {
            let printed = k.to_human();
            assert!(printed.starts_with("SWMKEY-1-"));
            assert_eq!(UnlockKey::parse(&printed).ok(), Some(k.clone()));
            assert_eq!(format!("{k:?}"), "UnlockKey(..)", "Debug shows the key");
            let dek = SecretKey::from_bytes([9; 32]);
            let sealed = k.kek().seal_key(DEK_CONTEXT, &dek).expect("seal");
            assert_eq!(k.kek().open_key(DEK_CONTEXT, &sealed).ok(), Some(dek));
        }
        Err(e) => {
            let msg = digits_as_hash(&e.to_string());
            assert!(
                MESSAGES.contains(&msg.as_str()),
                "the error {msg:?} is not one of the fixed messages"
            );
        }
    }
});

const MESSAGES: &[&str] = &[
    "invalid key string: an unlock key starts with \"SWMKEY-#-\"",
    "invalid key string: the part after \"SWMKEY-#-\" is not base#",
    "invalid key string: an unlock key holds # bytes, this one #",
];

