//! Forwarding a query the view does not answer to the upstream resolvers, one after the other,
//! over UDP and again over TCP when the UDP answer is truncated. Holds no state: each query gets
//! fresh client sockets (a random source port each, hickory's defence against spoofing).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsRequestSender;
use hickory_net::{DnsHandle, NetError};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Message, Query, ResponseCode};
use tracing::debug;

/// All upstreams together get this long, so a task's resolver (5 s by default in glibc) hears
/// SERVFAIL before it gives up on us.
const BUDGET: Duration = Duration::from_secs(2);

/// Below this an attempt cannot cover a round trip to a distant resolver plus a TCP retry.
const MIN_ATTEMPT: Duration = Duration::from_millis(300);

/// The EDNS size asked of upstreams: the DNS flag day's, which avoids IP fragmentation; larger
/// answers come over TCP.
const UPSTREAM_PAYLOAD: u16 = 1232;

/// The upstream's response to `query`, or `None` when none answered usefully (no upstreams,
/// timeouts, errors, or only SERVFAIL/REFUSED, which Docker also passes over).
pub(crate) async fn forward(
    upstreams: &[SocketAddr],
    query: &Query,
    recursion_desired: bool,
    dnssec_ok: bool,
) -> Option<Message> {
    if upstreams.is_empty() {
        return None;
    }
    let attempt = attempt_time(upstreams.len());
    let mut options = DnsRequestOptions::default();
    options.recursion_desired = recursion_desired;
    options.use_edns = true;
    options.edns_payload_len = UPSTREAM_PAYLOAD;
    options.edns_set_dnssec_ok = dnssec_ok;

    for &upstream in upstreams {
        let request = DnsRequest::from_query(query.clone(), options);
        match tokio::time::timeout(attempt, exchange(upstream, request, attempt)).await {
            Ok(Ok(response)) => {
                let code = response.metadata.response_code;
                if matches!(code, ResponseCode::ServFail | ResponseCode::Refused) {
                    debug!(%upstream, %code, query = %query, "dns: upstream refused, trying the next");
                    continue;
                }
                return Some(response.into_message());
            }
            Ok(Err(error)) => debug!(%upstream, %error, query = %query, "dns: forwarding failed"),
            Err(_) => debug!(%upstream, ?attempt, query = %query, "dns: upstream timed out"),
        }
    }
    None
}

fn attempt_time(upstreams: usize) -> Duration {
    let share = BUDGET / u32::try_from(upstreams).unwrap_or(u32::MAX);
    share.max(MIN_ATTEMPT)
}

async fn exchange(
    upstream: SocketAddr,
    request: DnsRequest,
    timeout: Duration,
) -> Result<DnsResponse, NetError> {
    // Kept alive to the end: the TCP exchange's background task lives in the provider's task set.
    let provider = TokioRuntimeProvider::default();
    let mut udp = UdpClientStream::builder(upstream, provider.clone())
        .with_timeout(Some(timeout))
        .build();
    let response = first(udp.send_message(request.clone())).await?;
    if !response.metadata.truncation {
        return Ok(response);
    }
    debug!(%upstream, "dns: truncated over UDP, asking again over TCP");
    let tcp = TcpClientStream::exchange(upstream, None, timeout, None, provider.clone()).await?;
    first(tcp.send(request)).await
}

async fn first<S>(mut responses: S) -> Result<DnsResponse, NetError>
where
    S: futures_util::Stream<Item = Result<DnsResponse, NetError>> + Unpin,
{
    responses
        .next()
        .await
        .unwrap_or_else(|| Err(NetError::from("the upstream closed without a response")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_but_never_below_the_floor() {
        assert_eq!(attempt_time(1), BUDGET);
        assert_eq!(attempt_time(2), BUDGET / 2);
        assert_eq!(attempt_time(100), MIN_ATTEMPT);
    }
}
