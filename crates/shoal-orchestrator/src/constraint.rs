//! Placement-constraint matching for the reconcilers, on top of the shared grammar in
//! `shoal_types::constraint` (the scheduler uses the same one, so both stages agree on every
//! edge case).

use shoal_types::Node;
use shoal_types::constraint::{all_match, parse_all};

/// Whether `node` satisfies every constraint in `exprs`; `None` when they do not parse.
pub fn node_matches(exprs: &[String], node: &Node) -> Option<bool> {
    let parsed = parse_all(exprs).ok()?;
    Some(all_match(&parsed, node))
}
