//! `node inspect`: the nodes as JSON (as the daemon sent them, indented like docker) or docker's
//! `--pretty` text.

use std::collections::{BTreeMap, HashMap};

use bollard_stubs::models::{Node, NodeState};

use super::{availability, hostname, id, node_reference, tls_empty};
use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::format::{go_time_pretty, inspect_array, pretty};
use crate::units::bytes_size;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    /// "self" or node names/IDs
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
}

pub async fn inspect(client: &Client, args: InspectArgs) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = r#"{"ID":"n3fvkg7m4vj2v5j6u0r6b2x8g","Version":{"Index":9},"CreatedAt":"2026-11-24T12:55:22.827113773Z","UpdatedAt":"2026-11-24T12:55:23.4Z","Spec":{"Labels":{},"Role":"manager","Availability":"active"},"Description":{"Hostname":"vm","Platform":{"Architecture":"x86_64","OS":"linux"},"Resources":{"NanoCPUs":2000000000,"MemoryBytes":25275236352},"Engine":{"EngineVersion":"20.10.24+dfsg1","Plugins":[{"Type":"Log","Name":"json-file"},{"Type":"Network","Name":"bridge"},{"Type":"Log","Name":"local"}]},"TLSInfo":{"TrustRoot":"-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n","CertIssuerSubject":"MBMx","CertIssuerPublicKey":"MFkw"}},"Status":{"State":"ready","Addr":"192.0.2.2"},"ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"192.0.2.2:2377"}}"#;

    fn node(json: &str) -> Node {
        serde_json::from_str(json).expect("valid node")
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
}
