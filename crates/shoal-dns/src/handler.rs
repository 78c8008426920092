//! One query to one response: names of the view answered locally, everything else forwarded.
//! The view is a snapshot taken when the query arrives; nothing here holds a lock.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use hickory_net::xfer::Protocol;
use hickory_net::{NetError, runtime::Time};
use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tokio::sync::{Semaphore, watch};

use crate::{MAX_FORWARDS, Resolver, TTL, View, forward};

/// What one served socket pair answers with.
pub(crate) struct Handler {
    pub(crate) resolver: Arc<Resolver>,
    pub(crate) view: watch::Receiver<Arc<View>>,
    pub(crate) upstreams: Arc<[SocketAddr]>,
    /// This task's share of forwarded queries in flight (`MAX_FORWARDS`).
    pub(crate) forwards: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        // Cloned out so the watch's read lock is released before the forwarding awaits.
        let view = Arc::clone(&self.view.borrow());
        let forwarding = Forwarding {
            upstreams: &self.upstreams,
            permits: &self.forwards,
        };
        respond(&self.resolver, &view, forwarding, request, response_handle).await
    }
}

/// Where and how much one served socket pair may forward.
#[derive(Clone, Copy)]
struct Forwarding<'a> {
    upstreams: &'a [SocketAddr],
    permits: &'a Semaphore,
}

/// The sections of a response, owned, before they are borrowed into hickory's encoder.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn new(request: &Request) -> Self {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        // Docker's resolver says it recurses (it forwards), and answers as a non-authority.
        metadata.recursion_available = true;
        Self {
            metadata,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn code(mut self, code: ResponseCode) -> Self {
        self.metadata.response_code = code;
        self
    }
}

async fn respond<R: ResponseHandler>(
    resolver: &Resolver,
    view: &View,
    forwarding: Forwarding<'_>,
    request: &Request,
    mut response_handle: R,
) -> ResponseInfo {
    if !plain_question(request.as_slice())
        && let Ok(none) = Queries::read(&mut BinDecoder::new(&[]), 0)
    {
        // hickory echoes the question's own bytes: a compression pointer there would point
        // into the response's header and make it unreadable. No question can point back at
        // anything but the header, so it is malformed: answered without echoing it.
        let response = MessageResponseBuilder::new(&none, None)
            .error_msg(&request.metadata, ResponseCode::FormErr);
        return match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => ResponseInfo::from(Header {
                metadata: request.metadata,
                counts: HeaderCounts::default(),
            }),
        };
    }
    let reply = reply(resolver, view, forwarding, request).await;
    // A requester that speaks EDNS must get an OPT back; its size is the requester's, which is
    // what the encoder truncates UDP answers to.
    let edns = request.edns.as_ref().map(|asked| {
        let mut edns = Edns::new();
        edns.set_max_payload(asked.max_payload().max(512));
        edns.set_dnssec_ok(asked.flags().dnssec_ok);
        edns
    });
    let mut builder = MessageResponseBuilder::new(&request.queries, None);
    if let Some(edns) = &edns {
        builder.edns(edns);
    }
    let response = builder.build(
        reply.metadata,
        reply.answers.iter(),
        reply.authorities.iter(),
        std::iter::empty(),
        reply.additionals.iter(),
    );
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, src = %request.src(), "dns: sending a response");
            ResponseInfo::from(Header {
                metadata: reply.metadata,
                counts: HeaderCounts::default(),
            })
        }
    }
}

/// Whether the request's question name is written out in full: labels up to the root, no
/// compression pointer (or no question at all).
fn plain_question(raw: &[u8]) -> bool {
    if raw.len() < 12 || u16::from_be_bytes([raw[4], raw[5]]) == 0 {
        return true;
    }
    let mut at = 12;
    loop {
        match raw.get(at) {
            None => return false,
            Some(0) => return true,
            Some(&len) if len & 0xC0 == 0 => at += 1 + usize::from(len),
            Some(_) => return false,
        }
    }
}

async fn reply(
    resolver: &Resolver,
    view: &View,
    forwarding: Forwarding<'_>,
    request: &Request,
) -> Reply {
    let reply = Reply::new(request);
    if request.metadata.op_code != OpCode::Query {
        return reply.code(ResponseCode::NotImp);
    }
    // Exactly one question, as every resolver sends and as the answer's shape assumes.
    let Ok(info) = request.request_info() else {
        return reply.code(ResponseCode::FormErr);
    };
    let query = info.query.original();
    if query.query_class() == DNSClass::IN
        && let Some(answers) = local(resolver, view, query.name(), query.query_type())
    {
        return Reply { answers, ..reply };
    }

    let dnssec_ok = request
        .edns
        .as_ref()
        .is_some_and(|edns| edns.flags().dnssec_ok);
    let Ok(_permit) = forwarding.permits.try_acquire() else {
        tracing::debug!(src = %request.src(), "dns: too many queries forwarded at once");
        return reply.code(ResponseCode::ServFail);
    };
    let Some(upstream) = forward::forward(
        forwarding.upstreams,
        query,
        request.metadata.recursion_desired,
        dnssec_ok,
    )
    .await
    else {
        return reply.code(ResponseCode::ServFail);
    };
    let mut metadata = reply.metadata;
    metadata.authoritative = upstream.metadata.authoritative;
    metadata.recursion_available = upstream.metadata.recursion_available;
    metadata.authentic_data = upstream.metadata.authentic_data;
    metadata.response_code = upstream.metadata.response_code;
    // An extended code travels in the OPT record, which a requester without EDNS cannot read.
    if metadata.response_code.high() > 0 && request.edns.is_none() {
        metadata.response_code = ResponseCode::ServFail;
    }
    Reply {
        metadata,
        answers: upstream.answers,
        authorities: upstream.authorities,
        additionals: upstream.additionals,
    }
}

/// The answer from the view, or `None` when the query is not the view's to answer.
fn local(resolver: &Resolver, view: &View, name: &Name, qtype: RecordType) -> Option<Vec<Record>> {
    match qtype {
        RecordType::A | RecordType::AAAA => {
            let addrs = view.names.get(&view_key(name))?;
            // AAAA of a known name: NOERROR with nothing, so the client settles for the A.
            if qtype == RecordType::AAAA || addrs.is_empty() {
                return Some(Vec::new());
            }
            let turn = resolver.turn.fetch_add(1, Ordering::Relaxed) % addrs.len();
            let rotated = addrs[turn..].iter().chain(&addrs[..turn]);
            Some(
                rotated
                    .map(|&ip| Record::from_rdata(name.clone(), TTL, RData::A(A(ip))))
                    .collect(),
            )
        }
        RecordType::PTR => {
            let ip = match name.parse_arpa_name().ok()? {
                ipnet::IpNet::V4(net) if net.prefix_len() == 32 => net.addr(),
                _ => return None,
            };
            let target = name_of(view, ip)?;
            Some(vec![Record::from_rdata(
                name.clone(),
                TTL,
                RData::PTR(PTR(target)),
            )])
        }
        _ => None,
    }
}

/// The view's spelling of a queried name: lower case, no trailing dot.
fn view_key(name: &Name) -> String {
    let mut key = name.to_ascii();
    key.make_ascii_lowercase();
    if key.ends_with('.') {
        key.pop();
    }
    key
}

/// The name a reverse lookup of `ip` gets: one that names this address alone (a task's name or
/// a VIP service) before one that merely includes it (`tasks.SERVICE`, a dnsrr service).
fn name_of(view: &View, ip: Ipv4Addr) -> Option<Name> {
    let only = view
        .names
        .iter()
        .find(|(_, addrs)| addrs.as_slice() == [ip]);
    let any = || view.names.iter().find(|(_, addrs)| addrs.contains(&ip));
    let (key, _) = only.or_else(any)?;
    let mut name = Name::from_ascii(key).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The bytes a served UDP socket would send for `packet`, with nothing forwarded: the same
/// parsing (hickory's) and the same handler, driven to completion without a runtime, which it
/// can be because nothing in the path waits when there are no upstreams.
pub(crate) fn answer_bytes(resolver: &Resolver, view: &View, packet: &[u8]) -> Option<Vec<u8>> {
    let src = SocketAddr::from((IpAddr::from(Ipv4Addr::LOCALHOST), 53_000));
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    let capture = Capture::default();
    let request = match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
        Ok(request) => request,
        Err(_) => {
            // What hickory's server sends for a header followed by an unreadable body.
            // hickory's own empty `Queries` constructor is crate-private; reading none is it.
            let queries = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
            let response = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            return Some(encode_udp(response));
        }
    };
    // Hickory's server drops responses before they reach a handler (no reflection).
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let forwarding = Forwarding {
        upstreams: &[],
        permits: &Semaphore::new(MAX_FORWARDS),
    };
    let mut answering = pin!(respond(
        resolver,
        view,
        forwarding,
        &request,
        capture.clone()
    ));
    match answering
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(_) => capture.take(),
        Poll::Pending => None,
    }
}

/// Keeps what a response handler was given to send, for [`answer_bytes`].
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

impl Capture {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let metadata = *response.metadata();
        let bytes = encode_udp(response);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(ResponseInfo::from(Header {
            metadata,
            counts: HeaderCounts::default(),
        }))
    }
}

/// Hickory's UDP encoding (its own is crate-private): truncated to the requester's EDNS size or
/// 512 bytes, and a bare SERVFAIL header when the message cannot be encoded.
fn encode_udp<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> Vec<u8> {
    let id = response.metadata().id;
    let max = response.edns().map_or(512, Edns::max_payload);
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(max);
    if response.destructive_emit(&mut encoder).is_ok() {
        return bytes;
    }
    bytes.clear();
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut encoder = BinEncoder::new(&mut bytes);
    // A bare header always fits in a fresh buffer.
    let _ = hickory_proto::serialize::binary::BinEncodable::emit(&header, &mut encoder);
    bytes
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, Query};

    use super::*;

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut message = Message::query();
        let name = Name::from_ascii(name).expect("a valid name");
        message.add_query(Query::query(name, qtype));
        message.to_vec().expect("encoding a query")
    }

    fn view() -> View {
        View {
            names: [("web".to_owned(), vec![Ipv4Addr::new(10, 0, 0, 2)])].into(),
        }
    }

    fn answer(packet: &[u8]) -> Message {
        let resolver = Resolver::new(Vec::new());
        let bytes = resolver.answer_bytes(&view(), packet).expect("an answer");
        Message::from_vec(&bytes).expect("the answer parses")
    }

    #[test]
    fn answer_bytes_answers_the_view_and_fails_what_it_would_forward() {
        let packet = query("WEB.", RecordType::A);
        let response = answer(&packet);
        assert_eq!(
            response.metadata.id,
            u16::from_be_bytes([packet[0], packet[1]])
        );
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert_eq!(response.answers.len(), 1);
        assert_eq!(response.queries[0].name().to_ascii(), "WEB.");

        let response = answer(&query("example.test.", RecordType::A));
        assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
        let response = answer(&query("web.", RecordType::MX));
        assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn answer_bytes_refuses_what_is_not_a_query() {
        let resolver = Resolver::new(Vec::new());
        assert_eq!(resolver.answer_bytes(&view(), b"short"), None);
        let mut response = query("web.", RecordType::A);
        response[2] |= 0x80;
        assert_eq!(resolver.answer_bytes(&view(), &response), None);
        let header_only = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        let formerr = answer(&header_only);
        assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(formerr.metadata.id, 0x1234);
        // No question at all is a query hickory reads but we cannot answer.
        let no_question = [0x12, 0x35, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            answer(&no_question).metadata.response_code,
            ResponseCode::FormErr
        );
        // A NOTIFY (opcode 4) is not served.
        let mut notify = query("web.", RecordType::SOA);
        notify[2] = (notify[2] & 0x87) | (4 << 3);
        assert_eq!(answer(&notify).metadata.response_code, ResponseCode::NotImp);
    }

    /// Found by the `dns_query` fuzz target: a question whose name is a pointer back into the
    /// header, followed by a cut answer record.
    #[test]
    fn an_unreadable_query_gets_a_response_that_parses() {
        let resolver = Resolver::new(Vec::new());
        let packet = [
            0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00,
            0x00, 0x00, 0x23, 0x00, 0x23,
        ];
        let bytes = resolver.answer_bytes(&view(), &packet).expect("an answer");
        let response = Message::from_vec(&bytes).expect("the response parses");
        assert_eq!(response.metadata.id, 0x0100);
    }

    #[test]
    fn many_records_are_truncated_to_512_bytes_without_edns() {
        let names = [(
            "tasks.web".to_owned(),
            (0..100).map(|i| Ipv4Addr::new(10, 0, 1, i)).collect(),
        )];
        let view = View {
            names: names.into(),
        };
        let resolver = Resolver::new(Vec::new());
        let bytes = resolver
            .answer_bytes(&view, &query("tasks.web.", RecordType::A))
            .expect("an answer");
        assert!(bytes.len() <= 512, "{} bytes", bytes.len());
        let response = Message::from_vec(&bytes).expect("the answer parses");
        assert!(response.metadata.truncation);
    }
}
