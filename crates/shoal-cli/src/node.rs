//! `node ls|inspect|update`: the node table (current node marked ` *`), inspect as JSON or
//! docker's `--pretty` text, and spec updates with the optimistic version lock.

use std::collections::{BTreeMap, HashMap};

use bollard_stubs::models::{
    Node, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState, SwarmInfo, TlsInfo,
};

use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::filters::Filters;
use crate::format::{Table, go_time_pretty, inspect_array, json_row, natural_cmp, pretty};
use crate::system::swarm_info;
use crate::units::bytes_size;

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// List nodes in the swarm
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more nodes
    Inspect(InspectArgs),
    /// Update a node
    Update(UpdateArgs),
}

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

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// "self" or node names/IDs
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Availability of the node ("active", "pause", "drain")
    #[arg(long)]
    pub availability: Option<String>,
    /// Role of the node ("worker", "manager")
    #[arg(long)]
    pub role: Option<String>,
    /// Add or update a node label ("key=value")
    #[arg(long)]
    pub label_add: Vec<String>,
    /// Remove a node label if exists
    #[arg(long)]
    pub label_rm: Vec<String>,
    pub node: String,
}

pub async fn run(client: &Client, cmd: NodeCommand) -> Result<()> {
    match cmd {
        NodeCommand::Ls(args) => ls(client, args).await,
        NodeCommand::Inspect(args) => inspect(client, args).await,
        NodeCommand::Update(args) => update(client, args).await,
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

fn id(n: &Node) -> String {
    n.id.clone().unwrap_or_default()
}

fn hostname(n: &Node) -> String {
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

fn availability(n: &Node) -> String {
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

fn tls_empty(t: &TlsInfo) -> bool {
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

async fn inspect(client: &Client, args: InspectArgs) -> Result<()> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for reference in &args.nodes {
        let fetched = async {
            let id = node_reference(client, reference).await?;
            client
                .get_raw(&format!("/nodes/{}", path_escape(&id, false)), &[])
                .await
        }
        .await;
        match fetched {
            Ok(raw) => docs.push(raw),
            Err(e) if args.pretty => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    if args.pretty {
        for raw in &docs {
            let node: Node = crate::client::decode("/nodes", raw)?;
            print!("{}", render_pretty(&node));
        }
    } else {
        println!("{}", inspect_array(&docs));
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CliError::Many(errors)),
    }
}

/// docker's `node inspect --pretty` text (tabs included, as docker writes them).
pub fn render_pretty(n: &Node) -> String {
    let mut o = String::new();
    let spec = n.spec.clone().unwrap_or_default();
    let desc = n.description.clone().unwrap_or_default();
    let status = n.status.clone().unwrap_or_default();
    o += &format!("ID:\t\t\t{}\n", id(n));
    if let Some(name) = spec.name.as_deref().filter(|s| !s.is_empty()) {
        o += &format!("Name:\t\t\t{name}\n");
    }
    push_labels(&mut o, "Labels:", spec.labels.as_ref());
    o += &format!("Hostname:              \t{}\n", hostname(n));
    o += &format!(
        "Joined at:             \t{}\n",
        go_time_pretty(n.created_at.as_deref().unwrap_or(""))
    );
    o += "Status:\n";
    o += &format!(
        " State:\t\t\t{}\n",
        pretty(&status.state.unwrap_or(NodeState::UNKNOWN).to_string())
    );
    if let Some(msg) = status.message.as_deref().filter(|s| !s.is_empty()) {
        o += &format!(" Message:              \t{}\n", pretty(msg));
    }
    o += &format!(" Availability:         \t{}\n", availability(n));
    if let Some(addr) = status.addr.as_deref().filter(|s| !s.is_empty()) {
        o += &format!(" Address:\t\t{addr}\n");
    }
    if let Some(m) = &n.manager_status {
        o += "Manager Status:\n";
        o += &format!(" Address:\t\t{}\n", m.addr.clone().unwrap_or_default());
        o += &format!(
            " Raft Status:\t\t{}\n",
            pretty(&m.reachability.map(|r| r.to_string()).unwrap_or_default())
        );
        let leader = if m.leader == Some(true) { "Yes" } else { "No" };
        o += &format!(" Leader:\t\t{leader}\n");
    }
    let platform = desc.platform.clone().unwrap_or_default();
    o += "Platform:\n";
    o += &format!(" Operating System:\t{}\n", platform.os.unwrap_or_default());
    o += &format!(
        " Architecture:\t\t{}\n",
        platform.architecture.unwrap_or_default()
    );
    let res = desc.resources.clone().unwrap_or_default();
    o += "Resources:\n";
    o += &format!(
        " CPUs:\t\t\t{}\n",
        res.nano_cpus.unwrap_or(0) / 1_000_000_000
    );
    let mem = res.memory_bytes.unwrap_or(0);
    o += &format!(
        " Memory:\t\t{}\n",
        if mem == 0 {
            String::new()
        } else {
            bytes_size(mem as f64)
        }
    );
    let engine = desc.engine.clone().unwrap_or_default();
    let plugins = engine.plugins.clone().unwrap_or_default();
    if !plugins.is_empty() {
        let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in plugins {
            by_type
                .entry(p.typ.unwrap_or_default())
                .or_default()
                .push(p.name.unwrap_or_default());
        }
        o += "Plugins:\n";
        for (t, names) in by_type {
            o += &format!(" {t}:\t\t{}\n", names.join(", "));
        }
    }
    o += &format!(
        "Engine Version:\t\t{}\n",
        engine.engine_version.unwrap_or_default()
    );
    push_labels(&mut o, "Engine Labels:", engine.labels.as_ref());
    let tls = desc.tls_info.unwrap_or_default();
    if !tls_empty(&tls) {
        o += "TLS Info:\n TrustRoot:\n";
        o += &format!("{}\n", tls.trust_root.unwrap_or_default());
        o += &format!(
            " Issuer Subject:\t{}\n",
            tls.cert_issuer_subject.unwrap_or_default()
        );
        o += &format!(
            " Issuer Public Key:\t{}\n",
            tls.cert_issuer_public_key.unwrap_or_default()
        );
    }
    o
}

fn push_labels(o: &mut String, title: &str, labels: Option<&HashMap<String, String>>) {
    let Some(labels) = labels.filter(|l| !l.is_empty()) else {
        return;
    };
    *o += title;
    *o += "\n";
    let sorted: BTreeMap<_, _> = labels.iter().collect();
    for (k, v) in sorted {
        if v.is_empty() {
            *o += &format!(" - {k}\n");
        } else {
            *o += &format!(" - {k}={v}\n");
        }
    }
}

async fn update(client: &Client, args: UpdateArgs) -> Result<()> {
    let path = format!("/nodes/{}", path_escape(&args.node, false));
    let node: Node = client.get(&path, &[]).await?;
    let node_id = node.id.clone().unwrap_or_else(|| args.node.clone());
    let version = node.version.as_ref().and_then(|v| v.index).unwrap_or(0);
    let mut spec = node.spec.clone().unwrap_or_default();
    merge_update(&mut spec, &args)?;
    client
        .post_no_answer(
            &format!("/nodes/{}/update", path_escape(&node_id, false)),
            &[("version", version.to_string())],
            Some(&spec),
        )
        .await?;
    println!("{}", args.node);
    Ok(())
}

/// docker's `mergeNodeUpdate`.
pub fn merge_update(spec: &mut bollard_stubs::models::NodeSpec, args: &UpdateArgs) -> Result<()> {
    if let Some(a) = &args.availability {
        spec.availability = Some(match a.as_str() {
            "active" => NodeSpecAvailabilityEnum::ACTIVE,
            "pause" => NodeSpecAvailabilityEnum::PAUSE,
            "drain" => NodeSpecAvailabilityEnum::DRAIN,
            _ => {
                return Err(CliError::invalid_flag(
                    "availability",
                    a,
                    "expected active, pause or drain",
                ));
            }
        });
    }
    if let Some(r) = &args.role {
        spec.role = Some(match r.as_str() {
            "worker" => NodeSpecRoleEnum::WORKER,
            "manager" => NodeSpecRoleEnum::MANAGER,
            _ => {
                return Err(CliError::invalid_flag(
                    "role",
                    r,
                    "expected worker or manager",
                ));
            }
        });
    }
    let labels = spec.labels.get_or_insert_with(HashMap::new);
    for kv in &args.label_add {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    for k in &args.label_rm {
        if labels.remove(k).is_none() {
            return Err(CliError::Failed(format!(
                "key {k} doesn't exist in node's labels"
            )));
        }
    }
    Ok(())
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

    #[test]
    fn pretty_matches_docker_layout() {
        let out = render_pretty(&node(NODE));
        let expected = "ID:\t\t\tn3fvkg7m4vj2v5j6u0r6b2x8g
Hostname:              \tvm
Joined at:             \t2026-11-24 12:55:22.827113773 +0000 utc
Status:
 State:\t\t\tReady
 Availability:         \tActive
 Address:\t\t192.0.2.2
Manager Status:
 Address:\t\t192.0.2.2:2377
 Raft Status:\t\tReachable
 Leader:\t\tYes
Platform:
 Operating System:\tlinux
 Architecture:\t\tx86_64
Resources:
 CPUs:\t\t\t2
 Memory:\t\t23.54GiB
Plugins:
 Log:\t\tjson-file, local
 Network:\t\tbridge
Engine Version:\t\t20.10.24+dfsg1
TLS Info:
 TrustRoot:
-----BEGIN CERTIFICATE-----
X
-----END CERTIFICATE-----

 Issuer Subject:\tMBMx
 Issuer Public Key:\tMFkw
";
        assert_eq!(out, expected);
    }

    fn update_args() -> UpdateArgs {
        UpdateArgs {
            availability: None,
            role: None,
            label_add: vec![],
            label_rm: vec![],
            node: "vm".into(),
        }
    }

    #[test]
    fn update_merges_availability_and_labels() {
        let mut spec = node(NODE).spec.unwrap_or_default();
        let mut args = update_args();
        args.availability = Some("drain".into());
        args.label_add = vec!["zone=a".into(), "ssd".into()];
        merge_update(&mut spec, &args).expect("valid");
        let v = serde_json::to_value(&spec).expect("serialisable");
        assert_eq!(v["Availability"], "drain");
        assert_eq!(v["Labels"]["zone"], "a");
        assert_eq!(v["Labels"]["ssd"], "");
        assert_eq!(v["Role"], "manager");

        let mut args = update_args();
        args.label_rm = vec!["missing".into()];
        let err = merge_update(&mut spec, &args).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("key missing doesn't exist in node's labels")
        );

        let mut args = update_args();
        args.availability = Some("sideways".into());
        let err = merge_update(&mut spec, &args).err();
        assert_eq!(err.map(|e| e.exit_code()), Some(2));
    }
}
