//! Secrets and configs (docker's `convert.Secrets`/`convert.Configs`): every one the file
//! defines, used or not, with its data read from its file (or, as the Compose Specification
//! adds, from an environment variable). External ones are listed but not created.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bollard_stubs::models::{ConfigSpec, Driver, SecretSpec};

use super::{Namespace, StackPayload, err};
use crate::error::{Error, join};
use crate::model::{FileObject, Project};
use crate::{Files, Options};

pub(crate) fn secrets(
    project: &Project,
    ns: Namespace<'_>,
    fs: &dyn Files,
    opts: &Options,
    errors: &mut Vec<Error>,
) -> Vec<StackPayload<SecretSpec>> {
    let mut out = Vec::new();
    for (key, obj) in &project.secrets {
        let name = obj.name.clone().unwrap_or_else(|| ns.scope(key));
        if obj.external {
            out.push(StackPayload {
                name: name.clone(),
                external: true,
                spec: SecretSpec {
                    name: Some(name),
                    ..Default::default()
                },
            });
            continue;
        }
        // A driver-backed secret has no data (docker sends an empty one).
        let data = if obj.driver.is_some() {
            Some(Vec::new())
        } else {
            data(obj, &join("secrets", key), fs, opts, errors)
        };
        let Some(data) = data else { continue };
        out.push(StackPayload {
            name: name.clone(),
            external: false,
            spec: SecretSpec {
                name: Some(name),
                labels: Some(ns.labels(&obj.labels)),
                data: (!data.is_empty()).then(|| STANDARD.encode(&data)),
                driver: obj.driver.as_ref().map(|d| Driver {
                    name: d.clone(),
                    options: obj
                        .driver_opts
                        .as_ref()
                        .filter(|o| !o.is_empty())
                        .map(|o| o.clone().into_iter().collect()),
                }),
                templating: templating(obj),
            },
        });
    }
    out
}

pub(crate) fn configs(
    project: &Project,
    ns: Namespace<'_>,
    fs: &dyn Files,
    opts: &Options,
    errors: &mut Vec<Error>,
) -> Vec<StackPayload<ConfigSpec>> {
    let mut out = Vec::new();
    for (key, obj) in &project.configs {
        let name = obj.name.clone().unwrap_or_else(|| ns.scope(key));
        if obj.external {
            out.push(StackPayload {
                name: name.clone(),
                external: true,
                spec: ConfigSpec {
                    name: Some(name),
                    ..Default::default()
                },
            });
            continue;
        }
        let Some(data) = data(obj, &join("configs", key), fs, opts, errors) else {
            continue;
        };
        out.push(StackPayload {
            name: name.clone(),
            external: false,
            spec: ConfigSpec {
                name: Some(name),
                labels: Some(ns.labels(&obj.labels)),
                data: (!data.is_empty()).then(|| STANDARD.encode(&data)),
                templating: templating(obj),
            },
        });
    }
    out
}

fn templating(obj: &FileObject) -> Option<Driver> {
    obj.template_driver
        .as_ref()
        .filter(|t| !t.is_empty())
        .map(|t| Driver {
            name: t.clone(),
            options: None,
        })
}

fn data(
    obj: &FileObject,
    key: &str,
    fs: &dyn Files,
    opts: &Options,
    errors: &mut Vec<Error>,
) -> Option<Vec<u8>> {
    if let Some(file) = &obj.file {
        return match fs.read(std::path::Path::new(file)) {
            Ok(d) => Some(d),
            Err(e) => {
                err(
                    errors,
                    &obj.at,
                    key.to_string(),
                    format!("file {file}: {e}"),
                );
                None
            }
        };
    }
    if let Some(var) = &obj.environment {
        let value = opts
            .env
            .get(var)
            .cloned()
            .or_else(|| opts.dotenv.then(|| dotenv_value(fs, opts, var)).flatten());
        return match value {
            Some(v) => Some(v.into_bytes()),
            None => {
                err(
                    errors,
                    &obj.at,
                    key.to_string(),
                    format!("environment variable {var:?} is not set"),
                );
                None
            }
        };
    }
    err(
        errors,
        &obj.at,
        key.to_string(),
        "one of file, environment or external must be set",
    );
    None
}

fn dotenv_value(fs: &dyn Files, opts: &Options, var: &str) -> Option<String> {
    let dir = opts.working_dir.to_string_lossy();
    let path = crate::syntax::abs_path(&dir, ".env");
    let bytes = fs.read(std::path::Path::new(&path)).ok()?;
    dotenvy::from_read_iter(&bytes[..])
        .filter_map(Result::ok)
        .find(|(k, _)| k == var)
        .map(|(_, v)| v)
}
