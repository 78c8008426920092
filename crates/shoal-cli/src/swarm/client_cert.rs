//! `swarm client-cert NAME --out DIR` (shoal only): a client certificate for the daemon's TLS
//! API (`--tlsverify`), signed by the swarm's root CA on the manager this CLI talks to. The key
//! is made here and never sent: the manager signs a CSR for it (`POST /shoal/certificates`), so
//! the root's key never leaves the manager either. Writes docker's three files, `ca.pem`,
//! `cert.pem` and `key.pem` (0600), so `DOCKER_CERT_PATH=DIR` works at once.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::{CliError, Result};
use crate::units::parse_duration_flag;

#[derive(Debug, clap::Args)]
pub struct ClientCertArgs {
    /// Who the certificate is for (its common name): letters, digits, '.', '_', '-' or '@'
    pub name: String,
    /// Directory to write ca.pem, cert.pem and key.pem into (made 0700 if missing)
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Validity period (ns|us|ms|s|m|h); default: the swarm's node certificate expiry
    #[arg(long, value_name = "duration")]
    pub expiry: Option<String>,
    /// Replace ca.pem, cert.pem and key.pem if they are already in DIR
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Serialize)]
struct IssueBody<'a> {
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "CSR")]
    csr: &'a str,
    #[serde(rename = "Expiry", skip_serializing_if = "Option::is_none")]
    expiry: Option<i64>,
}

#[derive(Deserialize)]
pub(crate) struct Issued {
    #[serde(rename = "Certificate")]
    pub(crate) certificate: String,
    #[serde(rename = "CA")]
    pub(crate) ca: String,
    #[serde(rename = "NotAfter", default)]
    pub(crate) not_after: String,
}

/// A key made here and a client certificate for it issued to `name` by the manager: the key
/// never leaves this process until the caller writes it.
pub(crate) async fn issue(
    client: &Client,
    name: &str,
    expiry: Option<i64>,
) -> Result<(String, Issued)> {
    shoal_pki::check_client_name(name)
        .map_err(|e| CliError::Usage(format!("client certificate {name:?}: {e}")))?;
    let (key_pem, csr_pem) = shoal_pki::new_key_and_csr()
        .map_err(|e| CliError::Failed(format!("cannot make a key: {e}")))?;
    let issued: Issued = client
        .post(
            "/shoal/certificates",
            &[],
            &IssueBody {
                name,
                csr: &csr_pem,
                expiry,
            },
        )
        .await?;
    Ok((key_pem, issued))
}

const FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

pub async fn run(client: &Client, args: ClientCertArgs, out: &mut impl Write) -> Result<()> {
    let expiry = args
        .expiry
        .as_deref()
        .map(|v| match parse_duration_flag(v) {
            Ok(0) => Err(CliError::invalid_flag(
                "expiry",
                v,
                "must be longer than zero",
            )),
            Ok(ns) => Ok(ns),
            Err(why) => Err(CliError::invalid_flag("expiry", v, why)),
        })
        .transpose()?;
    let dir = &args.out;
    if !args.force
        && let Some(f) = FILES.iter().find(|f| dir.join(f).exists())
    {
        return Err(CliError::Usage(format!(
            "--out {}: {f} is already there; pass --force to replace it",
            dir.display()
        )));
    }
    let (key_pem, issued) = issue(client, &args.name, expiry).await?;
    make_dir(dir)?;
    write_file(&dir.join("ca.pem"), &issued.ca, 0o644)?;
    write_file(&dir.join("cert.pem"), &issued.certificate, 0o644)?;
    write_file(&dir.join("key.pem"), &key_pem, 0o600)?;
    let _ = writeln!(
        out,
        "Client certificate for {:?} written to {} (ca.pem, cert.pem, key.pem), valid until {}.",
        args.name,
        dir.display(),
        issued.not_after
    );
    let _ = writeln!(
        out,
        "Use it with a daemon started with --tlsverify:\n    DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={} DOCKER_HOST=tcp://MANAGER:2376 docker info",
        dir.display()
    );
    Ok(())
}

fn io_err(path: &Path, e: std::io::Error) -> CliError {
    CliError::Failed(format!("--out: cannot write {}: {e}", path.display()))
}

fn make_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err(dir, e))
}

/// Writes `text` to a temporary file made with `mode`, then renames it over `path`: the key is
/// never readable by others, not even for a moment, and an old file is replaced whole.
pub(crate) fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    let tmp = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    // The umask may have narrowed the mode; a certificate must stay readable to its user's tools.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| f.write_all(text.as_bytes()))
        .and_then(|()| f.sync_all())
        .map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}
