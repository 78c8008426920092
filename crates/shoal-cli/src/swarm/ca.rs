//! `swarm ca`: print the swarm's root CA certificate, or rotate it (`--rotate` bumps
//! `CAConfig.ForceRotate`, or hands the daemon a root of your own) and follow the rotation with
//! docker's two progress bars until every node holds a certificate from, and trusts, the new root.
//!
//! How nodes are counted: where the swarm and a node both report `TLSInfo`, they are compared as
//! docker does (issuer subject and key for certificates, the trust root for roots); where either
//! is missing, the node counts as rotated once the swarm says the rotation is over
//! (`RootRotationInProgress` false, and the swarm shows the `ForceRotate` we asked for, so a
//! lagging manager cannot end the wait early). The digest line stays empty while the daemon
//! reports no trust root (docker would print the digest of an empty string).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use bollard_stubs::models::{Node, Swarm, SwarmSpec, SwarmSpecCaConfig, TlsInfo};

use super::{post_update, version_of};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::service::progress::{Quiet, Renderer, Sink};
use crate::units::parse_duration_flag;

#[derive(Debug, clap::Args)]
pub struct CaArgs {
    /// Rotate the swarm CA - if no certificate or key are provided, new ones will be generated
    #[arg(long)]
    pub rotate: bool,
    /// Path to the PEM-formatted root CA certificate to use for the new cluster
    #[arg(long, value_name = "pem-file")]
    pub ca_cert: Option<String>,
    /// Path to the PEM-formatted root CA key to use for the new cluster
    #[arg(long, value_name = "pem-file")]
    pub ca_key: Option<String>,
    /// Validity period for node certificates (ns|us|ms|s|m|h)
    #[arg(long, value_name = "duration")]
    pub cert_expiry: Option<String>,
    /// Exit immediately instead of waiting for the root rotation to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
}

const POLL: Duration = Duration::from_millis(200);
pub const DIGEST: &str = "desired root digest";
pub const CERTS: &str = "  rotated TLS certificates";
pub const ROOTS: &str = "  rotated CA certificates";
/// One space for roots: its label is one character shorter, so the bars line up.
const CERTS_ACTION: &str = "";
const ROOTS_ACTION: &str = " ";

/// Whether stdout is a terminal, and its width (0 when unknown).
pub fn stdout_terminal() -> (bool, u16) {
    let stdout = std::io::stdout();
    let width = terminal_size::terminal_size_of(&stdout)
        .map(|(w, _)| w.0)
        .unwrap_or(0);
    (stdout.is_terminal(), width)
}

pub async fn run(client: &Client, args: CaArgs, out: &mut impl Write) -> Result<()> {
    let (tty, width) = stdout_terminal();
    run_with(client, args, out, tty, width).await
}

/// [`run`] with the terminal described by the caller (tests draw into a buffer).
pub async fn run_with(
    client: &Client,
    args: CaArgs,
    out: &mut impl Write,
    tty: bool,
    width: u16,
) -> Result<()> {
    let cert = args
        .ca_cert
        .as_deref()
        .map(|p| read_pem("ca-cert", p))
        .transpose()?;
    let key = args
        .ca_key
        .as_deref()
        .map(|p| read_pem("ca-key", p))
        .transpose()?;
    let expiry = args
        .cert_expiry
        .as_deref()
        .map(|v| {
            parse_duration_flag(v).map_err(|why| CliError::invalid_flag("cert-expiry", v, why))
        })
        .transpose()?;
    if !args.rotate {
        for (flag, given) in [
            ("ca-cert", cert.is_some()),
            ("ca-key", key.is_some()),
            ("cert-expiry", expiry.is_some()),
        ] {
            if given {
                return Err(CliError::Usage(format!(
                    "`--{flag}` flag requires the `--rotate` flag to update the CA"
                )));
            }
        }
        let swarm: Swarm = client.get("/swarm", &[]).await?;
        return display_trust_root(&swarm, out);
    }
    if cert.is_some() && key.is_none() {
        return Err(CliError::Usage(
            "the --ca-cert flag requires that a --ca-key flag and/or --external-ca flag be provided as well"
                .to_string(),
        ));
    }
    let swarm: Swarm = client.get("/swarm", &[]).await?;
    let mut spec = swarm.spec.clone().unwrap_or_default();
    let forced = rotate_spec(&mut spec, cert, key, expiry);
    post_update(client, version_of(&swarm), &spec, false, false).await?;
    if args.detach {
        return Ok(());
    }
    if args.quiet {
        return watch(client, &mut Quiet, forced).await;
    }
    watch(client, &mut Renderer::new(&mut *out, tty, width), forced).await?;
    let swarm: Swarm = client.get("/swarm", &[]).await?;
    display_trust_root(&swarm, out)
}

/// docker's `PEMFile` flag: the file's text, which must hold a PEM block.
fn read_pem(flag: &str, path: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::invalid_flag(flag, path, format!("open {path}: {e}")))?;
    if !text.contains("-----BEGIN ") {
        return Err(CliError::invalid_flag(
            flag,
            path,
            "file contents must be in PEM format",
        ));
    }
    Ok(text)
}

/// docker's `updateSwarmSpec` for `ca --rotate`: the new expiry, the root to use (cleared when
/// none is given), and a bumped `ForceRotate` when the daemon must make the root itself.
/// Returns the `ForceRotate` asked for, if it was bumped.
pub fn rotate_spec(
    spec: &mut SwarmSpec,
    cert: Option<String>,
    key: Option<String>,
    expiry: Option<i64>,
) -> Option<u64> {
    let ca = spec
        .ca_config
        .get_or_insert_with(SwarmSpecCaConfig::default);
    if let Some(e) = expiry {
        ca.node_cert_expiry = Some(e);
    }
    let generate = cert.is_none() && key.is_none();
    ca.signing_ca_cert = cert.filter(|c| !c.is_empty());
    ca.signing_ca_key = key.filter(|k| !k.is_empty());
    if !generate {
        return None;
    }
    let next = ca.force_rotate.unwrap_or(0).saturating_add(1);
    ca.force_rotate = Some(next);
    Some(next)
}

/// docker's `displayTrustRoot` (docker 28's wording of the error).
pub fn display_trust_root(swarm: &Swarm, out: &mut impl Write) -> Result<()> {
    let root = swarm
        .tls_info
        .as_ref()
        .and_then(|t| t.trust_root.as_deref())
        .unwrap_or("");
    if root.is_empty() {
        return Err(CliError::Failed("No CA information available".to_string()));
    }
    let _ = writeln!(out, "{}", root.trim());
    Ok(())
}

/// One look at the rotation: what the three progress lines show, and whether it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `sha256:<hex>` of the desired trust root; empty when the daemon reports none.
    pub digest: String,
    pub certs: i64,
    /// Nodes that trust the new root, shown as 0 until every certificate is rotated.
    pub roots: i64,
    pub total: i64,
    pub done: bool,
}

fn issuer(t: &TlsInfo) -> (&str, &str) {
    (
        t.cert_issuer_subject.as_deref().unwrap_or(""),
        t.cert_issuer_public_key.as_deref().unwrap_or(""),
    )
}

/// docker's `updateProgress`, counting nodes the daemon says nothing about by the swarm's state
/// (see the module docs). `forced` is the `ForceRotate` this command asked for.
pub fn observe(swarm: &Swarm, nodes: &[Node], forced: Option<u64>) -> Observed {
    let desired = swarm.tls_info.clone().unwrap_or_default();
    let applied = forced.is_none_or(|f| {
        swarm
            .spec
            .as_ref()
            .and_then(|s| s.ca_config.as_ref())
            .and_then(|c| c.force_rotate)
            .unwrap_or(0)
            >= f
    });
    let in_progress = swarm.root_rotation_in_progress.unwrap_or(false) || !applied;
    let trust_root = desired.trust_root.clone().unwrap_or_default();
    let want_issuer = issuer(&desired);
    let known = |i: (&str, &str)| !i.0.is_empty() || !i.1.is_empty();
    let (mut certs, mut roots) = (0, 0);
    for n in nodes {
        let t = n
            .description
            .as_ref()
            .and_then(|d| d.tls_info.clone())
            .unwrap_or_default();
        let has = issuer(&t);
        let cert_ok = if known(want_issuer) && known(has) {
            has == want_issuer
        } else {
            !in_progress
        };
        let node_root = t.trust_root.as_deref().unwrap_or("");
        let root_ok = if !trust_root.is_empty() && !node_root.is_empty() {
            node_root == trust_root
        } else {
            !in_progress
        };
        certs += i64::from(cert_ok);
        roots += i64::from(root_ok);
    }
    let total = nodes.len() as i64;
    let certs_done = certs == total && !in_progress;
    Observed {
        digest: if trust_root.is_empty() {
            String::new()
        } else {
            sha256_digest(trust_root.as_bytes())
        },
        certs,
        roots: if certs_done { roots } else { 0 },
        total,
        done: certs_done && roots == total,
    }
}

/// `sha256:<hex>`, as `go-digest` writes it.
pub fn sha256_digest(data: &[u8]) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, data);
    let hex: String = sum.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn draw(out: &mut dyn Sink, o: &Observed) {
    out.line(DIGEST, &o.digest, None);
    out.count(CERTS, CERTS_ACTION, o.certs, o.total, "nodes");
    out.count(ROOTS, ROOTS_ACTION, o.roots, o.total, "nodes");
}

/// docker's `RootRotationProgress`: poll `/swarm` and `/nodes` every 200 ms until the rotation
/// is over (confirmed by one more look at the swarm) or Ctrl-C.
pub async fn watch(client: &Client, out: &mut dyn Sink, forced: Option<u64>) -> Result<()> {
    out.line(DIGEST, "", None);
    out.line(CERTS, CERTS_ACTION, None);
    out.line(ROOTS, ROOTS_ACTION, None);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut done = false;
    loop {
        let swarm: Swarm = client.get("/swarm", &[]).await?;
        if done {
            return Ok(());
        }
        let nodes: Vec<Node> = client.get("/nodes", &[]).await?;
        let seen = observe(&swarm, &nodes, forced);
        draw(out, &seen);
        done = seen.done;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = &mut ctrl_c => {
                if !done {
                    out.message(None, "Operation continuing in background.");
                    out.message(None, "Use `shoal info` to check progress.");
                }
                return Ok(());
            }
        }
    }
}
