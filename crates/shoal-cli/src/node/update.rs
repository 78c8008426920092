//! `node update|promote|demote`: read the node, change its spec, write it back under the version
//! read (docker's `updateNodes`); the first failure stops the loop, as in docker.

use std::collections::HashMap;
use std::io::Write;

use bollard_stubs::models::{Node, NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum};

use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};

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

/// What a merge decided for one node.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Write this spec.
    Update(NodeSpec),
    /// Nothing to write; print this and go on with the next node.
    Skip(String),
}

/// docker's `updateNodes`: for each reference, inspect, merge, update, then print `success`.
pub async fn update_nodes(
    client: &Client,
    refs: &[String],
    merge: impl Fn(&Node) -> Result<Outcome>,
    success: impl Fn(&str) -> String,
    out: &mut impl Write,
) -> Result<()> {
    for reference in refs {
        let node: Node = client
            .get(&format!("/nodes/{}", path_escape(reference, false)), &[])
            .await?;
        let spec = match merge(&node)? {
            Outcome::Skip(message) => {
                let _ = writeln!(out, "{message}");
                continue;
            }
            Outcome::Update(spec) => spec,
        };
        let node_id = node.id.clone().unwrap_or_else(|| reference.clone());
        let version = node.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        client
            .post_no_answer(
                &format!("/nodes/{}/update", path_escape(&node_id, false)),
                &[("version", version.to_string())],
                Some(&spec),
            )
            .await?;
        let _ = writeln!(out, "{}", success(reference));
    }
    Ok(())
}

pub async fn update(client: &Client, args: UpdateArgs, out: &mut impl Write) -> Result<()> {
    let merge = |n: &Node| {
        let mut spec = n.spec.clone().unwrap_or_default();
        merge_update(&mut spec, &args)?;
        Ok(Outcome::Update(spec))
    };
    let refs = [args.node.clone()];
    update_nodes(client, &refs, merge, |r| r.to_string(), out).await
}

/// docker's promote/demote merge: the node with `role`, or docker's note that it has it already.
pub fn with_role(node: &Node, role: NodeSpecRoleEnum) -> Outcome {
    let mut spec = node.spec.clone().unwrap_or_default();
    if spec.role == Some(role) {
        let id = node.id.as_deref().unwrap_or("");
        return Outcome::Skip(format!("Node {id} is already a {role}."));
    }
    spec.role = Some(role);
    Outcome::Update(spec)
}

pub async fn promote(client: &Client, refs: &[String], out: &mut impl Write) -> Result<()> {
    let merge = |n: &Node| Ok(with_role(n, NodeSpecRoleEnum::MANAGER));
    let success = |r: &str| format!("Node {r} promoted to a manager in the swarm.");
    update_nodes(client, refs, merge, success, out).await
}

pub async fn demote(client: &Client, refs: &[String], out: &mut impl Write) -> Result<()> {
    let merge = |n: &Node| Ok(with_role(n, NodeSpecRoleEnum::WORKER));
    let success = |r: &str| format!("Manager {r} demoted in the swarm.");
    update_nodes(client, refs, merge, success, out).await
}

/// docker's `mergeNodeUpdate`.
pub fn merge_update(spec: &mut NodeSpec, args: &UpdateArgs) -> Result<()> {
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

    #[test]
    fn role_changes_keep_the_rest_of_the_spec() {
        let n = node(NODE);
        assert_eq!(
            with_role(&n, NodeSpecRoleEnum::MANAGER),
            Outcome::Skip("Node n3fvkg7m4vj2v5j6u0r6b2x8g is already a manager.".into())
        );
        let Outcome::Update(spec) = with_role(&n, NodeSpecRoleEnum::WORKER) else {
            panic!("a manager can be demoted");
        };
        // The body docker sends for `node demote` of this node.
        assert_eq!(
            serde_json::to_string(&spec).expect("serialisable"),
            r#"{"Labels":{},"Role":"worker","Availability":"active"}"#
        );
    }
}
