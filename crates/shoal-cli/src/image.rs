//! `image ls|rm|load|pull` and `volume ls|rm|inspect`: the node's images and volumes, through
//! Docker's `/images` and `/volumes` endpoints of the daemon the CLI talks to (they are per
//! node, as with docker).

use std::path::PathBuf;

use bytes::Bytes;
use serde_json::Value;
use shoal_types::image_ref::ImageRef;

use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::format::{ago_lower, truncate_id};
use crate::imageref;

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls {
        /// Only show image IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm {
        /// Force removal of the image
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },
    /// Load an image from a tar archive (`docker save` or OCI layout)
    Load {
        /// Read from tar archive file
        #[arg(short, long, value_name = "FILE")]
        input: PathBuf,
        /// Suppress the load output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Download an image from a registry
    Pull {
        /// Suppress verbose output
        #[arg(short, long)]
        quiet: bool,
        #[arg(value_name = "NAME[:TAG|@DIGEST]")]
        image: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum VolumeCommand {
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        #[arg(required = true, value_name = "VOLUME")]
        volumes: Vec<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// Force the removal of one or more volumes
        #[arg(short, long)]
        force: bool,
        #[arg(required = true, value_name = "VOLUME")]
        volumes: Vec<String>,
    },
}

/// docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units.
fn human_size(bytes: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

fn many(mut errors: Vec<CliError>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CliError::Many(errors)),
    }
}

/// Reads a JSON-lines progress stream; prints each message and fails on an error line.
fn progress(body: &[u8], quiet: bool) -> Result<()> {
    for line in body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
    {
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| CliError::Failed(format!("cannot read the daemon's progress: {e}")))?;
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            return Err(CliError::Failed(e.to_string()));
        }
        if quiet {
            continue;
        }
        if let Some(s) = v.get("stream").and_then(Value::as_str) {
            print!("{s}");
        } else if let Some(s) = v.get("status").and_then(Value::as_str) {
            println!("{s}");
        }
    }
    Ok(())
}

pub async fn run_image(client: &Client, cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Ls { quiet } => {
            let images: Vec<Value> = client.get("/images/json", &[]).await?;
            let now = chrono::Utc::now();
            if !quiet {
                println!(
                    "{:<30} {:<15} {:<15} {:<20} SIZE",
                    "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
                );
            }
            for i in &images {
                let id = i["Id"].as_str().unwrap_or_default();
                let short = truncate_id(id.strip_prefix("sha256:").unwrap_or(id));
                if quiet {
                    println!("{short}");
                    continue;
                }
                let created =
                    chrono::DateTime::from_timestamp(i["Created"].as_i64().unwrap_or(0), 0)
                        .map(|t| t.to_rfc3339());
                let ago = ago_lower(created.as_deref(), now);
                let size = human_size(i["Size"].as_f64().unwrap_or(0.0));
                let tags: Vec<&str> = i["RepoTags"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if tags.is_empty() {
                    println!(
                        "{:<30} {:<15} {:<15} {:<20} {size}",
                        "<none>", "<none>", short, ago
                    );
                }
                for t in tags {
                    let (repo, tag) = imageref::repo_and_tag(t);
                    println!("{repo:<30} {tag:<15} {short:<15} {ago:<20} {size}");
                }
            }
            Ok(())
        }
        ImageCommand::Rm { force, images } => {
            let mut errors = Vec::new();
            for name in images {
                let q = [("force", force.to_string())];
                match client
                    .delete_raw(&format!("/images/{}", path_escape(&name, true)), &q)
                    .await
                {
                    Ok(body) => {
                        let lines: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
                        for l in lines {
                            if let Some(o) = l.as_object() {
                                for (k, v) in o {
                                    println!("{k}: {}", v.as_str().unwrap_or_default());
                                }
                            }
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
            many(errors)
        }
        ImageCommand::Load { input, quiet } => {
            let data = tokio::fs::read(&input)
                .await
                .map_err(|e| CliError::Failed(format!("open {}: {e}", input.display())))?;
            let q = [("quiet", quiet.to_string())];
            let body = client
                .post_raw("/images/load", &q, Bytes::from(data), "application/x-tar")
                .await?;
            progress(&body, false)
        }
        ImageCommand::Pull { quiet, image } => {
            let (name, tag) = match ImageRef::parse(&image) {
                Ok(r) => (r.familiar_name(), r.manifest_ref().to_string()),
                Err(e) => return Err(CliError::Usage(e.to_string())),
            };
            let q = [("fromImage", name), ("tag", tag)];
            let body = client
                .post_raw("/images/create", &q, Bytes::new(), "text/plain")
                .await?;
            progress(&body, quiet)?;
            if !quiet {
                println!("{image}");
            }
            Ok(())
        }
    }
}

pub async fn run_volume(client: &Client, cmd: VolumeCommand) -> Result<()> {
    match cmd {
        VolumeCommand::Ls { quiet } => {
            let v: Value = client.get("/volumes", &[]).await?;
            if !quiet {
                println!("{:<10}VOLUME NAME", "DRIVER");
            }
            for vol in v["Volumes"].as_array().into_iter().flatten() {
                let name = vol["Name"].as_str().unwrap_or_default();
                if quiet {
                    println!("{name}");
                } else {
                    println!("{:<10}{name}", vol["Driver"].as_str().unwrap_or("local"));
                }
            }
            Ok(())
        }
        VolumeCommand::Inspect { volumes } => {
            let mut docs = Vec::new();
            for v in volumes {
                docs.push(
                    client
                        .get_raw(&format!("/volumes/{}", path_escape(&v, false)), &[])
                        .await?,
                );
            }
            println!("{}", crate::format::inspect_array(&docs));
            Ok(())
        }
        VolumeCommand::Rm { force, volumes } => {
            let mut errors = Vec::new();
            for v in volumes {
                let q = [("force", force.to_string())];
                match client
                    .delete(&format!("/volumes/{}", path_escape(&v, false)), &q)
                    .await
                {
                    Ok(()) => println!("{v}"),
                    Err(e) => errors.push(e),
                }
            }
            many(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_prints_them() {
        assert_eq!(human_size(2_150_912.0), "2.151MB");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1_000.0), "1kB");
    }

    #[test]
    fn a_progress_error_fails_with_its_message() {
        let body = b"{\"stream\":\"Loaded image: a:b\\n\"}\r\n{\"errorDetail\":{\"message\":\"bad\"},\"error\":\"bad\"}\r\n";
        let e = progress(body, true).expect_err("fails");
        assert_eq!(e.to_string(), "bad");
        progress(b"{\"status\":\"ok\"}\r\n", true).expect("fine");
    }
}
