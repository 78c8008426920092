//! TLS for the daemon's TCP API, as dockerd does it (`--tls`, `--tlsverify`, `--tlscacert`,
//! `--tlscert`, `--tlskey`), and the rule that keeps plain TCP off the network: without verified
//! TLS, a `tcp://` listener must be on loopback unless
//! `--insecure-plain-tcp-api-anyone-can-run-root` says otherwise.
//!
//! Three ways to serve TCP:
//! - plain (no TLS flags, or `--tls` alone, which encrypts but lets anyone in, as dockerd's):
//!   loopback only, unless the loud flag is given;
//! - `--tlsverify` with `--tlscacert --tlscert --tlskey`: dockerd's, fixed files;
//! - `--tlsverify` alone: the cluster's root. Once the node is a manager it issues itself an API
//!   server certificate (SANs: the listen and advertise addresses, every local interface address
//!   when listening on all, loopback, `localhost` and the hostname) and requires client
//!   certificates from the same root (`shoal swarm client-cert`). Until then, and on workers,
//!   TCP connections are closed with a logged reason; the unix socket serves as always.
//!
//! Concurrency: [`ClusterTls`] caches one configuration behind a mutex held only to read or
//! replace it; building a new one (a key, a CSR, a signature) happens outside the lock.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use shoal_control::{ApiCertRequest, ApiCertUse, NodeSurface};
use shoal_types::Clock;
use shoal_types::Timestamp;

/// The flag that allows plain TCP off loopback; its name is the warning.
pub const INSECURE_FLAG: &str = "--insecure-plain-tcp-api-anyone-can-run-root";

/// dockerd's TLS flags for the TCP API.
#[derive(clap::Args, Clone, Default, Debug)]
pub struct ApiTlsArgs {
    /// Serve TCP API endpoints over TLS without requiring client certificates (dockerd's
    /// `--tls`): encrypted, but anyone may connect, so loopback only unless
    /// --insecure-plain-tcp-api-anyone-can-run-root
    #[arg(long)]
    pub tls: bool,
    /// Serve TCP API endpoints over TLS and require client certificates signed by --tlscacert;
    /// alone (no certificate files) on a manager: by the cluster's root, with a server
    /// certificate the node issues itself
    #[arg(long)]
    pub tlsverify: bool,
    /// Trust only clients certified by this CA (PEM)
    #[arg(long, value_name = "PATH")]
    pub tlscacert: Option<PathBuf>,
    /// The API server's TLS certificate (PEM)
    #[arg(long, value_name = "PATH")]
    pub tlscert: Option<PathBuf>,
    /// The API server's TLS key (PEM)
    #[arg(long, value_name = "PATH")]
    pub tlskey: Option<PathBuf>,
    /// Allow serving the API over plain TCP (or --tls without --tlsverify) on addresses other
    /// than loopback: anyone who can reach them can run processes as root on this machine
    #[arg(long = "insecure-plain-tcp-api-anyone-can-run-root")]
    pub insecure_plain_tcp: bool,
}

/// How TCP listeners are served.
pub enum TcpMode {
    /// No client authentication: plain TCP, or TLS without client certificates.
    Open(Option<Arc<rustls::ServerConfig>>),
    /// TLS requiring client certificates from fixed files.
    Verified(Arc<rustls::ServerConfig>),
    /// TLS with the cluster's root, built once the node is a manager.
    Cluster,
}

impl TcpMode {
    fn verified(&self) -> bool {
        !matches!(self, TcpMode::Open(_))
    }
}

/// Reads the flags and the files they name; every error names the flag and the path.
pub fn tcp_mode(a: &ApiTlsArgs) -> anyhow::Result<TcpMode> {
    let files = [
        ("--tlscacert", &a.tlscacert),
        ("--tlscert", &a.tlscert),
        ("--tlskey", &a.tlskey),
    ];
    if !a.tls && !a.tlsverify {
        if let Some((flag, _)) = files.iter().find(|(_, p)| p.is_some()) {
            bail!("{flag} is given without --tls or --tlsverify: add --tlsverify to serve TLS");
        }
        return Ok(TcpMode::Open(None));
    }
    if a.tlsverify && files.iter().all(|(_, p)| p.is_none()) {
        return Ok(TcpMode::Cluster);
    }
    let need = |flag: &str, p: &Option<PathBuf>| -> anyhow::Result<PathBuf> {
        p.clone().with_context(|| {
            if a.tlsverify {
                format!(
                    "{flag} is required with --tlsverify and other certificate files \
                     (or give none of --tlscacert/--tlscert/--tlskey to serve with the cluster's root)"
                )
            } else {
                format!("{flag} is required with --tls (the API server's certificate and key)")
            }
        })
    };
    let cert = need("--tlscert", &a.tlscert)?;
    let key = need("--tlskey", &a.tlskey)?;
    let chain = shoal_pki::pem_certs(&read("--tlscert", &cert)?, "certificate")
        .with_context(|| format!("--tlscert {}", cert.display()))?;
    let key_der = shoal_pki::pem_key(&read("--tlskey", &key)?, "key")
        .with_context(|| format!("--tlskey {}", key.display()))?;
    if !a.tlsverify {
        if a.tlscacert.is_some() {
            tracing::warn!("--tlscacert is ignored without --tlsverify: clients are not verified");
        }
        let cfg = shoal_pki::api_server_config(chain, key_der, None).with_context(|| {
            format!("--tlscert {} / --tlskey {}", cert.display(), key.display())
        })?;
        return Ok(TcpMode::Open(Some(cfg)));
    }
    let ca = need("--tlscacert", &a.tlscacert)?;
    let ca_pem = read("--tlscacert", &ca)?;
    shoal_pki::pem_certs(&ca_pem, "CA certificate")
        .with_context(|| format!("--tlscacert {}", ca.display()))?;
    let cfg = shoal_pki::api_server_config(chain, key_der, Some(&[ca_pem])).with_context(|| {
        format!(
            "--tlscacert {} / --tlscert {} / --tlskey {}",
            ca.display(),
            cert.display(),
            key.display()
        )
    })?;
    Ok(TcpMode::Verified(cfg))
}

fn read(flag: &str, path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{flag} {}: cannot read", path.display()))
}

/// Refuses an open (unauthenticated) TCP listener on `addrs` unless they are all loopback or
/// the loud flag allows it; with the flag, warns as loudly.
pub fn check_exposure(
    host: &str,
    addrs: &[SocketAddr],
    mode: &TcpMode,
    allow_insecure: bool,
) -> anyhow::Result<()> {
    if mode.verified() || addrs.iter().all(|a| a.ip().is_loopback()) {
        return Ok(());
    }
    let what = match mode {
        TcpMode::Open(Some(_)) => "TLS without client verification (--tls)",
        _ => "plain TCP",
    };
    if allow_insecure {
        let msg = format!(
            "-H {host}: serving the API over {what} on a non-loopback address because of \
             {INSECURE_FLAG}: ANYONE WHO CAN REACH IT CAN RUN PROCESSES AS ROOT ON THIS MACHINE"
        );
        tracing::warn!("{msg}");
        eprintln!("WARNING: {msg}");
        return Ok(());
    }
    bail!(
        "-H {host}: refusing to serve the API over {what} on a non-loopback address: anyone \
         who can reach it could run processes as root on this machine. Either serve it with TLS \
         and client certificates (`shoal daemon --tlsverify` with --tlscacert, --tlscert and \
         --tlskey, or --tlsverify alone on a manager to use the cluster's root), or, on a network \
         you trust completely, pass {INSECURE_FLAG} to `shoal daemon`; `shoal up` serves \
         loopback only"
    )
}

/// What the daemon needs to serve TLS with the cluster's root.
pub struct ClusterTls {
    pub daemon: Arc<dyn NodeSurface>,
    pub clock: Arc<dyn Clock>,
    /// The TCP addresses the API listens on (SANs; an unspecified one adds every interface).
    pub listen: Vec<SocketAddr>,
    pub hostname: Option<String>,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    /// The roots it was built for: a rotation changes them, and the configuration with them.
    trust: Vec<String>,
    renew_after: Timestamp,
    cfg: Arc<rustls::ServerConfig>,
}

impl ClusterTls {
    pub fn new(
        daemon: Arc<dyn NodeSurface>,
        clock: Arc<dyn Clock>,
        listen: Vec<SocketAddr>,
        hostname: Option<String>,
    ) -> ClusterTls {
        ClusterTls {
            daemon,
            clock,
            listen,
            hostname,
            cached: Mutex::new(None),
        }
    }

    async fn current(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let swarm = self.daemon.swarm().await.ok_or(
            "this node is in no swarm yet: with --tlsverify and no certificate files, TCP is \
             served with the cluster's root once the node is a manager",
        )?;
        let manager = swarm.manager.ok_or(
            "this node is a worker: only a manager can issue itself an API certificate; \
             give --tlscacert, --tlscert and --tlskey",
        )?;
        let cluster = manager.cluster().map_err(|e| e.to_string())?;
        let trust = cluster.trust();
        let now = self.clock.now();
        {
            let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = cached.as_ref()
                && c.trust == trust
                && now < c.renew_after
            {
                return Ok(c.cfg.clone());
            }
        }
        let (key_pem, csr_pem) = shoal_pki::new_key_and_csr().map_err(|e| e.to_string())?;
        let advertise = swarm
            .advertise_addr
            .parse::<SocketAddr>()
            .ok()
            .map(|a| a.ip());
        let (dns_names, ips) = sans(&self.listen, advertise, self.hostname.as_deref());
        let req = ApiCertRequest {
            usage: ApiCertUse::Server { dns_names, ips },
            csr_pem,
            expiry: None,
        };
        let issued = manager
            .issue_api_certificate(&req, now)
            .map_err(|e| format!("issuing the API server certificate: {e}"))?;
        let chain = shoal_pki::pem_certs(&issued.cert_pem, "API server certificate")
            .map_err(|e| e.to_string())?;
        let key = shoal_pki::pem_key(&key_pem, "API server key").map_err(|e| e.to_string())?;
        let cfg = shoal_pki::api_server_config(chain, key, Some(&issued.trust))
            .map_err(|e| shoal_types::error::chain(&e))?;
        // Renew at half the validity, as nodes renew theirs.
        let half = std::time::Duration::from_nanos(
            u64::try_from(
                issued
                    .not_after
                    .unix_nanos()
                    .saturating_sub(now.unix_nanos())
                    / 2,
            )
            .unwrap_or(0),
        );
        tracing::info!(not_after = %issued.not_after, "API: serving TLS with the cluster's root");
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
            trust: issued.trust,
            renew_after: now.add(half),
            cfg: cfg.clone(),
        });
        Ok(cfg)
    }
}

impl shoal_api::tls::TlsSource for ClusterTls {
    fn config(&self) -> BoxFuture<'_, Result<Arc<rustls::ServerConfig>, String>> {
        Box::pin(self.current())
    }
}

/// The names and addresses an API server certificate covers.
fn sans(
    listen: &[SocketAddr],
    advertise: Option<IpAddr>,
    hostname: Option<&str>,
) -> (Vec<String>, Vec<IpAddr>) {
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
    ];
    for a in listen {
        if a.ip().is_unspecified() {
            ips.extend(interface_addrs());
        } else {
            ips.push(a.ip());
        }
    }
    ips.extend(advertise);
    ips.sort();
    ips.dedup();
    let mut dns = vec!["localhost".to_string()];
    let host = hostname
        .map(str::to_owned)
        .or_else(|| nix::unistd::gethostname().ok()?.into_string().ok());
    // Only names that are valid DNS names: a SAN that is not would make the certificate fail.
    if let Some(h) = host.filter(|h| {
        !h.is_empty()
            && h.len() < 254
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    }) && h != "localhost"
    {
        dns.push(h);
    }
    (dns, ips)
}

/// Every address of every local interface.
fn interface_addrs() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|i| i.address)
        .filter_map(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ApiTlsArgs {
        ApiTlsArgs::default()
    }

    #[test]
    fn modes_follow_the_flags() {
        assert!(matches!(tcp_mode(&args()), Ok(TcpMode::Open(None))));
        let verify = ApiTlsArgs {
            tlsverify: true,
            ..args()
        };
        assert!(matches!(tcp_mode(&verify), Ok(TcpMode::Cluster)));
        let e = tcp_mode(&ApiTlsArgs {
            tlscert: Some("/x".into()),
            ..args()
        })
        .err()
        .map(|e| format!("{e:#}"));
        assert!(e.is_some_and(|e| e.contains("--tlscert")));
        let e = tcp_mode(&ApiTlsArgs {
            tlsverify: true,
            tlscert: Some("/nonexistent/cert.pem".into()),
            ..args()
        })
        .err()
        .map(|e| format!("{e:#}"));
        assert!(
            e.as_deref().is_some_and(|e| e.contains("--tlskey")),
            "{e:?}"
        );
        let e = tcp_mode(&ApiTlsArgs {
            tlsverify: true,
            tlscacert: Some("/nonexistent/ca.pem".into()),
            tlscert: Some("/nonexistent/cert.pem".into()),
            tlskey: Some("/nonexistent/key.pem".into()),
            ..args()
        })
        .err()
        .map(|e| format!("{e:#}"));
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("--tlscert /nonexistent/cert.pem: cannot read")),
            "{e:?}"
        );
    }

    #[test]
    fn open_tcp_is_loopback_only_without_the_loud_flag() {
        let lo: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:1".parse().expect("addr");
        let open = TcpMode::Open(None);
        assert!(check_exposure("tcp://127.0.0.1:1", &[lo], &open, false).is_ok());
        let e = check_exposure("tcp://0.0.0.0:1", &[any], &open, false).expect_err("refused");
        let e = e.to_string();
        assert!(
            e.contains("tcp://0.0.0.0:1") && e.contains(INSECURE_FLAG) && e.contains("--tlsverify")
        );
        assert!(check_exposure("tcp://0.0.0.0:1", &[any], &open, true).is_ok());
        assert!(check_exposure("tcp://0.0.0.0:1", &[any], &TcpMode::Cluster, false).is_ok());
    }

    #[test]
    fn sans_cover_loopback_and_listen_addresses() {
        let listen: SocketAddr = "10.1.2.3:2376".parse().expect("addr");
        let (dns, ips) = sans(&[listen], None, Some("node-1"));
        assert_eq!(dns, ["localhost", "node-1"]);
        assert!(ips.contains(&IpAddr::from([127, 0, 0, 1])));
        assert!(ips.contains(&IpAddr::from([10, 1, 2, 3])));
        assert!(ips.contains(&std::net::Ipv6Addr::LOCALHOST.into()));
        let (dns, _) = sans(&[listen], None, Some("bad name"));
        assert_eq!(dns, ["localhost"]);
    }
}
