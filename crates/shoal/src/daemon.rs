//! `shoal daemon`: one node's daemon in the foreground, serving the API until SIGINT/SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use shoal_docker::DockerDriver;
use shoal_native::{NativeConfig, NativeDriver};
use shoal_node::{Daemon, DaemonConfig};
use shoal_runtime::RuntimeDriver;
use shoal_runtime::route::RoutingDriver;
use shoal_types::GenericResource;
use shoal_types::clock::SystemClock;
use tokio::sync::watch;

#[derive(clap::Args, Clone)]
pub struct DaemonArgs {
    /// Also serve the API here (repeatable): unix:///path or tcp://addr:port, as `shoal -H`.
    #[arg(short = 'H', long = "host", value_delimiter = ',', value_name = "HOST")]
    pub listen: Vec<String>,
    /// Where the node keeps its state, its tasks' files and its API socket.
    #[arg(long, env = "SHOAL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Runtime that runs tasks with an image: `docker` (the Docker Engine at DOCKER_HOST or
    /// /var/run/docker.sock), `native`, or `auto` (docker when its daemon answers at start).
    /// Tasks of the `host` image always run natively.
    #[arg(long, default_value = "auto", value_parser = ["auto", "docker", "native"])]
    pub runtime: String,
    /// Keep tasks running when the daemon stops; the next daemon adopts them.
    #[arg(long)]
    pub live_restore: bool,
    /// The name this node reports instead of the machine's hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Cgroup under which each native task gets its own (`<parent>/<task-id>`); Docker
    /// containers stay under the engine's own cgroup parent, whose form depends on its cgroup
    /// driver.
    #[arg(long, default_value = "shoal")]
    pub cgroup_parent: String,
    /// Advertise a user-defined resource, as dockerd does: repeat `gpu=UUID` for named units
    /// (each handed to one task at a time), or give `ssd=3` for a count
    #[arg(long = "node-generic-resource", value_name = "KIND=VALUE")]
    pub node_generic_resources: Vec<String>,
    /// A registry the native runtime may pull from over plain HTTP (`host:port`); loopback
    /// registries always may, as with dockerd.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Log filter, e.g. `info` or `shoal_manager=debug,info` (overridden by RUST_LOG).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Serve the Kubernetes API for kubectl at ADDR:PORT once this node is a manager, over
    /// TLS with client certificates from the cluster's root (`shoal kubeconfig` writes a
    /// kubeconfig); `none` turns it off. Without the flag: 0.0.0.0:6443, skipped with a
    /// warning when that port is taken
    #[arg(long = "kube-addr", value_name = "ADDR:PORT|none")]
    pub kube_addr: Option<String>,
    /// TLS for `tcp://` endpoints, with dockerd's flags.
    #[command(flatten)]
    pub api_tls: crate::api_tls::ApiTlsArgs,
}

pub fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/shoal")
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/share/shoal")
    }
}

pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The node's generic resources from `--node-generic-resource`, or an error naming the flag.
pub fn generic_resources(args: &DaemonArgs) -> anyhow::Result<Vec<GenericResource>> {
    shoal_types::generic::parse(&args.node_generic_resources)
        .map_err(|e| anyhow::anyhow!("--node-generic-resource: {e}"))
}

pub fn main(args: DaemonArgs, hosts: Vec<String>) -> i32 {
    // A bad flag is a usage error: refuse it before starting anything.
    if let Err(e) = generic_resources(&args) {
        eprintln!("shoal daemon: {e:#}");
        return 2;
    }
    init_logging(&args.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal daemon: cannot start the runtime: {e}");
            return 1;
        }
    };
    let res = rt.block_on(async {
        let mut signals = Signals::catch();
        let running = Running::start(&args, &hosts).await?;
        signals.recv().await;
        tracing::info!("stopping");
        running.stop().await;
        anyhow::Ok(())
    });
    match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shoal daemon: {e:#}");
            1
        }
    }
}

/// SIGINT and SIGTERM, caught from the moment this is made: one that arrives while the daemon
/// is still starting is then waited for like any other, rather than killing the process with
/// its tasks left running.
pub struct Signals {
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    pub fn catch() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            streams: signal(SignalKind::terminate())
                .and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
                .ok(),
        }
    }

    /// The next SIGINT or SIGTERM (never, where they cannot be caught).
    pub async fn recv(&mut self) {
        let Some((term, int)) = &mut self.streams else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}

/// A started daemon: the node and its API servers.
pub struct Running {
    pub daemon: Arc<Daemon>,
    pub endpoints: Vec<String>,
    shutdown: watch::Sender<bool>,
    servers: tokio::task::JoinSet<()>,
    _lock: nix::fcntl::Flock<std::fs::File>,
}

impl Running {
    pub async fn start(args: &DaemonArgs, hosts: &[String]) -> anyhow::Result<Running> {
        let generic_resources = generic_resources(args)?;
        // Refuse an API that would let anyone in before starting anything.
        let tcp = tcp_endpoints(args, hosts).await?;
        let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let lock = lock_data_dir(&data_dir)?;
        let shim_exe =
            std::env::current_exe().context("cannot find the shoal executable for task shims")?;
        let mut native = NativeConfig::new(data_dir.join("native"), shim_exe);
        native.cgroup_parent = args.cgroup_parent.clone();
        let images = shoal_image::LocalImageStore::open(
            &data_dir.join("images"),
            args.insecure_registries.clone(),
        )
        .with_context(|| format!("cannot open the image store in {}", data_dir.display()))?;
        native.images = Some(Arc::new(images));
        let native = NativeDriver::new(native).context("cannot start the native runtime")?;
        let caps = native.capabilities();
        let missing = caps.missing();
        if missing.is_empty() {
            tracing::info!(
                ?caps,
                "native runtime: namespaces and cgroup limits enforced"
            );
        } else {
            tracing::warn!(?missing, "native runtime: running without some isolation");
        }
        let docker = docker_runtime(&args.runtime, &data_dir).await?;
        let driver = RoutingDriver::new(Arc::new(native), docker);
        tracing::info!(runtimes = ?driver.runtimes(), default = driver.name(), "runtimes ready");
        let engine_version = env!("CARGO_PKG_VERSION").to_string();
        let clock = Arc::new(SystemClock);
        let daemon = Daemon::start(
            DaemonConfig {
                data_dir: data_dir.clone(),
                engine_version: engine_version.clone(),
                stop_tasks_on_shutdown: !args.live_restore,
                hostname: args.hostname.clone(),
                generic_resources,
            },
            clock.clone(),
            Arc::new(driver),
        )
        .await
        .context("cannot start the node")?;

        let hosts: Vec<String> = if hosts.is_empty() {
            vec![format!("unix://{}", data_dir.join("shoal.sock").display())]
        } else {
            hosts.to_vec()
        };
        let (shutdown, rx) = watch::channel(false);
        let mut servers = tokio::task::JoinSet::new();
        let ids = Arc::new(std::sync::Mutex::new(shoal_types::IdGen::from_os()));
        let cluster_tls: Arc<dyn shoal_api::tls::TlsSource> =
            Arc::new(crate::api_tls::ClusterTls::new(
                daemon.clone(),
                clock.clone(),
                tcp.addrs.clone(),
                args.hostname.clone(),
            ));
        for h in &hosts {
            let listener = bind(h, &tcp.mode, &cluster_tls).await?;
            let state = shoal_api::AppState {
                daemon: daemon.clone(),
                clock: clock.clone(),
                shutdown: rx.clone(),
                engine_version: engine_version.clone(),
                ids: ids.clone(),
            };
            let host = h.clone();
            servers.spawn(async move {
                if let Err(e) = shoal_api::serve(listener, state).await {
                    tracing::error!(%host, error = %shoal_types::error::Chain(&e), "API server stopped");
                }
            });
            tracing::info!(host = %h, "API listening");
        }
        if let Some(l) = kube_listener(
            args.kube_addr.as_deref(),
            &daemon,
            &clock,
            args.hostname.clone(),
        )
        .await?
        {
            let state = shoal_kube::KubeState {
                daemon: daemon.clone(),
                clock: clock.clone(),
                shutdown: rx.clone(),
                cache: Default::default(),
            };
            servers.spawn(async move {
                if let Err(e) = shoal_kube::serve(l, state).await {
                    tracing::error!(error = %shoal_types::error::Chain(&e), "Kubernetes API server stopped");
                }
            });
        }
        Ok(Running {
            daemon,
            endpoints: hosts,
            shutdown,
            servers,
            _lock: lock,
        })
    }

    pub async fn stop(mut self) {
        self.daemon.shutdown().await;
        let _ = self.shutdown.send(true);
        while self.servers.join_next().await.is_some() {}
    }
}

/// The Docker runtime `--runtime` asks for: required with `docker`, used when its daemon answers
/// with `auto`, never with `native`. Containers are owned by the data dir, which is what makes a
/// restarted daemon adopt them and no other daemon on the same engine touch them.
async fn docker_runtime(
    runtime: &str,
    data_dir: &Path,
) -> anyhow::Result<Option<Arc<dyn RuntimeDriver>>> {
    if runtime == "native" {
        return Ok(None);
    }
    let owner = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf())
        .display()
        .to_string();
    match DockerDriver::connect(&owner).await {
        Ok(d) => Ok(Some(Arc::new(d))),
        // anyhow keeps the error's sources: the final `{:#}` prints the whole chain.
        Err(e) if runtime == "docker" => Err(anyhow::Error::new(e).context("--runtime docker")),
        Err(e) => {
            tracing::info!(error = %shoal_types::error::Chain(&e), "no Docker daemon: images run on the native runtime");
            Ok(None)
        }
    }
}

fn lock_data_dir(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = dir.join("shoal.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!(
            "another shoal daemon is using {} ({e}); stop it or pass a different --data-dir",
            dir.display()
        )
    })
}

/// How `tcp://` endpoints are served, and every address they resolve to.
struct TcpEndpoints {
    mode: crate::api_tls::TcpMode,
    addrs: Vec<std::net::SocketAddr>,
}

/// Reads the TLS flags and refuses unauthenticated TCP off loopback (see [`crate::api_tls`]).
async fn tcp_endpoints(args: &DaemonArgs, hosts: &[String]) -> anyhow::Result<TcpEndpoints> {
    let mode = crate::api_tls::tcp_mode(&args.api_tls)?;
    let mut all = Vec::new();
    for h in hosts {
        let Some(addr) = h.strip_prefix("tcp://") else {
            continue;
        };
        let addrs: Vec<_> = tokio::net::lookup_host(addr)
            .await
            .with_context(|| format!("-H {h}: cannot resolve the address"))?
            .collect();
        crate::api_tls::check_exposure(h, &addrs, &mode, args.api_tls.insecure_plain_tcp)?;
        all.extend(addrs);
    }
    let t = &args.api_tls;
    if all.is_empty() && (t.tls || t.tlsverify) {
        tracing::warn!("--tls/--tlsverify apply to tcp:// endpoints; none is given (-H)");
    }
    Ok(TcpEndpoints { mode, addrs: all })
}

/// The Kubernetes API's listener, if it is to be served: TLS under the cluster's root, with a
/// server certificate for its own address.
async fn kube_listener(
    flag: Option<&str>,
    daemon: &Arc<Daemon>,
    clock: &Arc<SystemClock>,
    hostname: Option<String>,
) -> anyhow::Result<Option<shoal_api::tls::TlsListener>> {
    const DEFAULT: &str = "0.0.0.0:6443";
    let (addr, explicit) = match flag {
        Some("none") => return Ok(None),
        Some(a) => (a, true),
        None => (DEFAULT, false),
    };
    let sock: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("--kube-addr {addr:?}: expected ADDR:PORT or none"))?;
    let tcp = match tokio::net::TcpListener::bind(sock).await {
        Ok(t) => t,
        Err(e) if !explicit => {
            tracing::warn!(addr, error = %e, "the Kubernetes API is not served: its default port is taken (give --kube-addr)");
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("--kube-addr {addr}: cannot listen")),
    };
    let local = tcp.local_addr()?;
    let source: Arc<dyn shoal_api::tls::TlsSource> = Arc::new(crate::api_tls::ClusterTls::new(
        daemon.clone(),
        clock.clone(),
        vec![local],
        hostname,
    ));
    let l = shoal_api::tls::TlsListener::new(tcp, source)
        .with_context(|| format!("--kube-addr {addr}: cannot listen"))?;
    tracing::info!(addr = %local, "Kubernetes API listening (TLS, once this node is a manager)");
    Ok(Some(l))
}

async fn bind(
    host: &str,
    mode: &crate::api_tls::TcpMode,
    cluster_tls: &Arc<dyn shoal_api::tls::TlsSource>,
) -> anyhow::Result<shoal_api::Listener> {
    use crate::api_tls::TcpMode;
    if let Some(path) = host.strip_prefix("unix://") {
        let path = Path::new(path);
        if path.exists() {
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                bail!("{host}: another daemon is listening there");
            }
            std::fs::remove_file(path)
                .with_context(|| format!("{host}: cannot remove the stale socket"))?;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{host}: cannot create {}", parent.display()))?;
        }
        let l = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("{host}: cannot listen"))?;
        return Ok(shoal_api::Listener::Unix(l));
    }
    if let Some(addr) = host.strip_prefix("tcp://") {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("{host}: cannot listen"))?;
        let source: Arc<dyn shoal_api::tls::TlsSource> = match mode {
            TcpMode::Open(None) => return Ok(shoal_api::Listener::Tcp(l)),
            TcpMode::Open(Some(cfg)) | TcpMode::Verified(cfg) => Arc::new(cfg.clone()),
            TcpMode::Cluster => cluster_tls.clone(),
        };
        let l = shoal_api::tls::TlsListener::new(l, source)
            .with_context(|| format!("{host}: cannot listen"))?;
        return Ok(shoal_api::Listener::Tls(l));
    }
    bail!("-H {host:?}: expected unix:///path or tcp://addr:port")
}
