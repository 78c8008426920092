//! `swarm init|join-token|leave|update`: the cluster-wide commands, their request bodies and
//! docker's messages (with `shoal` in place of `docker` in the commands they suggest).

use bollard_stubs::models::{
    Node, Swarm, SwarmInitRequest, SwarmSpec, SwarmSpecCaConfig, SwarmSpecDispatcher,
    SwarmSpecEncryptionConfig, SwarmSpecOrchestration, SwarmSpecRaft,
};
use serde::Serialize;

use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::units::{parse_duration_flag, parse_uint};

#[derive(Debug, clap::Subcommand)]
pub enum SwarmCommand {
    /// Initialize a swarm
    Init(InitArgs),
    /// Manage join tokens
    JoinToken(JoinTokenArgs),
    /// Leave the swarm
    Leave {
        /// Force this node to leave the swarm, ignoring warnings
        #[arg(short, long)]
        force: bool,
    },
    /// Update the swarm
    Update(UpdateArgs),
}

/// Flags `init` and `update` share (docker's `addSwarmFlags`).
#[derive(Debug, Default, clap::Args)]
pub struct SwarmSpecFlags {
    /// Task history retention limit
    #[arg(long, value_name = "int")]
    pub task_history_limit: Option<String>,
    /// Dispatcher heartbeat period (ns|us|ms|s|m|h)
    #[arg(long, value_name = "duration")]
    pub dispatcher_heartbeat: Option<String>,
    /// Validity period for node certificates (ns|us|ms|s|m|h)
    #[arg(long, value_name = "duration")]
    pub cert_expiry: Option<String>,
    /// Number of additional Raft snapshots to retain
    #[arg(long, value_name = "uint")]
    pub max_snapshots: Option<String>,
    /// Number of log entries between Raft snapshots
    #[arg(long, value_name = "uint")]
    pub snapshot_interval: Option<String>,
    /// Enable manager autolocking (requiring an unlock key to start a stopped manager)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub autolock: Option<bool>,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Advertised address (format: "<ip|interface>[:port]")
    #[arg(long)]
    pub advertise_addr: Option<String>,
    /// Listen address (format: "<ip|interface>[:port]")
    #[arg(long, default_value = DEFAULT_LISTEN_ADDR)]
    pub listen_addr: String,
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long)]
    pub availability: Option<String>,
    /// Force create a new cluster from current state
    #[arg(long)]
    pub force_new_cluster: bool,
    #[command(flatten)]
    pub spec: SwarmSpecFlags,
}

#[derive(Debug, clap::Args)]
pub struct JoinTokenArgs {
    /// Only display token
    #[arg(short, long)]
    pub quiet: bool,
    /// Rotate join token
    #[arg(long)]
    pub rotate: bool,
    /// worker or manager
    pub role: String,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub spec: SwarmSpecFlags,
}

const DEFAULT_LISTEN_ADDR: &str = "0.0.0.0:2377";

/// `POST /swarm/init`'s body: the model lacks two fields docker sends.
#[derive(Debug, Serialize)]
pub struct InitBody {
    #[serde(flatten)]
    pub request: SwarmInitRequest,
    #[serde(rename = "AutoLockManagers")]
    pub auto_lock_managers: bool,
    #[serde(rename = "Availability", skip_serializing_if = "String::is_empty")]
    pub availability: String,
}

pub async fn run(client: &Client, cmd: SwarmCommand) -> Result<()> {
    match cmd {
        SwarmCommand::Init(args) => init(client, args).await,
        SwarmCommand::JoinToken(args) => join_token(client, args).await,
        SwarmCommand::Leave { force } => {
            let query = if force {
                vec![("force", "1".to_string())]
            } else {
                vec![]
            };
            client
                .post_no_answer::<()>("/swarm/leave", &query, None)
                .await?;
            println!("Node left the swarm.");
            Ok(())
        }
        SwarmCommand::Update(args) => update(client, args).await,
    }
}

/// Applies the flags that were given to `spec` (docker's `mergeSwarmSpec`).
pub fn merge_spec(spec: &mut SwarmSpec, flags: &SwarmSpecFlags) -> Result<()> {
    if let Some(v) = &flags.task_history_limit {
        let n: i64 = v.parse().map_err(|_| {
            CliError::invalid_flag("task-history-limit", v, "expected a whole number")
        })?;
        spec.orchestration
            .get_or_insert_with(SwarmSpecOrchestration::default)
            .task_history_retention_limit = Some(n);
    }
    if let Some(v) = &flags.dispatcher_heartbeat {
        let d = parse_duration_flag(v)
            .map_err(|why| CliError::invalid_flag("dispatcher-heartbeat", v, why))?;
        spec.dispatcher
            .get_or_insert_with(SwarmSpecDispatcher::default)
            .heartbeat_period = Some(d);
    }
    if let Some(v) = &flags.max_snapshots {
        let n = parse_uint(v).map_err(|why| CliError::invalid_flag("max-snapshots", v, why))?;
        spec.raft
            .get_or_insert_with(SwarmSpecRaft::default)
            .keep_old_snapshots = Some(n);
    }
    if let Some(v) = &flags.snapshot_interval {
        let n = parse_uint(v).map_err(|why| CliError::invalid_flag("snapshot-interval", v, why))?;
        spec.raft
            .get_or_insert_with(SwarmSpecRaft::default)
            .snapshot_interval = Some(n);
    }
    if let Some(on) = flags.autolock {
        spec.encryption_config
            .get_or_insert_with(SwarmSpecEncryptionConfig::default)
            .auto_lock_managers = Some(on);
    }
    if let Some(v) = &flags.cert_expiry {
        let d =
            parse_duration_flag(v).map_err(|why| CliError::invalid_flag("cert-expiry", v, why))?;
        spec.ca_config
            .get_or_insert_with(SwarmSpecCaConfig::default)
            .node_cert_expiry = Some(d);
    }
    Ok(())
}

/// docker's `ParseTCPAddr` against the default `0.0.0.0:2377`: fills in a missing host or port.
pub fn normalize_listen_addr(value: &str) -> Result<String> {
    let bad = || CliError::invalid_flag("listen-addr", value, "invalid bind address format");
    let addr = value.strip_prefix("tcp://").unwrap_or(value);
    if addr.is_empty() || addr.contains("://") {
        return Err(CliError::invalid_flag(
            "listen-addr",
            value,
            "invalid proto, expected tcp",
        ));
    }
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (ip6, tail) = rest.split_once(']').ok_or_else(bad)?;
        (
            format!("[{ip6}]"),
            tail.strip_prefix(':').unwrap_or(tail).to_string(),
        )
    } else {
        match addr.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.to_string()),
            None => (addr.to_string(), String::new()),
        }
    };
    let host = if host.is_empty() {
        "0.0.0.0".to_string()
    } else {
        host
    };
    let port = if port.is_empty() {
        "2377".to_string()
    } else {
        port
    };
    if port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(format!("{host}:{port}"))
}

pub fn build_init(args: &InitArgs) -> Result<InitBody> {
    let mut spec = SwarmSpec::default();
    merge_spec(&mut spec, &args.spec)?;
    let availability = match &args.availability {
        None => String::new(),
        Some(a) => {
            let lower = a.to_lowercase();
            if !["active", "pause", "drain"].contains(&lower.as_str()) {
                return Err(CliError::Usage(format!(
                    "invalid availability \"{a}\", only active, pause and drain are supported"
                )));
            }
            lower
        }
    };
    Ok(InitBody {
        request: SwarmInitRequest {
            listen_addr: Some(normalize_listen_addr(&args.listen_addr)?),
            advertise_addr: Some(args.advertise_addr.clone().unwrap_or_default()),
            force_new_cluster: Some(args.force_new_cluster),
            spec: Some(spec),
            default_addr_pool: Some(Vec::new()),
            // docker's default mask length for address pools.
            subnet_size: Some(24),
            ..Default::default()
        },
        auto_lock_managers: args.spec.autolock.unwrap_or(false),
        availability,
    })
}

async fn init(client: &Client, args: InitArgs) -> Result<()> {
    let body = build_init(&args)?;
    let node_id: String = match client.post("/swarm/init", &[], &body).await {
        Ok(id) => id,
        Err(CliError::Daemon { message, .. })
            if message.contains("could not choose an IP address to advertise")
                || message.contains("could not find the system's IP address") =>
        {
            return Err(CliError::Failed(format!(
                "Error response from daemon: {message} - specify one with --advertise-addr"
            )));
        }
        Err(e) => return Err(e),
    };
    println!("Swarm initialized: current node ({node_id}) is now a manager.\n");
    // A swarm without join tokens (a daemon that runs one-node swarms) has nothing to join.
    if print_join_command(client, &node_id, true, false).await? {
        println!(
            "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions."
        );
    }
    if body.auto_lock_managers {
        print_unlock_key(client).await?;
    }
    Ok(())
}

async fn print_join_command(
    client: &Client,
    node_id: &str,
    worker: bool,
    manager: bool,
) -> Result<bool> {
    let node: Node = client
        .get(&format!("/nodes/{}", path_escape(node_id, false)), &[])
        .await?;
    let swarm: Swarm = client.get("/swarm", &[]).await?;
    let addr = node.manager_status.and_then(|m| m.addr);
    let tokens = swarm.join_tokens.unwrap_or_default();
    let joinable = tokens.worker.as_deref().is_some_and(|t| !t.is_empty());
    if !joinable {
        return Ok(false);
    }
    if let Some(addr) = addr {
        if worker {
            println!(
                "To add a worker to this swarm, run the following command:\n\n    shoal swarm join --token {} {addr}\n",
                tokens.worker.unwrap_or_default()
            );
        }
        if manager {
            println!(
                "To add a manager to this swarm, run the following command:\n\n    shoal swarm join --token {} {addr}\n",
                tokens.manager.unwrap_or_default()
            );
        }
    }
    Ok(true)
}

async fn print_unlock_key(client: &Client) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct UnlockKey {
        #[serde(rename = "UnlockKey", default)]
        unlock_key: String,
    }
    let key: UnlockKey = client
        .get("/swarm/unlockkey", &[])
        .await
        .map_err(|e| CliError::Failed(format!("could not fetch unlock key: {e}")))?;
    if !key.unlock_key.is_empty() {
        println!(
            "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\ncommand and provide the following key:\n\n    {}\n\nRemember to store this key in a password manager, since without it you\nwill not be able to restart the manager.",
            key.unlock_key
        );
    }
    Ok(())
}

async fn join_token(client: &Client, args: JoinTokenArgs) -> Result<()> {
    let (worker, manager) = match args.role.as_str() {
        "worker" => (true, false),
        "manager" => (false, true),
        other => return Err(CliError::Usage(format!("unknown role {other}"))),
    };
    if args.rotate {
        let swarm: Swarm = client.get("/swarm", &[]).await?;
        let version = swarm.version.and_then(|v| v.index).unwrap_or(0);
        let flag = if worker {
            "rotateWorkerToken"
        } else {
            "rotateManagerToken"
        };
        let query = [("version", version.to_string()), (flag, "true".to_string())];
        client
            .post_no_answer(
                "/swarm/update",
                &query,
                Some(&swarm.spec.unwrap_or_default()),
            )
            .await?;
        if !args.quiet {
            println!("Successfully rotated {} join token.\n", args.role);
        }
    }
    if args.quiet {
        let swarm: Swarm = client.get("/swarm", &[]).await?;
        let tokens = swarm.join_tokens.unwrap_or_default();
        let token = if worker {
            tokens.worker
        } else {
            tokens.manager
        };
        println!("{}", token.unwrap_or_default());
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "Swarm", default)]
        swarm: Option<bollard_stubs::models::SwarmInfo>,
    }
    let info: Info = client.get("/info", &[]).await?;
    let node_id = info.swarm.and_then(|s| s.node_id).unwrap_or_default();
    if !print_join_command(client, &node_id, worker, manager).await? {
        return Err(CliError::Failed(
            "this swarm has no join tokens: the daemon runs one-node swarms".into(),
        ));
    }
    Ok(())
}

async fn update(client: &Client, args: UpdateArgs) -> Result<()> {
    let f = &args.spec;
    if f.task_history_limit.is_none()
        && f.dispatcher_heartbeat.is_none()
        && f.cert_expiry.is_none()
        && f.max_snapshots.is_none()
        && f.snapshot_interval.is_none()
        && f.autolock.is_none()
    {
        return Err(CliError::Usage(
            "\"shoal swarm update\" requires at least one flag (see --help)".to_string(),
        ));
    }
    let swarm: Swarm = client.get("/swarm", &[]).await?;
    let mut spec = swarm.spec.unwrap_or_default();
    let was_locked = spec
        .encryption_config
        .as_ref()
        .and_then(|e| e.auto_lock_managers)
        .unwrap_or(false);
    merge_spec(&mut spec, f)?;
    let version = swarm.version.and_then(|v| v.index).unwrap_or(0);
    let query = [
        ("version", version.to_string()),
        ("rotateWorkerToken", "false".to_string()),
        ("rotateManagerToken", "false".to_string()),
        ("rotateManagerUnlockKey", "false".to_string()),
    ];
    client
        .post_no_answer("/swarm/update", &query, Some(&spec))
        .await?;
    println!("Swarm updated.");
    if f.autolock == Some(true) && !was_locked {
        print_unlock_key(client).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init_args(listen: &str) -> InitArgs {
        InitArgs {
            advertise_addr: None,
            listen_addr: listen.to_string(),
            availability: None,
            force_new_cluster: false,
            spec: SwarmSpecFlags::default(),
        }
    }

    #[test]
    fn listen_addr_defaults_like_docker() {
        let n = |s: &str| normalize_listen_addr(s).ok();
        assert_eq!(n("0.0.0.0:2377").as_deref(), Some("0.0.0.0:2377"));
        assert_eq!(n("10.0.0.1").as_deref(), Some("10.0.0.1:2377"));
        assert_eq!(n(":4000").as_deref(), Some("0.0.0.0:4000"));
        assert_eq!(n("tcp://eth0:2378").as_deref(), Some("eth0:2378"));
        assert_eq!(n("[::1]").as_deref(), Some("[::1]:2377"));
        assert!(n("udp://x").is_none());
        assert!(n("h:port").is_none());
    }

    #[test]
    fn init_body_matches_docker_fields() {
        let mut args = init_args("0.0.0.0:2377");
        args.availability = Some("Drain".into());
        args.spec.task_history_limit = Some("3".into());
        args.spec.dispatcher_heartbeat = Some("10s".into());
        args.spec.autolock = Some(true);
        let body = build_init(&args).expect("valid flags");
        let v = serde_json::to_value(&body).expect("serialisable");
        assert_eq!(v["ListenAddr"], "0.0.0.0:2377");
        assert_eq!(v["AdvertiseAddr"], "");
        assert_eq!(v["ForceNewCluster"], false);
        assert_eq!(v["AutoLockManagers"], true);
        assert_eq!(v["Availability"], "drain");
        assert_eq!(v["SubnetSize"], 24);
        assert_eq!(v["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"], 3);
        assert_eq!(
            v["Spec"]["Dispatcher"]["HeartbeatPeriod"],
            10_000_000_000i64
        );
        assert_eq!(v["Spec"]["EncryptionConfig"]["AutoLockManagers"], true);
    }

    #[test]
    fn init_refuses_bad_values() {
        let mut args = init_args("0.0.0.0:2377");
        args.availability = Some("sideways".into());
        let err = build_init(&args).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid availability \"sideways\", only active, pause and drain are supported")
        );
        let mut args = init_args("0.0.0.0:2377");
        args.spec.dispatcher_heartbeat = Some("5".into());
        let err = build_init(&args).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                r#"invalid argument "5" for "--dispatcher-heartbeat" flag: time: missing unit in duration "5""#
            )
        );
    }

    #[test]
    fn update_merges_only_given_flags() {
        let mut spec: SwarmSpec = serde_json::from_str(
            r#"{"Name":"default","Orchestration":{"TaskHistoryRetentionLimit":5},"Raft":{"SnapshotInterval":10000,"ElectionTick":10,"HeartbeatTick":1},"Dispatcher":{"HeartbeatPeriod":5000000000},"CAConfig":{"NodeCertExpiry":7776000000000000},"EncryptionConfig":{"AutoLockManagers":false}}"#,
        )
        .expect("valid spec");
        let flags = SwarmSpecFlags {
            task_history_limit: Some("10".into()),
            cert_expiry: Some("720h".into()),
            ..Default::default()
        };
        merge_spec(&mut spec, &flags).expect("valid flags");
        let v = serde_json::to_value(&spec).expect("serialisable");
        assert_eq!(v["Orchestration"]["TaskHistoryRetentionLimit"], 10);
        assert_eq!(v["CAConfig"]["NodeCertExpiry"], 720i64 * 3_600_000_000_000);
        assert_eq!(v["Dispatcher"]["HeartbeatPeriod"], 5_000_000_000i64);
        assert_eq!(v["Raft"]["ElectionTick"], 10);
    }
}
