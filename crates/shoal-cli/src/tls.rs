//! The client's TLS, read exactly as the docker CLI reads it: `--tls`, `--tlsverify`,
//! `--tlscacert`, `--tlscert`, `--tlskey`, and the environment `DOCKER_TLS_VERIFY` /
//! `DOCKER_TLS` (any non-empty value turns them on, as in docker) and `DOCKER_CERT_PATH` (the
//! directory of `ca.pem`, `cert.pem` and `key.pem`; default `$DOCKER_CONFIG`, else `~/.docker`).
//!
//! docker's rules: `--tlsverify` implies `--tls`; with `--tls` alone the server is not verified;
//! a default `cert.pem`/`key.pem` that does not exist is simply not presented, while one named by
//! a flag must be readable. TLS applies to `tcp://` hosts only; a unix socket ignores it.
//!
//! Concurrency: plain values; the rustls configuration is built once per client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::ServerName;

use crate::error::{CliError, Result};

/// The TLS flags, as given on the command line (before the environment is applied).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsFlags {
    /// Use TLS; implied by --tlsverify
    #[arg(long)]
    pub tls: bool,
    /// Use TLS and verify the remote
    #[arg(long)]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA
    #[arg(long, value_name = "string")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file
    #[arg(long, value_name = "string")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file
    #[arg(long, value_name = "string")]
    pub tlskey: Option<PathBuf>,
}

/// What the flags and environment resolve to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `Some(ca.pem)` with verification, `None` without.
    pub ca: Option<PathBuf>,
    /// The client certificate and key to present, if any.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Whether each path was named by a flag (for error messages).
    cert_flag: bool,
    key_flag: bool,
}

impl TlsFlags {
    /// Applies the environment (`env` looks a variable up) the way docker does; `None` when TLS
    /// is off.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<String>) -> Option<TlsSettings> {
        let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
        let verify = self.tlsverify || set("DOCKER_TLS_VERIFY");
        if !(self.tls || verify || set("DOCKER_TLS")) {
            return None;
        }
        let dir = env("DOCKER_CERT_PATH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| config_dir(&env));
        let or_default =
            |p: &Option<PathBuf>, file: &str| p.clone().unwrap_or_else(|| dir.join(file));
        // A default client file that is missing is not an error: docker then presents nothing.
        let optional = |p: &Option<PathBuf>, file: &str| match p {
            Some(p) => Some(p.clone()),
            None => Some(dir.join(file)).filter(|p| p.exists()),
        };
        Some(TlsSettings {
            ca: verify.then(|| or_default(&self.tlscacert, "ca.pem")),
            cert: optional(&self.tlscert, "cert.pem"),
            key: optional(&self.tlskey, "key.pem"),
            cert_flag: self.tlscert.is_some(),
            key_flag: self.tlskey.is_some(),
        })
    }
}

/// docker's configuration directory: `$DOCKER_CONFIG`, else `~/.docker`.
fn config_dir(env: &impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(d) = env("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    env("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".docker")
}

fn tls_err(why: impl Into<String>) -> CliError {
    CliError::Tls(why.into())
}

fn read(what: &str, flag: &str, path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        tls_err(format!(
            "could not read {what} {:?} (--{flag}): {e}",
            path.display().to_string()
        ))
    })
}

impl TlsSettings {
    /// The rustls configuration these settings describe, reading every file they name.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let roots = match &self.ca {
            Some(ca) => {
                let pem = read("CA certificate", "tlscacert", ca)?;
                shoal_pki::pem_certs(&pem, "CA certificate")
                    .map_err(|e| tls_err(format!("--tlscacert {}: {}", ca.display(), chain(&e))))?;
                Some(vec![pem])
            }
            None => None,
        };
        let identity = match (&self.cert, &self.key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let chain_der = shoal_pki::pem_certs(
                    &read("client certificate", "tlscert", cert)?,
                    "client certificate",
                )
                .map_err(|e| tls_err(format!("--tlscert {}: {}", cert.display(), chain(&e))))?;
                let key_der = shoal_pki::pem_key(&read("client key", "tlskey", key)?, "client key")
                    .map_err(|e| tls_err(format!("--tlskey {}: {}", key.display(), chain(&e))))?;
                Some((chain_der, key_der))
            }
            (Some(cert), None) => {
                return Err(tls_err(format!(
                    "--tlscert {} needs its key: give --tlskey{}",
                    cert.display(),
                    if self.cert_flag {
                        ""
                    } else {
                        " or put key.pem next to it"
                    }
                )));
            }
            (None, Some(key)) => {
                return Err(tls_err(format!(
                    "--tlskey {} needs its certificate: give --tlscert{}",
                    key.display(),
                    if self.key_flag {
                        ""
                    } else {
                        " or put cert.pem next to it"
                    }
                )));
            }
        };
        let paths = [&self.cert, &self.key]
            .iter()
            .filter_map(|p| p.as_ref().map(|p| p.display().to_string()))
            .collect::<Vec<_>>()
            .join(" / ");
        shoal_pki::api_client_config(roots.as_deref(), identity)
            .map_err(|e| tls_err(format!("{paths}: {}", chain(&e))))
    }
}

fn chain(e: &shoal_pki::PkiError) -> String {
    shoal_types::error::chain(e)
}

/// The name a server certificate must carry for `addr` (`host:port`, IPv6 in brackets).
pub fn server_name(addr: &str) -> Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        tls_err(format!(
            "{host:?} cannot be checked against a certificate: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn off_unless_asked() {
        assert_eq!(TlsFlags::default().resolve(env(&[])), None);
        // docker: an empty value is unset.
        assert_eq!(
            TlsFlags::default().resolve(env(&[("DOCKER_TLS_VERIFY", "")])),
            None
        );
    }

    #[test]
    fn env_reads_like_docker() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("cert.pem"), "x").expect("write");
        std::fs::write(dir.path().join("key.pem"), "x").expect("write");
        let d = dir.path().to_str().expect("utf8");
        let s = TlsFlags::default()
            .resolve(env(&[("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", d)]))
            .expect("on");
        assert_eq!(s.ca, Some(dir.path().join("ca.pem")));
        assert_eq!(s.cert, Some(dir.path().join("cert.pem")));
        assert_eq!(s.key, Some(dir.path().join("key.pem")));
        // --tls alone: no verification; default client files absent: none presented.
        let s = TlsFlags {
            tls: true,
            ..Default::default()
        }
        .resolve(env(&[("HOME", "/nonexistent")]))
        .expect("on");
        assert_eq!(s.ca, None);
        assert_eq!((s.cert, s.key), (None, None));
        let s = TlsFlags {
            tlsverify: true,
            ..Default::default()
        }
        .resolve(env(&[("DOCKER_CONFIG", "/cfg")]))
        .expect("on");
        assert_eq!(s.ca, Some(PathBuf::from("/cfg/ca.pem")));
    }

    #[test]
    fn missing_files_name_the_flag_and_path() {
        let s = TlsFlags {
            tlsverify: true,
            tlscacert: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        }
        .resolve(env(&[]))
        .expect("on");
        let e = s.client_config().expect_err("missing").to_string();
        assert!(
            e.contains("/nonexistent/ca.pem") && e.contains("--tlscacert"),
            "{e}"
        );
        let s = TlsFlags {
            tls: true,
            tlscert: Some("/nonexistent/cert.pem".into()),
            ..Default::default()
        }
        .resolve(env(&[("HOME", "/nonexistent")]))
        .expect("on");
        let e = s.client_config().expect_err("no key").to_string();
        assert!(e.contains("--tlskey"), "{e}");
    }

    #[test]
    fn server_names_from_addresses() {
        assert!(server_name("127.0.0.1:2376").is_ok());
        assert!(server_name("[::1]:2376").is_ok());
        assert!(server_name("node-1.example:2376").is_ok());
    }
}
