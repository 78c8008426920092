//! `POST /nodes/{id}/update` bodies: JSON as the handler reads it, `convert::node::spec_in`, then
//! the manager's `validate::check_node_spec`. A spec that converts must show unchanged in the
//! node's inspect output and convert back to itself.
#![no_main]

use bollard_stubs::models as w;
use libfuzzer_sys::fuzz_target;
use shoal_api::body::parse_json;
use shoal_api::convert::node::{node_out, spec_in};
use shoal_control::RaftMembership;
use shoal_manager::validate::check_node_spec;
use shoal_types::Node;

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = parse_json::<w::NodeSpec>(data) else {
        return;
    };
    let Ok(spec) = spec_in(wire) else {
        return;
    };
    let _ = check_node_spec(&spec);
    let node = Node {
        spec: spec.clone(),
        ..Default::default()
    };
    let shown = node_out(&node, &RaftMembership::default(), None);
    let back = spec_in(shown.spec.expect("a node shows its spec"))
        .expect("a spec the API accepted converts back in");
    assert_eq!(back, spec, "model -> wire -> model changed the node spec");
});
