//! `node ps`: the tasks on one or more nodes (the current one, `self`, by default) in
//! `service ps`'s table. Every node is tried; the tasks found are printed even when some nodes
//! failed, and the failures are reported after, as docker does.
//!
//! Deliberate difference: docker 28 adds each node to one shared filter, so the second node's
//! query also asks for the first node's tasks and prints them twice; each node gets its own query
//! here.

use std::io::Write;

use bollard_stubs::models::{Node, Task};
use chrono::Utc;

use super::{list_format, node_reference};
use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::filters::Filters;
use crate::format::truncate_id;
use crate::service::ps::{render, resolve_names};

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Do not map IDs to Names
    #[arg(long)]
    pub no_resolve: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: "table" (default) or "json"
    #[arg(long)]
    pub format: Option<String>,
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// "self" (the default) or node names/IDs
    #[arg(value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// The tasks of one node, with the user's filters.
async fn node_tasks(client: &Client, reference: &str, filters: &Filters) -> Result<Vec<Task>> {
    let reference = node_reference(client, reference).await?;
    let node: Node = client
        .get(&format!("/nodes/{}", path_escape(&reference, false)), &[])
        .await?;
    let mut filters = filters.clone();
    filters.add("node", node.id.as_deref().unwrap_or(&reference));
    client.get("/tasks", &filters.query()).await
}

pub async fn ps(client: &Client, args: PsArgs, out: &mut impl Write) -> Result<()> {
    let format = list_format(args.format.as_deref())?;
    let filters = Filters::parse(&args.filter)?;
    let refs = if args.nodes.is_empty() {
        vec!["self".to_string()]
    } else {
        args.nodes.clone()
    };
    let mut tasks = Vec::new();
    let mut errors = Vec::new();
    for r in &refs {
        match node_tasks(client, r, &filters).await {
            Ok(found) => tasks.extend(found),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() || !tasks.is_empty() {
        let (services, nodes) = resolve_names(client, &tasks, args.no_resolve).await;
        let trunc = !args.no_trunc;
        let text = render(
            tasks,
            &services,
            &nodes,
            trunc,
            args.quiet,
            format,
            Utc::now(),
        );
        let _ = write!(out, "{}", quiet_ids(&text, args.quiet && trunc));
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CliError::Many(errors)),
    }
}

/// `node ps -q` truncates IDs unless `--no-trunc` (docker's `service ps -q` does not).
fn quiet_ids(text: &str, truncate: bool) -> String {
    if !truncate {
        return text.to_string();
    }
    text.lines()
        .map(|id| format!("{}\n", truncate_id(id)))
        .collect()
}
