//! `service ps`: find the services (full ID, then name, then unambiguous ID prefix, as docker
//! does), list their tasks, and print docker's task table with older tasks of a slot indented
//! under ` \_ `.

use std::collections::HashMap;

use bollard_stubs::models::{Node, Service, Task};
use chrono::{DateTime, Utc};

use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::filters::Filters;
use crate::format::{
    Table, ago_lower, ellipsis, json_row, natural_cmp, parse_time, pretty, truncate_id,
};
use crate::imageref;
use crate::node::{ListFormat, list_format, node_reference};

#[derive(Debug, clap::Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub tasks: TaskListArgs,
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

/// The flags of docker's task lists (`service ps`, `stack ps`).
#[derive(Debug, clap::Args)]
pub struct TaskListArgs {
    /// Only display task IDs
    #[arg(short, long)]
    pub quiet: bool,
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
}

/// Matches references against the services found by ID and by name: full ID, full name, then an
/// unambiguous ID prefix. Returns the IDs and the "no such service" messages.
pub fn match_services(
    refs: &[String],
    by_id: &[Service],
    by_name: &[Service],
) -> Result<(Vec<String>, Vec<String>)> {
    let id = |s: &Service| s.id.clone().unwrap_or_default();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    'refs: for r in refs {
        if let Some(s) = by_id.iter().find(|s| id(s) == *r) {
            found.push(id(s));
            continue;
        }
        if let Some(s) = by_name
            .iter()
            .find(|s| s.spec.as_ref().and_then(|sp| sp.name.as_deref()) == Some(r.as_str()))
        {
            found.push(id(s));
            continue;
        }
        let mut hit = None;
        for s in by_id.iter().filter(|s| id(s).starts_with(r.as_str())) {
            if hit.is_some() {
                return Err(CliError::Failed(format!(
                    "multiple services found with provided prefix: {r}"
                )));
            }
            hit = Some(id(s));
        }
        match hit {
            Some(h) => found.push(h),
            None => {
                missing.push(format!("no such service: {r}"));
                continue 'refs;
            }
        }
    }
    Ok((found, missing))
}

pub async fn run(client: &Client, args: PsArgs) -> Result<()> {
    let mut filters = Filters::parse(&args.tasks.filter)?;
    let mut by_id_filter = Filters::new();
    let mut by_name_filter = Filters::new();
    for s in &args.services {
        by_id_filter.add("id", s);
        by_name_filter.add("name", s);
    }
    let by_id: Vec<Service> = client.get("/services", &by_id_filter.query()).await?;
    let by_name: Vec<Service> = client.get("/services", &by_name_filter.query()).await?;
    let (ids, missing) = match_services(&args.services, &by_id, &by_name)?;
    if ids.is_empty() {
        return Err(CliError::Failed(missing.join("\n")));
    }
    for id in &ids {
        filters.add("service", id);
    }
    print_tasks(client, filters, &args.tasks, |_| Ok(())).await?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(missing.join("\n")))
    }
}

/// Lists the tasks `filters` select (node names resolved to IDs first) and prints them as
/// `args` say; `check` may refuse the list before anything is printed.
pub async fn print_tasks(
    client: &Client,
    mut filters: Filters,
    args: &TaskListArgs,
    check: impl FnOnce(&[Task]) -> Result<()>,
) -> Result<()> {
    let format = list_format(args.format.as_deref())?;
    for node in filters.remove("node") {
        let resolved = node_reference(client, &node).await?;
        filters.add("node", &resolved);
    }
    let tasks: Vec<Task> = client.get("/tasks", &filters.query()).await?;
    check(&tasks)?;
    let (services, nodes) = resolve_names(client, &tasks, args.no_resolve).await;
    let trunc = !args.no_trunc && !args.quiet;
    print!(
        "{}",
        render(
            tasks,
            &services,
            &nodes,
            trunc,
            args.quiet,
            format,
            Utc::now()
        )
    );
    Ok(())
}

/// Service and node names for the tasks' IDs (docker's `idresolver`); empty maps with
/// `--no-resolve`, so IDs are shown.
pub async fn resolve_names(
    client: &Client,
    tasks: &[Task],
    no_resolve: bool,
) -> (HashMap<String, String>, HashMap<String, String>) {
    let mut services = HashMap::new();
    let mut nodes = HashMap::new();
    if no_resolve {
        return (services, nodes);
    }
    for t in tasks {
        if let Some(sid) = t.service_id.as_ref().filter(|s| !services.contains_key(*s)) {
            let name = match client
                .get::<Service>(
                    &format!("/services/{}", path_escape(sid, false)),
                    &[("insertDefaults", "false".to_string())],
                )
                .await
            {
                Ok(s) => s.spec.and_then(|sp| sp.name).unwrap_or_default(),
                Err(_) => sid.clone(),
            };
            services.insert(sid.clone(), name);
        }
        if let Some(nid) = t
            .node_id
            .as_ref()
            .filter(|n| !n.is_empty() && !nodes.contains_key(*n))
        {
            nodes.insert(nid.clone(), resolve_node(client, nid).await);
        }
    }
    (services, nodes)
}

/// docker's node name for tables: the spec name, else the hostname, else the ID.
pub async fn resolve_node(client: &Client, id: &str) -> String {
    match client
        .get::<Node>(&format!("/nodes/{}", path_escape(id, false)), &[])
        .await
    {
        Ok(n) => n
            .spec
            .and_then(|s| s.name)
            .filter(|s| !s.is_empty())
            .or_else(|| {
                n.description
                    .and_then(|d| d.hostname)
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| id.to_string()),
        Err(_) => id.to_string(),
    }
}

/// The task table (or IDs, or JSON rows). `services`/`nodes` map IDs to names (IDs shown when
/// missing, as with `--no-resolve`).
pub fn render(
    tasks: Vec<Task>,
    services: &HashMap<String, String>,
    nodes: &HashMap<String, String>,
    trunc: bool,
    quiet: bool,
    format: ListFormat,
    now: DateTime<Utc>,
) -> String {
    let lookup = |m: &HashMap<String, String>, id: &str| {
        m.get(id).cloned().unwrap_or_else(|| id.to_string())
    };
    let mut named: Vec<(String, Task)> = tasks
        .into_iter()
        .map(|t| {
            let svc = lookup(services, t.service_id.as_deref().unwrap_or(""));
            let name = match t.slot.filter(|s| *s != 0) {
                Some(slot) => format!("{svc}.{slot}"),
                None => format!("{svc}.{}", t.node_id.as_deref().unwrap_or("")),
            };
            (name, t)
        })
        .collect();
    // Tasks of one slot together, the newest first.
    named.sort_by(|(na, a), (nb, b)| {
        natural_cmp(na, nb).then_with(|| {
            let created = |t: &Task| t.created_at.as_deref().and_then(parse_time);
            created(b).cmp(&created(a))
        })
    });
    if quiet {
        return named
            .iter()
            .map(|(_, t)| format!("{}\n", t.id.as_deref().unwrap_or("")))
            .collect();
    }
    let mut table = Table::new(&[
        "ID",
        "NAME",
        "IMAGE",
        "NODE",
        "DESIRED STATE",
        "CURRENT STATE",
        "ERROR",
        "PORTS",
    ]);
    let mut json = String::new();
    let mut prev = String::new();
    for (name, t) in &named {
        let id = t.id.clone().unwrap_or_default();
        let id = if trunc {
            truncate_id(&id).to_string()
        } else {
            id
        };
        let shown_name = if *name == prev && format == ListFormat::Table {
            format!(" \\_ {name}")
        } else {
            name.clone()
        };
        prev = name.clone();
        let image = t
            .spec
            .as_ref()
            .and_then(|s| s.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let image = if trunc {
            imageref::display(&image)
        } else {
            image
        };
        let node = t
            .node_id
            .as_deref()
            .map(|n| lookup(nodes, n))
            .unwrap_or_default();
        let desired = pretty(&t.desired_state.map(|s| s.to_string()).unwrap_or_default());
        let status = t.status.clone().unwrap_or_default();
        let current = format!(
            "{} {}",
            pretty(&status.state.map(|s| s.to_string()).unwrap_or_default()),
            ago_lower(status.timestamp.as_deref(), now)
        );
        let err = status.err.clone().unwrap_or_default();
        let err = if trunc { ellipsis(&err, 30) } else { err };
        let err = if err.is_empty() {
            err
        } else {
            format!("\"{err}\"")
        };
        let ports: Vec<String> = status
            .port_status
            .and_then(|p| p.ports)
            .unwrap_or_default()
            .iter()
            .map(|p| {
                format!(
                    "*:{}->{}/{}",
                    p.published_port.unwrap_or(0),
                    p.target_port.unwrap_or(0),
                    p.protocol.map(|x| x.to_string()).unwrap_or_default()
                )
            })
            .collect();
        let ports = ports.join(",");
        if format == ListFormat::Json {
            json += &json_row(&[
                ("CurrentState", current.into()),
                ("DesiredState", desired.into()),
                ("Error", err.into()),
                ("ID", id.into()),
                ("Image", image.into()),
                ("Name", shown_name.into()),
                ("Node", node.into()),
                ("Ports", ports.into()),
            ]);
            json.push('\n');
        } else {
            table.row(vec![
                id, shown_name, image, node, desired, current, err, ports,
            ]);
        }
    }
    if format == ListFormat::Json {
        json
    } else {
        table.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn task(
        id: &str,
        slot: i64,
        created: &str,
        desired: &str,
        state: &str,
        ts: &str,
        err: &str,
        image: &str,
    ) -> Task {
        serde_json::from_value(serde_json::json!({
            "ID": id, "ServiceID": "svcid", "NodeID": "nodeid", "Slot": slot, "CreatedAt": created,
            "DesiredState": desired,
            "Spec": {"ContainerSpec": {"Image": image}},
            "Status": {"State": state, "Timestamp": ts, "Err": err},
        }))
        .expect("valid task")
    }

    #[test]
    fn table_matches_docker() {
        let now = parse_time("2026-11-24T12:56:00Z").expect("valid");
        let long_err = "starting container failed: unable to find user nobody: no matching entries in passwd file";
        let tasks = vec![
            task(
                "nw1b9j07llkcaaaaaaaaaaaaa",
                1,
                "2026-11-24T12:55:40Z",
                "shutdown",
                "failed",
                "2026-11-24T12:55:53Z",
                long_err,
                "bb:latest@sha256:aa5e95a6ad90705f62e08600288bcc2e72a460c3602d90e27addab85a252c675",
            ),
            task(
                "r4f9268vqnx3aaaaaaaaaaaaa",
                1,
                "2026-11-24T12:55:50Z",
                "shutdown",
                "failed",
                "2026-11-24T12:55:57Z",
                long_err,
                "bb:latest",
            ),
            task(
                "ve5c20r7w8bdaaaaaaaaaaaaa",
                10,
                "2026-11-24T12:55:30Z",
                "running",
                "running",
                "2026-11-24T12:55:43Z",
                "",
                "bb:latest",
            ),
            task(
                "qeixji8p2wkraaaaaaaaaaaaa",
                2,
                "2026-11-24T12:55:30Z",
                "running",
                "running",
                "2026-11-24T12:55:53Z",
                "",
                "bb:latest",
            ),
        ];
        let services = HashMap::from([("svcid".to_string(), "web".to_string())]);
        let nodes = HashMap::from([("nodeid".to_string(), "vm".to_string())]);
        let out = render(
            tasks.clone(),
            &services,
            &nodes,
            true,
            false,
            ListFormat::Table,
            now,
        );
        let expected = "\
ID             NAME        IMAGE       NODE      DESIRED STATE   CURRENT STATE            ERROR                              PORTS
r4f9268vqnx3   web.1       bb:latest   vm        Shutdown        Failed 3 seconds ago     \"starting container failed: un…\"   
nw1b9j07llkc    \\_ web.1   bb:latest   vm        Shutdown        Failed 7 seconds ago     \"starting container failed: un…\"   
qeixji8p2wkr   web.2       bb:latest   vm        Running         Running 7 seconds ago                                       
ve5c20r7w8bd   web.10      bb:latest   vm        Running         Running 17 seconds ago                                      
";
        assert_eq!(out, expected);
        let quiet = render(
            tasks.clone(),
            &services,
            &nodes,
            false,
            true,
            ListFormat::Table,
            now,
        );
        assert_eq!(
            quiet,
            "r4f9268vqnx3aaaaaaaaaaaaa\nnw1b9j07llkcaaaaaaaaaaaaa\nqeixji8p2wkraaaaaaaaaaaaa\nve5c20r7w8bdaaaaaaaaaaaaa\n"
        );
        let untrunc = render(
            tasks,
            &HashMap::new(),
            &HashMap::new(),
            false,
            false,
            ListFormat::Table,
            now,
        );
        assert!(
            untrunc.contains("nw1b9j07llkcaaaaaaaaaaaaa    \\_ svcid.1"),
            "{untrunc}"
        );
        assert!(untrunc.contains(&format!("\"{long_err}\"")));
        assert!(untrunc.contains("bb:latest@sha256:aa5e"));
    }

    #[test]
    fn global_tasks_are_named_by_node_and_ports_show() {
        let now = parse_time("2026-11-24T12:56:00Z").expect("valid");
        let t: Task = serde_json::from_value(serde_json::json!({
            "ID": "abc", "ServiceID": "s", "NodeID": "n1", "DesiredState": "running",
            "Status": {"State": "running", "Timestamp": "2026-11-24T12:55:59.5Z",
                       "PortStatus": {"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080}]}}
        }))
        .expect("valid task");
        let out = render(
            vec![t],
            &HashMap::new(),
            &HashMap::new(),
            true,
            false,
            ListFormat::Json,
            now,
        );
        assert_eq!(
            out,
            "{\"CurrentState\":\"Running less than a second ago\",\"DesiredState\":\"Running\",\"Error\":\"\",\"ID\":\"abc\",\"Image\":\"\",\"Name\":\"s.n1\",\"Node\":\"n1\",\"Ports\":\"*:8080-\\u003e80/tcp\"}\n"
        );
    }

    fn svc(id: &str, name: &str) -> Service {
        serde_json::from_value(serde_json::json!({"ID": id, "Spec": {"Name": name}}))
            .expect("valid service")
    }

    #[test]
    fn references_resolve_by_id_name_then_prefix() {
        let all = vec![svc("abc123", "web"), svc("abd456", "api")];
        let refs: Vec<String> = ["web", "abd", "abc123", "nope"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (found, missing) = match_services(&refs, &all, &all).expect("no ambiguity");
        assert_eq!(found, vec!["abc123", "abd456", "abc123"]);
        assert_eq!(missing, vec!["no such service: nope"]);
        let err = match_services(&["ab".to_string()], &all, &[])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("multiple services found with provided prefix: ab")
        );
    }
}
