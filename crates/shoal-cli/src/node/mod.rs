//! `node ls|inspect|update|promote|demote|rm|ps`: the node table (current node marked ` *`),
//! inspect as JSON or docker's `--pretty` text (`inspect`), spec updates under the optimistic
//! version lock (`update`: update, promote, demote), and the tasks on nodes (`ps`).

pub mod inspect;
pub mod ps;
pub mod update;

use std::io::Write;

use bollard_stubs::models::{Node, NodeState, SwarmInfo, TlsInfo};

use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::filters::Filters;
use crate::format::{Table, json_row, natural_cmp, pretty};
use crate::system::swarm_info;

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// List nodes in the swarm
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more nodes
    Inspect(inspect::InspectArgs),
    /// Update a node
    Update(update::UpdateArgs),
    /// Promote one or more nodes to manager in the swarm
    Promote {
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
    },
    /// Demote one or more nodes from manager in the swarm
    Demote {
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
    },
    /// Remove one or more nodes from the swarm
    #[command(alias = "remove")]
    Rm {
        /// Force remove a node from the swarm
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
    },
    /// List tasks running on one or more nodes, defaults to current node
    Ps(ps::PsArgs),
}

/// The IDs of the swarm's nodes that are not Down: where a running task counts as running.
pub async fn not_down(client: &Client) -> Result<std::collections::HashSet<String>> {
    let nodes: Vec<Node> = client.get("/nodes", &[]).await?;
    Ok(nodes
        .iter()
        .filter(|n| n.status.as_ref().and_then(|s| s.state) != Some(NodeState::DOWN))
        .filter_map(|n| n.id.clone())
        .collect())
}

/// The flags of `node ls` and `service ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: "table" (default) or "json"
    #[arg(long)]
    pub format: Option<String>,
}

pub async fn run(client: &Client, cmd: NodeCommand) -> Result<()> {
    let out = &mut std::io::stdout();
    match cmd {
        NodeCommand::Ls(args) => ls(client, args).await,
        NodeCommand::Inspect(args) => inspect::inspect(client, args).await,
        NodeCommand::Update(args) => update::update(client, args, out).await,
        NodeCommand::Promote { nodes } => update::promote(client, &nodes, out).await,
        NodeCommand::Demote { nodes } => update::demote(client, &nodes, out).await,
        NodeCommand::Rm { force, nodes } => rm(client, &nodes, force, out).await,
        NodeCommand::Ps(args) => ps::ps(client, args, out).await,
    }
}

/// docker's `node rm`: every node is tried; each removed one is printed as given, the failures
/// are reported together at the end.
pub async fn rm(client: &Client, refs: &[String], force: bool, out: &mut impl Write) -> Result<()> {
    let query = if force {
        vec![("force", "1".to_string())]
    } else {
        vec![]
    };
    let mut errors = Vec::new();
    for r in refs {
        match client
            .delete(&format!("/nodes/{}", path_escape(r, false)), &query)
            .await
        {
            Ok(()) => {
                let _ = writeln!(out, "{r}");
            }
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CliError::Many(errors)),
    }
}

/// Which output `--format` asked for (docker accepts Go templates; we know two names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

pub fn list_format(format: Option<&str>) -> Result<ListFormat> {
    match format {
        None | Some("table") | Some("") => Ok(ListFormat::Table),
        Some("json") => Ok(ListFormat::Json),
        Some(other) => Err(CliError::invalid_flag(
            "format",
            other,
            "only \"table\" and \"json\" are supported",
        )),
    }
}

async fn ls(client: &Client, args: LsArgs) -> Result<()> {
    let format = list_format(args.format.as_deref())?;
    let filters = Filters::parse(&args.filter)?;
    let nodes: Vec<Node> = client.get("/nodes", &filters.query()).await?;
    let info = if !nodes.is_empty() && !args.quiet {
        swarm_info(client).await?
    } else {
        SwarmInfo::default()
    };
    print!("{}", render_list(nodes, &info, args.quiet, format));
    Ok(())
}

/// The node table (or `-q` IDs, or JSON rows), sorted by hostname.
pub fn render_list(
    mut nodes: Vec<Node>,
    info: &SwarmInfo,
    quiet: bool,
    format: ListFormat,
) -> String {
    nodes.sort_by(|a, b| natural_cmp(&hostname(a), &hostname(b)));
    if quiet {
        return nodes.iter().map(|n| format!("{}\n", id(n))).collect();
    }
    let self_id = info.node_id.clone().unwrap_or_default();
    let cluster_tls = info.cluster.as_ref().and_then(|c| c.tls_info.clone());
    if format == ListFormat::Json {
        return nodes
            .iter()
            .map(|n| {
                let row = json_row(&[
                    ("Availability", availability(n).into()),
                    ("EngineVersion", engine_version(n).into()),
                    ("Hostname", hostname(n).into()),
                    ("ID", id(n).into()),
                    ("ManagerStatus", manager_status(n).into()),
                    ("Self", (id(n) == self_id).into()),
                    ("Status", status(n).into()),
                    ("TLSStatus", tls_status(n, cluster_tls.as_ref()).into()),
                ]);
                format!("{row}\n")
            })
            .collect();
    }
    let mut table = Table::new(&[
        "ID  ",
        "HOSTNAME",
        "STATUS",
        "AVAILABILITY",
        "MANAGER STATUS",
        "ENGINE VERSION",
    ]);
    for n in &nodes {
        let mark = if id(n) == self_id { "*" } else { " " };
        table.row(vec![
            format!("{} {mark}", id(n)),
            hostname(n),
            status(n),
            availability(n),
            manager_status(n),
            engine_version(n),
        ]);
    }
    table.render()
}

pub(crate) fn id(n: &Node) -> String {
    n.id.clone().unwrap_or_default()
}

pub(crate) fn hostname(n: &Node) -> String {
    n.description
        .as_ref()
        .and_then(|d| d.hostname.clone())
        .unwrap_or_default()
}

fn status(n: &Node) -> String {
    pretty(
        &n.status
            .as_ref()
            .and_then(|s| s.state)
            .map(|s| s.to_string())
            .unwrap_or_default(),
    )
}

pub(crate) fn availability(n: &Node) -> String {
    pretty(
        &n.spec
            .as_ref()
            .and_then(|s| s.availability)
            .map(|a| a.to_string())
            .unwrap_or_default(),
    )
}

fn manager_status(n: &Node) -> String {
    let Some(m) = &n.manager_status else {
        return String::new();
    };
    if m.leader == Some(true) {
        return "Leader".to_string();
    }
    pretty(&m.reachability.map(|r| r.to_string()).unwrap_or_default())
}

fn engine_version(n: &Node) -> String {
    n.description
        .as_ref()
        .and_then(|d| d.engine.as_ref())
        .and_then(|e| e.engine_version.clone())
        .unwrap_or_default()
}

pub(crate) fn tls_empty(t: &TlsInfo) -> bool {
    t.trust_root.as_deref().unwrap_or("").is_empty()
        && t.cert_issuer_subject.as_deref().unwrap_or("").is_empty()
        && t.cert_issuer_public_key.as_deref().unwrap_or("").is_empty()
}

fn tls_status(n: &Node, cluster: Option<&TlsInfo>) -> String {
    let node_tls = n
        .description
        .as_ref()
        .and_then(|d| d.tls_info.clone())
        .unwrap_or_default();
    match cluster {
        Some(c) if !tls_empty(c) && !tls_empty(&node_tls) => {
            if *c == node_tls {
                "Ready".to_string()
            } else {
                "Needs Rotation".to_string()
            }
        }
        _ => "Unknown".to_string(),
    }
}

/// Resolves `self` to the current node's ID (docker's `node.Reference`).
pub async fn node_reference(client: &Client, reference: &str) -> Result<String> {
    if reference != "self" {
        return Ok(reference.to_string());
    }
    let info = swarm_info(client).await?;
    match info.node_id.filter(|id| !id.is_empty()) {
        Some(id) => Ok(id),
        None => {
            // Not a manager: a swarm endpoint gives the daemon's own explanation.
            let _: Vec<Node> = client.get("/nodes", &[]).await?;
            Err(CliError::Failed("node ID not found in /info".to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = r#"{"ID":"n3fvkg7m4vj2v5j6u0r6b2x8g","Version":{"Index":9},"CreatedAt":"2026-11-24T12:55:22.827113773Z","UpdatedAt":"2026-11-24T12:55:23.4Z","Spec":{"Labels":{},"Role":"manager","Availability":"active"},"Description":{"Hostname":"vm","Platform":{"Architecture":"x86_64","OS":"linux"},"Resources":{"NanoCPUs":2000000000,"MemoryBytes":25275236352},"Engine":{"EngineVersion":"20.10.24+dfsg1","Plugins":[{"Type":"Log","Name":"json-file"},{"Type":"Network","Name":"bridge"},{"Type":"Log","Name":"local"}]},"TLSInfo":{"TrustRoot":"-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n","CertIssuerSubject":"MBMx","CertIssuerPublicKey":"MFkw"}},"Status":{"State":"ready","Addr":"192.0.2.2"},"ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"192.0.2.2:2377"}}"#;

    fn node(json: &str) -> Node {
        serde_json::from_str(json).expect("valid node")
    }

    fn info(self_id: &str) -> SwarmInfo {
        SwarmInfo {
            node_id: Some(self_id.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn table_marks_the_current_node() {
        let worker = r#"{"ID":"w1","Spec":{"Role":"worker","Availability":"drain"},"Description":{"Hostname":"alpha","Engine":{"EngineVersion":"0.1.0"}},"Status":{"State":"down"}}"#;
        let out = render_list(
            vec![node(NODE), node(worker)],
            &info("n3fvkg7m4vj2v5j6u0r6b2x8g"),
            false,
            ListFormat::Table,
        );
        let expected = "\
ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION
w1                            alpha      Down      Drain                           0.1.0
n3fvkg7m4vj2v5j6u0r6b2x8g *   vm         Ready     Active         Leader           20.10.24+dfsg1
";
        assert_eq!(out, expected);
        let quiet = render_list(
            vec![node(NODE)],
            &SwarmInfo::default(),
            true,
            ListFormat::Table,
        );
        assert_eq!(quiet, "n3fvkg7m4vj2v5j6u0r6b2x8g\n");
    }

    #[test]
    fn json_rows_match_docker() {
        let out = render_list(
            vec![node(NODE)],
            &info("n3fvkg7m4vj2v5j6u0r6b2x8g"),
            false,
            ListFormat::Json,
        );
        assert_eq!(
            out,
            "{\"Availability\":\"Active\",\"EngineVersion\":\"20.10.24+dfsg1\",\"Hostname\":\"vm\",\"ID\":\"n3fvkg7m4vj2v5j6u0r6b2x8g\",\"ManagerStatus\":\"Leader\",\"Self\":true,\"Status\":\"Ready\",\"TLSStatus\":\"Unknown\"}\n"
        );
    }
}

#[cfg(test)]
#[path = "cmd_tests.rs"]
mod cmd_tests;
