//! `stack deploy|ls|ps|services|rm|config`: whole applications from compose files, the way
//! `docker stack` does it. Everything a stack makes carries the label
//! `com.docker.stack.namespace=<stack>`, which is all a stack is: the real `docker stack`
//! commands see shoal's stacks and the other way round.
//!
//! `deploy` loads and converts the files with `shoal-compose` and then creates or updates
//! networks, secrets, configs and services through the API in docker's order; `ls`, `services`,
//! `ps` and `rm` are label queries.

pub mod deploy;
pub mod list;
pub mod rm;

use bollard_stubs::models::Service;

use crate::client::Client;
use crate::error::{CliError, Result};
use crate::filters::Filters;

pub use shoal_types::stack::NAMESPACE_LABEL;

#[derive(Debug, clap::Subcommand)]
pub enum StackCommand {
    /// Deploy a new stack or update an existing stack
    #[command(alias = "up")]
    Deploy(deploy::DeployArgs),
    /// Outputs the final config file, after doing merges and interpolations
    Config(deploy::ConfigArgs),
    /// List stacks
    #[command(alias = "list")]
    Ls(list::StackLsArgs),
    /// List the tasks in the stack
    Ps(list::StackPsArgs),
    /// List the services in the stack
    Services(list::StackServicesArgs),
    /// Remove one or more stacks
    #[command(aliases = ["remove", "down"])]
    Rm(rm::RmArgs),
}

pub async fn run(client: &Client, cmd: StackCommand) -> Result<()> {
    match cmd {
        StackCommand::Deploy(a) => deploy::run(client, a).await,
        StackCommand::Config(a) => deploy::config(a),
        StackCommand::Ls(a) => list::ls(client, a).await,
        StackCommand::Ps(a) => list::ps(client, a).await,
        StackCommand::Services(a) => list::services(client, a).await,
        StackCommand::Rm(a) => rm::run(client, a).await,
    }
}

/// docker's `validateStackName`: a stack name becomes a prefix of object names and a label
/// value, so quotes and whitespace are refused.
pub fn validate_stack_name(name: &str) -> Result<()> {
    let bad = |c: char| c == '"' || c == '\'' || c.is_whitespace();
    if name.is_empty() || name.chars().any(bad) {
        return Err(CliError::Usage(format!("invalid stack name: {name:?}")));
    }
    Ok(())
}

/// The filter that selects one stack's objects.
pub fn stack_filter(namespace: &str) -> Filters {
    let mut f = Filters::new();
    f.add("label", &format!("{NAMESPACE_LABEL}={namespace}"));
    f
}

/// The services of a stack.
pub async fn stack_services(client: &Client, namespace: &str) -> Result<Vec<Service>> {
    client
        .get("/services", &stack_filter(namespace).query())
        .await
}
