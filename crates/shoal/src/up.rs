//! `shoal up`: the newcomer's one command. It runs a daemon in the foreground, makes this machine
//! a one-node swarm if it is not one yet, starts a small demo web service, tells what to try next
//! and stops everything cleanly on Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use shoal_control::{ControlSurface, InitRequest, NodeSurface};
use shoal_types::node::Availability;
use shoal_types::service::{ContainerSpec, ServiceMode, ServiceSpec, TaskSpec};
use shoal_types::task::TaskState;

use crate::daemon::{DaemonArgs, Running, Signals, init_logging};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Also serve the API here (repeatable): unix:///path or tcp://addr:port, as `shoal -H`.
    #[arg(short = 'H', long = "host", value_delimiter = ',', value_name = "HOST")]
    listen: Vec<String>,
    /// Where the node keeps its state (default /var/lib/shoal as root).
    #[arg(long, env = "SHOAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Port the demo web service answers on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Replicas of the demo service.
    #[arg(long, default_value_t = 2)]
    replicas: u64,
    /// Do not create the demo service.
    #[arg(long)]
    no_demo: bool,
    /// Where this node serves its cluster peers (managers and workers joining later).
    #[arg(long, default_value = "0.0.0.0:2377")]
    listen_addr: String,
    /// Cgroup under which each task gets its own.
    #[arg(long, default_value = "shoal")]
    cgroup_parent: String,
    /// Log filter for the daemon's own messages.
    #[arg(long, default_value = "warn")]
    log_level: String,
}

const DEMO: &str = "demo";

impl UpArgs {
    /// The `-H` given after `up`.
    pub fn take_listen(&mut self) -> Vec<String> {
        std::mem::take(&mut self.listen)
    }
}

pub fn main(a: UpArgs, hosts: Vec<String>) -> i32 {
    init_logging(&a.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal up: {e}");
            return 1;
        }
    };
    match rt.block_on(run(a, hosts)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shoal up: {e:#}");
            1
        }
    }
}

async fn run(a: UpArgs, hosts: Vec<String>) -> anyhow::Result<()> {
    let args = DaemonArgs {
        listen: Vec::new(),
        data_dir: a.data_dir.clone(),
        runtime: "native".into(),
        live_restore: false,
        hostname: None,
        cgroup_parent: a.cgroup_parent.clone(),
        node_generic_resources: Vec::new(),
        insecure_registries: Vec::new(),
        log_level: a.log_level.clone(),
        // `up` serves plain HTTP: its `-H tcp://` must be on loopback.
        api_tls: Default::default(),
        // The Kubernetes API on its default port (TLS with client certificates only).
        kube_addr: None,
    };
    let mut signals = Signals::catch();
    let running = Running::start(&args, &hosts).await?;
    // Ctrl-C while the demo is still coming up stops everything just as it does later.
    let up = tokio::select! {
        r = bring_up(&running, &a) => Some(r),
        _ = signals.recv() => None,
    };
    let result = match up {
        Some(r) => {
            if let Err(e) = &r {
                eprintln!("shoal up: {e:#}");
            }
            println!("Press Ctrl-C to stop shoal (its tasks stop with it).");
            signals.recv().await;
            r
        }
        None => Ok(()),
    };
    println!("\nStopping shoal...");
    running.stop().await;
    println!("Stopped.");
    result
}

async fn bring_up(running: &Running, a: &UpArgs) -> anyhow::Result<()> {
    let daemon = &running.daemon;
    if daemon.swarm().await.is_none() {
        let id = daemon
            .swarm_init(InitRequest {
                advertise_addr: None,
                listen_addr: a.listen_addr.clone(),
                spec: Default::default(),
                availability: Availability::Active,
                force_new_cluster: false,
                network: Default::default(),
            })
            .await
            .context("cannot initialise the swarm")?;
        println!("Swarm initialized: current node ({id}) is now a manager.");
    }
    let swarm = daemon.swarm().await.context("the swarm is not active")?;
    let control = swarm
        .manager
        .context("this node is a worker: `shoal up` needs a manager to create the demo service")?;
    let endpoint = running.endpoints.first().cloned().unwrap_or_default();
    println!(
        "shoal {} is serving the Docker API on {endpoint}",
        env!("CARGO_PKG_VERSION")
    );
    if !a.no_demo {
        if !control.view().services().any(|s| s.spec.name == DEMO) {
            let exe =
                std::env::current_exe().context("cannot find the shoal executable for the demo")?;
            let spec = ServiceSpec {
                name: DEMO.into(),
                mode: ServiceMode::Replicated {
                    replicas: a.replicas,
                },
                task: TaskSpec {
                    container: ContainerSpec {
                        image: "host".into(),
                        command: vec![
                            exe.display().to_string(),
                            "demo-http".into(),
                            "--port".into(),
                            a.port.to_string(),
                        ],
                        stop_grace_period: Some(Duration::from_secs(2)),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            };
            control
                .create_service(spec)
                .await
                .context("cannot create the demo service")?;
            println!(
                "Created service {DEMO:?}: {} replicas of a small web server on port {}",
                a.replicas, a.port
            );
        }
        wait_converged(&*control, DEMO, Duration::from_secs(60)).await?;
    }
    let client = if endpoint.ends_with("/var/lib/shoal/shoal.sock") {
        String::new()
    } else {
        format!(" -H {endpoint}")
    };
    println!();
    println!("Try:");
    if !a.no_demo {
        println!("  curl http://localhost:{}/", a.port);
        println!("  cargo run --release --bin shoal --{client} service ps {DEMO}");
        println!("  cargo run --release --bin shoal --{client} service scale {DEMO}=4");
    }
    println!("  cargo run --release --bin shoal --{client} service ls");
    println!("  docker -H {endpoint} service ls        # the real docker CLI works too");
    println!(
        "  cargo run --release --bin shoal --{client} kubeconfig --server https://127.0.0.1:6443 -o shoal.kubeconfig"
    );
    println!(
        "  KUBECONFIG=shoal.kubeconfig kubectl get deployments,pods   # and kubectl, on the same objects"
    );
    println!();
    Ok(())
}

/// Waits until every replica of `name` runs, printing docker-style progress as it changes.
async fn wait_converged(
    control: &dyn ControlSurface,
    name: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = None;
    loop {
        let view = control.view();
        let svc = view
            .services()
            .find(|s| s.spec.name == name)
            .context("the demo service disappeared")?;
        let want = match svc.spec.mode {
            ServiceMode::Replicated { replicas } => replicas as usize,
            _ => 1,
        };
        let running = view
            .tasks_of_service(&svc.id)
            .filter(|t| {
                t.status.state == TaskState::Running && t.desired_state == TaskState::Running
            })
            .count();
        if last != Some(running) {
            println!("overall progress: {running} out of {want} tasks");
            last = Some(running);
        }
        if running >= want {
            println!("verify: Service {name} converged");
            return Ok(());
        }
        if let Some(err) = view
            .tasks_of_service(&svc.id)
            .find_map(|t| (!t.status.err.is_empty()).then(|| t.status.err.clone()))
        {
            tracing::debug!(%err, "demo task not running yet");
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "the demo service did not converge within {}s; see `shoal service ps {name}`",
                limit.as_secs()
            );
        }
        // The control surface has no change feed; a demo's progress is fine at this pace.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
