//! The embedded DNS server a task reaches at 127.0.0.11, as Docker's: names of the cluster a task
//! may see (services, `tasks.SERVICE`, aliases, task names and hostnames) are answered from a
//! [`View`]; every other query is forwarded to upstream resolvers.
//!
//! One [`Resolver`] serves every task of a node. [`Resolver::serve`] takes sockets the caller
//! bound inside a task's network namespace (127.0.0.11:53): a socket keeps the namespace it was
//! made in, so the server answers there while the process stays in its own. The sockets it opens
//! to forward are made by the runtime's threads, in the daemon's namespace, so upstreams on the
//! host's loopback (systemd-resolved's 127.0.0.53) are reachable, as with Docker's `host(…)`
//! upstreams.
//!
//! Concurrency: each query reads the view as an `Arc` snapshot from a `watch` channel (the read
//! lock is released before anything awaits); queries run concurrently, one tokio task per UDP
//! datagram and per TCP connection (hickory-server's own model).

mod forward;
mod handler;
mod resolv_conf;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use hickory_server::Server;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

pub use resolv_conf::{INTERNAL_NAMESERVER, ResolvConf, read_resolv_conf, task_resolv_conf};

/// TTL of the records answered from the view, Docker's (`respTTL`).
pub const TTL: u32 = 600;

/// A TCP connection that sends nothing for this long is closed: a task's resolver reconnects,
/// and an idle peer must not hold a task of the server forever.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Responses a TCP connection may have queued before the server stops reading from it.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Queries one task may have out to upstreams at once; past it, SERVFAIL at once (Docker caps
/// its resolver the same way). Each one holds a socket, so a task that floods the server with
/// names to forward exhausts its own share, not the daemon's file descriptors.
const MAX_FORWARDS: usize = 256;

/// What one task may resolve: built by the caller from the cluster's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Lower-case names (no trailing dot) -> A records. Holds `SERVICE` (the VIP, or every task
    /// address for dnsrr), `tasks.SERVICE` (every task address), aliases, and task names and
    /// hostnames. A name with no address exists (AAAA and A get an empty NOERROR) without being
    /// forwarded. Search domains are the client's business (its resolv.conf), not the view's.
    pub names: BTreeMap<String, Vec<Ipv4Addr>>,
}

/// Why [`Resolver::serve`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("dns: serve must be called inside a tokio runtime")]
    NoRuntime,
    #[error("dns: registering the UDP socket with the runtime")]
    Udp(#[source] std::io::Error),
    #[error("dns: registering the TCP listener with the runtime")]
    Tcp(#[source] std::io::Error),
}

/// The node's DNS service: the default upstreams and what every served socket shares.
#[derive(Debug)]
pub struct Resolver {
    upstreams: Arc<[SocketAddr]>,
    /// Advanced once per answer with several records, to rotate their order as Docker's
    /// shuffle does, without a random source in the answer path.
    turn: AtomicUsize,
}

impl Resolver {
    /// `upstreams`: where queries outside the view go, tried in order (the node's resolvers,
    /// from the host's resolv.conf; see [`ResolvConf::upstreams`]). Empty: such queries get
    /// SERVFAIL.
    pub fn new(upstreams: Vec<SocketAddr>) -> Arc<Self> {
        Arc::new(Self {
            upstreams: upstreams.into(),
            turn: AtomicUsize::new(0),
        })
    }

    /// The default upstreams given to [`Resolver::new`].
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Serves DNS over UDP and TCP on already-bound sockets until the returned handle is dropped
    /// or aborted. `view` can be replaced at any time; each query reads the latest. `upstreams`
    /// replaces the resolver's defaults for this task (`--dns`, which Docker also serves through
    /// 127.0.0.11); `None` keeps them.
    ///
    /// Must be called inside a tokio runtime with I/O and time enabled.
    pub fn serve(
        self: &Arc<Self>,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
        view: watch::Receiver<Arc<View>>,
        upstreams: Option<Vec<SocketAddr>>,
    ) -> Result<ServeHandle, ServeError> {
        // Checked rather than left to panic: from_std and the server's spawns need a runtime.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ServeError::NoRuntime)?;
        udp.set_nonblocking(true).map_err(ServeError::Udp)?;
        tcp.set_nonblocking(true).map_err(ServeError::Tcp)?;
        let udp = tokio::net::UdpSocket::from_std(udp).map_err(ServeError::Udp)?;
        let tcp = tokio::net::TcpListener::from_std(tcp).map_err(ServeError::Tcp)?;
        let local = udp.local_addr().ok();

        let handler = handler::Handler {
            resolver: Arc::clone(self),
            view,
            upstreams: upstreams.map_or_else(|| Arc::clone(&self.upstreams), Into::into),
            forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
        };
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, TCP_RESPONSE_BUFFER);
        let task = runtime.spawn(async move {
            // Only a socket failing for good ends the server; it is the caller's to notice
            // (`ServeHandle::is_finished`) and serve again.
            if let Err(error) = server.block_until_done().await {
                tracing::warn!(?local, %error, "dns: server stopped");
            }
        });
        Ok(ServeHandle { task })
    }

    /// Answers one UDP query packet against `view` exactly as a served socket would, except that
    /// nothing is forwarded (a forwarded query gets SERVFAIL, as with no upstreams). `None` when
    /// the server would send nothing (shorter than a header, or a response). For the fuzz target.
    #[doc(hidden)]
    pub fn answer_bytes(&self, view: &View, packet: &[u8]) -> Option<Vec<u8>> {
        handler::answer_bytes(self, view, packet)
    }
}

/// Keeps one task's DNS server running; dropping it stops the server and closes its sockets.
#[derive(Debug)]
pub struct ServeHandle {
    task: JoinHandle<()>,
}

impl ServeHandle {
    /// Stops the server now (as dropping the handle does).
    pub fn abort(&self) {
        self.task.abort();
    }

    /// True once the server has stopped, by [`ServeHandle::abort`] or because a socket failed.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for ServeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
