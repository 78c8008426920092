//! `swarm init|join|join-token|leave|update|ca`: the cluster-wide commands, their request bodies
//! and docker's messages (with `shoal` in place of `docker` in the commands they suggest).
//!
//! Submodules: `init` (init and the listen address), `join` (join, join-token and the join
//! command printed for them), `ca` (display and rotate the root CA, with docker's rotation
//! progress). This module keeps the flags `init` and `update` share and the `/swarm/update` call
//! every writer of the swarm spec goes through.

pub mod ca;
pub mod client_cert;
pub mod init;
pub mod join;
pub mod unlock;

use std::io::Write;

use bollard_stubs::models::{
    Swarm, SwarmSpec, SwarmSpecCaConfig, SwarmSpecDispatcher, SwarmSpecEncryptionConfig,
    SwarmSpecOrchestration, SwarmSpecRaft,
};

use crate::client::Client;
use crate::error::{CliError, Result};
use crate::units::{parse_duration_flag, parse_uint};

pub use init::{InitArgs, InitBody, build_init, normalize_listen_addr};

#[derive(Debug, clap::Subcommand)]
pub enum SwarmCommand {
    /// Initialize a swarm
    Init(InitArgs),
    /// Join a swarm as a node and/or manager
    Join(join::JoinArgs),
    /// Manage join tokens
    JoinToken(join::JoinTokenArgs),
    /// Leave the swarm
    Leave {
        /// Force this node to leave the swarm, ignoring warnings
        #[arg(short, long)]
        force: bool,
    },
    /// Update the swarm
    Update(UpdateArgs),
    /// Display and rotate the root CA
    Ca(ca::CaArgs),
    /// Issue a client certificate for the TLS API, signed by the swarm's root CA (shoal only)
    ClientCert(client_cert::ClientCertArgs),
    /// Unlock swarm
    Unlock,
    /// Manage the unlock key
    UnlockKey(unlock::UnlockKeyArgs),
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
    /// Move running tasks toward an even spread when nodes join or come back (shoal only)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub rebalance: Option<bool>,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub spec: SwarmSpecFlags,
}

pub async fn run(client: &Client, cmd: SwarmCommand) -> Result<()> {
    let out = &mut std::io::stdout();
    match cmd {
        SwarmCommand::Init(args) => init::init(client, args, out).await,
        SwarmCommand::Join(args) => join::join(client, args, out).await,
        SwarmCommand::JoinToken(args) => join::join_token(client, args, out).await,
        SwarmCommand::Leave { force } => leave(client, force, out).await,
        SwarmCommand::Update(args) => update(client, args, out).await,
        SwarmCommand::Ca(args) => ca::run(client, args, out).await,
        SwarmCommand::ClientCert(args) => client_cert::run(client, args, out).await,
        SwarmCommand::Unlock => unlock::unlock(client, out).await,
        SwarmCommand::UnlockKey(args) => unlock::unlock_key(client, args, out).await,
    }
}

/// `POST /swarm/leave` (`?force=1` with `-f`, as docker sends it).
pub async fn leave(client: &Client, force: bool, out: &mut impl Write) -> Result<()> {
    let query = if force {
        vec![("force", "1".to_string())]
    } else {
        vec![]
    };
    client
        .post_no_answer::<()>("/swarm/leave", &query, None)
        .await?;
    let _ = writeln!(out, "Node left the swarm.");
    Ok(())
}

/// `/swarm/update`'s query as docker's client builds it: every rotation flag spelled out.
pub fn update_query(
    version: u64,
    rotate_worker: bool,
    rotate_manager: bool,
) -> Vec<(&'static str, String)> {
    vec![
        ("version", version.to_string()),
        ("rotateWorkerToken", rotate_worker.to_string()),
        ("rotateManagerToken", rotate_manager.to_string()),
        ("rotateManagerUnlockKey", "false".to_string()),
    ]
}

/// The swarm's version index (the optimistic lock every update names).
pub fn version_of(swarm: &Swarm) -> u64 {
    swarm.version.as_ref().and_then(|v| v.index).unwrap_or(0)
}

/// Writes `spec` at `version`, optionally rotating a join token.
pub async fn post_update(
    client: &Client,
    version: u64,
    spec: &SwarmSpec,
    rotate_worker: bool,
    rotate_manager: bool,
) -> Result<()> {
    client
        .post_no_answer(
            "/swarm/update",
            &update_query(version, rotate_worker, rotate_manager),
            Some(spec),
        )
        .await
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
    if let Some(on) = flags.rebalance {
        let labels = spec.labels.get_or_insert_with(Default::default);
        let key = shoal_types::cluster::REBALANCE_LABEL;
        if on {
            labels.remove(key);
        } else {
            labels.insert(key.into(), "false".into());
        }
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

pub async fn print_unlock_key(client: &Client, out: &mut impl Write) -> Result<()> {
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
        let _ = writeln!(
            out,
            "To unlock a swarm manager after it restarts, run the `shoal swarm unlock`\ncommand and provide the following key:\n\n    {}\n\nRemember to store this key in a password manager, since without it you\nwill not be able to restart the manager.",
            key.unlock_key
        );
    }
    Ok(())
}

async fn update(client: &Client, args: UpdateArgs, out: &mut impl Write) -> Result<()> {
    let f = &args.spec;
    if f.task_history_limit.is_none()
        && f.dispatcher_heartbeat.is_none()
        && f.cert_expiry.is_none()
        && f.max_snapshots.is_none()
        && f.snapshot_interval.is_none()
        && f.autolock.is_none()
        && f.rebalance.is_none()
    {
        return Err(CliError::Usage(
            "\"shoal swarm update\" requires at least one flag (see --help)".to_string(),
        ));
    }
    let swarm: Swarm = client.get("/swarm", &[]).await?;
    let version = version_of(&swarm);
    let mut spec = swarm.spec.unwrap_or_default();
    let was_locked = spec
        .encryption_config
        .as_ref()
        .and_then(|e| e.auto_lock_managers)
        .unwrap_or(false);
    merge_spec(&mut spec, f)?;
    post_update(client, version, &spec, false, false).await?;
    let _ = writeln!(out, "Swarm updated.");
    if f.autolock == Some(true) && !was_locked {
        print_unlock_key(client, out).await?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
