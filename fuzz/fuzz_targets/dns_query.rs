//! UDP queries to the embedded DNS server (`shoal_dns::Resolver::answer_bytes`: hickory's
//! parsing and the crate's handler, as a served socket runs them, with nothing forwarded). An
//! answer, when there is one, is a well-formed response to that query: it parses, carries the
//! query's ID, fits the size the requester can take (512 bytes without EDNS), and answers only with names
//! and addresses of the view.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::RData;
use libfuzzer_sys::fuzz_target;
use shoal_dns::{Resolver, View};

fn setup() -> &'static (Arc<Resolver>, View) {
    static SETUP: OnceLock<(Arc<Resolver>, View)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let names = [
            ("web", vec![Ipv4Addr::new(10, 0, 0, 2)]),
            ("tasks.web", (1..=60).map(|i| Ipv4Addr::new(10, 0, 1, i)).collect()),
            ("web.1.abcdefghijklmnopqrstuvwxy", vec![Ipv4Addr::new(10, 0, 1, 1)]),
            ("empty", Vec::new()),
        ];
        let view = View {
            names: names.into_iter().map(|(n, a)| (n.to_owned(), a)).collect(),
        };
        (Resolver::new(Vec::new()), view)
    })
}

fuzz_target!(|data: &[u8]| {
    let (resolver, view) = setup();
    let Some(bytes) = resolver.answer_bytes(view, data) else {
        return;
    };
    let response = Message::from_vec(&bytes).expect("the server's response parses");
    assert_eq!(response.metadata.message_type, MessageType::Response);
    assert_eq!(
        response.metadata.id,
        u16::from_be_bytes([data[0], data[1]]),
        "the response carries another ID than the query"
    );
    // The response has an OPT exactly when the query had one, saying the requester's size.
    let limit = response.edns.as_ref().map_or(512, |e| usize::from(e.max_payload()));
    assert!(bytes.len() <= limit, "{} bytes to a requester that takes {limit}", bytes.len());
    for record in &response.answers {
        match &record.data {
            RData::A(a) => assert!(
                view.names.values().any(|addrs| addrs.contains(&a.0)),
                "answered {a}, which the view does not hold"
            ),
            RData::PTR(ptr) => {
                let name = ptr.0.to_ascii();
                let name = name.trim_end_matches('.');
                assert!(view.names.contains_key(name), "PTR to {name}, not in the view");
            }
            other => panic!("answered a record the view cannot give: {other:?}"),
        }
    }
});
