//! Names for services created without one, as Swarm gives them: `adjective_noun`, here from a
//! shoal of fish. Randomness comes from the caller's IdGen.

use shoal_types::IdGen;

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "bright", "calm", "clever", "curious", "daring", "eager", "fast",
    "fearless", "gentle", "glowing", "happy", "keen", "lively", "loyal", "lucky", "merry",
    "nimble", "patient", "plucky", "quick", "quiet", "restless", "shiny", "silver", "steady",
    "swift", "tidy", "vivid", "wise",
];

const FISH: &[&str] = &[
    "anchovy",
    "angelfish",
    "barracuda",
    "betta",
    "bluegill",
    "carp",
    "catfish",
    "cod",
    "damselfish",
    "eel",
    "flounder",
    "goby",
    "grouper",
    "guppy",
    "haddock",
    "halibut",
    "herring",
    "koi",
    "mackerel",
    "marlin",
    "minnow",
    "mullet",
    "perch",
    "pike",
    "pollock",
    "salmon",
    "sardine",
    "snapper",
    "sturgeon",
    "tetra",
    "trout",
    "tuna",
];

pub fn random_name(ids: &mut IdGen) -> String {
    let n = ids.next_u64();
    let a = ADJECTIVES[(n % ADJECTIVES.len() as u64) as usize];
    let f = FISH[((n >> 32) % FISH.len() as u64) as usize];
    format!("{a}_{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_service_names_and_vary() {
        let mut ids = IdGen::seeded(1);
        let names: std::collections::BTreeSet<String> =
            (0..50).map(|_| random_name(&mut ids)).collect();
        assert!(names.len() > 40);
        for n in &names {
            crate::validate::check_name("Name", n).expect("valid");
        }
    }
}
