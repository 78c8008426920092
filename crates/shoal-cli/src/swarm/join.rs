//! `swarm join` and `swarm join-token`: the join request docker sends, how it tells a manager from
//! a worker afterwards (`/info`'s `ControlAvailable`), token rotation, and the join command it
//! prints for either role.

use std::io::Write;

use bollard_stubs::models::{Node, Swarm};
use serde::Serialize;

use super::init::{DEFAULT_LISTEN_ADDR, normalize_listen_addr, parse_availability};
use super::{post_update, version_of};
use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::system::swarm_info;

#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    /// Token for entry into the swarm
    #[arg(long)]
    pub token: Option<String>,
    /// Listen address (format: "<ip|interface>[:port]")
    #[arg(long, default_value = DEFAULT_LISTEN_ADDR)]
    pub listen_addr: String,
    /// Advertised address (format: "<ip|interface>[:port]")
    #[arg(long)]
    pub advertise_addr: Option<String>,
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long)]
    pub availability: Option<String>,
    /// Address of a manager of the swarm to join
    #[arg(value_name = "HOST:PORT")]
    pub remote: String,
}

/// `POST /swarm/join`'s body, every field present as docker sends it (shoal has no separate data
/// path yet, so `DataPathAddr` stays empty).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct JoinBody {
    pub listen_addr: String,
    pub advertise_addr: String,
    pub data_path_addr: String,
    pub remote_addrs: Vec<String>,
    pub join_token: String,
    pub availability: String,
}

pub fn build_join(args: &JoinArgs) -> Result<JoinBody> {
    Ok(JoinBody {
        listen_addr: normalize_listen_addr(&args.listen_addr)?,
        advertise_addr: args.advertise_addr.clone().unwrap_or_default(),
        data_path_addr: String::new(),
        remote_addrs: vec![args.remote.clone()],
        join_token: args.token.clone().unwrap_or_default(),
        availability: parse_availability(args.availability.as_deref())?,
    })
}

/// What docker prints once joined: the role comes from `/info`, asked after the join.
pub fn joined_message(control_available: bool) -> &'static str {
    if control_available {
        "This node joined a swarm as a manager."
    } else {
        "This node joined a swarm as a worker."
    }
}

pub async fn join(client: &Client, args: JoinArgs, out: &mut impl Write) -> Result<()> {
    let body = build_join(&args)?;
    client
        .post_no_answer("/swarm/join", &[], Some(&body))
        .await?;
    let info = swarm_info(client).await?;
    let _ = writeln!(
        out,
        "{}",
        joined_message(info.control_available.unwrap_or(false))
    );
    Ok(())
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
    #[arg(value_name = "worker|manager")]
    pub role: String,
}

/// docker's `runJoinToken`: rotate if asked, then print the token (`-q`) or the join command.
pub async fn join_token(client: &Client, args: JoinTokenArgs, out: &mut impl Write) -> Result<()> {
    let worker = args.role == "worker";
    let manager = args.role == "manager";
    if !worker && !manager {
        return Err(CliError::Usage(format!("unknown role {}", args.role)));
    }
    if args.rotate {
        let swarm: Swarm = client.get("/swarm", &[]).await?;
        let spec = swarm.spec.clone().unwrap_or_default();
        post_update(client, version_of(&swarm), &spec, worker, manager).await?;
        if !args.quiet {
            let _ = writeln!(out, "Successfully rotated {} join token.\n", args.role);
        }
    }
    // Asked again: the rotation changed the tokens.
    let swarm: Swarm = client.get("/swarm", &[]).await?;
    if args.quiet {
        let tokens = swarm.join_tokens.unwrap_or_default();
        let token = if worker {
            tokens.worker
        } else {
            tokens.manager
        };
        let _ = writeln!(out, "{}", token.unwrap_or_default());
        return Ok(());
    }
    let node_id = swarm_info(client).await?.node_id.unwrap_or_default();
    print_join_command(client, &node_id, worker, manager, out).await
}

/// The instructions docker prints for one role (a blank line after, as docker's `%s\n\n`).
pub fn join_command(role: &str, token: &str, addr: &str) -> String {
    format!(
        "To add a {role} to this swarm, run the following command:\n\n    shoal swarm join --token {token} {addr}\n\n"
    )
}

/// docker's `printJoinCommand`: nothing unless this node is a manager (it names its address).
pub async fn print_join_command(
    client: &Client,
    node_id: &str,
    worker: bool,
    manager: bool,
    out: &mut impl Write,
) -> Result<()> {
    let node: Node = client
        .get(&format!("/nodes/{}", path_escape(node_id, false)), &[])
        .await?;
    let swarm: Swarm = client.get("/swarm", &[]).await?;
    let Some(status) = node.manager_status else {
        return Ok(());
    };
    let addr = status.addr.unwrap_or_default();
    let tokens = swarm.join_tokens.unwrap_or_default();
    if worker {
        let token = tokens.worker.clone().unwrap_or_default();
        let _ = write!(out, "{}", join_command("worker", &token, &addr));
    }
    if manager {
        let token = tokens.manager.unwrap_or_default();
        let _ = write!(out, "{}", join_command("manager", &token, &addr));
    }
    Ok(())
}
