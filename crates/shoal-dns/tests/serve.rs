//! The server on real loopback sockets, queried with hickory's client: names from the view,
//! forwarding to an upstream (a second server of this crate with a view of its own), TCP, and
//! hostile packets.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{DnsResponse, Message, MessageType, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use shoal_dns::{Resolver, ServeHandle, TTL, View};
use tokio::sync::watch;

/// Longer than the server's whole forwarding budget (2 s), so a SERVFAIL arrives before it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

struct Served {
    addr: SocketAddr,
    view: watch::Sender<Arc<View>>,
    handle: ServeHandle,
}

/// Binds UDP and TCP on one port of `ip`, as 127.0.0.11:53 is one address for both.
fn bind_pair(ip: Ipv4Addr) -> (std::net::UdpSocket, std::net::TcpListener) {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind((ip, 0)).expect("binding a UDP socket");
        let port = udp.local_addr().expect("UDP local address").port();
        if let Ok(tcp) = std::net::TcpListener::bind((ip, port)) {
            return (udp, tcp);
        }
    }
    panic!("no port of {ip} was free for both UDP and TCP in 50 tries");
}

fn serve(
    resolver: &Arc<Resolver>,
    ip: Ipv4Addr,
    view: View,
    upstreams: Option<Vec<SocketAddr>>,
) -> Served {
    let (udp, tcp) = bind_pair(ip);
    let addr = udp.local_addr().expect("UDP local address");
    let (tx, rx) = watch::channel(Arc::new(view));
    let handle = resolver
        .serve(udp, tcp, rx, upstreams)
        .expect("serving DNS");
    Served {
        addr,
        view: tx,
        handle,
    }
}

fn view(names: &[(&str, &[[u8; 4]])]) -> View {
    View {
        names: names
            .iter()
            .map(|(name, addrs)| {
                let addrs = addrs.iter().map(|&a| Ipv4Addr::from(a)).collect();
                ((*name).to_owned(), addrs)
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

fn udp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
        .with_timeout(Some(CLIENT_TIMEOUT))
        .build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    client
}

async fn tcp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (connect, sender) = TcpClientStream::new(
        addr,
        None,
        Some(CLIENT_TIMEOUT),
        TokioRuntimeProvider::default(),
    );
    let stream = connect.await.expect("connecting over TCP");
    let (client, background) =
        Client::<TokioRuntimeProvider>::with_timeout(stream, sender, CLIENT_TIMEOUT);
    tokio::spawn(background);
    client
}

async fn ask(
    client: &mut Client<TokioRuntimeProvider>,
    name: &str,
    qtype: RecordType,
) -> DnsResponse {
    let name = Name::from_ascii(name).expect("a valid name");
    client
        .query(name.clone(), DNSClass::IN, qtype)
        .await
        .unwrap_or_else(|e| panic!("querying {name} {qtype}: {e}"))
}

fn a_records(response: &DnsResponse) -> Vec<Ipv4Addr> {
    response
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn sorted(mut addrs: Vec<Ipv4Addr>) -> Vec<Ipv4Addr> {
    addrs.sort();
    addrs
}

const SERVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
const UPSTREAM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);

#[tokio::test]
async fn answers_names_from_the_view() {
    let resolver = Resolver::new(Vec::new());
    let s = serve(&resolver, SERVER, view(&[("web", &[[10, 0, 0, 2]])]), None);
    let mut client = udp_client(s.addr);

    for name in ["web", "web.", "WeB."] {
        let response = ask(&mut client, name, RecordType::A).await;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NoError,
            "{name}"
        );
        assert_eq!(a_records(&response), [Ipv4Addr::new(10, 0, 0, 2)], "{name}");
        assert_eq!(response.answers[0].ttl, TTL);
        assert!(
            !response.metadata.authoritative,
            "Docker's answers are not authoritative"
        );
        assert!(response.metadata.recursion_available);
    }
}

#[tokio::test]
async fn replacing_the_view_changes_answers() {
    let resolver = Resolver::new(Vec::new());
    let s = serve(&resolver, SERVER, view(&[("web", &[[10, 0, 0, 2]])]), None);
    let mut client = udp_client(s.addr);
    assert_eq!(
        a_records(&ask(&mut client, "web.", RecordType::A).await),
        [Ipv4Addr::new(10, 0, 0, 2)]
    );

    s.view
        .send(Arc::new(view(&[
            ("web", &[[10, 0, 0, 9]]),
            ("db", &[[10, 0, 0, 3]]),
        ])))
        .expect("the server holds the view");
    assert_eq!(
        a_records(&ask(&mut client, "web.", RecordType::A).await),
        [Ipv4Addr::new(10, 0, 0, 9)]
    );
    assert_eq!(
        a_records(&ask(&mut client, "db.", RecordType::A).await),
        [Ipv4Addr::new(10, 0, 0, 3)]
    );
}

#[tokio::test]
async fn tasks_name_answers_every_task_in_turn() {
    let resolver = Resolver::new(Vec::new());
    let tasks: &[[u8; 4]] = &[[10, 0, 0, 3], [10, 0, 0, 4], [10, 0, 0, 5]];
    let s = serve(&resolver, SERVER, view(&[("tasks.web", tasks)]), None);
    let mut client = udp_client(s.addr);

    let first = a_records(&ask(&mut client, "tasks.web.", RecordType::A).await);
    let second = a_records(&ask(&mut client, "tasks.web.", RecordType::A).await);
    let all: Vec<Ipv4Addr> = tasks.iter().map(|&a| Ipv4Addr::from(a)).collect();
    assert_eq!(sorted(first.clone()), all);
    assert_eq!(sorted(second.clone()), all);
    assert_ne!(first, second, "successive answers rotate the order");
}

#[tokio::test]
async fn aaaa_of_a_known_name_is_an_empty_noerror() {
    let resolver = Resolver::new(Vec::new());
    let s = serve(&resolver, SERVER, view(&[("web", &[[10, 0, 0, 2]])]), None);
    let mut client = udp_client(s.addr);

    let response = ask(&mut client, "web.", RecordType::AAAA).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty(), "{:?}", response.answers);
}

#[tokio::test]
async fn ptr_of_a_view_address_answers_its_name() {
    let resolver = Resolver::new(Vec::new());
    let s = serve(
        &resolver,
        SERVER,
        view(&[
            ("tasks.web", &[[10, 0, 0, 3], [10, 0, 0, 4]]),
            ("web.1.abc", &[[10, 0, 0, 3]]),
        ]),
        None,
    );
    let mut client = udp_client(s.addr);

    let response = ask(&mut client, "3.0.0.10.in-addr.arpa.", RecordType::PTR).await;
    let names: Vec<String> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(ptr) => Some(ptr.0.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["web.1.abc."]);
}

#[tokio::test]
async fn unknown_names_are_forwarded_to_the_upstream() {
    let upstream_resolver = Resolver::new(Vec::new());
    let upstream = serve(
        &upstream_resolver,
        UPSTREAM,
        view(&[("example.test", &[[192, 0, 2, 7]])]),
        None,
    );
    let resolver = Resolver::new(vec![upstream.addr]);
    let s = serve(&resolver, SERVER, view(&[("web", &[[10, 0, 0, 2]])]), None);
    let mut client = udp_client(s.addr);

    let response = ask(&mut client, "example.test.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&response), [Ipv4Addr::new(192, 0, 2, 7)]);
    // The view still answers its own names rather than the upstream.
    assert_eq!(
        a_records(&ask(&mut client, "web.", RecordType::A).await),
        [Ipv4Addr::new(10, 0, 0, 2)]
    );
}

#[tokio::test]
async fn a_task_s_own_upstreams_replace_the_defaults() {
    let upstream_resolver = Resolver::new(Vec::new());
    let upstream = serve(
        &upstream_resolver,
        UPSTREAM,
        view(&[("example.test", &[[192, 0, 2, 7]])]),
        None,
    );
    // The defaults lead nowhere; only the per-task override can answer.
    let resolver = Resolver::new(Vec::new());
    let s = serve(
        &resolver,
        SERVER,
        View::default(),
        Some(vec![upstream.addr]),
    );
    let mut client = udp_client(s.addr);

    let response = ask(&mut client, "example.test.", RecordType::A).await;
    assert_eq!(a_records(&response), [Ipv4Addr::new(192, 0, 2, 7)]);
}

#[tokio::test]
async fn a_truncated_upstream_answer_is_fetched_again_over_tcp() {
    // 100 addresses make an answer over the 1232 bytes asked of the upstream over UDP.
    let many: Vec<[u8; 4]> = (1..=100).map(|i| [10, 1, 0, i]).collect();
    let upstream_resolver = Resolver::new(Vec::new());
    let upstream = serve(
        &upstream_resolver,
        UPSTREAM,
        view(&[("big.test", &many)]),
        None,
    );
    let resolver = Resolver::new(vec![upstream.addr]);
    let s = serve(&resolver, SERVER, View::default(), None);
    let mut client = tcp_client(s.addr).await;

    let response = ask(&mut client, "big.test.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(!response.metadata.truncation);
    assert_eq!(
        sorted(a_records(&response)),
        many.iter().map(|&a| Ipv4Addr::from(a)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn servfail_when_the_upstream_is_dead_or_missing() {
    // Bound and never read: every query to it times out.
    let silent = std::net::UdpSocket::bind((UPSTREAM, 0)).expect("binding a silent socket");
    let dead = silent.local_addr().expect("silent socket address");
    let resolver = Resolver::new(vec![dead]);
    let s = serve(&resolver, SERVER, View::default(), None);
    let mut client = udp_client(s.addr);
    let response = ask(&mut client, "example.test.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::ServFail);

    let none = Resolver::new(Vec::new());
    let s = serve(&none, SERVER, View::default(), None);
    let mut client = udp_client(s.addr);
    let response = ask(&mut client, "example.test.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn tcp_answers() {
    let resolver = Resolver::new(Vec::new());
    let s = serve(&resolver, SERVER, view(&[("web", &[[10, 0, 0, 2]])]), None);
    let mut client = tcp_client(s.addr).await;

    let response = ask(&mut client, "web.", RecordType::A).await;
    assert_eq!(a_records(&response), [Ipv4Addr::new(10, 0, 0, 2)]);
    // A second query on the same connection.
    let response = ask(&mut client, "web.", RecordType::AAAA).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn garbage_does_not_stop_the_server() {
    let resolver = Resolver::new(Vec::new());
    let s = serve(&resolver, SERVER, view(&[("web", &[[10, 0, 0, 2]])]), None);
    let raw = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("binding a raw socket");

    // Shorter than a header: dropped without a word.
    raw.send_to(b"\x00garbage", s.addr).await.expect("sending");
    // Bytes no DNS message starts with, and a long run of them.
    raw.send_to(&[0xff; 300], s.addr).await.expect("sending");
    // A header announcing one question that is not there: FORMERR, with the query's ID.
    let header = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    raw.send_to(&header, s.addr).await.expect("sending");
    let mut formerr = None;
    let mut buf = [0u8; 512];
    while formerr.is_none() {
        let (len, _) = tokio::time::timeout(CLIENT_TIMEOUT, raw.recv_from(&mut buf))
            .await
            .expect("a response to the headers-only query")
            .expect("receiving");
        let message = Message::from_vec(&buf[..len]).expect("the response parses");
        if message.metadata.id == 0x1234 {
            formerr = Some(message);
        }
    }
    let formerr = formerr.expect("set by the loop");
    assert_eq!(formerr.metadata.message_type, MessageType::Response);
    assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);

    let mut client = udp_client(s.addr);
    assert_eq!(
        a_records(&ask(&mut client, "web.", RecordType::A).await),
        [Ipv4Addr::new(10, 0, 0, 2)]
    );
    assert!(!s.handle.is_finished());
}

#[tokio::test]
async fn dropping_the_handle_closes_the_sockets() {
    let resolver = Resolver::new(Vec::new());
    let s = serve(&resolver, SERVER, View::default(), None);
    let addr = s.addr;
    drop(s);

    // The sockets close once the runtime has dropped the aborted task: poll for the port.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        match (
            std::net::UdpSocket::bind(addr),
            std::net::TcpListener::bind(addr),
        ) {
            (Ok(_), Ok(_)) => return,
            (udp, tcp) => last = Some((udp.err(), tcp.err())),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{addr} still bound 5 s after the handle was dropped: {last:?}");
}

#[tokio::test]
async fn forwarding_past_a_task_s_cap_fails_at_once() {
    let silent = std::net::UdpSocket::bind((UPSTREAM, 0)).expect("binding a silent socket");
    let resolver = Resolver::new(vec![silent.local_addr().expect("silent socket address")]);
    let s = serve(&resolver, SERVER, View::default(), None);
    let raw = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("binding a raw socket");

    // More than the cap (256) of queries the upstream will never answer.
    for i in 0..400u16 {
        let mut query = Message::query();
        query.metadata.id = i;
        query.add_query(hickory_proto::op::Query::query(
            Name::from_ascii(format!("n{i}.example.test.")).expect("a valid name"),
            RecordType::A,
        ));
        let packet = query.to_vec().expect("encoding a query");
        raw.send_to(&packet, s.addr).await.expect("sending");
    }
    // Well inside the 2 s the capped ones wait on the upstream.
    let mut buf = [0u8; 512];
    let (len, _) = tokio::time::timeout(Duration::from_secs(1), raw.recv_from(&mut buf))
        .await
        .expect("an immediate answer to a query past the cap")
        .expect("receiving");
    let message = Message::from_vec(&buf[..len]).expect("the response parses");
    assert_eq!(message.metadata.response_code, ResponseCode::ServFail);
}
