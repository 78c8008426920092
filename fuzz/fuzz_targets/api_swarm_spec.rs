//! `POST /swarm/init`, `/swarm/join` and `/swarm/update` bodies, as their handlers read and check
//! them before any IO: `InitBody::into_request`, `JoinBody::into_request` (then the token parse
//! the join starts with) and `convert::swarm::spec_in` over the current spec. The first byte picks
//! the endpoint.
#![no_main]

use bollard_stubs::models as w;
use libfuzzer_sys::fuzz_target;
use shoal_api::body::parse_json;
use shoal_api::convert::swarm::{spec_in, spec_out};
use shoal_api::{InitBody, JoinBody};
use shoal_fuzz::select;
use shoal_pki::JoinToken;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = select(data) else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(b) = parse_json::<InitBody>(body)
                && let Ok(req) = b.into_request()
            {
                // What init stores must read back as what it shows.
                let again = spec_in(&Default::default(), spec_out(&req.spec))
                    .expect("a spec init accepted converts back in");
                assert_eq!(
                    again, req.spec,
                    "model -> wire -> model changed the swarm spec"
                );
            }
        }
        1 => {
            if let Ok(b) = parse_json::<JoinBody>(body)
                && let Ok(req) = b.into_request()
            {
                let _ = JoinToken::parse(&req.token);
            }
        }
        _ => {
            if let Ok(b) = parse_json::<w::SwarmSpec>(body)
                && let Ok(spec) = spec_in(&Default::default(), b)
            {
                let again = spec_in(&spec, spec_out(&spec))
                    .expect("a spec update accepted converts back in");
                assert_eq!(again, spec, "model -> wire -> model changed the swarm spec");
            }
        }
    }
});
