//! `create` and `rotate`: read the payload (a file or stdin), refuse before sending what Swarm
//! would refuse anyway (nothing, or more than 500 KiB), and post it base64-encoded. `rotate` then
//! follows, like `service update`, each service the daemon rolls onto the new version.

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;
use bollard_stubs::models::{IdResponse, Service};
use serde::{Deserialize, Serialize};

use super::{DriverName, Kind};
use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::service::opts::label_pair;
use crate::units::bytes_size;

/// Swarm's limit on a secret's or a config's data (swarmkit's `MaxSecretSize`, `MaxConfigSize`).
pub const MAX_DATA: u64 = 500 * 1024;

/// The flags `secret create` and `config create` share.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Labels (key=value)
    #[arg(short, long, value_name = "list")]
    pub label: Vec<String>,
    /// Template driver ("golang")
    #[arg(long, value_name = "string")]
    pub template_driver: Option<String>,
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The content: a file, or - to read STDIN
    #[arg(value_name = "FILE|-")]
    pub file: Option<String>,
}

/// Docker's `SecretSpec`/`ConfigSpec` as `create` sends them (Go always sends `Labels`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateBody {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Base64 of the payload.
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templating: Option<DriverName>,
}

/// Checks the flags (before anything is read or sent) and builds the body around `data`.
pub fn create_body(kind: Kind, args: &CreateArgs, data: &[u8]) -> Result<CreateBody> {
    if args.name.trim().is_empty() {
        return Err(CliError::Usage(format!(
            "{} create: NAME must not be empty",
            kind.noun()
        )));
    }
    let labels = args
        .label
        .iter()
        .map(|l| label_pair("label", l))
        .collect::<Result<BTreeMap<_, _>>>()?;
    let templating = match args.template_driver.as_deref() {
        None | Some("") => None,
        Some("golang") => Some(DriverName {
            name: "golang".to_string(),
        }),
        Some(other) => {
            return Err(CliError::invalid_flag(
                "template-driver",
                other,
                "only \"golang\" is supported",
            ));
        }
    };
    Ok(CreateBody {
        name: args.name.clone(),
        labels,
        data: base64::engine::general_purpose::STANDARD.encode(data),
        templating,
    })
}

/// Reads `file` ("-": `stdin`) up to Swarm's limit; errors name the object and the file.
pub fn read_payload(kind: Kind, name: &str, file: &str, stdin: &mut dyn Read) -> Result<Vec<u8>> {
    let fail = |why: String| CliError::Failed(format!("{} \"{name}\": {why}", kind.noun()));
    let too_big = |source: &str, size: Option<u64>| {
        let size = match size {
            Some(n) => format!("is {} ({n} bytes)", bytes_size(n as f64)),
            None => format!("holds more than {MAX_DATA} bytes"),
        };
        fail(format!(
            "{source} {size}: over Swarm's limit of {} ({MAX_DATA} bytes) for a {}",
            bytes_size(MAX_DATA as f64),
            kind.noun()
        ))
    };
    let (source, data) = if file == "-" {
        let data = read_limited(stdin).map_err(|e| fail(format!("cannot read STDIN: {e}")))?;
        ("STDIN", data)
    } else {
        let mut f =
            std::fs::File::open(file).map_err(|e| fail(format!("cannot read {file}: {e}")))?;
        // A regular file's size is known up front: refuse it without reading, and say how big.
        if let Ok(meta) = f.metadata()
            && meta.is_file()
            && meta.len() > MAX_DATA
        {
            return Err(too_big(file, Some(meta.len())));
        }
        let data = read_limited(&mut f).map_err(|e| fail(format!("cannot read {file}: {e}")))?;
        (file, data)
    };
    if data.len() as u64 > MAX_DATA {
        return Err(too_big(source, None));
    }
    if data.is_empty() {
        return Err(fail(format!("{source} is empty")));
    }
    Ok(data)
}

/// Reads at most one byte over the limit: enough to know it was crossed.
fn read_limited(r: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(MAX_DATA + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Usage: the content is needed (docker makes FILE optional only for external drivers).
fn required_file<'a>(kind: Kind, name: &str, file: Option<&'a str>) -> Result<&'a str> {
    file.ok_or_else(|| {
        CliError::Usage(format!(
            "{} \"{name}\": FILE is required (a path, or - to read STDIN)",
            kind.noun()
        ))
    })
}

pub async fn create(client: &Client, kind: Kind, args: CreateArgs) -> Result<()> {
    create_body(kind, &args, &[])?;
    let file = required_file(kind, &args.name, args.file.as_deref())?;
    let data = read_payload(kind, &args.name, file, &mut std::io::stdin())?;
    let body = create_body(kind, &args, &data)?;
    let resp: IdResponse = client
        .post(&format!("{}/create", kind.path()), &[], &body)
        .await?;
    println!("{}", resp.id);
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// Exit immediately instead of waiting for the services to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(value_name = "NAME|ID")]
    pub name: String,
    /// The new content: a file, or - to read STDIN
    #[arg(value_name = "FILE|-")]
    pub file: String,
}

/// `POST /{secrets,configs}/{id}/rotate` sends only the data.
#[derive(Debug, Serialize)]
pub struct RotateBody {
    #[serde(rename = "Data")]
    pub data: String,
}

/// The new version and the services the daemon is rolling onto it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RotateResponse {
    #[serde(rename = "Version")]
    pub version: u64,
    #[serde(rename = "Services", default)]
    pub services: Option<Vec<String>>,
}

pub async fn rotate(client: &Client, kind: Kind, args: RotateArgs) -> Result<()> {
    let data = read_payload(kind, &args.name, &args.file, &mut std::io::stdin())?;
    let body = RotateBody {
        data: base64::engine::general_purpose::STANDARD.encode(&data),
    };
    let resp: RotateResponse = client
        .post(
            &format!("{}/rotate", kind.object_path(&args.name)),
            &[],
            &body,
        )
        .await?;
    let mut errors = Vec::new();
    if !args.detach {
        for id in resp.services.iter().flatten() {
            // The heading `service update` prints is the service's name; fall back to the ID.
            let name = client
                .get::<Service>(&format!("/services/{}", path_escape(id, false)), &[])
                .await
                .ok()
                .and_then(|s| s.spec.and_then(|sp| sp.name))
                .unwrap_or_else(|| id.clone());
            println!("{name}");
            if let Err(e) =
                crate::service::wait::wait_on_service(client, id, args.quiet, false).await
            {
                errors.push(CliError::Failed(format!("service \"{name}\": {e}")));
            }
        }
    }
    println!("{} rotated to version {}", args.name, resp.version);
    super::all_ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> CreateArgs {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: CreateArgs,
        }
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("create").chain(argv.iter().copied()))
            .expect("flags parse")
            .args
    }

    #[test]
    fn body_is_docker_spec() {
        let a = args(&["-l", "env=prod", "--label", "bare", "db", "-"]);
        let body = create_body(Kind::Secret, &a, b"hunter2").expect("valid");
        assert_eq!(
            serde_json::to_value(&body).expect("serialisable"),
            serde_json::json!({"Name": "db", "Labels": {"env": "prod", "bare": ""}, "Data": "aHVudGVyMg=="})
        );
        let a = args(&["--template-driver", "golang", "app.conf", "f"]);
        let body = create_body(Kind::Config, &a, b"x={{.Service.Name}}").expect("valid");
        assert_eq!(
            serde_json::to_value(&body).expect("serialisable"),
            serde_json::json!({"Name": "app.conf", "Labels": {}, "Data": "eD17ey5TZXJ2aWNlLk5hbWV9fQ==", "Templating": {"Name": "golang"}})
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for (argv, expected) in [
            (
                vec!["--template-driver", "jinja", "db", "-"],
                r#"invalid argument "jinja" for "--template-driver" flag: only "golang" is supported"#,
            ),
            (
                vec!["-l", "=v", "db", "-"],
                r#"invalid argument "=v" for "--label" flag: invalid label '=v': empty name"#,
            ),
            (vec!["", "-"], "secret create: NAME must not be empty"),
        ] {
            let err = create_body(Kind::Secret, &args(&argv), b"").err();
            assert_eq!(err.as_ref().map(|e| e.exit_code()), Some(2), "{argv:?}");
            assert_eq!(err.map(|e| e.to_string()).as_deref(), Some(expected));
        }
        let err = required_file(Kind::Config, "app", None).err();
        assert_eq!(err.as_ref().map(|e| e.exit_code()), Some(2));
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some(r#"config "app": FILE is required (a path, or - to read STDIN)"#)
        );
    }

    #[test]
    fn payload_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at_limit = dir.path().join("ok.bin");
        std::fs::write(&at_limit, vec![b'a'; MAX_DATA as usize]).expect("write");
        let path = at_limit.to_string_lossy().to_string();
        let data = read_payload(Kind::Secret, "db", &path, &mut std::io::empty());
        assert_eq!(data.map(|d| d.len()).ok(), Some(512_000));

        let big = dir.path().join("big.bin");
        std::fs::write(&big, vec![b'a'; 600 * 1024]).expect("write");
        let path = big.to_string_lossy().to_string();
        let err = read_payload(Kind::Secret, "db", &path, &mut std::io::empty()).err();
        assert_eq!(err.as_ref().map(|e| e.exit_code()), Some(1));
        assert_eq!(
            err.map(|e| e.to_string()),
            Some(format!(
                "secret \"db\": {path} is 600KiB (614400 bytes): over Swarm's limit of 500KiB (512000 bytes) for a secret"
            ))
        );

        let mut stdin: &[u8] = &[b'x'; 512_001];
        let err = read_payload(Kind::Config, "c", "-", &mut stdin)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "config \"c\": STDIN holds more than 512000 bytes: over Swarm's limit of 500KiB (512000 bytes) for a config"
            )
        );
        let mut stdin: &[u8] = b"from stdin";
        let data = read_payload(Kind::Config, "c", "-", &mut stdin).ok();
        assert_eq!(data.as_deref(), Some(&b"from stdin"[..]));

        let err = read_payload(Kind::Secret, "db", "-", &mut std::io::empty())
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("secret \"db\": STDIN is empty"));
        let missing = dir.path().join("nope").to_string_lossy().to_string();
        let err = read_payload(Kind::Secret, "db", &missing, &mut std::io::empty())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with(&format!("secret \"db\": cannot read {missing}: ")),
            "{err}"
        );
    }

    #[test]
    fn rotate_wire_format() {
        let body = RotateBody {
            data: base64::engine::general_purpose::STANDARD.encode(b"v2"),
        };
        assert_eq!(
            serde_json::to_string(&body).ok().as_deref(),
            Some(r#"{"Data":"djI="}"#)
        );
        let r: RotateResponse =
            serde_json::from_str(r#"{"Version":3,"Services":["s1","s2"]}"#).expect("valid");
        assert_eq!(r.version, 3);
        assert_eq!(r.services, Some(vec!["s1".to_string(), "s2".to_string()]));
        let r: RotateResponse = serde_json::from_str(r#"{"Version":2}"#).expect("valid");
        assert_eq!(r.services, None);
    }
}
