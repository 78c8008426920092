//! `--secret`/`--config` (`service create`) and `--secret-add|rm`/`--config-add|rm` (`service
//! update`): docker's CSV syntax parsed into references ([`parse_ref`]), names resolved to IDs
//! with `GET /secrets?filters={"name":..}` as docker's client does, and the references written into
//! the request body as JSON objects.
//!
//! Why JSON and not the bollard models: shoal's `version=N` pin travels as an extra `"Version": N`
//! in each reference, which the models would drop; so the references of a service read for an
//! update (or a scale or rollback) are kept as the daemon sent them ([`Refs`]) and put back over
//! the typed spec when it is posted, and a pin survives any read-modify-write by this CLI.

use std::collections::HashMap;

use bollard_stubs::models::ServiceSpec;
use serde_json::{Map, Value, json};

use super::container::csv_fields;
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::filters::Filters;
use crate::secret::{Kind, Object};

/// Docker's default file mode for both kinds (0444).
pub const DEFAULT_MODE: u32 = 0o444;

/// One parsed `--secret`/`--config` value, before its name is resolved to an ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefOpt {
    pub source: String,
    /// The file name in the task: a secret's relative target lands under `/run/secrets/`, a
    /// config's under `/` (docker sends the bare name for both and the daemon places it).
    pub target: String,
    pub uid: String,
    pub gid: String,
    pub mode: u32,
    /// Pinned version (beyond Swarm); None follows the latest.
    pub version: Option<u64>,
}

impl RefOpt {
    /// The reference object as docker sends it, plus `Version`: the pin, or 0 to follow the
    /// newest version (a reference without the field keeps the pin the service had for it, so
    /// that the docker CLI, which drops the field, never unpins; a flag given here says what it
    /// wants).
    pub fn to_json(&self, kind: Kind, id: &str) -> Value {
        let mut m = Map::new();
        m.insert(
            "File".into(),
            json!({"Name": self.target, "UID": self.uid, "GID": self.gid, "Mode": self.mode}),
        );
        m.insert(kind.id_key().into(), id.into());
        m.insert(kind.name_key().into(), self.source.clone().into());
        m.insert("Version".into(), self.version.unwrap_or(0).into());
        Value::Object(m)
    }
}

/// docker's `SecretOpt.Set`/`ConfigOpt.Set` (`NAME`, or `source=NAME,target=T,uid=U,gid=G,
/// mode=0400`), plus `version=N`. Stricter than docker where docker lets nonsense through to the
/// daemon: `mode` is octal (docker reads `400` as decimal) and at most 0777, `uid`/`gid` are
/// numbers, a target has no `..`.
pub fn parse_ref(flag: &str, value: &str) -> Result<RefOpt> {
    let bad = |why: String| CliError::invalid_flag(flag, value, why);
    let fields = csv_fields(flag, value)?;
    let mut r = RefOpt {
        source: String::new(),
        target: String::new(),
        uid: "0".into(),
        gid: "0".into(),
        mode: DEFAULT_MODE,
        version: None,
    };
    if let [only] = fields.as_slice()
        && !only.contains('=')
    {
        r.source = only.clone();
    } else {
        for field in &fields {
            let Some((key, val)) = field.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(bad(format!(
                    "invalid field '{field}' must be a key=value pair"
                )));
            };
            match key.to_ascii_lowercase().as_str() {
                "source" | "src" => r.source = val.to_string(),
                "target" => r.target = val.to_string(),
                "uid" => r.uid = id_number("uid", val).map_err(&bad)?,
                "gid" => r.gid = id_number("gid", val).map_err(&bad)?,
                "mode" => r.mode = octal_mode(val).map_err(&bad)?,
                "version" => {
                    r.version =
                        Some(val.parse::<u64>().ok().filter(|v| *v >= 1).ok_or_else(|| {
                            bad(format!("version: expected a number >= 1, got {val:?}"))
                        })?)
                }
                other => {
                    return Err(bad(format!(
                        "unknown option '{other}' (expected source, target, uid, gid, mode or version)"
                    )));
                }
            }
        }
    }
    if r.source.is_empty() {
        return Err(bad("source is required".into()));
    }
    if r.target.is_empty() {
        r.target = r.source.clone();
    }
    if r.target.split('/').any(|part| part == "..") || r.target.contains('\0') {
        return Err(bad(format!(
            "target: {:?} must stay inside the task (no '..')",
            r.target
        )));
    }
    Ok(r)
}

fn id_number(key: &str, val: &str) -> std::result::Result<String, String> {
    match val.parse::<u32>() {
        Ok(_) => Ok(val.to_string()),
        Err(_) => Err(format!("{key}: expected a numeric ID, got {val:?}")),
    }
}

/// `0400`, `400` or `0o400`: always octal, permission bits only.
pub fn octal_mode(val: &str) -> std::result::Result<u32, String> {
    let digits = val
        .strip_prefix("0o")
        .or_else(|| val.strip_prefix("0O"))
        .unwrap_or(val);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.starts_with('+') && m <= 0o777 => Ok(m),
        _ => Err(format!(
            "mode: expected an octal file mode from 0 to 0777 such as 0400, got {val:?}"
        )),
    }
}

/// Parses every value of one flag and refuses two references with one target, as docker does.
fn parse_all(kind: Kind, flag: &str, values: &[String]) -> Result<Vec<RefOpt>> {
    let mut out: Vec<RefOpt> = Vec::new();
    for v in values {
        let r = parse_ref(flag, v)?;
        if let Some(prev) = out.iter().find(|p| p.target == r.target) {
            return Err(CliError::invalid_flag(
                flag,
                v,
                format!(
                    "duplicate {} target {:?} (also used by {:?})",
                    kind.noun(),
                    r.target,
                    prev.source
                ),
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// `--secret` and `--config` of `service create`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct CreateRefFlags {
    /// Specify secrets to expose to the service (NAME or source=NAME[,target=T,uid=U,gid=G,mode=0444,version=N])
    #[arg(long, value_name = "secret")]
    pub secret: Vec<String>,
    /// Specify configurations to expose to the service (NAME or source=NAME[,target=T,uid=U,gid=G,mode=0444,version=N])
    #[arg(long, value_name = "config")]
    pub config: Vec<String>,
}

/// `--secret-add|rm` and `--config-add|rm` of `service update`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct UpdateRefFlags {
    /// Add or update a secret on a service (a reference with the same target is replaced)
    #[arg(long, value_name = "secret")]
    pub secret_add: Vec<String>,
    /// Remove a secret (by name)
    #[arg(long, value_name = "list")]
    pub secret_rm: Vec<String>,
    /// Add or update a config file on a service (a reference with the same target is replaced)
    #[arg(long, value_name = "config")]
    pub config_add: Vec<String>,
    /// Remove a configuration file (by name)
    #[arg(long, value_name = "list")]
    pub config_rm: Vec<String>,
}

/// Parsed flags: what to add (still by name) and what to remove, per kind.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Wanted {
    pub secrets: Vec<RefOpt>,
    pub configs: Vec<RefOpt>,
    pub secret_rm: Vec<String>,
    pub config_rm: Vec<String>,
}

impl CreateRefFlags {
    pub fn parse(&self) -> Result<Wanted> {
        Ok(Wanted {
            secrets: parse_all(Kind::Secret, "secret", &self.secret)?,
            configs: parse_all(Kind::Config, "config", &self.config)?,
            ..Default::default()
        })
    }
}

impl UpdateRefFlags {
    pub fn any(&self) -> bool {
        !(self.secret_add.is_empty()
            && self.secret_rm.is_empty()
            && self.config_add.is_empty()
            && self.config_rm.is_empty())
    }

    pub fn parse(&self) -> Result<Wanted> {
        Ok(Wanted {
            secrets: parse_all(Kind::Secret, "secret-add", &self.secret_add)?,
            configs: parse_all(Kind::Config, "config-add", &self.config_add)?,
            secret_rm: self.secret_rm.clone(),
            config_rm: self.config_rm.clone(),
        })
    }
}

/// The secret and config references a spec carries, as the daemon sent them (None: absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refs {
    pub secrets: Option<Vec<Value>>,
    pub configs: Option<Vec<Value>>,
}

impl Refs {
    /// Reads `Spec.TaskTemplate.ContainerSpec.{Secrets,Configs}` from a service as sent.
    pub fn from_service(raw: &[u8]) -> Refs {
        let doc: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        let cs = &doc["Spec"]["TaskTemplate"]["ContainerSpec"];
        let list = |key: &str| cs.get(key).and_then(Value::as_array).cloned();
        Refs {
            secrets: list("Secrets"),
            configs: list("Configs"),
        }
    }

    fn list_mut(&mut self, kind: Kind) -> &mut Option<Vec<Value>> {
        match kind {
            Kind::Secret => &mut self.secrets,
            Kind::Config => &mut self.configs,
        }
    }

    /// docker's `getUpdatedSecrets`/`getUpdatedConfigs`: drop references by name, then add the
    /// resolved ones; an added reference replaces one with the same target (docker would send
    /// both and have the daemon refuse), which is also how a pin is changed in place.
    pub fn update(&mut self, kind: Kind, remove: &[String], added: Vec<Value>) {
        if remove.is_empty() && added.is_empty() {
            return;
        }
        let target = |v: &Value| v["File"]["Name"].as_str().map(str::to_string);
        let list = self.list_mut(kind).get_or_insert_with(Vec::new);
        list.retain(|r| {
            let name = r[kind.name_key()].as_str().unwrap_or("");
            !remove.iter().any(|x| x == name)
                && !added
                    .iter()
                    .any(|a| target(a).is_some() && target(a) == target(r))
        });
        list.extend(added);
    }

    /// The spec as the JSON body to post, these references in place of the typed ones (an empty
    /// list is left out, as Go's `omitempty` does).
    pub fn body(&self, spec: &ServiceSpec) -> Result<Value> {
        let mut body = serde_json::to_value(spec)
            .map_err(|e| CliError::Failed(format!("cannot encode the service spec: {e}")))?;
        for kind in [Kind::Secret, Kind::Config] {
            let list = match kind {
                Kind::Secret => &self.secrets,
                Kind::Config => &self.configs,
            };
            let Some(list) = list else { continue };
            let Some(root) = body.as_object_mut() else {
                continue;
            };
            let cs = root
                .entry("TaskTemplate")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|t| t.entry("ContainerSpec").or_insert_with(|| json!({})));
            if let Some(Value::Object(cs)) = cs {
                if list.is_empty() {
                    cs.remove(kind.list_key());
                } else {
                    cs.insert(kind.list_key().into(), Value::Array(list.clone()));
                }
            }
        }
        Ok(body)
    }
}

/// Resolves names to IDs with one `GET /secrets?filters={"name":{..}}` per kind, as docker's
/// `ParseSecrets` does; a name the daemon does not list is an error naming it.
pub async fn resolve(client: &Client, kind: Kind, refs: &[RefOpt]) -> Result<Vec<Value>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let mut filters = Filters::new();
    for r in refs {
        filters.add("name", &r.source);
    }
    let listed: Vec<Object> = client.get(kind.path(), &filters.query()).await?;
    let ids = ids_by_name(&listed);
    refs.iter()
        .map(|r| match ids.get(r.source.as_str()) {
            Some(id) => Ok(r.to_json(kind, id)),
            None => Err(CliError::Failed(format!(
                "{} \"{}\": not found (create it with `shoal {} create {} FILE`)",
                kind.noun(),
                r.source,
                kind.noun(),
                r.source
            ))),
        })
        .collect()
}

/// Exact names only: a daemon may match the filter by prefix.
fn ids_by_name(listed: &[Object]) -> HashMap<&str, &str> {
    listed.iter().map(|o| (o.name(), o.id.as_str())).collect()
}

impl Wanted {
    /// Resolves what was asked and applies it to `refs`.
    pub async fn apply(&self, client: &Client, refs: &mut Refs) -> Result<()> {
        let secrets = resolve(client, Kind::Secret, &self.secrets).await?;
        let configs = resolve(client, Kind::Config, &self.configs).await?;
        refs.update(Kind::Secret, &self.secret_rm, secrets);
        refs.update(Kind::Config, &self.config_rm, configs);
        Ok(())
    }
}

#[cfg(test)]
#[path = "refs_tests.rs"]
mod tests;
