//! `swarm init` (also `--force-new-cluster`, which rebuilds a one-manager cluster from this
//! manager's state): the request body docker sends and its messages; and docker's listen address
//! normalisation, which `join` shares.

use std::io::Write;

use bollard_stubs::models::{SwarmInitRequest, SwarmSpec};
use serde::Serialize;

use super::{SwarmSpecFlags, merge_spec, print_unlock_key};
use crate::client::Client;
use crate::error::{CliError, Result};

pub const DEFAULT_LISTEN_ADDR: &str = "0.0.0.0:2377";

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

/// docker's `--availability` check for `init` and `join`: empty when the flag was not given.
pub fn parse_availability(flag: Option<&str>) -> Result<String> {
    match flag {
        None => Ok(String::new()),
        Some(a) => {
            let lower = a.to_lowercase();
            if ["active", "pause", "drain"].contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(CliError::Usage(format!(
                    "invalid availability \"{a}\", only active, pause and drain are supported"
                )))
            }
        }
    }
}

pub fn build_init(args: &InitArgs) -> Result<InitBody> {
    let mut spec = SwarmSpec::default();
    merge_spec(&mut spec, &args.spec)?;
    let availability = parse_availability(args.availability.as_deref())?;
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

pub async fn init(client: &Client, args: InitArgs, out: &mut impl Write) -> Result<()> {
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
    let _ = writeln!(
        out,
        "Swarm initialized: current node ({node_id}) is now a manager.\n"
    );
    super::join::print_join_command(client, &node_id, true, false, out).await?;
    let _ = writeln!(
        out,
        "To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions."
    );
    if body.auto_lock_managers {
        print_unlock_key(client, out).await?;
    }
    Ok(())
}
