//! Container names: Docker's rule for the ones users give, and a name in Docker's style
//! (`adjective_surname`) for the ones they do not.

use shoal_control::engine::EngineError;

const LEFT: &[&str] = &[
    "admiring",
    "agitated",
    "bold",
    "brave",
    "busy",
    "calm",
    "clever",
    "cool",
    "dazzling",
    "eager",
    "elegant",
    "epic",
    "focused",
    "friendly",
    "gifted",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "lucid",
    "modest",
    "nice",
    "optimistic",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "sweet",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
];

const RIGHT: &[&str] = &[
    "albattani",
    "babbage",
    "bell",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "fermat",
    "feynman",
    "galileo",
    "goldberg",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "mccarthy",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wozniak",
];

/// A generated name from two numbers (random in the daemon); `attempt` > 0 appends it, as
/// Docker does when a name is taken.
pub fn generated(a: u64, b: u64, attempt: u32) -> String {
    let l = LEFT[(a % LEFT.len() as u64) as usize];
    let r = RIGHT[(b % RIGHT.len() as u64) as usize];
    if attempt == 0 {
        format!("{l}_{r}")
    } else {
        format!("{l}_{r}{attempt}")
    }
}

/// A name the user gave, without Docker's optional leading `/`; Docker's rule:
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid(name: &str) -> Result<String, EngineError> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(n.to_string())
    } else {
        Err(EngineError::invalid(
            "name",
            format!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rule_for_names() {
        assert_eq!(valid("/web-1").ok().as_deref(), Some("web-1"));
        assert_eq!(valid("a.b_c").ok().as_deref(), Some("a.b_c"));
        for bad in ["", "x", "-web", "we b", "web/1", "/"] {
            let e = valid(bad).expect_err(bad);
            assert!(e.to_string().contains("Invalid container name"), "{e}");
        }
    }

    #[test]
    fn generated_names_are_valid_and_vary() {
        let a = generated(0, 0, 0);
        assert_eq!(a, "admiring_albattani");
        assert_eq!(generated(0, 0, 3), "admiring_albattani3");
        assert_ne!(generated(1, 2, 0), a);
        for i in 0..100 {
            valid(&generated(i, i * 7, 0)).expect("valid");
        }
    }
}
