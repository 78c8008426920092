//! Placement constraint expressions (`shoal_types::constraint::parse_all`), one per line as a
//! service spec lists them. Every parsed constraint is matched against a node, and must print as
//! an expression that parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_types::Node;
use shoal_types::constraint::{all_match, parse, parse_all};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let exprs: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let Ok(constraints) = parse_all(&exprs) else {
        return;
    };
    let mut node = Node::default();
    node.description.hostname = "node-1".into();
    node.status.addr = "10.0.3.7".into();
    node.spec.labels.insert("zone".into(), "east".into());
    node.description
        .engine
        .labels
        .insert("disk".into(), "ssd".into());
    let _ = all_match(&constraints, &node);
    for c in &constraints {
        let printed = c.to_string();
        let again = parse(&printed)
            .unwrap_or_else(|e| panic!("{c:?} prints as {printed:?}, which does not parse: {e}"));
        assert_eq!(&again, c, "{printed:?} parses to another constraint");
        assert_eq!(again.matches(&node), c.matches(&node));
    }
});
