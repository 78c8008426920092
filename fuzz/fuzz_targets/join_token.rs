//! Join tokens (`shoal_pki::JoinToken::parse`), as `swarm join --token` and a joining node's
//! request carry them. A parsed token prints as itself, and an error never repeats what might
//! be the token's secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_fuzz::digits_as_hash;
use shoal_pki::JoinToken;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match JoinToken::parse(text) {
        Ok(t) => {
            let printed = t.to_string();
            assert_eq!(
                printed,
                text.trim(),
                "a token prints otherwise than it was written"
            );
            assert_eq!(JoinToken::parse(&printed).ok(), Some(t.clone()));
            assert!(t.same_secret(&t));
            // (The digest is shown and may itself contain the secret's characters.)
            let shown = format!("{t:?}").replace(&t.ca_digest, "");
            assert!(!shown.contains(&t.secret), "Debug shows the secret");
        }
        Err(e) => {
            // The messages are a closed set: fixed wording with only counts (and a short, all-digit
            // version) filled in. So no error can carry what might be a digest or a secret. (A
            // check that the message contains no long part of the input is wrong: an input such as
            // `SWMTKN-1-CA digest has 16-x` makes the fixed wording repeat it.)
            let msg = digits_as_hash(&e.to_string());
            assert!(
                MESSAGES.contains(&msg.as_str()),
                "the error {msg:?} is not one of the fixed messages"
            );
        }
    }
});

const MESSAGES: &[&str] = &[
    "invalid join token: it must start with \"SWMTKN-\"",
    "invalid join token: version # is not supported (expected \"SWMTKN-#-...\")",
    "invalid join token: the version part is missing or malformed (expected \"SWMTKN-#-...\")",
    "invalid join token: expected SWMTKN-#-<CA digest>-<secret>, found # dash-separated parts instead of #",
    "invalid join token: the CA digest has # characters, expected #",
    "invalid join token: the CA digest must be lowercase base# (#-#, a-z)",
    "invalid join token: the secret is empty",
    "invalid join token: the secret has # characters, expected #",
    "invalid join token: the secret must be lowercase base# (#-#, a-z)",
];

