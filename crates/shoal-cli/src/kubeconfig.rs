//! `kubeconfig [NAME]` (shoal only): a kubeconfig for `kubectl` against the swarm's managers.
//! The user's key is made here; the manager signs a client certificate for it under the
//! cluster's root (as `swarm client-cert` does), and the kubeconfig carries the root, the
//! certificate and the key inline, so one file is all kubectl needs.

use std::io::Write;
use std::path::PathBuf;

use base64::Engine as _;

use crate::client::Client;
use crate::error::{CliError, Result};

#[derive(Debug, clap::Args)]
pub struct KubeconfigArgs {
    /// Who the certificate is for (its common name)
    #[arg(default_value = "admin")]
    pub name: String,
    /// The API server's URL; default: https://<this manager's address>:6443
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Write the kubeconfig to FILE (mode 0600) instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The kubeconfig document: YAML, written by hand because its shape is fixed and every value
/// in it is either base64 or checked to need no quoting.
pub fn render(server: &str, user: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: shoal\n  cluster:\n    server: {server:?}\n    certificate-authority-data: {ca}\n\
         users:\n\
         - name: {user:?}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
         contexts:\n\
         - name: shoal\n  context:\n    cluster: shoal\n    user: {user:?}\n    namespace: default\n\
         current-context: shoal\n\
         preferences: {{}}\n",
        ca = b64(ca_pem),
        cert = b64(cert_pem),
        key = b64(key_pem),
    )
}

pub async fn run(client: &Client, args: KubeconfigArgs, out: &mut impl Write) -> Result<()> {
    let server = match args.server {
        Some(s) => s,
        None => {
            let info = crate::system::swarm_info(client).await?;
            let addr = info.node_addr.unwrap_or_default();
            if addr.is_empty() || info.control_available != Some(true) {
                return Err(CliError::Failed(
                    "this node is not a swarm manager: run `shoal kubeconfig` against a manager, or give --server"
                        .into(),
                ));
            }
            let host = if addr.contains(':') {
                format!("[{addr}]")
            } else {
                addr
            };
            format!("https://{host}:6443")
        }
    };
    let (key_pem, issued) = crate::swarm::client_cert::issue(client, &args.name, None).await?;
    let text = render(
        &server,
        &args.name,
        &issued.ca,
        &issued.certificate,
        &key_pem,
    );
    match args.output {
        Some(path) => {
            crate::swarm::client_cert::write_file(&path, &text, 0o600)?;
            let _ = writeln!(
                out,
                "Kubeconfig for {:?} written to {}, valid until {}.\nUse it with:\n    KUBECONFIG={} kubectl get nodes",
                args.name,
                path.display(),
                issued.not_after,
                path.display()
            );
        }
        None => {
            let _ = out.write_all(text.as_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_names_one_cluster_user_and_context() {
        let text = render("https://192.0.2.11:6443", "admin", "CA", "CERT", "KEY");
        assert!(
            text.contains("server: \"https://192.0.2.11:6443\"\n"),
            "{text}"
        );
        assert!(
            text.contains("certificate-authority-data: Q0E=\n"),
            "{text}"
        );
        assert!(text.contains("client-key-data: S0VZ\n"), "{text}");
        assert!(text.contains("current-context: shoal\n"), "{text}");
    }
}
